"""Depth parity (issue 8 item 1, issue 13 defect 4): a tasklet nests Python
recursion and C re-entry exactly as deep as its thread's main tasklet under the
same sys.getrecursionlimit(), on the main thread and on a worker thread, and
fails the same way (RecursionError, or the parser's/marshal's own error).

Each operation is probed at the same Python frame depth in every place (the
probe first recurses to a fixed frame depth), so the deepest nesting that works
must be equal, not merely close. Probes that could crash the interpreter itself
(those past what the thread's own stack holds) are not made here; they are
tools/benchmarks/depth_parity.py's business.
"""
import os
import sys
import unittest

from core_support import HERE, CoreTestCase, describe, run_python

PY = sys.version_info[:2]

# The probes are tools/benchmarks/depth_probe.py's (shared with depth_parity.py).
BENCH = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "benchmarks"))

CHILD = r'''
import sys, threading
sys.path.insert(0, sys.argv[4])
from depth_probe import OPS, in_main, in_tasklet

LIMIT = int(sys.argv[1])
sys.setrecursionlimit(LIMIT)

def deepest(op, place):
    lo, hi, how = 1, None, None
    while hi is None or hi - lo > 1:
        d = lo * 2 if hi is None else (lo + hi) // 2
        if d > 40000:  # 3.13 counts nesting in C units (limit 10000)
            return lo, "none"
        r = place(op, d)
        if r == "ok":
            lo = d
        else:
            hi, how = d, r
    return lo, how

def measure():
    for name, op in OPS.items():
        if name in SKIP:
            continue
        for place in (in_main, in_tasklet):
            d, how = deepest(op, place)
            print("%s|%s|%d|%s" % (name, place.__name__, d, how), flush=True)

SKIP = sys.argv[3].split(",") if len(sys.argv) > 3 else ()
if sys.argv[2] == "thread":
    t = threading.Thread(target=measure)
    t.start()
    t.join()
else:
    measure()
'''


def parse(proc):
    rows = {}
    for line in proc.stdout.splitlines():
        name, place, depth, how = line.split("|")
        rows.setdefault(name, {})[place] = (int(depth), how)
    return rows


class DepthParityTests(CoreTestCase):

    def check(self, limit, where, skip=()):
        proc = run_python(CHILD, limit, where, ",".join(skip), BENCH, timeout=300)
        self.assertEqual(proc.returncode, 0, describe(proc))
        rows = parse(proc)
        self.assertEqual(len(rows), 11 - len(skip), describe(proc))
        for name, places in rows.items():
            with self.subTest(op=name, limit=limit, where=where):
                self.assertEqual(places["in_tasklet"], places["in_main"], name)
                # The limit binds: deep nesting ends in an exception, not silently.
                self.assertNotEqual(places["in_main"][1], "none", name)

    def test_main_thread_default_limit(self):
        self.check(1000, "main")

    def test_worker_thread_default_limit(self):
        self.check(1000, "thread")

    def test_main_thread_raised_limit(self):
        # sorted() with a re-entering key takes ~3.5 KiB of C stack per level:
        # past ~1600 levels it overflows the thread's own 8 MiB stack, on the
        # main tasklet as in a tasklet (depth_parity.py shows both crash at
        # the same depth), so it is not probed under a raised limit.
        self.check(3000, "main", skip=("sorted() key re-entering sorted()",))


class DeepTaskletsTests(CoreTestCase):

    def test_two_tasklets_blocked_5000_deep(self):
        proc = run_python(r'''
            import sys, scheduler as s
            sys.setrecursionlimit(20000)
            ch = s.channel()
            out = []
            def dive(n, tag):
                if n:
                    return dive(n - 1, tag) + 1
                for i in range(3):
                    out.append((tag, i, ch.receive()))
                return 0
            a = s.tasklet(dive)(5000, "a")
            b = s.tasklet(dive)(5000, "b")
            s.run()
            for i in range(6):
                ch.send(i)
            s.run()
            print(sorted(out), a.alive, b.alive, flush=True)
        ''')
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertIn("[('a', 0, 0), ('a', 1, 2), ('a', 2, 4), ('b', 0, 1), ('b', 1, 3), "
                      "('b', 2, 5)] False False", proc.stdout, describe(proc))

    def check_same_as_main(self, code):
        """Runs case() on the main tasklet and in a tasklet, each in its own
        child: both must end the same way (issue 13 defect 4)."""
        outcomes = []
        for where in ("main", "tasklet"):
            proc = run_python(r'''
import sys, scheduler as s
%s
def go():
    try:
        case()
        print("ok", flush=True)
    except Exception as e:
        print(type(e).__name__, flush=True)
if sys.argv[1] == "main":
    go()
else:
    s.tasklet(go)()
    s.run()
''' % code, where)
            outcomes.append((proc.returncode, proc.stdout.strip()))
        self.assertEqual(outcomes[0], (0, "ok"), outcomes)
        self.assertEqual(outcomes[1], outcomes[0])

    def test_setrecursionlimit_as_on_main(self):
        # At the same frame depth, a too-low limit fails with the same depth
        # in its message, and a raised limit is usable at once.
        proc = run_python(r'''
            import sys, scheduler as s
            def depth():
                n, fr = 0, sys._getframe(1)
                while fr is not None:
                    n, fr = n + 1, fr.f_back
                return n
            def at(n, fn):
                return at(n, fn) if depth() < n else fn()
            def f(n):
                return 0 if n == 0 else f(n - 1) + 1
            def case():
                out = []
                try:
                    sys.setrecursionlimit(5)
                except RecursionError as e:
                    out.append(str(e))
                sys.setrecursionlimit(3000)
                out.append(f(2900))
                sys.setrecursionlimit(1000)
                return out
            print("main", at(30, case), flush=True)
            box = []
            s.tasklet(lambda: box.append(at(30, case)))()
            s.run()
            print("tasklet", box[0], flush=True)
        ''')
        self.assertEqual(proc.returncode, 0, describe(proc))
        lines = proc.stdout.splitlines()
        self.assertEqual(len(lines), 2, describe(proc))
        self.assertIn("2900]", lines[0])
        self.assertEqual(lines[0].replace("main", "", 1), lines[1].replace("tasklet", "", 1))

    def test_nested_map_next(self):
        n = 10000 if PY == (3, 11) else 3000
        self.check_same_as_main('''
def case():
    it = iter([1])
    for _ in range(%d):
        it = map(abs, it)
    next(it)
''' % n)

    def test_deep_tuple_hash(self):
        self.check_same_as_main('''
def case():
    x = (1,)
    for _ in range(20000):
        x = (x,)
    hash(x)
''')


if __name__ == "__main__":
    unittest.main()
