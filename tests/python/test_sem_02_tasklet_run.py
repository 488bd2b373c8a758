"""docs/run-order.md "tasklet.run(): nested and flat mode": scheduler.run() vs tasklet.run(), nested vs flat mode."""
import unittest

import scheduler as s
from spec_support import SchedulerTestCase, assert_example, assert_snippet


class Examples(unittest.TestCase):
    def test_e02_nested(self):
        assert_example(self, "e02_nested", "nested")

    def test_e02_flat(self):
        assert_example(self, "e02_nested", "flat")

    def test_e03_trun_nested(self):
        assert_example(self, "e03_trun", "nested")

    def test_e03_trun_flat(self):
        assert_example(self, "e03_trun", "flat")

    def test_e29b_innerrun(self):
        assert_example(self, "e29b_innerrun")


class Mode(SchedulerTestCase):
    def test_default_is_nested(self):
        assert_snippet(self, """
            import scheduler as s
            print(s.get_use_nested_tasklets())
        """, "True")

    def test_set_get(self):
        self.assertIsNone(s.set_use_nested_tasklets(False))
        self.assertIs(s.get_use_nested_tasklets(), False)
        self.assertIsNone(s.set_use_nested_tasklets(1))
        self.assertIs(s.get_use_nested_tasklets(), True)
        with self.assertRaises(TypeError) as cm:
            s.set_use_nested_tasklets("yes")
        self.assertEqual(str(cm.exception), "'str' object cannot be interpreted as an integer")
        self.assertIs(s.get_use_nested_tasklets(), True)


class Nested(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)
        self.out = []

    def log(self, x):
        self.out.append(x)

    def test_run_inserts_unqueued_tasklet(self):
        t = s.tasklet().bind(self.log, ("t",))
        self.assertFalse(t.scheduled)
        s.tasklet(self.log)("q")
        self.assertIsNone(t.run())
        # from main, t was appended behind q: the nested loop runs t only
        self.assertEqual(self.out, ["t"])
        self.assertEqual(s.getruncount(), 2)
        s.run()
        self.assertEqual(self.out, ["t", "q"])

    def test_tasklets_in_front_untouched_and_appended_ones_not_run(self):
        def child(x):
            self.log(x)
            s.tasklet(self.log)("made-by-" + x)

        def parent():
            a = s.tasklet(self.log)("a")
            b = s.tasklet(child)("b")
            s.tasklet(self.log)("c")
            b.run()
            self.log("parent: a.scheduled=%s runcount=%d" % (a.scheduled, s.getruncount()))
        s.tasklet(parent)()
        s.run()
        self.assertEqual(self.out, ["b", "c", "parent: a.scheduled=True runcount=4",
                                    "a", "made-by-b"])

    def test_yield_returns_to_parent(self):
        def yielder():
            self.log("y1")
            s.schedule()
            self.log("y2")

        def parent():
            y = s.tasklet(yielder)()
            s.tasklet(self.log)("z")
            y.run()
            self.log("parent after run: y alive=%s scheduled=%s" % (y.alive, y.scheduled))
        s.tasklet(parent)()
        s.run()
        self.assertEqual(self.out, ["y1", "z", "parent after run: y alive=True scheduled=True",
                                    "y2"])

    def test_blocking_child_returns_to_parent(self):
        c = s.channel()

        def rcv():
            self.log("r1")
            self.log(c.receive())

        def parent():
            r = s.tasklet(rcv)()
            r.run()
            self.log("parent: r blocked=%s" % r.blocked)
            c.send("v")
            self.log("parent end")
        s.tasklet(parent)()
        s.run()
        # preference -1: the receiver runs next, the parent is re-queued behind it
        self.assertEqual(self.out, ["r1", "parent: r blocked=True", "v", "parent end"])

    def test_child_exception_propagates_to_parent(self):
        def bad():
            raise KeyError("k")

        def parent():
            t = s.tasklet(bad)()
            try:
                t.run()
            except KeyError as e:
                self.log("parent caught %r alive=%s" % (e, t.alive))
        s.tasklet(parent)()
        s.run()
        self.assertEqual(self.out, ["parent caught KeyError('k') alive=False"])

    def test_parent_of_nested_tasklet_is_resumed(self):
        # the caller of t.run() is t's parent: it is switched back to (not re-queued)
        def child():
            self.log("child: parent scheduled=%s" % p.scheduled)

        def parent():
            s.tasklet(child)().run()
            self.log("parent resumed")
        p = s.tasklet(parent)()
        s.tasklet(self.log)("next")
        s.run()
        self.assertEqual(self.out, ["child: parent scheduled=True", "parent resumed", "next"])

    def test_scheduler_run_inside_tasklet_runs_tasklets_behind_current(self):
        def runner():
            s.tasklet(self.log)("r-made")
            s.run()
            self.log("runner end; runcount %d" % s.getruncount())
        s.tasklet(runner)()
        s.tasklet(self.log)("behind")
        s.run()
        self.assertEqual(self.out, ["behind", "r-made", "runner end; runcount 2"])


class Flat(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(False)
        self.out = []

    def log(self, x):
        self.out.append(x)

    def test_run_from_tasklet_front_plus_one(self):
        def parent():
            x = s.tasklet(self.log)("x")
            t = s.tasklet(self.log)("t")
            s.tasklet(self.log)("y")
            t.run()
            self.log("parent resumed; x.scheduled=%s" % x.scheduled)
        s.tasklet(parent)()
        s.tasklet(self.log)("w")
        s.run()
        self.assertEqual(self.out, ["t", "parent resumed; x.scheduled=True", "w", "x", "y"])

    def test_run_unqueued_from_tasklet(self):
        def parent():
            t = s.tasklet().bind(self.log, ("t",))
            t.run()
            self.log("parent resumed")
        s.tasklet(parent)()
        s.tasklet(self.log)("w")
        s.run()
        self.assertEqual(self.out, ["t", "parent resumed", "w"])

    def test_run_from_main_drains_queue(self):
        s.tasklet(self.log)("a")
        t = s.tasklet(self.log)("t")
        s.tasklet(self.log)("b")
        t.run()
        self.assertEqual(self.out, ["t", "a", "b"])
        self.assertEqual(s.getruncount(), 1)

    def test_yield_in_flat_run(self):
        def yielder():
            self.log("y1")
            s.schedule()
            self.log("y2")

        def parent():
            y = s.tasklet(yielder)()
            s.tasklet(self.log)("z")
            y.run()
            self.log("parent resumed")
        s.tasklet(parent)()
        s.run()
        # y runs, yields (re-queued at the back), the parent resumes, then the queue order
        self.assertEqual(self.out, ["y1", "parent resumed", "z", "y2"])


if __name__ == "__main__":
    unittest.main()
