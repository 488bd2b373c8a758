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

OPS = {
    "python recursion": "def f(n):\n    return 0 if n == 0 else f(n - 1) + 1\ndef op(d): f(d)",
    "json.dumps nested lists": "import json\ndef op(d): json.dumps(nest_list(d))",
    "repr nested lists": "def op(d): repr(nest_list(d))",
    "== nested lists": "def op(d):\n    a, b = nest_list(d), nest_list(d)\n    a == b",
    "pickle.dumps nested lists": "import pickle\ndef op(d): pickle.dumps(nest_list(d))",
    "copy.deepcopy nested dicts": "import copy\ndef op(d): copy.deepcopy(nest_dict(d))",
    "sorted() key re-entering sorted()":
        "def op(d):\n    def key(x):\n        return sorted([x - 1, -1], key=key)[0] if x > 0 else 0\n"
        "    sorted([d, d], key=key)",
    "re.compile nested groups": "import re\ndef op(d): re.compile('(' * d + 'a' + ')' * d)",
    "ast.parse nested expression": "import ast\ndef op(d): ast.parse('-' * d + '1')",
    "compile nested expression": "def op(d): compile('-' * d + '1', '<d>', 'eval')",
    "marshal.dumps nested lists": "import marshal\ndef op(d): marshal.dumps(nest_list(d))",
}

PRELUDE = """
import sys, threading
import scheduler as s
sys.setrecursionlimit(%(limit)d)
def nest_list(d):
    x = []
    for _ in range(d):
        x = [x]
    return x
def nest_dict(d):
    x = {}
    for _ in range(d):
        x = {"k": x}
    return x
%(op)s
BASE = 25  # every probe starts this many Python frames deep, wherever it runs
def frame_depth():
    n, fr = 0, sys._getframe(1)
    while fr is not None:
        n, fr = n + 1, fr.f_back
    return n
def at_base(fn):
    if frame_depth() < BASE:
        return at_base(fn)
    return fn()
def probe(d):
    def go():
        try:
            op(d)
            return "ok"
        except Exception as e:
            return type(e).__name__
    return at_base(go)
def in_tasklet(d):
    box = []
    s.tasklet(lambda: box.append(probe(d)))()
    s.run()
    return box[0]
run = in_tasklet if %(tasklet)r else probe
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
        r = run(d)
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


def find(op_code, tasklet, limit, thread):
    code = PRELUDE % {"limit": limit, "op": op_code, "tasklet": tasklet, "thread": thread}
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
    ops = OPS
    if args.only:
        keys = args.only.split(",")
        ops = {k: v for k, v in OPS.items() if any(x in k for x in keys)}
    print("Python %d.%d.%d, recursion limit %d, %s thread" % (
        sys.version_info[:3] + (args.limit, "a worker" if args.thread else "the main")))
    print()
    print("| operation | main tasklet | tasklet | parity |")
    print("|---|---:|---:|:---:|")
    for name, code in ops.items():
        m, mhow = find(code, False, args.limit, args.thread)
        t, thow = find(code, True, args.limit, args.thread)
        print("| %s | %d (then %s) | %d (then %s) | %s |" % (
            name, m, mhow, t, thow, "yes" if m == t and "crash" not in thow else "**no**"),
            flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
