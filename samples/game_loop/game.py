"""Game logic for samples/game_loop: entities as tasklets.

Each entity is a tasklet that idles (carbon.sleep), acts on frame boundaries
(carbon.wait_frames), reports events to a world tasklet over a channel, and now
and then asks the pathfinding worker (another thread) for a route, waiting on
its own reply channel. Only the calling tasklet ever blocks.
"""
import random
import sys
from collections import deque

import carbon
import scheduler

GRID = 24
_rng = random.Random(42)
# A fixed maze: about one wall in five cells.
WALLS = {(x, y) for x in range(GRID) for y in range(GRID) if _rng.random() < 0.2}
WALLS.discard((0, 0))

state = {"events": 0, "paths": 0, "path_cells": 0, "moves": 0}
events = scheduler.channel()      # entities -> world tasklet
requests = scheduler.channel()    # entities -> pathfinding worker
worker = None
entities = []


def find_path(start, goal):
    """Breadth-first search on the maze; a list of cells, or [] if unreachable."""
    prev = {start: None}
    todo = deque([start])
    while todo:
        cell = todo.popleft()
        if cell == goal:
            path = []
            while cell is not None:
                path.append(cell)
                cell = prev[cell]
            return path[::-1]
        x, y = cell
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if 0 <= nxt[0] < GRID and 0 <= nxt[1] < GRID and nxt not in WALLS and nxt not in prev:
                prev[nxt] = cell
                todo.append(nxt)
    return []


def pathfinder(requests):
    """The worker's main tasklet: serve path requests until told to stop."""
    served = 0
    while True:
        req = requests.receive()
        if req is None:
            return served
        start, goal, reply = req
        # Delivered by a tasklet of its own: the entity may not be waiting on
        # its reply channel yet (it runs at the host's next tick), and the
        # worker should not wait for it meanwhile.
        scheduler.tasklet(reply.send)(find_path(start, goal))
        served += 1


def world():
    """Counts what entities report."""
    while True:
        kind, _ = events.receive()
        state["events"] += 1


def free_cell(rng):
    while True:
        cell = (rng.randrange(GRID), rng.randrange(GRID))
        if cell not in WALLS:
            return cell


def entity(ident):
    rng = random.Random(ident)
    pos = free_cell(rng)
    reply = scheduler.channel()
    while True:
        carbon.sleep(rng.uniform(0.02, 0.2))          # idle a while
        carbon.wait_frames(rng.randint(1, 3))         # act on a frame boundary
        if rng.random() < 0.25:                       # need a route: ask the worker
            requests.send((pos, free_cell(rng), reply))
            path = reply.receive()
            state["paths"] += 1
            state["path_cells"] += len(path)
            if path:
                pos = path[-1]
        else:
            state["moves"] += 1
        events.send(("moved", ident))


runaways = []


def runaway_entity():
    """game_loop --runaway: from frame 30 on, this entity never yields again.
    The tick preempts it after carbon_config.slice_ns and reports a hitch
    naming it; the frame still ends on time."""
    carbon.wait_frames(max(0, 30 - carbon.frame()))
    n = 0
    while True:
        n += 1


def start(n_entities=200, runaway=False):
    global worker
    # The host's tick must take the GIL from the worker when it is busy: by
    # default the worker keeps it up to 5 ms. A shorter interval bounds the
    # frame's wait for it.
    sys.setswitchinterval(0.0005)
    worker = carbon.spawn_worker(pathfinder, requests)
    scheduler.tasklet(world)()
    for i in range(n_entities):
        entities.append(scheduler.tasklet(entity)(i))
        entities[-1].name = "entity %d" % i
    if runaway:
        runaways.append(scheduler.tasklet(runaway_entity)())
        runaways[-1].name = "runaway entity"


def finish():
    """Stops the worker (it returns how many paths it served) and prints
    totals, in a tasklet: a host call never waits (the host ticks until
    finished() is true)."""
    scheduler.tasklet(_finish)()


def finished():
    return state.get("finished", False)


def _finish():
    for t in runaways:
        t.kill()  # raises TaskletExit where it was preempted
    requests.send(None)  # queued: the worker takes it when it is free
    served = worker.join()
    state["finished"] = True
    print("game: %d entities, %d events, %d moves, %d paths served by the worker "
          "(%d cells), frame %d" % (len(entities), state["events"], state["moves"],
                                    served, state["path_cells"], carbon.frame()))
