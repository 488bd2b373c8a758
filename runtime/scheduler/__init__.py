"""Tasklets and channels for Python 3 (Carbon runtime).

Everything of the C extension ``_scheduler`` is re-exported here, together with
``QueueChannel``, ``block_trap`` and a few debugging helpers. ``current``,
``main``, ``runcount`` and ``threads`` are computed on every access, for the
calling thread.
"""
import collections
import contextlib
import threading
import traceback
import types

import _scheduler

for _name in dir(_scheduler):
    if _name not in ("__name__", "__file__"):
        globals()[_name] = getattr(_scheduler, _name)
del _name


def __getattr__(name):
    # PEP 562: these depend on the calling thread, so they cannot be constants.
    if name == "current":
        return _scheduler.getcurrent()
    if name == "main":
        return _scheduler.getmain()
    if name == "runcount":
        return _scheduler.getruncount()
    if name == "threads":
        # Stackless's order: the main thread first.
        ids = _scheduler._thread_ids()
        first = threading.main_thread().ident
        if first in ids:
            ids.remove(first)
            ids.insert(0, first)
        return ids
    raise AttributeError("module 'scheduler' has no attribute %r" % (name,))


_NO_PICKLING = ("Carbon runtime tasklets run on their own C stacks, which cannot be "
                "saved: nothing of the scheduler can be pickled "
                "(see docs/stackless-divergence.md)")


def pickle_flags(new_flags=-1, mask=-1):
    """Stackless's pickling switches; tasklets cannot be pickled here."""
    raise RuntimeError(_NO_PICKLING)


def pickle_flags_default(new_flags=-1, mask=-1):
    """Stackless's pickling switches; tasklets cannot be pickled here."""
    raise RuntimeError(_NO_PICKLING)


def _make_exception(exc, value):
    # What `raise exc(value)` raises, by the rules of channel.send_throw():
    # an instance is itself, a tuple value is the constructor's arguments.
    if isinstance(exc, BaseException):
        return exc
    if value is None:
        return exc()
    if isinstance(value, exc):
        return value
    if isinstance(value, tuple):
        return exc(*value)
    return exc(value)


class QueueChannel(_scheduler.channel):
    """A channel whose sender never blocks: values wait in a deque.

    The instance's lock guards the deque and the decision to queue; it is
    never held across a blocking operation of the base channel."""

    def __init__(self):
        _scheduler.channel.__init__(self)
        self.data_queue = collections.deque()
        self.preference = 1
        self._lock = threading.Lock()

    def _queue_or_send(self, item):
        # True when queued; False when a receiver waits (the caller sends).
        with self._lock:
            if _scheduler.channel.balance.__get__(self) >= 0 and not self.closing:
                self.data_queue.append(item)
                return True
        return False

    def send(self, data):
        if not self._queue_or_send((True, data)):
            _scheduler.channel.send(self, data)

    def send_exception(self, exc, *args):
        self.send_throw(exc, args)

    def send_throw(self, exc, value=None, tb=None):
        if not (isinstance(exc, BaseException) or
                (isinstance(exc, type) and issubclass(exc, BaseException))):
            raise TypeError("Channel.send_throw() argument 'exc' (pos 1) must be an "
                            "Exception type or instance")
        if tb is not None and not isinstance(tb, types.TracebackType):
            raise TypeError("Channel.send_throw() argument 'tb' (pos 3) must be a "
                            "traceback or None")
        if not self._queue_or_send((False, (exc, value, tb))):
            _scheduler.channel.send_throw(self, exc, value, tb)

    def _pop(self):
        with self._lock:
            if self.data_queue:
                return True, self.data_queue.popleft()
        return False, None

    def _deliver(self, item):
        is_data, payload = item
        if is_data:
            return payload
        exc, value, tb = payload
        e = _make_exception(exc, value)
        if tb is not None:
            e = e.with_traceback(tb)
        raise e

    def receive(self):
        found, item = self._pop()
        if not found:
            return _scheduler.channel.receive(self)
        return self._deliver(item)

    @property
    def balance(self):
        with self._lock:
            if self.data_queue:
                return len(self.data_queue)
        return _scheduler.channel.balance.__get__(self)

    def send_sequence(self, seq):
        count = 0
        for item in seq:
            self.send(item)
            count += 1
        return count

    def __next__(self):
        found, item = self._pop()
        if found:
            return self._deliver(item)
        if _scheduler.channel.closed.__get__(self):
            raise StopIteration
        return _scheduler.channel.receive(self)

    def __len__(self):
        with self._lock:
            return len(self.data_queue)


@contextlib.contextmanager
def block_trap(trap=True):
    """Within the block, channel operations that would block raise."""
    current = _scheduler.getcurrent()
    old = current.block_trap
    current.block_trap = trap
    try:
        yield
    finally:
        current.block_trap = old


def tasklet_label(t):
    """A tasklet's label for reports: its ``name`` attribute if it has a
    non-empty one, else its callable's qualified name ("main" for a main
    tasklet)."""
    name = getattr(t, "name", None)
    if isinstance(name, str) and name:
        return name
    if t.is_main:
        return "main"
    qual = t.method_name
    frame = t.frame  # the outermost frame is the callable's: its qualified name
    while frame is not None and frame.f_back is not None:
        frame = frame.f_back
    if frame is not None:
        qual = getattr(frame.f_code, "co_qualname", qual)
    module = t.module_name
    if qual and module and module != "unknown_module":
        return "%s.%s" % (module, qual)
    return qual or "unbound"


def _format_thread(lines, tasklets, current, limit):
    for t in tasklets:
        flags = [name for name in ("is_current", "blocked", "scheduled", "paused")
                 if getattr(t, name)]
        lines.append("Tasklet %s (%s) [%s]\n" % (hex(id(t)), tasklet_label(t), ", ".join(flags)))
        frame = t.frame
        if t is current and frame is not None:
            frame = frame.f_back  # leave out this function's own frame
        if frame is None:
            lines.append("  (not started)\n" if t.alive else "  (no frames)\n")
        else:
            lines.extend(traceback.format_stack(frame, limit))


def format_tasklet_stacks(limit=None, all_threads=False):
    """The stacks of every live tasklet of the calling thread (of every thread
    with a scheduler if ``all_threads``), formatted as text (for hitch reports,
    debug overlays and crash reports)."""
    lines = []
    current = _scheduler.getcurrent()
    if not all_threads:
        _format_thread(lines, _scheduler.get_thread_tasklets(), current, limit)
        return "".join(lines)
    for thread_id, tasklets in _scheduler.get_all_thread_tasklets():
        lines.append("Thread %d%s:\n" % (thread_id, " (current)" if tasklets[0] is _scheduler.getmain() else ""))
        _format_thread(lines, tasklets, current, limit)
    return "".join(lines)


@contextlib.contextmanager
def atomic():
    """Within the block, the current tasklet is never preempted (Stackless's
    ``stackless.atomic()``): ``set_atomic(True)``, restored on exit."""
    current = _scheduler.getcurrent()
    old = current.set_atomic(True)
    try:
        yield
    finally:
        current.set_atomic(old)
