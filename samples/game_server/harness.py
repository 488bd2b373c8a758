"""Runs the sample game server and its bots: for the tests, `tools/dev demo`
and `tools/bench --only gameserver`. Standard library only; loopback only."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def bin_dir_from_argv(default=None):
    args = sys.argv[1:]
    if "--bin-dir" in args:
        return args[args.index("--bin-dir") + 1]
    return default or os.path.join(HERE, "..", "..", "build", "bin")


class Server:
    """The game_server process; its output is collected in `lines`."""

    def __init__(self, bin_dir, db, *args, echo=False):
        self.lines = []
        self.echo = echo
        self.port = None
        cmd = [os.path.join(bin_dir, "game_server"), "--db", db] + [str(a) for a in args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(20) or self.port is None:
            self.proc.kill()
            raise RuntimeError("game_server did not start:\n" + "".join(self.lines))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if self.echo:
                sys.stdout.write(line)
                sys.stdout.flush()
            m = re.search(r"listening on [0-9.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if "tick budget" in line:
                self._ready.set()
        self._ready.set()

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=signal.SIGINT, timeout=30):
        """Sends `sig`, waits; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise RuntimeError("game_server did not stop within %d s:\n%s" % (timeout, self.output()))
        self._reader.join(5)
        # Game code never lets an exception escape a tasklet: a traceback in
        # the output (the runtime's error report) is a bug, whatever the test.
        if "Traceback" in self.output():
            raise AssertionError("game_server reported an exception:\n" + self.output())
        return rc

    def output(self):
        return "".join(self.lines)

    def summary(self):
        """key=value pairs of the host's summary line."""
        for line in self.lines:
            if line.startswith("game_server: summary "):
                return parse_kv(line.split("summary ", 1)[1])
        return {}

    def stats(self):
        return json.loads(http_get(self.port, "/stats.json")[1])

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_load(bin_dir, bots, seconds, timeout=None, settle=0.0, on_ready=None, on_bots_done=None):
    """A fresh server (its database in a temporary directory) under `bots`
    bots for `seconds`: for `tools/dev demo` and `tools/bench --only
    gameserver`.

    Samples /stats.json once a second for the peaks of RSS (+ page tables),
    tasklets and players; stops the server with SIGINT after the bots.
    on_ready(srv) runs once the server listens, before `settle` seconds of
    quiet and the baseline RSS; on_bots_done(srv, bots_output) after the
    bots, before the stop. Returns a dict: bots_exit, result (the bots'
    result line), output (the bots' output), server_exit, summary (the
    host's summary line), lines (the server's output), rss_base_kib, peak."""
    with tempfile.TemporaryDirectory() as tmp:
        with Server(bin_dir, os.path.join(tmp, "game.db")) as srv:
            if on_ready:
                on_ready(srv)
            time.sleep(settle)
            base = srv.stats()["rss_kib"]
            peak = {"rss_kib": base, "tasklets": 0, "players": 0}
            done = threading.Event()

            def sample():
                while not done.wait(1.0):
                    try:
                        st = srv.stats()
                    except OSError:
                        continue
                    for k in peak:
                        peak[k] = max(peak[k], st[k])

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                rc, res, out = run_bots(bin_dir, srv.port, bots=bots, seconds=seconds, timeout=timeout)
            finally:
                done.set()
                sampler.join()
            if on_bots_done:
                on_bots_done(srv, out)
            code = srv.stop(signal.SIGINT, timeout=60)
            return {"bots_exit": rc, "result": res, "output": out, "server_exit": code,
                    "summary": srv.summary(), "lines": list(srv.lines), "rss_base_kib": base,
                    "peak": peak}


def parse_kv(text):
    out = {}
    for part in text.split():
        if "=" in part:
            k, v = part.split("=", 1)
            try:
                out[k] = float(v) if "." in v else int(v)
            except ValueError:
                out[k] = v
    return out


def run_bots(bin_dir, port, bots=200, seconds=5, prefix="bot", echo=False, timeout=None, **opts):
    """Runs game_bots to the end; returns (exit code, result dict, output)."""
    cmd = [os.path.join(bin_dir, "game_bots"), "--port", str(port), "--bots", str(bots),
           "--seconds", str(seconds), "--prefix", prefix]
    for k, v in opts.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout or seconds + 90)
    if echo:
        sys.stdout.write(p.stdout)
    result = {}
    for line in p.stdout.splitlines():
        if line.startswith("bots: result "):
            result = parse_kv(line[len("bots: result "):])
    return p.returncode, result, p.stdout


def http_get(port, path, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, body


class Client:
    """A blocking test client speaking the game protocol."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.seq = 0
        self.received = []

    def send(self, obj):
        self.sock.sendall((json.dumps(obj) + "\n").encode())

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self, timeout=5):
        """The next message (checks its sequence number), or None at EOF."""
        self.sock.settimeout(timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        assert msg["seq"] == self.seq + 1, "sequence %d after %d" % (msg["seq"], self.seq)
        self.seq = msg["seq"]
        self.received.append(msg)
        return msg

    def expect(self, kind, timeout=5, skip=("snap",), **fields):
        """Reads until a message of type `kind` (skipping `skip` types); checks `fields`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s within %g s" % (kind, timeout))
            msg = self.recv(left)
            if msg is None:
                raise AssertionError("EOF while waiting for %s" % kind)
            if msg["t"] == kind and all(msg.get(k) == v for k, v in fields.items()):
                return msg
            if msg["t"] not in skip:
                raise AssertionError("expected %s %s, got %r" % (kind, fields, msg))

    def login(self, name):
        self.send({"t": "login", "name": name})
        return self.expect("welcome", name=name)

    def eof(self, timeout=5):
        """True if the server closes the connection within `timeout` (messages before it are read)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.recv(max(0.01, deadline - time.monotonic())) is None:
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        return False

    def close(self):
        self.sock.close()
