#!/usr/bin/env python3
"""What the memory row's blocked tasklets (greenlets, tasks) are made of.

    PYTHONPATH=build/python python3 tools/benchmarks/memory_breakdown.py [IMPL ...] [-n N] [--depth D]

IMPL: ours (default), greenlet, asyncio. Runs the memory workload of
workloads_IMPL.py (N blocked D frames deep, default 20000 and 3: the memory
row; deeper ones show where a tasklet outgrows its first frame chunk) twice, each in
a fresh process: once plain, for RSS, page tables (VmPTE) and the bytes
malloc() has handed out (mallinfo2: arena + mmapped chunks in use), and once
under tracemalloc, for the bytes CPython's allocators handed out, by the line
of Python that asked (`s.tasklet(f1)()` is the tasklet object; the line in f3
is what the first switch and the block allocate). Everything per item. What
tracemalloc does not see (malloc() called from C, pages CPython maps itself
such as data-stack chunks, a stack's touched pages) is the difference.
"""
import argparse
import ctypes
import json
import linecache
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = {"ours": "workloads_ours", "greenlet": "workloads_greenlet", "asyncio": "workloads_asyncio"}


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def malloc_in_use():
    """Bytes glibc's malloc() has handed out and not had back (chunk headers included)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    m = libc.mallinfo2()
    return m.uordblks + m.hblkhd


def child(impl, n, depth, trace):
    import importlib
    import tracemalloc
    mod = importlib.import_module(MODULES[impl])
    out = {}
    before = {}

    def blocked():
        out["malloc"] = (malloc_in_use() - before["malloc"]) / n
        if trace:
            stats = tracemalloc.take_snapshot().compare_to(before["snap"], "lineno")
            out["traced"] = sum(st.size_diff for st in stats) / n
            out["lines"] = [(str(st.traceback), st.size_diff / n, st.count_diff / n)
                            for st in stats[:8] if st.size_diff / n >= 1]
            tracemalloc.stop()

    # before: as close to the workload's own first reading as possible
    if trace:
        tracemalloc.start(1)
        before["snap"] = tracemalloc.take_snapshot()
    before["malloc"] = malloc_in_use()
    r = mod.memory(n, blocked, depth)
    out["rss"] = (r["rss_blocked"] - r["rss_before"]) / n
    out["pte"] = (r["pte_blocked"] - r["pte_before"]) / n
    out["ok"] = r["blocked"] == n and r["finished"] == n
    return out


def run_child(impl, n, depth, trace):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([HERE] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", impl, str(n),
                           "--depth", str(depth)] + (["--trace"] if trace else []),
                          capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        sys.exit("%s failed:\n%s" % (impl, proc.stderr[-2000:]))
    return json.loads(proc.stdout.splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("impls", nargs="*", help="ours (default), greenlet, asyncio")
    ap.add_argument("-n", type=int, default=20000, help="blocked items (default 20000)")
    ap.add_argument("--depth", type=int, default=3, help="Python frames deep (default 3, minimum 3)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        impl, n = args.child[0], int(args.child[1])
        print(json.dumps(child(impl, n, args.depth, args.trace)))
        return 0
    if args.depth < 3:
        ap.error("--depth is at least 3")
    impls = args.impls or ["ours"]
    for impl in impls:
        if impl not in MODULES:
            ap.error("unknown implementation %r (ours, greenlet, asyncio)" % impl)
    print("Python %d.%d.%d, %d blocked %d frames deep, bytes per item" % (
        sys.version_info[:3] + (args.n, args.depth)))
    for impl in impls:
        plain = run_child(impl, args.n, args.depth, False)
        traced = run_child(impl, args.n, args.depth, True)
        print()
        print("### %s%s" % (impl, "" if plain["ok"] and traced["ok"] else " (NOT ALL BLOCKED/FINISHED)"))
        print()
        print("| RSS | page tables | sum | malloc() in use | traced by tracemalloc |")
        print("|---:|---:|---:|---:|---:|")
        print("| %.0f | %.0f | %.0f | %.0f | %.0f |" % (
            plain["rss"], plain["pte"], plain["rss"] + plain["pte"], plain["malloc"],
            traced["traced"]))
        print()
        print("| traced at | line | bytes | blocks |")
        print("|---|---|---:|---:|")
        for where, size, count in traced["lines"]:
            path, line = where.rsplit(":", 1)
            text = linecache.getline(path, int(line)).strip()
            if os.path.dirname(path) == HERE:
                path = os.path.basename(path)
            print("| %s:%s | `%s` | %.0f | %.2f |" % (path, line, text, size, count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
