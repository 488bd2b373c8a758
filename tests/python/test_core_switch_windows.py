"""The switch path's critical windows (runtime/transfer.h): no Python code
(finalizers, weakref callbacks, schedule callbacks, the unraisable hook)
runs between choosing a tasklet and switching to it, or inside a blocking
operation of the tasklet it runs in; what a switch releases travels in one
record, so a nested switch cannot make it leak; the switch trap the runtime
raises around callbacks cannot be lowered by them. Each case is a defect
found by hostile scripts (issue 13, defects 1-3) or review (issue 8), run in
a child process because the defect was a crash."""
import gc
import sys
import unittest

import scheduler as s
from core_support import CoreTestCase


class TransferRecordTests(CoreTestCase):

    def test_nested_switch_in_release_leaks_nothing(self):
        # Queue p, a, n; p runs n; n calls schedule(); a, referenced by
        # nothing but the scheduler, calls schedule_remove(): dropping a runs
        # its kill (a nested switch) while the switch that dropped it still
        # had references to release.
        log = []

        def p_fn():
            n.run()
            log.append("p")

        def a_fn():
            try:
                s.schedule_remove()
                log.append("a resumed")
            finally:
                log.append("a finally")

        def n_fn():
            s.schedule()
            log.append("n")

        p = s.tasklet(p_fn)()
        s.tasklet(a_fn)()
        n = s.tasklet(n_fn)()
        main_refs = sys.getrefcount(s.getmain())
        s.run()
        s.run()
        gc.collect()
        self.assertEqual(sorted(log), ["a finally", "n", "p"])
        self.assertFalse(p.alive)
        self.assertFalse(n.alive)
        # Only our local name and getrefcount's argument.
        self.assertEqual(sys.getrefcount(p), 2)
        self.assertEqual(sys.getrefcount(n), 2)
        self.assertEqual(sys.getrefcount(s.getmain()), main_refs)
        self.assertEqual(s.getruncount(), 1)

    def test_many_finalizers_that_switch_release_everything(self):
        # Each dropped tasklet's kill switches while others wait to be released.
        import weakref
        refs = []

        def sleeper():
            s.schedule_remove()

        for _ in range(50):
            refs.append(weakref.ref(s.tasklet(sleeper)()))
        s.run()
        gc.collect()
        self.assertEqual([r() for r in refs], [None] * 50)


class ChoiceRevalidatedTests(CoreTestCase):

    def test_parent_finalized_while_child_is_chosen(self):
        # Issue 13 defect 1: the parent decref in run_child finalized P,
        # which handed off to the child; the child ended; then the loop
        # switched into the dead child (SIGSEGV).
        proc = self.run_child("""
            import scheduler as s
            box = []
            log = []
            def child():
                s.schedule_remove()
                log.append("child resumed")
            def P():
                try:
                    box.append(s.tasklet(child)()); box[0].run()   # child.parent = P
                    s.schedule_remove()                            # P now held only by child.parent
                finally:
                    log.append("P finally")
            s.tasklet(P)(); s.run()
            box[0].insert(); s.run()
            print(sorted(log), box[0].alive, s.getruncount())
        """)
        self.assertChildLines(proc, ["['P finally', 'child resumed'] False 1"])

    def test_schedule_callback_removes_the_chosen_tasklet(self):
        # Issue 13 defect 1, shortest form: the only reference to the chosen
        # tasklet was the queue's, and the callback removed it.
        proc = self.run_child("""
            import scheduler as s
            ran = []
            s.set_schedule_callback(lambda prev, nxt: nxt.remove())
            s.tasklet(lambda: ran.append(1))()
            s.run()
            s.set_schedule_callback(None)
            print(ran, s.getruncount())
        """)
        self.assertChildLines(proc, ["[1] 1"])

    def test_schedule_callback_kills_the_chosen_tasklet(self):
        proc = self.run_child("""
            import scheduler as s
            ran = []
            def cb(prev, nxt):
                if nxt is not s.getmain():
                    nxt.kill(pending=True)
            s.set_schedule_callback(cb)
            s.tasklet(lambda: ran.append(1))()
            s.run()
            s.set_schedule_callback(None)
            print(ran, s.getruncount())
        """)
        self.assertChildLines(proc, ["[] 1"])


class NoPythonInsideWaitTests(CoreTestCase):

    def test_weakref_callback_blocks_during_receive(self):
        # Issue 13 defect 2: a weakref callback ran in main while main was
        # inside ch.receive(), did a blocking receive on another channel and
        # left `ch` listing main with chan == NULL (SIGSEGV on `del ch`).
        proc = self.run_child("""
            import scheduler as s, weakref
            ch, other = s.channel(), s.channel()
            got = []
            def cb(r):
                s.tasklet(other.send)(1)
                got.append(other.receive())
            t = s.tasklet(lambda: None)(); wr = weakref.ref(t, cb); del t
            try:
                ch.receive()
            except RuntimeError as e:
                print("RuntimeError:", e)
            print(ch.balance, got)
            del ch
            print("ok")
        """)
        self.assertChildLines(proc, [
            "RuntimeError: Deadlock: the last runnable tasklet cannot be blocked.",
            "0 [1]", "ok"])

    def test_finalizer_blocks_while_value_is_in_transit(self):
        # Issue 13 defect 2, variant: a tasklet subclass whose __del__ does a
        # blocking receive ran inside main's completed receive: the value
        # sent (42) was lost although send() returned normally.
        proc = self.run_child("""
            import scheduler as s
            ch, side = s.channel(), s.channel()
            ch.preference = 1
            class T(s.tasklet):
                def __del__(self):
                    try:
                        side.receive()
                    except RuntimeError as e:
                        print("__del__:", e)
            sent = []
            def sender():
                ch.send(42)
                sent.append(True)
            T(sender)()
            print("received", ch.receive(), sent)
        """)
        lines = proc.stdout.splitlines()
        self.assertIn("received 42 [True]", lines, proc.stdout + proc.stderr)

    def test_finalizer_sends_to_the_waiting_tasklet(self):
        # A finalizer run on behalf of a tasklet that waits in receive()
        # completes that very receive: the value arrives exactly once.
        proc = self.run_child("""
            import scheduler as s, weakref
            ch = s.channel()
            got = []
            def receiver():
                got.append(ch.receive())
            r = s.tasklet(receiver)()
            s.run()
            def cb(_):
                s.tasklet(ch.send)("x")
            t = s.tasklet(lambda: None)(); wr = weakref.ref(t, cb); del t
            s.run()
            print(got, r.alive, ch.balance)
        """)
        self.assertChildLines(proc, ["['x'] False 0"])


class RuntimeTrapTests(CoreTestCase):

    def test_schedule_callback_cannot_lower_the_trap(self):
        # Issue 13 defect 3: switch_trap(-1) inside a schedule callback, then
        # schedule(): a switch in the middle of a switch (SIGSEGV).
        proc = self.run_child("""
            import scheduler as s
            out = []
            def cb(prev, nxt):
                s.set_schedule_callback(None)
                s.switch_trap(-1)
                try:
                    s.schedule()
                    out.append("switched")
                except RuntimeError as e:
                    out.append(str(e))
            s.set_schedule_callback(cb)
            s.tasklet(lambda: out.append("ran"))(); s.run()
            s.switch_trap(1)
            print(out)
        """)
        self.assertChildLines(proc, [
            "['Cannot schedule when scheduler switch_trap level is non-zero', 'ran']"])

    def test_unraisable_hook_runs_trapped(self):
        # Issue 13 defect 3: the error of a schedule callback was reported
        # after the trap was lowered, so an unraisable hook could switch.
        proc = self.run_child("""
            import sys, scheduler as s
            out = []
            def hook(u):
                out.append(type(u.exc_value).__name__)
                try:
                    s.schedule()
                    out.append("switched")
                except RuntimeError as e:
                    out.append("RuntimeError")
            sys.unraisablehook = hook
            s.set_schedule_callback(lambda a, b: 1/0)
            s.tasklet(lambda: None)(); s.run()
            s.set_schedule_callback(None)
            print(out[:2], "switched" in out)
        """)
        self.assertChildLines(proc, ["['ZeroDivisionError', 'RuntimeError'] False"])

    def test_user_trap_level_is_unchanged_by_callbacks(self):
        levels = []

        def cb(prev, nxt):
            levels.append(s.switch_trap(0))

        s.set_schedule_callback(cb)
        try:
            s.tasklet(lambda: None)()
            s.run()
        finally:
            s.set_schedule_callback(None)
        self.assertEqual(set(levels), {0})
        self.assertEqual(s.switch_trap(0), 0)


if __name__ == "__main__":
    unittest.main()
