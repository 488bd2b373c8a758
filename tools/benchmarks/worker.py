"""Runs one workload on one implementation, in a fresh process, and prints one
JSON object on stdout. Started by tools/bench (runner.py); by hand:

    PYTHONPATH=tools/benchmarks:build/python python3 tools/benchmarks/worker.py ours pingpong 0.2
    PYTHONPATH=tools/benchmarks:build/python python3 tools/benchmarks/worker.py ours memory 10000 [DEPTH]
    PYTHONPATH=tools/benchmarks:build/python python3 tools/benchmarks/worker.py ours gameloop n=5

Timed workloads are calibrated (doubling the size until a run takes a tenth
of the target time, which also warms up), then measured `inner` times at the
size that takes about `target` seconds; the result is the time per operation
of each measurement. The memory workload blocks N tasklets DEPTH (3) Python
frames deep.
"""
import importlib
import json
import os
import sys

MODULES = {
    "ours": ("workloads_ours", {}),
    "greenlet": ("workloads_greenlet", {}),
    "greenlet-chan": ("workloads_greenlet", {"pingpong": "pingpong_chan"}),
    "asyncio": ("workloads_asyncio", {}),
}


def calibrate_and_measure(run, target, inner):
    n = 1
    while True:
        dt, ops = run(n)
        if dt >= target / 10 or n >= 1 << 30:
            break
        grow = target / 10 / dt if dt > 0 else 16
        n *= int(min(16, max(2, grow * 1.2)))
    n = max(1, int(n * target / max(dt, 1e-9)))
    samples = []
    for _ in range(inner):
        dt, ops = run(n)
        samples.append(dt / ops * 1e9)
    return samples, ops


def main(argv):
    impl, workload, arg = argv[1], argv[2], argv[3]
    inner = int(argv[4]) if len(argv) > 4 else 3  # memory: Python frames deep
    modname, renames = MODULES[impl]
    mod = importlib.import_module(modname)
    out = {"impl": impl, "workload": workload,
           "python": "%d.%d.%d" % sys.version_info[:3], "pid": os.getpid()}
    if impl == "ours":
        import scheduler
        out["backend"] = scheduler.switch_backend
    if workload == "memory":
        n = int(arg)
        res = mod.memory(n, depth=inner)
        res["n"] = n
        from common import peak_rss_bytes
        res["peak_rss"] = peak_rss_bytes()
        out.update(res)
    else:
        fn = getattr(mod, renames.get(workload, workload), None)
        if fn is None:
            out["skipped"] = "no %s workload for %s" % (workload, impl)
        else:
            run = fn()
            if arg.startswith("n="):  # fixed size, one run (profiling)
                dt, ops = run(int(arg[2:]))
                out["ns_per_op"], out["ops"] = [dt / ops * 1e9], ops
            else:
                out["ns_per_op"], out["ops"] = calibrate_and_measure(run, float(arg), inner)
            cleanup = getattr(run, "cleanup", None)
            if cleanup:
                cleanup()
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
