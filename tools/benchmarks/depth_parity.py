#!/usr/bin/env python3
"""Depth parity (issue 8): the deepest nesting each operation reaches on a
thread's main tasklet and in a tasklet, under the same recursion limit.

    PYTHONPATH=build/python python3 tools/benchmarks/depth_parity.py [--limit N] [--thread]

Every probe starts at the same Python frame depth (25) on the main tasklet
and in a tasklet, so equal depths mean parity, not merely closeness. Each
(operation, place) is searched in child processes: doubling the depth
until it fails, then bisecting. A probe that kills the child (SIGSEGV) counts
as a failure "crash" and the search goes on in a fresh child. Prints a
Markdown table: deepest depth that works, and how the next one fails.
"""
import argparse
import os
import subprocess
import sys
import textwrap

from depth_probe import OPS

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = """
import sys, threading
sys.path.insert(0, %(here)r)
sys.setrecursionlimit(%(limit)d)
from depth_probe import OPS, in_main, in_tasklet
op = OPS[%(name)r]
place = in_tasklet if %(tasklet)r else in_main
def search(lo, hi):
    # lo works; hi fails (or None: not found yet)
    while True:
        d = lo * 2 if hi is None else (lo + hi) // 2
        if hi is not None and d <= lo:
            return
        if d > 200000:
            print("ok", d, flush=True)
            return
        print("try", d, flush=True)
        r = place(op, d)
        print(r, d, flush=True)
        if r == "ok":
            lo = d
        else:
            hi = d
def main():
    search(int(sys.argv[1]), None if sys.argv[2] == "-" else int(sys.argv[2]))
if %(thread)r:
    t = threading.Thread(target=main); t.start(); t.join()
else:
    main()
"""


def find(name, tasklet, limit, thread):
    code = CHILD % {"here": HERE, "limit": limit, "name": name, "tasklet": tasklet,
                    "thread": thread}
    lo, hi, how = 1, None, None
    for _ in range(40):
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(lo),
                               "-" if hi is None else str(hi)],
                              capture_output=True, text=True, timeout=600)
        trying = None
        for line in proc.stdout.splitlines():
            word, d = line.split()
            d = int(d)
            if word == "try":
                trying = d
                continue
            trying = None
            if word == "ok":
                lo = max(lo, d)
            else:
                hi, how = d, word
        if proc.returncode == 0:
            return lo, how or "none up to 200000"
        if trying is None:
            return lo, "child failed: %s" % proc.stderr.strip()[-200:]
        hi, how = trying, "crash (%d)" % proc.returncode
        if hi <= lo + 1:
            return lo, how
    return lo, how


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=1000, help="sys.setrecursionlimit (default 1000)")
    ap.add_argument("--thread", action="store_true", help="measure on a worker thread")
    ap.add_argument("--only", help="comma-separated substrings of operation names")
    args = ap.parse_args()
    ops = list(OPS)
    if args.only:
        keys = args.only.split(",")
        ops = [k for k in OPS if any(x in k for x in keys)]
    print("Python %d.%d.%d, recursion limit %d, %s thread" % (
        sys.version_info[:3] + (args.limit, "a worker" if args.thread else "the main")))
    print()
    print("| operation | main tasklet | tasklet | parity |")
    print("|---|---:|---:|:---:|")
    for name in ops:
        m, mhow = find(name, False, args.limit, args.thread)
        t, thow = find(name, True, args.limit, args.thread)
        print("| %s | %d (then %s) | %d (then %s) | %s |" % (
            name, m, mhow, t, thow, "yes" if m == t and "crash" not in thow else "**no**"),
            flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
