"""Resource limits (switching.md section 4, item 10): running out of memory
for tasklets is a MemoryError the program recovers from; stack regions are
reused and their memory returned after deep recursion; beyond the map budget
a thread's tasklets share the (guarded) regions it has; a 100k-tasklet churn
runs. Tasklets
share a thread's few stack regions (docs/design.md): a blocked tasklet
costs heap, not address space."""
import os
import time
import unittest

import scheduler as s
from core_support import CoreTestCase, run_many, run_python


CHILDREN = {}


def child(name, code, *args):
    CHILDREN[name] = (code, args)


child("memory_error_and_recovery", r"""
import gc, resource, scheduler as s

def vmsize():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * 4096

def idle():
    try:
        while True:
            s.schedule_remove()
    finally:
        finished.append(1)

finished = []
# A parked tasklet costs ~1.5 KiB of heap (its regions are few): 48 MiB more
# address space runs out after some 10-100k of them. The thread's regions
# (up to 16 stacks of a thread's size, address space only) come on top, so
# that the heap, not the regions, runs out (regions that do not fit are not
# made: tasklets share the ones that did).
regions = s.get_stack_stats()["thread_regions_max"] or 16
limit = vmsize() + regions * (s.get_stack_size() + 4096) + (48 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
# Bounded; the heap runs out long before (after 10-100k). Under ASan malloc
# never fails (its heap is reserved up front) and its own bookkeeping needs
# the room that is left: 100k there.
keep = [None] * (100000 if s._sanitized else 400000)
n = 0
error = None
try:
    while n < len(keep):
        t = s.tasklet(idle)()
        t.run()
        keep[n] = t
        n += 1
except MemoryError as e:
    error = str(e)
# Whichever allocation fails first: a tasklet's own, or a Python object's.
# Under ASan its allocator reserved its address space before the limit: a
# tasklet's run state and slice (malloc) may never fail there.
print("created", n > 100, "error", error in ("cannot allocate a tasklet stack", "")
      or (error is None and bool(s._sanitized)), flush=True)
# the tasklet that could not start is still queued; it must not crash anything
t.remove()
del t
keep = None
gc.collect()
print("finished", len(finished) == n, flush=True)
# recover: nearly the same number again, twice (the limit now falls on the
# heap, where the first run's failure left some fragmentation)
again = n * 9 // 10
for round in range(2):
    finished.clear()
    keep = [None] * again
    for i in range(again):
        t = s.tasklet(idle)()
        t.run()
        keep[i] = t
    del t
    print("again", all(x.alive for x in keep), flush=True)
    keep = None
    gc.collect()
    print("finished", len(finished) == again, flush=True)
""")

child("rss_returns_after_deep_recursion", r"""
import gc, os, scheduler as s

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def deep_then_wait():
    def f(k):
        return sum(map(f, [k + 1]))
    try:
        f(0)          # as deep as the C stack budget goes
    except RecursionError:
        pass
    def g(k):
        return g(k + 1)
    try:
        g(0)          # and as deep as Python frames go (frame chunks)
    except RecursionError:
        pass
    s.schedule_remove()

N = 64
for _ in range(2):  # warm up allocator and pool
    ts = [s.tasklet(deep_then_wait)() for _ in range(N)]
    s.run()
    for t in ts:
        t.insert()
    s.run()
    del ts, t
gc.collect()
base = rss()
for rnd in range(3):
    ts = [s.tasklet(deep_then_wait)() for _ in range(N)]
    s.run()
    peak = rss()
    for t in ts:
        t.insert()
    s.run()
    del ts, t
    gc.collect()
    after = rss()
    print(rnd, base, peak, after, flush=True)
st = s.get_stack_stats()
print("stats", st["thread_live"] == st["thread_regions"] <= 16, st["thread_regions_max"], flush=True)
""")

child("beyond_guard_budget", r"""
import json, scheduler as s, sys
budget = int(sys.argv[1])
s.set_guarded_stacks(budget)  # stacks of the process: regions and the bounce stack
c = s.channel()
results = []

def nested(n):
    l = []
    for _ in range(n):
        l = [l]
    return l

def worker(i):
    v = c.receive()
    local = [i] * 5
    try:
        raise KeyError(i)
    except KeyError:
        s.schedule()
    if i % 200 == 7:
        # in shared regions the recursion limit binds as anywhere
        def f(k):
            return sum(map(f, [k + 1]))
        for case in (lambda: f(0), lambda: repr(nested(20000)),
                     lambda: json.dumps(nested(20000))):
            try:
                case()
                results.append(("no error", i))
            except RecursionError:
                pass
    s.schedule()
    results.append(v if local == [i] * 5 else ("corrupt", i))

ts = [s.tasklet(worker)(i) for i in range(2000)]
s.run()
st = s.get_stack_stats()
mx = st["thread_regions_max"]  # 16, or CARBON_STACK_REGIONS
# the thread's first region and its bounce stack are made beyond any budget
print("stats", st["guarded"] <= max(budget, 2), 1 <= st["thread_regions"] <= max(budget - 1, 1),
      st["thread_bound"], st["guard_budget"], flush=True)
for i in range(2000):
    c.send(i * 10)
s.run()
print("results", sorted(results, key=str) == sorted([i * 10 for i in range(2000)], key=str), flush=True)
print("alive", sum(t.alive for t in ts), flush=True)
# the slots are reused
ts = [s.tasklet(worker)(i) for i in range(2000)]
s.run()
for i in range(2000):
    c.send(i)
s.run()
print("again", len(results) == 4000, flush=True)
""")
child("no_guard_budget", CHILDREN["beyond_guard_budget"][0], 0)
CHILDREN["beyond_guard_budget"] = (CHILDREN["beyond_guard_budget"][0], (5,))


# A switch that must copy a tasklet parked deep in C re-entry (a slice far
# larger than the thread's 16 KiB spare buffer) out of its region while
# malloc() refuses: a MemoryError where the switch was asked for, nothing
# changed, and it works once memory is back (docs/design.md, "what a refused
# allocation at eviction does"). One region (CARBON_STACK_REGIONS=1) so the
# tasklets share it; MALLOC_MMAP_THRESHOLD_ makes the slice buffer a mapping,
# which the address-space limit refuses. Before: Py_FatalError.
COPY_OUT_REFUSED = r"""
import gc, resource, scheduler as s

LEVELS = 400
ch = s.channel()
got = []

def vmsize():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * 4096

def dive(k, then):
    if k:
        return sum(map(lambda j: dive(j, then), [k - 1]))  # C re-entry each level
    return then()

def tight():
    # A little more address space for the heap's small blocks; none for a
    # mapping (MALLOC_MMAP_THRESHOLD_=65536: a slice buffer that large is one).
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vmsize() + (64 << 10), hard))
    return hard

def loose(hard):
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))

def other():
    got.append("other")

# 1. A tasklet parked deep in C re-entry occupies the only region; starting
#    another copies it out (a slice far larger than the 16 KiB spare).
deep = s.tasklet(dive)(LEVELS, ch.receive)
s.run()
print("parked", deep.blocked, flush=True)
t = s.tasklet(other)()
hard = tight()
try:
    t.run()
    r = "ran"
except MemoryError as e:
    r = str(e)
loose(hard)
print("run", r, got, t.alive, flush=True)
if t.alive:
    t.run()
ch.send(7)
print("again", got, deep.alive, flush=True)

# 2. The deep tasklet itself runs another one (a nested run) that must enter
#    the only region: the deep one is what is copied out.
def waits():
    s.schedule_remove()
    got.append("waited")

def deep_runs_other():
    w.insert()
    hard = tight()
    try:
        w.run()
        r = "ran"
    except MemoryError as e:
        r = str(e)
    loose(hard)
    if w.alive:
        w.run()
    out.append(r)
    return 0

out = []
w = s.tasklet(waits)()
w.run()
s.tasklet(dive)(LEVELS, deep_runs_other)
s.run()
print("nested", out, got, w.alive, flush=True)

# the runtime works: many tasklets parked and woken
ts = [s.tasklet(dive)(20, ch.receive) for _ in range(50)]
s.run()
for i in range(50):
    ch.send(i)
s.run()
print("works", sum(t.alive for t in ts), s.getruncount(), flush=True)
"""

# The same copy-out when a tasklet that blocks hands the control straight to
# the next one (cb_transfer_handoff): the hand-off declines and the main
# tasklet's run raises. Two regions, so that the blocking tasklet is not the
# one copied out.
COPY_OUT_REFUSED_HANDOFF = r"""
import resource, scheduler as s

LEVELS = 400
ch = s.channel()
got = []

def vmsize():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * 4096

def dive(k, then):
    if k:
        return sum(map(lambda j: dive(j, then), [k - 1]))  # C re-entry each level
    return then()

def hands_off():
    s.schedule_remove()  # started (in the second region) before the limit
    got.append("a")
    s.schedule_remove()  # main runs its queue: T is handed the control directly
    got.append("a again")

def other():
    got.append("t")

# 3. Two regions: D parks deep in the first, A runs in the second and blocks,
#    handing off to T, bound to D's region (its occupant is the older one).
deep = s.tasklet(dive)(LEVELS, ch.receive)
s.run()
a = s.tasklet(hands_off)()
s.run()
a.insert()
t = s.tasklet(other)()
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (vmsize() + (64 << 10), hard))
try:
    s.run()
    r = "ran"
except MemoryError as e:
    r = str(e)
resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
print("handoff", r, got, t.alive, s.get_stack_stats()["thread_regions"], flush=True)
s.run()
a.insert()
s.run()
ch.send(1)
print("again", got, t.alive, a.alive, deep.alive, s.getruncount(), flush=True)
"""


class ChildLimitTests(CoreTestCase):

    @classmethod
    def setUpClass(cls):
        cls.results = run_many(CHILDREN)

    @unittest.skipIf(s._sanitized, "ASan's allocator maps its memory before the limit")
    @unittest.skipIf("vgpreload" in os.environ.get("LD_PRELOAD", ""),
                     "valgrind manages the address space itself")
    def test_copy_out_refused_past_the_spare(self):
        proc = run_python(COPY_OUT_REFUSED, timeout=120,
                          env={"CARBON_STACK_REGIONS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"})
        self.check_child(proc)
        self.assertChildLines(proc, [
            "parked True",
            "run cannot save a suspended tasklet's stack [] True",
            "again ['other'] False",
            "nested [\"cannot save a suspended tasklet's stack\"] ['other', 'waited'] False",
            "works 0 1"])
        proc = run_python(COPY_OUT_REFUSED_HANDOFF, timeout=120,
                          env={"CARBON_STACK_REGIONS": "2", "MALLOC_MMAP_THRESHOLD_": "65536"})
        self.check_child(proc)
        self.assertChildLines(proc, [
            "handoff cannot save a suspended tasklet's stack ['a'] True 2",
            "again ['a', 't', 'a again'] False False False 1"])

    def test_memory_error_then_recovery(self):
        proc = self.check_child(self.results["memory_error_and_recovery"])
        self.assertChildLines(proc, [
            "created True error True", "finished True",
            "again True", "finished True", "again True", "finished True"])

    def test_rss_returns_after_deep_recursion(self):
        proc = self.check_child(self.results["rss_returns_after_deep_recursion"])
        rows = [list(map(int, line.split())) for line in proc.stdout.splitlines()[:3]]
        first_peak = rows[0][2]
        stats, regions = proc.stdout.splitlines()[3].rsplit(" ", 1)
        for rnd, base, peak, after in rows:
            grown = peak - base
            if int(regions) >= 16:
                # the recursion did touch memory (with CARBON_STACK_REGIONS=2
                # only two regions' worth of it: nothing to measure)
                self.assertGreater(grown, 1 << 20, proc.stdout)
            if not s._sanitized:  # ASan's quarantine keeps freed blocks resident
                self.assertLess(after - base, max(grown * 0.3, 256 << 10), proc.stdout)
            self.assertLess(peak, first_peak + (2 << 20), proc.stdout)  # stacks are reused
        self.assertEqual(stats, "stats True")

    def check_beyond_budget(self, name, budget):
        proc = self.check_child(self.results[name])
        lines = proc.stdout.splitlines()
        self.assertEqual(lines[0], "stats True True 2000 %d" % budget, proc.stdout)
        self.assertEqual(lines[1:], ["results True", "alive 0", "again True"])

    def test_beyond_guard_budget(self):
        self.check_beyond_budget("beyond_guard_budget", 5)

    def test_no_guard_budget(self):
        # one region for the thread's 2000 tasklets
        self.check_beyond_budget("no_guard_budget", 0)


class ChurnTests(CoreTestCase):

    def test_100k_tasklet_churn(self):
        done = [0]

        def short(i):
            if i % 3 == 0:
                s.schedule()
            done[0] += 1

        start = time.perf_counter()
        for _ in range(100):
            for i in range(1000):
                s.tasklet(short)(i)
            s.run()
        elapsed = time.perf_counter() - start
        self.assertEqual(done[0], 100000)
        stats = s.get_stack_stats()
        self.assertLessEqual(stats["thread_live"], 16)  # the regions, kept for reuse
        self.assertLessEqual(stats["thread_cached"], 128)
        self.assertLess(elapsed, 60, "%.1f us per tasklet" % (elapsed * 10))

    def test_switch_ping_pong(self):
        count = [0, 0]

        def ping(k):
            for _ in range(50000):
                count[k] += 1
                s.schedule()

        s.tasklet(ping)(0)
        s.tasklet(ping)(1)
        s.run()
        self.assertEqual(count, [50000, 50000])

    def test_set_stack_size_validation(self):
        size = s.get_stack_size()
        for bad in (0, 4096, s.MIN_STACK_SIZE - 4097, -1, 1 << 40):
            with self.assertRaises((ValueError, OverflowError), msg=bad):
                s.set_stack_size(bad)
            self.assertEqual(s.get_stack_size(), size)
        s.set_stack_size(s.MIN_STACK_SIZE)
        self.assertEqual(s.get_stack_size(), s.MIN_STACK_SIZE)
        s.set_stack_size(s.MIN_STACK_SIZE + 1000)  # rounded up to whole pages
        self.assertEqual(s.get_stack_size() % 4096, 0)
        self.assertGreaterEqual(s.get_stack_size(), s.MIN_STACK_SIZE + 1000)
        out = []
        s.tasklet(lambda: out.append(sum(range(10))))()
        s.run()
        self.assertEqual(out, [45])


if __name__ == "__main__":
    unittest.main()
