"""Every error of docs/scheduler.md, with its exact type and message, plus the
layout facts of section 1 and the helpers of section 6.

Where the spec marks a reference bug, the behaviour the spec asks for is
asserted. Cases that crash the reference run in a subprocess.
"""
import collections
import contextlib
import ctypes
import gc
import sys
import threading
import unittest
import weakref

import _scheduler
import scheduler as s
from api_support import ForeignThread, assert_error, run_snippet

INVALID_TASKLET = ("Tasklet object is not valid. Most likely cause being __init__ not called "
                   "on base type.")
INVALID_CHANNEL = ("Channel object is not valid. Most likely cause being __init__ not called "
                   "on base type.")
BLOCK_TRAP = "Channel cannot block on main tasklet with block_trap set true"
DEADLOCK = "Deadlock: the last runnable tasklet cannot be blocked."
SWITCH_TRAP = "Cannot schedule when scheduler switch_trap level is non-zero"
MUST_BIND = ("This tasklet must be bound to a callable before you can call setup. "
             "Please call bind first.")


def noop(*args, **kwargs):
    pass


def finished_tasklet():
    t = s.tasklet(noop)()
    s.run()
    assert not t.alive
    return t


def blocked_receiver(ch=None):
    ch = ch if ch is not None else s.channel()
    box = {}

    def recv():
        try:
            box["value"] = ch.receive()
        except Exception as e:  # kept for the test, not propagated to the thrower
            box["error"] = e
        except BaseException as e:
            box["error"] = e
            raise
    t = s.tasklet(recv)()
    s.run()
    assert t.blocked and ch.balance < 0
    return t, ch, box


def paused_tasklet():
    t = s.tasklet(s.schedule_remove)()
    t.run()
    assert t.alive and t.paused and not t.scheduled
    return t


def reset_scheduler():
    """Leaves the calling thread's scheduler clean for the next test."""
    level = s.switch_trap(0)
    if level:
        s.switch_trap(-level)
    s.set_schedule_callback(None)
    s.set_channel_callback(None)
    s.set_use_nested_tasklets(True)
    s.getcurrent().block_trap = False
    for _ in range(3):
        try:
            s.unblock_all_channels()
            s.run()
        except BaseException:
            pass


class Base(unittest.TestCase):
    def tearDown(self):
        reset_scheduler()

    def err(self, exc_type, message, func, *args, **kwargs):
        return assert_error(self, exc_type, message, func, *args, **kwargs)


# ---- 1. package layout ---------------------------------------------------------------------

class LayoutTest(Base):
    def test_type_names_and_reprs(self):
        for obj, name in ((_scheduler.tasklet, "Tasklet"), (_scheduler.channel, "Channel"),
                          (_scheduler.schedule_manager, "ScheduleManager"),
                          (_scheduler.callable_wrapper, "CallableWrapper")):
            with self.subTest(name=name):
                self.assertEqual(obj.__name__, name)
                self.assertEqual(obj.__module__, "scheduler")
                self.assertEqual(repr(obj), "<class 'scheduler.%s'>" % name)
        self.assertIs(s.tasklet, _scheduler.tasklet)
        self.assertIs(s.channel, _scheduler.channel)

    def test_taskletexit(self):
        te = _scheduler.TaskletExit
        self.assertIs(s.TaskletExit, te)
        self.assertEqual(te.__module__, "_scheduler")
        self.assertEqual(te.__name__, "TaskletExit")
        self.assertEqual(te.__mro__, (te, SystemExit, BaseException, object))

    def test_capsule(self):
        cap = _scheduler._C_API
        self.assertIs(s._C_API, cap)
        self.assertEqual(type(cap).__name__, "PyCapsule")
        is_valid = ctypes.pythonapi.PyCapsule_IsValid
        is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
        is_valid.restype = ctypes.c_int
        self.assertEqual(is_valid(cap, b"scheduler._C_API"), 1)

    def test_package_reexports(self):
        for name in dir(_scheduler):
            if name.startswith("__"):
                continue
            with self.subTest(name=name):
                self.assertIs(getattr(s, name), getattr(_scheduler, name))
        for mod in (collections, contextlib, threading, _scheduler):
            self.assertIs(getattr(s, mod.__name__), mod)
        self.assertEqual(s.__name__, "scheduler")
        self.assertNotEqual(s.__file__, getattr(_scheduler, "__file__", None))
        for name in ("getcurrent", "getmain", "getruncount", "calculateruncount", "schedule",
                     "schedule_remove", "run", "run_n_tasklets", "set_schedule_callback",
                     "get_schedule_callback", "set_channel_callback", "get_channel_callback",
                     "get_thread_info", "switch_trap", "enable_softswitch",
                     "get_schedule_manager", "get_number_of_active_schedule_managers",
                     "get_number_of_active_channels", "unblock_all_channels",
                     "set_use_nested_tasklets", "get_use_nested_tasklets",
                     "get_all_time_tasklet_count", "get_active_tasklet_count",
                     "QueueChannel", "block_trap", "TaskletExit"):
            self.assertTrue(hasattr(s, name), name)

    def test_subclassable_and_weakrefable(self):
        class T(s.tasklet):
            pass

        class C(s.channel):
            pass
        t, c = T(noop), C()
        self.assertIsInstance(t, s.tasklet)
        self.assertIsInstance(c, s.channel)
        for obj in (s.tasklet(), s.channel(), t, c):
            r = weakref.ref(obj)
            self.assertIs(r(), obj)
        t2 = s.tasklet()
        r = weakref.ref(t2)
        del t2
        gc.collect()
        self.assertIsNone(r())
        c2 = s.channel()
        r = weakref.ref(c2)
        del c2
        self.assertIsNone(r())

    def test_gc_tracking(self):
        self.assertTrue(gc.is_tracked(s.tasklet()))
        self.assertTrue(gc.is_tracked(s.tasklet(noop)))
        # The channel is a GC container (its waiters), unlike the reference's:
        # a tasklet blocked on a channel only it references is collected
        # (docs/stackless-divergence.md).
        self.assertTrue(gc.is_tracked(s.channel()))
        self.assertTrue(s.tasklet.__flags__ & (1 << 14))   # Py_TPFLAGS_HAVE_GC
        self.assertTrue(s.channel.__flags__ & (1 << 14))
        self.assertTrue(s.tasklet.__flags__ & (1 << 10))   # Py_TPFLAGS_BASETYPE
        self.assertTrue(s.channel.__flags__ & (1 << 10))

    def test_current_and_main_attributes(self):
        self.assertIs(s.current, s.getcurrent())
        self.assertIs(s.main, s.getmain())
        self.assertIs(s.current, s.main)
        seen = {}

        def body():
            seen["cur"] = s.current
            seen["main"] = s.main
        t = s.tasklet(body)()
        s.run()
        self.assertIs(seen["cur"], t)
        self.assertIs(seen["main"], s.getmain())

        def other():
            return (s.current, s.main, s.getcurrent(), s.getmain())
        ft = ForeignThread(other)
        try:
            cur, main, gcur, gmain = ft.value
            self.assertIs(cur, gcur)
            self.assertIs(main, gmain)
            self.assertIs(cur, main)
            self.assertIsNot(main, s.getmain())
            self.assertTrue(main.is_main)
        finally:
            ft.release()
        with self.assertRaises(AttributeError):
            s.no_such_attribute_here

    def test_invalid_tasklet_subclass(self):
        class Bad(s.tasklet):
            def __init__(self, *args):
                pass  # base __init__ not called
        t = Bad(noop)
        calls = {
            "bind": lambda: t.bind(noop),
            "bind_none": lambda: t.bind(None),
            "setup": lambda: t.setup(),
            "call": lambda: t(),
            "insert": t.insert,
            "remove": t.remove,
            "run": t.run,
            "switch": t.switch,
            "throw": lambda: t.throw(ValueError),
            "raise_exception": lambda: t.raise_exception(ValueError),
            "kill": t.kill,
        }
        for name, call in calls.items():
            with self.subTest(method=name):
                self.err(RuntimeError, INVALID_TASKLET, call)
        attrs = ["alive", "blocked", "scheduled", "paused", "block_trap", "is_current",
                 "is_main", "thread_id", "next", "prev", "frame", "method_name",
                 "module_name", "file_name", "line_number", "context", "parent_callsite",
                 "startTime", "endTime", "runTime", "highlighted", "dont_raise",
                 "context_manager_getter", "exception_handler", "times_switched_to"]
        for name in attrs:
            with self.subTest(get=name):
                self.err(RuntimeError, INVALID_TASKLET, getattr, t, name)
        good_values = {"block_trap": True, "context": "x", "parent_callsite": "x",
                       "runTime": 1.0, "highlighted": True, "dont_raise": True,
                       "context_manager_getter": None, "exception_handler": None}
        for name, value in good_values.items():
            with self.subTest(set=name):
                self.err(RuntimeError, INVALID_TASKLET, setattr, t, name, value)
        # set_context always raises its own RuntimeError; both texts are acceptable.
        with self.assertRaises(RuntimeError):
            t.set_context()
        # The invalid object can still be collected.
        r = weakref.ref(t)
        del t, calls, call
        gc.collect()
        self.assertIsNone(r())

    def test_invalid_channel_subclass(self):
        class Bad(s.channel):
            def __init__(self):
                pass
        c = Bad()
        calls = {
            "send": lambda: c.send(1),
            "receive": c.receive,
            "send_exception": lambda: c.send_exception(ValueError),
            "send_throw": lambda: c.send_throw(ValueError),
            "clear": c.clear,
            "close": c.close,
            "open": c.open,
            "iter": lambda: iter(c),
            "next": lambda: next(c),
        }
        for name, call in calls.items():
            with self.subTest(method=name):
                self.err(RuntimeError, INVALID_CHANNEL, call)
        for name in ("preference", "balance", "queue", "closing", "closed"):
            with self.subTest(get=name):
                self.err(RuntimeError, INVALID_CHANNEL, getattr, c, name)
        self.err(RuntimeError, INVALID_CHANNEL, setattr, c, "preference", 0)


# ---- 2. tasklet ------------------------------------------------------------------------------

class ConstructionTest(Base):
    def test_not_callable(self):
        for bad in (1, "f", object(), (noop,)):
            with self.subTest(bad=bad):
                self.err(TypeError, "parameter must be callable", s.tasklet, bad)

    def test_none_and_keywords(self):
        t = s.tasklet(None)
        self.assertFalse(t.alive)
        self.err(RuntimeError, MUST_BIND, t.setup)
        t = s.tasklet(foo=1, bar=2)  # keywords silently ignored
        self.assertFalse(t.alive)
        t = s.tasklet(callable=noop)  # ignored too: stays unbound
        self.err(RuntimeError, MUST_BIND, t.setup)
        t = s.tasklet(noop, foo=1)
        self.assertEqual(t.method_name, "noop")
        self.assertEqual(t.thread_id, threading.get_ident())

    def test_second_positional_argument(self):
        # Reference: segfault at exit. Must be rejected (TypeError) or ignored.
        rc, out, err = run_snippet("""
            import scheduler as s
            def f(): print("ran")
            try:
                t = s.tasklet(f, 1)
            except TypeError:
                print("rejected")
            else:
                print("main" if t.is_main else "normal")
                t(); s.run()
            print("end")
            """)
        self.assertEqual(rc, 0, err)
        self.assertIn(out, ("rejected\nend\n", "normal\nran\nend\n"))


class BindTest(Base):
    def test_not_callable(self):
        t = s.tasklet()
        for bad in (1, "x", object()):
            with self.subTest(bad=bad):
                self.err(TypeError, "parameter must be callable", t.bind, bad)
                self.err(TypeError, "parameter must be callable", t.bind, callable=bad)
                self.err(TypeError, "parameter must be callable", t.bind, bad, ())

    def test_unbind_current(self):
        self.err(RuntimeError, "cannot unbind current tasklet", s.getmain().bind, None)
        self.assertIs(s.getmain().bind(), s.getmain())  # nothing: only resets the counter
        seen = []

        def body():
            seen.append(assert_error(self, RuntimeError, "cannot unbind current tasklet",
                                     s.getcurrent().bind, None))
            seen.append(assert_error(self, RuntimeError, "cannot unbind current tasklet",
                                     s.getcurrent().bind, callable=None))
        s.tasklet(body)()
        s.run()
        self.assertEqual(len(seen), 2)

    def test_unbind_scheduled(self):
        t = s.tasklet(noop)()
        self.err(RuntimeError, "cannot unbind scheduled tasklet", t.bind, None)
        self.assertTrue(t.alive)
        s.run()

    def test_unbind_ok(self):
        t = s.tasklet(noop).bind(noop, ())
        self.assertTrue(t.alive)
        self.assertIs(t.bind(None), t)
        self.assertFalse(t.alive)
        self.err(RuntimeError, MUST_BIND, t.setup)
        t = finished_tasklet()
        self.assertIs(t.bind(None), t)

    def test_other_thread(self):
        ft = ForeignThread(lambda: (s.tasklet(noop), s.tasklet()))
        try:
            for t in ft.value:
                for call in (lambda: t.bind(noop), lambda: t.bind(None),
                             lambda: t.bind(noop, (1,))):
                    self.err(RuntimeError,
                             "Failed to bind tasklet: Cannot bind tasklet from another thread",
                             call)
        finally:
            ft.release()

    def test_args_checked_at_first_switch(self):
        t = s.tasklet().bind(noop, 5)
        self.assertTrue(t.alive)
        self.assertFalse(t.scheduled)
        self.err(RuntimeError, "Arguments must be a tuple", t.run)
        t = s.tasklet().bind(noop, [1, 2])
        self.err(RuntimeError, "Arguments must be a tuple", t.run)
        t = s.tasklet().bind(noop, (), 5)
        self.err(RuntimeError, "kwargs must be a dict", t.run)
        t = s.tasklet().bind(noop, kwargs=[("a", 1)])
        self.err(RuntimeError, "kwargs must be a dict", t.run)
        t = s.tasklet().bind(noop, (1,), {"a": 1})
        self.assertIsNone(t.run())

    def test_bind_nothing_only_resets_counter(self):
        # "Always resets times_switched_to to 0. bind() with nothing does only that."
        t = s.tasklet(noop)
        self.assertIs(t.bind(), t)
        self.assertFalse(t.alive)
        t = paused_tasklet()  # started, switched to once
        self.assertEqual(t.times_switched_to, 1)
        self.assertIs(t.bind(), t)
        self.assertEqual(t.times_switched_to, 0)
        self.assertTrue(t.alive and t.paused)
        t.insert()
        s.run()
        self.assertFalse(t.alive)

    def test_bind_args_keeps_callable(self):
        got = []

        def f(x):
            got.append(x)
        t = s.tasklet(f)
        t.setup(1)
        t.remove()
        self.assertIs(t.bind(None, (2,)), t)
        t.run()
        self.assertEqual(got, [2])
        t = s.tasklet(f)
        t.bind(args=(3,))
        t.run()
        self.assertEqual(got, [2, 3])


class SetupTest(Base):
    def test_unbound(self):
        t = s.tasklet()
        self.err(RuntimeError, MUST_BIND, t.setup)
        self.err(RuntimeError, MUST_BIND, t.setup, 1, a=2)
        self.err(RuntimeError, MUST_BIND, t)
        self.assertEqual(s.getruncount(), 1)

    def test_other_thread(self):
        ft = ForeignThread(lambda: s.tasklet(noop))
        try:
            msg = "Failed to setup tasklet: Cannot setup tasklet from another thread"
            self.err(RuntimeError, msg, ft.value.setup)
            self.err(RuntimeError, msg, ft.value, 1)
            self.assertFalse(ft.value.scheduled)
        finally:
            ft.release()

    def test_returns_self(self):
        t = s.tasklet(noop)
        self.assertIs(t.setup(1, a=2), t)
        self.assertIs(t.prev, s.getmain())
        self.assertIs(s.getmain().next, t)
        t2 = s.tasklet(noop)
        self.assertIs(t2(), t2)
        self.assertIs(t2.prev, t)
        s.run()


class InsertRemoveTest(Base):
    def test_insert_blocked(self):
        t, ch, _ = blocked_receiver()
        self.err(RuntimeError, "Failed to insert tasklet: Cannot insert blocked tasklet", t.insert)
        self.assertTrue(t.blocked)
        self.assertEqual(ch.balance, -1)

    def test_insert_dead(self):
        msg = "Failed to insert tasklet: Cannot insert dead tasklet"
        self.err(RuntimeError, msg, finished_tasklet().insert)
        self.err(RuntimeError, msg, s.tasklet().insert)
        self.err(RuntimeError, msg, s.tasklet(noop).insert)
        self.assertEqual(s.getruncount(), 1)

    def test_insert_ok(self):
        t = paused_tasklet()
        self.assertIs(t.insert(), t)
        self.assertIs(t.insert(), t)  # already scheduled: no-op
        self.assertEqual(s.getruncount(), 2)
        self.assertFalse(t.paused)
        s.run()

    def test_remove_never_raises(self):
        for t in (s.tasklet(), s.tasklet(noop), finished_tasklet(), paused_tasklet(),
                  blocked_receiver()[0], s.getmain()):
            with self.subTest(t=t):
                self.assertIs(t.remove(), t)
        t = s.tasklet(noop)()
        self.assertIs(t.remove(), t)
        self.assertTrue(t.paused)
        self.assertFalse(t.scheduled)
        self.assertEqual(s.getruncount(), 1)

    def test_insert_remove_other_thread(self):
        ft = ForeignThread(lambda: s.tasklet(noop)())
        try:
            t = ft.value
            self.assertIs(t.remove(), t)
            self.assertFalse(t.scheduled)
            self.assertIs(t.insert(), t)
            self.assertTrue(t.scheduled)
            self.assertEqual(s.getruncount(), 1)
        finally:
            ft.release()
        self.assertFalse(t.alive)


class RunSwitchTest(Base):
    def test_run_dead(self):
        msg = "Cannot run tasklet that is not alive (dead)"
        self.err(RuntimeError, msg, finished_tasklet().run)
        self.err(RuntimeError, msg, s.tasklet().run)
        self.err(RuntimeError, msg, s.tasklet(noop).run)

    def test_run_blocked(self):
        t, _, _ = blocked_receiver()
        self.err(RuntimeError, "Cannot run tasklet that is blocked", t.run)

    def test_run_other_thread_is_silent(self):
        ft = ForeignThread(lambda: s.tasklet(noop)())
        try:
            self.assertIsNone(ft.value.run())
            self.assertTrue(ft.value.scheduled)
            self.assertTrue(ft.value.alive)
        finally:
            ft.release()

    def test_switch_dead(self):
        msg = "You cannot run an unbound(dead) tasklet"
        self.err(RuntimeError, msg, finished_tasklet().switch)
        self.err(RuntimeError, msg, s.tasklet().switch)
        self.err(RuntimeError, msg, s.tasklet(noop).switch)

    def test_switch_blocked(self):
        t, _, _ = blocked_receiver()
        self.err(RuntimeError, "Cannot switch to a tasklet that is blocked", t.switch)

    def test_switch_other_thread(self):
        ft = ForeignThread(lambda: s.tasklet(noop)())
        try:
            self.err(RuntimeError,
                     "Failed to switch tasklet: Cannot switch tasklet from another thread",
                     ft.value.switch)
        finally:
            ft.release()

    def test_switch_trap(self):
        t = s.tasklet(noop)()
        self.assertEqual(s.switch_trap(1), 0)
        try:
            self.err(RuntimeError, SWITCH_TRAP, t.switch)
            self.err(RuntimeError, SWITCH_TRAP, t.run)
            self.err(RuntimeError, SWITCH_TRAP, s.schedule)
            self.err(RuntimeError, SWITCH_TRAP, s.schedule_remove)
            self.err(RuntimeError, SWITCH_TRAP, s.run)
            self.assertTrue(t.scheduled)
        finally:
            self.assertEqual(s.switch_trap(-1), 1)
        s.run()
        self.assertFalse(t.alive)

    def test_switch_to_current_is_noop(self):
        # Reference: segfault. Must be a no-op returning None.
        rc, out, err = run_snippet("""
            import scheduler as s
            print(s.getcurrent().switch())
            def body():
                print("in", s.getcurrent().switch(), s.getcurrent().alive)
            t = s.tasklet(body)(); s.run()
            print("end", t.alive)
            """)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "None\nin None True\nend False\n")


class ThrowTest(Base):
    MISSING = "missing required argument 'exc' (pos 1)"
    NOT_EXC = "exceptions must be classes, or instances"

    def test_missing_exc(self):
        t, _, box = blocked_receiver()
        self.err(TypeError, self.MISSING, t.throw)
        self.err(TypeError, self.MISSING, t.throw, None)
        self.err(TypeError, self.MISSING, t.throw, exc=None)
        self.err(TypeError, self.MISSING, t.throw, None, "val")
        self.err(TypeError, self.MISSING, t.throw, val=1)
        self.err(TypeError, self.MISSING, t.throw, pending=True)
        # issue 13: an instance with a value says so (the reference said "missing")
        sep = "instance exception may not have a separate value"
        self.err(TypeError, sep, t.throw, ValueError("x"), "v")
        self.err(TypeError, sep, t.throw, ValueError("x"), 0)
        self.err(TypeError, sep, t.throw, exc=ValueError("x"), val=())
        self.assertTrue(t.blocked)
        self.assertEqual(box, {})

    def test_not_an_exception(self):
        t, _, box = blocked_receiver()
        for bad in (1, "ValueError", int, object, object(), [ValueError],
                    s.TaskletExit(), SystemExit(), KeyboardInterrupt(), BaseException()):
            with self.subTest(bad=bad):
                self.err(TypeError, self.NOT_EXC, t.throw, bad)
                self.err(TypeError, self.NOT_EXC, t.throw, exc=bad, pending=True)
        self.assertTrue(t.blocked)
        self.assertEqual(box, {})

    def test_unparsable(self):
        t, _, box = blocked_receiver()
        msg = "Failed to parse arguments"
        self.err(RuntimeError, msg, t.throw, ValueError, None, None, False, 5)
        self.err(RuntimeError, msg, t.throw, ValueError, bogus=1)
        self.err(RuntimeError, msg, t.throw, ValueError, exc=ValueError)
        self.assertTrue(t.blocked)

    def test_other_thread(self):
        ft = ForeignThread(lambda: s.tasklet(noop)())
        try:
            msg = "Failed to throw tasklet: Cannot throw tasklet from another thread"
            self.err(RuntimeError, msg, ft.value.throw, ValueError)
            self.err(RuntimeError, msg, ft.value.throw, ValueError, pending=True)
            self.assertTrue(ft.value.alive)
        finally:
            ft.release()

    def test_dead_target(self):
        t = finished_tasklet()
        self.assertIsNone(t.throw(s.TaskletExit))
        self.assertIsNone(t.throw(s.TaskletExit, pending=True))
        self.err(RuntimeError, "You cannot throw to a dead tasklet", t.throw, ValueError)
        self.err(RuntimeError, "You cannot throw to a dead tasklet", t.throw, ValueError("x"))
        self.err(RuntimeError, "You cannot throw to a dead tasklet.", t.throw, ValueError,
                 pending=True)
        self.err(RuntimeError, "You cannot throw to a dead tasklet.", t.throw, KeyError, "k",
                 None, True)

    def test_tb_ignored_and_instances(self):
        t, ch, box = blocked_receiver()
        # issue 13: a tb that is not a traceback is an error (the reference ignored it)
        self.err(TypeError, "throw() third argument must be a traceback object",
                 t.throw, KeyError, "k", "not a traceback")
        self.assertEqual(ch.balance, -1)
        self.assertIsNone(t.throw(KeyError, "k"))
        self.assertIsInstance(box["error"], KeyError)
        self.assertEqual(box["error"].args, ("k",))
        self.assertFalse(t.alive)
        self.assertEqual(ch.balance, 0)
        t, ch, box = blocked_receiver()
        e = ValueError("inst")
        t.throw(e, tb=None)
        self.assertIs(box["error"], e)
        t, ch, box = blocked_receiver()
        t.throw(exc=KeyError, val=("a", "b"), pending=True)
        self.assertEqual(ch.balance, -1)
        s.run()
        self.assertEqual(box["error"].args, ("a", "b"))

    def test_throw_current_raises_immediately(self):
        seen = []

        def body():
            try:
                s.getcurrent().throw(KeyError, "now")
            except KeyError as e:
                seen.append(e.args)
        s.tasklet(body)()
        s.run()
        self.assertEqual(seen, [("now",)])
        self.err(KeyError, None, s.getcurrent().throw, KeyError)


class RaiseExceptionTest(Base):
    def test_argument_rules(self):
        t, _, box = blocked_receiver()
        self.err(RuntimeError, "Failed to parse arguments", t.raise_exception)
        self.err(TypeError, "exceptions must be classes, or instances", t.raise_exception, 1)
        self.err(TypeError, "exceptions must be classes, or instances", t.raise_exception,
                 s.TaskletExit())
        self.assertTrue(t.blocked)
        # Extra arguments: the reference rejects them, the recommended behaviour
        # raises exc_class(*args) in the tasklet. Either is accepted.
        try:
            t.raise_exception(KeyError, "a", "b")
        except RuntimeError as e:
            self.assertEqual(str(e), "Failed to parse arguments")
            self.assertTrue(t.blocked)
        else:
            self.assertEqual(box["error"].args, ("a", "b"))
        with self.assertRaises(TypeError):
            t.raise_exception(exc_class=KeyError)

    def test_one_argument_like_throw(self):
        t, ch, box = blocked_receiver()
        self.assertIsNone(t.raise_exception(KeyError))
        self.assertIs(type(box["error"]), KeyError)
        self.assertEqual(ch.balance, 0)
        t = finished_tasklet()
        self.err(RuntimeError, "You cannot throw to a dead tasklet", t.raise_exception, KeyError)
        self.assertIsNone(t.raise_exception(s.TaskletExit))

    def test_other_thread(self):
        ft = ForeignThread(lambda: s.tasklet(noop)())
        try:
            with self.assertRaises(RuntimeError) as cm:
                ft.value.raise_exception(ValueError)
            self.assertRegex(str(cm.exception),
                             r"^Failed to (\w+) tasklet: Cannot \1 tasklet from another thread$")
        finally:
            ft.release()


class KillTest(Base):
    def test_dead_and_double_kill_are_noops(self):
        t = finished_tasklet()
        self.assertIsNone(t.kill())
        self.assertIsNone(t.kill(pending=True))
        t, ch, box = blocked_receiver()
        self.assertIsNone(t.kill(pending=True))
        self.assertIsNone(t.kill(pending=True))
        self.assertIsNone(t.kill(True))
        self.assertEqual(ch.balance, 0)
        s.run()
        self.assertFalse(t.alive)
        self.assertIs(type(box["error"]), s.TaskletExit)

    def test_other_thread(self):
        ft = ForeignThread(lambda: s.tasklet(noop)())
        try:
            msg = "Failed to kill tasklet: Cannot kill tasklet from another thread"
            self.err(RuntimeError, msg, ft.value.kill)
            self.err(RuntimeError, msg, ft.value.kill, pending=True)
            self.assertTrue(ft.value.alive)
        finally:
            ft.release()

    def test_kill_current(self):
        seen = []

        def body():
            try:
                s.getcurrent().kill()
            except s.TaskletExit:
                seen.append("raised")
                raise
            seen.append("not raised")
        t = s.tasklet(body)()
        s.run()
        self.assertEqual(seen, ["raised"])
        self.assertFalse(t.alive)

    def test_bad_arguments(self):
        t = s.tasklet(noop)()
        with self.assertRaises(TypeError):
            t.kill(True, 1)
        with self.assertRaises(TypeError):
            t.kill(bogus=1)
        self.assertTrue(t.alive)


class MiscMethodTest(Base):
    def test_set_context(self):
        for t in (s.tasklet(), s.getmain(), finished_tasklet()):
            self.err(RuntimeError, "Tasklet_setcontext Not yet implemented", t.set_context)
            with self.assertRaises(TypeError):
                t.set_context("x")


class AttributeSetterTest(Base):
    def test_block_trap(self):
        t = s.tasklet()
        for bad in (1, 0, None, "True", 1.0):
            with self.subTest(bad=bad):
                self.err(RuntimeError, "Blocktrap expects a boolean", setattr, t, "block_trap", bad)
        self.assertFalse(t.block_trap)
        t.block_trap = True
        self.assertTrue(t.block_trap)
        with self.assertRaises((TypeError, RuntimeError, AttributeError)):
            del t.block_trap
        self.assertTrue(t.block_trap)

    def test_text_attributes(self):
        t = s.tasklet()
        for name in ("context", "parent_callsite"):
            self.assertEqual(getattr(t, name), "")
            for bad in (1, None, b"x", ["x"]):
                with self.subTest(name=name, bad=bad):
                    self.err(TypeError, "value must be a string", setattr, t, name, bad)
            setattr(t, name, "text")
            self.assertEqual(getattr(t, name), "text")

            class S(str):
                pass
            setattr(t, name, S("sub"))
            self.assertEqual(getattr(t, name), "sub")

    def test_run_time(self):
        t = s.tasklet()
        self.assertEqual(t.runTime, 0.0)
        self.err(TypeError, "must be real number, not str", setattr, t, "runTime", "abc")
        self.err(TypeError, "must be real number, not NoneType", setattr, t, "runTime", None)
        for good, expect in ((1, 1.0), (2.5, 2.5), (True, 1.0)):
            t.runTime = good
            self.assertEqual(t.runTime, expect)

        class F:
            def __float__(self):
                return 7.5
        t.runTime = F()
        self.assertEqual(t.runTime, 7.5)

    def test_highlighted(self):
        t = s.tasklet()
        self.assertFalse(t.highlighted)
        for bad in (1, 0, None, "yes"):
            with self.subTest(bad=bad):
                self.err(TypeError, "highlighted must be either a True or False value",
                         setattr, t, "highlighted", bad)
        t.highlighted = True
        self.assertTrue(t.highlighted)

    def test_dont_raise(self):
        t = s.tasklet()
        self.assertFalse(t.dont_raise)
        for bad in (1, 0, None, "yes"):
            with self.subTest(bad=bad):
                self.err(TypeError, "dont_raise must be either a True or False value",
                         setattr, t, "dont_raise", bad)
        t.dont_raise = True
        t.bind(noop)  # bound, no arguments yet: still changeable
        t.dont_raise = True
        msg = "dont_raise cannot be altered after the Tasklet has been bound"
        t.setup()
        self.err(RuntimeError, msg, setattr, t, "dont_raise", False)
        self.err(RuntimeError, msg, setattr, t, "dont_raise", True)
        s.run()
        t = s.tasklet().bind(noop, ())
        self.err(RuntimeError, msg, setattr, t, "dont_raise", True)

    def test_callables(self):
        t = s.tasklet()
        cases = (("context_manager_getter",
                  "context_manager_fun must be a callable that returns a context manager object"),
                 ("exception_handler", "exception_handler must be a callable"))
        for name, msg in cases:
            self.assertIsNone(getattr(t, name))
            for bad in (1, "f", object()):
                with self.subTest(name=name, bad=bad):
                    self.err(TypeError, msg, setattr, t, name, bad)
            setattr(t, name, noop)
            self.assertIs(getattr(t, name), noop)
            setattr(t, name, None)
            self.assertIsNone(getattr(t, name))

    def test_exception_handler_getter_new_reference(self):
        t = s.tasklet()

        def handler(info):
            pass
        t.exception_handler = handler
        before = sys.getrefcount(handler)
        for _ in range(20):
            self.assertIs(t.exception_handler, handler)
        self.assertEqual(sys.getrefcount(handler), before)
        del t
        gc.collect()
        self.assertEqual(sys.getrefcount(handler), before - 1)

    def test_read_only_attributes(self):
        t = s.tasklet(noop)
        for name in ("alive", "blocked", "scheduled", "paused", "is_current", "is_main",
                     "thread_id", "next", "prev", "frame", "method_name", "module_name",
                     "file_name", "line_number", "startTime", "endTime", "times_switched_to"):
            with self.subTest(name=name):
                with self.assertRaises(AttributeError):
                    setattr(t, name, getattr(t, name))


# ---- 3. channel ------------------------------------------------------------------------------

class ChannelTest(Base):
    def test_construction_ignores_arguments(self):
        c = s.channel(1, 2, x=3)
        self.assertEqual((c.preference, c.balance, c.closing, c.closed, c.queue),
                         (-1, 0, False, False, None))

    def test_closed(self):
        c = s.channel()
        c.close()
        self.assertTrue(c.closed)
        self.err(ValueError, "Send operation on a closed channel", c.send, 1)
        self.err(ValueError, "receive operation on a closed channel", c.receive)
        self.err(ValueError, "Send operation on a closed channel", c.send_exception, ValueError)
        self.err(ValueError, "Send operation on a closed channel", c.send_throw, ValueError)
        e = self.err(StopIteration, "Channel is closed", next, c)
        self.assertEqual(e.args, ("Channel is closed",))
        self.assertEqual(list(c), [])
        c.open()
        self.assertFalse(c.closing or c.closed)

    def test_closing_with_blocked_tasklet(self):
        t, c, box = blocked_receiver()
        c.close()
        self.assertTrue(c.closing)
        self.assertFalse(c.closed)
        self.err(ValueError, "receive operation on a closed channel", c.receive)
        c.send(5)  # completes with the already-blocked receiver
        self.assertEqual(box["value"], 5)
        self.assertTrue(c.closed)
        self.err(ValueError, "Send operation on a closed channel", c.send, 1)

    def test_block_trap(self):
        c = s.channel()
        s.getcurrent().block_trap = True
        try:
            s.tasklet(noop)()
            self.err(RuntimeError, BLOCK_TRAP, c.send, 1)
            self.err(RuntimeError, BLOCK_TRAP, c.receive)
            self.assertEqual(c.balance, 0)
            self.assertEqual(s.getruncount(), 2)
        finally:
            s.getcurrent().block_trap = False
        seen = []

        def body():
            s.getcurrent().block_trap = True
            seen.append(assert_error(self, RuntimeError, BLOCK_TRAP, c.receive))
            seen.append(assert_error(self, RuntimeError, BLOCK_TRAP, c.send, 1))
        s.tasklet(body)()
        s.run()
        self.assertEqual(len(seen), 2)
        self.assertEqual(c.balance, 0)

    def test_deadlock(self):
        c = s.channel()
        self.err(RuntimeError, DEADLOCK, c.send, 1)
        self.assertEqual(c.balance, 0)
        self.err(RuntimeError, DEADLOCK, c.receive)
        self.assertEqual(c.balance, 0)
        self.err(RuntimeError, DEADLOCK, c.send_exception, ValueError)
        self.err(RuntimeError, DEADLOCK, c.send_throw, ValueError)
        s.tasklet(noop)()
        self.err(RuntimeError, DEADLOCK, c.receive)
        self.assertEqual((c.balance, s.getruncount()), (0, 1))
        self.err(RuntimeError, DEADLOCK, next, c)

    def test_send_exception_arguments(self):
        c = s.channel()
        self.err(RuntimeError, "Exception type required", c.send_exception)
        for bad in (1, "x", int, object(), None):
            with self.subTest(bad=bad):
                self.err(RuntimeError, "Exception type or instance required", c.send_exception, bad)
                self.err(RuntimeError, "Exception type or instance required", c.send_exception,
                         bad, 1, 2)
        self.assertEqual(c.balance, 0)

    def test_send_exception_delivery(self):
        cases = (((ValueError,), ()), ((ValueError, 1), (1,)), ((ValueError, (1, 2)), (1, 2)),
                 ((ValueError, 1, 2), (1, 2)))
        for args, expect in cases:
            with self.subTest(args=args):
                t, c, box = blocked_receiver()
                c.send_exception(*args)
                self.assertIs(type(box["error"]), ValueError)
                self.assertEqual(box["error"].args, expect)
        # Reference bug (SystemError): an instance is raised as it is.
        t, c, box = blocked_receiver()
        e = KeyError("inst")
        c.send_exception(e)
        self.assertIs(box["error"], e)

    def test_send_throw_arguments(self):
        c = s.channel()
        self.err(TypeError, "Channel.send_throw() missing required argument 'exc' (pos 1)",
                 c.send_throw)
        self.err(TypeError, "Channel.send_throw() missing required argument 'exc' (pos 1)",
                 c.send_throw, val=1)
        msg = "Channel.send_throw() argument 'exc' (pos 1) must be an Exception type or instance"
        for bad in (1, "x", int, object(), None):
            with self.subTest(bad=bad):
                self.err(TypeError, msg, c.send_throw, bad)
                self.err(TypeError, msg, c.send_throw, exc=bad, val=1)
        with self.assertRaises(TypeError):
            c.send_throw(ValueError, 1, None, 4)
        with self.assertRaises(TypeError):
            c.send_throw(ValueError, bogus=1)
        self.assertEqual(c.balance, 0)

    def test_send_throw_delivery(self):
        # Reference crash: an instance. Run it in a subprocess first.
        rc, out, err = run_snippet("""
            import scheduler as s
            c = s.channel(); box = {}
            def r():
                try: c.receive()
                except Exception as e: box["e"] = e
            s.tasklet(r)(); s.run()
            e = KeyError("inst"); c.send_throw(e)
            print(box["e"] is e)
            """)
        self.assertEqual((rc, out), (0, "True\n"), err)
        for args, expect in (((ValueError,), ()), ((ValueError, "v"), ("v",)),
                             ((ValueError, (1, 2)), (1, 2)), ((ValueError, None, None), ())):
            with self.subTest(args=args):
                t, c, box = blocked_receiver()
                c.send_throw(*args)
                self.assertIs(type(box["error"]), ValueError)
                self.assertEqual(box["error"].args, expect)
        try:
            raise KeyError("tb")
        except KeyError as e:
            tb = e.__traceback__
        t, c, box = blocked_receiver()
        c.send_throw(exc=KeyError, val="x", tb=tb)
        self.assertIs(type(box["error"]), KeyError)

    def test_preference_setter(self):
        c = s.channel()
        for bad in ("1", 1.0, None, [1]):
            with self.subTest(bad=bad):
                self.err(TypeError, "The first attribute value must be a number",
                         setattr, c, "preference", bad)
        self.assertEqual(c.preference, -1)
        for v in (0, 1, -1):
            c.preference = v
            self.assertEqual(c.preference, v)
        c.preference = 1
        for out_of_range in (2, -2, 100, -100, 2**31, -2**31 - 1, 2**63, 2**64, -2**70, 10**100):
            with self.subTest(value=out_of_range):
                c.preference = out_of_range
                self.assertEqual(c.preference, 1)
        self.err(TypeError, "Cannot delete the first attribute", delattr, c, "preference")
        self.assertEqual(c.preference, 1)

    def test_read_only_attributes(self):
        c = s.channel()
        for name in ("balance", "queue", "closing", "closed"):
            with self.subTest(name=name):
                with self.assertRaises(AttributeError):
                    setattr(c, name, getattr(c, name))

    def test_clear_close_open_iter(self):
        c = s.channel()
        self.assertIs(iter(c), c)
        self.assertIsNone(c.clear())
        self.assertIsNone(c.close())
        self.assertIsNone(c.open())
        for m in (c.clear, c.close, c.open, c.receive):
            with self.assertRaises(TypeError):
                m(1)
        with self.assertRaises(TypeError):
            c.send()
        with self.assertRaises(TypeError):
            c.send(1, 2)


# ---- 5. module functions ---------------------------------------------------------------------

class ModuleFunctionTest(Base):
    def test_run_n_tasklets(self):
        self.err(RuntimeError, "Invalid number: Number of Tasklets to run must be greater than 0.",
                 s.run_n_tasklets, 0)
        self.err(TypeError, "number_of_tasklets() takes exactly 1 argument (0 given)",
                 s.run_n_tasklets)
        self.err(TypeError, "number_of_tasklets() takes exactly 1 argument (2 given)",
                 s.run_n_tasklets, 1, 2)
        for bad in ("1", 1.5, None):
            with self.subTest(bad=bad):
                with self.assertRaises(TypeError):
                    s.run_n_tasklets(bad)
        ts = [s.tasklet(noop)() for _ in range(3)]
        # issue 13: negative counts are an error (the reference wrapped them)
        self.err(ValueError, "Invalid number: Number of Tasklets to run cannot be negative.",
                 s.run_n_tasklets, -1)
        self.assertIsNone(s.run_n_tasklets(2**40))
        self.assertEqual(s.getruncount(), 1)
        ts = [s.tasklet(noop)() for _ in range(3)]
        self.assertIsNone(s.run_n_tasklets(2))
        self.assertEqual(s.getruncount(), 2)
        self.assertEqual([t.alive for t in ts], [False, False, True])

    def test_switch_trap(self):
        msg = "Scheduler_switch_trap requires a delta argument."
        self.err(RuntimeError, msg, s.switch_trap)
        self.err(RuntimeError, msg, s.switch_trap, "1")
        self.err(RuntimeError, msg, s.switch_trap, None)
        self.assertEqual(s.switch_trap(0), 0)
        self.assertEqual(s.switch_trap(2), 0)
        self.assertEqual(s.switch_trap(-1), 2)
        self.assertEqual(s.switch_trap(-1), 1)
        self.assertEqual(s.switch_trap(0), 0)

    def test_enable_softswitch(self):
        msg = ("enable_soft_switch is only implemented for legacy reasons, the value cannot be "
               "changed.")
        for bad in (True, False, 0, 1, "x"):
            with self.subTest(bad=bad):
                self.err(RuntimeError, msg, s.enable_softswitch, bad)
        self.assertIs(s.enable_softswitch(None), False)
        with self.assertRaises(TypeError):
            s.enable_softswitch()
        with self.assertRaises(TypeError):
            s.enable_softswitch(None, None)

    def test_set_use_nested_tasklets(self):
        try:
            self.err(TypeError, "'str' object cannot be interpreted as an integer",
                     s.set_use_nested_tasklets, "x")
            self.assertIs(s.get_use_nested_tasklets(), True)
            with self.assertRaises(TypeError):
                s.set_use_nested_tasklets()
            with self.assertRaises(TypeError):
                s.set_use_nested_tasklets(1.5)
            # issue 13: any integer, by its truth (the reference overflowed past 255)
            for flag, want in ((256, True), (-1, True), (2**70, True), (300, True), (0, False)):
                with self.subTest(flag=flag):
                    self.assertIsNone(s.set_use_nested_tasklets(flag))
                    self.assertIs(s.get_use_nested_tasklets(), want)
            s.set_use_nested_tasklets(True)
            self.assertIsNone(s.set_use_nested_tasklets(0))
            self.assertIs(s.get_use_nested_tasklets(), False)
            self.assertIsNone(s.set_use_nested_tasklets(255))
            self.assertIs(s.get_use_nested_tasklets(), True)
            s.set_use_nested_tasklets(False)
            s.set_use_nested_tasklets(True)
            self.assertIs(s.get_use_nested_tasklets(), True)
        finally:
            s.set_use_nested_tasklets(True)

    def test_callback_setters(self):
        for setter, getter in ((s.set_schedule_callback, s.get_schedule_callback),
                               (s.set_channel_callback, s.get_channel_callback)):
            with self.subTest(setter=setter.__name__):
                for bad in (1, "cb", object()):
                    self.err(TypeError, "parameter must be callable or None.", setter, bad)
                with self.assertRaises(TypeError):
                    setter()
                self.assertIsNone(getter())

                def cb(*a):
                    pass
                self.assertIsNone(setter(cb))
                self.err(TypeError, "parameter must be callable or None.", setter, 5)
                self.assertIs(getter(), cb)
                self.assertIs(setter(None), cb)
                self.assertIsNone(getter())

    def test_raising_callbacks_are_unraisable(self):
        reported = []
        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda u: reported.append(u.exc_type)

        def bad_cb(*args):
            raise ZeroDivisionError("cb")
        try:
            s.set_schedule_callback(bad_cb)
            t = s.tasklet(noop)()
            self.assertIsNone(s.run())
            self.assertFalse(t.alive)
            s.set_schedule_callback(None)
            self.assertIn(ZeroDivisionError, reported)
            reported.clear()
            s.set_channel_callback(bad_cb)
            t, c, box = blocked_receiver()
            self.assertIsNone(c.send("v"))
            self.assertEqual(box["value"], "v")
            self.err(RuntimeError, DEADLOCK, s.channel().receive)
            s.set_channel_callback(None)
            self.assertIn(ZeroDivisionError, reported)
            self.assertEqual(s.getruncount(), 1)
        finally:
            sys.unraisablehook = old_hook
            s.set_schedule_callback(None)
            s.set_channel_callback(None)

    def test_noarg_functions_reject_arguments(self):
        # schedule(retval), schedule_remove(retval) and get_thread_info(thread_id)
        # take Stackless's optional argument: tests/python/test_stackless_api.py
        for f in (s.getcurrent, s.getmain, s.getruncount, s.calculateruncount,
                  s.get_schedule_callback, s.get_channel_callback,
                  s.get_schedule_manager,
                  s.get_number_of_active_schedule_managers, s.get_number_of_active_channels,
                  s.unblock_all_channels, s.get_use_nested_tasklets,
                  s.get_all_time_tasklet_count, s.get_active_tasklet_count):
            with self.subTest(f=f.__name__):
                with self.assertRaises(TypeError):
                    f(1)
        self.assertEqual(s.getruncount(), 1)

    def test_thread_info(self):
        main, cur, n = s.get_thread_info()
        self.assertIs(main, s.getmain())
        self.assertIs(cur, s.getcurrent())
        self.assertEqual(n, s.getruncount() + 1)


# ---- 6. QueueChannel and block_trap ---------------------------------------------------------

class QueueChannelTest(Base):
    def test_basics(self):
        q = s.QueueChannel()
        self.assertIsInstance(q, s.channel)
        self.assertIsInstance(q.data_queue, collections.deque)
        self.assertEqual(q.preference, 1)
        q.send(1)
        q.send_sequence([2, 3])
        self.assertEqual((q.balance, len(q)), (3, 3))
        self.assertEqual(s.channel.balance.__get__(q), 0)
        self.assertEqual([q.receive(), next(q), q.receive()], [1, 2, 3])
        self.assertEqual((q.balance, len(q)), (0, 0))

    def test_exceptions(self):
        q = s.QueueChannel()
        q.send_exception(ValueError, 1, 2)
        e = self.err(ValueError, None, q.receive)
        # issue 13: the receiver gets ValueError(1, 2), as from a plain channel
        # (the reference's QueueChannel raised ValueError((1, 2)))
        self.assertEqual(e.args, (1, 2))
        q.send_throw(KeyError, "v")
        e = self.err(KeyError, None, q.receive)
        self.assertEqual(e.args, ("v",))
        q.send_throw(KeyError)
        e = self.err(KeyError, None, q.receive)
        self.assertEqual(e.args, ())

    def test_empty_receive_deadlocks(self):
        q = s.QueueChannel()
        self.err(RuntimeError, DEADLOCK, q.receive)
        self.assertEqual(q.balance, 0)

    def test_closing(self):
        q = s.QueueChannel()
        q.send(1)
        q.close()
        self.err(ValueError, "Send operation on a closed channel", q.send, 2)
        self.assertEqual(q.receive(), 1)
        self.err(ValueError, "receive operation on a closed channel", q.receive)

    def test_blocked_receiver(self):
        q = s.QueueChannel()
        got = []
        t = s.tasklet(lambda: got.append(q.receive()))()
        s.run()
        self.assertEqual(q.balance, -1)
        q.send("direct")
        self.assertEqual(len(q), 0)
        s.run()
        self.assertEqual(got, ["direct"])

    def test_subclass_must_init(self):
        class Bad(s.QueueChannel):
            def __init__(self):
                pass
        q = Bad()
        with self.assertRaises((AttributeError, RuntimeError)):
            q.send(1)  # no data_queue
        self.err(RuntimeError, INVALID_CHANNEL, s.channel.send, q, 1)


class BlockTrapHelperTest(Base):
    def test_block_trap_context(self):
        cur = s.getcurrent()
        c = s.channel()
        with s.block_trap():
            self.assertTrue(cur.block_trap)
            s.tasklet(noop)()
            self.err(RuntimeError, BLOCK_TRAP, c.receive)
            with s.block_trap(False):
                self.assertFalse(cur.block_trap)
            self.assertTrue(cur.block_trap)
        self.assertFalse(cur.block_trap)
        with self.assertRaises(KeyError):
            with s.block_trap():
                raise KeyError
        self.assertFalse(cur.block_trap)
        with self.assertRaises(RuntimeError) as cm:
            with s.block_trap(1):
                pass
        self.assertEqual(str(cm.exception), "Blocktrap expects a boolean")
        self.assertFalse(cur.block_trap)


if __name__ == "__main__":
    unittest.main()
