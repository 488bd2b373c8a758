#!/usr/bin/env python3
"""tools/dev fuzz N [SEED]: N random programs on the model and the module;
prints the first mismatch minimized to its shortest program."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import program  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    t0 = time.monotonic()
    found = program.check_range(a.seed, a.count)
    dt = time.monotonic() - t0
    if found is None:
        print("fuzz: %d programs (seeds %d..%d) agree with the model in %.1f s "
              "(%d outside the model: a loop re-entering a loop owner)"
              % (a.count, a.seed, a.seed + a.count - 1, dt, program.OUT_OF_SCOPE[0]))
        return 0
    seed, prog, real, model = found
    print("fuzz: seed %d differs from the model; minimized program:" % seed)
    print(program.program_text(prog))
    print("module trace:", real)
    print("model trace: ", model)
    return 1


if __name__ == "__main__":
    sys.exit(main())
