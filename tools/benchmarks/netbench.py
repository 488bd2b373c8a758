"""`tools/bench --only net`: echo servers under one C load generator.

Servers (tools/benchmarks/net_servers.py), each in its own process, in the
same run: carbon.net streams and carbon.patch()ed sockets (carbon host),
asyncio streams, asyncio + uvloop (protocol API) and gevent StreamServer
(Debian's /usr/bin/python3 with python3-uvloop / python3-gevent: `tools/dev
bench` installs them). The load generator (net_loadgen.c, libuv) keeps N
connections each doing request/response echo of SIZE bytes for T seconds
after a warm-up; it reports messages/s and round-trip percentiles. Then N
idle connections (after one echo each) give the server's memory per
connection: RSS + page tables (VmPTE), minus the server's before they came.
Repetitions are interleaved across servers; medians are reported.
"""
import json
import os
import select
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = ("carbon", "patched", "asyncio", "uvloop", "gevent")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-uvloop / python3-gevent serve this one


def log(msg):
    import sys
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def server_cmd(impl, build):
    script = os.path.join(HERE, "net_servers.py")
    if impl in ("carbon", "patched"):
        return [os.path.join(build, "bin", "carbon"), script, impl]
    return [SYSTEM_PYTHON, script, impl]


def start_server(impl, build, timeout=15):
    """(process, port) or (None, reason)."""
    import tempfile
    errf = tempfile.TemporaryFile("w+")  # never a pipe: a chatty server must not block on it
    p = subprocess.Popen(server_cmd(impl, build), stdout=subprocess.PIPE, stderr=errf, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.2)
        if r:
            line = p.stdout.readline()
            if line.startswith("PORT "):
                return p, int(line.split()[1])
        if p.poll() is not None:
            errf.seek(0)
            err = errf.read().strip().splitlines()
            return None, (err[-1] if err else "exited with %d" % p.returncode)
    p.kill()
    p.wait()
    return None, "no port within %g s" % timeout


def stop_server(p):
    p.kill()
    p.wait()


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mem_bytes(pid):
    kb = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmPTE:")):
                kb += int(line.split()[1])
    return kb * 1024


def loadgen(build, port, conns, size, seconds, warmup):
    cmd = [os.path.join(build, "bin", "net_loadgen"), "echo", "127.0.0.1", str(port), str(conns),
           str(size), str(seconds), str(warmup)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 60)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-300:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def idle_memory(build, server, port, conns):
    before = mem_bytes(server.pid)
    cmd = [os.path.join(build, "bin", "net_loadgen"), "idle", "127.0.0.1", str(port), str(conns)]
    lg = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        r, _, _ = select.select([lg.stdout], [], [], 60)
        if not r or lg.stdout.readline().strip() != "ready":
            return None
        time.sleep(0.5)
        return (mem_bytes(server.pid) - before) / conns
    finally:
        lg.stdin.close()
        lg.wait(timeout=10)


def run(build, conns=1000, seconds=5.0, warmup=1.0, reps=1, sizes=(64, 4096), servers=SERVERS):
    samples = {}   # (impl, size) -> list of loadgen dicts
    memory = {}    # impl -> list of bytes per connection
    missing = {}
    for rep in range(reps):
        for impl in servers:
            if impl in missing:
                continue
            p, port = start_server(impl, build)
            if p is None:
                missing[impl] = port
                log("tools/bench: net server %s unavailable: %s" % (impl, port))
                continue
            try:
                # Memory first, in the fresh process: after the load runs,
                # freed memory the allocator keeps would hide the cost.
                m = idle_memory(build, p, port, conns)
                if m is not None:
                    memory.setdefault(impl, []).append(m)
                for size in sizes:
                    cpu0 = cpu_seconds(p.pid)
                    res = loadgen(build, port, conns, size, seconds, warmup)
                    if res.get("all_messages"):
                        # The server's CPU per message: on a shared, loaded
                        # machine it moves much less than messages/s.
                        res["cpu_us_per_msg"] = (cpu_seconds(p.pid) - cpu0) * 1e6 / res["all_messages"]
                    log("tools/bench: net %s %d B x%d (rep %d): %s" % (impl, size, conns, rep + 1, res))
                    if "error" not in res:
                        samples.setdefault((impl, size), []).append(res)
            finally:
                stop_server(p)
    return {"samples": samples, "memory": memory, "missing": missing, "conns": conns,
            "seconds": seconds, "sizes": sizes, "servers": servers, "reps": reps}


def _med(vals):
    return statistics.median(vals) if vals else None


def summary(res):
    out = {}
    for (impl, size), runs in res["samples"].items():
        out[(impl, size)] = {k: _med([r[k] for r in runs if k in r])
                             for k in ("msgs_per_s", "p50_us", "p99_us", "cpu_us_per_msg")}
    return out


def table(res):
    s = summary(res)
    sizes = res["sizes"]
    head = "| server | " + " | ".join("%d B msg/s | p50 | p99 | CPU/msg" % z for z in sizes) + \
        " | RSS+PTE / idle conn |"
    lines = ["%d connections, %.0f s per size, median of %d run(s)" % (res["conns"], res["seconds"], res["reps"]),
             "", head, "|---|" + "---:|---:|---:|---:|" * len(sizes) + "---:|"]

    def ms(us):
        if us is None:
            return ""
        return "%.0f us" % us if us < 1000 else "%.1f ms" % (us / 1000)

    for impl in res["servers"]:
        if impl in res["missing"]:
            lines.append("| %s | missing: %s |" % (impl, res["missing"][impl]))
            continue
        cells = []
        for z in sizes:
            v = s.get((impl, z))
            cpu = v and v.get("cpu_us_per_msg")
            cells += ["%.0f" % v["msgs_per_s"], ms(v["p50_us"]), ms(v["p99_us"]),
                      "%.2f us" % cpu if cpu else ""] if v else ["", "", "", ""]
        mem = _med(res["memory"].get(impl, []))
        lines.append("| %s | %s | %s |" % (impl, " | ".join(cells),
                                            "%.1f KiB" % (mem / 1024) if mem is not None else ""))
    verdicts = []

    def ratio(a, b, z, key="msgs_per_s"):
        va, vb = s.get((a, z)), s.get((b, z))
        return va[key] / vb[key] if va and vb else None

    for z in sizes:
        for label, r, want in (
                ("carbon.net / uvloop msg/s, %d B" % z, ratio("carbon", "uvloop", z), 1.0),
                ("uvloop / carbon.net p99, %d B" % z, ratio("uvloop", "carbon", z, "p99_us"), 1.0),
                ("carbon.net / asyncio msg/s, %d B" % z, ratio("carbon", "asyncio", z), 2.0),
                ("carbon.net / gevent msg/s, %d B" % z, ratio("carbon", "gevent", z), 2.0),
                ("patched / gevent msg/s, %d B" % z, ratio("patched", "gevent", z), 1.0),
                ("uvloop / carbon.net server CPU per message, %d B" % z,
                 ratio("uvloop", "carbon", z, "cpu_us_per_msg"), 1.0)):
            verdicts.append((label, r, want))
    lines += ["", "| target | ratio | wanted | met |", "|---|---:|---:|---|"]
    for label, r, want in verdicts:
        lines.append("| %s | %s | >= %.1f | %s |" % (label, "%.2f" % r if r is not None else "n/a", want,
                                                     "n/a" if r is None else ("yes" if r >= want else "no")))
    return "\n".join(lines)


def main(build, quick=False, reps=None):
    seconds = 2.0 if quick else 5.0
    reps = reps or (1 if quick else 3)
    res = run(build, seconds=seconds, warmup=0.5 if quick else 1.0, reps=reps)
    return res, table(res)
