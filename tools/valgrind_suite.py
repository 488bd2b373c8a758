#!/usr/bin/env python3
"""Runs the ctest suite under valgrind memcheck.

    tools/valgrind_suite.py BUILD_DIR [REGEX]

Each test's own command, environment and working directory come from
`ctest --show-only=json-v1`; the command is prefixed with valgrind. Tasklet
stacks are registered with valgrind (VALGRIND_STACK_REGISTER), so memcheck
follows the switches; PYTHONMALLOC=malloc lets it see every Python object.
Tests run by plain python3 are skipped (the same file also runs in the carbon
host), as are tests that measure time or exhaust memory on purpose, and the
game server sample's integration tests (processes talking over loopback).
"""
import json
import os
import re
import subprocess
import sys

SKIP = re.compile(r"\.python$|limits|bench|idle|^game_server\.")
VALGRIND = ["valgrind", "--error-exitcode=99", "--quiet", "--leak-check=no", "--fair-sched=yes",
            "--num-callers=50",
            "--suppressions=" + os.path.join(os.path.dirname(__file__), "valgrind.supp")]


def tests(build_dir):
    out = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"],
                         check=True, capture_output=True, text=True).stdout
    for test in json.loads(out)["tests"]:
        props = {p["name"]: p["value"] for p in test.get("properties", [])}
        env = dict(os.environ)
        for item in props.get("ENVIRONMENT", []):
            key, _, value = item.partition("=")
            env[key] = value
        env["PYTHONMALLOC"] = "malloc"
        yield test["name"], test["command"], env, props.get("WORKING_DIRECTORY")


def main():
    build_dir = sys.argv[1]
    only = re.compile(sys.argv[2]) if len(sys.argv) > 2 else None
    failed = []
    for name, command, env, cwd in tests(build_dir):
        if SKIP.search(name) or (only and not only.search(name)):
            continue
        print("valgrind:", name, flush=True)
        rc = subprocess.run(VALGRIND + command, env=env, cwd=cwd).returncode
        if rc != 0:
            failed.append((name, rc))
    for name, rc in failed:
        print("FAILED under valgrind: %s (exit %d)" % (name, rc))
    print("valgrind: %d failed" % len(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
