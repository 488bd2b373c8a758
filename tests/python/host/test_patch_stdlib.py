"""carbon.patch(): standard library modules unchanged in tasklets.

urllib.request against http.server, socketserver, smtplib, select / poll /
epoll / selectors, time.sleep, ssl with a self-signed certificate made by the
openssl command (tools/dev installs Debian's `openssl`). Run by the carbon
host only; loopback only.
"""
import http.server
import os
import select
import selectors
import shutil
import smtplib
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import carbon
import scheduler

# Upper time bounds widen under valgrind (which preloads its vgpreload_*.so).
SLACK = 20 if 'vgpreload' in os.environ.get('LD_PRELOAD', '') else 1

carbon.patch()
cpatch = sys.modules['carbon.patch']


def fd_count():
    return len(os.listdir('/proc/self/fd'))


def wait_until(cond, limit=10.0 * SLACK):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit:
            raise AssertionError('condition not reached in %s s' % limit)
        carbon.sleep(0.002)


class Base(unittest.TestCase):
    def setUp(self):
        self.fds = fd_count()

    def tearDown(self):
        carbon.sleep(0)
        self.assertEqual(fd_count(), self.fds, 'descriptor leak')


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        body = ('hello %s' % self.path).encode()
        time.sleep(0.05)  # patched: only this tasklet waits
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TaskletHTTPServer(socketserver.TCPServer):
    """http.server with a tasklet per request (what ThreadingMixIn does with threads)."""
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs of 10 simultaneous clients (1 s retry)

    def process_request(self, request, client_address):
        def handle():
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
        scheduler.tasklet(handle)()


def start_server(server):
    t = scheduler.tasklet(server.serve_forever)(0.05)
    return t


def stop_server(server, t):
    # shutdown() waits on a threading.Event (threading is not patched):
    # from the server's own thread, end its tasklet instead.
    t.kill()
    server.server_close()


class UrllibAgainstHttpServer(Base):
    def test_concurrent_requests_both_sides_in_tasklets(self):
        srv = TaskletHTTPServer(('127.0.0.1', 0), Hello)
        port = srv.server_address[1]
        st = start_server(srv)
        out = {}

        def client(i):
            with urllib.request.urlopen('http://127.0.0.1:%d/r%d' % (port, i), timeout=5) as r:
                out[i] = (r.status, r.read())

        n = 10
        t0 = time.monotonic()
        for i in range(n):
            scheduler.tasklet(client)(i)
        try:
            wait_until(lambda: len(out) == n)
            took = time.monotonic() - t0
            self.assertEqual(out, {i: (200, b'hello /r%d' % i) for i in range(n)})
            # every handler slept 0.05 s: side by side, not one after another
            self.assertLess(took, n * 0.05 * SLACK)
        finally:
            stop_server(srv, st)

    def test_from_the_main_tasklet_and_a_plain_thread(self):
        srv = TaskletHTTPServer(('127.0.0.1', 0), Hello)
        port = srv.server_address[1]
        st = start_server(srv)
        try:
            with urllib.request.urlopen('http://localhost:%d/main' % port, timeout=5) as r:
                self.assertEqual(r.read(), b'hello /main')
            res = []
            th = threading.Thread(target=lambda: res.append(
                urllib.request.urlopen('http://127.0.0.1:%d/thread' % port, timeout=5).read()))
            th.start()
            wait_until(lambda: not th.is_alive())
            self.assertEqual(res, [b'hello /thread'])
        finally:
            stop_server(srv, st)

    def test_worker_thread_with_its_own_server(self):
        ch = scheduler.channel()
        n = 3

        def work():
            srv = TaskletHTTPServer(('127.0.0.1', 0), Hello)
            ch.send(srv.server_address[1])
            for _ in range(n):
                srv.handle_request()  # the worker's main tasklet waits; handlers are tasklets
            srv.server_close()
            return 'served'

        w = carbon.spawn_worker(work)
        port = ch.receive()
        out = []

        def client(i):
            with urllib.request.urlopen('http://127.0.0.1:%d/w%d' % (port, i), timeout=5) as r:
                out.append(r.read())
        for i in range(n):
            scheduler.tasklet(client)(i)
        wait_until(lambda: len(out) == n)
        self.assertEqual(sorted(out), [b'hello /w%d' % i for i in range(n)])
        self.assertEqual(w.join(), 'served')

    def test_client_timeout(self):
        lst = socket.create_server(('127.0.0.1', 0))  # accepts, never answers
        port = lst.getsockname()[1]
        try:
            t0 = time.monotonic()
            with self.assertRaises(Exception) as cm:
                urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=0.1)
            self.assertIsInstance(getattr(cm.exception, 'reason', cm.exception), TimeoutError)
            self.assertLess(time.monotonic() - t0, 2 * SLACK)
        finally:
            lst.close()


class SocketServer(Base):
    def test_stream_request_handler(self):
        class Upper(socketserver.StreamRequestHandler):
            def handle(self):
                for line in self.rfile:
                    self.wfile.write(line.upper())

        srv = socketserver.TCPServer(('127.0.0.1', 0), Upper)
        port = srv.server_address[1]
        st = start_server(srv)
        out = []

        def client():
            with socket.create_connection(('127.0.0.1', port)) as c:
                f = c.makefile('rwb')
                for w in (b'one\n', b'two\n'):
                    f.write(w)
                    f.flush()
                    out.append(f.readline())
                f.close()
        scheduler.tasklet(client)()
        try:
            wait_until(lambda: len(out) == 2)
            self.assertEqual(out, [b'ONE\n', b'TWO\n'])
        finally:
            stop_server(srv, st)

    def test_udp_server(self):
        class Echo(socketserver.DatagramRequestHandler):
            def handle(self):
                self.wfile.write(self.rfile.read()[::-1])

        srv = socketserver.UDPServer(('127.0.0.1', 0), Echo)
        st = start_server(srv)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(5)
                c.sendto(b'abc', srv.server_address)
                self.assertEqual(c.recvfrom(10)[0], b'cba')
        finally:
            stop_server(srv, st)


class Smtp(Base):
    def test_smtplib_against_a_tasklet_server(self):
        lst = socket.create_server(('127.0.0.1', 0))
        port = lst.getsockname()[1]
        got = []

        def server():
            c, _ = lst.accept()
            with c, c.makefile('rwb') as f:
                def say(line):
                    f.write(line + b'\r\n')
                    f.flush()
                say(b'220 carbon ESMTP')
                data = False
                for line in f:
                    if data:
                        if line == b'.\r\n':
                            data = False
                            say(b'250 ok')
                        else:
                            got.append(line)
                        continue
                    cmd = line[:4].upper()
                    if cmd in (b'EHLO', b'HELO'):
                        say(b'250 carbon')
                    elif cmd == b'DATA':
                        data = True
                        say(b'354 go on')
                    elif cmd == b'QUIT':
                        say(b'221 bye')
                        return
                    else:
                        say(b'250 ok')
        st = scheduler.tasklet(server)()
        try:
            with smtplib.SMTP('127.0.0.1', port, timeout=5) as s:
                s.sendmail('a@example.org', ['b@example.org'], 'Subject: hi\r\n\r\nbody\r\n')
            wait_until(lambda: not st.alive)
            self.assertIn(b'body\r\n', got)
        finally:
            lst.close()


class Select(Base):
    def setUp(self):
        super().setUp()
        self.a, self.b = socket.socketpair()

    def tearDown(self):
        self.a.close()
        self.b.close()
        super().tearDown()

    def later_send(self, delay=0.05):
        def go():
            time.sleep(delay)
            self.b.send(b'z')
        scheduler.tasklet(go)()

    def test_select(self):
        self.later_send()
        t0 = time.monotonic()
        r, w, x = select.select([self.a], [], [], 5)
        self.assertEqual((r, w, x), ([self.a], [], []))
        self.assertLess(time.monotonic() - t0, 1 * SLACK)
        self.a.recv(1)
        self.assertEqual(select.select([self.a], [], [], 0.05), ([], [], []))
        self.assertEqual(select.select([], [self.a.fileno()], [], 1), ([], [self.a.fileno()], []))
        with self.assertRaises(ValueError):
            select.select([self.a], [], [], -1)

    def test_poll(self):
        p = select.poll()
        p.register(self.a, select.POLLIN)
        self.assertEqual(p.poll(20), [])
        self.later_send()
        self.assertEqual(p.poll(5000), [(self.a.fileno(), select.POLLIN)])
        p.modify(self.a, select.POLLOUT)
        self.assertEqual(p.poll(), [(self.a.fileno(), select.POLLOUT)])
        p.unregister(self.a)

    def test_epoll(self):
        with select.epoll() as ep:
            ep.register(self.a.fileno(), select.EPOLLIN)
            self.assertEqual(ep.poll(0.02), [])
            self.later_send()
            self.assertEqual(ep.poll(5), [(self.a.fileno(), select.EPOLLIN)])

    def test_selectors(self):
        for cls in (selectors.DefaultSelector, selectors.SelectSelector, selectors.PollSelector,
                    selectors.EpollSelector):
            with cls() as sel:
                sel.register(self.a, selectors.EVENT_READ, 'data')
                self.later_send()
                t0 = time.monotonic()
                ev = sel.select(5)
                self.assertLess(time.monotonic() - t0, 1 * SLACK, cls)
                self.assertEqual([(k.fileobj, k.data, m) for k, m in ev],
                                 [(self.a, 'data', selectors.EVENT_READ)], cls)
                self.a.recv(1)
                self.assertEqual(sel.select(0.01), [])

    def test_select_waits_only_the_tasklet(self):
        ticks = []

        def ticker():
            while len(ticks) < 10:
                ticks.append(1)
                time.sleep(0.005)
        scheduler.tasklet(ticker)()
        t0 = time.monotonic()
        select.select([self.a], [], [], 0.2)
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertGreaterEqual(len(ticks), 3)  # the ticker ran while we waited

    def test_select_in_a_plain_thread(self):
        out = []

        def body():
            out.append(cpatch._cooperative())
            out.append(select.select([self.a], [], [], 0.05))
            p = select.poll()
            p.register(self.a, select.POLLIN)
            out.append(p.poll(50))
            with selectors.DefaultSelector() as sel:
                sel.register(self.a, selectors.EVENT_READ)
                out.append(sel.select(0.05))
        th = threading.Thread(target=body)
        th.start()
        wait_until(lambda: not th.is_alive())
        self.assertEqual(out, [False, ([], [], []), [], []])

    def test_blocking_mode_of_selected_descriptor_is_kept(self):
        r, w = os.pipe()
        try:
            def go():
                time.sleep(0.02)
                os.write(w, b'p')
            scheduler.tasklet(go)()
            self.assertEqual(select.select([r], [], [], 5)[0], [r])
            self.assertTrue(os.get_blocking(r))
            self.assertEqual(os.read(r, 1), b'p')
        finally:
            cpatch._forget_fd(r)
            os.close(r)
            os.close(w)


class Sleep(Base):
    def test_tasklets_sleep_side_by_side(self):
        n = 100
        done = []

        def sleeper():
            time.sleep(0.2)
            done.append(1)

        t0 = time.monotonic()
        for _ in range(n):
            scheduler.tasklet(sleeper)()
        wait_until(lambda: len(done) == n)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.2)
        self.assertLess(took, 0.6 * SLACK)

    def test_arguments_and_plain_thread(self):
        with self.assertRaises(ValueError):
            time.sleep(-1)
        with self.assertRaises(TypeError):
            time.sleep('1')
        time.sleep(0)
        out = []
        th = threading.Thread(target=lambda: (out.append(cpatch._cooperative()), time.sleep(0.05),
                                              out.append(1)))
        th.start()
        wait_until(lambda: not th.is_alive())
        self.assertEqual(out, [False, 1])


def have_openssl():
    return shutil.which('openssl') is not None


@unittest.skipUnless(have_openssl(), 'needs the openssl command (tools/dev installs it)')
class SSL(Base):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix='carbon-ssl-')
        cls.cert = os.path.join(cls.dir, 'cert.pem')
        cls.key = os.path.join(cls.dir, 'key.pem')
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                        '-keyout', cls.key, '-out', cls.cert, '-subj', '/CN=localhost',
                        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
                       check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def contexts(self):
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(self.cert, self.key)
        cctx = ssl.create_default_context(cafile=self.cert)
        return sctx, cctx

    def test_echo_handshake_read_write_unwrap(self):
        sctx, cctx = self.contexts()
        lst = socket.create_server(('127.0.0.1', 0))
        port = lst.getsockname()[1]
        done = []

        def server():
            c, _ = lst.accept()
            with sctx.wrap_socket(c, server_side=True) as s:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    s.sendall(d)
            done.append('server')

        def client():
            with socket.create_connection(('localhost', port), timeout=5) as raw:
                with cctx.wrap_socket(raw, server_hostname='localhost') as s:
                    self.assertIsInstance(s, ssl.SSLSocket)
                    data = os.urandom(1 << 20)
                    s.sendall(data)
                    got = bytearray()
                    while len(got) < len(data):
                        got += s.recv(65536)
                    self.assertEqual(bytes(got), data)
                    f = s.makefile('rwb')
                    f.write(b'line\n')
                    f.flush()
                    self.assertEqual(f.readline(), b'line\n')
                    f.close()
            done.append('client')

        ticks = []

        def ticker():
            while len(done) < 2:
                ticks.append(1)
                carbon.sleep(0.001)
        for fn in (server, client, ticker):
            scheduler.tasklet(fn)()
        try:
            wait_until(lambda: len(done) == 2)
            self.assertGreater(len(ticks), 0)
        finally:
            lst.close()

    def test_urllib_https_and_read_timeout(self):
        sctx, cctx = self.contexts()
        srv = TaskletHTTPServer(('127.0.0.1', 0), Hello)
        srv.socket = sctx.wrap_socket(srv.socket, server_side=True)
        port = srv.server_address[1]
        st = start_server(srv)
        try:
            with urllib.request.urlopen('https://localhost:%d/tls' % port, context=cctx, timeout=5) as r:
                self.assertEqual(r.read(), b'hello /tls')
        finally:
            stop_server(srv, st)
        # A TLS server that never answers: the client's read times out.
        lst = socket.create_server(('127.0.0.1', 0))
        port = lst.getsockname()[1]
        conns = []

        def silent():
            c, _ = lst.accept()
            conns.append(sctx.wrap_socket(c, server_side=True))
        scheduler.tasklet(silent)()
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.1) as raw:
                with cctx.wrap_socket(raw, server_hostname='localhost') as s:
                    with self.assertRaises(TimeoutError) as cm:
                        s.recv(10)
                    self.assertIn('timed out', str(cm.exception))
        finally:
            for c in conns:
                c.close()
            lst.close()

    def test_ssl_in_a_plain_thread(self):
        sctx, cctx = self.contexts()
        out = []

        def body():
            lst = socket.create_server(('127.0.0.1', 0))
            port = lst.getsockname()[1]

            def serve():
                c, _ = lst.accept()
                with sctx.wrap_socket(c, server_side=True) as s:
                    s.sendall(s.recv(100).upper())
            th2 = threading.Thread(target=serve)
            th2.start()
            with cctx.wrap_socket(socket.create_connection(('127.0.0.1', port)),
                                  server_hostname='localhost') as s:
                s.sendall(b'plain')
                out.append(s.recv(100))
            th2.join()
            lst.close()
        th = threading.Thread(target=body)
        th.start()
        wait_until(lambda: not th.is_alive())
        self.assertEqual(out, [b'PLAIN'])


if __name__ == '__main__':
    unittest.main()
