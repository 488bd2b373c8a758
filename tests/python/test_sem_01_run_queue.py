"""docs/run-order.md "The queue": the run queue."""
import gc
import sys
import unittest
import weakref

import scheduler as s
from spec_support import SchedulerTestCase, assert_example


class Examples(unittest.TestCase):
    def test_e01_order(self):
        assert_example(self, "e01_order")


class RunQueue(SchedulerTestCase):
    def test_fifo_and_counts(self):
        out = []
        ts = [s.tasklet(out.append)(i) for i in range(4)]
        self.assertEqual(s.getruncount(), 5)
        self.assertEqual(s.calculateruncount(), 5)
        self.assertIs(s.getmain().next, ts[0])
        self.assertIs(ts[0].prev, s.getmain())
        self.assertIs(ts[1].prev, ts[0])
        self.assertIs(ts[2].next, ts[3])
        self.assertTrue(all(t.scheduled for t in ts))
        self.assertIsNone(s.run())
        self.assertEqual(out, [0, 1, 2, 3])
        self.assertEqual(s.getruncount(), 1)
        self.assertEqual(s.calculateruncount(), 1)

    def test_setup_and_insert_append_at_back(self):
        out = []
        a = s.tasklet(out.append)("a")
        b = s.tasklet(out.append)
        self.assertIs(b.setup("b"), b)
        c = s.tasklet().bind(out.append, ("c",))
        self.assertFalse(c.scheduled)
        self.assertTrue(c.paused)
        self.assertEqual(s.getruncount(), 3)
        self.assertIs(c.insert(), c)
        self.assertTrue(c.scheduled)
        self.assertFalse(c.paused)
        self.assertIs(c.insert(), c)  # already scheduled: no-op
        self.assertEqual(s.getruncount(), 4)
        d = s.tasklet(out.append)("d")
        s.run()
        self.assertEqual(out, ["a", "b", "c", "d"])
        for t in (a, b, c, d):
            self.assertFalse(t.alive)

    def test_running_tasklet_stays_in_queue(self):
        seen = {}

        def f():
            me = s.getcurrent()
            seen["scheduled"] = me.scheduled
            seen["prev_is_main"] = me.prev is s.getmain()
            seen["runcount"] = s.getruncount()
            seen["calc"] = s.calculateruncount()
            seen["is_current"] = me.is_current
        t = s.tasklet(f)()
        s.tasklet(lambda: None)()
        s.run()
        self.assertEqual(seen, {"scheduled": True, "prev_is_main": True, "runcount": 3,
                                "calc": 3, "is_current": True})
        self.assertFalse(t.scheduled)

    def test_tasklets_created_or_requeued_during_run_also_run(self):
        out = []

        def spawner(n):
            out.append("spawn%d" % n)
            if n < 3:
                s.tasklet(spawner)(n + 1)

        def yielder():
            out.append("y1")
            s.schedule()
            out.append("y2")
            s.schedule()
            out.append("y3")
        s.tasklet(spawner)(0)
        s.tasklet(yielder)()
        s.run()
        self.assertEqual(out, ["spawn0", "y1", "spawn1", "y2", "spawn2", "y3", "spawn3"])
        self.assertEqual(s.getruncount(), 1)

    def test_reinserted_tasklet_runs_again(self):
        out = []

        def r():
            out.append("r1")
            s.schedule_remove()
            out.append("r2")
        t = s.tasklet(r)()
        s.run()
        self.assertEqual(out, ["r1"])
        self.assertEqual(s.getruncount(), 1)
        t.insert()
        self.assertEqual(s.getruncount(), 2)
        s.run()
        self.assertEqual(out, ["r1", "r2"])

    def test_finished_tasklet_dropped_and_reference_released(self):
        def f():
            pass
        t = s.tasklet(f)
        r0 = sys.getrefcount(t)
        t()
        self.assertEqual(sys.getrefcount(t) - r0, 1)
        s.run()
        self.assertEqual(sys.getrefcount(t), r0)
        self.assertFalse(t.alive)
        self.assertFalse(t.scheduled)
        self.assertIsNone(t.next)
        self.assertIsNone(t.prev)

    def test_queue_keeps_tasklet_alive(self):
        w = weakref.ref(s.tasklet(lambda: None)())
        gc.collect()
        self.assertIsNotNone(w())
        s.run()
        gc.collect()
        self.assertIsNone(w())

    def test_remove(self):
        out = []
        a = s.tasklet(out.append)("a")
        b = s.tasklet(out.append)("b")
        self.assertIs(a.remove(), a)
        self.assertFalse(a.scheduled)
        self.assertTrue(a.paused)
        self.assertTrue(a.alive)
        self.assertEqual(s.getruncount(), 2)
        self.assertIs(s.getmain().next, b)
        self.assertIs(a.remove(), a)  # not scheduled: no error
        s.run()
        self.assertEqual(out, ["b"])
        a.insert()
        s.run()
        self.assertEqual(out, ["b", "a"])

    def test_insert_errors(self):
        t = s.tasklet(lambda: None)()
        s.run()
        with self.assertRaises(RuntimeError) as cm:
            t.insert()
        self.assertEqual(str(cm.exception), "Failed to insert tasklet: Cannot insert dead tasklet")
        c = s.channel()
        b = s.tasklet(c.receive)()
        s.run()
        with self.assertRaises(RuntimeError) as cm:
            b.insert()
        self.assertEqual(str(cm.exception), "Failed to insert tasklet: Cannot insert blocked tasklet")
        self.assertEqual(c.balance, -1)
        self.assertEqual(s.getruncount(), 1)
        c.send(None)
        self.assertFalse(b.alive)

    def test_get_thread_info(self):
        main, cur, n = s.get_thread_info()
        self.assertIs(main, s.getmain())
        self.assertIs(cur, s.getcurrent())
        self.assertEqual(n, s.getruncount() + 1)  # reference quirk, kept
        s.tasklet(lambda: None)()
        self.assertEqual(s.get_thread_info()[2], 3)
        seen = []
        t = s.tasklet(lambda: seen.append(s.get_thread_info()))()
        s.run()
        self.assertEqual(seen, [(s.getmain(), t, 3)])

    def test_main_heads_queue(self):
        m = s.getmain()
        self.assertTrue(m.scheduled)
        self.assertTrue(m.alive)
        self.assertTrue(m.is_main)
        self.assertIsNone(m.next)
        t = s.tasklet(lambda: None)()
        self.assertIs(m.next, t)
        s.run()
        self.assertIsNone(m.next)
        self.assertTrue(m.scheduled)


if __name__ == "__main__":
    unittest.main()
