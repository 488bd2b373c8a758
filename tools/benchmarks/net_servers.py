"""Echo servers of `tools/bench --only net`, one per implementation:

    carbon   carbon.net streams, a tasklet per connection (run by the carbon host)
    patched  carbon.patch()ed stdlib sockets, a tasklet per connection (carbon host)
    asyncio  asyncio streams (StreamReader/StreamWriter)
    uvloop   asyncio protocol API on uvloop
    gevent   gevent StreamServer

    python3 net_servers.py IMPL     prints "PORT <n>", then serves until killed

Every server binds 127.0.0.1, port 0, backlog 4096, and echoes what it reads
(reads of up to 64 KiB).
"""
import resource
import sys

BACKLOG = 4096


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 65536), hard))


def ready(port):
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()


def serve_carbon():
    import carbon
    import carbon.net

    def handler(stream):
        read, write = stream.read, stream.write
        while True:
            data = read(65536)
            if not data:
                return
            write(data)

    srv = carbon.net.listen("127.0.0.1", 0, handler, backlog=BACKLOG)
    ready(srv.sockname[1])
    while True:
        carbon.sleep(3600)


def serve_patched():
    import carbon
    if not hasattr(carbon, "patch"):
        sys.stderr.write("carbon.patch() is not available in this build\n")
        sys.exit(3)
    carbon.patch()
    import socket

    import scheduler

    def handler(conn):
        # A reset peer ends its connection only, as in carbon.net.listen()
        # and gevent's StreamServer (an exception left to escape a tasklet
        # would end the server: the 4 KiB row once failed that way, when the
        # previous load generator's connections were reset at its exit).
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
            except (ConnectionResetError, BrokenPipeError):
                return

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(BACKLOG)
    ready(ls.getsockname()[1])

    def acceptor():
        while True:
            conn, _ = ls.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            scheduler.tasklet(handler)(conn)

    scheduler.tasklet(acceptor)()
    while True:
        carbon.sleep(3600)


def serve_asyncio(use_uvloop=False):
    import asyncio

    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def main():
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=BACKLOG)
        ready(srv.sockets[0].getsockname()[1])
        await srv.serve_forever()

    asyncio.run(main())


def serve_uvloop():
    import asyncio

    import uvloop

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(Echo, "127.0.0.1", 0, backlog=BACKLOG)
        ready(srv.sockets[0].getsockname()[1])
        await srv.serve_forever()

    uvloop.install()
    asyncio.run(main())


def serve_gevent():
    from gevent.server import StreamServer
    import socket

    def handle(sock, addr):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            sock.sendall(data)

    srv = StreamServer(("127.0.0.1", 0), handle, backlog=BACKLOG)
    srv.init_socket()
    ready(srv.server_port)
    srv.serve_forever()


if __name__ == "__main__":
    raise_fd_limit()
    {"carbon": serve_carbon, "patched": serve_patched, "asyncio": serve_asyncio,
     "uvloop": serve_uvloop, "gevent": serve_gevent}[sys.argv[1]]()
