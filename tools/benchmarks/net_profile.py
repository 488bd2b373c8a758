"""tools/bench --profile net:IMPL[:SIZE]: instructions per echoed message of
one echo server of `tools/bench --only net`, under callgrind.

The server (net_servers.py IMPL) runs under valgrind's callgrind; the C load
generator (not under valgrind) drives it twice with the same connections
count, a short and a long run, and callgrind_control dumps the counters
after each. The difference of the two dumps divided by the difference of the
messages echoed is the cost of one message alone: start-up, accepting the
connections and closing them cancel out. Instruction counts do not depend on
the load of a shared machine, so they are the numbers to compare before and
after a change (docs/performance.md, "Network servers").
"""
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

import callgrind_profile as cgp
import netbench

CONNS = 100
RUNS = (3.0, 9.0)  # seconds of load per dump (valgrind slows the server ~50x)


def exclusive(path):
    """{(file, function, object): exclusive Ir} of one callgrind dump (written
    with --compress-strings=no). callgrind_annotate is not used: for a dump
    taken while the program runs it also counts the calls still active (the
    whole server loop) as the callers' own cost."""
    costs = {}
    ob = fl = "???"
    key = None
    in_call = False
    with open(path) as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if in_call:
                    in_call = False  # the inclusive cost of a call, not the caller's
                elif key is not None:
                    parts = line.split()
                    if len(parts) >= 2:
                        costs[key] = costs.get(key, 0) + int(parts[1])
            elif line.startswith("ob="):
                ob = os.path.basename(line[3:].strip())
            elif line.startswith("fl="):
                fl = line[3:].strip()
            elif line.startswith("fn="):
                fn = re.sub(r"'\d+$", "", line[3:].strip())  # recursion levels as one
                key = (fl, fn, ob)
            elif line.startswith("calls="):
                in_call = True
    return costs


def summary(path):
    """{event: total} of one callgrind dump (Ir, and with --cache-sim=yes
    D1mr, DLmr... : first-level and last-level cache misses)."""
    events, totals = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                totals = [int(v) for v in line.split()[1:]]
                break
    return dict(zip(events, totals))


def _wait_dump(prefix, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(glob.glob(prefix + ".*"), key=os.path.getmtime)
        if len(files) >= count:
            time.sleep(0.5)  # let callgrind finish writing it
            return files
        time.sleep(0.2)
    sys.exit("profile: callgrind wrote no dump")


def profile(build, impl, size=64, conns=CONNS, top=30, out=sys.stdout, cache=False):
    """cache: also simulate the caches (callgrind --cache-sim=yes, the
    machine's sizes) and report misses per message."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.environ.get("NET_PROFILE_KEEP", tmp)
        prefix = os.path.join(tmp, "cg")
        cmd = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--callgrind-out-file=" + prefix + ".%p"] + \
            (["--cache-sim=yes"] if cache else []) + netbench.server_cmd(impl, build)
        saved = netbench.server_cmd
        netbench.server_cmd = lambda i, b: cmd
        try:
            p, port = netbench.start_server(impl, build, timeout=180)  # valgrind starts slowly
        finally:
            netbench.server_cmd = saved
        if p is None:
            sys.exit("profile: server %s: %s" % (impl, port))
        try:
            msgs = []
            dumps = 0
            # warm-up load, then dump (discarded): imports, first accepts
            netbench.loadgen(build, port, conns, size, 1.0, 0.0)
            for secs in (None,) + RUNS:
                if secs is not None:
                    res = netbench.loadgen(build, port, conns, size, secs, 0.0)
                    if "error" in res:
                        sys.exit("profile: load generator: %s" % res["error"])
                    msgs.append(res["all_messages"])
                subprocess.run(["callgrind_control", "-d", str(p.pid)], capture_output=True)
                dumps += 1
                files = _wait_dump(prefix + ".%d" % p.pid, dumps)
            files = sorted(glob.glob(prefix + ".%d.*" % p.pid),
                           key=lambda f: int(f.rsplit(".", 1)[1].split("-")[0]))
            a, b = files[-2], files[-1]
            ca, cb = exclusive(a), exclusive(b)
            sa, sb = summary(a), summary(b)
        finally:
            netbench.stop_server(p)
    ops = msgs[1] - msgs[0]
    diff = {k: (cb.get(k, 0) - ca.get(k, 0)) / ops for k in set(ca) | set(cb)}
    total = sum(diff.values())
    groups = {}
    for (src, fn, obj), v in diff.items():
        g = "ours (carbon)" if obj == "carbon" else cgp.group(obj)
        if obj.startswith("libuv"):
            g = "libuv"
        groups[g] = groups.get(g, 0) + v
    out.write("net echo on %s, %d B, %d connections: %.0f instructions per message "
              "(callgrind, %d - %d messages)\n\n" % (impl, size, conns, total, msgs[1], msgs[0]))
    if cache:
        per = {e: (sb.get(e, 0) - sa.get(e, 0)) / ops for e in sb}
        out.write("per message: " + ", ".join("%s %.1f" % (e, v) for e, v in per.items()) +
                  " (D1mr/D1mw: first-level data cache read/write misses; DLmr/DLmw: last-level)\n\n")
    cgp.write_tables(out, groups, diff, total, top, "msg")
    return total


if __name__ == "__main__":
    build = sys.argv[1]
    impl = sys.argv[2] if len(sys.argv) > 2 else "carbon"
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else CONNS
    profile(build, impl, size, conns, cache=len(sys.argv) > 5 and sys.argv[5] == "cache")
