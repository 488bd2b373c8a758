#!/usr/bin/env python3
"""Refleak mode: each Python test file run several times in one process.

    refleak.py [--runs N] [--python PY] [--pythonpath P] [FILE...]

Each file runs in a subprocess of its own (python3, or the carbon host with
--python), which loads the file's tests and runs them N times (default 3).
After every run, and a full collection, it counts tasklet objects, channels,
schedule managers, every object the collector tracks, and
sys.gettotalrefcount() on a debug interpreter. The first run is the baseline
(caches fill then); the following runs must bring the tasklet, channel and
manager counts back to it exactly, and the object count (and total
references) to within a small allowance for interpreter caches (a leak of
one object per test grows far past it). Exit status 1 if any file leaks or
fails; files whose tests cannot run twice in one process are listed in
NOT_REPEATABLE with the reason.

docs/reliability.md describes what this proves.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TESTS = os.path.join(ROOT, "tests", "python")

# Objects a re-run may add without leaking (regex/linecache/typing caches,
# interned strings, warnings registries): measured at most ~40 on 3.11-3.13.
OBJECT_SLACK = 400

NOT_REPEATABLE = {
    # (none so far; a file goes here with the reason it cannot run twice)
}

CHILD = r"""
import gc, importlib.util, io, json, sys, unittest
path, runs = sys.argv[1], int(sys.argv[2])
sys.argv = [path]
spec = importlib.util.spec_from_file_location("refleak_target", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
import scheduler as s

def counts():
    for _ in range(3):
        gc.collect()
    c = {"tasklets": s.get_active_tasklet_count(),
         "channels": s.get_number_of_active_channels(),
         "managers": s.get_number_of_active_schedule_managers(),
         "objects": len(gc.get_objects())}
    if hasattr(sys, "gettotalrefcount"):
        c["refs"] = sys.gettotalrefcount()
    return c

out = []
for i in range(runs):
    suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    c = counts()
    c["ok"] = result.wasSuccessful()
    c["failures"] = [str(t) for t, _ in result.failures + result.errors][:5]
    out.append(c)
print("REFLEAK " + json.dumps(out))
"""


def check_file(path, runs, python, env):
    proc = subprocess.run([python, "-c", CHILD, path, str(runs)], cwd=TESTS, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=900)
    line = [l for l in proc.stdout.splitlines() if l.startswith("REFLEAK ")]
    if proc.returncode != 0 or not line:
        return False, "crashed or did not finish (rc %d): %s" % (
            proc.returncode, proc.stderr.strip().splitlines()[-3:])
    res = json.loads(line[-1][len("REFLEAK "):])
    bad = [r for r in res if not r["ok"]]
    if bad:
        return False, "tests failed on a re-run: %s" % bad[0]["failures"]
    base = res[0]
    problems = []
    for i, r in enumerate(res[1:], 2):
        for key in ("tasklets", "channels", "managers"):
            if r[key] != base[key]:
                problems.append("run %d: %s %d -> %d" % (i, key, base[key], r[key]))
        if r["objects"] - base["objects"] > OBJECT_SLACK * (i - 1):
            problems.append("run %d: objects %d -> %d" % (i, base["objects"], r["objects"]))
        if "refs" in r and r["refs"] - base["refs"] > OBJECT_SLACK * 10 * (i - 1):
            problems.append("run %d: total refs %d -> %d" % (i, base["refs"], r["refs"]))
    summary = "tasklets %d, channels %d, objects %s" % (
        base["tasklets"], base["channels"], "/".join(str(r["objects"]) for r in res))
    return not problems, "; ".join(problems) or summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--pythonpath", default=os.environ.get("PYTHONPATH", ""))
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    files = a.files or sorted(glob.glob(os.path.join(TESTS, "test_*.py")))
    pythonpath = os.pathsep.join(os.path.abspath(p) for p in a.pythonpath.split(os.pathsep) if p)
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONDONTWRITEBYTECODE="1")
    python = os.path.abspath(a.python) if os.sep in a.python else a.python
    failed = 0
    for f in files:
        name = os.path.basename(f)
        if name in NOT_REPEATABLE:
            print("skip  %-32s %s" % (name, NOT_REPEATABLE[name]))
            continue
        ok, msg = check_file(os.path.abspath(f), a.runs, python, env)
        print("%s %-32s %s" % ("ok   " if ok else "LEAK ", name, msg), flush=True)
        failed += not ok
    print("refleak: %d file(s) failed" % failed if failed else "refleak: clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
