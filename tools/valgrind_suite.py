#!/usr/bin/env python3
"""Runs the ctest suite under valgrind memcheck.

    tools/valgrind_suite.py BUILD_DIR [REGEX]

Each test's own command, environment and working directory come from
`ctest --show-only=json-v1`; the command is prefixed with valgrind. Tasklet
stacks are registered with valgrind (VALGRIND_STACK_REGISTER), so memcheck
follows the switches. Python objects are allocated with malloc, so memcheck
sees each one: PYTHONMALLOC=malloc, or on CPython 3.11 the preloaded
libcarbon_vgshim.so (tests/valgrind/pylong_shim.c: the same, plus the first
digit of an int zeroed, which 3.11 leaves undefined and memcheck then
reports all over CPython). Tests run by plain python3 are skipped (the same
file also runs in the carbon host), and of the forced-sharing variants
(`.shared`, CARBON_STACK_REGIONS) only six core ones run (stacks copied
between tasklets under memcheck), as are tests that measure time (the
game loop sample's frame times), load tests with fixed timeouts (10k
connections in 10 s) or tests that exhaust memory on purpose, the game
server sample's integration tests (processes talking over loopback), the
tests that run valgrind themselves, and those whose programs are not ours
(packaging: cmake and cpack; cppcheck).
Prints each test's time and the totals; a test with memcheck errors exits
with 99 (--error-exitcode), one that failed otherwise (a timing check that
valgrind's slowdown broke, say) with its own code.
"""
import json
import os
import re
import subprocess
import sys
import time

SKIP = re.compile(r"\.python$|^(?!py\.test_(core_frames|core_gc_cycles|core_parked|core_tracing|sem_03_switch|sem_06_blocking)\.shared$).*\.shared$|limits|bench|idle|^sample\.game_loop_runaway$|net_load|^game_server\.|^valgrind\.|^consumer\.|^lint\.")
VALGRIND = ["valgrind", "--error-exitcode=99", "--quiet", "--leak-check=no", "--fair-sched=yes",
            "--num-callers=50",
            "--suppressions=" + os.path.join(os.path.dirname(__file__), "valgrind.supp")]


def python_allocator_env(build_dir):
    """The environment that makes CPython allocate objects with malloc."""
    python = None
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("_Python3_EXECUTABLE:"):
                python = line.split("=", 1)[1].strip()
    version = subprocess.run([python or sys.executable, "-c", "import sys; print(sys.version_info[:2])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    if version == "(3, 11)":
        shim = os.path.abspath(os.path.join(build_dir, "tests", "libcarbon_vgshim.so"))
        if not os.path.exists(shim):
            sys.exit("valgrind_suite: %s not built" % shim)
        return {"LD_PRELOAD": shim}
    return {"PYTHONMALLOC": "malloc"}


def tests(build_dir):
    alloc_env = python_allocator_env(build_dir)
    out = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"],
                         check=True, capture_output=True, text=True).stdout
    for test in json.loads(out)["tests"]:
        props = {p["name"]: p["value"] for p in test.get("properties", [])}
        env = dict(os.environ)
        for item in props.get("ENVIRONMENT", []):
            key, _, value = item.partition("=")
            env[key] = value
        env.pop("PYTHONMALLOC", None)
        env.update(alloc_env)
        yield test["name"], test["command"], env, props.get("WORKING_DIRECTORY")


def main():
    build_dir = sys.argv[1]
    only = re.compile(sys.argv[2]) if len(sys.argv) > 2 else None
    failed = []
    ran = 0
    start = time.monotonic()
    for name, command, env, cwd in tests(build_dir):
        if SKIP.search(name) or (only and not only.search(name)):
            continue
        print("valgrind:", name, flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(VALGRIND + command, env=env, cwd=cwd).returncode
        ran += 1
        print("valgrind: %s exit %d, %.0f s" % (name, rc, time.monotonic() - t0), flush=True)
        if rc != 0:
            failed.append((name, rc))
    for name, rc in failed:
        print("FAILED under valgrind: %s (exit %d%s)" % (name, rc, ": memcheck errors" if rc == 99 else ""))
    print("valgrind: %d tests, %d with memcheck errors, %d failed otherwise, %.0f s" % (
        ran, sum(rc == 99 for _, rc in failed), sum(rc != 99 for _, rc in failed), time.monotonic() - start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
