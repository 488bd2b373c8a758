"""The sample game server's logic: sessions, world, NPCs, chat, persistence.

Run by the C host (samples/game_server/game_server.c), which ticks it at 30 Hz:
``start(...)`` once, ``host_frame(...)`` after every tick (frame statistics for
the dashboard), ``shutdown()`` on SIGINT/SIGTERM. Protocol: README.md.

Tasklets on the host thread: one reader and one writer per connection (their
sockets are `carbon.net` streams: a read or write blocks only its tasklet,
the host thread's libuv loop waits on the sockets; the writer only writes
what is left at the end), the flusher (every connection's replies, once a
frame), the world tick, the saver, the stats sampler, one per NPC. Two
worker threads: A* paths and the SQLite store.
"""
import gc
import json
import os
import random
import re
import sys
import time

import carbon
import scheduler

import carbon.net

from . import world
from .store import db_worker
from .world import AOI, Grid

VERSION = 1
MAX_LINE = 4096          # bytes per message, newline included
MAX_OUT = 1024           # queued replies before a client counts as stuck and is dropped
MAX_ERRORS = 20          # bad messages before a connection is dropped
CHAT_BURST, CHAT_RATE = 5, 2.0   # chat token bucket: 5 at once, 2 per second after
MAX_CHAT = 200           # characters
MAX_PENDING_MOVES = 16
NEAR_MAX = 24            # entities listed in a snapshot

cfg = {}
grid = Grid()
players = {}             # name -> Player (logged in)
conns = set()
npcs = []
stats = {"msgs_in": 0, "msgs_out": 0, "conns_total": 0, "logins": 0, "drops": 0,
         "errors_sent": 0, "saves": 0, "paths": 0, "chat_global": 0, "chat_local": 0,
         "world_ticks": 0, "rate_limited": 0, "gc_ms": 0.0, "gc_max_ms": 0.0,
         "gc_runs_gen0": 0, "gc_runs_gen1": 0, "gc_runs_gen2": 0, "snaps": 0}
host = {"frames": 0, "tick_ns": [], "cpu_ns": [], "own_ns": [], "budget_ns": 0, "tasklets": 0, "hitches": 0, "late": 0,
        "max_ns": 0}
series = {"t": [], "in": [], "out": []}
dirty = set()            # names of logged-in players changed since their last save
pending_rows = {}        # name -> row of a player logged out, not yet handed to the store
state = {"listener": None, "db": None, "paths": None, "dbq": None, "pathq": None,
         "closing": False, "start": 0.0, "next_id": 1000,
         "flushq": []}           # connections with replies queued, for _flusher
tasks = []


def _body(obj):
    """A message's JSON text without its closing brace, as bytes: _number
    appends the sequence number and the brace."""
    return json.dumps(obj, separators=(",", ":"))[:-1].encode()


def _number(conn, bodies):
    """The wire bytes of `bodies` (see _body), numbered from conn.seq on.

    Messages are numbered when written (by _flush, in an atomic section): a
    message's number is its place in the queue, whatever tasklet queued it.
    (Numbering when queueing took two steps, the number and the append, and
    a tasklet preempted between them (frame safety: a tasklet past its
    slice stops at any instruction) let another's message take the next
    number first: tests/test_numbering.py.)"""
    seq = conn.seq
    parts = []
    add = parts.append
    for b in bodies:
        seq += 1
        add(b)
        add(b',"seq":%d}\n' % seq)
    conn.seq = seq
    return b"".join(parts)


class Entity:
    __slots__ = ("id", "kind", "x", "y", "__weakref__")

    def __init__(self, kind, x, y):
        state["next_id"] += 1
        self.id = state["next_id"]
        self.kind = kind
        self.x, self.y = x, y


class Player(Entity):
    __slots__ = ("name", "conn", "score", "moves", "ack", "tokens", "tok_t", "last_seen")

    def __init__(self, name, x, y, score):
        Entity.__init__(self, "p", x, y)
        self.name = name
        self.conn = None
        self.score = score
        self.moves = []
        self.ack = 0
        self.tokens = CHAT_BURST
        self.tok_t = carbon.now()
        self.last_seen = time.time()

    def row(self):
        return (self.name, self.x, self.y, self.score, self.last_seen)


class Conn:
    """One client connection: its stream, its queue of replies (message
    bodies, see _body, numbered when written by _flusher) and its tasklets:
    the reader, and the writer (the carbon.net handler), which writes what
    is left when the connection closes."""

    def __init__(self, stream):
        self.stream = stream
        self.seq = 0
        self.out = []
        self.queued = False     # in the flusher's queue
        self.wake = scheduler.channel()
        self.wake.preference = 1
        self.closing = False
        self.player = None
        self.reader = scheduler.getcurrent()
        self.writer = None
        self.writing = False
        self.last_in = carbon.now()
        self.errors = 0

    def send(self, obj):
        """Queues one message (a dict); never blocks."""
        self.send_body(_body(obj))

    def send_body(self, body, flush=True):
        """Queues a message given as its JSON bytes without the closing
        brace (see _body): the hot path, no dict, no encoder; the same
        bytes may go to many connections. It is written at the start of
        the next frame; with flush=False (chat lines) only with the next
        write that is due anyway: at the latest the player's next snapshot,
        within a world tick. (At 1000 players: 1.03 writes per snapshot
        instead of 1.31, each a loopback send of ~5 us of CPU.)"""
        if self.closing:
            return
        out = self.out
        out.append(body)
        if len(out) > MAX_OUT:            # not reading its replies: drop it
            stats["drops"] += 1
            self.drop()
            return
        if flush and not self.queued:
            self.queued = True
            state["flushq"].append(self)

    def error(self, code, text, **extra):
        stats["errors_sent"] += 1
        msg = {"t": "error", "code": code, "msg": text}
        msg.update(extra)
        self.send(msg)

    def close(self):
        """Sends what is queued, then closes the stream (the handler does)."""
        self.closing = True
        if self.wake.balance < 0:
            self.wake.send(None)

    def drop(self):
        """Closes now, from any tasklet: the reader ends (its finally logs
        out); the handler sends what is queued, unless it is stuck writing
        to a client that does not read: then it ends too."""
        self.close()
        cur = scheduler.getcurrent()
        if self.reader is not cur and self.reader.alive:
            self.reader.kill()
        w = self.writer
        if w is not None and w is not cur and w.alive and \
                (self.writing or self.stream.write_buffered > carbon.net.WRITE_HIGH_WATER):
            w.kill()


def _handle(stream):
    """A connection's tasklet: one HTTP request, or the game protocol.

    For a game connection a second tasklet reads and the replies go out
    through _flusher; this one waits for the end, writes what is left and
    returns (carbon.net then closes the stream, letting queued bytes out)
    only once everything queued for the client is written."""
    conn = Conn(stream)
    conns.add(conn)
    stats["conns_total"] += 1
    try:
        try:
            stream.set_nodelay(True)
        except (OSError, AttributeError):
            pass
        buf = bytearray()
        while True:                         # enough bytes to tell HTTP from the game
            data = stream.read(65536)
            if not data:
                return
            conn.last_in = carbon.now()
            buf += data
            head = bytes(buf[:4])
            if len(head) == 4 or b"\n" in head or not \
                    (b"GET ".startswith(head) or b"HEAD".startswith(head)):
                break
        if head in (b"GET ", b"HEAD"):
            from . import dashboard
            conn.closing = True             # no game messages on this one
            dashboard.serve_http(stream, buf)
            return
        conn.writer = scheduler.getcurrent()
        conn.reader = scheduler.tasklet(_reader)(conn, buf)
        _write_loop(conn)
    except OSError:
        pass
    finally:
        conns.discard(conn)
        conn.closing = True
        if conn.reader.alive and conn.reader is not scheduler.getcurrent():
            conn.reader.kill()              # its finally logs the player out
        _logout(conn)


def _write_loop(conn):
    """The handler's part once the game has begun: wait until the
    connection closes, then write what is left (waiting if the client is
    slow) and let it drain. Everything before goes out through _flusher."""
    while not conn.closing:
        conn.wake.receive()
    stream = conn.stream
    cur = scheduler.getcurrent()
    conn.writing = True                     # drop() may kill us while stuck here
    while conn.out and not stream.closed:
        if stream.write_buffered > carbon.net.WRITE_HIGH_WATER:
            carbon.sleep(0.01)              # the client is slow: wait for room
            continue
        old = cur.set_atomic(True)          # no _flush of the flusher's in between
        try:
            _flush(conn)
        finally:
            cur.set_atomic(old)
    stream.drain()


def _flusher():
    """Once a frame, at its start: writes what the last frame queued for
    each connection, numbered, in one write per connection.

    One tasklet for all connections: a write costs one system call and no
    tasklet switch. (With a writer tasklet per connection woken for each
    write, its wake-up, frame wait and switches cost about as much as the
    loopback send itself.) A connection whose client does not keep up (more
    than WRITE_HIGH_WATER bytes still unsent) waits for a later frame, so
    the write never blocks; its queue grows until MAX_OUT drops it."""
    q = state["flushq"]
    cur = scheduler.getcurrent()
    while True:
        carbon.wait_frames(1)
        n = len(q)
        if not n:
            continue
        batch = q[:n]
        del q[:n]                           # what was queued meanwhile stays
        old = cur.set_atomic(True)          # numbering is not interrupted
        try:
            for i, conn in enumerate(batch):
                conn.queued = False
                if conn.out:
                    _flush(conn)
                if i % 64 == 63:            # let the tick's budget check run
                    cur.set_atomic(old)
                    scheduler.schedule()
                    old = cur.set_atomic(True)
        finally:
            cur.set_atomic(old)


def _flush(conn):
    """Writes conn's queue without blocking. Called in an atomic section,
    so that the numbers of two writes never interleave."""
    stream = conn.stream
    try:
        if stream.closed:
            conn.out = []
            return
        if stream.write_buffered > carbon.net.WRITE_HIGH_WATER:
            if not conn.queued:             # a slow client: again next frame
                conn.queued = True
                state["flushq"].append(conn)
            return
        out, conn.out = conn.out, []
        stats["msgs_out"] += len(out)
        stream.write(_number(conn, out))
    except OSError:                         # the peer is gone
        conn.out = []
        conn.drop()


def _reader(conn, buf):
    """Reads and handles the client's lines until EOF, an error or a drop."""
    stream = conn.stream
    try:
        while True:
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) >= MAX_LINE:
                        conn.error("too_long", "message longer than %d bytes" % MAX_LINE)
                        return
                    break
                line = bytes(buf[:nl])
                del buf[:nl + 1]
                if len(line) >= MAX_LINE:
                    conn.error("too_long", "message longer than %d bytes" % MAX_LINE)
                    return
                if not line.strip():
                    continue
                stats["msgs_in"] += 1
                if not _message(conn, line) or conn.closing:
                    return
            data = stream.read(65536)
            if not data:
                return                      # EOF (a partial line is dropped)
            conn.last_in = carbon.now()
            buf += data
    except OSError:
        pass
    finally:
        _logout(conn)
        conn.close()                        # the handler sends what is queued and ends


# A move as clients write it (compact JSON, these keys in this order): read
# without the JSON decoder (~0.5 us instead of ~2 us); any other spelling
# takes the general path, with the same result.
_MOVE = re.compile(rb'\{"t":"move","dx":(-?[01]),"dy":(-?[01]),"id":(0|-?[1-9][0-9]{0,17})\}')


def _message(conn, line):
    """Handles one line; False ends the session."""
    m = _MOVE.fullmatch(line)
    if m is not None and conn.player is not None:
        return _move(conn, conn.player, int(m[1]), int(m[2]), int(m[3]))
    try:
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError("not an object")
        kind = msg.get("t")
    except (ValueError, UnicodeDecodeError) as e:
        return _bad(conn, "bad_json", "not a JSON object: %s" % str(e)[:80])
    p = conn.player
    if kind == "login":
        return _login(conn, msg)
    if kind == "quit":
        conn.send({"t": "bye", "reason": "quit"})
        conn.close()
        return False
    if p is None:
        return _bad(conn, "not_logged_in", "log in first")
    if kind == "move":
        dx, dy, mid = msg.get("dx"), msg.get("dy"), msg.get("id", 0)
        if dx not in (-1, 0, 1) or dy not in (-1, 0, 1) or not isinstance(mid, int) \
                or isinstance(dx, bool) or isinstance(dy, bool):
            return _bad(conn, "bad_request", "move needs dx, dy in -1..1 and an integer id")
        return _move(conn, p, dx, dy, mid)
    if kind == "chat":
        return _chat(conn, p, msg)
    if kind == "path":
        return _path(conn, p, msg)
    return _bad(conn, "bad_request", "unknown message type %r" % (kind,))


def _move(conn, p, dx, dy, mid):
    if len(p.moves) >= MAX_PENDING_MOVES:
        stats["rate_limited"] += 1
        conn.error("rate_limited", "too many moves this tick", id=mid)
        return True
    p.moves.append((dx, dy, mid))
    return True


def _bad(conn, code, text):
    conn.errors += 1
    conn.error(code, text)
    if conn.errors >= MAX_ERRORS:
        conn.error("too_many_errors", "closing after %d bad messages" % conn.errors)
        conn.close()
        return False
    return True


def _valid_name(name):
    return isinstance(name, str) and 1 <= len(name) <= 24 and \
        all(c.isascii() and (c.isalnum() or c in "_-") for c in name)


def _login(conn, msg):
    name = msg.get("name")
    if conn.player is not None:
        return _bad(conn, "bad_request", "already logged in")
    if not _valid_name(name):
        return _bad(conn, "bad_name", "a name is 1-24 letters, digits, _ or -")
    if name in players:
        conn.error("name_taken", "%s is already logged in" % name)
        return True
    row = pending_rows.get(name)     # logged out moments ago: newer than the database
    if row is None:
        reply = scheduler.channel()
        state["dbq"].send(("load", name, reply))
        row = reply.receive()                 # only this tasklet waits
        if conn.closing or name in players:   # dropped or raced meanwhile
            if not conn.closing:
                conn.error("name_taken", "%s is already logged in" % name)
            return not conn.closing
        if row is not None:
            row = (name, row["x"], row["y"], row["score"], row["last_seen"])
    if row is None:
        x, y = world.spawn_cell(name)
        p = Player(name, x, y, 0)
        dirty.add(name)
    else:
        p = Player(name, row[1], row[2], row[3])
    p.conn = conn
    p.moves = []
    p.ack = 0
    p.last_seen = time.time()
    conn.player = p
    players[name] = p
    grid.add(p)
    stats["logins"] += 1
    conn.send({"t": "welcome", "v": VERSION, "id": p.id, "name": name, "pos": [p.x, p.y],
               "score": p.score, "hz": cfg["world_hz"], "aoi": AOI, "size": world.SIZE})
    return True


def _logout(conn):
    p = conn.player
    if p is None:
        return
    conn.player = None
    if players.get(p.name) is p:
        del players[p.name]
    grid.remove(p)
    p.conn = None
    p.last_seen = time.time()
    pending_rows[p.name] = p.row()
    dirty.discard(p.name)


def _chat(conn, p, msg):
    text, scope, cid = msg.get("text"), msg.get("scope", "local"), msg.get("id", 0)
    if not isinstance(text, str) or scope not in ("local", "global") or not isinstance(cid, int):
        return _bad(conn, "bad_request", "chat needs text, scope local|global and an integer id")
    now = carbon.now()
    p.tokens = min(CHAT_BURST, p.tokens + (now - p.tok_t) * CHAT_RATE)
    p.tok_t = now
    if p.tokens < 1:
        stats["rate_limited"] += 1
        conn.error("rate_limited", "chat at most %g lines per second" % CHAT_RATE, id=cid)
        return True
    p.tokens -= 1
    # Encoded once for every recipient (each adds its own sequence number).
    line = ('{"t":"chat","from":"%s","scope":"%s","text":%s,"cid":%d' % (
        p.name, scope, json.dumps(text[:MAX_CHAT]), cid)).encode()
    if scope == "global":
        stats["chat_global"] += 1
        targets = list(players.values())
    else:
        stats["chat_local"] += 1
        targets = [e for e in grid.near(p.x, p.y) if e.kind == "p"]
    n = 0
    for q in targets:
        if q.conn is not None:
            q.conn.send_body(line, False)
            n += 1
    conn.send({"t": "sent", "id": cid, "to": n})
    return True


def _path(conn, p, msg):
    to = msg.get("to")
    if not (isinstance(to, list) and len(to) == 2 and all(type(v) is int for v in to)):
        return _bad(conn, "bad_request", "path needs to: [x, y]")
    reply = scheduler.channel()
    state["pathq"].send(((p.x, p.y), tuple(to), reply))
    path = reply.receive()
    stats["paths"] += 1
    conn.send({"t": "path", "to": to, "path": path})
    return True


# ---- the world -----------------------------------------------------------------------


def _world_tick():
    """Every 1/world_hz s: apply moves, then send each player what is near."""
    period = 1.0 / cfg["world_hz"]
    # The snapshots of a world tick go out over the frames until the next
    # one (hz / world_hz frames: 3 by default), a part in each, so that no
    # frame carries all of them, nor all the writes that follow them.
    slices = max(1, cfg["hz"] // cfg["world_hz"])
    next_t = carbon.now()
    while True:
        next_t += period
        delay = next_t - carbon.now()
        if delay < -period:          # late by more than a period: do not catch up
            next_t = carbon.now()
        carbon.sleep(max(0.0, delay))
        stats["world_ticks"] += 1
        _world_step(stats["world_ticks"], slices)
        _reap_idle()


def _world_step(tick, slices=1):
    """One world tick: every player's moves, then the snapshots, in `slices`
    parts one frame apart (slices=1: all now)."""
    for p in list(players.values()):
        if p.moves:
            # Taken in one step: a move queued meanwhile (this tasklet may be
            # preempted anywhere) waits for the next world tick.
            moves, p.moves = p.moves, []
            for dx, dy, mid in moves:
                nx, ny = p.x + dx, p.y + dy
                if world.free(nx, ny):
                    if (dx or dy):
                        p.score += 1
                    grid.move(p, nx, ny)
                elif p.conn is not None:
                    p.conn.error("wall", "(%d, %d) is a wall" % (nx, ny), id=mid)
                p.ack = mid
            dirty.add(p.name)
    # Snapshots, cell by cell of the AOI grid: what is near (the entities
    # of the 3 x 3 cells around a player's cell, nearest to the cell's
    # centre first, at most NEAR_MAX) is computed and encoded once per cell
    # and slice, each entity's text once per cell and slice, and shared by
    # every player in the cell. Measured in-process at 1000 players and 50
    # NPCs (3.11, CPU time, load ~20): the whole step took 6.1-6.7 ms with a
    # sort by a key function and json.dumps per cell; 3.7-4.3 ms like this.
    # A player's snapshot has the world as it is when sent: only this step
    # moves players, so none changes cell between the parts.
    per = max(64, -(-len(players) // slices))
    frags = {}
    done = run = 0
    for k, s in list(grid.cells.items()):
        here = [e for e in list(s) if e.kind == "p"]
        if not here:
            continue
        near = _near_block(k, frags)
        for p in here:
            c = p.conn
            if c is not None:
                c.send_body(b'{"t":"snap","tick":%d,"you":[%d,%d],"ack":%d,"near":%s'
                            % (tick, p.x, p.y, p.ack, near))
        stats["snaps"] += len(here)
        done += len(here)
        run += len(here)
        if done >= per and slices > 1:
            carbon.wait_frames(1)        # the next part in the next frame
            frags = {}                   # NPCs may have moved meanwhile
            done = run = 0
        elif run >= 64:                  # let the tick's budget check run
            scheduler.schedule()
            run = 0


_FRAG = {"p": b'[%d,"p",%d,%d]', "n": b'[%d,"n",%d,%d]'}


def _near_block(k, frags):
    """The snapshot's "near" list for the players of grid cell k, as JSON
    bytes; `frags` caches each cell's entities as (x, y, text)."""
    k0, k1 = k
    cx, cy = k0 * AOI + AOI // 2, k1 * AOI + AOI // 2
    items = []
    for g in ((k0 - 1, k1 - 1), (k0 - 1, k1), (k0 - 1, k1 + 1), (k0, k1 - 1), k, (k0, k1 + 1),
              (k0 + 1, k1 - 1), (k0 + 1, k1), (k0 + 1, k1 + 1)):
        f = frags.get(g)
        if f is None:
            s = grid.cells.get(g)
            f = frags[g] = [(e.x, e.y, _FRAG[e.kind] % (e.id, e.x, e.y)) for e in list(s)] if s else ()
        items += f
    if len(items) > NEAR_MAX:
        items = sorted([(abs(x - cx) + abs(y - cy), t) for x, y, t in items])[:NEAR_MAX]
    return b"[" + b",".join([i[-1] for i in items]) + b"]"


def _reap_idle():
    idle = cfg["idle_timeout"]
    now = carbon.now()
    for c in list(conns):
        # Game connections get an error first; a silent or stalled HTTP
        # request (no writer) is just closed.
        if now - c.last_in > idle and (c.reader.alive or c.writing):
            if c.writer is not None and not c.closing:
                c.error("idle", "nothing received for %g s" % idle)
            c.drop()


def _npc(rng, e):
    """Wanders along A* paths from the path worker; follows a player it sees."""
    reply = scheduler.channel()
    path = []
    while True:
        carbon.sleep(rng.uniform(0.2, 0.6))
        seen = [q for q in grid.near(e.x, e.y, 5) if q.kind == "p"]
        if seen:                                   # react: step toward the nearest player
            q = min(seen, key=lambda q: abs(q.x - e.x) + abs(q.y - e.y))
            path = []
            sx = (q.x > e.x) - (q.x < e.x)
            sy = (q.y > e.y) - (q.y < e.y)
            for nx, ny in ((e.x + sx, e.y), (e.x, e.y + sy)):
                if (nx, ny) != (e.x, e.y) and world.free(nx, ny):
                    grid.move(e, nx, ny)
                    break
            continue
        if not path:
            goal = (e.x + rng.randint(-10, 10), e.y + rng.randint(-10, 10))
            if not (0 <= goal[0] < world.SIZE and 0 <= goal[1] < world.SIZE) or not world.free(*goal):
                continue
            state["pathq"].send(((e.x, e.y), goal, reply))
            path = reply.receive()[1:]
            stats["paths"] += 1
            continue
        nx, ny = path.pop(0)
        grid.move(e, nx, ny)


def _saver():
    """Hands logouts to the store within 0.2 s and dirty players every save interval."""
    next_all = carbon.now() + cfg["save_interval"]
    while True:
        carbon.sleep(0.2)
        _save_pending(carbon.now() >= next_all)
        if carbon.now() >= next_all:
            next_all = carbon.now() + cfg["save_interval"]


def _save_pending(all_dirty):
    # The store takes requests in order: a login's load sent after this save
    # reads what it wrote.
    rows = list(pending_rows.values())
    pending_rows.clear()
    if all_dirty:
        for name in list(dirty):
            p = players.get(name)
            if p is not None:
                p.last_seen = time.time()
                rows.append(p.row())
        dirty.clear()
    if rows:
        stats["saves"] += len(rows)
        state["dbq"].send(("save", rows))
    return len(rows)


def _sampler():
    """Once a second: message rates for the dashboard."""
    last_in = last_out = 0
    last_t = carbon.now()
    while True:
        carbon.sleep(1.0)
        t = carbon.now()
        dt = t - last_t
        series["t"].append(round(t - state["start"], 2))
        series["in"].append(round((stats["msgs_in"] - last_in) / dt, 1))
        series["out"].append(round((stats["msgs_out"] - last_out) / dt, 1))
        for k in series:
            del series[k][:-300]
        last_in, last_out, last_t = stats["msgs_in"], stats["msgs_out"], t


# ---- the host's calls ----------------------------------------------------------------


def start(port=0, db="game_server.db", budget_ms=16.0, hz=30, world_hz=10, npcs_n=50,
          save_interval=2.0, idle_timeout=30.0, host_addr="127.0.0.1"):
    cfg.update(port=port, db=db, budget_ms=budget_ms, hz=hz, world_hz=world_hz, npcs=npcs_n,
               save_interval=save_interval, idle_timeout=idle_timeout, host=host_addr)
    host["budget_ns"] = int(budget_ms * 1e6)
    state["start"] = carbon.now()
    if os.environ.get("GAME_SERVER_PROFILE"):     # development: cProfile of the host thread
        import cProfile
        state["profile"] = cProfile.Profile()
        state["profile"].enable()
    # A worker holding the GIL delays the tick up to the switch interval.
    sys.setswitchinterval(0.0005)
    # Requests to the workers: a sender waits only until the worker takes
    # the request (they are idle in receive() between requests).
    state["dbq"] = scheduler.channel()
    state["pathq"] = scheduler.channel()
    ready = scheduler.channel()
    state["db"] = carbon.spawn_worker(db_worker, db, state["dbq"], ready)
    state["paths"] = carbon.spawn_worker(world.pathfinder, state["pathq"])
    stored = ready.receive()   # the database is open (the host's main tasklet waits)
    rng = random.Random(7)
    for i in range(npcs_n):
        x, y = world.spawn_cell("npc%d" % i)
        e = Entity("n", x, y)
        grid.add(e)
        npcs.append(e)
        tasks.append(scheduler.tasklet(_npc)(random.Random(rng.random()), e))
    tasks.append(scheduler.tasklet(_flusher)())
    tasks.append(scheduler.tasklet(_world_tick)())
    tasks.append(scheduler.tasklet(_saver)())
    tasks.append(scheduler.tasklet(_sampler)())
    _gc_setup()
    state["listener"] = carbon.net.listen(host_addr, port, _handle, backlog=4096)
    addr = state["listener"].sockname
    print("game_server: listening on %s:%d (%d players stored in %s)"
          % (addr[0], addr[1], stored, db), flush=True)
    print("game_server: dashboard http://%s:%d/" % (addr[0], addr[1]), flush=True)


def _gc_setup():
    """Garbage collection: what exists at start-up (modules, the map) is
    frozen out of the collector, and the collector's time is counted for
    /stats.json (a full collection over thousands of tasklets is a hitch)."""
    gc.collect()
    gc.freeze()
    t0 = [0.0]

    def cb(phase, info):
        if phase == "start":
            t0[0] = time.perf_counter()
        else:
            dt = time.perf_counter() - t0[0]
            stats["gc_ms"] += dt * 1e3
            stats["gc_max_ms"] = max(stats["gc_max_ms"], dt * 1e3)
            stats["gc_runs_gen%d" % info["generation"]] += 1

    gc.callbacks.append(cb)


def host_frame(tick_ns, cpu_ns, wait_ns, tasklets, late):
    """The host's numbers for the tick that just ended: wall time, the host
    thread's CPU time and run-queue wait in it (ns), live tasklets, late frames."""
    h = host
    h["frames"] += 1
    ts = h["tick_ns"]
    ts.append(tick_ns)
    h["cpu_ns"].append(cpu_ns)
    h["own_ns"].append(tick_ns - wait_ns)
    if len(ts) > 600:
        for k in ("tick_ns", "cpu_ns", "own_ns"):
            del h[k][:300]
    h["tasklets"] = tasklets
    h["late"] = late
    if tick_ns > h["budget_ns"]:
        h["hitches"] += 1
    if tick_ns > h["max_ns"]:
        h["max_ns"] = tick_ns


def rss_kib():
    rss = pte = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmPTE:"):
                    pte = int(line.split()[1])
    except OSError:
        pass
    return rss + pte


def _pct(sorted_v, p):
    if not sorted_v:
        return 0
    i = min(len(sorted_v) - 1, max(0, int(p / 100.0 * len(sorted_v) + 0.5) - 1))
    return sorted_v[i]


def snapshot_stats():
    """What /stats.json serves."""
    recent = sorted(host["tick_ns"][-300:])
    cpu = sorted(host["cpu_ns"][-300:])
    own = sorted(host["own_ns"][-300:])
    return {
        "uptime_s": round(carbon.now() - state["start"], 2),
        "frame": host["frames"],
        "budget_ms": host["budget_ns"] / 1e6,
        "tick_ms": {"p50": _pct(recent, 50) / 1e6, "p99": _pct(recent, 99) / 1e6,
                    "max": (recent[-1] if recent else 0) / 1e6,
                    "max_run": host["max_ns"] / 1e6},
        "tick_cpu_ms": {"p50": _pct(cpu, 50) / 1e6, "p99": _pct(cpu, 99) / 1e6,
                        "max": (cpu[-1] if cpu else 0) / 1e6},
        # The tick minus the time the host thread waited for a CPU (other
        # processes): what the tick would take on a machine with a core free.
        "tick_unqueued_ms": {"p50": _pct(own, 50) / 1e6, "p99": _pct(own, 99) / 1e6},
        "hitches": host["hitches"], "late_frames": host["late"],
        "players": len(players), "connections": len(conns), "npcs": len(npcs),
        "tasklets": host["tasklets"],
        "msgs_in_per_s": series["in"][-1] if series["in"] else 0,
        "msgs_out_per_s": series["out"][-1] if series["out"] else 0,
        "msgs_in": stats["msgs_in"], "msgs_out": stats["msgs_out"],
        "rss_kib": rss_kib(),
        "counters": dict(stats),
    }


def shutdown():
    """Stop accepting, say bye, save every player, stop the workers.

    Runs in the host's main tasklet, which may block here while the other
    tasklets run (the host thread's loop keeps turning)."""
    if state["closing"]:
        return
    state["closing"] = True
    state["listener"].close()
    for t in tasks:
        t.kill()
    for c in list(conns):
        if c.writer is not None:
            c.send({"t": "bye", "reason": "shutdown"})
        c.drop()              # the reader logs out; the writer sends bye and ends
    deadline = carbon.now() + 3.0
    while conns and carbon.now() < deadline:
        carbon.sleep(0.01)
    for c in list(conns):     # clients that would not take their bye in 3 s
        for t in (c.writer, c.reader):
            if t is not None and t.alive:
                t.kill()
    for p in players.values():           # not expected: every reader logged out
        pending_rows[p.name] = p.row()
    final = _save_pending(True)
    if state.get("profile"):
        state["profile"].disable()
        state["profile"].dump_stats(os.environ["GAME_SERVER_PROFILE"])
    done = scheduler.channel()
    state["dbq"].send(("flush", done))
    saved = done.receive()
    state["dbq"].send(None)
    state["pathq"].send(None)
    # stop(): a worker also runs the tasklets handing replies to requesters
    # that were killed meanwhile (they wait forever); they get TaskletExit.
    for w in (state["db"], state["paths"]):
        w.stop()
        w.join()
    print("game_server: shutdown: %d connections served, %d logins, %d players saved "
          "at shutdown (%d rows written in all), %d messages in, %d out, %d dropped clients, %d paths"
          % (stats["conns_total"], stats["logins"], final, saved, stats["msgs_in"],
             stats["msgs_out"], stats["drops"], stats["paths"]), flush=True)
