"""Every overflow of a tasklet's C stack is detected and reported (issue 13
defect 4, second half): past the guarded-stack budget a tasklet runs on an
unguarded stack, checked at each switch away from it. One that overflows
into its neighbour and then *returns* must be reported at its last switch,
before the neighbour it damaged ever runs."""
import unittest

import scheduler as s
from core_support import CoreTestCase


class UnguardedOverflowTests(CoreTestCase):

    @unittest.skipIf(s._sanitized, "AddressSanitizer reports the write itself")
    def test_overflow_that_returns_is_reported(self):
        proc = self.run_child("""
            import scheduler as s
            s.set_guarded_stacks(0)
            s.set_stack_size(s.MIN_STACK_SIZE)
            out = []
            class Probe:
                def __hash__(self):
                    out.append(s._stack_usage()[0])
                    return 1
            def nest(d):
                x = (Probe(),)
                for _ in range(d):
                    x = (x,)
                return x
            def measure(d):
                hash(nest(d))   # tuple hashing recursion is not counted
            for d in (10, 210):
                s.tasklet(measure)(d)
                s.run()
            per_level = (out[1] - out[0]) / 200
            # 12 KiB past the stack's end: into the neighbour's frame chunk.
            depth = int((s.MIN_STACK_SIZE + 12 * 1024 - out[0]) / per_level) + 10
            neighbours = [s.tasklet(s.schedule_remove)() for _ in range(4)]
            s.run()
            def overflowing_tasklet():
                hash(nest(depth))
            s.tasklet(overflowing_tasklet)()
            s.run()
            print("not detected", flush=True)
        """, rc=-6, clean_stderr=False)
        self.assertNotIn("not detected", proc.stdout)
        self.assertIn("carbon: C stack overflow in tasklet overflowing_tasklet "
                      "(unguarded stack of %d bytes" % s.MIN_STACK_SIZE, proc.stderr)


if __name__ == "__main__":
    unittest.main()
