"""Random programs over the scheduler API, run on the model (model.py) and on
the real module; their event traces must be equal (docs/reliability.md).

A program is plain data: channel preferences, one op list per tasklet, and
the main tasklet's op list. `generate(rng)` makes one; `run_real` and
`run_model` execute it; `minimize` shrinks a mismatching one.
"""
import random

TASKLET_OPS = ("log", "schedule", "send", "recv", "kill", "remove", "insert")
MAIN_OPS = ("spawn", "run", "run_n", "send", "recv", "kill", "insert")


def generate(rng, max_tasklets=5, max_ops=6, max_main=8):
    nchan = rng.randint(1, 2)
    prefs = [rng.choice((-1, 0, 1)) for _ in range(nchan)]
    ntask = rng.randint(1, max_tasklets)
    bodies = []
    for tid in range(ntask):
        ops = []
        for _ in range(rng.randint(0, max_ops)):
            kind = rng.choice(TASKLET_OPS)
            if kind == "log":
                ops.append(("log", rng.randint(0, 9)))
            elif kind == "schedule":
                ops.append(("schedule",))
            elif kind == "send":
                ops.append(("send", rng.randrange(nchan), rng.randint(10, 99)))
            elif kind == "recv":
                ops.append(("recv", rng.randrange(nchan)))
            elif kind == "remove":
                ops.append(("remove",))
            elif kind == "insert":
                ops.append(("insert", rng.randrange(ntask)))
            else:
                ops.append(("kill", rng.randrange(ntask)))
        bodies.append(ops)
    main = [("spawn", tid) for tid in range(ntask) if rng.random() < 0.7]
    for _ in range(rng.randint(1, max_main)):
        kind = rng.choice(MAIN_OPS)
        if kind == "spawn":
            main.append(("spawn", rng.randrange(ntask)))
        elif kind == "run":
            main.append(("run",))
        elif kind == "run_n":
            main.append(("run_n", rng.randint(1, 3)))
        elif kind == "send":
            main.append(("send", rng.randrange(nchan), rng.randint(100, 199)))
        elif kind == "recv":
            main.append(("recv", rng.randrange(nchan)))
        elif kind == "insert":
            main.append(("insert", rng.randrange(ntask)))
        else:
            main.append(("kill", rng.randrange(ntask)))
    main.append(("run",))
    return {"prefs": prefs, "bodies": bodies, "main": main}


def _final(trace, chans, tasklets):
    trace.append(("balances", tuple(c.balance for c in chans)))
    trace.append(("alive", tuple(sorted(tid for tid, t in tasklets.items() if t.alive))))


def real_insert(trace, t, who):
    if t is None:
        return
    try:
        t.insert()
    except RuntimeError as e:
        trace.append(("insert-error", who, "blocked" if "blocked" in str(e) else "dead"))


def run_real(prog):
    import scheduler as s
    trace = []
    chans = []
    for p in prog["prefs"]:
        c = s.channel()
        c.preference = p
        chans.append(c)
    tasklets = {}

    def body(tid, ops):
        try:
            for op in ops:
                k = op[0]
                if k == "log":
                    trace.append(("log", tid, op[1]))
                elif k == "schedule":
                    s.schedule()
                elif k == "send":
                    chans[op[1]].send(op[2])
                elif k == "recv":
                    trace.append(("got", tid, chans[op[1]].receive()))
                elif k == "kill":
                    t = tasklets.get(op[1])
                    if t is not None:
                        t.kill(pending=True)
                elif k == "remove":
                    s.schedule_remove()
                elif k == "insert":
                    real_insert(trace, tasklets.get(op[1]), tid)
            trace.append(("end", tid))
        except s.TaskletExit:
            trace.append(("exit", tid))
            raise
        finally:
            trace.append(("finally", tid))

    for op in prog["main"]:
        k = op[0]
        try:
            if k == "spawn":
                if op[1] not in tasklets:
                    tasklets[op[1]] = s.tasklet(body)(op[1], prog["bodies"][op[1]])
            elif k == "run":
                s.run()
            elif k == "run_n":
                s.run_n_tasklets(op[1])
            elif k == "send":
                chans[op[1]].send(op[2])
            elif k == "recv":
                trace.append(("main-got", chans[op[1]].receive()))
            elif k == "kill":
                t = tasklets.get(op[1])
                if t is not None:
                    t.kill(pending=True)
            elif k == "insert":
                real_insert(trace, tasklets.get(op[1]), "main")
        except RuntimeError as e:
            trace.append(("main-error", "Deadlock" if "Deadlock" in str(e) else str(e)))
    _final(trace, chans, tasklets)
    result = list(trace)
    # leave nothing behind for the next program (not traced)
    for t in tasklets.values():
        if t.alive:
            t.kill(pending=True)
    s.run()
    return result


def model_insert(m, trace, t, who):
    if t is None:
        return
    if t.chan is not None:
        trace.append(("insert-error", who, "blocked"))
    elif not t.alive:
        trace.append(("insert-error", who, "dead"))
    else:
        m.append(t)


def run_model(prog):
    from model import Model, MChannel, MTasklet, Deadlock, TaskletExitModel
    trace = []
    m = Model(trace)
    chans = [MChannel(p) for p in prog["prefs"]]
    tasklets = {}

    def body(tid, ops):
        try:
            for op in ops:
                k = op[0]
                if k == "log":
                    trace.append(("log", tid, op[1]))
                elif k == "schedule":
                    yield ("schedule",)
                elif k == "send":
                    yield ("send", chans[op[1]], op[2])
                elif k == "recv":
                    v = yield ("recv", chans[op[1]])
                    trace.append(("got", tid, v))
                elif k == "kill":
                    t = tasklets.get(op[1])
                    if t is not None:
                        yield ("kill", t)
                elif k == "remove":
                    yield ("remove",)
                elif k == "insert":
                    model_insert(m, trace, tasklets.get(op[1]), tid)
            trace.append(("end", tid))
        except TaskletExitModel:
            trace.append(("exit", tid))
            raise
        finally:
            trace.append(("finally", tid))

    for op in prog["main"]:
        k = op[0]
        try:
            if k == "spawn":
                if op[1] not in tasklets:
                    t = MTasklet(op[1], body(op[1], prog["bodies"][op[1]]))
                    tasklets[op[1]] = t
                    m.append(t)
            elif k == "run":
                m.run()
            elif k == "run_n":
                m.run(limit=op[1])
            elif k == "send":
                m.main_send(chans[op[1]], op[2])
            elif k == "recv":
                trace.append(("main-got", m.main_recv(chans[op[1]])))
            elif k == "kill":
                t = tasklets.get(op[1])
                if t is not None:
                    m.kill(t)
            elif k == "insert":
                model_insert(m, trace, tasklets.get(op[1]), "main")
        except Deadlock:
            trace.append(("main-error", "Deadlock"))
    _final(trace, chans, tasklets)
    return trace


def mismatch(prog):
    """None if the traces agree, else (real, model)."""
    real = run_real(prog)
    model = run_model(prog)
    return None if real == model else (real, model)


def minimize(prog):
    """Removes ops (and tasklets' ops) while the traces still differ."""
    def candidates(p):
        for i in range(len(p["main"]) - 1):
            q = dict(p, main=p["main"][:i] + p["main"][i + 1:])
            yield q
        for tid, ops in enumerate(p["bodies"]):
            for i in range(len(ops)):
                bodies = list(p["bodies"])
                bodies[tid] = ops[:i] + ops[i + 1:]
                yield dict(p, bodies=bodies)
    changed = True
    while changed:
        changed = False
        for q in candidates(prog):
            if mismatch(q):
                prog, changed = q, True
                break
    return prog


def program_text(prog):
    lines = ["channels: preferences %s" % (prog["prefs"],)]
    for tid, ops in enumerate(prog["bodies"]):
        lines.append("tasklet %d: %s" % (tid, ops))
    lines.append("main: %s" % (prog["main"],))
    return "\n".join(lines)


def check_range(first, count):
    """Runs programs of seeds first..first+count-1; returns the first
    mismatching (seed, minimized program, real, model) or None."""
    for seed in range(first, first + count):
        prog = generate(random.Random(seed))
        if mismatch(prog):
            small = minimize(prog)
            real, model = mismatch(small)
            return seed, small, real, model
    return None
