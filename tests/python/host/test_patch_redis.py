"""carbon.patch(): a database driver written on `socket` runs in tasklets unchanged.

The driver is redis-py (Debian's python3-redis, pure Python) against a real
redis-server (Debian's redis-server) started here on a free loopback port
with a temporary directory. Both are in tools/dev's TEST_PACKAGES; the test
skips with a message where they are missing (python3-redis serves Debian's
python3 only, not the pyenv builds). Run by the carbon host only.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import carbon
import scheduler

import net_support

carbon.patch()

try:
    import redis
except ImportError:  # not installed for this Python
    redis = None

import socket  # noqa: E402 - patched

SLACK = 20 if 'vgpreload' in os.environ.get('LD_PRELOAD', '') else 1
ORIG_SOCKET = carbon.original('socket', 'socket')
REDIS_SERVER = shutil.which('redis-server') or ('/usr/bin/redis-server'
                                                if os.path.exists('/usr/bin/redis-server') else None)


def free_port():
    s = ORIG_SOCKET()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_tasklets(*fns, limit=20.0 * SLACK):
    return net_support.run_tasklets(*fns, limit=limit)


class Setup(unittest.TestCase):
    def test_patched_before_the_driver_is_imported(self):
        # Always runs (Python 3.12+ fails a file whose tests all skip).
        self.assertIs(socket.socket, sys.modules['carbon.patch'].socket)


@unittest.skipIf(redis is None, 'python3-redis is not installed for this Python (Debian ships it '
                 'for /usr/bin/python3 only; tools/dev test installs it)')
@unittest.skipIf(REDIS_SERVER is None, 'redis-server is not installed (tools/dev test installs it)')
class Redis(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.port = free_port()
        cls.server = subprocess.Popen(
            [REDIS_SERVER, '--port', str(cls.port), '--bind', '127.0.0.1', '--dir', cls.tmp.name,
             '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'no',
             '--enable-debug-command', 'local'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10 * SLACK
        while True:  # until it accepts connections
            try:
                with ORIG_SOCKET() as s:
                    s.connect(('127.0.0.1', cls.port))
                break
            except OSError:
                if cls.server.poll() is not None or time.monotonic() > deadline:
                    cls.tearDownClass()
                    raise unittest.SkipTest('redis-server did not start')
                time.sleep(0.02)

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        cls.server.wait()
        cls.tmp.cleanup()

    def client(self):
        return redis.Redis(host='127.0.0.1', port=self.port, socket_timeout=10 * SLACK)

    def test_the_driver_uses_patched_sockets(self):
        r = self.client()
        try:
            self.assertTrue(r.ping())
            conn = r.connection_pool.get_connection('PING')
            try:
                self.assertIsInstance(conn._sock, sys.modules['carbon.patch'].socket)
            finally:
                r.connection_pool.release(conn)
        finally:
            r.close()

    def test_tasklets_query_concurrently_on_one_pool(self):
        r = self.client()

        def worker(i):
            def body():
                for k in range(50):
                    key = 'k:%d:%d' % (i, k)
                    r.set(key, 'v%d' % (i * 1000 + k))
                    if r.get(key) != b'v%d' % (i * 1000 + k):
                        raise AssertionError('wrong value for %s' % key)
                    carbon.sleep(0)  # let the others in between
                return r.incrby('sum', i)
            return body

        try:
            run_tasklets(*[worker(i) for i in range(8)])
            self.assertEqual(int(r.get('sum')), sum(range(8)))
            self.assertGreater(r.connection_pool._created_connections, 1)  # really concurrent
        finally:
            r.close()

    def test_blocking_commands_interleave(self):
        """Each BLPOP waits 0.4 s on the server: run one after another they
        would take 8 x 0.4 = 3.2 s; in tasklets they wait together."""
        wait = 0.4
        clients = [self.client() for _ in range(8)]

        def popper(c, i):
            return lambda: c.blpop('empty:%d' % i, timeout=wait)

        try:
            t0 = time.monotonic()
            res = run_tasklets(*[popper(c, i) for i, c in enumerate(clients)])
            elapsed = time.monotonic() - t0
            self.assertEqual(res, [None] * 8)  # each timed out on the server
            self.assertGreaterEqual(elapsed, wait * 0.9)
            if SLACK == 1:
                self.assertLess(elapsed, len(clients) * wait / 2)
        finally:
            for c in clients:
                c.close()

    def test_a_tasklet_wakes_another_blocked_in_the_driver(self):
        """A consumer blocked in BLPOP blocks only its tasklet: a producer
        tasklet on the same thread runs meanwhile and its RPUSH wakes it."""
        consumer_c, producer_c = self.client(), self.client()
        order = []

        def consumer():
            order.append('waiting')
            item = consumer_c.blpop('queue', timeout=10 * SLACK)
            order.append('got')
            return item

        def producer():
            carbon.sleep(0.05)
            order.append('push')
            producer_c.rpush('queue', 'job-1')

        try:
            item, _ = run_tasklets(consumer, producer)
            self.assertEqual(item, (b'queue', b'job-1'))
            self.assertEqual(order, ['waiting', 'push', 'got'])
        finally:
            consumer_c.close()
            producer_c.close()

    def test_server_side_sleep_with_a_timeout_in_the_driver(self):
        """A driver timeout (socket_timeout) is the patched socket's timeout:
        it raises in the waiting tasklet only."""
        slow = redis.Redis(host='127.0.0.1', port=self.port, socket_timeout=0.1)
        other = self.client()
        ticks = []

        def sleeper():
            with self.assertRaises(redis.exceptions.TimeoutError):
                slow.execute_command('DEBUG', 'SLEEP', '0.5')

        def ticker():
            for _ in range(5):
                ticks.append(time.monotonic())
                carbon.sleep(0.01)

        try:
            run_tasklets(sleeper, ticker)
            self.assertEqual(len(ticks), 5)
            carbon.sleep(0.5 * SLACK)  # the server is back
            self.assertTrue(other.ping())
        finally:
            slow.close()
            other.close()


if __name__ == '__main__':
    unittest.main()
