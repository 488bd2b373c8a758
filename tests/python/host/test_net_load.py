"""carbon.net under load: 1000 concurrent echo connections, 10,000 open
connections, running out of descriptors (EMFILE), a worker thread with its
own server; descriptor counts before and after."""
import errno
import resource
import socket
import subprocess
import sys
import unittest

import carbon
import carbon.net as net
import scheduler

from net_support import echo_handler, fd_count, fd_count_settled, run_all, settle, warm_up


def setUpModule():
    warm_up()


CLIENTS = r'''
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, {n} + 200), hard))
port = int(sys.argv[1])
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range({n})]
for c in conns:
    c.sendall(b"ping")
for c in conns:
    got = b""
    while len(got) < 4:
        got += c.recv(4 - len(got))
    assert got == b"ping", got
print("ok", len(conns))
'''


def roundtrip(c):
    """One byte there and back on a non-blocking stdlib socket, letting the
    loop run meanwhile: 'echo', 'closed' (EOF or reset) or 'hang'."""
    try:
        c.send(b"x")
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    for _ in range(500):
        try:
            data = c.recv(1)
        except BlockingIOError:
            carbon.sleep(0.01)
            continue
        except ConnectionResetError:
            return "closed"
        return "echo" if data == b"x" else "closed"
    return "hang"


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        raise unittest.SkipTest("RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return soft


class Load(unittest.TestCase):
    def setUp(self):
        self.fds = fd_count()

    def tearDown(self):
        settle(0.1)
        self.assertEqual(fd_count_settled(self.fds), self.fds, "descriptor leak")

    def test_1000_concurrent_echo_connections(self):
        raise_fd_limit(4096)
        with net.listen("127.0.0.1", 0, echo_handler, backlog=1024) as srv:
            port = srv.sockname[1]

            def client(i):
                with net.connect("127.0.0.1", port, timeout=30) as s:
                    for j in range(10):
                        msg = b"%d:%d|" % (i, j) * 8
                        s.write(msg)
                        self.assertEqual(s.readexactly(len(msg)), msg)
                return i

            results = run_all(*[lambda i=i: client(i) for i in range(1000)])
            self.assertEqual(results, list(range(1000)))

    def test_10000_open_connections(self):
        # The clients live in a child process: 20,000 descriptors in one
        # process would pass the usual hard limit.
        n = 10_000
        raise_fd_limit(n + 200)
        served = []

        def handler(stream):
            served.append(1)
            echo_handler(stream)

        child = CLIENTS.format(n=n)
        with net.listen("127.0.0.1", 0, handler, backlog=4096) as srv:
            proc = subprocess.Popen([sys.executable if "python" in sys.executable else "python3",
                                     "-c", child, str(srv.sockname[1])],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            peak = 0
            deadline = carbon.now() + 60
            while proc.poll() is None and carbon.now() < deadline:
                carbon.sleep(0.02)
                peak = max(peak, len(served) - 0)
                if len(served) == n:
                    peak = max(peak, fd_count() - self.fds)
            out, err = proc.communicate(timeout=10)
            self.assertEqual(proc.returncode, 0, err.decode())
            self.assertEqual(out.strip(), b"ok %d" % n)
            self.assertEqual(len(served), n)  # each had its own handler tasklet
            self.assertGreaterEqual(peak, n)   # all open at once

    def test_emfile_pauses_accept_and_keeps_serving(self):
        with net.listen("127.0.0.1", 0, echo_handler) as srv:
            port = srv.sockname[1]
            ok = net.connect("127.0.0.1", port)  # served before the shortage
            ok.write(b"before")
            self.assertEqual(ok.readexactly(6), b"before")
            clients = [socket.socket() for _ in range(12)]
            for c in clients:
                c.setblocking(False)
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            settle(0.01)
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_count() + 4, hard))
            try:
                for c in clients:
                    c.connect_ex(("127.0.0.1", port))  # no new descriptor needed
                settle(0.3)
                # libuv closes what it cannot accept (its reserve-descriptor
                # trick); errors it cannot handle so count in accept_errors.
                self.assertGreaterEqual(srv.accept_errors, 0)
                # The connection served before goes on being served.
                ok.write(b"during")
                self.assertEqual(ok.readexactly(6), b"during")
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            # Each client was either served or closed by the server: none hangs.
            outcomes = {"echo": 0, "closed": 0, "hang": 0}
            for c in clients:
                outcomes[roundtrip(c)] += 1
                c.close()
            self.assertEqual(sum(outcomes.values()), 12)
            self.assertEqual(outcomes["hang"], 0)
            self.assertGreater(outcomes["closed"], 0)
            # After the shortage, new connections are served again.
            settle(2 * net.ACCEPT_RETRY_DELAY)
            with net.connect("127.0.0.1", port) as again:
                again.write(b"after")
                self.assertEqual(again.readexactly(5), b"after")
            ok.close()

    def test_worker_thread_with_its_own_server(self):
        ports = scheduler.channel()

        def serve():
            served = []

            def handler(stream):
                served.append(stream.readline())
                stream.write(b"from worker\n")

            srv = net.listen("127.0.0.1", 0, handler)
            ports.send(srv.sockname[1])
            while len(served) < 20:
                carbon.sleep(0.005)
            srv.close()
            return len(served)

        w = carbon.spawn_worker(serve)
        port = ports.receive()

        def client(i):
            with net.connect("127.0.0.1", port, timeout=10) as s:
                s.write(b"hello %d\n" % i)
                return s.readline()

        self.assertEqual(run_all(*[lambda i=i: client(i) for i in range(20)]), [b"from worker\n"] * 20)
        self.assertEqual(w.join(), 20)

    def test_stream_of_another_thread_refuses(self):
        with net.listen("127.0.0.1", 0, echo_handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])

            def use():
                try:
                    s.read(1)
                except RuntimeError as e:
                    return str(e)

            self.assertIn("another thread", carbon.spawn_worker(use).join())
            s.close()


if __name__ == "__main__":
    unittest.main()
