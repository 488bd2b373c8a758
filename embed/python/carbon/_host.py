"""Host plumbing of the carbon package: queues fed by carbon_post() from C,
and sys.stdout / sys.stderr routed to the host's log callback."""
import collections
import io
import sys

import _carbon
import scheduler

__all__ = ["HostQueue", "queue"]

_queues = {}


class HostQueue:
    """A named queue the host fills with ``carbon_post(name, ...)`` (any C
    thread, never blocking); scripts read it like a channel. Values arrive at
    the host's next ``carbon_tick``, in posting order, before any tasklet of
    that tick runs. ``receive()`` returns the oldest value, or blocks the
    calling tasklet (only it) until one arrives."""

    __slots__ = ("name", "_buffer", "_channel", "__weakref__")

    def __init__(self, name):
        self.name = name
        self._buffer = collections.deque()
        self._channel = scheduler.channel()
        self._channel.preference = 1  # a delivery never switches away from the host

    def receive(self):
        return _carbon._queue_receive(self._buffer, self._channel)

    def _put(self, value):
        _carbon._queue_put(self._buffer, self._channel, value)

    def __iter__(self):
        return self

    def __next__(self):
        return self.receive()

    def __len__(self):
        """Values waiting to be received."""
        return len(self._buffer)

    @property
    def balance(self):
        """As a channel's: values waiting (> 0) or minus the tasklets
        waiting to receive (< 0)."""
        return len(self._buffer) or self._channel.balance

    def __repr__(self):
        return "<carbon.HostQueue %r waiting=%d balance=%d>" % (self.name, len(self._buffer), self.balance)


def queue(name):
    """The queue named ``name`` (created on first use, by a script or by the
    first value posted to it); the same object every time."""
    if not isinstance(name, str):
        raise TypeError("queue name must be a str, not %s" % type(name).__name__)
    if not name or len(name.encode("utf-8", "surrogateescape")) > 255:
        raise ValueError("queue name must be 1 to 255 bytes of UTF-8")
    q = _queues.get(name)
    if q is None:
        q = _queues[name] = HostQueue(name)
    return q


def _deliver_post(name, value):
    queue(name)._put(value)


class _LogWriter(io.TextIOBase):
    """A text stream that sends each complete line to the log callback."""

    def __init__(self, level, name):
        self._level = level
        self._name = name
        self._partial = []

    @property
    def name(self):
        return self._name

    @property
    def encoding(self):
        return "utf-8"

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        lines = s.split("\n")
        for line in lines[:-1]:
            self._partial.append(line)
            _carbon._log(self._level, "".join(self._partial))
            self._partial = []
        if lines[-1]:
            self._partial.append(lines[-1])
        return len(s)

    def flush(self):
        if self._partial:
            _carbon._log(self._level, "".join(self._partial))
            self._partial = []


def _unraisable_to_log(info):
    """sys.unraisablehook of a carbon_init host: errors Python cannot raise
    (a failing schedule or channel callback, a finally that raised while a
    tasklet was killed at teardown, a __del__) go to the log callback."""
    import traceback
    try:
        lines = traceback.format_exception(info.exc_type, info.exc_value, info.exc_traceback)
        what = info.err_msg or "Exception ignored in"
        if info.object is not None:
            what = "%s: %r" % (what, info.object)
        _carbon._log(_carbon.LOG_ERROR, "%s\n%s" % (what, "".join(lines).rstrip("\n")))
    except BaseException:  # never raise from the hook
        sys.__unraisablehook__(info)


def _configure_host(switch_interval, print_to_log):
    sys.setswitchinterval(switch_interval)
    sys.unraisablehook = _unraisable_to_log
    if print_to_log:
        sys.stdout = _LogWriter(_carbon.LOG_INFO, "<carbon log: stdout>")
        sys.stderr = _LogWriter(_carbon.LOG_WARNING, "<carbon log: stderr>")
