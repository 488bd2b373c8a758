"""docs/run-order.md "Limited runs": limited runs (run_n_tasklets, RunWithTimeout) and statistics."""
import re
import time
import unittest

import scheduler as s
from spec_support import (SchedulerTestCase, assert_example, check_process, describe,
                          expected_output, run_example)


class Examples(unittest.TestCase):
    maxDiff = None

    def test_e25_runn_nested(self):
        assert_example(self, "e25_runn", "nested")

    def test_e25_runn_flat(self):
        assert_example(self, "e25_runn", "flat")

    def test_e26b_timeout(self):
        proc = run_example("e26b_timeout")
        check_process(self, proc)
        got = proc.stdout.splitlines()
        want = expected_output("e26b_timeout").splitlines()
        # The "slow N" lines and the "RunWithTimeout(25 ms)" line among them are timing
        # dependent: everything before and after them must match exactly.
        w0 = want.index("  slow 0")
        w1 = want.index("  slow 5") + 1
        g0 = got.index("  slow 0") if "  slow 0" in got else len(got)
        self.assertEqual(got[:g0], want[:w0], describe(proc))
        self.assertEqual(len(got), len(want), describe(proc))
        self.assertEqual(got[w1:], want[w1:], describe(proc))
        mid = got[w0:w1]
        rwt = [i for i, l in enumerate(mid) if l.startswith("RunWithTimeout(25 ms)")]
        self.assertEqual(len(rwt), 1, describe(proc))
        ran = rwt[0]
        m = re.fullmatch(r"RunWithTimeout\(25 ms\) -> \(None, (\d+), (\d+)\) left (\d+)", mid[ran])
        self.assertIsNotNone(m, mid[ran])
        completed, switched, left = map(int, m.groups())
        # section 10 rules: the deadline is seen at the latest before slow 3 starts (each
        # tasklet sleeps 10 ms), and at most two tasklets start after it: 3 to 5 run.
        self.assertTrue(3 <= ran <= 5, describe(proc))
        self.assertEqual(completed, ran)
        self.assertEqual(switched, 2 * completed)
        self.assertEqual(left + ran, 6)
        slow = mid[:ran] + mid[ran + 1:]
        self.assertEqual(slow, ["  slow %d" % i for i in range(6)], describe(proc))


class RunN(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        self.out = []

    def log(self, x):
        self.out.append(x)

    def test_exactly_n(self):
        for i in range(5):
            s.tasklet(self.log)(i)
        self.assertIsNone(s.run_n_tasklets(2))
        self.assertEqual(self.out, [0, 1])
        self.assertEqual(s.getruncount(), 4)
        s.run_n_tasklets(10)  # fewer if the queue empties
        self.assertEqual(self.out, [0, 1, 2, 3, 4])
        self.assertEqual(s.getruncount(), 1)
        s.run_n_tasklets(3)  # empty queue
        self.assertEqual(s.getruncount(), 1)

    def test_new_tasklets_count(self):
        def spawner():
            self.log("spawner")
            s.tasklet(self.log)("child")
        s.tasklet(spawner)()
        s.run_n_tasklets(2)
        self.assertEqual(self.out, ["spawner", "child"])

    def test_yielded_tasklet_counts_again(self):
        def y():
            self.log("y1")
            s.schedule()
            self.log("y2")
        s.tasklet(y)()
        s.run_n_tasklets(1)
        self.assertEqual(self.out, ["y1"])
        s.run_n_tasklets(1)
        self.assertEqual(self.out, ["y1", "y2"])

    def test_nested_loops_do_not_count(self):
        s.set_use_nested_tasklets(True)

        def nester():
            a = s.tasklet(self.log)("n1")
            s.tasklet(self.log)("n2")
            a.run()
        s.tasklet(nester)()
        s.tasklet(self.log)("t")
        s.run_n_tasklets(1)
        self.assertEqual(self.out, ["n1", "n2"])
        self.assertEqual(s.getruncount(), 2)
        s.run()

    def test_flat_mode_every_switch_from_main_counts(self):
        s.set_use_nested_tasklets(False)

        def nester():
            a = s.tasklet(self.log)("n1")
            s.tasklet(self.log)("n2")
            a.run()
            self.log("nester end")
        s.tasklet(nester)()
        s.tasklet(self.log)("t")
        s.run_n_tasklets(1)
        self.assertEqual(self.out, [])
        s.run_n_tasklets(1)
        self.assertEqual(self.out, ["n1"])
        s.run_n_tasklets(1)
        self.assertEqual(self.out, ["n1", "nester end"])
        s.run_n_tasklets(2)
        self.assertEqual(self.out, ["n1", "nester end", "t", "n2"])

    def test_argument_errors(self):
        s.tasklet(self.log)("x")
        with self.assertRaises(RuntimeError) as cm:
            s.run_n_tasklets(0)
        self.assertEqual(str(cm.exception), "Invalid number: Number of Tasklets to run must be greater than 0.")
        with self.assertRaises(TypeError):
            s.run_n_tasklets("1")
        with self.assertRaises(TypeError) as cm:
            s.run_n_tasklets()
        self.assertEqual(str(cm.exception), "number_of_tasklets() takes exactly 1 argument (0 given)")
        self.assertEqual(self.out, [])

    def test_negative_is_an_error(self):
        # issue 13 (divergence): the reference wrapped -1 to 4294967295
        for i in range(3):
            s.tasklet(self.log)(i)
        with self.assertRaises(ValueError):
            s.run_n_tasklets(-1)
        self.assertEqual(self.out, [])
        s.run()
        self.assertEqual(self.out, [0, 1, 2])

    def test_exception_stops_run(self):
        def bad():
            raise KeyError("x")
        s.tasklet(bad)()
        s.tasklet(self.log)("a")
        with self.assertRaises(KeyError):
            s.run_n_tasklets(2)
        self.assertEqual(self.out, [])
        self.assertEqual(s.getruncount(), 2)


class RunWithTimeout(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        import capitest
        self.ct = capitest
        s.set_use_nested_tasklets(True)

    def noop(self):
        pass

    def test_empty_queue(self):
        self.assertEqual(self.ct.rwt(10**9), (None, 0, 0))

    def test_runs_all_within_deadline(self):
        for _ in range(4):
            s.tasklet(self.noop)()
        self.assertEqual(self.ct.rwt(10**10), (None, 4, 8))
        self.assertEqual(s.getruncount(), 1)

    def test_zero_timeout_runs_two(self):
        for _ in range(5):
            s.tasklet(self.noop)()
        self.assertEqual(self.ct.rwt(0), (None, 2, 4))
        self.assertEqual(s.getruncount(), 4)
        self.assertEqual(self.ct.rwt(-5), (None, 2, 4))
        self.assertEqual(s.getruncount(), 2)

    def test_zero_timeout_single_tasklet(self):
        s.tasklet(self.noop)()
        self.assertEqual(self.ct.rwt(0), (None, 1, 2))

    def test_at_most_two_start_after_deadline(self):
        def slow():
            time.sleep(0.005)
        for _ in range(6):
            s.tasklet(slow)()
        # deadline 3 ms: the first tasklet starts before it, then two start after it
        self.assertEqual(self.ct.rwt(3_000_000), (None, 3, 6))
        self.assertEqual(s.getruncount(), 4)

    def test_stats_count_nested_and_yielded(self):
        def y():
            s.schedule()
        s.tasklet(y)()
        s.tasklet(self.noop)()
        self.assertEqual(self.ct.rwt(10**10), (None, 3, 6))

        def nest():
            a = s.tasklet(self.noop)()
            s.tasklet(self.noop)()
            a.run()
        s.tasklet(nest)()
        self.assertEqual(self.ct.rwt(10**10), (None, 3, 6))

    def test_stats_untouched_by_other_runs(self):
        for _ in range(2):
            s.tasklet(self.noop)()
        self.ct.rwt(10**10)
        self.assertEqual(self.ct.stats(), (2, 4))
        for _ in range(3):
            s.tasklet(self.noop)()
        s.run()
        s.tasklet(self.noop)()
        s.run_n_tasklets(1)
        s.tasklet(self.noop)()
        s.schedule()
        self.assertEqual(self.ct.stats(), (2, 4))
        self.ct.rwt(10**10)  # reset at the start
        self.assertEqual(self.ct.stats(), (0, 0))

    def test_exception_propagates(self):
        def bad():
            raise KeyError("x")
        s.tasklet(bad)()
        s.tasklet(self.noop)()
        with self.assertRaises(KeyError):
            self.ct.rwt(10**10)
        self.assertEqual(s.getruncount(), 2)


if __name__ == "__main__":
    unittest.main()
