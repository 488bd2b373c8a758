"""docs/run-order.md "Callbacks": schedule and channel callbacks."""
import sys
import unittest

import scheduler as s
from spec_support import SchedulerTestCase, assert_example


class Examples(unittest.TestCase):
    def test_s23_callbacks(self):
        assert_example(self, "s23_callbacks")


class Unraisable:
    """Collects sys.unraisablehook calls."""

    def __enter__(self):
        self.calls = []
        self.old = sys.unraisablehook
        sys.unraisablehook = lambda u: self.calls.append((u.exc_type, u.exc_value, u.object))
        return self

    def __exit__(self, *a):
        sys.unraisablehook = self.old


class Callbacks(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)
        s.set_schedule_callback(None)
        s.set_channel_callback(None)
        self.names = {id(s.getmain()): "main"}

    def nm(self, t):
        return self.names.get(id(t), "?")

    def name(self, t, n):
        self.names[id(t)] = n
        return t

    def test_set_get(self):
        def cb(a, b):
            pass

        def cb2(a, b):
            pass
        self.assertIsNone(s.get_schedule_callback())
        self.assertIsNone(s.set_schedule_callback(cb))
        self.assertIs(s.get_schedule_callback(), cb)
        self.assertIs(s.set_schedule_callback(cb2), cb)
        self.assertIs(s.set_schedule_callback(None), cb2)
        self.assertIsNone(s.get_schedule_callback())
        self.assertIsNone(s.set_channel_callback(cb))
        self.assertIs(s.get_channel_callback(), cb)
        self.assertIs(s.set_channel_callback(None), cb)
        self.assertIsNone(s.get_channel_callback())
        for setter in (s.set_schedule_callback, s.set_channel_callback):
            with self.assertRaises(TypeError) as cm:
                setter(42)
            self.assertEqual(str(cm.exception), "parameter must be callable or None.")
        self.assertIsNone(s.get_schedule_callback())
        self.assertIsNone(s.get_channel_callback())

    def test_schedule_callback_called_before_switch(self):
        log = []

        def cb(prev, nxt):
            log.append((self.nm(prev), self.nm(nxt), self.nm(s.getcurrent())))
        t = self.name(s.tasklet(lambda: log.append("body"))(), "t")
        s.set_schedule_callback(cb)
        s.run()
        s.set_schedule_callback(None)
        self.assertEqual(log, [("main", "t", "main"), "body", ("t", "main", "t")])
        self.assertFalse(t.alive)

    def test_schedule_callback_nested_run(self):
        log = []

        def cb(prev, nxt):
            log.append("%s->%s" % (self.nm(prev), self.nm(nxt)))

        def child():
            log.append("child")
            s.schedule()
            log.append("child again")

        def parent():
            c = self.name(s.tasklet(child)(), "c")
            c.run()
            log.append("parent resumed")
        self.name(s.tasklet(parent)(), "p")
        s.set_schedule_callback(cb)
        s.run()
        s.set_schedule_callback(None)
        self.assertEqual(log, ["main->p", "p->c", "child", "c->p", "parent resumed", "p->main",
                               "main->c", "child again", "c->main"])

    def test_schedule_callback_on_channel_blocking(self):
        log = []
        c = s.channel()

        def cb(prev, nxt):
            log.append("%s->%s" % (self.nm(prev), self.nm(nxt)))
        r = self.name(s.tasklet(lambda: log.append(c.receive()))(), "r")
        s.set_schedule_callback(cb)
        s.run()
        log.append("send")
        c.send("v")
        s.set_schedule_callback(None)
        self.assertEqual(log, ["main->r", "r->main", "send", "main->r", "v", "r->main"])
        self.assertFalse(r.alive)

    def test_channel_callback_arguments(self):
        calls = []
        c = s.channel()

        def ccb(ch, task, sending, will_block):
            calls.append((ch is c, self.nm(task), sending, will_block, self.nm(s.getcurrent())))
            self.assertIs(type(sending), bool)
            self.assertIs(type(will_block), bool)
        self.name(s.tasklet(c.send)(1), "snd")
        s.set_channel_callback(ccb)
        s.run()
        self.assertEqual(c.receive(), 1)
        s.run()
        def rcv():
            try:
                c.receive()
            except KeyError:
                pass
        self.name(s.tasklet(rcv)(), "rcv")
        s.run()
        c.send_exception(KeyError)
        s.set_channel_callback(None)
        self.assertEqual(calls, [(True, "snd", True, True, "snd"),
                                 (True, "main", False, False, "main"),
                                 (True, "rcv", False, True, "rcv"),
                                 (True, "main", True, False, "main")])

    def test_channel_callback_on_failing_operations(self):
        calls = []
        s.set_channel_callback(lambda ch, t, snd, wb: calls.append((self.nm(t), snd, wb)))
        c = s.channel()
        with self.assertRaises(RuntimeError):
            c.receive()               # deadlock
        c.close()
        with self.assertRaises(ValueError):
            c.send(1)                 # closed
        c.open()
        with s.block_trap():
            with self.assertRaises(RuntimeError):
                c.send(1)             # block_trap
        s.set_channel_callback(None)
        self.assertEqual(calls, [("main", False, True), ("main", True, True), ("main", True, True)])

    def test_raising_schedule_callback_reported_and_run_carries_on(self):
        # Reference leaves the exception pending; we report it (PyErr_WriteUnraisable) and carry on.
        out = []

        def cb(prev, nxt):
            raise KeyError("in schedule callback")
        s.tasklet(out.append)("a")
        s.tasklet(out.append)("b")
        with Unraisable() as u:
            s.set_schedule_callback(cb)
            try:
                s.run()
            finally:
                s.set_schedule_callback(None)
        self.assertEqual(out, ["a", "b"])
        self.assertEqual(s.getruncount(), 1)
        self.assertEqual(len(u.calls), 4)  # main->a, a->main, main->b, b->main
        for exc_type, exc, obj in u.calls:
            self.assertIs(exc_type, KeyError)
            self.assertIs(obj, cb)

    def test_raising_channel_callback_reported_and_operation_carries_on(self):
        # Reference leaves the exception pending; we report it (PyErr_WriteUnraisable) and carry on.
        c = s.channel()
        got = []

        def ccb(ch, t, sending, wb):
            raise ValueError("in channel callback")
        with Unraisable() as u:
            s.set_channel_callback(ccb)
            try:
                s.tasklet(lambda: got.append(c.receive()))()
                s.run()
                self.assertEqual(c.balance, -1)
                c.send("v")
            finally:
                s.set_channel_callback(None)
        self.assertEqual(got, ["v"])
        self.assertEqual(c.balance, 0)
        self.assertEqual([(e, o) for e, _, o in u.calls], [(ValueError, ccb), (ValueError, ccb)])

    def test_callback_may_use_scheduler_queries(self):
        seen = []

        def cb(prev, nxt):
            seen.append((s.getruncount(), prev.is_main, nxt.is_main))
        s.tasklet(lambda: None)()
        s.set_schedule_callback(cb)
        s.run()
        s.set_schedule_callback(None)
        self.assertEqual(seen, [(2, True, False), (2, False, True)])


if __name__ == "__main__":
    unittest.main()
