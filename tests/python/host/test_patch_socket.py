"""carbon.patch(): every patched socket call, in tasklets and in a plain thread.

Run by the carbon host only. Loopback only. Descriptor counts are checked
before/after each test.
"""
import errno
import gc
import os
import select
import socket
import sys
import threading
import time
import unittest
import warnings

import _carbon
import carbon
import scheduler

import net_support

# Upper time bounds widen under valgrind (which preloads its vgpreload_*.so).
SLACK = 20 if 'vgpreload' in os.environ.get('LD_PRELOAD', '') else 1

carbon.patch()

cpatch = sys.modules['carbon.patch']
ORIG_SOCKET = carbon.original('socket', 'socket')
ORIG_GETADDRINFO = carbon.original('socket', 'getaddrinfo')


def fd_count():
    return len(os.listdir('/proc/self/fd'))


def run_tasklets(*fns, limit=10.0 * SLACK):
    return net_support.run_tasklets(*fns, limit=limit)


def in_thread(fn):
    """Runs fn in a plain thread (no tasklets, no loop); returns its result."""
    out = {}

    def body():
        try:
            out['cooperative'] = cpatch._cooperative()
            out['r'] = fn()
        except BaseException as e:  # noqa: B902
            out['e'] = e

    th = threading.Thread(target=body)
    th.start()
    while th.is_alive():
        carbon.sleep(0.002)  # our thread keeps serving its tasklets
    th.join()
    if 'e' in out:
        raise out['e']
    assert out['cooperative'] is False, 'a plain thread must block, not cooperate'
    return out['r']


class Base(unittest.TestCase):
    def setUp(self):
        self.fds = fd_count()

    def tearDown(self):
        carbon.sleep(0)  # close callbacks
        self.assertEqual(fd_count(), self.fds, 'descriptor leak')


class Patching(Base):
    def test_classes_and_functions_replaced(self):
        self.assertIs(socket.socket, cpatch.socket)
        self.assertTrue(issubclass(socket.socket, ORIG_SOCKET))
        s = socket.socket()
        try:
            self.assertIsInstance(s, cpatch.socket)
            self.assertIsNone(s.gettimeout())
            self.assertTrue(s.getblocking())
            # the descriptor itself is non-blocking underneath
            self.assertTrue(os.get_blocking(s.fileno()) is False)
        finally:
            s.close()
        self.assertIs(socket.getaddrinfo, cpatch.getaddrinfo)
        self.assertTrue(carbon.is_patched())
        carbon.patch()  # idempotent
        self.assertIs(socket.socket, cpatch.socket)

    def test_timeout_attributes_follow_socket_module(self):
        s = socket.socket()
        try:
            s.settimeout(2)
            self.assertEqual(s.gettimeout(), 2.0)
            self.assertEqual(s.timeout, 2.0)
            self.assertTrue(s.getblocking())
            s.setblocking(False)
            self.assertEqual(s.gettimeout(), 0.0)
            self.assertFalse(s.getblocking())
            s.setblocking(True)
            self.assertIsNone(s.gettimeout())
            with self.assertRaises(ValueError):
                s.settimeout(-1)
            with self.assertRaises(ValueError):
                s.settimeout(float('nan'))
            with self.assertRaises(TypeError):
                s.settimeout('1')
            self.assertIsNone(s.gettimeout())
        finally:
            s.close()
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(3.5)
        try:
            s = socket.socket()
            self.assertEqual(s.gettimeout(), 3.5)
            s.close()
        finally:
            socket.setdefaulttimeout(old)


def echo_server(listener, count=1):
    """Serves `count` connections (one tasklet each): echo until EOF."""
    def serve_one(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)

    for _ in range(count):
        c, _ = listener.accept()
        scheduler.tasklet(serve_one)(c)


class TCP(Base):
    def test_echo_many_clients_concurrently(self):
        lst = socket.create_server(('127.0.0.1', 0))
        port = lst.getsockname()[1]
        n = 20

        def client(i):
            def go():
                with socket.create_connection(('127.0.0.1', port), timeout=5) as c:
                    msg = (b'%d-' % i) * 1000
                    c.sendall(msg)
                    got = b''
                    while len(got) < len(msg):
                        got += c.recv(4096)
                    return got == msg
            return go

        try:
            res = run_tasklets(lambda: echo_server(lst, n), *[client(i) for i in range(n)])
            self.assertEqual(res[1:], [True] * n)
        finally:
            lst.close()

    def test_localhost_name_is_resolved_cooperatively(self):
        lst = socket.create_server(('127.0.0.1', 0))
        port = lst.getsockname()[1]

        def client():
            with socket.create_connection(('localhost', port), timeout=5) as c:
                c.sendall(b'hi')
                return c.recv(10)
        try:
            self.assertEqual(run_tasklets(lambda: echo_server(lst), client)[1], b'hi')
        finally:
            lst.close()

    def test_recv_into_makefile_and_sendfile(self):
        lst = socket.create_server(('127.0.0.1', 0))
        port = lst.getsockname()[1]
        path = '/tmp/carbon_patch_sendfile_%d' % os.getpid()
        with open(path, 'wb') as f:
            f.write(b'0123456789' * 50000)

        def client():
            with socket.create_connection(('127.0.0.1', port)) as c:
                c.sendall(b'line one\nline two\n')
                f = c.makefile('rb')
                lines = [f.readline(), f.readline()]
                buf = bytearray(5)
                with open(path, 'rb') as src:
                    sent = c.sendfile(src)
                got = 0
                while got < sent:
                    n = c.recv_into(buf)
                    got += n
                f.close()
                return lines, sent, got
        try:
            lines, sent, got = run_tasklets(lambda: echo_server(lst), client)[1]
            self.assertEqual(lines, [b'line one\n', b'line two\n'])
            self.assertEqual(sent, 500000)
            self.assertEqual(got, 500000)
        finally:
            os.unlink(path)
            lst.close()

    def test_big_sendall_against_slow_reader(self):
        a, b = socket.socketpair()
        data = os.urandom(4 * 1024 * 1024)

        def reader():
            got = bytearray()
            while len(got) < len(data):
                carbon.sleep(0.001)
                got += b.recv(1 << 16)
            return bytes(got)

        try:
            res = run_tasklets(lambda: a.sendall(data), reader)
            self.assertEqual(res[1], data)
        finally:
            a.close()
            b.close()

    def test_connect_refused(self):
        s = ORIG_SOCKET()
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now

        def go():
            with socket.socket() as c:
                with self.assertRaises(ConnectionRefusedError):
                    c.connect(('127.0.0.1', port))
            with socket.socket() as c:
                return c.connect_ex(('127.0.0.1', port))
        self.assertEqual(run_tasklets(go)[0], errno.ECONNREFUSED)

    def test_non_blocking_mode_is_the_programs(self):
        a, b = socket.socketpair()
        try:
            a.setblocking(False)
            with self.assertRaises(BlockingIOError):
                a.recv(10)
            b.send(b'x')
            self.assertEqual(a.recv(10), b'x')
        finally:
            a.close()
            b.close()


class Timeouts(Base):
    def test_recv_times_out_only_the_caller(self):
        a, b = socket.socketpair()
        ticks = []

        def waiter():
            a.settimeout(0.1)
            t0 = time.monotonic()
            with self.assertRaises(socket.timeout) as cm:
                a.recv(10)
            self.assertEqual(str(cm.exception), 'timed out')
            return time.monotonic() - t0

        def ticker():
            for _ in range(5):
                ticks.append(1)
                carbon.sleep(0.01)

        try:
            took = run_tasklets(waiter, ticker)[0]
            self.assertGreaterEqual(took, 0.1)
            self.assertLess(took, 1.0 * SLACK)
            self.assertEqual(len(ticks), 5)  # the other tasklet ran meanwhile
        finally:
            a.close()
            b.close()

    def test_accept_and_send_time_out(self):
        lst = socket.create_server(('127.0.0.1', 0))
        a, b = socket.socketpair()

        def go():
            lst.settimeout(0.05)
            with self.assertRaises(TimeoutError):
                lst.accept()
            a.settimeout(0.05)
            with self.assertRaises(TimeoutError):
                while True:  # nobody reads b: the buffer fills up
                    a.send(b'x' * 65536)
            with self.assertRaises(TimeoutError):
                a.sendall(b'x' * 65536)
        try:
            run_tasklets(go)
        finally:
            lst.close()
            a.close()
            b.close()

    def test_recv_timeout_zero_is_non_blocking(self):
        a, b = socket.socketpair()
        try:
            a.settimeout(0)
            with self.assertRaises(BlockingIOError):
                a.recv(1)
        finally:
            a.close()
            b.close()


class Cancel(Base):
    def test_close_while_another_tasklet_waits(self):
        a, b = socket.socketpair()

        def waiter():
            with self.assertRaises(OSError) as cm:
                a.recv(10)
            return cm.exception.errno

        def closer():
            carbon.sleep(0.02)
            a.close()

        try:
            self.assertEqual(run_tasklets(waiter, closer)[0], errno.EBADF)
        finally:
            b.close()

    def test_kill_while_waiting_in_recv_and_accept(self):
        a, b = socket.socketpair()
        lst = socket.create_server(('127.0.0.1', 0))
        reached = []

        def blocked(fn):
            try:
                fn()
            finally:
                reached.append('finally')

        t1 = scheduler.tasklet(blocked)(lambda: a.recv(10))
        t2 = scheduler.tasklet(blocked)(lst.accept)
        carbon.sleep(0.02)
        self.assertTrue(t1.alive and t2.alive)
        t1.kill()
        t2.kill()
        self.assertEqual(reached, ['finally', 'finally'])
        # The descriptors still work for others afterwards.
        b.send(b'after')
        self.assertEqual(run_tasklets(lambda: a.recv(10))[0], b'after')
        a.close()
        b.close()
        lst.close()

    def test_throw_while_waiting(self):
        a, b = socket.socketpair()
        caught = []

        def waiter():
            try:
                a.recv(10)
            except KeyError as e:
                caught.append(e)

        t = scheduler.tasklet(waiter)()
        carbon.sleep(0.01)
        t.throw(KeyError('boom'))
        self.assertEqual(len(caught), 1)
        a.close()
        b.close()

    def test_two_readers_one_message_wakes_one(self):
        a, b = socket.socketpair()
        got = []

        def reader(name):
            def go():
                a.settimeout(0.3)
                try:
                    got.append((name, a.recv(1)))
                except TimeoutError:
                    got.append((name, None))
            return go

        def writer():
            carbon.sleep(0.02)
            b.send(b'x')

        try:
            run_tasklets(reader('r1'), reader('r2'), writer)
            self.assertEqual(sorted(v for _, v in got if v), [b'x'])
            self.assertEqual(sum(1 for _, v in got if v is None), 1)
        finally:
            a.close()
            b.close()

    def test_reader_and_writer_on_one_socket(self):
        a, b = socket.socketpair()
        data = b'y' * (2 * 1024 * 1024)

        def reader():
            got = bytearray()
            while len(got) < len(data):
                got += a.recv(65536)
            return len(got)

        def writer():
            a.sendall(data)   # same descriptor, write side

        def peer():
            got = bytearray()
            while len(got) < len(data):
                got += b.recv(65536)
            b.sendall(bytes(got))

        try:
            self.assertEqual(run_tasklets(reader, writer, peer)[0], len(data))
        finally:
            a.close()
            b.close()


class KeptPolls(Base):
    """A patched socket's poll handle stays armed between waits (no epoll_ctl
    per wait) and is stopped lazily; stale registrations never hide a new
    descriptor with the same number."""

    def read_once(self, a, b, data=b'x'):
        def reader():
            return a.recv(10)

        def writer():
            carbon.sleep(0.01)
            b.sendall(data)
        return run_tasklets(reader, writer)[0]

    def test_poll_stays_armed_between_waits(self):
        a, b = socket.socketpair()
        with a, b:
            self.assertEqual(self.read_once(a, b), b'x')
            state = _carbon._poll_state(a.fileno())
            self.assertEqual(state[:2], (_carbon.READ, 1))
            self.assertEqual(self.read_once(a, b, b'y'), b'y')
            self.assertEqual(_carbon._poll_state(a.fileno())[:2], (_carbon.READ, 1))

    def test_unread_data_stops_the_poll_after_one_event(self):
        a, b = socket.socketpair()
        with a, b:
            self.assertEqual(self.read_once(a, b), b'x')
            events = _carbon._poll_state(a.fileno())[2]
            b.sendall(b'nobody reads this yet')
            for _ in range(20):  # level-triggered: it would fire every turn
                carbon.sleep(0.002)
            mask, kept, events2 = _carbon._poll_state(a.fileno())
            self.assertEqual((mask, kept), (0, 0))
            self.assertLessEqual(events2 - events, 1)
            self.assertEqual(a.recv(100), b'nobody reads this yet')
            self.assertEqual(self.read_once(a, b, b'z'), b'z')

    def test_descriptor_closed_behind_a_kept_poll(self):
        a, b = socket.socketpair()
        self.assertEqual(self.read_once(a, b), b'x')
        fd = a.fileno()
        c, d = socket.socketpair()  # other numbers
        os.close(fd)  # behind a's back: its poll stays armed for the number
        os.dup2(c.fileno(), fd)  # a new socket gets the number
        s1 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fd)
        c.close()
        s1.settimeout(5 * SLACK)  # a stale registration would hide it: TimeoutError, not a hang
        try:
            self.assertEqual(_carbon._poll_state(fd)[:2], (_carbon.READ, 1))  # a's, stale
            self.assertEqual(self.read_once(s1, d, b'new socket'), b'new socket')
            self.assertEqual(_carbon._poll_state(fd)[:2], (_carbon.READ, 1))  # s1's now
        finally:
            a.detach()  # the number is not its own any more
            for o in (s1, d, b):
                o.close()

    def test_socket_closed_on_another_thread(self):
        """A worker's poll kept armed for a socket main closes (forget_fd
        reaches only main's polls) neither hides the next socket with that
        number nor keeps the worker's loop (and so the worker) alive."""
        a, b = socket.socketpair()
        fd = a.fileno()
        swapped = threading.Event()
        box = {}

        def worker():
            first = a.recv(10)  # the worker's poll for fd stays armed
            swapped.wait(10 * SLACK)
            return first, box['c'].recv(10)

        w = carbon.spawn_worker(worker)
        carbon.sleep(0.05)
        b.sendall(b'1')
        carbon.sleep(0.1)  # the worker has it and waits for the swap
        a.close()  # on this thread
        c, d = socket.socketpair()
        x = c.detach()
        if x != fd:
            os.dup2(x, fd)
            os.close(x)
        box['c'] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fd)
        box['c'].settimeout(5 * SLACK)  # a stale registration: TimeoutError, not a hang
        try:
            swapped.set()
            carbon.sleep(0.05)
            d.sendall(b'2')
            self.assertEqual(w.join(), (b'1', b'2'))  # the worker ended
        finally:
            for o in (box['c'], b, d):
                o.close()

    def test_select_on_a_number_a_kept_poll_had(self):
        a, b = socket.socketpair()
        self.assertEqual(self.read_once(a, b), b'x')
        fd = a.fileno()
        os.close(fd)
        r0, w = os.pipe()
        if r0 != fd:
            os.dup2(r0, fd)  # a pipe gets the number: select() registers it afresh
            os.close(r0)

        def waiter():
            return select.select([fd], [], [], 5 * SLACK)[0]

        def writer():
            carbon.sleep(0.01)
            os.write(w, b'p')
        try:
            self.assertEqual(run_tasklets(waiter, writer)[0], [fd])
        finally:
            a.detach()
            os.close(fd)
            os.close(w)
            b.close()

    def test_socket_collected_without_close(self):
        a, b = socket.socketpair()
        self.assertEqual(self.read_once(a, b), b'x')
        fd = a.fileno()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', ResourceWarning)
            del a
            gc.collect()
        self.assertEqual(_carbon._poll_state(fd)[:2], (0, 0))  # its __del__ stopped it
        c, d = socket.socketpair()
        with b, c, d:
            self.assertEqual(self.read_once(c, d, b'after'), b'after')

    def test_closed_socket_calls_raise_ebadf(self):
        a, b = socket.socketpair()
        a.close()
        b.close()
        for call in (lambda: a.recv(1), lambda: a.send(b'x'), lambda: a.sendall(b'x'),
                     lambda: a.recv_into(bytearray(1))):
            with self.assertRaises(OSError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EBADF)


class UDP(Base):
    def test_sendto_recvfrom(self):
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind(('127.0.0.1', 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        addr = r.getsockname()

        def receiver():
            data, frm = r.recvfrom(100)
            buf = bytearray(100)
            n, frm2 = r.recvfrom_into(buf)
            return data, bytes(buf[:n]), frm == frm2

        def sender():
            carbon.sleep(0.01)
            s.sendto(b'one', addr)
            s.sendto(b'two', 0, ('localhost', addr[1]))

        try:
            self.assertEqual(run_tasklets(receiver, sender)[0], (b'one', b'two', True))
        finally:
            r.close()
            s.close()

    def test_recvmsg_sendmsg(self):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

        def go():
            carbon.sleep(0.01)
            b.sendmsg([b'hello'])

        try:
            res = run_tasklets(lambda: a.recvmsg(100), go)
            self.assertEqual(res[0][0], b'hello')
        finally:
            a.close()
            b.close()


class Resolution(Base):
    def test_getaddrinfo_matches_the_original(self):
        for args in [('localhost', 80, socket.AF_INET, socket.SOCK_STREAM),
                     ('127.0.0.1', 'http', 0, socket.SOCK_STREAM),
                     (None, 8080, socket.AF_INET6, socket.SOCK_DGRAM, 0, socket.AI_PASSIVE),
                     ('::1', 53, socket.AF_INET6, socket.SOCK_DGRAM)]:
            want = ORIG_GETADDRINFO(*args)
            got = run_tasklets(lambda: socket.getaddrinfo(*args))[0]
            self.assertEqual(sorted(got), sorted(want), args)
            self.assertIsInstance(got[0][0], socket.AddressFamily)
            self.assertIsInstance(got[0][1], socket.SocketKind)

    def test_getaddrinfo_errors(self):
        def go():
            with self.assertRaises(socket.gaierror) as cm:
                socket.getaddrinfo('no-such-host.invalid', 80)
            with self.assertRaises(socket.gaierror):
                socket.getaddrinfo(None, None)
            with self.assertRaises(socket.gaierror):
                socket.getaddrinfo('localhost', 'no-such-service-name')
            with self.assertRaises(TypeError):
                socket.getaddrinfo(42, 80)
            return cm.exception.errno
        self.assertIn(run_tasklets(go)[0], (socket.EAI_NONAME, socket.EAI_AGAIN, socket.EAI_FAIL,
                                            getattr(socket, 'EAI_NODATA', socket.EAI_NONAME)))

    def test_gethostbyname(self):
        self.assertEqual(run_tasklets(lambda: socket.gethostbyname('localhost'))[0], '127.0.0.1')
        self.assertEqual(run_tasklets(lambda: socket.gethostbyname('127.0.0.2'))[0], '127.0.0.2')

    def test_kill_while_resolving(self):
        t = scheduler.tasklet(lambda: socket.getaddrinfo('localhost', 80))()
        t.run()  # starts the request, blocks on it
        t.kill()
        self.assertFalse(t.alive)
        carbon.sleep(0.05)  # the thread pool answers; the request frees itself


class PlainThread(Base):
    """Outside tasklets, every patched call behaves like the original: it blocks the thread."""

    def test_socket_calls_in_a_plain_thread(self):
        def body():
            lst = socket.create_server(('127.0.0.1', 0))
            port = lst.getsockname()[1]
            c = socket.create_connection(('localhost', port), timeout=5)
            s, _ = lst.accept()
            c.sendall(b'ping')
            r1 = s.recv(4)
            s.settimeout(0.05)
            t0 = time.monotonic()
            try:
                s.recv(1)
                timed_out = False
            except socket.timeout:
                timed_out = time.monotonic() - t0 >= 0.05
            f = c.makefile('rwb')
            s.sendall(b'line\n')
            r2 = f.readline()
            f.close()
            for x in (c, s, lst):
                x.close()
            addrs = socket.getaddrinfo('localhost', 80, socket.AF_INET, socket.SOCK_STREAM)
            return r1, timed_out, r2, addrs

        r1, timed_out, r2, addrs = in_thread(body)
        self.assertEqual(r1, b'ping')
        self.assertTrue(timed_out)
        self.assertEqual(r2, b'line\n')
        self.assertEqual(addrs, ORIG_GETADDRINFO('localhost', 80, socket.AF_INET, socket.SOCK_STREAM))

    def test_thread_and_tasklets_talk(self):
        lst = socket.create_server(('127.0.0.1', 0))
        port = lst.getsockname()[1]
        served = []

        def server():
            echo_server(lst)
            served.append(1)

        scheduler.tasklet(server)()

        def body():
            with socket.create_connection(('127.0.0.1', port), timeout=5) as c:
                c.sendall(b'from a thread')
                return c.recv(100)
        try:
            self.assertEqual(in_thread(body), b'from a thread')
        finally:
            lst.close()


if __name__ == '__main__':
    unittest.main()
