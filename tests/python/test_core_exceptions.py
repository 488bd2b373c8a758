"""Exception state across switches (switching.md section 4, item 2): the
handled-exception stack (sys.exc_info(), bare raise, implicit __context__) is
per tasklet; exceptions thrown into and escaping from tasklets arrive intact;
KeyboardInterrupt raised while a non-main tasklet runs reaches main."""
import _thread
import signal
import sys
import threading
import time
import traceback
import unittest

import scheduler as s
from core_support import CoreTestCase


class HandledExceptionTests(CoreTestCase):

    def test_switch_inside_except(self):
        log = {}

        def a():
            try:
                raise ValueError("a")
            except ValueError as e:
                mine = e
                s.schedule()
                log["a_exc_info"] = sys.exc_info()[1]
                try:
                    raise KeyError("a2")
                except KeyError as e2:
                    log["a_context"] = e2.__context__
                s.schedule()
                try:
                    raise
                except ValueError as e3:
                    log["a_bare_raise"] = e3
                log["a_mine"] = mine

        def b():
            log["b_exc_info_start"] = sys.exc_info()
            try:
                raise TypeError("b")
            except TypeError as e:
                log["b_context"] = e.__context__
                s.schedule()
                log["b_exc_info"] = sys.exc_info()[1]
            log["b_exc_info_end"] = sys.exc_info()
            try:
                raise  # nothing is being handled in b
            except RuntimeError as e:
                log["b_bare_raise"] = type(e)

        s.tasklet(a)()
        s.tasklet(b)()
        s.run()
        self.assertIs(log["a_exc_info"], log["a_mine"])
        self.assertIs(log["a_context"], log["a_mine"])
        self.assertIs(log["a_bare_raise"], log["a_mine"])
        self.assertEqual(log["b_exc_info_start"], (None, None, None))
        self.assertIsNone(log["b_context"])
        self.assertIsInstance(log["b_exc_info"], TypeError)
        self.assertEqual(log["b_exc_info_end"], (None, None, None))
        self.assertIs(log["b_bare_raise"], RuntimeError)
        self.assertEqual(sys.exc_info(), (None, None, None))

    def test_main_handler_invisible_to_tasklets(self):
        seen = []

        def t():
            seen.append(sys.exc_info())
            try:
                raise KeyError("t")
            except KeyError as e:
                seen.append(e.__context__)
        try:
            raise ValueError("main")
        except ValueError as mine:
            s.tasklet(t)()
            s.run()
            self.assertIs(sys.exc_info()[1], mine)
            try:
                raise IndexError
            except IndexError as e:
                self.assertIs(e.__context__, mine)
        self.assertEqual(seen, [(None, None, None), None])

    def test_nested_handlers_across_switches(self):
        log = []

        def a():
            try:
                raise ValueError("outer")
            except ValueError:
                try:
                    raise KeyError("inner")
                except KeyError:
                    s.schedule()
                    log.append(("inner", type(sys.exc_info()[1])))
                s.schedule()
                log.append(("outer", type(sys.exc_info()[1])))
            s.schedule()
            log.append(("none", sys.exc_info()[1]))

        def b():
            for _ in range(4):
                try:
                    raise OSError
                except OSError:
                    s.schedule()
                    log.append(("b", type(sys.exc_info()[1])))

        s.tasklet(a)()
        s.tasklet(b)()
        s.run()
        self.assertEqual([x for x in log if x[0] != "b"],
                         [("inner", KeyError), ("outer", ValueError), ("none", None)])
        self.assertEqual([x for x in log if x[0] == "b"], [("b", OSError)] * 4)

    def test_switch_in_finally_while_propagating(self):
        log = []

        def a():
            try:
                raise ValueError("propagating")
            finally:
                log.append("finally-start")
                s.schedule()
                log.append("finally-end")

        def b():
            log.append("b")
            self.assertEqual(sys.exc_info(), (None, None, None))

        s.tasklet(a)()
        s.tasklet(b)()
        with self.assertRaises(ValueError) as cm:
            s.run()
        self.assertEqual(str(cm.exception), "propagating")
        self.assertEqual(log, ["finally-start", "b", "finally-end"])
        s.run()

    def test_with_exit_switches(self):
        log = []

        class CM:
            def __init__(self, suppress):
                self.suppress = suppress

            def __enter__(self):
                return self

            def __exit__(self, tp, val, tb):
                log.append(("exit", tp and tp.__name__))
                s.schedule()
                log.append(("exit-resumed", type(sys.exc_info()[1]).__name__))
                return self.suppress

        def suppressing():
            with CM(True):
                raise KeyError("swallowed")
            log.append("after-suppress")

        def reraising():
            with CM(False):
                raise LookupError("kept")

        def other():
            log.append(("other", sys.exc_info()[1]))
            try:
                raise OSError
            except OSError as e:
                log.append(("other-context", e.__context__))

        s.tasklet(suppressing)()
        s.tasklet(other)()
        s.run()
        self.assertEqual(log, [("exit", "KeyError"), ("other", None), ("other-context", None),
                               ("exit-resumed", "KeyError"), "after-suppress"])
        log.clear()
        s.tasklet(reraising)()
        s.tasklet(other)()
        with self.assertRaises(LookupError):
            s.run()
        s.run()
        self.assertEqual(log[0], ("exit", "LookupError"))
        self.assertIn(("exit-resumed", "LookupError"), log)


class ThrowTests(CoreTestCase):

    def test_throw_with_handler(self):
        log = []

        def victim():
            try:
                s.schedule_remove()
            except KeyError as e:
                log.append(("caught", e.args, sys.exc_info()[1] is e))
            log.append(("after", sys.exc_info()))
            return "done"

        t = s.tasklet(victim)()
        s.run()
        t.throw(KeyError, "k")
        self.assertEqual(log, [("caught", ("k",), True), ("after", (None, None, None))])
        self.assertFalse(t.alive)

    def test_throw_without_handler_reaches_thrower(self):
        def victim():
            s.schedule_remove()

        t = s.tasklet(victim)()
        s.run()
        try:
            t.throw(ZeroDivisionError, "z")
        except ZeroDivisionError as e:
            names = [fs.name for fs in traceback.extract_tb(e.__traceback__)]
        else:
            self.fail("not raised")
        self.assertFalse(t.alive)
        self.assertEqual(names[-1], "victim")

    def test_throw_instance_keeps_traceback_and_attrs(self):
        got = {}

        def victim():
            try:
                s.schedule_remove()
            except ValueError as e:
                got["exc"] = e

        try:
            raise ValueError("original")
        except ValueError as e:
            exc = e
        exc.marker = 7
        t = s.tasklet(victim)()
        s.run()
        t.throw(exc)
        self.assertIs(got["exc"], exc)
        self.assertEqual(got["exc"].marker, 7)

    def test_thrower_handled_exception_not_context(self):
        # The thrower's except: block belongs to the thrower, not to the victim.
        got = {}

        def victim():
            try:
                s.schedule_remove()
            except KeyError as e:
                got["context"] = e.__context__
                got["exc_info"] = sys.exc_info()[1]

        t = s.tasklet(victim)()
        s.run()
        try:
            raise OSError("thrower's")
        except OSError:
            t.throw(KeyError("k"))
        self.assertIsNone(got["context"])
        self.assertIsInstance(got["exc_info"], KeyError)

    def test_throw_into_tasklet_suspended_in_except(self):
        got = {}

        def victim():
            try:
                raise ValueError("handled")
            except ValueError as handled:
                try:
                    s.schedule_remove()
                except KeyError as e:
                    got["context"] = e.__context__
                    got["handled"] = handled
                got["still"] = sys.exc_info()[1]

        t = s.tasklet(victim)()
        s.run()
        t.throw(KeyError("k"))
        self.assertIs(got["still"], got["handled"])
        # raised at the suspension point, as by a raise statement there
        self.assertIs(got["context"], got["handled"])

    def test_pending_throw(self):
        log = []

        def victim():
            try:
                s.schedule_remove()
            except KeyError:
                log.append("caught")

        t = s.tasklet(victim)()
        s.run()
        t.throw(KeyError, pending=True)
        self.assertEqual(log, [])
        self.assertTrue(t.scheduled)
        s.run()
        self.assertEqual(log, ["caught"])

    def test_throw_to_blocked_receiver(self):
        c = s.channel()
        log = []

        def receiver():
            try:
                c.receive()
            except IndexError as e:
                log.append(e.args)
        t = s.tasklet(receiver)()
        s.run()
        self.assertEqual(c.balance, -1)
        t.throw(IndexError, "i")
        self.assertEqual(log, [("i",)])
        self.assertEqual(c.balance, 0)

    def test_throw_between_tasklets(self):
        log = []

        def victim():
            for _ in range(3):
                try:
                    s.schedule_remove()
                except KeyError as e:
                    log.append(("victim", e.args[0], s.getcurrent() is box["v"]))

        def thrower():
            for i in range(3):
                box["v"].throw(KeyError(i))
                log.append(("thrower", i))

        box = {}
        box["v"] = s.tasklet(victim)()
        box["v"].run()
        s.tasklet(thrower)()
        s.run()
        self.assertEqual(log, [("victim", 0, True), ("thrower", 0), ("victim", 1, True),
                               ("thrower", 1), ("victim", 2, True), ("thrower", 2)])


class EscapingExceptionTests(CoreTestCase):

    def test_escapes_to_main_with_traceback(self):
        def inner():
            s.schedule()
            box.append(s.tasklet(lambda: None)())  # queued behind
            raise ValueError("escaped")

        def outer():
            inner()

        box = []
        t = s.tasklet(outer)()
        try:
            s.run()
        except ValueError as e:
            exc = e
        else:
            self.fail("not raised")
        self.assertFalse(t.alive)
        tb = traceback.extract_tb(exc.__traceback__)
        names = [fs.name for fs in tb]
        self.assertEqual(names[-2:], ["outer", "inner"])
        self.assertEqual(tb[-1].line, 'raise ValueError("escaped")')
        self.assertTrue(box[0].scheduled)  # the one behind it is still queued
        s.run()
        self.assertFalse(box[0].alive)

    def test_escapes_to_parent_tasklet(self):
        log = []

        def child():
            s.schedule()  # back to the parent's loop first
            raise KeyError("child")

        def parent():
            c = s.tasklet(child)()
            try:
                c.run()
                log.append("first return")
                c.run()
            except KeyError as e:
                names = [fs.name for fs in traceback.extract_tb(e.__traceback__)]
                log.append(("parent caught", e.args, "child" in names))

        s.tasklet(parent)()
        s.run()
        self.assertEqual(log, ["first return", ("parent caught", ("child",), True)])

    def test_escapes_through_switch(self):
        def bad():
            raise OSError("via switch")
        t = s.tasklet(bad)()
        with self.assertRaises(OSError):
            t.switch()
        self.assertFalse(t.alive)

    def test_tasklet_exit_is_not_propagated(self):
        def quits():
            raise s.TaskletExit
        s.tasklet(quits)()
        s.run()

    def test_except_exception_does_not_catch_tasklet_exit(self):
        log = []

        def victim():
            try:
                s.schedule_remove()
            except Exception:
                log.append("wrongly caught")
            finally:
                log.append("finally")

        t = s.tasklet(victim)()
        s.run()
        t.kill()
        self.assertEqual(log, ["finally"])
        self.assertTrue(issubclass(s.TaskletExit, BaseException))
        self.assertFalse(issubclass(s.TaskletExit, Exception))


class KeyboardInterruptTests(CoreTestCase):

    def test_raise_signal_in_tasklet_reaches_main(self):
        log = []

        def worker():
            try:
                signal.raise_signal(signal.SIGINT)
                for _ in range(1000):  # the handler runs at the next check
                    pass
                log.append("not interrupted")
            except Exception:
                log.append("caught by except Exception")
            finally:
                log.append("finally")

        t = s.tasklet(worker)()
        other = s.tasklet(lambda: log.append("other"))()
        with self.assertRaises(KeyboardInterrupt):
            s.run()
        self.assertEqual(log, ["finally"])
        self.assertFalse(t.alive)
        self.assertTrue(other.scheduled)
        s.run()
        self.assertEqual(log, ["finally", "other"])

    def test_interrupt_main_in_nested_tasklet(self):
        log = []

        def spinning():
            try:
                _thread.interrupt_main()
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    pass
                log.append("timed out")
            finally:
                log.append("inner finally")

        def parent():
            try:
                s.tasklet(spinning)().run()
            finally:
                log.append("parent finally")

        s.tasklet(parent)()
        with self.assertRaises(KeyboardInterrupt):
            s.run()
        self.assertEqual(log, ["inner finally", "parent finally"])

    def test_interrupt_from_other_thread_while_tasklet_runs(self):
        started = threading.Event()
        log = []

        def spinning():
            started.set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                s.schedule()
            log.append("timed out")

        def other():
            while True:
                s.schedule()
                if log:
                    break

        def interrupter():
            started.wait()
            time.sleep(0.05)
            _thread.interrupt_main()

        th = threading.Thread(target=interrupter)
        th.start()
        s.tasklet(spinning)()
        s.tasklet(other)()
        try:
            with self.assertRaises(KeyboardInterrupt):
                s.run()
        finally:
            th.join()
        self.assertEqual(log, [])


if __name__ == "__main__":
    unittest.main()
