"""Fault injection (docs/reliability.md): the Nth allocation fails, for every N
a scheduler workload makes (PyMem MEM and OBJ domains; with the mmap shim
preloaded, tasklet stack mappings too). Every failure must surface as
MemoryError (or be reported unraisable), never a crash; afterwards no tasklet
or channel is left over and the runtime works."""
import json
import os
import subprocess
import sys
import unittest

import _scheduler
import faultinject

SHIM = os.path.join(os.path.dirname(os.path.abspath(faultinject.__file__)),
                    "libcarbon_faultshim.so")

CHILD = r'''
import gc, json, sys
import faultinject, scheduler as s
flip = [False]

# Every function exists before the sweep: no MAKE_FUNCTION while armed
# (CPython 3.12/3.13 decref the code object twice when creating a function
# fails, python/cpython#122752: a bug of theirs, not ours).
def sender(ch):
    for i in range(3):
        ch.send(i)

def receiver(ch, out):
    for i in range(3):
        out.append(ch.receive())

def parked(out):
    try:
        s.schedule_remove()
    finally:
        out.append("finally")

def waiter(ch, out):
    try:
        ch.receive()
    except ValueError:
        out.append("thrown")

def workload():
    ch = s.channel()
    out = []
    s.tasklet(sender)(ch)
    s.tasklet(receiver)(ch, out)
    s.run()
    t = s.tasklet(parked)(out)
    s.run()
    t.kill()
    q = s.QueueChannel()
    q.send(5)
    out.append(q.receive())
    # a fresh stack size empties the stack pool: new stacks are mapped
    flip[0] = not flip[0]
    s.set_stack_size(s.DEFAULT_STACK_SIZE if flip[0] else s.DEFAULT_STACK_SIZE * 2)
    waiters = s.channel()
    for _ in range(4):
        s.tasklet(waiter)(waiters, out)
    s.run()
    waiters.send_exception(ValueError, 1)
    s.run()
    waiters.close()
    out.append(waiters.balance)
    return out

def cleanup():
    for _ in range(3):
        for t in s.get_thread_tasklets():
            if not t.is_main and t.alive:
                try:
                    t.kill()
                except BaseException:
                    pass
        try:
            s.unblock_all_channels()
            s.run()
        except BaseException:
            pass
    gc.collect()

expected = workload()
cleanup()
base = (s.get_active_tasklet_count(), s.get_number_of_active_channels())
faultinject.arm(10**12)
workload()
total, _ = faultinject.disarm()
cleanup()
step = max(1, total // int(sys.argv[1]))
outcomes = {}
bad = []
for n in range(1, total + 1, step):
    faultinject.arm(n)
    try:
        workload()
        outcome = "ok"
    except MemoryError:
        outcome = "MemoryError"
    except BaseException as e:
        outcome = type(e).__name__
    _, failed = faultinject.disarm()
    cleanup()
    if not failed:
        outcome = "not-reached"
    outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcome not in ("ok", "MemoryError", "not-reached"):
        bad.append((n, outcome))
    if workload() != expected:
        bad.append((n, "broken afterwards"))
    cleanup()
    now = (s.get_active_tasklet_count(), s.get_number_of_active_channels())
    if now != base:
        bad.append((n, "left over %s, baseline %s" % (now, base)))
s.set_stack_size(s.DEFAULT_STACK_SIZE)
print("FAULTS " + json.dumps({"total": total, "step": step, "outcomes": outcomes,
                              "bad": bad[:10], "shim": faultinject.has_mmap_shim()}))
'''


def sweep(tc, points, preload):
    env = dict(os.environ)
    if preload:
        env["LD_PRELOAD"] = (env.get("LD_PRELOAD", "") + ":" + SHIM).lstrip(":")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(points)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("FAULTS ")]
    tc.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
    tc.assertTrue(lines, proc.stderr[-3000:])
    res = json.loads(lines[-1][len("FAULTS "):])
    tc.assertEqual(res["bad"], [], res)
    tc.assertGreater(res["outcomes"].get("MemoryError", 0), 0, res)
    return res


MANAGER_DEATH = r'''
import sys, threading
import faultinject, scheduler as s
# Defect 11: a thread's manager dies while allocations fail; its queued and
# blocked tasklets must be unlinked all the same (t.remove() crashed).
ch = s.channel()
for n in range(1, 60):
    held = []
    go = threading.Event()
    def in_thread():
        held.append(s.tasklet(ch.receive)())
        held.append(s.tasklet(lambda: None)())
        s.run_n_tasklets(1)          # one blocked on ch, one queued
        go.wait()
        faultinject.arm(n, 40)       # the thread's teardown runs out of memory
    th = threading.Thread(target=in_thread)
    th.start()
    go.set()
    for _ in range(100):             # the main thread's own allocations may fail too
        try:
            th.join(30)
            break
        except MemoryError:
            pass
    faultinject.disarm()
    assert not th.is_alive(), n
    for t in held:
        t.remove()                   # no queue link to a dead manager
        assert not t.scheduled and not t.alive, n
    assert ch.balance == 0, (n, ch.balance)
print("MANAGER-DEATH OK")
'''


class FaultInjection(unittest.TestCase):
    def test_manager_death_with_failing_allocations(self):
        proc = subprocess.run([sys.executable, "-c", MANAGER_DEATH], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        self.assertIn("MANAGER-DEATH OK", proc.stdout)

    def test_pymem_sweep(self):
        sweep(self, 400, preload=False)

    @unittest.skipUnless(os.path.exists(SHIM), "mmap shim not built")
    @unittest.skipIf(_scheduler._sanitized, "ASan must be the first preloaded library")
    def test_pymem_and_mmap_sweep(self):
        res = sweep(self, 200, preload=True)
        self.assertTrue(res["shim"], res)


if __name__ == "__main__":
    unittest.main()
