"""Interpreter shutdown with live tasklets (switching.md section 4, item 9).
Every test is a child process: it must exit with the expected status and a
stderr free of crashes and tracebacks."""
import unittest

from core_support import CoreTestCase, run_many

SCRIPTS = {}


def script(name, code, rc=0):
    SCRIPTS[name] = (code, rc)


script("blocked_forever", """
    import json, os, sys, scheduler as s
    CONFIG = {"answer": 42}
    c = s.channel()
    def blocked():
        try:
            c.receive()
        except Exception:
            print("wrongly caught by except Exception")
        finally:
            # modules and globals are still intact: this runs before teardown
            print("finally", json.dumps(CONFIG), os.getpid() > 0, sys.modules["json"] is json,
                  flush=True)
    s.tasklet(blocked)()
    s.run()
    print("main ends", flush=True)
""")

script("removed_forever", """
    import scheduler as s
    def removed(depth):
        if depth:
            return removed(depth - 1)
        try:
            s.schedule_remove()
        except BaseException as e:
            print("got", type(e).__name__, flush=True)
            raise
        finally:
            print("finally", flush=True)
    t = s.tasklet(removed)(30)
    s.run()
    print("main ends", flush=True)
""")

script("many_kinds", """
    import scheduler as s
    c = s.channel()
    out = []
    def blocked(i):
        try:
            c.receive()
        finally:
            out.append(i)
    def child():
        try:
            s.schedule_remove()
        finally:
            out.append("child")
    def parent():
        try:
            c = s.tasklet(child)()
            c.run()
            s.schedule_remove()
        finally:
            out.append("parent")
    def gen_user():
        def g():
            try:
                s.schedule_remove()
                yield 1
            finally:
                out.append("gen")
        for _ in g():
            pass
    for i in range(100):
        s.tasklet(blocked)(i)  # the channel references them
    keep = [s.tasklet(parent)(), s.tasklet(gen_user)()]
    s.run()
    s.tasklet(lambda: out.append("never started ran"))()  # queued, never run
    import atexit
    # registered after `scheduler` was imported: runs before the scheduler's hook
    atexit.register(lambda: print("atexit first", len(out), flush=True))
    class Reporter:
        def __del__(self):
            print("teardown sees", sorted(map(str, out)) == sorted(
                [str(i) for i in range(100)] + ["child", "parent", "gen"]), flush=True)
    reporter = Reporter()
    print("main ends", flush=True)
""")

script("stubborn", """
    import scheduler as s
    def stubborn():
        while True:
            try:
                s.schedule_remove()
            except s.TaskletExit:
                print("swallowed", flush=True)
    t = s.tasklet(stubborn)()
    s.run()
    print("main ends", flush=True)
""")

script("sys_exit_in_tasklet", """
    import sys, scheduler as s
    def other():
        try:
            s.schedule_remove()
        finally:
            print("other finally", flush=True)
    def quitter():
        try:
            sys.exit(3)
        finally:
            print("quitter finally", flush=True)
    o = s.tasklet(other)()
    s.tasklet(quitter)()
    s.tasklet(lambda: print("after quitter", flush=True))()
    s.run()
    print("not reached", flush=True)
""", rc=3)

script("sys_exit_in_nested_tasklet", """
    import sys, scheduler as s
    def inner():
        s.schedule()  # back to the parent's loop once
        sys.exit(4)
    def outer():
        t = s.tasklet(inner)()
        t.run()
        t.run()
        print("outer not reached", flush=True)
    s.tasklet(outer)()
    s.run()
""", rc=4)

script("sys_exit_message_in_tasklet", """
    import sys, scheduler as s
    s.tasklet(lambda: sys.exit("bye from tasklet"))()
    s.run()
""", rc=1)

script("exit_while_tasklet_in_except_and_generator", """
    import scheduler as s
    def g():
        try:
            raise ValueError("gen")
        except ValueError:
            s.schedule_remove()
            yield 1
    def body():
        try:
            raise KeyError("body")
        except KeyError:
            for _ in g():
                pass
    s.tasklet(body)()
    s.run()
    print("main ends", flush=True)
""")

script("tasklets_in_cycles_at_exit", """
    import scheduler as s
    class T(s.tasklet):
        pass
    holders = []
    def suspended(h):
        try:
            s.schedule_remove()
        finally:
            print("finally", flush=True)
    for i in range(3):
        h = {}
        t = T(suspended)(h)
        t.me = t
        h["t"] = t
        h["self"] = h
    s.run()
    dead = T(lambda: None)()
    dead.me = dead
    s.run()
    unstarted = T(lambda: None)
    unstarted.me = unstarted
    del t, h, dead, unstarted
    print("main ends", flush=True)
""")

script("exception_escapes_at_top", """
    import scheduler as s
    def suspended():
        try:
            s.schedule_remove()
        finally:
            print("finally", flush=True)
    def bad():
        raise ValueError("unhandled in tasklet")
    s.tasklet(suspended)()
    s.tasklet(bad)()
    s.run()
""", rc=1)

script("keyboard_interrupt_at_top", """
    import signal, scheduler as s
    def suspended():
        try:
            s.schedule_remove()
        finally:
            print("finally", flush=True)
    def interrupted():
        signal.raise_signal(signal.SIGINT)
    s.tasklet(suspended)()
    s.tasklet(interrupted)()
    s.run()
""", rc=-2)

script("switch_attempt_during_finalization", """
    import os, scheduler as s
    class LateSwitcher:
        def __init__(self):
            self.write, self.s = os.write, s
        def __del__(self):
            ran = []
            try:
                self.s.tasklet(lambda: ran.append(1))()
                self.s.run()
                outcome = "ran %d" % len(ran)
            except RuntimeError as e:
                outcome = "RuntimeError"
            self.write(1, ("late switch: %s\\n" % outcome).encode())
    late = LateSwitcher()
    late.cycle = late  # freed by the final collection, after atexit
    def blocked():
        try:
            s.schedule_remove()
        finally:
            print("finally", flush=True)
    t = s.tasklet(blocked)()
    s.run()
    del late
    print("main ends", flush=True)
""")


class ShutdownTests(CoreTestCase):

    @classmethod
    def setUpClass(cls):
        cls.results = run_many({name: (code, ()) for name, (code, _) in SCRIPTS.items()})

    def result(self, name, clean_stderr=True):
        return self.check_child(self.results[name], rc=SCRIPTS[name][1], clean_stderr=clean_stderr)

    def test_blocked_forever_gets_tasklet_exit_before_teardown(self):
        proc = self.result("blocked_forever")
        self.assertChildLines(proc, ["main ends", "finally {\"answer\": 42} True True"])
        self.assertEqual(proc.stderr, "")

    def test_removed_forever_gets_tasklet_exit(self):
        proc = self.result("removed_forever")
        self.assertChildLines(proc, ["main ends", "got TaskletExit", "finally"])
        self.assertEqual(proc.stderr, "")

    def test_many_kinds_of_suspended_tasklets(self):
        proc = self.result("many_kinds")
        self.assertChildLines(proc, ["main ends", "atexit first 0", "teardown sees True"])
        self.assertEqual(proc.stderr, "")

    def test_stubborn_tasklet_does_not_hang_or_crash(self):
        proc = self.result("stubborn", clean_stderr=False)
        self.assertEqual(proc.stdout.splitlines()[0], "main ends")
        self.assertIn("swallowed", proc.stdout)
        self.assertNotIn("Fatal Python error", proc.stderr)

    def test_sys_exit_in_tasklet(self):
        proc = self.result("sys_exit_in_tasklet")
        self.assertChildLines(proc, ["quitter finally", "other finally"])
        self.assertEqual(proc.stderr, "")

    def test_sys_exit_in_nested_tasklet(self):
        proc = self.result("sys_exit_in_nested_tasklet")
        self.assertEqual(proc.stdout, "")
        self.assertEqual(proc.stderr, "")

    def test_sys_exit_message_in_tasklet(self):
        proc = self.result("sys_exit_message_in_tasklet", clean_stderr=False)
        self.assertEqual(proc.stderr, "bye from tasklet\n")

    def test_exit_while_suspended_in_except_and_generator(self):
        proc = self.result("exit_while_tasklet_in_except_and_generator")
        self.assertChildLines(proc, ["main ends"])
        self.assertEqual(proc.stderr, "")

    def test_no_switch_after_finalization_starts(self):
        proc = self.result("switch_attempt_during_finalization")
        lines = proc.stdout.splitlines()
        self.assertEqual(lines[:2], ["main ends", "finally"])
        # a collection at exit may still come before finalization starts
        self.assertIn(lines[2], ["late switch: RuntimeError", "late switch: ran 1"])

    def test_tasklets_in_cycles_at_exit(self):
        proc = self.result("tasklets_in_cycles_at_exit")
        self.assertChildLines(proc, ["main ends", "finally", "finally", "finally"])
        self.assertEqual(proc.stderr, "")

    def test_uncaught_exception_from_tasklet_at_top_level(self):
        proc = self.result("exception_escapes_at_top", clean_stderr=False)
        self.assertIn("ValueError: unhandled in tasklet", proc.stderr)
        self.assertIn("in bad", proc.stderr)
        self.assertNotIn("Fatal Python error", proc.stderr)
        self.assertEqual(proc.stdout, "finally\n")

    def test_keyboard_interrupt_from_tasklet_at_top_level(self):
        proc = self.results["keyboard_interrupt_at_top"]
        # CPython exits with 130 (or dies of SIGINT) after KeyboardInterrupt
        self.assertIn(proc.returncode, (130, -2), proc.stderr)
        self.assertIn("KeyboardInterrupt", proc.stderr)
        self.assertNotIn("Fatal Python error", proc.stderr)
        self.assertEqual(proc.stdout, "finally\n")


class ForkTests(CoreTestCase):

    def test_fork_inside_a_tasklet(self):
        # The child goes on, on the forking tasklet's stack: it keeps
        # scheduling, finishes the tasklet, and exits through its main tasklet
        # (killing what is still blocked there); the parent is unaffected.
        proc = self.run_child("""
            import os, scheduler as s
            c = s.channel()
            def waiter(where):
                try:
                    c.receive()
                except s.TaskletExit:
                    print(where(), "waiter killed at exit", flush=True)
                    raise
            def forker():
                pid = os.fork()
                if pid == 0:
                    d = s.channel()
                    s.tasklet(lambda: d.send("hello"))()
                    print("child got", d.receive(), flush=True)
                    return
                _, status = os.waitpid(pid, 0)
                print("parent saw child exit", os.waitstatus_to_exitcode(status), flush=True)
            parent = os.getpid()
            here = lambda: "child" if os.getpid() != parent else "parent"
            s.tasklet(waiter)(here)
            s.tasklet(forker)()
            s.run()
            print(here(), "done", flush=True)
        """)
        self.assertEqual(proc.stdout.splitlines(), [
            "child got hello", "child done", "child waiter killed at exit",
            "parent saw child exit 0", "parent done", "parent waiter killed at exit"])


if __name__ == "__main__":
    unittest.main()
