"""The depth probes (issue 8): one nesting operation at a given depth, run on
the thread's main tasklet or in a tasklet, always from the same Python frame
depth. Imported by the children of tools/benchmarks/depth_parity.py (which
searches each depth in fresh processes, surviving crashes) and of
tests/python/test_core_depth_parity.py (which searches in one process, only
where nothing can crash).
"""
import ast
import copy
import json
import marshal
import pickle
import re
import sys

BASE = 25  # every probe starts this many Python frames deep, wherever it runs


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


def _recurse(n):
    return 0 if n == 0 else _recurse(n - 1) + 1


def _sorted_key(x):
    return sorted([x - 1, -1], key=_sorted_key)[0] if x > 0 else 0


def _equal(d):
    a, b = nest_list(d), nest_list(d)
    return a == b


OPS = {
    "python recursion": _recurse,
    "json.dumps nested lists": lambda d: json.dumps(nest_list(d)),
    "repr nested lists": lambda d: repr(nest_list(d)),
    "== nested lists": _equal,
    "pickle.dumps nested lists": lambda d: pickle.dumps(nest_list(d)),
    "copy.deepcopy nested dicts": lambda d: copy.deepcopy(nest_dict(d)),
    "sorted() key re-entering sorted()": lambda d: sorted([d, d], key=_sorted_key),
    "re.compile nested groups": lambda d: re.compile("(" * d + "a" + ")" * d),
    "ast.parse nested expression": lambda d: ast.parse("-" * d + "1"),
    "compile nested expression": lambda d: compile("-" * d + "1", "<d>", "eval"),
    "marshal.dumps nested lists": lambda d: marshal.dumps(nest_list(d)),
}


def frame_depth():
    n, fr = 0, sys._getframe(1)
    while fr is not None:
        n, fr = n + 1, fr.f_back
    return n


def at_base(fn):
    if frame_depth() < BASE:
        return at_base(fn)
    return fn()


def in_main(op, d):
    """Runs op(d) at BASE frames deep here: "ok" or the exception's type name."""
    def go():
        try:
            op(d)
            return "ok"
        except Exception as e:
            return type(e).__name__
    return at_base(go)


def in_tasklet(op, d):
    """The same as in_main(), in a new tasklet of this thread."""
    import scheduler as s
    box = []
    s.tasklet(lambda: box.append(in_main(op, d)))()
    s.run()
    return box[0]
