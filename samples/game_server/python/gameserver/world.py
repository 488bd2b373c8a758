"""The map, the area-of-interest grid and A* (pure functions and data; no I/O).

The map is SIZE x SIZE cells with a wall border and seeded random walls (one
cell in ten), the same on every run. Entities stand on free cells; several may
share one. The AOI grid buckets entities by AOI x AOI cells: what is "near" a
position is what stands within AOI cells of it (Chebyshev distance), found by
looking at the 3 x 3 buckets around it.
"""
import heapq
import random

SIZE = 128
AOI = 8             # AOI grid cell size; snapshots show the 3 x 3 cells around you,
                    # local chat reaches players within AOI cells on both axes

_rng = random.Random(20261130)
WALLS = set()
for _x in range(SIZE):
    for _y in range(SIZE):
        if _x in (0, SIZE - 1) or _y in (0, SIZE - 1) or _rng.random() < 0.10:
            WALLS.add((_x, _y))


def free(x, y):
    return (x, y) not in WALLS


def spawn_cell(seed):
    """A free cell chosen from `seed` (a name), anywhere on the map."""
    r = random.Random(seed)
    while True:
        x, y = r.randrange(1, SIZE - 1), r.randrange(1, SIZE - 1)
        if free(x, y):
            return x, y


class Grid:
    """Entities bucketed by position for area-of-interest queries.

    Safe for tasklets that may be preempted anywhere (frame safety): every
    change is one step (a set's add or discard), a cell's set once made is
    never removed (SIZE / AOI squared of them at most), and a query copies a
    set before it loops over it."""

    def __init__(self):
        self.cells = {}

    @staticmethod
    def key(x, y):
        return x // AOI, y // AOI

    def add(self, e):
        self.cells.setdefault(self.key(e.x, e.y), set()).add(e)

    def remove(self, e):
        s = self.cells.get(self.key(e.x, e.y))
        if s is not None:
            s.discard(e)

    def move(self, e, x, y):
        if self.key(x, y) != self.key(e.x, e.y):
            self.remove(e)
            e.x, e.y = x, y
            self.add(e)
        else:
            e.x, e.y = x, y

    def near(self, x, y, radius=AOI):
        """Entities within `radius` (<= AOI) cells of (x, y)."""
        cx, cy = x // AOI, y // AOI
        out = []
        cells = self.cells
        for gx in (cx - 1, cx, cx + 1):
            for gy in (cy - 1, cy, cy + 1):
                s = cells.get((gx, gy))
                if s:
                    for e in tuple(s):
                        if abs(e.x - x) <= radius and abs(e.y - y) <= radius:
                            out.append(e)
        return out


def astar(start, goal, limit=20000):
    """Shortest 4-connected path from start to goal avoiding walls, as a list
    of [x, y] (start first); [] if unreachable within `limit` expansions."""
    start, goal = tuple(start), tuple(goal)
    if not (free(*start) and free(*goal)):
        return []
    gx, gy = goal
    came = {start: None}
    cost = {start: 0}
    todo = [(abs(start[0] - gx) + abs(start[1] - gy), 0, start)]
    n = 0
    while todo and n < limit:
        _, g, cell = heapq.heappop(todo)
        if cell == goal:
            path = []
            while cell is not None:
                path.append(list(cell))
                cell = came[cell]
            return path[::-1]
        if g > cost[cell]:
            continue
        n += 1
        x, y = cell
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if nxt in WALLS:
                continue
            ng = g + 1
            if ng < cost.get(nxt, 1 << 30):
                cost[nxt] = ng
                came[nxt] = cell
                heapq.heappush(todo, (ng + abs(nxt[0] - gx) + abs(nxt[1] - gy), ng, nxt))
    return []


def pathfinder(requests):
    """A worker thread's main function: serve (start, goal, reply) requests
    from `requests` until None arrives; returns how many it served."""
    import scheduler
    served = 0
    while True:
        req = requests.receive()
        if req is None:
            return served
        start, goal, reply = req
        # Handed over by a tasklet of its own: the requester (another thread)
        # may not be waiting on its reply channel yet.
        scheduler.tasklet(reply.send)(astar(start, goal))
        served += 1
