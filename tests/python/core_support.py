"""Helpers shared by the test_core_*.py files (switching.md section 4).

Subprocesses run the same interpreter as the test (``sys.executable``: plain
python3 or the carbon host) with the test's environment passed through, so a
test behaves the same under both. faulthandler is on in every child, so a
crash shows the Python traceback of the tasklet that crashed.
"""
import gc
import os
import signal
import subprocess
import sys
import textwrap
import unittest

import scheduler

PY = sys.version_info[:2]
HERE = os.path.dirname(os.path.abspath(__file__))

# What a crashing child prints; none of it may appear in a passing child's stderr.
CRASH_MARKERS = ("Fatal Python error", "Segmentation fault", "Aborted", "carbon: ",
                 "Traceback (most recent call last)", "Exception ignored",
                 "AddressSanitizer", "runtime error:")


def child_env(extra=None):
    env = dict(os.environ)
    env["PYTHONFAULTHANDLER"] = "1"
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    if extra:
        env.update(extra)
    return env


def run_python(code, *args, timeout=120, env=None, cwd=None):
    """Runs `code` (dedented) in a fresh interpreter; returns CompletedProcess."""
    code = textwrap.dedent(code)
    cmd = [sys.executable, "-X", "faulthandler", "-c", code] + [str(a) for a in args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=child_env(env), cwd=cwd or HERE)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return subprocess.CompletedProcess(cmd, "timeout after %ss" % timeout, out, err)


def run_many(jobs, timeout=180):
    """Runs {key: (code, args)} children in parallel, one per CPU; returns {key: proc}."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(run_python, code, *args, timeout=timeout)
                   for key, (code, args) in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def describe(proc):
    rc = proc.returncode
    if isinstance(rc, int) and rc < 0:
        try:
            status = "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            status = "killed by signal %d" % -rc
    else:
        status = "exit status %s" % (rc,)
    err = proc.stderr if len(proc.stderr) < 4000 else proc.stderr[:2000] + "\n[...]\n" + proc.stderr[-2000:]
    return "child %s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (status, proc.stdout[-3000:], err)


class CoreTestCase(unittest.TestCase):
    """Restores the process-wide scheduler settings and kills what a test left."""

    def setUp(self):
        self._stack_size = scheduler.get_stack_size()
        self._nested = scheduler.get_use_nested_tasklets()
        self._limit = sys.getrecursionlimit()
        self.assertIs(scheduler.getcurrent(), scheduler.getmain())

    def tearDown(self):
        sys.settrace(None)
        sys.setprofile(None)
        sys.setrecursionlimit(self._limit)
        scheduler.set_use_nested_tasklets(self._nested)
        scheduler.set_stack_size(self._stack_size)
        leftovers = [t for t in scheduler.get_thread_tasklets()[1:] if t.alive]
        for t in leftovers:
            try:
                t.kill()
            except BaseException:
                pass
        del leftovers
        try:
            scheduler.run()
        except BaseException:
            pass
        gc.collect()

    # -- subprocesses ------------------------------------------------------------------
    def run_child(self, code, *args, timeout=120, env=None, rc=0, clean_stderr=True):
        """Runs `code` in a child; asserts its exit status and a crash-free stderr."""
        proc = run_python(code, *args, timeout=timeout, env=env)
        return self.check_child(proc, rc=rc, clean_stderr=clean_stderr)

    def check_child(self, proc, rc=0, clean_stderr=True):
        self.assertEqual(proc.returncode, rc, describe(proc))
        if clean_stderr:
            for marker in CRASH_MARKERS:
                if marker in proc.stderr:
                    self.fail("%r in the child's stderr; %s" % (marker, describe(proc)))
        return proc

    def assertChildLines(self, proc, expected):
        self.assertEqual(proc.stdout.splitlines(), expected, describe(proc))


def frame_names(f):
    """The code names of frame `f` and the frames below it, innermost first."""
    names = []
    while f is not None:
        names.append(f.f_code.co_name)
        f = f.f_back
    return names


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
