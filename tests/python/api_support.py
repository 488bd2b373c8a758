"""Helpers shared by test_api_errors.py and test_bad_input.py.

- `run_snippet(code)`: runs Python code in a fresh interpreter of the same kind
  (python3 or the carbon host, whichever runs the tests), so that a crash is
  reported as a test failure instead of killing the test file.
- `ForeignThread`: a thread that creates tasklets (of its own) and keeps them
  alive until `release()` is called, for the "another thread" rules.
- `assert_error`: exact exception type and exact message.
"""
import os
import subprocess
import sys
import textwrap
import threading

HERE = os.path.dirname(os.path.abspath(__file__))


def _env():
    env = dict(os.environ)
    # Make the test helpers importable from the snippet, too.
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = HERE + (os.pathsep + path if path else "")
    env.setdefault("PYTHONFAULTHANDLER", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def interpreter():
    """The interpreter running the tests (python3 or the carbon host)."""
    return sys.executable


def run_snippet(code, timeout=60, args=()):
    """(returncode, stdout, stderr) of `code` run in a fresh interpreter."""
    proc = subprocess.run([interpreter(), "-c", textwrap.dedent(code)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
                          timeout=timeout, cwd=HERE)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def run_script(path, args=(), timeout=120):
    proc = subprocess.run([interpreter(), path] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=_env(), timeout=timeout, cwd=HERE)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def assert_error(tc, exc_type, message, func, *args, **kwargs):
    """Asserts func(*args, **kwargs) raises exactly `exc_type` with str() == message
    (message None: any message). Returns the exception."""
    try:
        result = func(*args, **kwargs)
    except BaseException as e:  # noqa: B902 - TaskletExit is a SystemExit
        if type(e) is not exc_type:
            tc.fail("%s: expected %s(%r), got %s(%r)"
                    % (_name(func), exc_type.__name__, message, type(e).__name__, str(e)))
        if message is not None and str(e) != message:
            tc.fail("%s: expected %s(%r), got message %r"
                    % (_name(func), exc_type.__name__, message, str(e)))
        return e
    tc.fail("%s: expected %s(%r), returned %r" % (_name(func), exc_type.__name__, message, result))


def _name(func):
    return getattr(func, "__qualname__", None) or repr(func)


class ForeignThread:
    """Runs `factory()` in a new thread; its result (`.value`) stays alive there
    until release(). After release the thread runs `scheduler.run()` (if
    `run_after`) and ends, so its manager kills what is left."""

    def __init__(self, factory, run_after=True):
        import scheduler
        self._scheduler = scheduler
        self.value = None
        self.error = None
        self.thread_id = None
        self._factory = factory
        self._run_after = run_after
        self._ready = threading.Event()
        self._go = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self.error is not None:
            raise self.error

    def _main(self):
        try:
            self.thread_id = threading.get_ident()
            self.value = self._factory()
        except BaseException as e:  # report to the creator
            self.error = e
            self._ready.set()
            return
        self._ready.set()
        self._go.wait(60)
        if self._run_after:
            try:
                self._scheduler.run()
            except BaseException:
                pass

    def release(self, join=True):
        self._go.set()
        if join:
            self._thread.join(30)

    def alive(self):
        return self._thread.is_alive()
