"""The server with 200 bots for 5 s on loopback: every bot connects and logs in,
nothing is lost, duplicated or unexpected; SIGINT then saves every player and
the server exits 0."""
import os
import signal
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness  # noqa: E402


def main():
    bin_dir = harness.bin_dir_from_argv()
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "game.db")
        with harness.Server(bin_dir, db) as srv:
            rc, res, out = harness.run_bots(bin_dir, srv.port, bots=200, seconds=5)
            print(out)
            assert res, "no result line from the bots"
            assert res["connected"] == 200 and res["logged_in"] == 200, res
            assert res["lost"] == 0, "lost %d" % res["lost"]
            assert res["duplicated"] == 0, "duplicated %d" % res["duplicated"]
            assert res["unexpected"] == 0, "unexpected %d" % res["unexpected"]
            assert rc == 0, out
            assert res["msgs_in"] > 200 * 5 * 5, res   # snapshots at least
            st = srv.stats()
            assert st["counters"]["logins"] == 200, st
            assert st["players"] == 0, st               # every bot quit
            code = srv.stop(signal.SIGINT)
            print(srv.output())
            assert code == 0, "exit code %d" % code
            summ = srv.summary()
            assert summ["frames"] > 100, summ
            print("tick p50 %.3f ms, p99 %.3f ms, max %.3f ms, budget %.1f ms"
                  % (summ["tick_p50_ms"], summ["tick_p99_ms"], summ["tick_max_ms"], summ["budget_ms"]))
        con = sqlite3.connect(db)
        n = con.execute("SELECT COUNT(*) FROM players WHERE name LIKE 'bot%'").fetchone()[0]
        con.close()
        assert n == 200, "%d players stored" % n
    print("ok")


if __name__ == "__main__":
    main()
