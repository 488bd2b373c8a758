"""carbon.patch(): the standard library's blocking calls block only the calling tasklet.

After ``carbon.patch()``, ``socket``, ``ssl``, ``select``, ``selectors`` and
``time.sleep`` wait on the thread's libuv loop (``_carbon.wait_fd``) instead
of blocking the thread, so code written for threads (http.client,
urllib.request, http.server, socketserver, smtplib, socket-based database
drivers) runs in tasklets unchanged. See docs/patch.md for exactly what is
patched and what is not.

The model is gevent's: a patched socket keeps its descriptor in non-blocking
mode and keeps the timeout the program set on the Python side; an operation
that would block waits for readiness with that timeout, then tries again.

Where a call comes from decides how it waits (``_carbon._cooperative()``):

* from a tasklet, or from the main tasklet of a thread that has a carbon loop
  or other tasklets: only the calling tasklet waits (a main tasklet runs the
  thread's other tasklets and its loop meanwhile);
* from a plain thread (no tasklets, no loop): the thread blocks, exactly as
  the original call would (poll(2) with the GIL released).
"""
import errno as _errno
import itertools as _itertools
import os as _os
import select as _select
import selectors as _selectors
import socket as _socket
import sys as _sys
import time as _time

import _carbon
from _carbon import READ, WRITE, wait_fd as _wait_fd, wait_fds as _wait_fds, forget_fd as _forget_fd
# The hot calls in C (embed/sockio.c): the try / wait for readiness / try
# again loop, with the descriptor's poll kept armed between waits.
from _carbon import _sock_recv, _sock_recv_into, _sock_send, _sock_sendall

_cooperative = _carbon._cooperative
_now = _time.monotonic

# The originals, kept once (patch() may run more than once).
_orig = {}


def _keep(owner, name):
    key = (owner.__name__, name)
    if key not in _orig:
        _orig[key] = getattr(owner, name)
    return _orig[key]


# ---- sockets ---------------------------------------------------------------------------

_realsocket = _socket.socket          # socket.py's class, never patched
_tokens = _itertools.count(1)
_csock = _socket._socket.socket       # the C type
_timeout_exc = _socket.timeout


def _timed_out(msg='timed out'):
    return _timeout_exc(msg)


def _wait(sock, events, timeout, deadline):
    """Waits for readiness; returns the new deadline. TimeoutError when spent."""
    if timeout is None:
        _wait_fd(sock.fileno(), events)
        return None
    if deadline is None:
        deadline = _now() + timeout
    left = deadline - _now()
    if left <= 0 or not _wait_fd(sock.fileno(), events, left):
        raise _timed_out()
    return deadline


def _resolve(sock, address):
    """An (host, port, ...) address with a host name resolved cooperatively,
    as the real call would resolve it (blocking) inside connect/sendto."""
    if sock.family not in (_socket.AF_INET, _socket.AF_INET6) or not isinstance(address, tuple) \
            or len(address) < 2 or not isinstance(address[0], str):
        return address
    host = address[0]
    try:
        _socket.inet_pton(sock.family, host.partition('%')[0])
        return address
    except (OSError, ValueError):
        pass
    if host in ('', '<broadcast>'):
        return address
    r = getaddrinfo(host, address[1], sock.family, sock.type, sock.proto)
    if not r:
        raise _socket.gaierror(_socket.EAI_NONAME, 'Name or service not known')
    sa = r[0][4]
    return (sa[0], sa[1]) + tuple(address[2:]) if sock.family == _socket.AF_INET6 else sa


class socket(_realsocket):
    """socket.socket for tasklets: a blocking operation blocks only the calling tasklet."""

    __slots__ = ('_cb_timeout', '_cb_token')

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        _realsocket.__init__(self, family, type, proto, fileno)
        self._cb_timeout = _csock.gettimeout(self)   # what the socket module decided
        _csock.settimeout(self, 0.0)                  # the descriptor stays non-blocking
        # The socket's own number for the poll kept armed between its waits:
        # a poll left armed for this descriptor number by another socket
        # (closed behind our back, or on another thread) is not trusted.
        self._cb_token = next(_tokens)

    def __del__(self, _del=_csock.__del__, _fileno=_csock.fileno, _forget=_forget_fd):
        # Collected without close(): the poll goes before the descriptor
        # (the defaults keep what it needs alive through interpreter exit).
        fd = _fileno(self)
        if fd >= 0:
            _forget(fd)
        _del(self)

    # -- timeouts, as the socket module defines them
    def settimeout(self, value):
        if value is None:
            self._cb_timeout = None
            return
        if type(value) is float or type(value) is int:
            if value != value:
                raise ValueError('Invalid value NaN (not a number)')
            if value < 0:
                raise ValueError('Timeout value out of range')
            self._cb_timeout = float(value)
            return
        # Anything else: let the real call check and convert it.
        _csock.settimeout(self, value)
        self._cb_timeout = _csock.gettimeout(self)
        _csock.settimeout(self, 0.0)

    def gettimeout(self):
        return self._cb_timeout

    def setblocking(self, flag):
        self._cb_timeout = None if flag else 0.0

    def getblocking(self):
        return self._cb_timeout != 0.0

    @property
    def timeout(self):
        return self._cb_timeout

    # -- connection
    def connect(self, address):
        if self._cb_timeout == 0.0:
            return _csock.connect(self, address)
        address = _resolve(self, address)
        err = _csock.connect_ex(self, address)
        if err == 0:
            return None
        if err not in (_errno.EINPROGRESS, _errno.EWOULDBLOCK, _errno.EALREADY):
            raise OSError(err, _os.strerror(err))
        _wait(self, WRITE, self._cb_timeout, None)
        err = self.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        if err:
            raise OSError(err, _os.strerror(err))
        return None

    def connect_ex(self, address):
        try:
            self.connect(address)
        except _timeout_exc:
            return _errno.EWOULDBLOCK
        except _socket.gaierror:
            raise
        except OSError as e:
            if e.errno is None:
                raise
            return e.errno
        return 0

    def _accept(self):
        timeout = self._cb_timeout
        if timeout == 0.0:
            return _csock._accept(self)
        deadline = None
        while True:
            try:
                return _csock._accept(self)
            except BlockingIOError:
                pass
            deadline = _wait(self, READ, timeout, deadline)

    # -- receiving
    def recv(self, bufsize, flags=0):
        timeout = self._cb_timeout
        if timeout == 0.0:
            return _csock.recv(self, bufsize, flags)
        return _sock_recv(_csock.fileno(self), self._cb_token, bufsize, flags, timeout)

    def recv_into(self, buffer, nbytes=0, flags=0):
        timeout = self._cb_timeout
        if timeout == 0.0:
            return _csock.recv_into(self, buffer, nbytes, flags)
        return _sock_recv_into(_csock.fileno(self), self._cb_token, buffer, nbytes, flags, timeout)

    def recvfrom(self, bufsize, flags=0):
        timeout = self._cb_timeout
        if timeout == 0.0:
            return _csock.recvfrom(self, bufsize, flags)
        deadline = None
        while True:
            try:
                return _csock.recvfrom(self, bufsize, flags)
            except BlockingIOError:
                pass
            deadline = _wait(self, READ, timeout, deadline)

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        timeout = self._cb_timeout
        if timeout == 0.0:
            return _csock.recvfrom_into(self, buffer, nbytes, flags)
        deadline = None
        while True:
            try:
                return _csock.recvfrom_into(self, buffer, nbytes, flags)
            except BlockingIOError:
                pass
            deadline = _wait(self, READ, timeout, deadline)

    if hasattr(_csock, 'recvmsg'):
        def recvmsg(self, *args):
            timeout = self._cb_timeout
            if timeout == 0.0:
                return _csock.recvmsg(self, *args)
            deadline = None
            while True:
                try:
                    return _csock.recvmsg(self, *args)
                except BlockingIOError:
                    pass
                deadline = _wait(self, READ, timeout, deadline)

        def recvmsg_into(self, *args):
            timeout = self._cb_timeout
            if timeout == 0.0:
                return _csock.recvmsg_into(self, *args)
            deadline = None
            while True:
                try:
                    return _csock.recvmsg_into(self, *args)
                except BlockingIOError:
                    pass
                deadline = _wait(self, READ, timeout, deadline)

    # -- sending
    def send(self, data, flags=0):
        timeout = self._cb_timeout
        if timeout == 0.0:
            return _csock.send(self, data, flags)
        return _sock_send(_csock.fileno(self), self._cb_token, data, flags, timeout)

    def sendall(self, data, flags=0):
        timeout = self._cb_timeout
        if timeout == 0.0:
            return _csock.sendall(self, data, flags)
        # The timeout bounds the whole call (socket module, since 3.5).
        return _sock_sendall(_csock.fileno(self), self._cb_token, data, flags, timeout)

    def sendto(self, data, flags_or_addr, addr=None):
        timeout = self._cb_timeout
        if addr is None:
            args = (data, _resolve(self, flags_or_addr) if timeout != 0.0 else flags_or_addr)
        else:
            args = (data, flags_or_addr, _resolve(self, addr) if timeout != 0.0 else addr)
        if timeout == 0.0:
            return _csock.sendto(self, *args)
        deadline = None
        while True:
            try:
                return _csock.sendto(self, *args)
            except BlockingIOError:
                pass
            deadline = _wait(self, WRITE, timeout, deadline)

    if hasattr(_csock, 'sendmsg'):
        def sendmsg(self, *args):
            timeout = self._cb_timeout
            if timeout == 0.0:
                return _csock.sendmsg(self, *args)
            deadline = None
            while True:
                try:
                    return _csock.sendmsg(self, *args)
                except BlockingIOError:
                    pass
                deadline = _wait(self, WRITE, timeout, deadline)

    # -- closing: waiters on this thread get EBADF, the poll handle goes first
    def _real_close(self, _ss=_csock):
        fd = _csock.fileno(self)
        if fd >= 0:
            _forget_fd(fd)
        _ss.close(self)

    def detach(self):
        # The descriptor stays non-blocking (ssl.wrap_socket, socket.fromfd
        # hand it to another patched socket).
        fd = _csock.fileno(self)
        if fd >= 0:
            _forget_fd(fd)
        return _realsocket.detach(self)


# ---- name resolution ------------------------------------------------------------------------

_orig_getaddrinfo = _socket.getaddrinfo


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """socket.getaddrinfo resolved by libuv's thread pool; only the calling tasklet waits."""
    if not _cooperative():
        return _orig_getaddrinfo(host, port, family, type, proto, flags)
    addrlist = []
    for af, socktype, proto_, canonname, sa in _carbon.getaddrinfo(host, port, family, type, proto, flags):
        addrlist.append((_socket._intenum_converter(af, _socket.AddressFamily),
                         _socket._intenum_converter(socktype, _socket.SocketKind),
                         proto_, canonname, sa))
    return addrlist


def gethostbyname(hostname):
    """socket.gethostbyname through getaddrinfo (AF_INET)."""
    if not _cooperative():
        return _orig[('socket', 'gethostbyname')](hostname)
    try:
        return _socket.inet_ntop(_socket.AF_INET, _socket.inet_pton(_socket.AF_INET, hostname))
    except (OSError, TypeError):
        pass
    r = getaddrinfo(hostname, None, _socket.AF_INET, _socket.SOCK_STREAM)
    return r[0][4][0]


# ---- select, poll, epoll, selectors ------------------------------------------------------------

def _fileno(obj):
    if isinstance(obj, int):
        fd = obj
    else:
        fd = obj.fileno()
        if not isinstance(fd, int):
            raise TypeError('fileno() returned a non-integer')
    if fd < 0:
        raise ValueError('file descriptor cannot be a negative integer (%d)' % fd)
    return fd


_orig_select = _select.select


def select(rlist, wlist, xlist, timeout=None):
    """select.select: waits on the loop; the result is the real select's with timeout 0."""
    if timeout is not None:
        if timeout < 0:
            raise ValueError('timeout must be non-negative')
    if not _cooperative():
        return _orig_select(rlist, wlist, xlist, timeout)
    r = _orig_select(rlist, wlist, xlist, 0)
    if r[0] or r[1] or r[2] or timeout == 0:
        return r
    events = {}
    for o in rlist:
        fd = _fileno(o)
        events[fd] = events.get(fd, 0) | READ
    for o in xlist:  # out-of-band data and errors: seen as readable by epoll
        fd = _fileno(o)
        events[fd] = events.get(fd, 0) | READ
    for o in wlist:
        fd = _fileno(o)
        events[fd] = events.get(fd, 0) | WRITE
    deadline = None if timeout is None else _now() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - _now())
        if not _wait_fds(list(events.items()), left):
            return [], [], []
        r = _orig_select(rlist, wlist, xlist, 0)
        if r[0] or r[1] or r[2]:
            return r


def _poll_events(mask):
    ev = 0
    if mask & (_select.POLLIN | _select.POLLPRI):
        ev |= READ
    if mask & _select.POLLOUT:
        ev |= WRITE
    return ev or READ  # hang-ups and errors are reported as readable


class poll:
    """select.poll for tasklets: register/modify/unregister/poll(timeout ms)."""

    def __init__(self):
        self._poll = _orig[('select', 'poll')]()
        self._fds = {}

    def register(self, fd, eventmask=_select.POLLIN | _select.POLLPRI | _select.POLLOUT):
        fd = _fileno(fd)
        self._poll.register(fd, eventmask)
        self._fds[fd] = eventmask

    def modify(self, fd, eventmask):
        fd = _fileno(fd)
        self._poll.modify(fd, eventmask)
        self._fds[fd] = eventmask

    def unregister(self, fd):
        fd = _fileno(fd)
        self._poll.unregister(fd)
        del self._fds[fd]

    def poll(self, timeout=None):
        if timeout is not None:
            timeout = int(-(-timeout // 1)) if not isinstance(timeout, int) else timeout
            if timeout < 0:
                timeout = None
        if not _cooperative():
            return self._poll.poll(timeout)
        r = self._poll.poll(0)
        if r or timeout == 0:
            return r
        pairs = [(fd, _poll_events(m)) for fd, m in self._fds.items()]
        deadline = None if timeout is None else _now() + timeout / 1000.0
        while True:
            left = None if deadline is None else max(0.0, deadline - _now())
            if pairs:
                if not _wait_fds(pairs, left):
                    return []
            elif left is None:
                raise RuntimeError('poll() with nothing registered would wait forever')
            else:
                _wait_fds([], left)
                return []
            r = self._poll.poll(0)
            if r:
                return r


_orig_epoll = _select.epoll


class epoll:
    """select.epoll for tasklets (select.epoll cannot be subclassed: this wraps
    one). poll() waits for the epoll descriptor itself to become readable,
    which it does when a registered descriptor is ready."""

    def __init__(self, sizehint=-1, flags=0):
        self._ep = _orig_epoll(sizehint, flags)

    @classmethod
    def fromfd(cls, fd):
        self = cls.__new__(cls)
        self._ep = _orig_epoll.fromfd(fd)
        return self

    closed = property(lambda self: self._ep.closed)

    def fileno(self):
        return self._ep.fileno()

    def register(self, fd, eventmask=_select.EPOLLIN | _select.EPOLLPRI | _select.EPOLLOUT):
        return self._ep.register(fd, eventmask)

    def modify(self, fd, eventmask):
        return self._ep.modify(fd, eventmask)

    def unregister(self, fd):
        return self._ep.unregister(fd)

    def poll(self, timeout=None, maxevents=-1):
        if timeout is None or timeout < 0:
            timeout = None
        if not _cooperative():
            return self._ep.poll(-1 if timeout is None else timeout, maxevents)
        r = self._ep.poll(0, maxevents)
        if r or timeout == 0:
            return r
        deadline = None if timeout is None else _now() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - _now())
            if not _wait_fd(self._ep.fileno(), READ, left):
                return []
            r = self._ep.poll(0, maxevents)
            if r:
                return r

    def close(self):
        if not self._ep.closed:
            _forget_fd(self._ep.fileno())
        self._ep.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- time.sleep --------------------------------------------------------------------------------

_orig_sleep = _time.sleep


def sleep(secs):
    """time.sleep: blocks only the calling tasklet (carbon.sleep); a plain thread sleeps."""
    if not _cooperative():
        return _orig_sleep(secs)
    if not isinstance(secs, (int, float)):
        secs = float(_operator_index_or_float(secs))
    if secs != secs:
        raise ValueError('Invalid value NaN (not a number)')
    if secs < 0:
        raise ValueError('sleep length must be non-negative')
    _carbon.sleep(min(secs, 1e9))


def _operator_index_or_float(x):
    if hasattr(type(x), '__float__'):
        return float(x)
    import operator
    return operator.index(x)


# ---- ssl -----------------------------------------------------------------------------------------

def _make_ssl():
    import ssl as _ssl

    WantRead, WantWrite = _ssl.SSLWantReadError, _ssl.SSLWantWriteError

    class SSLSocket(_ssl.SSLSocket, socket):
        """ssl.SSLSocket over a patched socket: handshake, read, write and
        shutdown retry after SSLWantRead/WantWrite, waiting for the descriptor."""

        def _cb_retry(self, call, what, *args):
            timeout = self._cb_timeout
            if timeout == 0.0:
                return call(*args)
            deadline = None
            while True:
                try:
                    return call(*args)
                except WantRead:
                    events = READ
                except WantWrite:
                    events = WRITE
                if timeout is None:
                    _wait_fd(self.fileno(), events)
                    continue
                if deadline is None:
                    deadline = _now() + timeout
                left = deadline - _now()
                if left <= 0 or not _wait_fd(self.fileno(), events, left):
                    raise _timed_out('The %s operation timed out' % what)

        def do_handshake(self, block=False):
            self._check_connected()
            timeout = self._cb_timeout
            try:
                if timeout == 0.0 and block:
                    self._cb_timeout = None
                return self._cb_retry(self._sslobj.do_handshake, 'handshake')
            finally:
                self._cb_timeout = timeout

        def read(self, len=1024, buffer=None):
            return self._cb_retry(_ssl.SSLSocket.read.__get__(self), 'read', len, buffer)

        def write(self, data):
            return self._cb_retry(_ssl.SSLSocket.write.__get__(self), 'write', data)

        def send(self, data, flags=0):
            self._checkClosed()
            if self._sslobj is not None:
                if flags != 0:
                    raise ValueError('non-zero flags not allowed in calls to send() on %s' % self.__class__)
                return self._cb_retry(self._sslobj.write, 'write', data)
            return socket.send(self, data, flags)

        def unwrap(self):
            if self._sslobj:
                s = self._cb_retry(self._sslobj.shutdown, 'shutdown')
                self._sslobj = None
                return s
            raise ValueError('No SSL wrapper around ' + str(self))

    return _ssl, SSLSocket


# ---- patch() -------------------------------------------------------------------------------------

_patched = False


def patch(socket=True, ssl=True, select=True, time=True):
    """Patch the standard library so its blocking calls block only the calling tasklet.

    Idempotent. Patch before other modules create sockets: sockets made
    before patch() keep the original class and block their thread. Also gives
    the calling thread its loop, so its main tasklet waits cooperatively."""
    global _patched
    # The calling thread gets its loop, so its main tasklet's calls run the
    # thread's other tasklets while they wait.
    _carbon._ensure_loop()
    g = globals()
    if socket:
        _keep(_socket, 'socket')
        _keep(_socket, 'getaddrinfo')
        _keep(_socket, 'gethostbyname')
        _socket.socket = g['socket']
        _socket.getaddrinfo = g['getaddrinfo']
        _socket.gethostbyname = g['gethostbyname']
    if select:
        for name in ('select', 'poll', 'epoll'):
            _keep(_select, name)
        _select.select = g['select']
        _select.poll = g['poll']
        _select.epoll = g['epoll']
        # In place, so classes captured before patch() (socketserver's
        # _ServerSelector, socket.sendfile's PollSelector) are patched too.
        _keep(_selectors.SelectSelector, '_select')
        _selectors.SelectSelector._select = staticmethod(g['select'])
        if hasattr(_selectors, 'PollSelector'):
            _keep(_selectors.PollSelector, '_selector_cls')
            _selectors.PollSelector._selector_cls = g['poll']
        if hasattr(_selectors, 'EpollSelector'):
            _keep(_selectors.EpollSelector, '_selector_cls')
            _selectors.EpollSelector._selector_cls = g['epoll']
    if time:
        _keep(_time, 'sleep')
        _time.sleep = g['sleep']
    if ssl:
        _ssl, cls = _make_ssl_once()
        # ssl.SSLSocket itself stays (ssl.py names it in super() calls);
        # contexts make ours, a subclass of it.
        _keep(_ssl.SSLContext, 'sslsocket_class')
        _ssl.SSLContext.sslsocket_class = cls
    _patched = True


_ssl_cache = []


def _make_ssl_once():
    if not _ssl_cache:
        _ssl_cache.append(_make_ssl())
    return _ssl_cache[0]


def unpatch():
    """Restore every original patch() replaced (sockets already made keep their class)."""
    global _patched
    for (owner_name, name), value in _orig.items():
        owner = _owners().get(owner_name)
        if owner is not None:
            setattr(owner, name, value)
    _patched = False


def _owners():
    out = {'socket': _socket, 'select': _select, 'time': _time,
           'SelectSelector': _selectors.SelectSelector}
    if hasattr(_selectors, 'PollSelector'):
        out['PollSelector'] = _selectors.PollSelector
    if hasattr(_selectors, 'EpollSelector'):
        out['EpollSelector'] = _selectors.EpollSelector
    if 'ssl' in _sys.modules:
        out['ssl'] = _sys.modules['ssl']
        out['SSLContext'] = _sys.modules['ssl'].SSLContext
    return out


def original(owner, name):
    """What patch() replaced: original('socket', 'socket'), original('time', 'sleep'),
    original('select', 'select'), ... (the current attribute if patch() never replaced it)."""
    if (owner, name) in _orig:
        return _orig[(owner, name)]
    return getattr(_owners()[owner], name)


def is_patched():
    """True between patch() and unpatch()."""
    return _patched
