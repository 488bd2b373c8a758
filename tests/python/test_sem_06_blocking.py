"""docs/run-order.md "The main tasklet blocking": blocking the main tasklet, block_trap, switch_trap."""
import unittest

import scheduler as s
from spec_support import SchedulerTestCase, assert_example

DEADLOCK = "Deadlock: the last runnable tasklet cannot be blocked."
BLOCK_TRAP = "Channel cannot block on main tasklet with block_trap set true"
SWITCH_TRAP = "Cannot schedule when scheduler switch_trap level is non-zero"


class Examples(unittest.TestCase):
    def test_e06_deadlock(self):
        assert_example(self, "e06_deadlock")

    def test_e07_traps(self):
        out = assert_example(self, "e07_traps")
        # Reference bug (SystemError for switch_trap() without argument): we raise RuntimeError.
        self.assertEqual(out.splitlines()[-1],
                         "RuntimeError Scheduler_switch_trap requires a delta argument.")


class MainDeadlock(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)
        self.out = []

    def test_empty_queue_raises_at_once(self):
        c = s.channel()
        for op in (c.receive, lambda: c.send(1)):
            with self.assertRaises(RuntimeError) as cm:
                op()
            self.assertEqual(str(cm.exception), DEADLOCK)
            self.assertEqual(c.balance, 0)
            self.assertIsNone(c.queue)
            m = s.getmain()
            self.assertFalse(m.blocked)
            self.assertTrue(m.scheduled)

    def test_runs_queue_then_deadlock_restores_balance(self):
        c = s.channel()
        s.tasklet(self.out.append)("a")
        s.tasklet(self.out.append)("b")
        with self.assertRaises(RuntimeError) as cm:
            c.send("x")
        self.assertEqual(str(cm.exception), DEADLOCK)
        self.assertEqual(self.out, ["a", "b"])
        self.assertEqual(c.balance, 0)
        self.assertIsNone(c.queue)
        self.assertEqual(s.getruncount(), 1)
        self.assertFalse(s.getmain().blocked)

    def test_deadlock_with_other_blocked_tasklets(self):
        c = s.channel()
        other = s.channel()
        t = s.tasklet(other.receive)()
        with self.assertRaises(RuntimeError) as cm:
            c.receive()
        self.assertEqual(str(cm.exception), DEADLOCK)
        self.assertTrue(t.blocked)
        self.assertEqual((c.balance, other.balance), (0, -1))

    def test_run_stops_right_after_unblocker_receive(self):
        c = s.channel()
        s.tasklet(self.out.append)("c")
        s.tasklet(lambda: (self.out.append("sender"), c.send("hi")))()
        s.tasklet(self.out.append)("d")
        self.assertEqual(c.receive(), "hi")
        self.assertEqual(self.out, ["c", "sender"])
        self.assertEqual(s.getruncount(), 3)  # main, the sender (re-queued), d
        s.run()
        self.assertEqual(self.out, ["c", "sender", "d"])

    def test_run_stops_right_after_unblocker_send(self):
        c = s.channel()
        got = []
        s.tasklet(lambda: got.append(c.receive()))()
        s.tasklet(self.out.append)("d")
        self.assertIsNone(c.send("v"))
        self.assertEqual(got, ["v"])
        self.assertEqual(self.out, [])
        self.assertEqual(c.balance, 0)
        s.run()
        self.assertEqual(self.out, ["d"])

    def test_main_can_block_repeatedly(self):
        c = s.channel()

        def producer():
            for i in range(3):
                c.send(i)
        s.tasklet(producer)()
        self.assertEqual([c.receive() for _ in range(3)], [0, 1, 2])
        s.run()


class BlockTrap(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)

    def test_tasklet_block_trap(self):
        c = s.channel()
        res = []

        def f():
            try:
                c.send(1)
            except RuntimeError as e:
                res.append(str(e))
            res.append((s.getcurrent().blocked, c.balance))
        t = s.tasklet(f)()
        t.block_trap = True
        s.run()
        self.assertEqual(res, [BLOCK_TRAP, (False, 0)])

    def test_main_block_trap(self):
        c = s.channel()
        s.tasklet(lambda: None)()
        with s.block_trap():
            self.assertTrue(s.getcurrent().block_trap)
            for op in (c.receive, lambda: c.send(1)):
                with self.assertRaises(RuntimeError) as cm:
                    op()
                self.assertEqual(str(cm.exception), BLOCK_TRAP)
        self.assertFalse(s.getcurrent().block_trap)
        self.assertEqual(c.balance, 0)
        self.assertEqual(s.getruncount(), 2)  # nothing ran

    def test_block_trap_context_manager_restores(self):
        m = s.getcurrent()
        m.block_trap = True
        with s.block_trap(False):
            self.assertFalse(m.block_trap)
        self.assertTrue(m.block_trap)
        m.block_trap = False

    def test_non_blocking_operations_allowed(self):
        c = s.channel()
        got = []
        s.tasklet(lambda: got.append(c.receive()))().run()
        s.tasklet(c.send)("from sender")
        with s.block_trap():
            c.preference = 0
            c.send("x")        # a receiver is waiting
            s.run()            # the sender blocks (no block_trap on it)
            self.assertEqual(c.receive(), "from sender")  # a sender is waiting
        s.run()
        self.assertEqual(got, ["x"])

    def test_block_trap_in_tasklet_non_blocking(self):
        c = s.channel()
        res = []

        def f():
            res.append(c.receive())
        s.tasklet(c.send)("v")
        s.run()
        t = s.tasklet(f)()
        t.block_trap = True
        s.run()
        self.assertEqual(res, ["v"])

    def test_block_trap_setter_requires_bool(self):
        t = s.tasklet(lambda: None)
        for v in (1, 0, None, "yes"):
            with self.assertRaises(RuntimeError) as cm:
                t.block_trap = v
            self.assertEqual(str(cm.exception), "Blocktrap expects a boolean")
        self.assertIs(t.block_trap, False)
        t.block_trap = True
        self.assertIs(t.block_trap, True)


class SwitchTrap(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)

    def test_levels(self):
        self.assertEqual(s.switch_trap(0), 0)
        self.assertEqual(s.switch_trap(1), 0)
        self.assertEqual(s.switch_trap(2), 1)
        self.assertEqual(s.switch_trap(-3), 3)
        self.assertEqual(s.switch_trap(0), 0)

    def test_every_switch_raises_and_queue_untouched(self):
        out = []
        t = s.tasklet(out.append)("t")
        u = s.tasklet().bind(out.append, ("u",))
        s.switch_trap(1)
        try:
            for op in (s.run, s.schedule, s.schedule_remove, t.run, t.switch, u.switch, u.run,
                       lambda: s.run_n_tasklets(1)):
                with self.assertRaises(RuntimeError) as cm:
                    op()
                self.assertEqual(str(cm.exception), SWITCH_TRAP)
            self.assertEqual(out, [])
            self.assertTrue(t.scheduled)
            self.assertEqual(s.getruncount(), 2)
        finally:
            s.switch_trap(-1)
        s.run()
        self.assertEqual(out, ["t"])

    def test_switch_trap_inside_tasklet(self):
        res = []

        def f():
            s.switch_trap(1)
            try:
                s.schedule()
            except RuntimeError as e:
                res.append(str(e))
            res.append(s.switch_trap(-1))
        s.tasklet(f)()
        s.run()
        self.assertEqual(res, [SWITCH_TRAP, 1])

    def test_channel_block_under_switch_trap(self):
        c = s.channel()
        res = []

        def f():
            s.switch_trap(1)
            try:
                c.receive()
            except RuntimeError as e:
                res.append(str(e))
            s.switch_trap(-1)
            res.append(c.balance)
        s.tasklet(f)()
        s.run()
        self.assertEqual(res, [SWITCH_TRAP, 0])

    def test_switch_trap_argument_errors(self):
        # Reference bug (SystemError): we raise RuntimeError for a missing/non-int delta.
        for args in ((), ("1",)):
            with self.assertRaises(RuntimeError) as cm:
                s.switch_trap(*args)
            self.assertEqual(str(cm.exception), "Scheduler_switch_trap requires a delta argument.")
        self.assertEqual(s.switch_trap(0), 0)

    def test_enable_softswitch(self):
        self.assertIs(s.enable_softswitch(None), False)
        with self.assertRaises(RuntimeError) as cm:
            s.enable_softswitch(True)
        self.assertEqual(str(cm.exception), "enable_soft_switch is only implemented for legacy "
                                            "reasons, the value cannot be changed.")
        # Reference bug (SystemError without argument): we raise TypeError.
        with self.assertRaises(TypeError):
            s.enable_softswitch()


if __name__ == "__main__":
    unittest.main()
