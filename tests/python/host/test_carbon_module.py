"""The `carbon` module in the carbon host: time, frames, bad arguments.

Run by the carbon host only (`carbon test_carbon_module.py`): there is no
carbon_tick here, so the main tasklet blocks in its own loop and frames follow
the frame clock (60 Hz by default).
"""
import math
import time
import unittest

import carbon
import scheduler


class Arguments(unittest.TestCase):
    def test_sleep_bad_arguments(self):
        for bad in ("1", None, [1], 1j):
            with self.assertRaises(TypeError, msg=repr(bad)):
                carbon.sleep(bad)
        for bad in (-1, -0.001, math.nan, math.inf, 1e12):
            with self.assertRaises(ValueError, msg=repr(bad)):
                carbon.sleep(bad)
        with self.assertRaises(TypeError):
            carbon.sleep()

    def test_wait_frames_bad_arguments(self):
        for bad in (1.5, "2", None):
            with self.assertRaises(TypeError, msg=repr(bad)):
                carbon.wait_frames(bad)
        with self.assertRaises(ValueError):
            carbon.wait_frames(-1)
        with self.assertRaises(TypeError):
            carbon.wait_frames(1, 2)
        carbon.wait_frames(0)  # returns at once

    def test_spawn_worker_bad_arguments(self):
        with self.assertRaises(TypeError):
            carbon.spawn_worker()
        with self.assertRaises(TypeError):
            carbon.spawn_worker(42)
        with self.assertRaises(TypeError):
            carbon.Worker()

    def test_queries(self):
        self.assertIsInstance(carbon.frame(), int)
        a = carbon.now()
        b = carbon.now()
        self.assertIsInstance(a, float)
        self.assertLessEqual(a, b)
        self.assertAlmostEqual(a, time.monotonic(), delta=0.5)
        self.assertIs(carbon.TaskletExit, scheduler.TaskletExit)


class Sleep(unittest.TestCase):
    def test_main_tasklet_sleeps(self):
        for s in (0, 0.001, 0.03):
            t0 = time.monotonic_ns()
            carbon.sleep(s)
            self.assertGreaterEqual(time.monotonic_ns() - t0, s * 1e9)

    def test_tasklets_sleep_concurrently_in_order(self):
        woke = []

        def sleeper(s):
            t0 = time.monotonic_ns()
            carbon.sleep(s)
            woke.append((s, time.monotonic_ns() - t0))

        durations = [0.05, 0.01, 0.03, 0.02, 0.04, 0.01]
        for s in durations:
            scheduler.tasklet(sleeper)(s)
        t0 = time.monotonic()
        carbon.sleep(0.06)
        # The main tasklet may wake in the same turn as the last sleepers,
        # before they run: give them their turn.
        while len(woke) < len(durations):
            carbon.sleep(0.005)
        self.assertLess(time.monotonic() - t0, 2.0)  # they slept side by side
        self.assertEqual([s for s, _ in woke], sorted(durations))
        for s, took in woke:
            self.assertGreaterEqual(took, s * 1e9)

    def test_sleep_blocks_only_the_calling_tasklet(self):
        ticks = []

        def busy():
            for i in range(5):
                ticks.append(i)
                scheduler.schedule()

        def sleepy():
            carbon.sleep(0.02)
            ticks.append("woke")

        scheduler.tasklet(sleepy)()
        scheduler.tasklet(busy)()
        while "woke" not in ticks:
            carbon.sleep(0.005)
        self.assertEqual(ticks, [0, 1, 2, 3, 4, "woke"])

    def test_kill_sleeping_tasklet_runs_finally(self):
        log = []

        def sleepy():
            try:
                carbon.sleep(100)
            finally:
                log.append("finally")

        t = scheduler.tasklet(sleepy)()
        scheduler.run()
        self.assertTrue(t.alive)
        t.kill()
        self.assertEqual(log, ["finally"])
        self.assertFalse(t.alive)
        carbon.sleep(0.001)  # the loop forgot it

    def test_throw_into_sleeper(self):
        caught = []

        def sleepy():
            try:
                carbon.sleep(100)
            except KeyError as e:
                caught.append(e.args)

        t = scheduler.tasklet(sleepy)()
        scheduler.run()
        t.throw(KeyError("x"))
        self.assertEqual(caught, [("x",)])

    def test_sleeping_tasklet_without_references_is_kept(self):
        import gc
        import weakref
        done = []

        def sleepy():
            carbon.sleep(0.01)
            done.append(1)

        w = weakref.ref(scheduler.tasklet(sleepy)())
        scheduler.run()
        gc.collect()
        self.assertIsNotNone(w())
        while not done:
            carbon.sleep(0.005)
        self.assertEqual(done, [1])

    def test_block_trap(self):
        def trapped():
            scheduler.getcurrent().block_trap = True
            with self.assertRaises(RuntimeError):
                carbon.sleep(0.01)
            out.append("ok")

        out = []
        scheduler.tasklet(trapped)()
        scheduler.run()
        self.assertEqual(out, ["ok"])

    def test_switch_trap(self):
        old = scheduler.switch_trap(1)
        try:
            with self.assertRaises(RuntimeError):
                carbon.sleep(0.001)
        finally:
            scheduler.switch_trap(-1)
        self.assertEqual(old, 0)


class Frames(unittest.TestCase):
    def test_wait_frames_counts_frames(self):
        seen = []

        def waiter(n):
            f0 = carbon.frame()
            carbon.wait_frames(n)
            seen.append((n, carbon.frame() - f0))

        for n in (3, 1, 2):
            scheduler.tasklet(waiter)(n)
        f0 = carbon.frame()
        carbon.wait_frames(4)
        self.assertEqual(carbon.frame() - f0, 4)
        self.assertEqual(sorted(seen), [(1, 1), (2, 2), (3, 3)])

    def test_frame_clock_without_ticks(self):
        # No host ticks here: frames follow the 60 Hz clock, without spinning.
        cpu0, t0 = time.process_time(), time.monotonic()
        carbon.wait_frames(12)
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        self.assertGreater(wall, 0.15)
        self.assertLess(wall, 3.0)
        self.assertLess(cpu, 0.1)

    def test_main_deadlock_still_detected(self):
        with self.assertRaisesRegex(RuntimeError, "Deadlock"):
            scheduler.channel().receive()


if __name__ == "__main__":
    unittest.main()
