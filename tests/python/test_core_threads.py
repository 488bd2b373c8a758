"""Tasklets and OS threads (switching.md section 4, item 8): each thread has
its own main tasklet and scheduler; a tasklet only ever runs on the thread
that created it; a thread's end kills its tasklets; a tasklet whose last
reference is dropped on another thread is killed later on its own thread."""
import contextvars
import sys
import threading
import time
import unittest

import scheduler as s
from core_support import CoreTestCase

var = contextvars.ContextVar("var", default=None)


def start(target, *args):
    th = threading.Thread(target=target, args=args)
    th.start()
    return th


class ConcurrentThreadTests(CoreTestCase):

    def test_cross_thread_transfers_exactly_once(self):
        # Producers and consumers on four threads share one channel; every
        # thread runs its own queue whenever it gets the GIL back. Each message
        # is received exactly once, whatever the interleaving.
        threads, per_thread, per_tasklet = 4, 6, 300
        ch = s.channel()
        received = []
        errors = []

        def thread_main(ti):
            def producer(pi):
                for k in range(per_tasklet):
                    ch.send((ti, pi, k))

            def consumer():
                for _ in range(per_tasklet):
                    received.append(ch.receive())

            try:
                ts = [s.tasklet(producer)(pi) for pi in range(per_thread)]
                ts += [s.tasklet(consumer)() for _ in range(per_thread)]
                deadline = time.monotonic() + 60
                while any(t.alive for t in ts) and time.monotonic() < deadline:
                    s.run()
                    time.sleep(0.0001)  # let the other threads take the GIL
                if any(t.alive for t in ts):
                    errors.append("thread %d timed out" % ti)
            except BaseException as e:  # reported below, not lost in the thread
                errors.append(repr(e))

        workers = [start(thread_main, i) for i in range(threads)]
        for th in workers:
            th.join()
        self.assertEqual(errors, [])
        expected = {(ti, pi, k) for ti in range(threads) for pi in range(per_thread)
                    for k in range(per_tasklet)}
        self.assertEqual(len(received), len(expected))
        self.assertEqual(set(received), expected)
        self.assertEqual(ch.balance, 0)

    def test_tasklets_in_several_threads_at_once(self):
        # Four threads, each with ping-ponging tasklets that release the GIL
        # while they are current, so the threads interleave mid-tasklet.
        results = {}
        errors = []

        def thread_main(tid):
            try:
                me = threading.get_ident()
                main = s.getmain()
                c = s.channel()
                out = []

                def pinger(n):
                    var.set(("ping", tid))
                    for i in range(n):
                        time.sleep(0)
                        c.send((tid, i))
                        assert var.get() == ("ping", tid)
                        assert s.getcurrent() is not main

                def ponger(n):
                    var.set(("pong", tid))
                    for _ in range(n):
                        try:
                            raise KeyError(tid)
                        except KeyError:
                            v = c.receive()
                            time.sleep(0)
                            assert sys.exc_info()[1].args == (tid,)
                        assert threading.get_ident() == me
                        assert var.get() == ("pong", tid)
                        out.append(v)

                def recurser(depth):
                    if depth:
                        return recurser(depth - 1) + 1
                    time.sleep(0)
                    s.schedule()
                    return 0

                ts = [s.tasklet(pinger)(200), s.tasklet(ponger)(200),
                      s.tasklet(recurser)(50), s.tasklet(recurser)(5)]
                s.run()
                assert all(not t.alive for t in ts)
                assert all(t.thread_id == me for t in ts)
                assert s.getmain() is main and s.getcurrent() is main
                results[tid] = (out == [(tid, i) for i in range(200)], main)
            except BaseException as e:
                errors.append((tid, repr(e)))

        threads = [start(thread_main, i) for i in range(4)]
        thread_main("main")
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        self.assertEqual({k: v[0] for k, v in results.items()},
                         {0: True, 1: True, 2: True, 3: True, "main": True})
        mains = [v[1] for v in results.values()]
        self.assertEqual(len(set(map(id, mains))), 5)

    def test_cross_thread_operations_refused(self):
        box = {}
        ready, go = threading.Event(), threading.Event()
        log = []

        def owner():
            def victim():
                try:
                    s.schedule_remove()
                    log.append(("resumed", threading.get_ident() == box["tid"]))
                except BaseException as e:
                    log.append(("victim got", type(e).__name__))
            box["tid"] = threading.get_ident()
            box["t"] = s.tasklet(victim)()
            s.run()
            ready.set()
            go.wait()
            box["t"].insert()
            s.run()

        th = start(owner)
        ready.wait()
        t = box["t"]
        for name, op in [("switch", t.switch), ("throw", lambda: t.throw(ValueError)),
                         ("kill", t.kill), ("raise_exception", lambda: t.raise_exception(ValueError))]:
            with self.assertRaises(RuntimeError, msg=name) as cm:
                op()
            self.assertIn("another thread", str(cm.exception))
        self.assertIsNone(t.run())  # silently does nothing
        self.assertTrue(t.alive)
        self.assertFalse(t.scheduled)
        go.set()
        th.join()
        self.assertEqual(log, [("resumed", True)])


class CrossThreadLifetimeTests(CoreTestCase):

    def test_last_reference_dropped_in_other_thread(self):
        box = {}
        handed_over, dropped, done = threading.Event(), threading.Event(), threading.Event()
        log = []

        def owner():
            def victim():
                try:
                    s.schedule_remove()
                finally:
                    log.append(("finally on owner thread", threading.get_ident() == box["tid"]))
            box["tid"] = threading.get_ident()
            box["t"] = s.tasklet(victim)()
            s.run()
            handed_over.set()
            dropped.wait()
            # the owner keeps scheduling; the deferred kill runs here
            deadline = time.monotonic() + 10
            while not log and time.monotonic() < deadline:
                s.tasklet(lambda: None)()
                s.run()
                time.sleep(0.001)
            done.set()

        th = start(owner)
        handed_over.wait()
        t = box.pop("t")
        del t  # last reference, dropped on the main thread
        self.assertEqual(log, [])  # never run here
        dropped.set()
        done.wait(15)
        th.join()
        self.assertEqual(log, [("finally on owner thread", True)])

    def test_last_reference_dropped_then_owner_thread_ends(self):
        box = {}
        handed_over, dropped = threading.Event(), threading.Event()
        log = []

        def owner():
            def victim():
                try:
                    s.schedule_remove()
                finally:
                    log.append(("finally on owner thread", threading.get_ident() == box["tid"]))
            box["tid"] = threading.get_ident()
            box["t"] = s.tasklet(victim)()
            s.run()
            handed_over.set()
            dropped.wait()  # and returns without scheduling again

        th = start(owner)
        handed_over.wait()
        del box["t"]
        dropped.set()
        th.join()
        self.assertEqual(log, [("finally on owner thread", True)])

    def test_thread_end_kills_its_tasklets(self):
        log = []
        box = {}

        def owner():
            c = s.channel()
            me = threading.get_ident()

            def blocked():
                try:
                    c.receive()
                finally:
                    log.append(("blocked", threading.get_ident() == me))

            def removed():
                try:
                    s.schedule_remove()
                except s.TaskletExit:
                    log.append(("removed got TaskletExit", threading.get_ident() == me))
                    raise

            def child():
                try:
                    s.schedule_remove()
                finally:
                    log.append(("child", threading.get_ident() == me))

            def parent():
                try:
                    s.tasklet(child)().run()
                    s.schedule_remove()
                finally:
                    log.append(("parent", threading.get_ident() == me))

            box["ts"] = [s.tasklet(blocked)(), s.tasklet(removed)(), s.tasklet(parent)()]
            s.run()
            box["never"] = s.tasklet(lambda: log.append("never started ran"))()
            box["channel"] = c

        th = start(owner)
        th.join()
        self.assertEqual(sorted(log), sorted([("blocked", True), ("removed got TaskletExit", True),
                                              ("child", True), ("parent", True)]))
        for t in box["ts"] + [box["never"]]:
            self.assertFalse(t.alive)
            self.assertEqual(t.thread_id, -1)
            self.assertIsNone(t.frame)
        self.assertEqual(box["channel"].balance, 0)
        # the dead tasklets are harmless here
        with self.assertRaises(RuntimeError):
            box["ts"][1].insert()

    def test_many_threads_with_suspended_tasklets_end(self):
        count = {"finally": 0}
        lock = threading.Lock()

        def owner():
            def victim(depth):
                if depth:
                    return victim(depth - 1)
                try:
                    s.schedule_remove()
                finally:
                    with lock:
                        count["finally"] += 1
            for i in range(20):
                s.tasklet(victim)(i)
            s.run()

        for _ in range(3):
            threads = [start(owner) for _ in range(4)]
            for th in threads:
                th.join()
        self.assertEqual(count["finally"], 3 * 4 * 20)

    def test_daemon_thread_with_tasklets_at_exit(self):
        # Daemon threads whose non-main tasklets are sleeping (GIL released)
        # when the interpreter finalizes: they must be stopped without a crash.
        proc = self.run_child("""
            import threading, time, scheduler as s
            started = threading.Barrier(5)
            def daemon():
                c = s.channel()
                def sleeper(d):
                    if d:
                        return sleeper(d - 1)
                    while True:
                        time.sleep(0.0001)
                        s.schedule()
                def pinger():
                    while True:
                        c.send(1)
                        time.sleep(0.0005)
                def ponger():
                    while True:
                        c.receive()
                for i in range(4):
                    s.tasklet(sleeper)(i * 10)
                s.tasklet(pinger)()
                s.tasklet(ponger)()
                started.wait()
                s.run()
            for _ in range(4):
                threading.Thread(target=daemon, daemon=True).start()
            started.wait()
            time.sleep(0.03)
            print("main exits")
        """)
        self.assertEqual(proc.stdout, "main exits\n")

    def test_non_daemon_thread_with_blocked_tasklets_at_exit(self):
        proc = self.run_child("""
            import sys, threading, scheduler as s
            def worker():
                c = s.channel()
                def blocked():
                    try:
                        c.receive()
                    finally:
                        sys.stdout.write("finally in thread\\n")
                s.tasklet(blocked)()
                s.run()
            threading.Thread(target=worker).start()
            sys.stdout.write("main exits\\n")
        """)
        self.assertEqual(sorted(proc.stdout.splitlines()), ["finally in thread", "main exits"])


if __name__ == "__main__":
    unittest.main()
