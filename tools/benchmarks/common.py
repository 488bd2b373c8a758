"""Helpers shared by the workload modules (run inside the measured process).

Every timed workload is a factory: calling it builds the state that is not
measured (tasklets already blocked, ...) and returns ``run(n)``, which does
``n`` units of work and returns ``(elapsed_seconds, operations)``.
"""
import gc
import os
import time

clock = time.perf_counter

PAGE = os.sysconf("SC_PAGESIZE")


def rss_bytes():
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def pte_bytes():
    """Page tables of this process (VmPTE): a tasklet whose stack top sits
    alone in its 2 MiB span also costs a page-table page share."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmPTE:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def settle():
    """Collect garbage so that RSS readings do not include pending cycles."""
    gc.collect()
    gc.collect()


def callers(fn, extra):
    """fn called through `extra` more plain Python frames (memory workloads
    deeper than their three frames: tools/benchmarks/memory_breakdown.py)."""
    for _ in range(extra):
        fn = (lambda inner: lambda *args: inner(*args))(fn)
    return fn


def async_callers(fn, extra):
    """The same for a coroutine function: `extra` more awaiting coroutines."""
    def wrap(inner):
        async def outer(*args):
            return await inner(*args)
        return outer
    for _ in range(extra):
        fn = wrap(fn)
    return fn
