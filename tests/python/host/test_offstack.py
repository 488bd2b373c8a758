"""Nothing points into a suspended tasklet's C stack (docs/design.md): every
wait path links a heap record, never one on the waiting tasklet's C stack,
and checks it where it links it (runtime/offstack.h). Each test drives one
wait path in a tasklet and asserts that its record was checked; the check
aborts the process if a record lies on the tasklet's own stack, so a path
that passes here keeps nothing others touch on a stack that may be copied
away while it waits (issue 8)."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import unittest

import _carbon
import carbon
import carbon.net as net
import scheduler

from net_support import run_all, settle, warm_up


def setUpModule():
    warm_up()


def checked(kind, fn):
    """How many records of `kind` were checked while fn() ran."""
    before = _carbon._offstack_checks().get(kind, 0)
    fn()
    return _carbon._offstack_checks().get(kind, 0) - before


def count(kind):
    return _carbon._offstack_checks().get(kind, 0)


def until_waiting(kind, before):
    """Returns once a record of `kind` was checked since the count was
    `before`: its owner waits (or is about to, in the same turn)."""
    for _ in range(2000):
        if count(kind) > before:
            return
        carbon.sleep(0.005)
    raise AssertionError("nobody waited: " + kind)


def once_waiting(kind, fn):
    """fn() in its own tasklet once a record of `kind` was checked from now
    on: a waiter waits first, on a loaded machine too."""
    before = count(kind)

    def body():
        until_waiting(kind, before)
        fn()
    scheduler.tasklet(body)()


class Check(unittest.TestCase):
    def test_stack_owns_local(self):
        # The main tasklet runs on its thread's own stack: never copied.
        self.assertFalse(_carbon._stack_owns_local())
        self.assertEqual(run_all(_carbon._stack_owns_local), [True])

    def test_stack_owns_local_on_a_worker(self):
        def work():
            out = [_carbon._stack_owns_local()]

            def body():
                carbon.sleep(0.001)
                out.append(_carbon._stack_owns_local())
            scheduler.tasklet(body)()
            for _ in range(1000):  # until it ran (a loaded machine: later)
                if len(out) == 2:
                    break
                carbon.sleep(0.01)
            return out
        self.assertEqual(run_all(carbon.spawn_worker(work).join), [[False, True]])

    def test_a_record_on_the_stack_aborts(self):
        code = textwrap.dedent("""
            import _carbon, carbon, scheduler
            _carbon._offstack_violate()  # the main tasklet: its thread's stack
            print("main ok", flush=True)
            scheduler.tasklet(_carbon._offstack_violate)()
            scheduler.run()
            print("not reached", flush=True)
            """)
        r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(r.returncode, -signal.SIGABRT, r.stderr)
        self.assertEqual(r.stdout, "main ok\n")
        self.assertIn("carbon: internal error: a test record (_carbon._offstack_violate) at ",
                      r.stderr)
        self.assertIn("lies on the C stack of the tasklet that waits for it", r.stderr)


class Base(unittest.TestCase):
    def assertChecked(self, kind, fn):
        self.assertGreaterEqual(checked(kind, fn), 1, kind)


class WaitPaths(Base):
    def test_sleep(self):
        self.assertChecked("a timer heap's waiter", lambda: run_all(lambda: carbon.sleep(0.001)))

    def test_frame_wait(self):
        self.assertChecked("a timer heap's waiter", lambda: run_all(lambda: carbon.wait_frames(1)))

    def test_fd_poll(self):
        r, w = os.pipe()
        try:
            once_waiting("a descriptor poll's waiter", lambda: os.write(w, b"x"))
            before = _carbon._offstack_checks()
            self.assertEqual(run_all(lambda: _carbon.wait_fd(r, _carbon.READ)), [_carbon.READ])
            after = _carbon._offstack_checks()
            for kind in ("a descriptor poll's waiter", "a descriptor poll's flag", "a wait's flag"):
                self.assertGreaterEqual(after.get(kind, 0) - before.get(kind, 0), 1, kind)
        finally:
            os.close(r)
            os.close(w)

    def test_fd_poll_with_a_deadline(self):
        r, w = os.pipe()
        try:
            self.assertChecked("a timer heap's waiter",
                               lambda: self.assertEqual(
                                   run_all(lambda: _carbon.wait_fd(r, _carbon.READ, 0.005)), [0]))
        finally:
            os.close(r)
            os.close(w)

    def test_resolve(self):
        self.assertChecked("a name resolution request",
                           lambda: self.assertTrue(run_all(lambda: net.getaddrinfo("localhost"))[0]))

    def test_connect_accept_read(self):
        with net.listen("127.0.0.1", 0) as srv:
            port = srv.sockname[1]

            def server():
                with srv.accept() as s:  # waits: the client connects later
                    return s.read(5)  # waits: the client writes later

            def client():
                until_waiting("a server's accept waiter", accepts)
                with net.connect("127.0.0.1", port) as c:
                    until_waiting("a stream's reader", reads)
                    c.write(b"hello")
                    return c.read()  # the server's close

            accepts, reads = count("a server's accept waiter"), count("a stream's reader")
            before = _carbon._offstack_checks()
            self.assertEqual(run_all(server, client), [b"hello", b""])
            after = _carbon._offstack_checks()
            for kind in ("a server's accept waiter", "a connect request's waiter",
                         "a stream's reader", "a network wait record"):
                self.assertGreaterEqual(after.get(kind, 0) - before.get(kind, 0), 1, kind)
            settle()

    def test_write_and_drain(self):
        # More than loopback's socket buffers hold: what the peer has not
        # read stays queued, so write() past the high-water mark and drain()
        # wait until the peer reads, which it does only once they wait.
        big = b"y" * (24 << 20)

        for kind, step in (("a stream's writer", lambda s: s.write(b"!")),
                           ("a stream's drainer", lambda s: s.drain())):
            with net.listen("127.0.0.1", 0) as srv:
                port = srv.sockname[1]
                before = count(kind)

                def server():
                    with srv.accept() as s:
                        s.write(big)
                        step(s)

                def client():
                    with net.connect("127.0.0.1", port) as c:
                        until_waiting(kind, before)
                        n = 0
                        while True:
                            data = c.read(1 << 20)
                            if not data:
                                return n
                            n += len(data)

                self.assertEqual(run_all(server, client)[1], len(big) + (kind == "a stream's writer"))
                self.assertGreaterEqual(count(kind) - before, 1, kind)
            settle()

    def test_connect_with_a_timeout(self):
        with net.listen("127.0.0.1", 0) as srv:
            port = srv.sockname[1]
            self.assertChecked("a network wait record",
                               lambda: run_all(lambda: net.connect("127.0.0.1", port, timeout=5).close()))
            settle()

    def test_udp(self):
        a = net.udp(("127.0.0.1", 0))
        b = net.udp(("127.0.0.1", 0))
        try:
            once_waiting("a datagram endpoint's reader", lambda: b.sendto(b"ping", a.sockname))
            self.assertChecked("a datagram endpoint's reader",
                               lambda: self.assertEqual(run_all(a.recvfrom)[0][0], b"ping"))
        finally:
            a.close()
            b.close()
            settle()

    def test_worker_join(self):
        joins = count("a worker's joiner")

        def work():  # ends only once someone waits to join it
            until_waiting("a worker's joiner", joins)
            return 7
        w = carbon.spawn_worker(work)
        self.assertChecked("a worker's joiner", lambda: self.assertEqual(run_all(w.join), [7]))

    def test_nested_run(self):
        out = []

        def child():
            out.append("child")

        def parent():
            t = scheduler.tasklet(child)()
            t.remove()
            t.switch()  # runs t as this tasklet's child, with queue markers
            out.append("parent")
        self.assertChecked("a nested run loop's queue marker", lambda: run_all(parent))
        self.assertEqual(out, ["child", "parent"])


class PatchedSockets(Base):
    @classmethod
    def setUpClass(cls):
        carbon.patch()

    @classmethod
    def tearDownClass(cls):
        carbon.unpatch()

    def test_recv_and_send(self):
        a, b = socket.socketpair()
        try:
            once_waiting("a descriptor poll's waiter", lambda: b.send(b"hi"))
            self.assertChecked("a descriptor poll's waiter",
                               lambda: self.assertEqual(run_all(lambda: a.recv(10)), [b"hi"]))
            # sendall waits for room: the peer reads only once it is full.
            data = b"z" * (4 << 20)

            waits = count("a descriptor poll's waiter")

            def reader():
                until_waiting("a descriptor poll's waiter", waits)
                n = 0
                while n < len(data):
                    n += len(b.recv(1 << 16))
                return n
            self.assertChecked("a descriptor poll's waiter",
                               lambda: self.assertEqual(run_all(lambda: a.sendall(data), reader)[1],
                                                        len(data)))
        finally:
            a.close()
            b.close()

    def test_getaddrinfo(self):
        self.assertChecked("a name resolution request",
                           lambda: self.assertTrue(run_all(lambda: socket.getaddrinfo("localhost", 80))[0]))


if __name__ == "__main__":
    unittest.main()
