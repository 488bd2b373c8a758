"""carbon.timeout: TimeoutError in the tasklet, whatever it waits on.

Run by the carbon host only.
"""
import math
import os
import socket
import threading
import time
import unittest

import carbon
import scheduler

import net_support

# Upper time bounds widen under valgrind (which preloads its vgpreload_*.so).
SLACK = 20 if 'vgpreload' in os.environ.get('LD_PRELOAD', '') else 1


def run_tasklets(*fns, limit=10.0 * SLACK):
    return net_support.run_tasklets(*fns, limit=limit)


def elapsed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


class Arguments(unittest.TestCase):
    def test_bad_values(self):
        for bad in (-1, math.nan):
            with self.assertRaises(ValueError):
                carbon.timeout(bad)
        for bad in ('1', [1]):
            with self.assertRaises(TypeError):
                carbon.timeout(bad)
        self.assertIsInstance(carbon.timeout(1), carbon.Timeout)
        self.assertIsNone(carbon.timeout(None).seconds)
        self.assertEqual(carbon.timeout(2).seconds, 2.0)

    def test_reentering_a_running_timeout(self):
        to = carbon.timeout(1)
        with to:
            with self.assertRaises(RuntimeError):
                to.__enter__()
        with to:  # fine again once left
            pass

    def test_none_never_fires(self):
        with carbon.timeout(None) as to:
            carbon.sleep(0.01)
        self.assertFalse(to.expired)


class WhateverItWaitsOn(unittest.TestCase):
    def check(self, wait, seconds=0.05):
        def body():
            t0 = time.monotonic()
            with self.assertRaises(TimeoutError):
                with carbon.timeout(seconds) as to:
                    wait()
            took = time.monotonic() - t0
            self.assertTrue(to.expired)
            self.assertFalse(to.pending)
            return took
        took = run_tasklets(body)[0]
        self.assertGreaterEqual(took, seconds)
        self.assertLess(took, seconds + 1.0 * SLACK)

    def test_channel_receive(self):
        self.check(scheduler.channel().receive)

    def test_channel_send(self):
        self.check(lambda: scheduler.channel().send(1))

    def test_sleep(self):
        self.check(lambda: carbon.sleep(10))

    def test_wait_frames(self):
        self.check(lambda: carbon.wait_frames(10 ** 6))

    def test_socket_read(self):
        a, b = socket.socketpair()
        try:
            self.check(lambda: carbon.wait_fd(a.fileno(), carbon.READ))
        finally:
            a.close()
            b.close()

    def test_worker_join(self):
        def slow():
            carbon.sleep(0.5)
        w = carbon.spawn_worker(slow)
        self.check(w.join)
        w.join()

    def test_main_tasklet(self):
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            with carbon.timeout(0.05):
                scheduler.channel().receive()  # no deadlock error: the timer can wake us
        self.assertGreaterEqual(time.monotonic() - t0, 0.05)
        with self.assertRaises(TimeoutError):
            with carbon.timeout(0.05):
                carbon.sleep(5)


class Semantics(unittest.TestCase):
    def test_block_that_ends_in_time(self):
        def body():
            with carbon.timeout(0.2) as to:
                carbon.sleep(0.01)
            carbon.sleep(0.3)  # well past the limit: nothing comes after the block
            return to.expired
        self.assertIs(run_tasklets(body)[0], False)

    def test_no_stray_exception_when_woken_in_the_same_turn(self):
        # The value arrives and the timer fires before the receiver resumes:
        # the receive returns the value and nothing is raised later.
        ch = scheduler.channel()
        ch.preference = 0
        got = []

        def receiver():
            with carbon.timeout(0.05) as to:
                got.append(ch.receive())
            got.append(to.expired)
            carbon.sleep(0.05)   # a later blocking call: no stray TimeoutError
            scheduler.schedule()
            got.append('clean')

        t = scheduler.tasklet(receiver)()
        t.run()  # blocks in receive
        # Hand the value over, then keep the receiver from running until the
        # timer has fired too: busy-wait without switching.
        ch.send('v')
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            pass
        carbon.sleep(0)   # loop turn: the timer fires, the receiver runs
        t0 = time.monotonic()
        while t.alive and time.monotonic() - t0 < 2 * SLACK:
            carbon.sleep(0.01)
        self.assertEqual(got, ['v', False, 'clean'])

    def test_nested_inner_fires(self):
        def body():
            with carbon.timeout(1) as outer:
                with self.assertRaises(TimeoutError):
                    with carbon.timeout(0.03) as inner:
                        carbon.sleep(5)
                carbon.sleep(0.01)
            return inner.expired, outer.expired
        self.assertEqual(run_tasklets(body)[0], (True, False))

    def test_nested_outer_fires(self):
        def body():
            try:
                with carbon.timeout(0.03) as outer:
                    with carbon.timeout(5) as inner:
                        carbon.sleep(5)
            except TimeoutError:
                pass
            return inner.expired, outer.expired
        self.assertEqual(run_tasklets(body)[0], (False, True))

    def test_outer_not_lost_when_both_fire_in_one_turn(self):
        # Both timers expire before the loop turns again: the inner one
        # throws first; the outer finds an exception already pending and
        # tries again 1 ms later, after the program handled the inner one.
        out = []

        def body():
            try:
                with carbon.timeout(0.03) as outer:
                    while True:
                        inner = carbon.timeout(0.02)
                        try:
                            with inner:
                                carbon.sleep(5)
                        except TimeoutError:
                            if not inner.expired:
                                raise  # not ours: the outer limit
                            out.append('inner')
            except TimeoutError:
                out.append('outer')
            out.append(outer.expired)

        t = scheduler.tasklet(body)()
        t.run()  # blocks in the inner sleep
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:
            pass  # both deadlines pass without a loop turn
        t0 = time.monotonic()
        while t.alive and time.monotonic() - t0 < 2 * SLACK:
            carbon.sleep(0.001)
        self.assertFalse(t.alive)
        self.assertEqual(out[0], 'inner')
        self.assertEqual(out[-2:], ['outer', True])

    def test_kill_inside_the_block(self):
        finals = []

        def body():
            try:
                with carbon.timeout(0.05):
                    scheduler.channel().receive()
            finally:
                finals.append(1)
        t = scheduler.tasklet(body)()
        t.run()
        t.kill()
        self.assertEqual(finals, [1])
        carbon.sleep(0.1)  # the timer was stopped: nothing fires into a dead tasklet

    def test_cancel(self):
        def body():
            with carbon.timeout(0.02) as to:
                to.cancel()
                carbon.sleep(0.05)
            return to.expired
        self.assertIs(run_tasklets(body)[0], False)

    def test_many_timeouts(self):
        n = 1000

        def body(i):
            def go():
                try:
                    with carbon.timeout(0.05):
                        scheduler.channel().receive()
                except TimeoutError:
                    return True
            return go
        self.assertEqual(run_tasklets(*[body(i) for i in range(n)]), [True] * n)

    def test_in_a_worker(self):
        def work():
            try:
                with carbon.timeout(0.03):
                    scheduler.channel().receive()
            except TimeoutError:
                return 'timed out'
        w = carbon.spawn_worker(work)
        self.assertEqual(w.join(), 'timed out')

    def test_in_a_plain_thread(self):
        out = []

        def body():
            try:
                with carbon.timeout(0.03):
                    carbon.sleep(1)
            except TimeoutError:
                out.append('timed out')
        th = threading.Thread(target=body)
        th.start()
        while th.is_alive():
            carbon.sleep(0.005)
        self.assertEqual(out, ['timed out'])


if __name__ == '__main__':
    unittest.main()
