"""docs/run-order.md "Yielding, and the main tasklet": schedule(), schedule_remove(), yielding on the main tasklet."""
import unittest

import scheduler as s
from spec_support import SchedulerTestCase, assert_example


class Examples(unittest.TestCase):
    def test_e04_sched(self):
        assert_example(self, "e04_sched")

    def test_e17_mainsend(self):
        assert_example(self, "e17_mainsend")


class Schedule(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)
        self.out = []

    def log(self, x):
        self.out.append(x)

    def test_schedule_reappends_at_back(self):
        def y():
            self.log("y1")
            self.assertIsNone(s.schedule())
            self.log("y2")
        s.tasklet(y)()
        s.tasklet(self.log)("a")
        s.tasklet(self.log)("b")
        s.run()
        self.assertEqual(self.out, ["y1", "a", "b", "y2"])

    def test_schedule_remove_state(self):
        seen = []

        def r():
            self.assertIsNone(s.schedule_remove())
            seen.append("resumed")
        t = s.tasklet(r)()
        s.run()
        self.assertEqual((t.alive, t.scheduled, t.paused, t.blocked), (True, False, True, False))
        self.assertEqual(s.getruncount(), 1)
        t.insert()
        self.assertFalse(t.paused)
        s.run()
        self.assertEqual(seen, ["resumed"])
        self.assertFalse(t.alive)

    def test_main_schedule_runs_queue_until_empty(self):
        def y():
            self.log("y1")
            s.schedule()
            self.log("y2")
            s.tasklet(self.log)("late")
        s.tasklet(y)()
        s.tasklet(self.log)("x")
        self.assertIsNone(s.schedule())
        self.assertEqual(self.out, ["y1", "x", "y2", "late"])
        self.assertEqual(s.getruncount(), 1)
        m = s.getmain()
        self.assertTrue(m.scheduled)
        self.assertFalse(m.paused)

    def test_main_schedule_remove_runs_queue_and_main_stays_queued(self):
        s.tasklet(self.log)("q")
        self.assertIsNone(s.schedule_remove())
        self.assertEqual(self.out, ["q"])
        m = s.getmain()
        self.assertTrue(m.scheduled)
        self.assertTrue(m.alive)
        self.assertFalse(m.paused)
        self.assertEqual(s.getruncount(), 1)

    def test_main_schedule_with_empty_queue(self):
        self.assertIsNone(s.schedule())
        self.assertIsNone(s.schedule_remove())
        self.assertEqual(s.getruncount(), 1)

    def test_main_send_to_waiting_receiver_drains_queue(self):
        c = s.channel()
        r = s.tasklet(lambda: self.log(("got", c.receive())))()
        r.run()
        s.tasklet(self.log)("a")
        c.send(1)  # preference -1: receiver runs next; main yields = the queue is run
        self.assertEqual(self.out, [("got", 1), "a"])
        self.assertEqual(s.getruncount(), 1)

    def test_main_receive_from_waiting_sender_pref1_drains_queue(self):
        c = s.channel()
        c.preference = 1

        def snd():
            c.send("v")
            self.log("sender resumed")
        s.tasklet(snd)().run()
        s.tasklet(self.log)("a")
        self.assertEqual(c.receive(), "v")
        # preference 1: the sender runs next, main (the receiver) yields: the queue is run
        self.assertEqual(self.out, ["sender resumed", "a"])
        self.assertEqual(s.getruncount(), 1)

    def test_main_receive_from_waiting_sender_pref_default_continues(self):
        c = s.channel()

        def snd():
            c.send("v")
            self.log("sender resumed")
        s.tasklet(snd)().run()
        s.tasklet(self.log)("a")
        self.assertEqual(c.receive(), "v")
        self.assertEqual(self.out, [])
        self.assertEqual(s.getruncount(), 3)
        s.run()
        self.assertEqual(self.out, ["a", "sender resumed"])

    def test_flat_run_from_main_drains_queue(self):
        s.set_use_nested_tasklets(False)
        t = s.tasklet(self.log)("t")
        s.tasklet(self.log)("u")
        t.run()
        self.assertEqual(self.out, ["t", "u"])
        self.assertEqual(s.getruncount(), 1)

    def test_yield_in_nested_run_finishes_later(self):
        def yielder():
            self.log("y1")
            s.schedule()
            self.log("y2")

        def parent():
            y = s.tasklet(yielder)()
            y.run()
            self.log("parent: y alive=%s scheduled=%s" % (y.alive, y.scheduled))
        s.tasklet(parent)()
        s.run()
        self.assertEqual(self.out, ["y1", "parent: y alive=True scheduled=True", "y2"])

    def test_times_switched_to(self):
        def y():
            s.schedule()
            s.schedule()
        t = s.tasklet(y)()
        self.assertEqual(t.times_switched_to, 0)
        s.run()
        self.assertEqual(t.times_switched_to, 3)
        t.bind(None)
        self.assertEqual(t.times_switched_to, 0)


if __name__ == "__main__":
    unittest.main()
