"""carbon.net: streams, servers, UDP, name resolution, and the faults of
issue 11 (reset, refused, timeout, half-close, garbage, silence, kills,
closing under waiters, backpressure, descriptor leaks)."""
import errno
import socket
import struct
import sys
import unittest

import carbon
import carbon.net as net
import scheduler

from net_support import echo_handler, fd_count, fd_count_settled, run_all, settle, warm_up


def setUpModule():
    warm_up()


class Base(unittest.TestCase):
    def setUp(self):
        settle(0.01)
        self.fds = fd_count()

    def tearDown(self):
        settle()
        self.assertEqual(fd_count_settled(self.fds), self.fds, "descriptor leak")


class Echo(Base):
    def test_echo_read_readline_readexactly(self):
        with net.listen("127.0.0.1", 0, echo_handler) as srv:
            host, port = srv.sockname
            self.assertEqual(host, "127.0.0.1")
            self.assertGreater(port, 0)
            with net.connect("127.0.0.1", port) as s:
                self.assertEqual(s.peername, ("127.0.0.1", port))
                self.assertEqual(s.sockname[0], "127.0.0.1")
                s.set_nodelay(True)
                s.write(b"one\ntwo\n")
                s.write(bytearray(b"0123456789"))
                s.write(memoryview(b"tail"))
                self.assertEqual(s.readline(), b"one\n")
                self.assertEqual(s.readline(limit=100), b"two\n")
                self.assertEqual(s.readexactly(4), b"0123")
                self.assertEqual(s.readexactly(0), b"")
                got = b""
                while len(got) < 10:
                    got += s.read(3)
                    self.assertLessEqual(len(got), 10)
                self.assertEqual(got, b"456789tail")
                s.drain()
            self.assertTrue(s.closed)

    def test_read_all_until_eof_and_half_close(self):
        def handler(stream):
            data = stream.read()  # until the client's write_eof()
            stream.write(data[::-1])

        with net.listen("127.0.0.1", 0, handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])
            s.write(b"abc" * 1000)
            s.write_eof()
            self.assertEqual(s.read(), b"cba" * 1000)
            self.assertEqual(s.read(), b"")  # EOF stays EOF
            self.assertEqual(s.read(10), b"")
            self.assertEqual(s.readline(), b"")
            s.close()

    def test_eof_partial_readexactly_and_readline(self):
        def handler(stream):
            stream.write(b"no newline")

        with net.listen("127.0.0.1", 0, handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])
            with self.assertRaises(net.IncompleteReadError) as cm:
                s.readexactly(100)
            self.assertIsInstance(cm.exception, EOFError)
            self.assertEqual(cm.exception.partial, b"no newline")
            self.assertEqual(cm.exception.expected, 100)
            self.assertEqual(s.read(), b"")
            s.close()
            s2 = net.connect("127.0.0.1", srv.sockname[1])
            self.assertEqual(s2.readline(), b"no newline")
            self.assertEqual(s2.readline(), b"")
            s2.close()

    def test_readline_limit_and_garbage(self):
        garbage = bytes(range(256)) * 1000  # a few newlines, mostly binary

        def handler(stream):
            stream.write(garbage)

        with net.listen("127.0.0.1", 0, handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])
            got = []
            while True:
                line = s.readline(limit=100)
                if not line:
                    break
                self.assertLessEqual(len(line), 100)
                got.append(line)
            self.assertEqual(b"".join(got), garbage)  # nothing lost, nothing crashed
            s.close()

    def test_bad_arguments(self):
        with net.listen("127.0.0.1", 0, echo_handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])
            self.assertRaises(TypeError, s.write, "text")
            self.assertRaises(TypeError, s.read, "x")
            self.assertRaises(ValueError, s.readexactly, -1)
            self.assertRaises(ValueError, s.readline, 0)
            self.assertRaises(TypeError, s.read, 1, 2)
            s.close()
            with self.assertRaises(OSError) as cm:
                s.read()
            self.assertEqual(cm.exception.errno, errno.EBADF)
            self.assertRaises(OSError, s.write, b"x")
            s.close()  # twice is fine
        self.assertRaises(OverflowError, net.connect, "127.0.0.1", 70000)
        self.assertRaises(TypeError, net.listen, "127.0.0.1", 0, "not callable")
        self.assertRaises(ValueError, net.connect, "127.0.0.1", 1, timeout=-1)
        self.assertRaises(TypeError, net.udp, "127.0.0.1")
        with self.assertRaises(OSError) as cm:
            net.listen("127.0.0.1", srv.sockname[1] if False else self._busy_port())
        self.assertEqual(cm.exception.errno, errno.EADDRINUSE)
        self._busy.close()

    def _busy_port(self):
        self._busy = socket.socket()
        self._busy.bind(("127.0.0.1", 0))
        self._busy.listen()
        return self._busy.getsockname()[1]

    def test_two_readers_on_one_stream(self):
        with net.listen("127.0.0.1", 0, echo_handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])
            first = scheduler.tasklet(s.read)(10)
            scheduler.run()  # first is now blocked in read
            with self.assertRaises(RuntimeError):
                s.read(10)
            s.write(b"x")
            settle()
            self.assertFalse(first.alive)
            s.close()

    def test_ipv6_loopback(self):
        try:
            srv = net.listen("::1", 0, echo_handler)
        except OSError:
            self.skipTest("no IPv6 loopback")
        with srv:
            self.assertEqual(len(srv.sockname), 4)
            with net.connect("::1", srv.sockname[1]) as s:
                s.write(b"six")
                self.assertEqual(s.readexactly(3), b"six")


class Faults(Base):
    def test_refused(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nobody listens there now
        with self.assertRaises(ConnectionRefusedError):
            net.connect("127.0.0.1", port)

    def test_peer_reset_read_and_write(self):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        s = net.connect("127.0.0.1", ls.getsockname()[1])
        peer, _ = ls.accept()
        peer.sendall(b"last words")
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        ls.close()
        with self.assertRaises(ConnectionResetError):
            while True:  # the bytes before the reset may or may not survive it
                if not s.read(100):
                    self.fail("EOF instead of a reset")
        self.assertRaises(ConnectionResetError, s.read)  # stays failed
        with self.assertRaises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                s.write(b"x" * 1000)
                settle(0.001)
        s.close()

    def test_connect_timeout(self):
        # A listener whose backlog is full drops further SYNs: connect hangs.
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(0)
        fill = []
        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(ls.getsockname())
            fill.append(c)
        t0 = carbon.now()
        try:
            with self.assertRaises(TimeoutError):
                while True:  # backlog accounting varies: a few may still get in
                    fill.append(net.connect("127.0.0.1", ls.getsockname()[1], timeout=0.2))
                    self.assertLess(len(fill), 20)
            self.assertLess(carbon.now() - t0, 5)
        finally:
            for c in fill:
                c.close()
            ls.close()

    def test_silent_peer_blocks_only_its_reader(self):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        s = net.connect("127.0.0.1", ls.getsockname()[1])
        peer, _ = ls.accept()
        reader = scheduler.tasklet(s.read)(10)
        scheduler.run()
        ticks = []
        run_all(*[lambda i=i: ticks.append(i) or carbon.sleep(0.01) for i in range(5)])
        self.assertEqual(sorted(ticks), list(range(5)))
        self.assertTrue(reader.alive)  # still waiting on the silent peer
        reader.kill()
        self.assertFalse(reader.alive)
        peer.sendall(b"later")
        self.assertEqual(s.readexactly(5), b"later")  # the killed read took nothing
        s.close()
        peer.close()
        ls.close()

    def test_kill_mid_read_keeps_data_for_the_next_reader(self):
        go = scheduler.channel()

        def handler(stream):
            go.receive()
            stream.write(b"abc")
            go.receive()
            stream.write(b"defghij")

        with net.listen("127.0.0.1", 0, handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])
            partial = scheduler.tasklet(s.readexactly)(6)
            scheduler.run()
            go.send(None)
            settle(0.01)
            self.assertTrue(partial.alive)  # has seen 3 of its 6 bytes
            partial.kill()
            self.assertFalse(partial.alive)
            go.send(None)
            self.assertEqual(s.readexactly(6), b"abcdef")  # nothing was lost
            self.assertEqual(s.readexactly(4), b"ghij")
            s.close()

    def test_kill_after_data_arrived_loses_nothing(self):
        # The reader is woken with its bytes, and a tasklet woken in the same
        # loop turn (by another stream) kills it before it resumes: the bytes
        # go back into the stream. Whichever runs first, nothing is lost.
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        port = ls.getsockname()[1]
        killed_first = 0
        for i in range(20):
            s1, s2 = net.connect("127.0.0.1", port), net.connect("127.0.0.1", port)
            p1, _ = ls.accept()
            p2, _ = ls.accept()
            got = []
            reader = scheduler.tasklet(lambda: got.append(s1.read(100)))()

            def killer():
                s2.read(1)
                if reader.alive:
                    reader.kill()

            scheduler.tasklet(killer)()
            scheduler.run()
            p2.sendall(b"k")
            p1.sendall(b"data %d" % i)
            settle(0.01)
            if not got:
                killed_first += 1
                self.assertEqual(s1.read(100), b"data %d" % i)
            else:
                self.assertEqual(got, [b"data %d" % i])
            for x in (s1, s2, p1, p2):
                x.close()
        ls.close()
        print("killed before resuming: %d of 20" % killed_first, end=" ", file=sys.stderr)

    def test_throw_into_reader(self):
        with net.listen("127.0.0.1", 0, echo_handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])
            caught = []

            def reader():
                try:
                    s.read(10)
                except ValueError as e:
                    caught.append(str(e))
                s.write(b"again")
                caught.append(s.readexactly(5))

            t = scheduler.tasklet(reader)()
            scheduler.run()
            t.throw(ValueError("give up"))
            settle()
            self.assertEqual(caught, ["give up", b"again"])
            s.close()

    def test_kill_blocked_writer_queues_nothing(self):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        s = net.connect("127.0.0.1", ls.getsockname()[1])
        peer, _ = ls.accept()
        written = []
        chunk = b"w" * 65536

        def writer():
            while True:
                s.write(chunk)
                written.append(len(chunk))

        w = scheduler.tasklet(writer)()
        settle(0.1)
        self.assertTrue(w.alive)  # blocked: the peer does not read
        self.assertLessEqual(s.write_buffered, net.WRITE_HIGH_WATER + len(chunk))
        w.kill()
        s.close()  # what was queued still goes out
        peer.setblocking(False)
        total = 0
        while True:
            settle(0.005)
            try:
                data = peer.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                break
            total += len(data)
        self.assertEqual(total, sum(written))
        peer.close()
        ls.close()

    def test_backpressure_slow_reader(self):
        size = 8 << 20
        chunk = bytes(range(256)) * 256  # 64 KiB
        peak = []

        def handler(stream):
            for _ in range(size // len(chunk)):
                stream.write(chunk)
                peak.append(stream.write_buffered)
            stream.drain()
            self.assertEqual(stream.write_buffered, 0)

        with net.listen("127.0.0.1", 0, handler) as srv:
            s = net.connect("127.0.0.1", srv.sockname[1])
            received = 0
            while received < size:
                data = s.read(4096)  # slow: small reads with pauses
                self.assertTrue(data)
                self.assertEqual(data[:1], bytes([received % 256]))
                received += len(data)
                if received % (1 << 20) < 4096:
                    carbon.sleep(0.01)
            self.assertEqual(received, size)
            self.assertLessEqual(max(peak), net.WRITE_HIGH_WATER + len(chunk))
            self.assertEqual(s.read(), b"")
            s.close()

    def test_listener_closed_while_tasklets_block_in_accept(self):
        srv = net.listen("127.0.0.1", 0)
        errors = []

        def acceptor():
            try:
                srv.accept()
            except OSError as e:
                errors.append(e.errno)

        ts = [scheduler.tasklet(acceptor)() for _ in range(3)]
        scheduler.run()
        self.assertTrue(all(t.alive for t in ts))
        srv.close()
        settle()
        self.assertEqual(errors, [errno.EBADF] * 3)
        self.assertRaises(OSError, srv.accept)

    def test_accept_without_handler_and_kill_in_accept(self):
        with net.listen("127.0.0.1", 0, backlog=4) as srv:
            killed = scheduler.tasklet(srv.accept)()
            scheduler.run()
            killed.kill()
            c = net.connect("127.0.0.1", srv.sockname[1])
            s = srv.accept()  # the killed acceptor took nothing
            c.write(b"hi")
            self.assertEqual(s.readexactly(2), b"hi")
            self.assertEqual(s.peername, c.sockname)
            s.close()
            c.close()

    def test_handler_exception_does_not_stop_the_server(self):
        import contextlib
        import io
        calls = []

        def handler(stream):
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("bad request")
            echo_handler(stream)

        err = io.StringIO()
        with net.listen("127.0.0.1", 0, handler) as srv, contextlib.redirect_stderr(err):
            s1 = net.connect("127.0.0.1", srv.sockname[1])
            self.assertEqual(s1.read(), b"")  # its stream was closed
            self.assertIn("ValueError: bad request", err.getvalue())
            s2 = net.connect("127.0.0.1", srv.sockname[1])
            s2.write(b"ok")
            self.assertEqual(s2.readexactly(2), b"ok")
            s1.close()
            s2.close()

    def test_unclosed_streams_are_closed_when_collected(self):
        with net.listen("127.0.0.1", 0, echo_handler) as srv:
            for _ in range(20):
                s = net.connect("127.0.0.1", srv.sockname[1])
                s.write(b"x")
                del s
            settle()


class Udp(Base):
    def test_sendto_recvfrom(self):
        with net.udp(bind=("127.0.0.1", 0)) as a, net.udp(("127.0.0.1", 0)) as b:
            self.assertEqual(a.sendto(b"snapshot 1", b.sockname), 10)
            a.sendto(b"", b.sockname)
            data, addr = b.recvfrom()
            self.assertEqual((data, addr), (b"snapshot 1", a.sockname))
            self.assertEqual(b.recvfrom(), (b"", a.sockname))

            def pong():
                d, addr = b.recvfrom()
                b.sendto(d.upper(), addr)

            run_all(pong, lambda: a.sendto(b"ping", b.sockname))
            self.assertEqual(a.recvfrom()[0], b"PING")
            self.assertRaises(TypeError, a.sendto, b"x", "nowhere")
            self.assertRaises(OSError, a.sendto, b"x" * 70000, b.sockname)
        self.assertRaises(OSError, a.recvfrom)

    def test_many_datagrams_and_blocked_receiver_on_close(self):
        a = net.udp(("127.0.0.1", 0))
        b = net.udp(("127.0.0.1", 0))
        got = []
        for n in range(5):  # a batch fits in the socket buffer: loopback loses nothing
            for i in range(100):
                a.sendto(b"%d" % i, b.sockname)
            got += [int(b.recvfrom()[0]) for _ in range(100)]
        self.assertEqual(got, list(range(100)) * 5)
        errs = []

        def waiter():
            try:
                b.recvfrom()
            except OSError as e:
                errs.append(e.errno)

        scheduler.tasklet(waiter)()
        scheduler.run()
        b.close()
        settle()
        self.assertEqual(errs, [errno.EBADF])
        a.close()


class Dns(Base):
    def test_localhost(self):
        addrs = net.getaddrinfo("localhost", 80)
        self.assertTrue(addrs)
        self.assertTrue(all(port == 80 for _, port, *rest in addrs))
        self.assertTrue({a[0] for a in addrs} & {"127.0.0.1", "::1"})
        with net.listen("localhost", 0, echo_handler) as srv:
            with net.connect("localhost", srv.sockname[1], timeout=5) as s:
                s.write(b"dns")
                self.assertEqual(s.readexactly(3), b"dns")

    def test_unknown_name(self):
        with self.assertRaises(socket.gaierror):
            net.connect("no-such-host.invalid", 80, timeout=5)

    def test_resolution_runs_beside_other_tasklets(self):
        order = []
        run_all(lambda: order.append(("dns", len(net.getaddrinfo("localhost")))),
                lambda: order.append(("other", 0)))
        self.assertEqual(len(order), 2)


if __name__ == "__main__":
    unittest.main()
