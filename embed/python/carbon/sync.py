"""Event, Lock, Semaphore, BoundedSemaphore and Queue for tasklets.

Built on scheduler channels: a tasklet that has to wait receives on a
channel, and whoever frees the resource sends to the first waiter (handing
it the lock, the semaphore unit or the queue item directly, so a waiter is
never overtaken by a latecomer). Channels have preference 0: waking a waiter
makes it runnable without switching to it, so release(), set() and put()
never block. Names, arguments and results follow threading and queue;
timeouts are carbon.timeout blocks around the receive. Waiting blocks only
the calling tasklet; a tasklet killed while it waits just leaves the queue of
waiters. Objects may be shared by tasklets of several threads (channel
operations cross threads; the state is only touched under the GIL).
"""
import collections as _collections
import queue as _queue

import scheduler as _scheduler
import _carbon

Empty = _queue.Empty
Full = _queue.Full


def _channel():
    ch = _scheduler.channel()
    ch.preference = 0
    return ch


def _receive(ch, timeout):
    """(True, value) or, if the timeout (seconds, None: none) passed first, (False, None)."""
    if timeout is None:
        return True, ch.receive()
    if timeout <= 0:
        return False, None
    to = _carbon.Timeout(timeout)
    try:
        with to:
            return True, ch.receive()
    except TimeoutError:
        if to.expired:
            return False, None
        raise  # an outer carbon.timeout, or the program's own


def _wake_one(ch, value=None):
    """Hands value to the first waiter; False if nobody waits."""
    if ch.balance < 0:
        ch.send(value)
        return True
    return False


class Lock:
    """threading.Lock for tasklets (not reentrant, no owner)."""

    def __init__(self):
        self._locked = False
        self._waiters = _channel()

    def acquire(self, blocking=True, timeout=-1):
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout != -1 and timeout < 0:
            raise ValueError('timeout value must be a non-negative number')
        if not self._locked:
            self._locked = True
            return True
        if not blocking:
            return False
        ok, _ = _receive(self._waiters, None if timeout == -1 else timeout)
        return ok  # release() handed the lock over: it stayed locked

    def release(self):
        if not self._locked:
            raise RuntimeError('release unlocked lock')
        if not _wake_one(self._waiters):
            self._locked = False

    def locked(self):
        return self._locked

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return '<carbon.Lock %s, %d waiting>' % ('locked' if self._locked else 'unlocked',
                                                 max(0, -self._waiters.balance))


class Event:
    """threading.Event for tasklets."""

    def __init__(self):
        self._flag = False
        self._waiters = _channel()

    def is_set(self):
        return self._flag

    def set(self):
        self._flag = True
        while _wake_one(self._waiters, True):
            pass

    def clear(self):
        self._flag = False

    def wait(self, timeout=None):
        if self._flag:
            return True
        ok, _ = _receive(self._waiters, timeout)
        return True if ok else self._flag

    def __repr__(self):
        return '<carbon.Event %s>' % ('set' if self._flag else 'unset')


class Semaphore:
    """threading.Semaphore for tasklets."""

    def __init__(self, value=1):
        if value < 0:
            raise ValueError('semaphore initial value must be >= 0')
        self._value = value
        self._waiters = _channel()

    def acquire(self, blocking=True, timeout=None):
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        if self._value > 0:
            self._value -= 1
            return True
        if not blocking:
            return False
        ok, _ = _receive(self._waiters, timeout)
        return ok  # release() handed its unit over

    def release(self, n=1):
        if n < 1:
            raise ValueError('n must be one or more')
        for _ in range(n):
            if not _wake_one(self._waiters):
                self._value += 1

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return '<%s value=%d, %d waiting>' % (type(self).__name__, self._value,
                                              max(0, -self._waiters.balance))


class BoundedSemaphore(Semaphore):
    """threading.BoundedSemaphore: release() beyond the initial value is ValueError."""

    def __init__(self, value=1):
        super().__init__(value)
        self._initial_value = value

    def release(self, n=1):
        if n < 1:
            raise ValueError('n must be one or more')
        if self._value + n > self._initial_value:
            raise ValueError('Semaphore released too many times')
        super().release(n)


class Queue:
    """queue.Queue for tasklets (FIFO; maxsize <= 0: unbounded)."""

    def __init__(self, maxsize=0):
        self.maxsize = maxsize
        self._items = _collections.deque()
        self._getters = _channel()
        self._putters = _channel()
        self._joiners = _channel()
        self.unfinished_tasks = 0

    def qsize(self):
        return len(self._items)

    def empty(self):
        return not self._items

    def full(self):
        return 0 < self.maxsize <= len(self._items)

    def put(self, item, block=True, timeout=None):
        if block and timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        deadline = None
        while True:
            if self._getters.balance < 0 and not self._items:
                self.unfinished_tasks += 1
                self._getters.send(item)  # straight to the first waiting getter
                return
            if not (0 < self.maxsize <= len(self._items)):
                self._items.append(item)
                self.unfinished_tasks += 1
                return
            if not block:
                raise Full
            # Wait for a free slot, then look again (a woken putter may
            # find the slot taken, or a getter waiting).
            if timeout is not None and deadline is None:
                deadline = _carbon.now() + timeout
            left = None if deadline is None else deadline - _carbon.now()
            ok, _ = _receive(self._putters, left)
            if not ok:
                raise Full

    def get(self, block=True, timeout=None):
        if self._items:
            item = self._items.popleft()
            _wake_one(self._putters)  # a slot is free
            return item
        if not block:
            raise Empty
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        ok, item = _receive(self._getters, timeout)
        if not ok:
            raise Empty
        return item

    def put_nowait(self, item):
        return self.put(item, block=False)

    def get_nowait(self):
        return self.get(block=False)

    def task_done(self):
        if self.unfinished_tasks <= 0:
            raise ValueError('task_done() called too many times')
        self.unfinished_tasks -= 1
        if self.unfinished_tasks == 0:
            while _wake_one(self._joiners):
                pass

    def join(self):
        if self.unfinished_tasks:
            self._joiners.receive()

    def __repr__(self):
        return '<carbon.Queue %d items, maxsize %d>' % (len(self._items), self.maxsize)
