"""Every overflow of a tasklet's C stack is detected and reported (issue 13
defect 4, second half): every stack has a guard page, beyond the process's
map budget too. There (set_guarded_stacks(0) here) a thread's tasklets share
the one stack region it has instead of getting unguarded stacks, so C
recursion the interpreter does not count, run past the region's end, faults
on its guard page: SIGSEGV, reported by faulthandler with the tasklet's
Python traceback, before anything else runs."""
import unittest

import scheduler as s
from core_support import CoreTestCase, describe, run_python

CODE = """
    import scheduler as s
    s.set_guarded_stacks(0)  # no region beyond the thread's first
    out = []
    class Probe:
        def __hash__(self):
            out.append(s._stack_usage()[0])
            return 1
    def nest(d, leaf):
        x = (leaf,)
        for _ in range(d):
            x = (x,)
        return x
    def measure(d):
        hash(nest(d, Probe()))   # tuple hashing recursion is not counted
    for d in (10, 1010):
        s.tasklet(measure)(d)
        s.run()
    per_level = (out[1] - out[0]) / 1000
    # 64 KiB past the region's end
    depth = int((s.get_stack_size() + 64 * 1024 - out[0]) / per_level)
    neighbours = [s.tasklet(s.schedule_remove)() for _ in range(4)]
    s.run()
    st = s.get_stack_stats()
    print("shared", st["thread_regions"], st["thread_bound"], flush=True)
    def overflowing_tasklet():
        hash(nest(depth, 1))
    s.tasklet(overflowing_tasklet)()
    s.run()
    print("not detected", flush=True)
"""


class GuardedOverflowTests(CoreTestCase):

    def test_overflow_beyond_map_budget_hits_guard_page(self):
        if s._sanitized:
            # AddressSanitizer takes the SIGSEGV itself: it exits with 1, or
            # aborts with abort_on_error.
            proc = run_python(CODE)
            self.assertIn(proc.returncode, (1, -6), describe(proc))
            self.assertIn("AddressSanitizer", proc.stderr)
        else:
            proc = self.run_child(CODE, rc=-11, clean_stderr=False)
            self.assertIn("Fatal Python error: Segmentation fault", proc.stderr)
            self.assertIn("in overflowing_tasklet", proc.stderr)
        # the four neighbours in the one region
        self.assertIn("shared 1 4", proc.stdout, describe(proc))
        self.assertNotIn("not detected", proc.stdout)


if __name__ == "__main__":
    unittest.main()
