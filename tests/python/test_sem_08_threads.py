"""docs/design.md "Threads": threads."""
import threading
import time
import unittest

import scheduler as s
from spec_support import SchedulerTestCase, assert_example, assert_snippet


class Examples(unittest.TestCase):
    def test_e15_threads(self):
        assert_example(self, "e15_threads")

    def test_s16_xthread(self):
        assert_example(self, "s16_xthread")


def in_thread(fn, *args):
    """Run fn(*args) in a new thread; return its result (re-raise its exception)."""
    box = {}

    def body():
        try:
            box["r"] = fn(*args)
        except BaseException as e:  # noqa: B902
            box["e"] = e
    th = threading.Thread(target=body)
    th.start()
    th.join(30)
    assert not th.is_alive(), "thread hung"
    if "e" in box:
        raise box["e"]
    return box.get("r")


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.001)


class PerThread(SchedulerTestCase):
    def test_per_thread_manager_main_current(self):
        main_main = s.getmain()
        mgr = s.get_schedule_manager()
        n = s.get_number_of_active_schedule_managers()

        def other():
            return (s.getmain(), s.getcurrent(), s.get_schedule_manager(),
                    s.get_number_of_active_schedule_managers(), threading.get_ident(),
                    s.getruncount(), s.getmain().thread_id)
        m2, c2, mgr2, n2, tid, rc, mtid = in_thread(other)
        self.assertIsNot(m2, main_main)
        self.assertIs(m2, c2)
        self.assertIsNot(mgr2, mgr)
        self.assertEqual(n2, n + 1)
        self.assertEqual(rc, 1)
        self.assertEqual(mtid, tid)
        self.assertEqual(s.getmain().thread_id, threading.get_ident())
        self.assertIs(s.getmain(), main_main)

    def test_callbacks_and_mode_are_process_wide(self):
        def cb(*a):
            pass
        s.set_use_nested_tasklets(False)
        s.set_channel_callback(cb)
        try:
            got = in_thread(lambda: (s.get_use_nested_tasklets(), s.get_channel_callback(),
                                     s.set_schedule_callback(cb)))
            self.assertEqual(got, (False, cb, None))
            self.assertIs(s.get_schedule_callback(), cb)
        finally:
            s.set_schedule_callback(None)
            s.set_channel_callback(None)

    def test_switch_trap_is_per_thread(self):
        s.switch_trap(1)
        try:
            out = []

            def other():
                s.tasklet(out.append)("ran")
                s.run()
                return s.switch_trap(0)
            self.assertEqual(in_thread(other), 0)
            self.assertEqual(out, ["ran"])
        finally:
            s.switch_trap(-1)

    def test_thread_id(self):
        t = s.tasklet(lambda: None)
        self.assertEqual(t.thread_id, threading.get_ident())
        t2, tid = in_thread(lambda: (s.tasklet(lambda: None), threading.get_ident()))
        self.assertNotEqual(tid, threading.get_ident())


class CrossThread(SchedulerTestCase):
    """A tasklet of another (live) thread, operated on from this one."""

    def setUp(self):
        super().setUp()
        self.out = []
        self.go = threading.Event()
        self.ready = threading.Event()
        self.box = {}

        def other():
            self.box["tid"] = threading.get_ident()
            self.box["t"] = s.tasklet(self.out.append)("ran")
            self.box["u"] = s.tasklet(self.out.append)
            self.ready.set()
            self.go.wait(30)
            s.run()
            self.box["runcount"] = s.getruncount()
        self.th = threading.Thread(target=other)
        self.th.start()
        self.ready.wait(30)

    def tearDown(self):
        self.go.set()
        self.th.join(30)
        super().tearDown()

    def test_run_silently_does_nothing(self):
        t = self.box["t"]
        self.assertIsNone(t.run())
        self.assertTrue(t.scheduled)
        self.assertEqual(self.out, [])
        self.assertEqual(s.getruncount(), 1)

    def test_refused_operations(self):
        t = self.box["t"]
        for name, f in [("switch", t.switch), ("kill", t.kill), ("throw", lambda: t.throw(ValueError)),
                        ("bind", lambda: t.bind(print)), ("setup", t.setup)]:
            with self.assertRaises(RuntimeError) as cm:
                f()
            self.assertEqual(str(cm.exception),
                             "Failed to %s tasklet: Cannot %s tasklet from another thread" % (name, name))
        with self.assertRaises(RuntimeError) as cm:
            t.raise_exception(ValueError)
        self.assertIn("another thread", str(cm.exception))
        with self.assertRaises(RuntimeError) as cm:
            t.kill(pending=True)
        self.assertIn("another thread", str(cm.exception))
        with self.assertRaises(RuntimeError):
            self.box["u"].setup("x")
        self.assertTrue(t.alive and t.scheduled)
        self.go.set()
        self.th.join(30)
        self.assertEqual(self.out, ["ran"])

    def test_insert_remove_use_owner_queue(self):
        t = self.box["t"]
        self.assertIs(t.remove(), t)
        self.assertFalse(t.scheduled)
        self.assertTrue(t.paused)
        self.assertEqual(s.getruncount(), 1)
        self.assertIs(t.insert(), t)
        self.assertTrue(t.scheduled)
        self.assertEqual(s.getruncount(), 1)
        self.go.set()
        self.th.join(30)
        self.assertEqual(self.out, ["ran"])
        self.assertEqual(self.box["runcount"], 1)

    def test_removed_tasklet_not_run_by_owner(self):
        self.box["t"].remove()
        self.go.set()
        self.th.join(30)
        self.assertEqual(self.out, [])
        t = self.box["t"]
        # the thread ended: its manager killed the never-started tasklet
        self.assertFalse(t.alive)
        self.assertEqual(t.thread_id, -1)


class CrossThreadChannels(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)

    def test_other_thread_wakes_main_thread_tasklet(self):
        c = s.channel()
        out = []
        r = s.tasklet(lambda: out.append(("got", c.receive())))()
        r.run()
        x = s.tasklet(out.append)("x")
        self.assertEqual(c.balance, -1)

        def sender():
            c.send("v")  # preference -1: the receiver "runs next" in its own thread
            return s.getruncount()
        self.assertEqual(in_thread(sender), 1)
        self.assertEqual(out, [])
        self.assertEqual(c.balance, 0)
        self.assertTrue(r.scheduled)
        self.assertIs(s.getmain().next, r)  # behind this thread's current tasklet
        self.assertIs(r.next, x)
        self.assertEqual(s.getruncount(), 3)
        s.run()
        self.assertEqual(out, [("got", "v"), "x"])

    def test_other_thread_wakes_sender_pref0(self):
        c = s.channel()
        c.preference = 0
        out = []
        snd = s.tasklet(lambda: (c.send("v"), out.append("sender resumed")))()
        snd.run()
        x = s.tasklet(out.append)("x")
        self.assertEqual(in_thread(c.receive), "v")
        self.assertEqual(out, [])
        self.assertIs(x.next, snd)  # appended at the back of its own thread's queue
        s.run()
        self.assertEqual(out, ["x", "sender resumed"])

    def test_main_thread_wakes_other_thread_tasklet(self):
        c = s.channel()
        out = []
        done = threading.Event()
        ready = threading.Event()
        box = {}

        def other():
            box["t"] = s.tasklet(lambda: out.append(c.receive()))()
            s.run()
            ready.set()
            done.wait(30)
            box["rc"] = s.getruncount()
            s.run()
        th = threading.Thread(target=other)
        th.start()
        ready.wait(30)
        self.assertEqual(c.balance, -1)
        c.send("hello")  # preference -1, but the receiver belongs to the other thread
        self.assertEqual(out, [])
        self.assertEqual(s.getruncount(), 1)
        self.assertTrue(box["t"].scheduled)
        done.set()
        th.join(30)
        self.assertEqual(box["rc"], 2)
        self.assertEqual(out, ["hello"])


class ThreadEnd(SchedulerTestCase):
    def test_thread_end_kills_tasklets(self):
        c = s.channel()
        out = []
        n0 = s.get_number_of_active_schedule_managers()

        def blocked():
            try:
                c.receive()
            except s.TaskletExit:
                out.append("blocked got TaskletExit")
                raise

        def paused():
            try:
                s.schedule_remove()
            except s.TaskletExit:
                out.append("paused got TaskletExit")
                raise

        def yielded():
            try:
                s.schedule()
            except s.TaskletExit:
                out.append("queued got TaskletExit")
                raise

        def other():
            ts = {"blocked": s.tasklet(blocked)(), "paused": s.tasklet(paused)(),
                  "yielded": s.tasklet(yielded)()}
            s.run_n_tasklets(3)
            ts["never"] = s.tasklet(lambda: out.append("never runs"))()
            ts["unqueued"] = s.tasklet().bind(out.append, ("never runs",))
            return ts, threading.get_ident()
        ts, tid = in_thread(other)
        self.assertEqual(s.get_number_of_active_schedule_managers(), n0)
        self.assertEqual(sorted(out), ["blocked got TaskletExit", "paused got TaskletExit",
                                       "queued got TaskletExit"])
        self.assertEqual(c.balance, 0)
        for name, t in ts.items():
            self.assertEqual((name, t.alive, t.thread_id), (name, False, -1))
            self.assertFalse(t.scheduled or t.blocked)

    def test_held_manager_delays_cleanup(self):
        n0 = s.get_number_of_active_schedule_managers()
        out = []

        def other():
            t = s.tasklet(lambda: out.append("never runs"))()
            return s.get_schedule_manager(), t, threading.get_ident()
        mgr, t, tid = in_thread(other)
        self.assertEqual(s.get_number_of_active_schedule_managers(), n0 + 1)
        # issue 13 (divergence): the tasklets die at the thread's end even
        # when the manager is held; the manager itself lives on.
        self.assertFalse(t.alive)
        self.assertEqual(t.thread_id, tid)
        del mgr
        self.assertEqual(s.get_number_of_active_schedule_managers(), n0)
        self.assertFalse(t.alive)
        self.assertEqual(t.thread_id, -1)
        self.assertEqual(out, [])

    def test_thread_end_with_finished_tasklets(self):
        n0 = s.get_number_of_active_schedule_managers()

        def other():
            t = s.tasklet(lambda: None)()
            s.run()
            return t
        t = in_thread(other)
        self.assertFalse(t.alive)
        self.assertEqual(s.get_number_of_active_schedule_managers(), n0)

    def test_blocked_tasklet_of_ended_thread_in_subprocess(self):
        assert_snippet(self, """
            import scheduler as s, threading
            c = s.channel(); box = {}
            def rcv():
                try: c.receive()
                except s.TaskletExit: print("TaskletExit"); raise
            def other():
                box["t"] = s.tasklet(rcv)(); s.run()
            th = threading.Thread(target=other); th.start(); th.join()
            print(c.balance, box["t"].alive, box["t"].thread_id, s.get_number_of_active_schedule_managers())
        """, """
            TaskletExit
            0 False -1 0
        """)


if __name__ == "__main__":
    unittest.main()
