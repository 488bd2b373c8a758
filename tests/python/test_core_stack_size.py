"""The smallest tasklet stack is a thread's (issue 8 item 1, issue 13
"Smaller"): a tasklet started after set_stack_size(MIN_STACK_SIZE) nests
Python recursion as deep as its thread's main tasklet, the recursion limit,
raised limits included, on 3.11 (one counter for Python frames and C
recursion) as on 3.12 and 3.13, on the main thread and on a worker thread
(one with a small stack of its own too); C re-entry ends in RecursionError
at the main tasklet's depth, never SIGSEGV. Smaller sizes are refused. Each
case runs in its own child."""
import unittest

import scheduler as s
from core_support import PY, CoreTestCase

PROBE = r"""
import sys, threading, scheduler as s
s.set_stack_size(s.MIN_STACK_SIZE)

def frames():
    n, f = 0, sys._getframe(1)
    while f is not None:
        n, f = n + 1, f.f_back
    return n

def py_depth():
    # Python frames on the stack (of this tasklet, or the thread's main
    # tasklet) where RecursionError is raised.
    try:
        return py_depth()
    except RecursionError:
        return frames()

def c_depth(n=0):
    # Through C re-entry (list over map calling back into Python): "frames
    # levels", frames on the stack and levels of re-entry where
    # RecursionError is raised.
    try:
        return list(map(c_depth, [n + 1]))[0]
    except RecursionError:
        return "%d/%d" % (frames(), n)

def in_tasklet(fn):
    box = []
    s.tasklet(lambda: box.append(fn()))()
    s.run()
    return box[0]

def measure(tag):
    # C re-entry is not probed on the main tasklet of a thread with a small
    # stack: it would overflow that stack in plain CPython too.
    main_c = c_depth if tag != "small_thread" else (lambda: "-1/-1")
    for _ in range(2):  # warm up: the first C re-entry counts differently
        py_depth(), main_c(), in_tasklet(py_depth), in_tasklet(c_depth)
    print(tag, sys.getrecursionlimit(), py_depth(), in_tasklet(py_depth),
          main_c(), in_tasklet(c_depth), flush=True)

sys.setrecursionlimit(int(sys.argv[1]))
where = sys.argv[2]
if where == "main":
    measure("main")
else:
    if where == "small_thread":
        threading.stack_size(256 * 1024)
    t = threading.Thread(target=measure, args=(where,))
    t.start()
    t.join()
"""


class MinimumStackSizeTests(CoreTestCase):

    def test_min_is_a_threads_stack(self):
        self.assertEqual(s.MIN_STACK_SIZE, s.DEFAULT_STACK_SIZE)
        size = s.get_stack_size()
        for bad in (128 * 1024, s.MIN_STACK_SIZE - 4096):
            with self.assertRaisesRegex(ValueError, "a thread's stack"):
                s.set_stack_size(bad)
            self.assertEqual(s.get_stack_size(), size)

    def check(self, limit, where):
        proc = self.run_child(PROBE, limit, where)
        tag, got_limit, main_py, tasklet_py, main_c, tasklet_c = proc.stdout.split()
        self.assertEqual((tag, int(got_limit)), (where, limit))
        # Python recursion reaches the limit in the tasklet as on the main
        # tasklet (frames below the probe included).
        self.assertEqual(int(tasklet_py), int(main_py), proc.stdout)
        self.assertGreater(int(tasklet_py), limit - 5, proc.stdout)
        # C re-entry stops with RecursionError (caught), as deep as on the
        # main tasklet: on 3.11 at the same frame depth (one counter); on
        # 3.12+ a tasklet starts with a new thread's C recursion units, and
        # the main tasklet's base holds a few, so the tasklet re-enters as
        # many levels or a few more.
        main_frames, main_levels = map(int, main_c.split("/"))
        tasklet_frames, tasklet_levels = map(int, tasklet_c.split("/"))
        self.assertGreater(tasklet_levels, 100, proc.stdout)
        if where == "small_thread":
            return
        if PY == (3, 11):
            self.assertEqual(tasklet_frames, main_frames, proc.stdout)
        else:
            self.assertGreaterEqual(tasklet_levels, main_levels, proc.stdout)
            self.assertLessEqual(tasklet_levels, main_levels + 4, proc.stdout)

    def test_default_limit_main_thread(self):
        self.check(1000, "main")

    def test_raised_limit_main_thread(self):
        self.check(5000, "main")

    def test_default_limit_worker_thread(self):
        self.check(1000, "thread")

    def test_raised_limit_worker_with_small_stack(self):
        # The worker's own stack is 256 KiB: its tasklets' regions are still
        # a thread's default size, so they nest at least as deep as its main
        # tasklet (which uses no C stack for Python-to-Python calls).
        self.check(3000, "small_thread")


if __name__ == "__main__":
    unittest.main()
