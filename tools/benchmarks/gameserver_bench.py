"""`tools/bench --only gameserver`: the sample game server under 100, 1000 and
3000 bots (samples/game_server; the bots are a separate process).

    tools/bench --only gameserver [--bots 100,1000,3000] [--seconds 20] [--build-dir build]
                                  [--json FILE] [--markdown FILE]

Per size: a fresh server (fresh database), the bots for T seconds, the
server's own tick statistics (wall and CPU time of carbon_tick against the
16 ms budget of a 33.3 ms frame), /stats.json sampled once a second for peak
RSS + page tables, and the bots' counts. RSS per player = (peak RSS - RSS
before the bots) / bots. Target at 1000 bots: 0 lost, tick p99 within budget.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "samples", "game_server"))
import harness  # noqa: E402


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def one(bin_dir, n, seconds):
    load = open("/proc/loadavg").read().split()[0]     # the machine's, as the row starts
    run = harness.run_load(bin_dir, n, seconds, timeout=seconds + 180, settle=1.0)
    res, s, code, rc = run["result"], run["summary"], run["server_exit"], run["bots_exit"]
    base, peak = run["rss_base_kib"], run["peak"]
    if not res or not s:
        raise RuntimeError("no result for %d bots:\n%s" % (n, run["output"]))
    return {
        "workload": "gameserver", "bots": n, "seconds": res["seconds"], "loadavg": float(load),
        "logged_in": res["logged_in"], "msgs_per_s": round(res["in_per_s"] + res["out_per_s"]),
        "in_per_s": res["in_per_s"], "out_per_s": res["out_per_s"],
        "lost": res["lost"], "duplicated": res["duplicated"], "unexpected": res["unexpected"],
        "rtt_move_p50_ms": res["rtt_move_p50_ms"], "rtt_move_p99_ms": res["rtt_move_p99_ms"],
        "rtt_chat_p50_ms": res["rtt_chat_p50_ms"], "rtt_chat_p99_ms": res["rtt_chat_p99_ms"],
        "budget_ms": s["budget_ms"], "tick_p50_ms": s["tick_p50_ms"], "tick_p99_ms": s["tick_p99_ms"],
        "tick_max_ms": s["tick_max_ms"], "cpu_p50_ms": s["cpu_p50_ms"], "cpu_p99_ms": s["cpu_p99_ms"],
        "runq_wait_p50_ms": s.get("runq_wait_p50_ms"), "runq_wait_p99_ms": s.get("runq_wait_p99_ms"),
        "unqueued_p50_ms": s.get("unqueued_p50_ms"), "unqueued_p99_ms": s.get("unqueued_p99_ms"),
        "over_budget": s["over_budget"], "frames": s["frames"], "late": s["late"],
        "rss_base_kib": base, "rss_peak_kib": peak["rss_kib"],
        "rss_per_player_kib": round((peak["rss_kib"] - base) / n, 1),
        "tasklets_peak": peak["tasklets"], "server_exit": code, "bots_exit": rc,
    }


def table(rows):
    out = ["| bots | logged in | messages/s (in+out) | lost | dup | tick p50 / p99 / max (ms), budget 16 | "
           "tick CPU p50 / p99 (ms) | tick minus run-queue wait p50 / p99 (ms) | ticks over budget | "
           "RSS per player | move RTT p50 / p99 (ms) | target |",
           "|---:|---:|---:|---:|---:|---|---|---|---:|---:|---|---|"]
    for r in rows:
        target = ""
        if r["bots"] == 1000:
            target = "0 lost: %s; tick p99 <= budget: %s (without run-queue wait: %s)" % (
                "met" if r["lost"] == 0 else "MISSED",
                "met" if r["tick_p99_ms"] <= r["budget_ms"] else "MISSED",
                "met" if (r["unqueued_p99_ms"] or 0) <= r["budget_ms"] else "MISSED")
        out.append("| %d | %d | %d | %d | %d | %.2f / %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %d of %d | "
                   "%.1f KiB | %.0f / %.0f | %s |" % (
            r["bots"], r["logged_in"], r["msgs_per_s"], r["lost"], r["duplicated"], r["tick_p50_ms"],
            r["tick_p99_ms"], r["tick_max_ms"], r["cpu_p50_ms"], r["cpu_p99_ms"], r["unqueued_p50_ms"],
            r["unqueued_p99_ms"], r["over_budget"], r["frames"],
            r["rss_per_player_kib"], r["rtt_move_p50_ms"], r["rtt_move_p99_ms"], target))
    return "\n".join(out)


def main(argv):
    ap = argparse.ArgumentParser(prog="tools/bench --only gameserver")
    ap.add_argument("--only")
    ap.add_argument("--bots", default="100,1000,3000")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    a, _unknown = ap.parse_known_args(argv)
    subprocess.run(["cmake", "--build", a.build_dir, "--target", "game_server", "game_bots"],
                   check=True, stdout=subprocess.DEVNULL)
    bin_dir = os.path.join(a.build_dir, "bin")
    rows = []
    for n in [int(x) for x in a.bots.split(",")]:
        log("gameserver: %d bots for %g s ..." % (n, a.seconds))
        r = one(bin_dir, n, a.seconds)
        log("gameserver: " + json.dumps(r))
        rows.append(r)
    meta = {"meta": True, "workload": "gameserver", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "loadavg": open("/proc/loadavg").read().split()[:3], "cpus": os.cpu_count()}
    lines = [json.dumps(meta)] + [json.dumps(r) for r in rows]
    if a.json:
        with open(a.json, "w") as f:
            f.write("\n".join(lines) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    text = table(rows)
    sys.stdout.write("\n" + text + "\n")
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")
    bad = [r for r in rows if r["lost"] or r["duplicated"] or r["server_exit"]]
    return 1 if bad else 0
