"""TCP for the game: `carbon.net` when the runtime has it, else a poller.

The game only uses the part of the `carbon.net` API it needs:
``listen(host, port, handler)`` -> server (``sockname``, ``close()``), and
streams with ``read(n)``, ``write(data)``, ``close()``, ``peername``,
``set_nodelay()``. With `carbon.net` every blocking call blocks only the
calling tasklet and the host thread's libuv loop waits on the sockets.

Until `carbon.net` is in the runtime (branch ``net``), ``PollTransport``
gives the same calls on non-blocking sockets: one tasklet polls an epoll
selector once per frame (``select(0)``, never blocking the thread) and wakes
the tasklets whose socket is ready over their own channel. Replies therefore
leave at most one frame later than with `carbon.net`.
"""
import errno
import selectors
import socket

import carbon
import scheduler

try:  # the runtime's own sockets, when built in
    import carbon.net as _net
except ImportError:
    _net = None

NAME = "carbon.net" if _net is not None else "poll"

HIGH_WATER = 256 * 1024   # a writer blocks above this many unsent bytes
READ_PAUSE = 1024 * 1024  # stop reading a socket whose input nobody takes


def listen(host, port, handler, backlog=511):
    if _net is not None:
        return _net.listen(host, port, handler, backlog=backlog)
    return _poller().listen(host, port, handler, backlog)


class _Waiter:
    """One tasklet waiting for a socket event, woken over its channel."""
    __slots__ = ("ch",)

    def __init__(self):
        self.ch = scheduler.channel()
        self.ch.preference = 1      # the poller goes on after waking it

    def wait(self):
        self.ch.receive()

    def wake(self):
        if self.ch.balance < 0:
            self.ch.send(None)


class PollStream:
    def __init__(self, poller, sock):
        self._p = poller
        self._sock = sock
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self._eof = False
        self._error = None
        self._closed = False
        self._rwait = _Waiter()
        self._wwait = _Waiter()
        self._mask = 0
        try:
            self.peername = sock.getpeername()
            self.sockname = sock.getsockname()
        except OSError:
            self.peername = self.sockname = None
        self._update()

    def set_nodelay(self, flag=True):
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(bool(flag)))

    # -- reading
    def read(self, n=-1):
        while True:
            if self._rbuf:
                if n < 0 or n >= len(self._rbuf):
                    data = bytes(self._rbuf)
                    self._rbuf.clear()
                else:
                    data = bytes(self._rbuf[:n])
                    del self._rbuf[:n]
                self._update()
                return data
            if self._error is not None:
                raise self._error
            if self._eof or self._closed:
                return b""
            self._rwait.wait()

    # -- writing
    def write(self, data):
        if self._closed:
            raise BrokenPipeError(errno.EPIPE, "stream closed")
        if self._error is not None:
            raise self._error
        self._wbuf += data
        self._flush()
        while len(self._wbuf) > HIGH_WATER and self._error is None and not self._closed:
            self._wwait.wait()
        if self._error is not None:
            raise self._error

    def drain(self):
        while self._wbuf and self._error is None and not self._closed:
            self._wwait.wait()

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._p.unregister(self)
        try:
            self._sock.close()
        finally:
            self._rwait.wake()
            self._wwait.wake()

    # -- the poller's side
    def _flush(self):
        while self._wbuf:
            try:
                n = self._sock.send(self._wbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self._fail(e)
                return
            del self._wbuf[:n]
        self._update()

    def _fail(self, e):
        self._error = e
        self._wbuf.clear()
        self._update()
        self._rwait.wake()
        self._wwait.wake()

    def _update(self):
        if self._closed:
            return
        mask = 0
        if not self._eof and self._error is None and len(self._rbuf) < READ_PAUSE:
            mask |= selectors.EVENT_READ
        if self._wbuf and self._error is None:
            mask |= selectors.EVENT_WRITE
        if mask != self._mask:
            self._p.set_mask(self, self._mask, mask)
            self._mask = mask

    def _ready(self, events):
        if events & selectors.EVENT_READ:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as e:
                self._fail(e)
                return
            if data == b"":
                self._eof = True
            elif data:
                self._rbuf += data
            self._update()
            self._rwait.wake()
        if events & selectors.EVENT_WRITE:
            self._flush()
            if len(self._wbuf) <= HIGH_WATER:
                self._wwait.wake()


class PollServer:
    def __init__(self, poller, sock, handler):
        self._p = poller
        self._sock = sock
        self._handler = handler
        self.sockname = sock.getsockname()
        self._closed = False

    def close(self):
        if not self._closed:
            self._closed = True
            self._p.unregister(self)
            self._sock.close()

    def _ready(self, events):
        for _ in range(256):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:   # EMFILE and friends: try again next frame
                return
            conn.setblocking(False)
            scheduler.tasklet(self._handler)(PollStream(self._p, conn))


class _Poller:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.task = scheduler.tasklet(self._run)()

    def listen(self, host, port, handler, backlog):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
        srv = PollServer(self, sock, handler)
        self.sel.register(sock, selectors.EVENT_READ, srv)
        return srv

    def set_mask(self, obj, old, new):
        if old and new:
            self.sel.modify(obj._sock, new, obj)
        elif new:
            self.sel.register(obj._sock, new, obj)
        else:
            self.sel.unregister(obj._sock)

    def unregister(self, obj):
        try:
            self.sel.unregister(obj._sock)
        except (KeyError, ValueError):
            pass
        obj._mask = 0

    def _run(self):
        while True:
            for key, events in self.sel.select(0):
                key.data._ready(events)
            carbon.wait_frames(1)


_the_poller = None


def _poller():
    global _the_poller
    if _the_poller is None or not _the_poller.task.alive:
        _the_poller = _Poller()
    return _the_poller
