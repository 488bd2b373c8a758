"""Deep recursion inside tasklets (switching.md section 4, item 5).

Every case runs in its own child process (faulthandler on), so a SIGSEGV on a
tasklet stack is a test failure with the tasklet's Python traceback in the
message instead of the end of the test run. Each case runs on the default
(and smallest) stack, a thread's, and on one twice as large: what a plain
thread with an 8 MiB stack reports as an exception (RecursionError, or for the
parser/marshal their own MemoryError/SyntaxError/ValueError) must be an
exception in a tasklet too, never a crash.
"""
import textwrap
import unittest

import scheduler as s
from core_support import CoreTestCase, describe, run_many, run_python

PRELUDE = r'''
import sys, faulthandler, scheduler as s
size = int(sys.argv[1])
if size:
    s.set_stack_size(size)

def nested_lists(n):
    l = []
    for _ in range(n):
        l = [l]
    return l

def report(tag, fn):
    box = []
    def body():
        try:
            fn()
        except BaseException as e:
            box.append(type(e).__name__)
        else:
            box.append("ok")
        # the tasklet still works after the error
        s.schedule()
        box.append(sum(map(abs, range(10))))
    t = s.tasklet(body)()
    s.run()
    assert not t.alive
    print(tag, box[0], box[1], flush=True)
'''

# name -> (code defining case(), outcomes a big stack gives)
CASES = {
    "python_recursion": ("""
        def case():
            def f(n):
                return f(n + 1)
            f(0)
        """, {"RecursionError"}),
    "map_sum_reentry": ("""
        def case():
            def f(n):
                return sum(map(f, [n + 1]))
            f(0)
        """, {"RecursionError"}),
    "repr_recursion": ("""
        def case():
            class R:
                def __repr__(self):
                    return repr(self)
            repr(R())
        """, {"RecursionError"}),
    "nested_list_repr": ("""
        def case():
            repr(nested_lists(100000))
        """, {"RecursionError"}),
    "json_dumps_nested": ("""
        import json
        def case():
            json.dumps(nested_lists(100000))
        """, {"RecursionError"}),
    "json_loads_nested": ("""
        import json
        def case():
            json.loads("[" * 100000 + "]" * 100000)
        """, {"RecursionError"}),
    "pickle_dumps_nested": ("""
        import pickle
        def case():
            pickle.dumps(nested_lists(100000))
        """, {"RecursionError"}),
    "isinstance_recursion": ("""
        def case():
            class M(type):
                def __instancecheck__(cls, o):
                    return isinstance(o, cls)
            class C(metaclass=M):
                pass
            isinstance(1, C)
        """, {"RecursionError"}),
    # compile(): the AST/compiler recursion, then the parser's own recursion.
    "compile_nested_additions": ("""
        def case():
            compile("1" + "+1" * 100000, "<s>", "eval")
        """, {"RecursionError"}),
    "compile_nested_unary": ("""
        def case():
            compile("-" * 100000 + "1", "<s>", "eval")
        """, {"RecursionError", "MemoryError"}),
    "compile_nested_parens_199": ("""
        def case():
            compile("(" * 199 + "1" + ")" * 199, "<s>", "eval")
        """, {"ok", "RecursionError", "MemoryError"}),
    "compile_nested_calls": ("""
        def case():
            compile("f(" * 1000 + ")" * 1000, "<s>", "eval")
        """, {"RecursionError", "MemoryError", "SyntaxError"}),
    # other ways into the parser
    "symtable_nested_parens": ("""
        import symtable
        def case():
            symtable.symtable("(" * 190 + "1" + ")" * 190, "<s>", "eval")
        """, {"ok", "RecursionError", "MemoryError"}),
    "import_deeply_nested_source": ("""
        import importlib, os, tempfile
        tmp = tempfile.mkdtemp()
        sys.path.insert(0, tmp)
        sys.dont_write_bytecode = True
        counter = [0]
        def case():
            counter[0] += 1
            name = "deep_module_%d" % counter[0]
            with open(os.path.join(tmp, name + ".py"), "w") as f:
                f.write("X = " + "(" * 190 + "1" + ")" * 190 + "\\n")
            importlib.invalidate_caches()
            assert importlib.import_module(name).X == 1
        """, {"ok", "RecursionError", "MemoryError"}),
    # deep deallocation (the 3.13 trashcan uses the C recursion counter)
    "del_nested_lists": ("""
        def case():
            l = nested_lists(200000)
            del l
        """, {"ok"}),
    "del_nested_dicts": ("""
        def case():
            d = None
            for _ in range(200000):
                d = {1: d}
            del d
        """, {"ok"}),
    "del_nested_tuples": ("""
        def case():
            t = None
            for _ in range(200000):
                t = (t,)
            del t
        """, {"ok"}),
    "del_instance_chain": ("""
        class Node:
            def __init__(self, nxt):
                self.nxt = nxt
        def case():
            n = None
            for _ in range(200000):
                n = Node(n)
            del n
        """, {"ok"}),
}

# More C re-entry patterns beyond the list in switching.md.
EXTRA_CASES = {
    "sorted_key_reentry": ("""
        def case():
            def f(x):
                return sorted([x], key=f)
            f(1)
        """, {"RecursionError"}),
    "descriptor_get_recursion": ("""
        def case():
            class D:
                def __get__(self, o, t):
                    return o.x
            class A:
                x = D()
            A().x
        """, {"RecursionError"}),
    "marshal_dumps_nested": ("""
        import marshal
        def case():
            marshal.dumps(nested_lists(100000))
        """, {"ValueError"}),
    "ast_literal_eval_nested": ("""
        import ast
        def case():
            ast.literal_eval("[" * 190 + "]" * 190)
        """, {"ok", "RecursionError", "MemoryError"}),
    # ctypes prints the RecursionError as unraisable and returns 0: "ok"
    "ctypes_callback_recursion": ("""
        import ctypes
        def case():
            CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
            def f(n):
                return cf(n + 1)
            cf = CB(f)
            cf(0)
        """, {"RecursionError", "ok"}),
}
NOISY_STDERR = {"ctypes_callback_recursion"}


def case_script(body):
    return PRELUDE + textwrap.dedent(body) + """
report("first", case)
report("again", case)  # on a stack the first one gave back
"""


SIZES = (("default_stack", 0), ("double_stack", 2 * s.DEFAULT_STACK_SIZE))


class RecursionCaseBase(CoreTestCase):
    """Children for all cases of the class run up front, in parallel."""
    cases = {}

    @classmethod
    def setUpClass(cls):
        jobs = {(name, size): (case_script(body), (size,))
                for name, (body, _) in cls.cases.items() for _, size in SIZES}
        cls.results = run_many(jobs)

    def check_case(self, name, size):
        allowed = self.cases[name][1]
        proc = self.check_child(self.results[name, size],
                                clean_stderr=name not in NOISY_STDERR)
        self.assertNotIn("Fatal Python error", proc.stderr)
        outcomes = [line.split() for line in proc.stdout.split("\n") if line]
        self.assertEqual([o[0] for o in outcomes], ["first", "again"], proc.stdout)
        for tag, outcome, check in outcomes:
            self.assertIn(outcome, allowed, "%s run: %s" % (tag, proc.stdout))
            self.assertEqual(check, "45")


def add_case_tests(cls, cases):
    cls.cases = cases
    for name in cases:
        for label, size in SIZES:
            def test(self, name=name, size=size):
                self.check_case(name, size)
            test.__name__ = "test_%s_%s" % (name, label)
            setattr(cls, test.__name__, test)


class RecursionCaseTests(RecursionCaseBase):
    pass


class ExtraCReentryTests(RecursionCaseBase):
    pass


add_case_tests(RecursionCaseTests, CASES)
add_case_tests(ExtraCReentryTests, EXTRA_CASES)


class DepthAccountingTests(CoreTestCase):

    def test_depth_does_not_leak_between_tasklets(self):
        proc = self.run_child(PRELUDE + r'''
def probe(n=0):
    try:
        return probe(n + 1)
    except RecursionError:
        return n

def probe_c(n=0):
    try:
        return sum(map(probe_c, [n + 1]))
    except RecursionError:
        return n

def fresh(fn):
    out = []
    s.tasklet(lambda: out.append(fn()))()
    s.run()
    return out[0]

for _ in range(2):  # warm up: the first C re-entry counts differently
    probe(), probe_c(), fresh(probe), fresh(probe_c)
main_before = (probe(), probe_c())
base = (fresh(probe), fresh(probe_c))
at_bottom = []

def sinker(depth, kind):
    def down(n):
        if n:
            return down(n - 1) if kind == "py" else sum(map(down, [n - 1]))
        s.schedule_remove()
        at_bottom.append(kind)
        return 0
    down(depth)

holders = []
for i in range(10):
    holders.append(s.tasklet(sinker)(base[0] - 5 - i, "py"))
    holders.append(s.tasklet(sinker)(max(1, base[1] // 2 - 3 - i), "c"))
s.run()
during = (fresh(probe), fresh(probe_c))
main_during = (probe(), probe_c())
for t in holders:
    t.insert()
s.run()
after = (fresh(probe), fresh(probe_c))
import json
print(json.dumps({"base": base, "during": during, "after": after, "finished": len(at_bottom),
                  "main": [main_before, main_during, [probe(), probe_c()]]}))
''', 0)
        import json
        r = json.loads(proc.stdout)
        self.assertEqual(r["during"], r["base"], proc.stdout)
        self.assertEqual(r["after"], r["base"], proc.stdout)
        self.assertEqual(r["main"][1], r["main"][0], proc.stdout)
        self.assertEqual(r["main"][2], r["main"][0], proc.stdout)
        self.assertEqual(r["finished"], 20)

    def check_limit_change(self, new_limit):
        proc = self.run_child(PRELUDE + r'''
new_limit = int(sys.argv[2])
def probe(n=0):
    try:
        return probe(n + 1)
    except RecursionError:
        return n

def worker(out, suspend):
    def down(n):
        if n:
            return down(n - 1)
        if suspend:
            s.schedule_remove()
        out.append(probe())  # at the bottom
        return 0
    down(40)
    out.append(probe())  # at its base again

a_out, b_out = [], []
a = s.tasklet(worker)(a_out, True)
s.run()
sys.setrecursionlimit(new_limit)
a.insert()
s.run()
s.tasklet(worker)(b_out, False)
s.run()
print(a_out == b_out, a_out, b_out)
''', 0, new_limit)
        self.assertTrue(proc.stdout.startswith("True "), proc.stdout)

    def test_setrecursionlimit_raised_while_suspended(self):
        self.check_limit_change(3000)

    def test_setrecursionlimit_lowered_while_suspended(self):
        self.check_limit_change(120)

    def test_limit_lowered_below_suspended_depth(self):
        proc = self.run_child(PRELUDE + r'''
log = []
def deep():
    def down(n):
        if n:
            return down(n - 1)
        s.schedule_remove()
        try:
            down(0)  # one more call
            log.append("call ok")
        except RecursionError:
            log.append("RecursionError")
        return 0
    down(150)
    log.append("unwound")
t = s.tasklet(deep)()
s.run()
# 20 below the tasklet's depth: CPython's own recoverable range (3.11 aborts
# a thread that is more than 50 levels beyond the limit)
sys.setrecursionlimit(130)
t.insert()
s.run()
sys.setrecursionlimit(1000)
print(log)
''', 0)
        self.assertEqual(proc.stdout.strip(), "['RecursionError', 'unwound']")


    def test_setrecursionlimit_inside_shallow_tasklet(self):
        proc = self.run_child(PRELUDE + r'''
out = []
def probe(n=0):
    try:
        return probe(n + 1)
    except RecursionError:
        return n
def t():
    try:
        sys.setrecursionlimit(500)
        out.append("set ok")
    except RecursionError as e:
        out.append(str(e))
    out.append(probe() <= 500)
s.tasklet(t)()
s.run()
print(out, sys.getrecursionlimit())
''', 0)
        self.assertEqual(proc.stdout.strip(), "['set ok', True] 500")


class GuardPageTests(CoreTestCase):

    def test_guard_page_hit_dumps_tasklet_traceback(self):
        code = """
            import faulthandler, scheduler as s
            def overflowing_tasklet():
                faulthandler._stack_overflow()
            s.tasklet(overflowing_tasklet)()
            s.run()
        """
        if s._sanitized:
            # AddressSanitizer takes the SIGSEGV itself: it exits with 1, or
            # aborts with abort_on_error.
            proc = run_python(code)
            self.assertIn(proc.returncode, (1, -6), describe(proc))
            self.assertIn("AddressSanitizer: SEGV", proc.stderr)
            return
        proc = self.run_child(code, rc=-11, clean_stderr=False)
        self.assertIn("Fatal Python error: Segmentation fault", proc.stderr)
        self.assertIn("in overflowing_tasklet", proc.stderr)


class StackSizeChangeTests(CoreTestCase):

    def test_stacks_of_old_size_finishing_after_change(self):
        # Tasklets started in regions of the default size finish after the
        # size went up; tasklets created afterwards (in regions of either
        # size) still raise RecursionError.
        proc = self.run_child(PRELUDE + r'''
s.set_stack_size(s.MIN_STACK_SIZE)
ts = [s.tasklet(s.schedule_remove)() for _ in range(8)]
s.run()
s.set_stack_size(2 * s.DEFAULT_STACK_SIZE)
for t in ts:
    t.insert()
s.run()
def case():
    def f(n):
        return sum(map(f, [n + 1]))
    f(0)
for i in range(8):
    report("run%d" % i, case)
''', 0)
        self.assertEqual([line.split()[1] for line in proc.stdout.splitlines()],
                         ["RecursionError"] * 8, proc.stdout)

    def test_stacks_of_old_size_finishing_after_shrink(self):
        proc = self.run_child(PRELUDE + r'''
s.set_stack_size(2 * s.DEFAULT_STACK_SIZE)
ts = [s.tasklet(s.schedule_remove)() for _ in range(8)]
s.run()
s.set_stack_size(s.MIN_STACK_SIZE)
for t in ts:
    t.insert()
s.run()
def case():
    def f(n):
        return sum(map(f, [n + 1]))
    f(0)
for i in range(8):
    report("run%d" % i, case)
s.set_stack_size(2 * s.DEFAULT_STACK_SIZE)  # drops the pool
for i in range(4):
    report("big%d" % i, case)
''', 0)
        self.assertEqual([line.split()[1] for line in proc.stdout.splitlines()],
                         ["RecursionError"] * 12, proc.stdout)


if __name__ == "__main__":
    unittest.main()
