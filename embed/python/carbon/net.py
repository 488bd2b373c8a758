"""carbon.net: TCP and UDP sockets for tasklets, on the thread's libuv loop.

A call that waits (connect, read, write above the high-water mark, accept,
recvfrom, name resolution) blocks only the calling tasklet; the thread runs
its other tasklets and its loop meanwhile. See docs/net.md.

    def handler(stream):                 # one tasklet per connection
        while True:
            data = stream.read(65536)
            if not data:                 # EOF
                break
            stream.write(data)

    server = carbon.net.listen("127.0.0.1", 0, handler)
    host, port = server.sockname
    s = carbon.net.connect("127.0.0.1", port, timeout=5)
"""
import errno as _errno

import _carbon
import _carbon_net
import scheduler as _scheduler
from _carbon_net import (  # noqa: F401
    IncompleteReadError,
    Stream,
    TCPListener,
    UDPEndpoint,
    WRITE_HIGH_WATER,
    WRITE_LOW_WATER,
    READ_LIMIT,
)

__all__ = ["listen", "connect", "udp", "getaddrinfo", "Server", "Stream", "UDPEndpoint",
           "IncompleteReadError", "ACCEPT_RETRY_DELAY"]

# A failed accept for lack of descriptors or memory: the listener pauses this
# long (seconds) and goes on; the connection it could not take was closed.
ACCEPT_RETRY_DELAY = 0.1
_RETRY_ERRNOS = frozenset((_errno.EMFILE, _errno.ENFILE, _errno.ENOBUFS, _errno.ENOMEM))


def _default_host(host):
    return "0.0.0.0" if host in (None, "") else host


class Server:
    """A listening TCP socket: ``listen()``'s result.

    With a handler, a listener tasklet accepts and starts ``handler(stream)``
    in a new tasklet per connection (the stream is closed when the handler
    returns). Without one, tasklets call ``accept()`` themselves.
    """

    __slots__ = ("_listener", "_handler", "_tasklet", "__weakref__")

    def __init__(self, listener, handler):
        self._listener = listener
        self._handler = handler
        self._tasklet = None
        if handler is not None:
            self._tasklet = _scheduler.tasklet(self._serve)()

    @property
    def sockname(self):
        """The bound address: ``(host, port)`` (IPv6: 4-tuple)."""
        return self._listener.sockname

    @property
    def closed(self):
        return self._listener.closed

    @property
    def accept_errors(self):
        """How many accepts failed so far (EMFILE and the like)."""
        return self._listener.accept_errors

    def accept(self):
        """The next connection (a Stream); blocks the calling tasklet."""
        return self._listener.accept()

    def close(self):
        """Stop listening. Connections already handed to handlers go on."""
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        if self._listener.closed:
            return "<carbon.net.Server closed>"
        return "<carbon.net.Server %r>" % (self._listener.sockname,)

    def _serve(self):
        listener, handler = self._listener, self._handler
        while True:
            try:
                stream = listener.accept()
            except OSError as e:
                if listener.closed:
                    return
                if e.errno in _RETRY_ERRNOS:
                    _carbon.sleep(ACCEPT_RETRY_DELAY)
                    continue
                raise
            _scheduler.tasklet(_handle)(handler, stream)


def _handle(handler, stream):
    try:
        handler(stream)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the peer went away: routine for a server, not reported
    except Exception:  # reported; the server and the other connections go on
        _report(handler, stream)
    finally:
        stream.close()


def _report(handler, stream):
    import sys
    import traceback
    try:
        peer = stream.peername
    except OSError:
        peer = "?"
    sys.stderr.write("carbon.net: exception in handler %r for %r:\n" % (
        getattr(handler, "__qualname__", handler), peer))
    traceback.print_exc()


def listen(host, port, handler=None, backlog=128):
    """Listen on (host, port) (port 0: any free port) and return a Server.

    ``handler(stream)`` runs in a new tasklet for each connection."""
    if handler is not None and not callable(handler):
        raise TypeError("listen(): handler must be callable, not %s" % type(handler).__name__)
    return Server(_carbon_net.tcp_listen(_default_host(host), port, backlog=backlog), handler)


def connect(host, port, timeout=None):
    """Connect to (host, port) and return a Stream; tries each address the
    name resolves to. ``timeout`` (seconds) covers resolution and connection
    and raises TimeoutError."""
    return _carbon_net.tcp_connect(host, port, timeout)


def udp(bind=("0.0.0.0", 0)):
    """A UDP endpoint bound to ``bind`` = (host, port)."""
    if not isinstance(bind, tuple) or len(bind) != 2:
        raise TypeError("udp(): bind must be a (host, port) tuple")
    return _carbon_net.udp(_default_host(bind[0]), bind[1])


def getaddrinfo(host, port=0, type=_carbon_net.SOCK_STREAM):
    """The addresses ``host`` resolves to, as (host, port) tuples, resolved by
    libuv's thread pool while only the calling tasklet waits."""
    return _carbon_net.getaddrinfo(host, port, type)
