"""Rules shared with Stackless and the reference (docs/run-order.md,
docs/stackless-divergence.md): kill of a tasklet that never ran, switch()
pausing its caller, bind(None) on a paused tasklet, setting up twice, and
uninitialised subclasses. (A kill or throw beating a completed transfer is in
test_channel_delivery.py.)"""
import gc
import unittest
import weakref

import scheduler as s


class Base(unittest.TestCase):
    def setUp(self):
        self.nested = s.get_use_nested_tasklets()
        s.set_use_nested_tasklets(True)
        self.log = []

    def tearDown(self):
        for t in s.get_thread_tasklets()[1:]:
            if t.alive and not t.is_current:
                t.kill()
        s.run()
        s.set_use_nested_tasklets(self.nested)
        self.assertEqual(s.getruncount(), 1)


class KillNeverRun(Base):
    """1. kill() of a tasklet that never ran runs as its run() would."""

    def make_three(self):
        return [s.tasklet(self.log.append)(name) for name in ("t1", "t2", "t3")]

    def test_nested_runs_the_tasklets_behind_it(self):
        t1, t2, t3 = self.make_three()
        t1.kill()
        self.assertFalse(t1.alive)
        self.assertEqual(self.log, ["t2", "t3"])  # t1 died without running
        self.assertEqual(s.getruncount(), 1)
        self.assertFalse(t2.alive)
        self.assertFalse(t3.alive)

    def test_nested_kill_of_the_middle_one(self):
        t1, t2, t3 = self.make_three()
        t2.kill()
        self.assertEqual(self.log, ["t3"])  # only what is behind t2
        self.assertTrue(t1.scheduled)
        self.assertEqual(s.getruncount(), 2)
        s.run()
        self.assertEqual(self.log, ["t3", "t1"])

    def test_flat_from_main_runs_the_queue(self):
        s.set_use_nested_tasklets(False)
        t1, t2, t3 = self.make_three()
        t1.kill()
        self.assertFalse(t1.alive)
        self.assertEqual(self.log, ["t2", "t3"])
        self.assertEqual(s.getruncount(), 1)

    def test_pending_kill_only_kills(self):
        t1, t2, t3 = self.make_three()
        t1.kill(pending=True)
        self.assertFalse(t1.alive)
        self.assertEqual(self.log, [])
        self.assertEqual(s.getruncount(), 3)
        s.run()
        self.assertEqual(self.log, ["t2", "t3"])

    def test_throw_taskletexit_is_the_same(self):
        t1, t2, t3 = self.make_three()
        t1.throw(s.TaskletExit)
        self.assertFalse(t1.alive)
        self.assertEqual(self.log, ["t2", "t3"])

    def test_unqueued_bound_tasklet_dies_alone(self):
        t = s.tasklet().bind(self.log.append, ("never",))
        s.tasklet(self.log.append)("queued")
        t.kill()
        self.assertFalse(t.alive)
        self.assertEqual(self.log, [])
        self.assertEqual(s.getruncount(), 2)

    def test_kill_from_a_tasklet(self):
        def killer():
            t1.kill()
            self.log.append("killer back")
        k = s.tasklet(killer)()
        t1, t2, t3 = self.make_three()
        s.run()
        self.assertEqual(self.log, ["t2", "t3", "killer back"])
        self.assertFalse(k.alive)

    def test_under_switch_trap_raises_like_run(self):
        t1, t2, t3 = self.make_three()
        s.switch_trap(1)
        try:
            with self.assertRaises(RuntimeError):
                t1.kill()
        finally:
            s.switch_trap(-1)
        self.assertTrue(t1.alive)


class SwitchPausesCaller(Base):
    """3. switch() pauses the caller: main too."""

    def test_main_paused_while_queued_target_runs(self):
        m = s.getmain()

        def target():
            self.log.append(("paused", m.paused))
            m.insert()
            self.log.append(("after insert", m.paused))
        t = s.tasklet(target)()
        t.switch()
        self.assertEqual(self.log, [("paused", True), ("after insert", False)])
        self.assertFalse(m.paused)

    def test_main_paused_while_unqueued_target_runs(self):
        m = s.getmain()
        t = s.tasklet().bind(lambda: self.log.append(m.paused), ())
        t.switch()
        self.assertEqual(self.log, [True])
        self.assertFalse(m.paused)

    def test_tasklet_caller_paused_and_off_the_queue(self):
        def target(src):
            self.log.append(("src", src.paused, src.scheduled))

        def source():
            tt = s.tasklet(target)(s.getcurrent())
            tt.switch()
            self.log.append("source resumed")
        src = s.tasklet(source)()
        s.run()
        # Nobody resumed it: the source waits, paused.
        self.assertEqual(self.log, [("src", True, False)])
        self.assertTrue(src.paused)
        self.assertTrue(src.alive)
        src.insert()
        s.run()
        self.assertEqual(self.log[-1], "source resumed")

    def test_tasklet_caller_inserted_by_target_resumes(self):
        def target(src):
            src.insert()
            self.log.append(("inserted", src.paused, src.scheduled))

        def source():
            s.tasklet(target)(s.getcurrent()).switch()
            self.log.append("source resumed")
        s.tasklet(source)()
        s.run()
        self.assertEqual(self.log, [("inserted", False, True), "source resumed"])

    def test_exception_from_switched_tasklet_reaches_caller(self):
        def bad():
            raise KeyError("x")

        def source():
            try:
                s.tasklet(bad)().switch()
            except KeyError:
                self.log.append(("caught", s.getcurrent().scheduled, s.getcurrent().paused))
        s.tasklet(source)()
        s.run()
        self.assertEqual(self.log, [("caught", True, False)])


class BindNonePaused(Base):
    """4. bind(None) on a started, paused tasklet."""

    def test_unbind_paused_tasklet(self):
        def body():
            try:
                s.schedule_remove()
                self.log.append("resumed")
            finally:
                self.log.append("finally")
        t = s.tasklet(body)()
        s.run()
        self.assertTrue(t.paused and t.alive and not t.scheduled and not t.blocked)
        used = s.get_stack_stats()["thread_bound"]  # tasklets bound to a stack region
        self.assertIs(t.bind(None), t)
        self.assertFalse(t.alive)
        self.assertFalse(t.paused)
        self.assertEqual(self.log, ["finally"])  # unwound: its finally blocks ran
        self.assertEqual(s.get_stack_stats()["thread_bound"], used - 1)
        self.assertIsNone(t.frame)
        wr = weakref.ref(t)
        del t
        self.assertIsNone(wr())

    def test_unbound_tasklet_can_be_bound_again(self):
        t = s.tasklet(s.schedule_remove)()
        s.run()
        t.bind(None)
        t.bind(self.log.append)
        t.setup("again")
        s.run()
        self.assertEqual(self.log, ["again"])

    def test_current_and_scheduled_still_refused(self):
        def body():
            with self.assertRaisesRegex(RuntimeError, "current"):
                s.getcurrent().bind(None)
            self.log.append("checked")
        s.tasklet(body)()
        s.run()
        self.assertEqual(self.log, ["checked"])
        t = s.tasklet(s.schedule_remove)()
        s.run()
        t.insert()  # started and queued
        with self.assertRaisesRegex(RuntimeError, "scheduled"):
            t.bind(None)

    def test_main_refused(self):
        with self.assertRaisesRegex(RuntimeError, "current tasklet"):
            s.getmain().bind(None)

        def body():
            with self.assertRaisesRegex(RuntimeError, "main tasklet"):
                s.getmain().bind(None)
            self.log.append("checked")
        s.tasklet(body)()
        s.run()
        self.assertEqual(self.log, ["checked"])

    def test_rebind_paused_tasklet(self):
        # Stackless's test_rebind_recursion_depth: bind(func, args) on a
        # paused started tasklet rebinds it (here: unwound first).
        def outer():
            try:
                inner()
            finally:
                self.log.append("outer finally")

        def inner():
            s.getmain().switch()

        def test():
            self.log.append(("depth", s.getcurrent().recursion_depth))
        t = s.tasklet(outer)()
        self.assertEqual(t.recursion_depth, 0)
        t.run()
        self.assertTrue(t.paused)
        self.assertEqual(t.recursion_depth, 2)
        t.bind(test, ())
        self.assertEqual(t.recursion_depth, 0)
        self.assertTrue(t.alive)
        t.run()
        self.assertEqual(t.recursion_depth, 0)
        self.assertEqual(self.log, ["outer finally", ("depth", 1)])

    def test_blocked_refused(self):
        ch = s.channel()
        t = s.tasklet(ch.receive)()
        s.run()
        with self.assertRaisesRegex(RuntimeError, "blocked"):
            t.bind(None)
        self.assertTrue(t.blocked)
        ch.send(None)

    def test_survivor_refused(self):
        def stubborn():
            while True:
                try:
                    s.schedule_remove()
                    return
                except s.TaskletExit:
                    self.log.append("caught")
        t = s.tasklet(stubborn)()
        s.run()
        with self.assertRaisesRegex(RuntimeError, "TaskletExit"):
            t.bind(None)
        self.assertTrue(t.alive)
        t.insert()
        s.run()
        self.assertFalse(t.alive)
        gc.collect()


class SetupTwice(Base):
    """5. Setting up twice."""

    def test_setup_again(self):
        t = s.tasklet(self.log.append)(1)
        with self.assertRaisesRegex(RuntimeError, "already set up"):
            t.setup(2)
        with self.assertRaisesRegex(RuntimeError, "already set up"):
            t(3)
        s.run()
        self.assertEqual(self.log, [1])

    def test_bound_with_args_counts(self):
        t = s.tasklet().bind(self.log.append, (1,))
        with self.assertRaises(RuntimeError):
            t.setup(2)
        t.insert()
        s.run()
        self.assertEqual(self.log, [1])

    def test_setup_after_end_needs_a_new_bind(self):
        t = s.tasklet(self.log.append)(1)
        s.run()
        t.bind(self.log.append)
        t.setup(2)
        s.run()
        self.assertEqual(self.log, [1, 2])


class Uninitialised(Base):
    """6. Subclasses whose __init__ never calls the base."""

    class Chan(s.channel):
        def __init__(self):
            pass

    class Task(s.tasklet):
        def __init__(self, *args):
            pass

    def test_channel_methods(self):
        c = self.Chan()
        calls = [
            (c.send,), (c.send, 1), (c.send, 1, 2), (c.receive,), (c.receive, 1),
            (c.send_exception,), (c.send_exception, ValueError), (c.send_throw,),
            (c.clear,), (c.close,), (c.open, 1), (c.send_sequence, [1]), (c.send_sequence,),
            (iter, c), (next, c),
        ]
        for call in calls:
            with self.subTest(call=call):
                with self.assertRaisesRegex(RuntimeError, "__init__ not called"):
                    call[0](*call[1:])
        for attr in ("balance", "preference", "queue", "closing", "closed", "schedule_all"):
            with self.subTest(attr=attr):
                with self.assertRaisesRegex(RuntimeError, "__init__ not called"):
                    getattr(c, attr)

    def test_tasklet_methods(self):
        t = self.Task()
        calls = [
            (t.bind,), (t.bind, 1, 2, 3, 4), (t.setup, 1), (t,), (t.insert,), (t.insert, 1),
            (t.remove, 1), (t.run, 1), (t.switch, 1), (t.throw,), (t.kill, 1, 2),
            (t.raise_exception,), (t.set_context, 1), (t.bind_thread, "x"),
            (t.set_atomic,), (t.set_atomic, True, 2),
        ]
        for call in calls:
            with self.subTest(call=call):
                with self.assertRaisesRegex(RuntimeError, "__init__ not called"):
                    call[0](*call[1:])
        for attr in ("alive", "tempval", "recursion_depth", "nesting_level", "restorable", "atomic"):
            with self.subTest(attr=attr):
                with self.assertRaisesRegex(RuntimeError, "__init__ not called"):
                    getattr(t, attr)

    def test_initialised_methods_keep_their_type_errors(self):
        c = s.channel()
        with self.assertRaises(TypeError):
            c.send()
        with self.assertRaises(TypeError):
            c.receive(1)
        t = s.tasklet()
        with self.assertRaises(TypeError):
            t.insert(1)
        with self.assertRaisesRegex(TypeError, "exactly one argument"):
            t.set_atomic()


if __name__ == "__main__":
    unittest.main()
