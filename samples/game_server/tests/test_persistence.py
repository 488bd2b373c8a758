"""Persistence: a restart restores every player (position and score);
SIGINT saves and exits 0; after kill -9 the database opens cleanly and at
most the last save interval of progress is lost."""
import os
import signal
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness  # noqa: E402

SAVE_INTERVAL = 1.0


def walk(c, steps):
    """Moves right/down as the walls allow; returns the positions after each move."""
    positions = []
    mid = 0
    for i in range(steps):
        mid += 1
        dx, dy = (1, 0) if i % 2 == 0 else (0, 1)
        c.send({"t": "move", "dx": dx, "dy": dy, "id": mid})
        while True:
            m = c.recv()
            if m["t"] == "snap" and m["ack"] == mid:
                positions.append(tuple(m["you"]))
                break
    return positions


def state_of(port, name):
    c = harness.Client(port)
    w = c.login(name)
    c.send({"t": "quit"})
    c.expect("bye")
    c.close()
    return tuple(w["pos"]), w["score"]


def main():
    bin_dir = harness.bin_dir_from_argv()
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "game.db")
        args = ("--save-interval", SAVE_INTERVAL)

        # 1. Three players play, two log out, one stays; SIGINT saves all three.
        with harness.Server(bin_dir, db, *args) as srv:
            final = {}
            online = None
            for name in ("alice", "bob", "carol"):
                c = harness.Client(srv.port)
                w = c.login(name)
                assert w["score"] == 0
                pos = walk(c, 6)
                final[name] = pos[-1]
                if name == "carol":
                    online = c
                else:
                    c.send({"t": "quit"})
                    c.expect("bye")
                    c.close()
            assert srv.stop(signal.SIGINT) == 0, srv.output()
            assert online.expect("bye", reason="shutdown")
            online.close()
            assert "players saved" in srv.output(), srv.output()

        # 2. A restart restores each of them.
        with harness.Server(bin_dir, db, *args) as srv:
            assert "3 players stored" in srv.output(), srv.output()
            for name in ("alice", "bob", "carol"):
                pos, score = state_of(srv.port, name)
                assert pos == final[name], (name, pos, final[name])
                assert score > 0, (name, score)

            # 3. kill -9 mid-game: moves older than one save interval survive.
            c = harness.Client(srv.port)
            c.login("dave")
            early = walk(c, 5)
            time.sleep(SAVE_INTERVAL * 2 + 0.5)   # two save rounds pass
            late = walk(c, 5)                        # may be lost
            srv.proc.kill()
            srv.proc.wait()
            c.close()

        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        with harness.Server(bin_dir, db, *args) as srv:
            pos, _ = state_of(srv.port, "dave")
            assert pos == early[-1] or pos in late, (pos, early, late)
            for name in ("alice", "bob", "carol"):
                assert state_of(srv.port, name)[0] == final[name]
            assert srv.stop(signal.SIGTERM) == 0, srv.output()
    print("ok")


if __name__ == "__main__":
    main()
