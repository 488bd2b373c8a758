"""docs/run-order.md "tasklet.switch()": switch()."""
import unittest

import scheduler as s
from spec_support import SchedulerTestCase, assert_example, assert_snippet


class Examples(unittest.TestCase):
    def test_e20_switch(self):
        assert_example(self, "e20_switch")

    def test_e22_switch3(self):
        assert_example(self, "e22_switch3")


class Switch(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)
        self.out = []

    def log(self, x):
        self.out.append(x)

    def test_unqueued_target_runs_alone_caller_continues(self):
        m = s.getmain()

        def target():
            self.log("target: main paused=%s scheduled=%s" % (m.paused, m.scheduled))
        s.tasklet(self.log)("queued")
        t = s.tasklet().bind(target, ())
        self.assertIsNone(t.switch())
        self.assertEqual(self.out, ["target: main paused=True scheduled=True"])
        self.assertFalse(m.paused)
        self.assertFalse(t.alive)
        self.assertEqual(s.getruncount(), 2)
        s.run()
        self.assertEqual(self.out[-1], "queued")

    def test_unqueued_target_from_tasklet(self):
        def target(src):
            self.log("target: src paused=%s" % src.paused)

        def source():
            me = s.getcurrent()
            s.tasklet().bind(target, (me,)).switch()
            self.log("source: paused=%s scheduled=%s" % (me.paused, me.scheduled))
        s.tasklet(source)()
        s.tasklet(self.log)("other")
        s.run()
        self.assertEqual(self.out, ["target: src paused=True", "source: paused=False scheduled=True",
                                    "other"])

    def test_queued_target_from_main_runs_whole_queue(self):
        s.tasklet(self.log)("a")
        t = s.tasklet(self.log)("t")
        s.tasklet(self.log)("b")
        self.assertIsNone(t.switch())
        # nested run from t to the tail, then main yields: the rest of the queue runs
        self.assertEqual(self.out, ["t", "b", "a"])
        self.assertEqual(s.getruncount(), 1)

    def test_queued_target_from_tasklet_leaves_caller_paused(self):
        box = {}

        def source():
            self.log("source start")
            box["t"].switch()
            self.log("source resumed")
        src = s.tasklet(source)()
        box["t"] = s.tasklet(self.log)("T")
        s.tasklet(self.log)("D")
        s.run()
        self.assertEqual(self.out, ["source start", "T", "D"])
        self.assertTrue(src.alive)
        self.assertTrue(src.paused)
        self.assertFalse(src.scheduled)
        self.assertFalse(src.blocked)
        src.insert()
        s.run()
        self.assertEqual(self.out[-1], "source resumed")
        self.assertFalse(src.alive)

    def test_paused_caller_resumed_by_switch(self):
        box = {}

        def source():
            box["t"].switch()
            self.log("source resumed")

        def target():
            self.log("T")
        src = s.tasklet(source)()
        box["t"] = s.tasklet(target)()
        s.run()
        self.assertTrue(src.paused)
        src.switch()
        self.assertEqual(self.out, ["T", "source resumed"])
        self.assertFalse(src.alive)

    def test_schedule_remove_returns_to_switcher(self):
        def two():
            self.log("a")
            s.schedule_remove()
            self.log("b")
        t = s.tasklet().bind(two, ())
        t.switch()
        self.assertEqual(self.out, ["a"])
        self.assertTrue(t.paused and t.alive and not t.scheduled)
        t.switch()
        self.assertEqual(self.out, ["a", "b"])
        self.assertFalse(t.alive)

    def test_unqueued_target_that_yields(self):
        def y():
            self.log("y1")
            s.schedule()
            self.log("y2")
        s.tasklet(self.log)("q")
        t = s.tasklet().bind(y, ())
        t.switch()
        # t yielded (re-queued at the back): the caller simply continues
        self.assertEqual(self.out, ["y1"])
        self.assertTrue(t.scheduled)
        self.assertFalse(s.getmain().paused)
        self.assertEqual(s.getruncount(), 3)
        s.run()
        self.assertEqual(self.out, ["y1", "q", "y2"])

    def test_switch_errors(self):
        t = s.tasklet(lambda: None)()
        s.run()
        with self.assertRaises(RuntimeError) as cm:
            t.switch()
        self.assertEqual(str(cm.exception), "You cannot run an unbound(dead) tasklet")
        c = s.channel()
        b = s.tasklet(c.receive)()
        s.run()
        with self.assertRaises(RuntimeError) as cm:
            b.switch()
        self.assertEqual(str(cm.exception), "Cannot switch to a tasklet that is blocked")
        self.assertTrue(b.blocked)
        self.assertEqual(c.balance, -1)
        c.send(None)

    def test_switch_to_current_is_noop(self):
        # Reference bug (segfault): switch() to the current tasklet is a no-op returning None.
        assert_snippet(self, """
            import scheduler as s
            print("main:", s.getcurrent().switch(), s.getruncount())
            def f():
                print("in tasklet:", s.getcurrent().switch())
                print("still running")
            s.tasklet(f)(); s.tasklet(print)("next")
            s.run(); print("end", s.getruncount())
        """, """
            main: None 1
            in tasklet: None
            still running
            next
            end 1
        """)


if __name__ == "__main__":
    unittest.main()
