"""Preemption: run(timeout, ...) as Stackless, atomic, tasklet.name (docs/scheduler.md).

Timeouts count ticks of 10 ns (scheduler.md): run(100_000) interrupts a
tasklet that has run about 1 ms without switching."""
import os
import sys
import threading
import time
import unittest

import scheduler

MS = 100_000  # ticks per millisecond
# Under valgrind (~50x slower) the watchdog cannot keep time-based promises.
UNDER_VALGRIND = "vgpreload" in os.environ.get("LD_PRELOAD", "")


def spin(state):
    """Loops for ever, counting; its locals survive an interruption."""
    i = 0
    while True:
        i += 1
        state["i"] = i


def busy(seconds):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        pass


class Base(unittest.TestCase):
    def tearDown(self):
        for t in scheduler.get_thread_tasklets():
            if not t.is_main:
                t.kill()
        scheduler.run()


class RunTimeout(Base):
    def test_returns_interrupted_tasklet_paused(self):
        state = {}
        t = scheduler.tasklet(spin)(state)
        t0 = time.monotonic()
        victim = scheduler.run(2 * MS)
        self.assertIs(victim, t)
        self.assertGreaterEqual(time.monotonic() - t0, 0.0015)
        self.assertTrue(t.alive)
        self.assertTrue(t.paused)
        self.assertFalse(t.scheduled)
        self.assertEqual(scheduler.getruncount(), 1)
        # Resumes exactly where it was: the same frame, the count goes on.
        frame = t.frame
        self.assertEqual(frame.f_code.co_name, "spin")
        i = state["i"]
        self.assertGreater(i, 0)
        t.insert()
        self.assertIs(scheduler.run(2 * MS), t)
        self.assertGreater(state["i"], i)
        self.assertIs(t.frame, frame)

    def test_other_tasklets_run_first_and_run_stops_at_interruption(self):
        log = []

        def nice(n):
            for i in range(n):
                log.append(i)
                scheduler.schedule()

        scheduler.tasklet(nice)(3)
        t = scheduler.tasklet(spin)({})
        self.assertIs(scheduler.run(MS), t)
        # nice ran once before spin, then run() returned at the interruption.
        self.assertEqual(log, [0])
        self.assertEqual(scheduler.getruncount(), 2)
        self.assertIsNone(scheduler.run())  # no timeout: cooperative, nice finishes
        self.assertEqual(log, [0, 1, 2])

    def test_no_interruption_returns_none(self):
        done = []
        scheduler.tasklet(lambda: done.append(1))()
        self.assertIsNone(scheduler.run(10 * MS))
        self.assertEqual(done, [1])
        self.assertIsNone(scheduler.run(timeout=0))
        self.assertIsNone(scheduler.run())

    def test_switching_tasklets_are_not_interrupted_without_totaltimeout(self):
        def hop(n):
            for _ in range(n):
                busy(0.0002)
                scheduler.schedule()

        scheduler.tasklet(hop)(30)
        scheduler.tasklet(hop)(30)
        self.assertIsNone(scheduler.run(2 * MS))

    def test_totaltimeout(self):
        def hop():
            while True:
                busy(0.0002)
                scheduler.schedule()

        a = scheduler.tasklet(hop)()
        b = scheduler.tasklet(hop)()
        t0 = time.monotonic()
        victim = scheduler.run(5 * MS, totaltimeout=True)
        self.assertIn(victim, (a, b))
        self.assertGreaterEqual(time.monotonic() - t0, 0.004)
        self.assertTrue(victim.paused)

    @unittest.skipIf(UNDER_VALGRIND, "timing: the watchdog cannot keep up with valgrind's slowdown")
    def test_soft_stops_at_next_switch(self):
        log = []

        def slow_then_yield():
            busy(0.01)
            log.append("yield")
            scheduler.schedule()
            log.append("resumed")

        t = scheduler.tasklet(slow_then_yield)()
        self.assertIsNone(scheduler.run(MS, soft=True))
        self.assertEqual(log, ["yield"])
        self.assertTrue(t.scheduled)  # not taken off the queue
        scheduler.run()
        self.assertEqual(log, ["yield", "resumed"])

    def test_keywords_and_ignore_nesting(self):
        t = scheduler.tasklet(spin)({})
        self.assertIs(scheduler.run(timeout=MS, threadblock=False, soft=False,
                                    ignore_nesting=True, totaltimeout=False), t)

    def test_interrupted_inside_nested_call(self):
        def inner(state):
            spin(state)

        def outer(state):
            return [inner(state) for _ in range(1)]

        t = scheduler.tasklet(outer)({})
        self.assertIs(scheduler.run(MS), t)
        names = []
        f = t.frame
        while f is not None:
            names.append(f.f_code.co_name)
            f = f.f_back
        self.assertEqual(names[:2], ["spin", "inner"])

    def test_kill_interrupted_runs_finally(self):
        log = []

        def guarded():
            try:
                while True:
                    pass
            finally:
                log.append("finally")

        t = scheduler.tasklet(guarded)()
        self.assertIs(scheduler.run(MS), t)
        t.kill()
        self.assertEqual(log, ["finally"])
        self.assertFalse(t.alive)

    def test_not_from_a_tasklet(self):
        err = []

        def f():
            try:
                scheduler.run(MS)
            except RuntimeError as e:
                err.append(str(e))

        scheduler.tasklet(f)()
        scheduler.run()
        self.assertEqual(len(err), 1)
        self.assertIn("main tasklet", err[0])

    def test_bad_arguments(self):
        with self.assertRaises(TypeError):
            scheduler.run("x")
        with self.assertRaises(TypeError):
            scheduler.run(1, bogus=True)

    def test_program_trace_function_is_kept(self):
        seen = []

        def tracer(frame, event, arg):
            return None

        def traced():
            sys.settrace(tracer)
            try:
                while True:
                    if len(seen) > 100000:
                        break
                    seen.append(1)
            finally:
                seen.append(sys.gettrace())
                sys.settrace(None)

        t = scheduler.tasklet(traced)()
        self.assertIs(scheduler.run(MS), t)
        t.kill()
        self.assertIs(seen[-1], tracer)
        self.assertIsNone(sys.gettrace())

    def test_on_a_worker_thread(self):
        out = []

        def worker():
            state = {}
            t = scheduler.tasklet(spin)(state)
            t.name = "worker spin"
            v = scheduler.run(MS)
            out.append((v is t, v.name, v.paused))
            i = state["i"]
            v.insert()
            out.append(scheduler.run(MS) is t and state["i"] > i)
            v.kill()

        th = threading.Thread(target=worker)
        th.start()
        th.join(30)
        self.assertFalse(th.is_alive())
        self.assertEqual(out, [(True, "worker spin", True), True])


class Interrupt(Base):
    """The runtime's interruption of a thread (carbon_shutdown uses it for a
    worker busy in a CPU loop): TaskletExit in its running code, main tasklet
    included."""

    def test_cpu_bound_thread_main_tasklet(self):
        out = []
        started = threading.Event()

        def worker():
            scheduler.getcurrent()  # gives the thread its manager
            started.set()
            try:
                while True:
                    pass
            except scheduler.TaskletExit:
                out.append("TaskletExit")

        th = threading.Thread(target=worker)
        th.start()
        started.wait(10)
        scheduler._interrupt(th.ident)
        th.join(30)
        self.assertFalse(th.is_alive())
        self.assertEqual(out, ["TaskletExit"])

    def test_unknown_thread(self):
        with self.assertRaises(ValueError):
            scheduler._interrupt(1)


class Atomic(Base):
    def test_set_atomic_returns_old(self):
        cur = scheduler.getcurrent()
        self.assertFalse(cur.atomic)
        self.assertFalse(cur.set_atomic(True))
        self.assertTrue(cur.atomic)
        self.assertTrue(cur.set_atomic(False))
        self.assertFalse(cur.atomic)
        with scheduler.atomic():
            self.assertTrue(cur.atomic)
            with scheduler.atomic():
                self.assertTrue(cur.atomic)
            self.assertTrue(cur.atomic)
        self.assertFalse(cur.atomic)

    def test_no_preemption_inside(self):
        log = []

        def careful():
            with scheduler.atomic():
                busy(0.01)
                log.append("block done")
            while True:
                pass

        t = scheduler.tasklet(careful)()
        self.assertIs(scheduler.run(MS), t)
        self.assertEqual(log, ["block done"])
        self.assertFalse(t.atomic)

    def test_atomic_for_ever_is_never_interrupted(self):
        def stays():
            scheduler.getcurrent().set_atomic(True)
            busy(0.01)

        t = scheduler.tasklet(stays)()
        self.assertIsNone(scheduler.run(MS))
        self.assertFalse(t.alive)


class Name(Base):
    def test_default_is_module_qualname(self):
        class Goblin:
            def think(self):
                pass

        t = scheduler.tasklet(Goblin().think)
        self.assertEqual(t.name, __name__ + ".Name.test_default_is_module_qualname.<locals>.Goblin.think")
        t2 = scheduler.tasklet(spin)
        self.assertEqual(t2.name, __name__ + ".spin")

    def test_set_and_reset(self):
        t = scheduler.tasklet(spin)
        t.name = "goblin 17"
        self.assertEqual(t.name, "goblin 17")
        t.name = None
        self.assertEqual(t.name, __name__ + ".spin")
        with self.assertRaises(TypeError):
            t.name = 17
        self.assertEqual(scheduler.getcurrent().name, "<main tasklet>")

    def test_tick_ns_is_zero_outside_timed_runs(self):
        t = scheduler.tasklet(spin)({})
        self.assertIs(scheduler.run(MS), t)
        self.assertEqual(t.tick_ns, 0)


if __name__ == "__main__":
    unittest.main()
