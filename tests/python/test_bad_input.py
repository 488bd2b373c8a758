"""Bad-input matrix: every tasklet method and setter, with wrong arguments, on
tasklets in every state; every channel method and attribute on channels in
every state; every module function. The only acceptable outcomes are a result
or a Python exception (not SystemError): never a crash, a hang or a broken
object afterwards (getters must still work, the run queue must stay sane).

Each state runs in its own subprocess (`test_bad_input.py --state NAME`), which
prints `CALL <description>` before every call, so a crash is reported naming
the call that caused it. Fixtures are made afresh for every call (except the
main tasklets, which are what they are) and cleaned up afterwards.
"""
import concurrent.futures
import copy
import gc
import math
import os
import queue
import sys
import threading
import types
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- bad values ---------------------------------------------------------------------------


class Boom(Exception):
    pass


def _raise(*args, **kwargs):
    raise Boom("boom")


class BadIndex:
    __index__ = _raise
    __int__ = _raise


class BadFloat:
    __float__ = _raise


class BadBool:
    __bool__ = _raise
    __len__ = _raise


class BadStr:
    __str__ = _raise
    __repr__ = _raise


class BadEqHash:
    __eq__ = _raise
    __hash__ = _raise


class BadCall:
    __call__ = _raise


class BadAttrs:
    """Callable whose every attribute lookup raises (trace data for bind)."""

    def __call__(self, *args, **kwargs):
        return None

    def __getattribute__(self, name):
        if name in ("__call__", "__class__"):
            return object.__getattribute__(self, name)
        raise Boom(name)


class WeirdCode:
    """Callable with nonsense trace data."""
    __name__ = BadStr()
    __module__ = 12
    __code__ = types.SimpleNamespace(co_filename=5, co_firstlineno=2**100)

    def __call__(self, *args, **kwargs):
        return None


class IntSub(int):
    __index__ = _raise


class StrSub(str):
    __str__ = _raise


class ExcInitRaises(Exception):
    def __init__(self, *args):
        raise Boom("init")


class ExcNewInt(Exception):
    def __new__(cls, *args):
        return 5


class ExcNewOther(Exception):
    def __new__(cls, *args):
        return KeyError("other")


class BaseOnly(BaseException):
    pass


def noop(*args, **kwargs):
    return None


SELF, MAIN, CHAN = object(), object(), object()
VERBOSE = bool(os.environ.get("BAD_INPUT_VERBOSE"))  # print every outcome (debugging)


def _safe_str(o):
    try:
        return str(o)
    except BaseException:
        return "<str() failed>"


def _safe_repr(o):
    try:
        return repr(o)
    except BaseException:
        return "<repr() failed>"

BAD = [
    ("None", None), ("True", True), ("0", 0), ("-1", -1), ("2**31", 2**31), ("2**63", 2**63),
    ("-2**63-1", -2**63 - 1), ("2**64", 2**64), ("10**100", 10**100), ("-10**100", -10**100),
    ("nan", math.nan), ("inf", math.inf), ("''", ""), ("'x'", "x"), ("b'x'", b"x"), ("()", ()),
    ("(1,)", (1,)), ("[]", []), ("{}", {}), ("{'k':1}", {"k": 1}), ("object()", object()),
    ("int", int), ("noop", noop), ("len", len), ("BadIndex()", BadIndex()),
    ("BadFloat()", BadFloat()), ("BadBool()", BadBool()), ("BadStr()", BadStr()),
    ("BadEqHash()", BadEqHash()), ("BadCall()", BadCall()), ("BadAttrs()", BadAttrs()),
    ("WeirdCode()", WeirdCode()), ("IntSub(1)", IntSub(1)), ("StrSub('s')", StrSub("s")),
    ("ValueError", ValueError), ("ValueError('v')", ValueError("v")),
    ("ExcInitRaises", ExcInitRaises), ("ExcNewInt", ExcNewInt), ("ExcNewOther", ExcNewOther),
    ("BaseOnly", BaseOnly), ("BaseOnly()", BaseOnly()), ("KeyboardInterrupt", KeyboardInterrupt),
    ("GeneratorExit", GeneratorExit), ("StopIteration", StopIteration),
    ("SELF", SELF), ("MAIN", MAIN), ("CHAN", CHAN),
]
FEW = [b for b in BAD if b[0] in ("None", "0", "-1", "2**64", "'x'", "BadIndex()", "BadBool()",
                                  "SELF", "ValueError")]

TASKLET_ATTRS = ["alive", "blocked", "scheduled", "paused", "block_trap", "is_current", "is_main",
                 "thread_id", "next", "prev", "frame", "method_name", "module_name", "file_name",
                 "line_number", "context", "parent_callsite", "startTime", "endTime", "runTime",
                 "highlighted", "dont_raise", "context_manager_getter", "exception_handler",
                 "times_switched_to"]
CHANNEL_ATTRS = ["preference", "balance", "queue", "closing", "closed"]


# ---- the child: one state's matrix ---------------------------------------------------------

class Child:
    def __init__(self, state):
        import scheduler
        self.s = scheduler
        self.state = state
        self.failures = []
        self.ncalls = 0
        self.out = sys.stdout
        self.chan = scheduler.channel()  # the CHAN value
        self.desc = "(setup)"
        self.worker = None
        sys.unraisablehook = lambda u: None  # raising callbacks etc. are expected

    # -- reporting
    def emit(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def fail(self, desc, why):
        self.failures.append((desc, why))
        self.emit("FAIL %s: %s" % (desc, why))

    def resolve(self, v, obj):
        if v is SELF:
            return obj
        if v is MAIN:
            return self.s.getmain()
        if v is CHAN:
            return self.chan
        return v

    # -- one call: progress line, outcome classification, post-checks
    def guard(self, desc, func, *args):
        """Runs func; only a SystemError is a failure."""
        try:
            return func(*args)
        except SystemError as e:
            self.fail(desc, "SystemError: %s" % (e,))
        except BaseException:
            pass

    def invoke(self, desc, func, obj, check):
        self.ncalls += 1
        self.desc = desc
        self.emit("CALL " + desc)
        try:
            result = func(obj)
        except SystemError as e:
            self.fail(desc, "SystemError: %s" % (e,))
        except BaseException as e:
            if VERBOSE:
                self.emit("-> %s: %.100s" % (type(e).__name__, _safe_str(e)))
        else:
            if VERBOSE:
                self.emit("-> returned %.100s" % (_safe_repr(result),))
        self.emit("CHECK")
        if check:
            check(desc, obj)

    def check_tasklet(self, desc, t):
        for name in TASKLET_ATTRS:
            try:
                v = getattr(t, name)
            except BaseException as e:
                self.fail(desc, "getter %s raised %s: %s" % (name, type(e).__name__, e))
                continue
            if name == "frame":
                depth = 0
                while v is not None and depth < 1000:
                    v.f_code.co_name, v.f_lineno
                    v = v.f_back
                    depth += 1
        try:
            gc.get_referents(t)
            repr(t)
        except BaseException as e:
            self.fail(desc, "introspection raised %s: %s" % (type(e).__name__, e))
        self.check_queue(desc)

    def check_queue(self, desc):
        s = self.s
        try:
            a, b = s.getruncount(), s.calculateruncount()
            if a != b:
                self.fail(desc, "getruncount() %d != calculateruncount() %d" % (a, b))
        except BaseException as e:
            self.fail(desc, "runcount raised %s: %s" % (type(e).__name__, e))

    def check_channel(self, desc, c):
        values = {}
        for name in CHANNEL_ATTRS:
            try:
                values[name] = getattr(c, name)
            except BaseException as e:
                self.fail(desc, "getter %s raised %s: %s" % (name, type(e).__name__, e))
        if not isinstance(c, self.s.QueueChannel) and "balance" in values and "queue" in values:
            if (values["balance"] == 0) != (values["queue"] is None):
                self.fail(desc, "balance %r but queue %r" % (values["balance"], values["queue"]))
        try:
            gc.get_referents(c)
            repr(c)
        except BaseException as e:
            self.fail(desc, "introspection raised %s: %s" % (type(e).__name__, e))
        self.check_queue(desc)

    # -- cleanup of the calling thread's scheduler
    def cleanup(self, *tasklets):
        s = self.s
        self.emit("CLEANUP")
        for t in tasklets:
            try:
                if t is not None and not t.is_main and t.alive:
                    t.kill()
            except BaseException:
                pass
        try:
            level = s.switch_trap(0)
            if level:
                s.switch_trap(-level)
        except BaseException:
            pass
        try:
            s.getmain().block_trap = False
        except BaseException:
            pass
        for _ in range(6):
            try:
                s.unblock_all_channels()
                s.run()
            except SystemError as e:
                self.fail(self.desc + " (cleanup)", "SystemError: %s" % (e,))
                continue
            except BaseException:
                continue
            if s.getruncount() == 1:
                break
        self.emit("CLEAN")

    # -- the calls --------------------------------------------------------------------------
    def tasklet_calls(self):
        R = self.resolve
        calls = []

        def add(desc, f):
            calls.append((desc, f))
        for name in ("insert", "remove", "run", "switch", "set_context"):
            add("%s()" % name, lambda t, n=name: getattr(t, n)())
            for vn, v in FEW:
                add("%s(%s)" % (name, vn), lambda t, n=name, v=v: getattr(t, n)(R(v, t)))
            add("%s(1, 2)" % name, lambda t, n=name: getattr(t, n)(1, 2))
            add("%s(bogus=1)" % name, lambda t, n=name: getattr(t, n)(bogus=1))
        add("bind()", lambda t: t.bind())
        add("bind(None)", lambda t: t.bind(None))
        add("bind(noop, (), {}, 4)", lambda t: t.bind(noop, (), {}, 4))
        add("bind(bogus=1)", lambda t: t.bind(bogus=1))
        for vn, v in BAD:
            add("bind(%s)" % vn, lambda t, v=v: t.bind(R(v, t)))
            add("bind(noop, %s)" % vn, lambda t, v=v: t.bind(noop, R(v, t)))
            add("bind(noop, (), %s)" % vn, lambda t, v=v: t.bind(noop, (), R(v, t)))
            add("bind(None, %s)" % vn, lambda t, v=v: t.bind(None, R(v, t)))
            add("bind(kwargs=%s)" % vn, lambda t, v=v: t.bind(kwargs=R(v, t)))
            add("setup(%s)" % vn, lambda t, v=v: t.setup(R(v, t)))
            add("t(%s, k=%s)" % (vn, vn), lambda t, v=v: t(R(v, t), k=R(v, t)))
            add("__init__(%s)" % vn, lambda t, v=v: t.__init__(R(v, t)))
            add("throw(%s)" % vn, lambda t, v=v: t.throw(R(v, t)))
            add("throw(ValueError, %s)" % vn, lambda t, v=v: t.throw(ValueError, R(v, t)))
            add("throw(ValueError, None, %s)" % vn,
                lambda t, v=v: t.throw(ValueError, None, R(v, t)))
            add("throw(ValueError, pending=%s)" % vn,
                lambda t, v=v: t.throw(ValueError, pending=R(v, t)))
            add("throw(%s, pending=True)" % vn, lambda t, v=v: t.throw(R(v, t), pending=True))
            add("throw(%s, %s, %s, %s)" % (vn, vn, vn, vn),
                lambda t, v=v: t.throw(R(v, t), R(v, t), R(v, t), R(v, t)))
            add("raise_exception(%s)" % vn, lambda t, v=v: t.raise_exception(R(v, t)))
            add("raise_exception(KeyError, %s)" % vn,
                lambda t, v=v: t.raise_exception(KeyError, R(v, t)))
            add("raise_exception(%s, %s, %s)" % (vn, vn, vn),
                lambda t, v=v: t.raise_exception(R(v, t), R(v, t), R(v, t)))
            add("kill(%s)" % vn, lambda t, v=v: t.kill(R(v, t)))
            add("kill(pending=%s)" % vn, lambda t, v=v: t.kill(pending=R(v, t)))
        add("setup()", lambda t: t.setup())
        add("setup(*BAD)", lambda t: t.setup(*[R(v, t) for _, v in BAD]))
        add("setup(**{'':1})", lambda t: t.setup(**{"": 1}))
        add("throw()", lambda t: t.throw())
        add("throw(ValueError, None, None, False, 5)",
            lambda t: t.throw(ValueError, None, None, False, 5))
        add("throw(ValueError, bogus=1)", lambda t: t.throw(ValueError, bogus=1))
        add("throw(exc=ValueError, val=ValueError('i'))",
            lambda t: t.throw(exc=ValueError, val=ValueError("i")))
        add("throw(TaskletExit)", lambda t: t.throw(self.s.TaskletExit))
        add("throw(TaskletExit, pending=True)",
            lambda t: t.throw(self.s.TaskletExit, pending=True))
        add("raise_exception()", lambda t: t.raise_exception())
        add("raise_exception(exc_class=KeyError)", lambda t: t.raise_exception(exc_class=KeyError))
        add("kill()", lambda t: t.kill())
        add("kill(True, 1)", lambda t: t.kill(True, 1))
        add("kill(bogus=1)", lambda t: t.kill(bogus=1))
        add("__init__()", lambda t: t.__init__())
        add("__init__(noop, 1)", lambda t: t.__init__(noop, 1))
        add("copy.copy(t)", lambda t: copy.copy(t))
        add("hash/eq", lambda t: (hash(t), t == t, t != 1))
        add("tasklet.__new__(type(t))", lambda t: type(t).__new__(type(t)))
        for name in TASKLET_ATTRS:
            for vn, v in BAD:
                add("t.%s = %s" % (name, vn), lambda t, n=name, v=v: setattr(t, n, R(v, t)))
            add("del t.%s" % name, lambda t, n=name: delattr(t, n))
        return calls

    def channel_calls(self):
        R = self.resolve
        calls = []

        def add(desc, f):
            calls.append((desc, f))
        add("send()", lambda c: c.send())
        add("send(1, 2)", lambda c: c.send(1, 2))
        add("send(value=1)", lambda c: c.send(value=1))
        add("receive()", lambda c: c.receive())
        add("send_exception()", lambda c: c.send_exception())
        add("send_throw()", lambda c: c.send_throw())
        add("send_throw(ValueError, 1, None, 4)", lambda c: c.send_throw(ValueError, 1, None, 4))
        add("send_throw(ValueError, bogus=1)", lambda c: c.send_throw(ValueError, bogus=1))
        add("send_exception(ValueError)", lambda c: c.send_exception(ValueError))
        add("send_exception(ValueError('i'))", lambda c: c.send_exception(ValueError("i")))
        add("send_throw(ValueError('i'))", lambda c: c.send_throw(ValueError("i")))
        add("send_throw(ValueError('i'), 1)", lambda c: c.send_throw(ValueError("i"), 1))
        add("send_exception(TaskletExit)", lambda c: c.send_exception(self.s.TaskletExit))
        add("send_exception(ValueError, *BAD)",
            lambda c: c.send_exception(ValueError, *[R(v, c) for _, v in BAD]))
        for name in ("receive", "clear", "close", "open"):
            add("%s()" % name, lambda c, n=name: getattr(c, n)())
            for vn, v in FEW:
                add("%s(%s)" % (name, vn), lambda c, n=name, v=v: getattr(c, n)(R(v, c)))
        for vn, v in BAD:
            add("send(%s)" % vn, lambda c, v=v: c.send(R(v, c)))
            add("send_exception(%s)" % vn, lambda c, v=v: c.send_exception(R(v, c)))
            add("send_exception(ValueError, %s)" % vn,
                lambda c, v=v: c.send_exception(ValueError, R(v, c)))
            add("send_exception(%s, %s, %s)" % (vn, vn, vn),
                lambda c, v=v: c.send_exception(R(v, c), R(v, c), R(v, c)))
            add("send_throw(%s)" % vn, lambda c, v=v: c.send_throw(R(v, c)))
            add("send_throw(ValueError, %s)" % vn, lambda c, v=v: c.send_throw(ValueError, R(v, c)))
            add("send_throw(ValueError, None, %s)" % vn,
                lambda c, v=v: c.send_throw(ValueError, None, R(v, c)))
            add("send_throw(exc=%s, val=%s, tb=%s)" % (vn, vn, vn),
                lambda c, v=v: c.send_throw(exc=R(v, c), val=R(v, c), tb=R(v, c)))
            add("c.preference = %s" % vn, lambda c, v=v: setattr(c, "preference", R(v, c)))
            add("__init__(%s)" % vn, lambda c, v=v: c.__init__(R(v, c)))
            for name in ("balance", "queue", "closing", "closed"):
                add("c.%s = %s" % (name, vn), lambda c, n=name, v=v: setattr(c, n, R(v, c)))
            if isinstance(self.chan, self.s.channel):
                add("send_sequence(%s)" % vn,
                    lambda c, v=v: c.send_sequence(R(v, c)) if hasattr(c, "send_sequence")
                    else None)
        for name in CHANNEL_ATTRS:
            add("del c.%s" % name, lambda c, n=name: delattr(c, n))
        add("iter(c)", lambda c: iter(c))
        add("next(c)", lambda c: next(c))
        add("copy.copy(c)", lambda c: copy.copy(c))
        add("hash/eq", lambda c: (hash(c), c == c))
        add("channel.__new__(type(c))", lambda c: type(c).__new__(type(c)))
        add("len(c)", lambda c: len(c))
        return calls

    # -- fixtures: same thread ----------------------------------------------------------------
    def make_blocked(self, sending, chan=None):
        s = self.s
        ch = chan if chan is not None else s.channel()

        def body():
            try:
                if sending:
                    ch.send("payload")
                else:
                    ch.receive()
            except SystemError as e:
                self.fail(self.desc + " (in the waiting tasklet)", "SystemError: %s" % (e,))
            except BaseException:
                pass
        t = s.tasklet(body)()
        s.run()
        return t, ch

    def local_fixture(self, state):
        s = self.s
        if state == "new":
            return s.tasklet()
        if state == "bound":
            return s.tasklet(noop)
        if state == "bound_args":
            return s.tasklet().bind(noop, (1,), {"k": 2})
        if state == "scheduled":
            return s.tasklet(noop)(1)
        if state == "yielded":
            t = s.tasklet(s.schedule)()
            t.run()
            return t
        if state == "blocked_recv":
            return self.make_blocked(False)[0]
        if state == "blocked_send":
            return self.make_blocked(True)[0]
        if state == "paused":
            t = s.tasklet(s.schedule_remove)()
            t.run()
            return t
        if state == "dead":
            t = s.tasklet(noop)()
            s.run()
            return t
        if state == "main":
            return s.getmain()
        if state == "subclass":
            class Sub(s.tasklet):
                pass
            return Sub(noop)()
        if state == "invalid":
            class Invalid(s.tasklet):
                def __init__(self, *a):
                    pass
            return Invalid(noop)
        raise KeyError(state)

    def run_local(self, state):
        s = self.s
        check = None if state == "invalid" else self.check_tasklet
        for desc, func in self.tasklet_calls():
            t = self.local_fixture(state)
            self.invoke(desc, func, t, check)
            self.cleanup(t)

    def run_inside(self, state):
        """The call is made from inside a tasklet: on itself (running), on the
        tasklet that runs it nested (parent), on the main tasklet."""
        s = self.s
        for desc, func in self.tasklet_calls():
            if state == "running":
                box = {}

                def body():
                    self.invoke(desc, func, s.getcurrent(), self.check_tasklet)
                t = s.tasklet(body)()
            elif state == "parent":
                def child():
                    self.invoke(desc, func, box["parent"], self.check_tasklet)

                def parent():
                    s.tasklet(child)().run()
                box = {}
                t = box["parent"] = s.tasklet(parent)()
            elif state == "main_from_tasklet":
                def body():
                    self.invoke(desc, func, s.getmain(), self.check_tasklet)
                t = s.tasklet(body)()
            self.guard(desc, s.run)
            self.check_tasklet(desc + " (afterwards, from main)", t)
            self.check_tasklet(desc + " (afterwards: main)", s.getmain())
            self.cleanup(t)
            box = None

    def run_in_callback(self, state):
        """The call is made from inside a schedule or channel callback, i.e. in
        the middle of a switch or a transfer."""
        s = self.s
        for desc, func in self.tasklet_calls():
            fired = []
            if state in ("sched_cb_next", "sched_cb_next_started", "sched_cb_prev"):
                if state == "sched_cb_next_started":
                    t = s.tasklet(s.schedule)()
                    t.run()  # started, queued again
                else:
                    t = s.tasklet(noop)()

                def cb(prev, nxt, t=t):
                    who = nxt if state != "sched_cb_prev" else prev
                    if who is t and not fired:
                        fired.append(1)
                        self.invoke(desc, func, t, self.check_tasklet)
                s.set_schedule_callback(cb)
                self.guard(desc, s.run)
                s.set_schedule_callback(None)
            else:
                ch = s.channel()
                if state == "chan_cb_partner":
                    t, ch = self.make_blocked(False, ch)
                    sender = None
                else:  # chan_cb_current: a tasklet sending to a blocked receiver
                    receiver, ch = self.make_blocked(False, ch)
                    sender = t = s.tasklet(ch.send)("v")

                def cb(c, task, sending, will_block, t=t):
                    if sending and not fired:
                        fired.append(1)
                        self.invoke(desc, func, t, self.check_tasklet)
                s.set_channel_callback(cb)
                if sender is None:
                    self.guard(desc, ch.send, "v")
                else:
                    self.guard(desc, s.run)
                s.set_channel_callback(None)
            if not fired:
                self.fail(desc, "the callback was not called")
            self.check_tasklet(desc + " (afterwards, from main)", t)
            self.cleanup(t)

    def run_channel_in_callback(self):
        """Channel calls made from inside the channel callback of a send that
        will hand over to a blocked receiver."""
        s = self.s
        for desc, func in self.channel_calls():
            t, c = self.make_blocked(False)
            fired = []

            def cb(ch, task, sending, will_block, c=c):
                if ch is c and sending and not fired:
                    fired.append(1)
                    self.invoke(desc, func, c, self.check_channel)
            s.set_channel_callback(cb)
            self.guard(desc, c.send, "v")
            s.set_channel_callback(None)
            if not fired:
                self.fail(desc, "the callback was not called")
            self.check_channel(desc + " (afterwards)", c)
            self.check_tasklet(desc + " (its waiter)", t)
            self.cleanup(t)

    # -- fixtures: another thread --------------------------------------------------------------
    def start_worker(self):
        req, res = queue.Queue(), queue.Queue()

        def main():
            while True:
                fn = req.get()
                if fn is None:
                    break
                try:
                    res.put((True, fn()))
                except BaseException as e:
                    res.put((False, e))
            try:
                self.s.unblock_all_channels()
                self.s.run()
            except BaseException:
                pass

        th = threading.Thread(target=main, daemon=True)
        th.start()

        def call(fn):
            req.put(fn)
            ok, v = res.get(timeout=60)
            if not ok:
                raise v
            return v

        def stop():
            req.put(None)
            th.join(60)
            return not th.is_alive()
        return call, stop

    def run_foreign(self, state):
        call, stop = self.start_worker()
        sub = state[len("foreign_"):]
        main = call(self.s.getmain) if sub == "main" else None
        for desc, func in self.tasklet_calls():
            t = main if main is not None else call(lambda: self.local_fixture(sub))
            self.invoke(desc, func, t, self.check_tasklet)
            self.emit("CLEANUP (owner thread)")
            call(lambda: self.cleanup(t))
            self.cleanup()
            t = None
        if not stop():
            self.fail(state, "the owner thread did not end")

    def run_orphan(self, state):
        """Tasklets whose owner thread has ended (thread_id -1 / no manager)."""
        sub = state[len("orphan_"):]
        calls = self.tasklet_calls()
        made = []

        def owner():
            if sub == "main":
                made.append(self.s.getmain())
                return
            for _ in calls:
                made.append(self.local_fixture(sub))
        th = threading.Thread(target=owner)
        th.start()
        th.join()
        for i, (desc, func) in enumerate(calls):
            t = made[0] if sub == "main" else made[i]
            self.invoke(desc, func, t, self.check_tasklet)
            self.cleanup(t)
            if sub != "main":
                made[i] = None

    # -- channels -----------------------------------------------------------------------------
    def channel_fixture(self, state):
        s = self.s
        if state == "chan_open":
            return s.channel(), None
        if state == "chan_recv":
            t, c = self.make_blocked(False)
            return c, t
        if state == "chan_send":
            t, c = self.make_blocked(True)
            return c, t
        if state == "chan_closing_recv":
            t, c = self.make_blocked(False)
            c.close()
            return c, t
        if state == "chan_closing_send":
            t, c = self.make_blocked(True)
            c.close()
            return c, t
        if state == "chan_closed":
            c = s.channel()
            c.close()
            return c, None
        if state == "chan_pref_sender":
            t, c = self.make_blocked(False)
            c.preference = 1
            return c, t
        if state == "chan_queue":
            c = s.QueueChannel()
            c.send(1)
            c.send_exception(ValueError, 2)
            return c, None
        if state == "chan_invalid":
            class Invalid(s.channel):
                def __init__(self):
                    pass
            return Invalid(), None
        raise KeyError(state)

    def run_channel(self, state):
        check = None if state == "chan_invalid" else self.check_channel
        for desc, func in self.channel_calls():
            c, t = self.channel_fixture(state)
            self.invoke(desc, func, c, check)
            if t is not None:
                self.check_tasklet(desc + " (its waiter)", t)
            self.cleanup(t)

    def run_channel_foreign(self, state):
        """A waiter that belongs to another thread."""
        call, stop = self.start_worker()
        sending = state.endswith("send")
        for desc, func in self.channel_calls():
            t, c = call(lambda: self.make_blocked(sending))
            self.invoke(desc, func, c, self.check_channel)
            self.emit("CLEANUP (owner thread)")
            call(lambda: self.cleanup(t))
            self.cleanup()
            t = c = None
        if not stop():
            self.fail(state, "the owner thread did not end")

    # -- module functions ---------------------------------------------------------------------
    def run_module(self):
        import _scheduler
        s = self.s
        stack_size = s.get_stack_size()
        guard_budget = s.get_stack_stats()["guard_budget"]
        names = sorted(n for n in dir(_scheduler)
                       if callable(getattr(_scheduler, n)) and not isinstance(
                           getattr(_scheduler, n), type) and n != "_atexit")
        names += ["block_trap", "format_tasklet_stacks"]
        for name in names:
            f = getattr(s, name)
            arglists = [("", ())] + [(vn, (v,)) for vn, v in BAD] + [("x, x", (1, 2))]
            for vn, args in arglists:
                desc = "%s(%s)" % (name, vn)
                # A queued tasklet, so scheduling functions have something to do.
                t = s.tasklet(noop)()
                args = tuple(self.resolve(a, t) for a in args)
                if name == "block_trap":
                    def fn(_, f=f, args=args):
                        with f(*args):
                            pass
                else:
                    def fn(_, f=f, args=args):
                        return f(*args)
                self.invoke(desc, fn, t, self.check_tasklet)
                try:
                    s.set_schedule_callback(None)
                    s.set_channel_callback(None)
                    s.set_use_nested_tasklets(True)
                    s.set_stack_size(stack_size)
                    s.set_guarded_stacks(guard_budget)
                except BaseException as e:
                    self.fail(desc, "restoring the defaults raised %r" % (e,))
                self.cleanup(t)

    # -- entry ----------------------------------------------------------------------------------
    def run(self):
        st = self.state
        if st in ("running", "parent", "main_from_tasklet"):
            self.run_inside(st)
        elif st.startswith("sched_cb_") or st.startswith("chan_cb_"):
            self.run_in_callback(st)
        elif st == "chan_in_callback":
            self.run_channel_in_callback()
        elif st.startswith("foreign_"):
            self.run_foreign(st)
        elif st.startswith("orphan_"):
            self.run_orphan(st)
        elif st in ("chan_foreign_recv", "chan_foreign_send"):
            self.run_channel_foreign(st)
        elif st.startswith("chan_"):
            self.run_channel(st)
        elif st == "module":
            self.run_module()
        else:
            self.run_local(st)
        self.emit("EXIT-CLEANUP")
        self.cleanup()
        self.chan = None
        gc.collect()
        self.emit("DONE %d calls, %d failures" % (self.ncalls, len(self.failures)))


TASKLET_STATES = ["new", "bound", "bound_args", "scheduled", "yielded", "blocked_recv",
                  "blocked_send", "running", "parent", "paused", "dead", "main",
                  "main_from_tasklet", "subclass", "invalid",
                  "foreign_new", "foreign_bound", "foreign_scheduled", "foreign_blocked_recv",
                  "foreign_paused", "foreign_dead", "foreign_main",
                  "orphan_new", "orphan_bound", "orphan_scheduled", "orphan_blocked_recv",
                  "orphan_main",
                  "sched_cb_next", "sched_cb_next_started", "sched_cb_prev", "chan_cb_partner",
                  "chan_cb_current"]
CHANNEL_STATES = ["chan_open", "chan_recv", "chan_send", "chan_closing_recv",
                  "chan_closing_send", "chan_closed", "chan_pref_sender", "chan_queue",
                  "chan_invalid", "chan_foreign_recv", "chan_foreign_send", "chan_in_callback"]
STATES = TASKLET_STATES + CHANNEL_STATES + ["module"]


# ---- the parent: one test per state ---------------------------------------------------------

def run_state(state):
    import subprocess
    env = dict(os.environ)
    env["PYTHONFAULTHANDLER"] = "1"
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--state", state],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                              timeout=300, cwd=HERE)
        return proc.returncode, proc.stdout.decode(errors="replace"), \
            proc.stderr.decode(errors="replace"), False
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        err = (e.stderr or b"").decode(errors="replace")
        return None, out, err, True


def summarize(state, rc, out, err, timed_out):
    lines = out.splitlines()
    problems = [l[5:] for l in lines if l.startswith("FAIL ")]
    done = any(l.startswith("DONE ") for l in lines)
    if timed_out or rc != 0 or not done:
        last_call, phase = None, "call"
        for l in lines:
            if l.startswith("CALL "):
                last_call, phase = l[5:], "call"
            elif l.startswith("CHECK"):
                phase = "post-call checks"
            elif l.startswith("CLEANUP"):
                phase = "cleanup"
            elif l.startswith("EXIT-CLEANUP"):
                last_call, phase = "(end of state)", "final cleanup / exit"
        how = "hung (timeout)" if timed_out else "exit status %s" % rc
        problems.insert(0, "CRASH (%s) in %s of: %s\n--- stderr tail ---\n%s"
                        % (how, phase, last_call, "\n".join(err.splitlines()[-25:])))
    return problems


class BadInputTest(unittest.TestCase):
    results = {}

    @classmethod
    def setUpClass(cls):
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
            futures = {st: ex.submit(run_state, st) for st in STATES}
            cls.results = {st: f.result() for st, f in futures.items()}

    def check_state(self, state):
        problems = summarize(state, *self.results[state])
        if problems:
            shown = problems[:15]
            more = len(problems) - len(shown)
            self.fail("state %s: %d problem(s):\n  %s%s" % (
                state, len(problems), "\n  ".join(shown),
                "\n  ... and %d more" % more if more else ""))


for _st in STATES:
    setattr(BadInputTest, "test_%s" % _st, lambda self, st=_st: self.check_state(st))
del _st


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--state":
        Child(sys.argv[2]).run()
    else:
        unittest.main()
