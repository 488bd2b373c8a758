"""Bad input: garbage, oversized messages, silence (idle timeout), a
disconnect mid-message, a duplicate login, a move into a wall, chat flooding,
and a burst of 1000 connects/disconnects. Each is answered with an error or
dropped; a watching player in range notices nothing (its sequence numbers run
on, it gets no error, its connection stays); the burst leaks no descriptor,
tasklet or memory."""
import os
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "python", "gameserver"))
import harness  # noqa: E402
import world  # noqa: E402  (the map: pure Python, no runtime needed)

IDLE = 2.0


class Watcher(threading.Thread):
    """A logged-in player that keeps itself active and records what it gets."""

    def __init__(self, port, name):
        super().__init__(daemon=True)
        self.c = harness.Client(port)
        self.welcome = self.c.login(name)
        self.stop_ev = threading.Event()
        self.errors, self.chats, self.failure = [], [], None
        self.mid = 0

    def run(self):
        try:
            last = 0
            while not self.stop_ev.is_set():
                if time.monotonic() - last > 0.3:      # stay clear of the idle timeout
                    self.mid += 1
                    self.c.send({"t": "move", "dx": 0, "dy": 0, "id": self.mid})
                    last = time.monotonic()
                try:
                    m = self.c.recv(0.1)
                except (socket.timeout, TimeoutError):
                    continue
                if m is None:
                    self.failure = "watcher: connection closed"
                    return
                if m["t"] == "error":
                    self.errors.append(m)
                elif m["t"] == "chat":
                    self.chats.append(m)
        except Exception as e:  # recorded, checked by the main thread
            self.failure = "watcher: %r" % e

    def finish(self):
        self.stop_ev.set()
        self.join(5)
        assert self.failure is None, self.failure
        assert not self.errors, self.errors


def near_wall_name():
    for i in range(1000):
        name = "wally%d" % i
        x, y = world.spawn_cell(name)
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            if (x + dx, y + dy) in world.WALLS:
                return name, (x, y), (dx, dy)
    raise AssertionError("no spawn next to a wall")


def case_garbage(port):
    c = harness.Client(port)
    c.send_raw(b"\x00\xff\xfe garbage\n")
    assert c.expect("error")["code"] == "bad_json"
    c.send_raw(b"[1, 2, 3]\n")
    assert c.expect("error")["code"] == "bad_json"
    c.send({"t": "move", "dx": 1, "dy": 0, "id": 1})
    assert c.expect("error")["code"] == "not_logged_in"
    c.send({"t": "login", "name": "no spaces allowed"})
    assert c.expect("error")["code"] == "bad_name"
    c.login("garbler")
    c.send({"t": "teleport"})
    assert c.expect("error")["code"] == "bad_request"
    c.send({"t": "move", "dx": 5, "dy": 0, "id": 2})
    assert c.expect("error")["code"] == "bad_request"
    for _ in range(25):                      # too many bad messages: dropped
        c.send_raw(b"}{\n")
    assert c.eof(), "not dropped after 20 bad messages"
    codes = [m["code"] for m in c.received if m["t"] == "error"]
    assert codes[-1] == "too_many_errors", codes
    c.close()


def case_oversized(port):
    c = harness.Client(port)
    c.login("bigmouth")
    c.send_raw(b'{"t":"chat","text":"' + b"x" * 10000)   # no newline: over the limit
    assert c.expect("error")["code"] == "too_long"
    assert c.eof()
    c.close()
    c = harness.Client(port)
    c.send_raw(b"y" * 5000 + b"\n")                        # one long line
    assert c.expect("error")["code"] == "too_long"
    assert c.eof()
    c.close()


def case_idle(port):
    c = harness.Client(port)
    c.login("sleepy")
    t = time.monotonic()
    m = c.expect("error", timeout=IDLE + 5)
    assert m["code"] == "idle", m
    assert c.eof()
    assert IDLE - 0.2 <= time.monotonic() - t <= IDLE + 3
    c.close()
    s = socket.create_connection(("127.0.0.1", port))   # never says anything
    h = socket.create_connection(("127.0.0.1", port))   # an HTTP request that stalls
    h.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n")
    for sock in (s, h):
        sock.settimeout(IDLE + 5)
        assert sock.recv(100) == b""                      # dropped
        sock.close()


def case_mid_message(port):
    c = harness.Client(port)
    c.login("halfway")
    c.send_raw(b'{"t":"chat","scope":"global","te')
    c.close()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b'{"t":"log')
    s.close()


def case_duplicate(port):
    a = harness.Client(port)
    a.login("twin")
    b = harness.Client(port)
    b.send({"t": "login", "name": "twin"})
    assert b.expect("error")["code"] == "name_taken"
    b.login("twin2")                                      # the connection still works
    a.send({"t": "chat", "scope": "local", "text": "still here", "id": 1})
    assert a.expect("sent", skip=("snap", "chat"))["to"] >= 1
    for c in (a, b):
        c.send({"t": "quit"})
        c.expect("bye", skip=("snap", "chat"))
        c.close()


def case_wall(port):
    name, pos, (dx, dy) = near_wall_name()
    c = harness.Client(port)
    w = c.login(name)
    assert tuple(w["pos"]) == pos
    c.send({"t": "move", "dx": dx, "dy": dy, "id": 7})
    e = c.expect("error")
    assert e["code"] == "wall" and e["id"] == 7, e
    s = c.expect("snap")
    assert s["ack"] == 7 and tuple(s["you"]) == pos, s
    c.close()


def case_flood(port, watcher):
    c = harness.Client(port)
    c.login("flooder")
    for i in range(40):
        c.send({"t": "chat", "scope": "global", "text": "spam %d" % i, "id": i})
    sent = limited = 0
    while sent + limited < 40:
        m = c.recv()
        if m["t"] == "sent":
            sent += 1
        elif m["t"] == "error":
            assert m["code"] == "rate_limited", m
            limited += 1
    assert 5 <= sent <= 7 and limited >= 33, (sent, limited)
    time.sleep(0.3)
    got = [m for m in watcher.chats if m["from"] == "flooder"]
    assert len(got) == sent, (len(got), sent)
    c.close()


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


def burst(port, n, tag):
    for round_ in range(n // 100):           # 100 at a time
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        for i, s in enumerate(socks):
            if i % 3 == 1:
                s.sendall(b'{"t":"login","name":"%s%d_%d"}\n' % (tag, round_, i))
            elif i % 3 == 2:
                s.sendall(b'{"t":"mo')
            s.close()
    return n


def case_burst(srv):
    # A first burst warms up the allocator (free lists, arenas) and the
    # store (the same 333 players are stored then only updated); the
    # baseline is taken after it.
    burst(srv.port, 1000, b"burst")
    wait_for(lambda: srv.stats()["connections"] <= 2, 15)
    time.sleep(0.5)
    base_fds = srv.fd_count()
    base = srv.stats()
    base_rss = base["rss_kib"]
    burst(srv.port, 1000, b"burst")
    ok = wait_for(lambda: srv.stats()["connections"] <= base["connections"], 15)
    st = srv.stats()
    assert ok, "connections %d, before %d" % (st["connections"], base["connections"])
    assert wait_for(lambda: srv.stats()["tasklets"] <= base["tasklets"] + 1, 10), \
        "tasklets %d, before %d" % (srv.stats()["tasklets"], base["tasklets"])
    assert wait_for(lambda: srv.fd_count() <= base_fds, 10), \
        "descriptors %d, before %d" % (srv.fd_count(), base_fds)
    rss = srv.stats()["rss_kib"]
    print("burst: connections %d -> %d, tasklets %d -> %d, fds %d -> %d, RSS %d -> %d KiB"
          % (base["connections"], st["connections"], base["tasklets"], srv.stats()["tasklets"],
             base_fds, srv.fd_count(), base_rss, rss))
    if "ASAN_OPTIONS" in os.environ:   # ASan holds freed memory in its quarantine
        print("burst: RSS not checked under AddressSanitizer")
    else:
        assert rss - base_rss < 2 * 1024, (base_rss, rss)


def main():
    bin_dir = harness.bin_dir_from_argv()
    with tempfile.TemporaryDirectory() as tmp:
        with harness.Server(bin_dir, os.path.join(tmp, "game.db"), "--idle-timeout", IDLE) as srv:
            watcher = Watcher(srv.port, "watcher")
            watcher.start()
            for case in (case_garbage, case_oversized, case_mid_message, case_duplicate, case_wall,
                         case_idle):
                case(srv.port)
                print(case.__name__, "ok")
            case_flood(srv.port, watcher)
            print("case_flood ok")
            status, body = harness.http_get(srv.port, "/nope")
            assert status == 404
            case_burst(srv)
            print("case_burst ok")
            watcher.finish()
            assert srv.stop() == 0, srv.output()
    print("ok")


if __name__ == "__main__":
    main()
