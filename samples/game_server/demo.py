"""`tools/dev demo`: the game server with 200 bots for ~15 s, then its summary.

    python3 samples/game_server/demo.py [--bin-dir DIR] [--bots N] [--seconds T] [--keep]

Starts build/bin/game_server on a free loopback port (a fresh database in a
temporary directory), prints the dashboard address, runs build/bin/game_bots
(a separate process) against it, samples /stats.json once a second, stops the
server with SIGINT and prints one summary. --keep leaves the server running
after the bots until Ctrl-C (to look at the dashboard). Exit status 0 when
nothing was lost, duplicated or unexpected and the server exited 0."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=harness.bin_dir_from_argv())
    ap.add_argument("--bots", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    def ready(srv):
        for line in srv.lines:
            sys.stdout.write(line)
        print("demo: dashboard at http://127.0.0.1:%d/ (stats: /stats.json)" % srv.port)
        print("demo: %d bots for %g s ..." % (a.bots, a.seconds), flush=True)

    def bots_done(srv, out):
        sys.stdout.write("".join(l for l in out.splitlines(True) if not l.startswith("bots: result")))
        if a.keep:
            print("demo: server still running at http://127.0.0.1:%d/ - Ctrl-C to stop" % srv.port)
            try:
                srv.proc.wait()
            except KeyboardInterrupt:
                pass

    run = harness.run_load(a.bin_dir, a.bots, a.seconds, on_ready=ready, on_bots_done=bots_done)
    for line in run["lines"]:
        if line.startswith("game_server: s"):
            sys.stdout.write(line)
    rc, res, out, code, s, peak = (run["bots_exit"], run["result"], run["output"], run["server_exit"],
                                   run["summary"], run["peak"])
    if not res or not s:
        print("demo: FAILED (no result)\n" + out)
        return 1
    print()
    print("=== demo summary ===")
    print("connections      %d of %d bots logged in" % (res["logged_in"], res["bots"]))
    print("messages/s       %.0f to the bots, %.0f from them" % (res["in_per_s"], res["out_per_s"]))
    print("lost messages    %d   (duplicated %d, unexpected %d)"
          % (res["lost"], res["duplicated"], res["unexpected"]))
    print("round trip       move p50 %.1f ms p99 %.1f ms (waits for the 10 Hz world tick), "
          "chat p50 %.1f ms p99 %.1f ms"
          % (res["rtt_move_p50_ms"], res["rtt_move_p99_ms"], res["rtt_chat_p50_ms"], res["rtt_chat_p99_ms"]))
    print("frame (tick)     p50 %.2f ms, p99 %.2f ms, max %.2f ms; budget %.1f ms of a 33.3 ms frame "
          "(%s; %d of %d ticks over)"
          % (s["tick_p50_ms"], s["tick_p99_ms"], s["tick_max_ms"], s["budget_ms"],
             "p99 within budget" if s["tick_p99_ms"] <= s["budget_ms"] else "p99 OVER budget",
             s["over_budget"], s["frames"]))
    print("tick CPU time    p50 %.2f ms, p99 %.2f ms, max %.2f ms (the host thread's own CPU time in the tick)"
          % (s["cpu_p50_ms"], s["cpu_p99_ms"], s["cpu_max_ms"]))
    print("run-queue wait   p50 %.2f ms, p99 %.2f ms of the tick waiting for a CPU (other processes); "
          "tick without it p50 %.2f ms, p99 %.2f ms"
          % (s["runq_wait_p50_ms"], s["runq_wait_p99_ms"], s["unqueued_p50_ms"], s["unqueued_p99_ms"]))
    print("live tasklets    %d at peak (%d players)" % (peak["tasklets"], peak["players"]))
    print("RSS              %.1f MiB at peak (RSS + page tables)" % (peak["rss_kib"] / 1024))
    print("server exit      %d (SIGINT: every player saved)" % code)
    ok = rc == 0 and code == 0 and res["lost"] == 0 and res["duplicated"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
