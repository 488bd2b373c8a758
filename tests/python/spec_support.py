"""Helpers for the semantics test suite (tests/python/test_sem_*.py).

The example programs (with the outputs the reference verified) live in examples/<name>.py (the
program as the reference ran it: without the "# <name>.py" header line, which keeps the
traceback line numbers of s14_dontraise.py right).  Their expected output is in
examples/<name>.out, or examples/<name>.<arg>.out for examples run with an argument.
The .out files hold the output OUR implementation must print: the spec's output blocks,
except the last line of e07_traps.out and s12_throw.out, where the spec shows a reference
bug (see the comments in test_sem_06_blocking.py / test_sem_07_exceptions.py).

Examples run in a subprocess with sys.executable (python3, or the carbon host), with the
examples directory as cwd and a relative file name, with the caller's environment
(PYTHONPATH etc.) passed through.
"""
import os
import subprocess
import sys
import textwrap
import unittest

import scheduler

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "examples")
TIMEOUT = 60


def _env():
    env = dict(os.environ)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    env.setdefault("PYTHONFAULTHANDLER", "1")
    env.pop("PYTHONSTARTUP", None)
    # Unbuffered stdout releases the GIL inside every write, so lines printed by two
    # threads (s16_xthread.py) could interleave mid-line.
    env.pop("PYTHONUNBUFFERED", None)
    return env


# Python >= 3.9 makes the __main__ script's path absolute, so `python3 name.py` would show
# "/.../examples/name.py" in tracebacks.  The launcher runs the file in the real __main__
# module (same globals and teardown as a script) compiled under its relative name.
LAUNCHER = ("import sys; sys.argv[:] = sys.argv[1:]; __file__ = sys.argv[0]\n"
            "with open(__file__, encoding='utf-8') as _f: _src = _f.read()\n"
            "del _f; exec(compile(_src, __file__, 'exec'))")


def run_example(name, arg=None):
    """Run examples/<name>.py [arg] (cwd = examples, relative file name); return the
    CompletedProcess (text mode)."""
    argv = [sys.executable, "-c", LAUNCHER, name + ".py"] + ([arg] if arg is not None else [])
    return subprocess.run(argv, cwd=EXAMPLES, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)


def run_code(code, timeout=TIMEOUT):
    """Run a snippet in a fresh interpreter (for things that could crash the process)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=EXAMPLES,
                          env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)


def expected_output(name, arg=None):
    fn = name + ("." + arg if arg is not None else "") + ".out"
    with open(os.path.join(EXAMPLES, fn), encoding="utf-8") as f:
        return f.read()


def redirects_stderr(name):
    with open(os.path.join(EXAMPLES, name + ".py"), encoding="utf-8") as f:
        return "sys.stderr = sys.stdout" in f.read()


def describe(proc):
    return "exit status %s\n--- stdout ---\n%s--- stderr ---\n%s" % (
        proc.returncode, proc.stdout, proc.stderr)


def check_process(tc, proc, stderr_must_be_empty=True):
    """Exit status 0 and (unless told otherwise) an empty stderr."""
    tc.assertEqual(proc.returncode, 0, "example failed:\n" + describe(proc))
    if stderr_must_be_empty:
        tc.assertEqual(proc.stderr, "", "unexpected stderr:\n" + describe(proc))


def assert_example(tc, name, arg=None, transform=None):
    """Run an example and compare its stdout exactly with the .out file.

    `transform(text) -> text` is applied to both sides before comparing (used for
    version-dependent lines).  Returns the raw stdout."""
    tc.maxDiff = None
    proc = run_example(name, arg)
    check_process(tc, proc, stderr_must_be_empty=not redirects_stderr(name))
    want = expected_output(name, arg)
    got = proc.stdout
    if transform is not None:
        want, got = transform(want), transform(got)
    tc.assertEqual(got.splitlines(), want.splitlines(),
                   "output of %s.py%s differs\n%s" % (name, " " + arg if arg else "",
                                                      describe(proc)))
    tc.assertEqual(got, want)  # also trailing newline / whitespace
    return proc.stdout


def assert_snippet(tc, code, expected_stdout, stderr_must_be_empty=True):
    proc = run_code(code)
    check_process(tc, proc, stderr_must_be_empty)
    tc.assertEqual(proc.stdout.splitlines(), textwrap.dedent(expected_stdout).strip("\n").splitlines(),
                   describe(proc))
    return proc


class SchedulerTestCase(unittest.TestCase):
    """Base class for in-process rule tests: restores process-global state and leaves
    the calling thread's run queue empty and no tasklet blocked on a channel."""

    maxDiff = None

    def setUp(self):
        self._nested = scheduler.get_use_nested_tasklets()
        self._sched_cb = scheduler.get_schedule_callback()
        self._chan_cb = scheduler.get_channel_callback()

    def tearDown(self):
        s = scheduler
        s.set_use_nested_tasklets(self._nested)
        s.set_schedule_callback(self._sched_cb)
        s.set_channel_callback(self._chan_cb)
        level = s.switch_trap(0)
        if level:
            s.switch_trap(-level)
        s.getcurrent().block_trap = False
        cleanup_tasklets()


def cleanup_tasklets(extra=()):
    """Kill every tasklet blocked on a channel or queued in this thread, and `extra` ones."""
    s = scheduler
    for _ in range(3):
        try:
            s.unblock_all_channels()
        except BaseException:
            pass
        for t in list(extra):
            try:
                if t.alive and not t.is_main:
                    t.kill()
            except BaseException:
                pass
        for _ in range(1000):
            if s.getruncount() <= 1:
                break
            t = s.getmain().next
            if t is None:
                break
            try:
                if t.alive:
                    t.kill()
                else:
                    t.remove()
            except BaseException:
                pass
            if t.scheduled and t is s.getmain().next:
                try:
                    t.remove()
                except BaseException:
                    pass
        if s.getruncount() <= 1:
            break


def main():
    unittest.main()
