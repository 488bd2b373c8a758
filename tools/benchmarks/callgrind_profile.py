"""tools/bench --profile WORKLOAD: where the instructions of one operation go.

Runs the workload under valgrind's callgrind twice, at two sizes, and
subtracts: what is left is the cost of the extra operations only (start-up,
imports and set-up cancel out). Instruction counts do not depend on the load
of a shared machine, so they are the numbers to compare before and after a
change. Prints the instructions per operation by function (exclusive) and by
object (interpreter, our module, libc, ...).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.+?):(.+?)\s+\[(.+)\]\s*$")

# Size pairs (small, big) per workload, in the workload's own units.
SIZES = {
    "pingpong": (20000, 60000),
    "sched10": (4000, 12000),
    "sched1000": (40, 120),
    "spawn_main": (200, 600),
    "spawn_tasklet": (200, 600),
    "fanin": (20, 60),
    "gameloop": (2, 6),
}


def run_callgrind(python, env, worker, impl, workload, n, out):
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
           python, worker, impl, workload, "n=%d" % n, "1"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("profile: %s failed:\n%s" % (" ".join(cmd), r.stderr[-2000:]))
    return json.loads(r.stdout.strip().splitlines()[-1])["ops"]


def functions(path):
    r = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", path],
                       capture_output=True, text=True, check=True)
    costs = {}
    for line in r.stdout.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        fn = re.sub(r"'\d+$", "", m.group(3))
        key = (m.group(2), fn, os.path.basename(m.group(4)))
        costs[key] = costs.get(key, 0) + ir
    return costs


def group(obj):
    if obj.startswith("_scheduler") or obj.startswith("libcarbon"):
        return "ours (_scheduler)"
    if obj.startswith("python3") or obj.startswith("libpython"):
        return "interpreter"
    if obj.startswith("libc.") or obj.startswith("ld-linux"):
        return "libc / ld.so"
    if obj.startswith("_greenlet"):
        return "greenlet"
    return obj


def profile(python, env, worker, impl, workload, top=30, out=sys.stdout):
    small, big = SIZES[workload]
    with tempfile.TemporaryDirectory() as tmp:
        a, b = os.path.join(tmp, "a.out"), os.path.join(tmp, "b.out")
        ops_a = run_callgrind(python, env, worker, impl, workload, small, a)
        ops_b = run_callgrind(python, env, worker, impl, workload, big, b)
        ca, cb = functions(a), functions(b)
    ops = ops_b - ops_a
    diff = {k: (cb.get(k, 0) - ca.get(k, 0)) / ops for k in set(ca) | set(cb)}
    total = sum(diff.values())
    groups = {}
    for (src, fn, obj), v in diff.items():
        groups[group(obj)] = groups.get(group(obj), 0) + v
    out.write("%s on %s: %.0f instructions per operation (callgrind, %d - %d ops)\n\n" % (
        workload, impl, total, ops_b, ops_a))
    write_tables(out, groups, diff, total, top, "op")
    return total


def write_tables(out, groups, diff, total, top, unit):
    """The two markdown tables: instructions per `unit` by group, then the
    `top` functions (exclusive counts)."""
    out.write("| where | instructions / %s | share |\n|---|---:|---:|\n" % unit)
    for g, v in sorted(groups.items(), key=lambda kv: -kv[1]):
        if abs(v) >= 0.5:
            out.write("| %s | %.0f | %.0f%% |\n" % (g, v, 100 * v / total))
    out.write("\n| function (exclusive) | object | instructions / %s | share |\n|---|---|---:|---:|\n" % unit)
    for (src, fn, obj), v in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
        if v < 0.5:
            break
        name = fn if src == "???" else "%s (%s)" % (fn, os.path.basename(src))
        out.write("| %s | %s | %.1f | %.1f%% |\n" % (name, obj, v, 100 * v / total))
