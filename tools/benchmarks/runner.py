"""tools/bench: the benchmark suite (issue 5).

Every workload runs on our `scheduler` module and, in the same invocation, on
raw greenlet (deque run queue) and asyncio; each (workload, implementation,
repetition) in its own fresh process, repetitions interleaved across the
implementations so that a slow patch of a shared machine hits all of them.
Ratios are ours / greenlet medians of this run.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_PNG = os.path.join(REPO, "docs", "performance.png")

IMPLS = ("ours", "greenlet", "greenlet-chan", "asyncio")

# Timed workloads: name -> (label, unit shown, impls).
TIMED = {
    "pingpong": ("channel ping-pong, round trip", ("ours", "greenlet", "greenlet-chan", "asyncio")),
    "sched10": ("schedule() among 10", ("ours", "greenlet", "asyncio")),
    "sched1000": ("schedule() among 1000", ("ours", "greenlet", "asyncio")),
    "sched10_armed": ("schedule() among 10 in run(timeout): preemption armed (vs sched10)", ("ours",)),
    "spawn_main": ("spawn + finish, from main", ("ours", "greenlet", "asyncio")),
    "spawn_tasklet": ("spawn + finish, from a tasklet", ("ours", "greenlet", "asyncio")),
    "fanin": ("fan-in 1000 -> 1, per message", ("ours", "greenlet", "asyncio")),
    "gameloop": ("game-loop frame, per wakeup (10k)", ("ours", "greenlet", "asyncio")),
}
MEMORY = {"mem10k": 10_000, "mem100k": 100_000, "mem1m": 1_000_000, "mem100k_d10": 100_000}
# Python frames deep the tasklets block (default 3). Ten frames: a tasklet
# outgrows the first frame chunk of three frames' size (runtime/rootchunk.h).
MEMORY_DEPTH = {"mem100k_d10": 10}
MEMORY_IMPLS = ("ours", "greenlet", "asyncio")
MEM_PER_TASKLET_LIMIT = 2048  # bytes of RSS + VmPTE per blocked tasklet (issue 8)
C_BENCHES = ("switch", "tick")

# Targets: workload id -> max ratio ours/greenlet (issue 5).
TARGETS = {
    "pingpong": 0.6,
    "sched10": 0.25,
    "spawn_main": 0.15,
    "spawn_tasklet": 0.15,
    "gameloop": 0.35,
    "mem10k.rss": 0.75,
    "mem100k.rss": 0.75,
    "mem1m.rss": 0.75,
}
ONE_MILLION_RSS_LIMIT = 4.5 * (1 << 30)  # absolute target for 1M blocked tasklets (4.5 GiB)

FULL = {"reps": 5, "target": 0.15, "inner": 3,
        "memory": {"mem10k": 5, "mem100k": 3, "mem1m": 1, "mem100k_d10": 3}, "c_reps": 5}
QUICK = {"reps": 3, "target": 0.03, "inner": 2,
         "memory": {"mem10k": 3}, "c_reps": 3}


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# ---- environment ------------------------------------------------------------------------


def cmake_cache(build_dir, key):
    path = os.path.join(build_dir, "CMakeCache.txt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip()
    return None


def py_version(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("tools/bench: cannot run %s" % python)
    return out.stdout.strip()


def resolve(args):
    """Picks the interpreter and the build directory, builds if needed."""
    python = args.python
    build = args.build_dir
    if build is None:
        if python is None:
            build = os.path.join(REPO, "build")
        else:
            ver = py_version(python)
            build = os.path.join(REPO, "build-py" + ".".join(ver.split(".")[:2]))
    build = os.path.abspath(build)
    if python is None:
        python = cmake_cache(build, "Python3_EXECUTABLE") or "/usr/bin/python3"
    python = os.path.abspath(shutil.which(python) or python)
    pkg = os.path.join(build, "python", "scheduler")
    if not os.path.isdir(pkg) and not args.no_build:
        log("tools/bench: no build in %s; building it (tools/dev build)" % build)
        cmd = [os.path.join(REPO, "tools", "dev"), "build", "--build-dir", build, "--python", python]
        subprocess.run(cmd, check=True, stdout=sys.stderr)
    if not args.no_build and os.path.exists(os.path.join(build, "CMakeCache.txt")):
        # Keep the module (and the C benchmarks, once the top level builds them) up to date.
        for target in ("_scheduler", "switch_bench", "tick_bench"):
            r = subprocess.run(["cmake", "--build", build, "--target", target, "-j2"],
                               capture_output=True, text=True)
            if r.returncode != 0 and target == "_scheduler":
                log("tools/bench: warning: building _scheduler in %s failed; using what is there:\n%s"
                    % (build, "\n".join((r.stdout + r.stderr).strip().splitlines()[-5:])))
    cached = cmake_cache(build, "Python3_EXECUTABLE")
    if cached and os.path.realpath(cached) != os.path.realpath(python):
        if py_version(cached)[:4] != py_version(python)[:4]:
            sys.exit("tools/bench: %s was built for %s, not %s (use --build-dir)" % (build, cached, python))
    return python, build


def source_revision():
    """Short commit of the tree, '+' if runtime/ or include/ have local changes."""
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "runtime", "include", "embed"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+" if dirty else "") if rev else None
    except OSError:
        return None


def worker_env(build, impl):
    env = dict(os.environ)
    paths = [HERE]
    if impl == "ours":
        paths.append(os.path.join(build, "python"))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("PYTHONSTARTUP", None)
    return env


def probe(python, build, impl):
    """None if impl can run, else the reason it cannot."""
    mod = {"ours": "scheduler", "greenlet": "greenlet", "greenlet-chan": "greenlet",
           "asyncio": "asyncio"}[impl]
    r = subprocess.run([python, "-c", "import " + mod], env=worker_env(build, impl),
                       capture_output=True, text=True)
    if r.returncode == 0:
        return None
    last = (r.stderr.strip().splitlines() or ["?"])[-1]
    if mod == "greenlet":
        return "greenlet not importable by %s (%s); Debian's python3-greenlet serves /usr/bin/python3 only" % (
            python, last)
    return last


# ---- running ------------------------------------------------------------------------------


def run_worker(python, build, impl, workload, arg, inner, timeout):
    cmd = [python, os.path.join(HERE, "worker.py"), impl, workload, str(arg), str(inner)]
    t = time.monotonic()
    try:
        r = subprocess.run(cmd, env=worker_env(build, impl), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %ds" % timeout, "cmd": " ".join(cmd)}
    wall = time.monotonic() - t
    if r.returncode != 0:
        tail = "\n".join(r.stderr.strip().splitlines()[-6:])
        what = ("killed by signal %d" % -r.returncode) if r.returncode < 0 else ("exit %d" % r.returncode)
        return {"error": "%s: %s" % (what, tail), "cmd": " ".join(cmd)}
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no result: " + r.stdout[-300:] + r.stderr[-300:], "cmd": " ".join(cmd)}
    res["wall_s"] = wall
    return res


class Results:
    """Samples per (workload id, impl)."""

    def __init__(self):
        self.samples = {}
        self.units = {}
        self.skipped = {}
        self.errors = {}
        self.extra = {}

    def add(self, wid, impl, values, unit):
        self.samples.setdefault((wid, impl), []).extend(values)
        self.units[wid] = unit

    def skip(self, wid, impl, reason):
        self.skipped[(wid, impl)] = reason

    def error(self, wid, impl, msg):
        self.errors.setdefault((wid, impl), []).append(msg)

    def median(self, wid, impl):
        v = self.samples.get((wid, impl))
        return statistics.median(v) if v else None

    def records(self, python_version, backend):
        keys = sorted(set(self.samples) | set(self.skipped) | set(self.errors),
                      key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, IMPL_ORDER(k[1])))
        out = []
        for wid, impl in keys:
            rec = {"workload": wid, "impl": impl, "python": python_version}
            v = self.samples.get((wid, impl))
            if v:
                rec.update(median=statistics.median(v), min=min(v), max=max(v),
                           unit=self.units[wid], n=len(v))
                base = self.median(wid, "greenlet")
                if impl != "greenlet" and base:
                    rec["ratio_vs_greenlet"] = rec["median"] / base
                if impl == "ours" and backend:
                    rec["backend"] = backend
            if (wid, impl) in self.skipped:
                rec["skipped"] = self.skipped[(wid, impl)]
            if (wid, impl) in self.errors:
                rec["errors"] = self.errors[(wid, impl)]
            if (wid, impl) in self.extra:
                rec.update(self.extra[(wid, impl)])
            out.append(rec)
        return out


def IMPL_ORDER(impl):
    order = list(IMPLS) + ["asm", "ucontext", "carbon"]
    return order.index(impl) if impl in order else 99


ORDER = (list(TIMED) + [m + s for m in MEMORY for s in (".rss", ".create", ".finish", ".total")]
         + ["switch", "tick", "tick_stats"])


def run_timed(res, python, build, names, avail, cfg):
    for name in names:
        label, impls = TIMED[name]
        impls = [i for i in impls if i in avail]
        for rep in range(cfg["reps"]):
            for impl in impls:
                r = run_worker(python, build, impl, name, cfg["target"], cfg["inner"], timeout=600)
                if "error" in r:
                    log("  %-14s %-13s FAILED: %s" % (name, impl, r["error"].splitlines()[0]))
                    res.error(name, impl, r["error"])
                    continue
                if "skipped" in r:
                    res.skip(name, impl, r["skipped"])
                    continue
                res.add(name, impl, r["ns_per_op"], "ns")
                log("  %-14s %-13s rep %d: %8.1f ns/op  (%d ops, %.1fs)" % (
                    name, impl, rep + 1, statistics.median(r["ns_per_op"]), r["ops"], r["wall_s"]))


def run_memory(res, python, build, names, avail, cfg):
    for name in names:
        n = MEMORY[name]
        impls = [i for i in MEMORY_IMPLS if i in avail]
        for rep in range(cfg["memory"][name]):
            for impl in impls:
                r = run_worker(python, build, impl, "memory", n, MEMORY_DEPTH.get(name, 3),
                               timeout=1800)
                if "error" in r:
                    log("  %-14s %-13s FAILED: %s" % (name, impl, r["error"].splitlines()[0]))
                    res.error(name + ".rss", impl, r["error"])
                    continue
                per = (r["rss_blocked"] - r["rss_before"]) / n
                ok = r["finished"] == n and r["blocked"] == n and r["runcount_after"] == 1
                res.add(name + ".rss", impl, [per], "B")
                if "pte_blocked" in r:
                    pte = (r["pte_blocked"] - r["pte_before"]) / n
                    res.add(name + ".pte", impl, [pte], "B")
                    res.add(name + ".mem", impl, [per + pte], "B")
                res.add(name + ".create", impl, [r["create_s"] / n * 1e9], "ns")
                res.add(name + ".finish", impl, [r["finish_s"] / n * 1e9], "ns")
                res.add(name + ".total", impl, [float(r["rss_blocked"])], "B")
                extra = res.extra.setdefault((name + ".rss", impl), {"all_finished": True})
                extra["all_finished"] = extra["all_finished"] and ok
                extra["peak_rss"] = max(extra.get("peak_rss", 0), r["peak_rss"])
                if "stack_stats" in r:
                    extra["stack_stats"] = r["stack_stats"]
                if not ok:
                    res.error(name + ".rss", impl, "blocked %d, finished %d of %d, run count after %d" % (
                        r["blocked"], r["finished"], n, r["runcount_after"]))
                log("  %-14s %-13s rep %d: %7.0f B/tasklet, create %.2f us, finish %.2f us, "
                    "RSS %.2f GiB, %s" % (name, impl, rep + 1, per, r["create_s"] / n * 1e6,
                                          r["finish_s"] / n * 1e6, r["rss_blocked"] / (1 << 30),
                                         "all finished" if ok else "NOT ALL FINISHED"))


# ---- the C benchmarks ---------------------------------------------------------------------------


def c_binary(build, name, sources, extra_flags=()):
    """The CMake-built binary if there is one, else a direct gcc build."""
    for path in (os.path.join(build, "bin", name), os.path.join(build, "tools", "benchmarks", name)):
        if os.access(path, os.X_OK):
            return path, None
    out_dir = os.path.join(build, "bench")
    os.makedirs(out_dir, exist_ok=True)
    exe = os.path.join(out_dir, name)
    srcs = [os.path.join(REPO, s) for s in sources]
    if os.path.exists(exe) and all(os.path.getmtime(exe) >= os.path.getmtime(s) for s in srcs):
        return exe, None
    cc = os.environ.get("CC", "gcc")
    cmd = [cc, "-O2", "-g", "-std=gnu11", "-I", os.path.join(REPO, "runtime"), "-o", exe] + srcs + \
        list(extra_flags) + ["-lpthread"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, "build failed: " + " ".join(cmd) + "\n" + r.stderr[-1000:]
    return exe, None


def run_c(res, build, names, cfg):
    if "switch" in names:
        exe, err = c_binary(build, "switch_bench", [
            "tools/benchmarks/switch_bench.c", "runtime/switch.c", "runtime/stack.c",
            "runtime/switch_x86_64.S"])
        if err:
            res.error("switch", "asm", err)
            log("  switch: " + err.splitlines()[0])
        else:
            for rep in range(cfg["c_reps"]):
                r = subprocess.run([exe], capture_output=True, text=True, timeout=300)
                if r.returncode != 0:
                    res.error("switch", "asm", "switch_bench failed: " + r.stderr[-500:])
                    break
                for line in r.stdout.splitlines():
                    d = json.loads(line)
                    res.add("switch", d["impl"], [d["ns_per_switch"]], "ns")
                    log("  switch         %-13s rep %d: %6.2f ns/switch" % (d["impl"], rep + 1, d["ns_per_switch"]))
    if "tick" in names:
        exe = None
        for path in (os.path.join(build, "bin", "tick_bench"),
                     os.path.join(build, "tools", "benchmarks", "tick_bench")):
            if os.access(path, os.X_OK):
                exe = path
        if exe is None:
            if not os.path.exists(os.path.join(REPO, "include", "carbon", "carbon.h")):
                why = "embedding API (include/carbon/carbon.h) not there yet"
            else:
                why = ("tick_bench not built: add `add_subdirectory(tools/benchmarks)` to the "
                       "top-level CMakeLists.txt")
            res.skip("tick", "ours", why)
            log("  tick: skipped (%s)" % why)
            return
        for rep in range(cfg["c_reps"]):
            # The same frame with the tick's slice off: the cost of preemption
            # and per-tasklet timing in ticks (docs/embedding.md).
            r = subprocess.run([exe, "200000", "noslice"], capture_output=True, text=True, timeout=300,
                               env=worker_env(build, "ours"))
            for line in r.stdout.splitlines() if r.returncode == 0 else []:
                if line.startswith("{"):
                    d = json.loads(line)
                    if "ns_per_wakeup" in d:
                        res.add("tick_frame_noslice", "ours", [d["ns_per_wakeup"]], "ns")
            r = subprocess.run([exe], capture_output=True, text=True, timeout=300,
                               env=worker_env(build, "ours"))
            if r.returncode != 0:
                res.error("tick", "ours", "tick_bench failed: " + r.stderr[-500:])
                break
            for line in r.stdout.splitlines():
                if line.startswith("{"):
                    d = json.loads(line)
                    res.add("tick", "ours", [d["ns_per_tick"]], "ns")
                    res.add("tick_stats", "ours", [d["ns_per_tick_stats"]], "ns")
                    if "ns_per_wakeup" in d:
                        res.add("tick_frame", "ours", [d["ns_per_wakeup"]], "ns")
                    log("  tick           ours          rep %d: %6.1f ns/tick (%.1f with stats), "
                        "%.1f ns/wakeup in a 10k frame" % (
                            rep + 1, d["ns_per_tick"], d["ns_per_tick_stats"], d.get("ns_per_wakeup", 0)))


# ---- reporting ------------------------------------------------------------------------------------


def fmt_time(ns):
    if ns is None:
        return ""
    if ns < 1000:
        return "%.3g ns" % ns if ns < 100 else "%.0f ns" % ns
    if ns < 1e6:
        return "%.3g µs" % (ns / 1e3)
    return "%.3g ms" % (ns / 1e6)


def fmt_bytes(b):
    if b is None:
        return ""
    if b >= 1 << 30:
        return "%.2f GiB" % (b / (1 << 30))
    if b >= 1 << 20:
        return "%.1f MiB" % (b / (1 << 20))
    return "%.2f KiB" % (b / 1024)


def row_specs():
    """(id, label, baseline impl, column impls) for the table, in order."""
    rows = []
    for name, (label, impls) in TIMED.items():
        rows.append((name, label, "greenlet"))
        if name == "pingpong":
            rows.append(("pingpong@chan", "ping-pong, both over channels (greenlet: Python channel)",
                         "greenlet-chan"))
    for name, n in MEMORY.items():
        k = {10_000: "10k", 100_000: "100k", 1_000_000: "1M"}[n]
        if name in MEMORY_DEPTH:
            k += " %d frames deep" % MEMORY_DEPTH[name]
        rows.append((name + ".rss", "%s blocked: RSS per tasklet" % k, "greenlet"))
        rows.append((name + ".pte", "%s blocked: page tables (VmPTE) per tasklet" % k, "greenlet"))
        rows.append((name + ".mem", "%s blocked: RSS + page tables per tasklet" % k, "greenlet"))
        rows.append((name + ".create", "%s blocked: create and block, per tasklet" % k, "greenlet"))
        rows.append((name + ".finish", "%s blocked: unblock and finish, per tasklet" % k, "greenlet"))
        if n == 1_000_000:
            rows.append((name + ".total", "1M blocked: process RSS", "greenlet"))
    rows.append(("switch@asm", "C context switch, asm backend", None))
    rows.append(("switch@ucontext", "C context switch, ucontext backend", None))
    rows.append(("tick", "empty carbon_tick()", None))
    rows.append(("tick_stats", "empty carbon_tick(), filling stats", None))
    rows.append(("tick_frame", "carbon_tick() frame waking 10k tasklets (pref. 0 channel), per wakeup", None))
    rows.append(("tick_frame_noslice", "the same frame, slice preemption off (slice_ns < 0)", None))
    return rows


def table(res, meta):
    lines = []
    lines.append("| workload | ours | greenlet | asyncio | ours / greenlet | target | met |")
    lines.append("|---|---:|---:|---:|---:|---:|:---:|")
    notes = []
    verdicts = []
    for rid, label, base_impl in row_specs():
        wid = rid.split("@")[0]
        if rid.startswith("switch@"):
            impl = rid.split("@")[1]
            m = res.median("switch", impl)
            if m is None and ("switch", "asm") not in res.errors:
                continue
            val = fmt_time(m) if m is not None else "failed"
            lines.append("| %s | %s |  |  |  |  |  |" % (label, val))
            continue
        if rid in ("tick_stats", "tick_frame", "tick_frame_noslice"):
            m = res.median(rid, "ours")
            if m is not None:
                lines.append("| %s | %s |  |  |  |  |  |" % (label, fmt_time(m)))
            continue
        if rid == "tick":
            m = res.median("tick", "ours")
            if m is not None:
                lines.append("| %s | %s |  |  |  |  |  |" % (label, fmt_time(m)))
            elif ("tick", "ours") in res.skipped:
                lines.append("| %s | skipped: %s |  |  |  |  |  |" % (label, res.skipped[("tick", "ours")]))
            elif ("tick", "ours") in res.errors:
                lines.append("| %s | failed |  |  |  |  |  |" % label)
            continue
        ours = res.median(wid, "ours")
        base = res.median(wid, base_impl)
        asy = res.median(wid, "asyncio") if rid == wid else None
        if ours is None and base is None and (wid, "ours") not in res.errors:
            continue
        fmt = fmt_bytes if wid.endswith((".rss", ".pte", ".mem", ".total")) else fmt_time
        cells = []
        for impl, v in (("ours", ours), (base_impl, base), ("asyncio", asy)):
            if v is not None:
                cells.append(fmt(v))
            elif (wid, impl) in res.errors:
                cells.append("FAILED")
            elif (wid, impl) in res.skipped:
                cells.append("skipped")
            else:
                cells.append("")
        ratio = ours / base if ours is not None and base else None
        target = TARGETS.get(rid)
        tgt_cell, met = "", ""
        if wid.endswith(".mem") and wid[:-4] not in MEMORY_DEPTH:
            # Issue 8: a blocked tasklet costs at most 2 KiB of RSS + page tables
            # (three frames deep; deeper rows have no target).
            tgt_cell = "≤ 2 KiB"
            if ours is not None:
                met = "yes" if ours <= MEM_PER_TASKLET_LIMIT else "**no**"
                verdicts.append((label, met))
        elif wid == "mem1m.total":
            tgt_cell = "≤ 4.5 GiB"
            if ours is not None:
                fin = res.extra.get(("mem1m.rss", "ours"), {}).get("all_finished")
                met = "yes" if ours <= ONE_MILLION_RSS_LIMIT and fin else "**no**"
                verdicts.append((label, met))
            elif ("mem1m.rss", "ours") in res.errors:
                met = "**no**"
                verdicts.append((label, met))
        elif target is not None:
            tgt_cell = "≤ %.2g×" % target
            if ratio is not None:
                met = "yes" if ratio <= target else "**no**"
                verdicts.append((label, met))
            elif (wid, "ours") in res.errors:
                met = "**no**"
                verdicts.append((label, met))
            else:
                met = "n/a"
        if wid.endswith(".rss"):
            for impl in ("ours", "greenlet", "asyncio"):
                ex = res.extra.get((wid, impl))
                if ex and not ex.get("all_finished", True):
                    notes.append("%s, %s: not all tasklets were unblocked and finished" % (label, impl))
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            label, cells[0], cells[1], cells[2], "%.2f×" % ratio if ratio is not None else "",
            tgt_cell, met))
    head = ("Python %s, %s backend, %s build of %s; medians of %s; times are per operation (lower is "
            "better); ratios are ours / greenlet medians of this run." % (
                meta["python_version"], meta.get("backend") or "?", meta.get("build_type") or "?",
                meta.get("revision") or "?", meta["runs"]))
    out = [head, ""] + lines
    if notes:
        out += [""] + ["- " + n for n in notes]
    return "\n".join(out), verdicts


# ---- main ------------------------------------------------------------------------------------------


def parse(argv):
    ap = argparse.ArgumentParser(prog="tools/bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run for development (< 1 min)")
    ap.add_argument("--plot", action="store_true", help="write a chart (default docs/performance.png)")
    ap.add_argument("--plot-file", default=DEFAULT_PNG, help="where --plot writes the PNG")
    ap.add_argument("--python", help="interpreter (default: the one the build was configured for)")
    ap.add_argument("--build-dir", help="build directory (default: build, or build-pyX.Y with --python)")
    ap.add_argument("--no-build", action="store_true", help="never build, fail instead")
    ap.add_argument("--only", help="comma-separated workload names or prefixes "
                    "(pingpong, sched10, sched1000, spawn_main, spawn_tasklet, fanin, gameloop, "
                    "mem10k, mem100k, mem1m, mem100k_d10, switch, tick; 'timed', 'memory', 'c'; "
                    "'net': the echo servers of docs/performance.md, only when named)")
    ap.add_argument("--impl", help="comma-separated implementations (ours, greenlet, greenlet-chan, asyncio)")
    ap.add_argument("--reps", type=int, help="processes per (workload, implementation)")
    ap.add_argument("--json", metavar="FILE", help="write the JSON lines to FILE instead of stdout")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    ap.add_argument("--load", metavar="FILE", help="re-report (table, --plot) from a --json file; runs nothing")
    ap.add_argument("--compare", metavar="FILE", nargs="+",
                    help="table of ours and asyncio across several --json files (e.g. one per "
                    "Python version); runs nothing")
    ap.add_argument("--profile", metavar="WORKLOAD",
                    help="instructions per operation by function, under callgrind (valgrind), for "
                    "a timed workload on --impl (default ours); 'net' or 'net:4096': per echoed message "
                    "of the --only net servers named by --impl (default carbon); runs nothing else")
    return ap.parse_args(argv)


def select(only):
    all_names = list(TIMED) + list(MEMORY) + list(C_BENCHES)
    if not only:
        return all_names
    picked = []
    for tok in only.split(","):
        tok = tok.strip()
        group = {"timed": list(TIMED), "memory": list(MEMORY), "c": list(C_BENCHES)}.get(tok)
        cand = group or [n for n in all_names if n == tok] or [n for n in all_names if n.startswith(tok)]
        if not cand:
            sys.exit("tools/bench: unknown workload %r" % tok)
        picked += [c for c in cand if c not in picked]
    return picked


def load_results(path):
    res = Results()
    meta = {"python_version": "?", "backend": None, "runs": "?"}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = json.loads(line)
            if d.get("meta"):
                meta.update(d)
                continue
            key = (d["workload"], d["impl"])
            if "samples" in d:
                res.samples[key] = d["samples"]
                res.units[d["workload"]] = d["unit"]
            if "skipped" in d:
                res.skipped[key] = d["skipped"]
            if "errors" in d:
                res.errors[key] = d["errors"]
            ex = {k: d[k] for k in ("all_finished", "peak_rss", "stack_stats") if k in d}
            if ex:
                res.extra[key] = ex
            meta["python_version"] = d.get("python", meta["python_version"])
            meta["backend"] = d.get("backend", meta["backend"])
    return res, meta


def compare_table(paths):
    runs = [load_results(p) for p in paths]
    head = "| workload | " + " | ".join("ours %s" % m["python_version"] for _, m in runs) + " | " + \
        " | ".join("asyncio %s" % m["python_version"] for _, m in runs) + " |"
    lines = [head, "|---|" + "---:|" * (2 * len(runs))]
    for rid, label, _ in row_specs():
        wid = rid.split("@")[0]
        if rid != wid and not rid.startswith("switch@"):
            continue
        impl = rid.split("@")[1] if rid.startswith("switch@") else "ours"
        fmt = fmt_bytes if wid.endswith((".rss", ".pte", ".mem", ".total")) else fmt_time
        ours = [r.median(wid, impl) for r, _ in runs]
        asy = [r.median(wid, "asyncio") for r, _ in runs]
        if all(v is None for v in ours):
            continue
        lines.append("| %s | %s | %s |" % (label, " | ".join(fmt(v) if v is not None else "" for v in ours),
                                           " | ".join(fmt(v) if v is not None else "" for v in asy)))
    return "\n".join(lines)


def plot(res, meta, path):
    data = {"python": meta["python_version"], "backend": meta.get("backend"), "rows": []}
    for rid, label, base_impl in row_specs():
        wid = rid.split("@")[0]
        if rid.startswith("switch") or rid == "tick" or wid.endswith(".total"):
            continue
        base = res.median(wid, base_impl)
        if not base:
            continue
        row = {"label": label, "target": TARGETS.get(rid)}
        for impl in ("ours", "asyncio"):
            v = res.median(wid, impl)
            if v is not None and not (impl == "asyncio" and rid != wid):
                row[impl] = v / base
        data["rows"].append(row)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(data, f)
        tmp = f.name
    try:
        for py in (sys.executable, "/usr/bin/python3"):
            if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0:
                r = subprocess.run([py, os.path.join(HERE, "plot.py"), tmp, path])
                if r.returncode == 0:
                    log("tools/bench: wrote %s" % path)
                    return True
                break
        log("tools/bench: --plot needs matplotlib (Debian: python3-matplotlib)")
        return False
    finally:
        os.unlink(tmp)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.profile and args.profile.split(":")[0] == "net":
        # An echo server of --only net under callgrind (net_profile.py):
        # --profile net or net:4096, --impl carbon,patched,asyncio,uvloop,gevent.
        import net_profile
        _, build = resolve(args)
        cmake = ["cmake", "--build", build, "--target", "net_loadgen", "carbon", "-j2"]
        subprocess.run(cmake, check=True, stdout=subprocess.DEVNULL)
        size = int(args.profile.split(":")[1]) if ":" in args.profile else 64
        for impl in (args.impl or "carbon").split(","):
            net_profile.profile(build, impl, size)
            sys.stdout.write("\n")
        return 0
    if args.profile:
        import callgrind_profile as prof
        if args.profile not in prof.SIZES:
            sys.exit("tools/bench: --profile takes one of %s" % ", ".join(prof.SIZES))
        python, build = resolve(args)
        for impl in (args.impl or "ours").split(","):
            prof.profile(python, worker_env(build, impl), os.path.join(HERE, "worker.py"), impl,
                         args.profile)
            sys.stdout.write("\n")
        return 0
    if args.compare:
        sys.stdout.write(compare_table(args.compare) + "\n")
        return 0
    if args.only and "net" in [t.strip() for t in args.only.split(",")]:
        # The network servers (issue 11): their own table (netbench.py).
        import netbench
        _, build = resolve(args)
        cmake = ["cmake", "--build", build, "--target", "net_loadgen", "carbon", "-j2"]
        subprocess.run(cmake, check=True, stdout=subprocess.DEVNULL)
        _, text = netbench.main(build, quick=args.quick, reps=args.reps)
        sys.stdout.write("\n" + text + "\n")
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(text + "\n")
        rest = [t for t in args.only.split(",") if t.strip() != "net"]
        if not rest:
            return 0
        args.only = ",".join(rest)
    if args.load:
        res, meta = load_results(args.load)
    else:
        cfg = dict(QUICK if args.quick else FULL)
        if args.reps:
            cfg["reps"] = args.reps
            cfg["c_reps"] = args.reps
            cfg["memory"] = {k: min(v, args.reps) for k, v in cfg["memory"].items()}
        names = select(args.only)
        python, build = resolve(args)
        version = py_version(python)
        wanted = [i for i in IMPLS if not args.impl or i in args.impl.split(",")]
        avail = []
        res = Results()
        for impl in wanted:
            why = probe(python, build, impl)
            if why:
                log("tools/bench: %s rows skipped: %s" % (impl, why))
                for n in list(TIMED) + [m + ".rss" for m in MEMORY]:
                    res.skip(n, impl, why)
            else:
                avail.append(impl)
        backend = None
        if "ours" in avail:
            r = subprocess.run([python, "-c", "import scheduler; print(scheduler.switch_backend)"],
                               env=worker_env(build, "ours"), capture_output=True, text=True)
            backend = r.stdout.strip() or None
        log("tools/bench: Python %s (%s), build %s, backend %s, %s run" % (
            version, python, build, backend, "quick" if args.quick else "full"))
        t0 = time.monotonic()
        run_timed(res, python, build, [n for n in names if n in TIMED], avail, cfg)
        mem_names = [n for n in names if n in MEMORY and n in cfg["memory"]]
        if args.quick and args.only:  # an explicit request runs even in quick mode
            mem_names = [n for n in names if n in MEMORY]
            for n in mem_names:
                cfg["memory"].setdefault(n, 1)
        run_memory(res, python, build, mem_names, avail, cfg)
        run_c(res, build, [n for n in names if n in C_BENCHES], cfg)
        meta = {"meta": True, "python_version": version, "python": python, "build": build,
                "backend": backend, "quick": args.quick, "elapsed_s": round(time.monotonic() - t0, 1),
                "revision": source_revision(), "build_type": cmake_cache(build, "CMAKE_BUILD_TYPE"),
                "runs": "%d processes per row (memory: %s)" % (
                    cfg["reps"], ", ".join("%s %d" % kv for kv in cfg["memory"].items())),
                "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        recs = res.records(version, backend)
        # Raw samples ride along so that --load can re-report.
        for rec in recs:
            v = res.samples.get((rec["workload"], rec["impl"]))
            if v:
                rec["samples"] = v
        lines = [json.dumps(meta)] + [json.dumps(r) for r in recs]
        if args.json:
            with open(args.json, "w") as f:
                f.write("\n".join(lines) + "\n")
            log("tools/bench: wrote %s" % args.json)
        else:
            sys.stdout.write("\n".join(lines) + "\n")
        log("tools/bench: done in %.0fs" % (time.monotonic() - t0))
    text, verdicts = table(res, meta)
    sys.stdout.write("\n" + text + "\n")
    if verdicts:
        missed = [label for label, met in verdicts if met != "yes"]
        sys.stdout.write("\ntargets met: %d of %d%s\n" % (
            len(verdicts) - len(missed), len(verdicts),
            ("; missed: " + "; ".join(missed)) if missed else ""))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.plot:
        plot(res, meta, args.plot_file)
    failed = any(impl == "ours" for (_, impl) in res.errors)
    return 1 if failed else 0
