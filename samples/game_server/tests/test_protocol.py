"""The protocol's other paths: A* paths from the path worker (over the
protocol and as a function), local chat reaching only players in range and
global chat everyone, NPCs wandering (their path requests are served), and the
welcome's fields."""
import os
import sys
import tempfile
import time
from collections import deque

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "python", "gameserver"))
import harness  # noqa: E402
import world  # noqa: E402


def bfs_len(start, goal):
    prev = {start}
    todo = deque([(start, 0)])
    while todo:
        (x, y), d = todo.popleft()
        if (x, y) == goal:
            return d
        for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if n not in world.WALLS and n not in prev:
                prev.add(n)
                todo.append((n, d + 1))
    return None


def check_path(path, start, goal):
    assert path[0] == list(start) and path[-1] == list(goal), (path[:2], path[-2:])
    for (ax, ay), (bx, by) in zip(path, path[1:]):
        assert abs(ax - bx) + abs(ay - by) == 1 and (bx, by) not in world.WALLS


def test_astar():
    start = world.spawn_cell("a")
    for seed in ("b", "c", "d", "e"):
        goal = world.spawn_cell(seed)
        path = world.astar(start, goal)
        check_path(path, start, goal)
        assert len(path) - 1 == bfs_len(start, goal), seed     # shortest
    wall = next(iter(world.WALLS))
    assert world.astar(start, wall) == []


def far_apart_names():
    """Two names whose spawn cells are out of each other's local chat range."""
    a = world.spawn_cell("near0")
    for i in range(1000):
        b = world.spawn_cell("far%d" % i)
        if abs(a[0] - b[0]) > 3 * world.AOI and abs(a[1] - b[1]) > 3 * world.AOI:
            return "near0", "far%d" % i
    raise AssertionError("no two distant spawns")


def main():
    test_astar()
    bin_dir = harness.bin_dir_from_argv()
    with tempfile.TemporaryDirectory() as tmp:
        with harness.Server(bin_dir, os.path.join(tmp, "game.db"), "--npcs", 20) as srv:
            n1, n2 = far_apart_names()
            a, b = harness.Client(srv.port), harness.Client(srv.port)
            wa, wb = a.login(n1), b.login(n2)
            for w in (wa, wb):
                assert w["size"] == world.SIZE and w["aoi"] == world.AOI and w["hz"] == 10
            # A path over the protocol, computed by the worker thread.
            goal = list(world.spawn_cell("somewhere"))
            a.send({"t": "path", "to": goal})
            p = a.expect("path", skip=("snap", "chat"))
            check_path(p["path"], tuple(wa["pos"]), tuple(goal))
            a.send({"t": "path", "to": [0, 0]})                       # a wall
            assert a.expect("path", skip=("snap", "chat"))["path"] == []
            # Local chat stays in range; global reaches the far player.
            a.send({"t": "chat", "scope": "local", "text": "psst", "id": 1})
            assert a.expect("sent", skip=("snap", "chat"))["to"] == 1  # only the sender
            a.send({"t": "chat", "scope": "global", "text": "hear ye", "id": 2})
            assert a.expect("sent", skip=("snap", "chat"))["to"] == 2
            m = b.expect("chat", skip=("snap",))
            assert m["from"] == n1 and m["text"] == "hear ye" and m["scope"] == "global", m
            time.sleep(1.0)                                            # NPCs wander
            st = srv.stats()
            assert st["npcs"] == 20 and st["counters"]["paths"] > 2, st["counters"]
            for c in (a, b):
                c.send({"t": "quit"})
                c.expect("bye", skip=("snap", "chat"))
                c.close()
            assert srv.stop() == 0
    print("ok")


if __name__ == "__main__":
    main()
