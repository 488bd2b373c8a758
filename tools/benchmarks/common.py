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
