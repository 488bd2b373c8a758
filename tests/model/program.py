"""Random programs over the scheduler API, run on the model (model.py) and on
the real module; their event traces must be equal (docs/reliability.md).

A program is plain data: channel preferences, one op list per tasklet, and
the main tasklet's op list. `generate(rng)` makes one; `run_real` and
`run_model` execute it; `minimize` shrinks a mismatching one.
"""
import random
import sys

TASKLET_OPS = ("log", "schedule", "send", "recv", "kill", "remove", "insert", "send_exc",
               "throw", "run_t", "switch", "nested_run", "close", "open",
               "trap", "block_trap", "spawn")
MAIN_OPS = ("spawn", "run", "run_n", "send", "recv", "kill", "insert", "send_exc",
            "throw", "run_t", "switch", "close", "open", "trap", "block_trap")


def _op(rng, kind, ntask, nchan, lo, hi):
    if kind == "log":
        return ("log", rng.randint(0, 9))
    if kind in ("send",):
        return ("send", rng.randrange(nchan), rng.randint(lo, hi))
    if kind in ("recv", "close", "open", "send_exc"):
        return (kind, rng.randrange(nchan))
    if kind in ("kill", "throw"):
        return (kind, rng.randrange(ntask), rng.random() < 0.5)
    if kind in ("insert", "run_t", "switch", "spawn"):
        return (kind, rng.randrange(ntask))
    if kind == "run_n":
        return ("run_n", rng.randint(1, 3))
    if kind == "trap":
        return ("trap", rng.choice((1, 1, -1)))   # _pair_traps lowers most again
    if kind == "block_trap":
        return ("block_trap", rng.random() < 0.5)
    return (kind,)


def _pair_traps(rng, ops):
    """Most raised switch traps are lowered again later in the same list, so
    that programs do not end up trapped for good."""
    out = list(ops)
    for i in range(len(out) - 1, -1, -1):
        if out[i] == ("trap", 1) and rng.random() < 0.7:
            out.insert(rng.randint(i + 1, len(out)), ("trap", -1))
    return out


def generate(rng, max_tasklets=5, max_ops=6, max_main=8):
    nchan = rng.randint(1, 2)
    prefs = [rng.choice((-1, 0, 1)) for _ in range(nchan)]
    sched_all = [rng.random() < 0.2 for _ in range(nchan)]
    ntask = rng.randint(1, max_tasklets)
    # close/open and the traps are rarer: they end most of a program
    tops = TASKLET_OPS + ("log", "schedule", "send", "recv", "send", "recv") * 2
    mops = MAIN_OPS + ("run", "send", "recv") * 2
    bodies = []
    for tid in range(ntask):
        bodies.append(_pair_traps(rng, [_op(rng, rng.choice(tops), ntask, nchan, 10, 99)
                                        for _ in range(rng.randint(0, max_ops))]))
    main = [("spawn", tid) for tid in range(ntask) if rng.random() < 0.7]
    for _ in range(rng.randint(1, max_main)):
        main.append(_op(rng, rng.choice(mops), ntask, nchan, 100, 199))
    main = _pair_traps(rng, main)
    main.append(("run",))
    return {"prefs": prefs, "sched_all": sched_all, "bodies": bodies, "main": main,
            "nested": rng.random() < 0.5, "callback": rng.random() < 0.3}


def _final(trace, chans, tasklets, trap):
    trace.append(("switch_trap", trap))
    trace.append(("balances", tuple(c.balance for c in chans)))
    trace.append(("closing", tuple(bool(c.closing) for c in chans)))
    trace.append(("closed", tuple(bool(c.closed) for c in chans)))
    trace.append(("alive", tuple(sorted(tid for tid, t in tasklets.items() if t.alive))))


def _rt_kind(e):
    msg = str(e)
    if "switch_trap" in msg:
        return "trap"
    if "block_trap" in msg:
        return "block_trap"
    for kind in ("Deadlock", "blocked", "dead", "interrupted"):
        if kind in msg:
            return kind
    return msg


def run_real(prog):
    import scheduler as s
    trace = []
    chans = []
    for p, a in zip(prog["prefs"], prog.get("sched_all", [False] * len(prog["prefs"]))):
        c = s.channel()
        c.preference = p
        c.schedule_all = a
        chans.append(c)
    tasklets = {}

    class Boom(Exception):
        pass

    def do(op, who):
        """One operation common to tasklets and main."""
        k = op[0]
        if k == "send":
            chans[op[1]].send(op[2])
        elif k == "send_exc":
            chans[op[1]].send_exception(Boom)
        elif k == "recv":
            trace.append(("got" if who != "main" else "main-got", who, chans[op[1]].receive()))
        elif k == "close":
            chans[op[1]].close()
        elif k == "open":
            chans[op[1]].open()
        elif k == "trap":
            s.switch_trap(op[1])
        elif k == "block_trap":
            s.getcurrent().block_trap = op[1]
        elif k in ("kill", "throw", "insert", "run_t", "switch"):
            t = tasklets.get(op[1])
            if t is None:
                return
            if k == "kill":
                t.kill(pending=op[2])
            elif k == "throw":
                t.throw(Boom(), pending=op[2])
            elif k == "insert":
                t.insert()
            elif k == "run_t":
                t.run()
            else:
                t.switch()
        else:
            raise AssertionError(op)

    def body(tid, ops):
        try:
            for op in ops:
                k = op[0]
                try:
                    if k == "log":
                        trace.append(("log", tid, op[1]))
                    elif k == "schedule":
                        s.schedule()
                    elif k == "remove":
                        s.schedule_remove()
                    elif k == "nested_run":
                        s.run()
                    elif k == "spawn":
                        if op[1] not in tasklets:
                            tasklets[op[1]] = s.tasklet(body)(op[1], prog["bodies"][op[1]])
                    else:
                        do(op, tid)
                except ValueError:
                    trace.append(("closed", tid))
                except RuntimeError as e:
                    trace.append(("rt-error", tid, _rt_kind(e)))
            trace.append(("end", tid))
        except s.TaskletExit:
            trace.append(("exit", tid))
            raise
        except Boom:
            trace.append(("boom", tid))
            raise
        finally:
            trace.append(("finally", tid))

    old_nested = s.get_use_nested_tasklets()
    s.set_use_nested_tasklets(prog.get("nested", True))
    if prog.get("callback"):
        # every change of the current tasklet, before it happens
        def name(t):
            if t.is_main:
                return "main"
            return next((tid for tid, u in tasklets.items() if u is t), "?")
        def callback(prev, nxt):
            if len(trace) > 100000:
                # a switch livelock (found once): stop before memory runs out
                import os
                sys.stderr.write("model: runaway switching in the module; program:\n%s\n"
                                 % program_text(prog))
                os._exit(70)
            trace.append(("sw", name(prev), name(nxt)))
        s.set_schedule_callback(callback)
    try:
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
                else:
                    do(op, "main")
            except RuntimeError as e:
                trace.append(("main-error", _rt_kind(e)))
            except ValueError:
                trace.append(("main-error", "closed"))
            except Boom:
                trace.append(("main-exc", "Boom"))
        _final(trace, chans, tasklets, s.switch_trap(0))
        result = list(trace)
    finally:
        # leave nothing behind for the next program (not traced)
        s.set_schedule_callback(None)
        s.switch_trap(-s.switch_trap(0))
        s.getcurrent().block_trap = False
        for c in chans:
            c.open()
        for _ in range(10):
            alive = [t for t in tasklets.values() if t.alive]
            if not alive:
                break
            for t in alive:
                t.kill(pending=True)
            try:
                s.run()
            except Exception:
                pass
        s.set_use_nested_tasklets(old_nested)
    return result


def run_model(prog):
    from model import (Model, MChannel, MTasklet, Deadlock, TaskletExitModel, BoomModel,
                       ClosedModel, RuntimeErrorModel, EXC)
    trace = []
    m = Model(trace, prog.get("nested", True))
    m.trace_switches = bool(prog.get("callback"))
    chans = [MChannel(p, a) for p, a in
             zip(prog["prefs"], prog.get("sched_all", [False] * len(prog["prefs"])))]
    tasklets = {}

    def insert(t):
        if t.blocked:
            raise RuntimeErrorModel("blocked")
        if not t.alive:
            raise RuntimeErrorModel("dead")
        m.make_runnable(t, False)

    def apply_state(op, current):
        """The operations that only change state, alike in a tasklet and in
        main (current None): True if `op` was one of them."""
        k = op[0]
        if k == "spawn":
            if op[1] not in tasklets:
                tasklets[op[1]] = MTasklet(op[1], body(op[1], prog["bodies"][op[1]]))
                m.append(tasklets[op[1]])
        elif k in ("close", "open"):
            chans[op[1]].closing = k == "close"
        elif k == "trap":
            m.switch_trap += op[1]
        elif k == "block_trap":
            if current is None:
                m.main_block_trap = op[1]
            else:
                current.block_trap = op[1]
        else:
            return False
        return True

    def body(tid, ops):
        try:
            for op in ops:
                k = op[0]
                try:
                    if k == "log":
                        trace.append(("log", tid, op[1]))
                    elif k == "schedule":
                        yield ("schedule",)
                    elif k == "remove":
                        yield ("remove",)
                    elif k == "nested_run":
                        yield ("nested_run",)
                    elif apply_state(op, m.current):
                        pass
                    elif k == "send":
                        yield ("send", chans[op[1]], op[2])
                    elif k == "send_exc":
                        yield ("send", chans[op[1]], EXC)
                    elif k == "recv":
                        v = yield ("recv", chans[op[1]])
                        trace.append(("got", tid, v))
                    else:
                        t = tasklets.get(op[1])
                        if t is None:
                            continue
                        if k == "insert":
                            insert(t)
                        elif k in ("kill", "throw"):
                            yield (k, t, op[2])
                        else:
                            yield (k, t)
                except ClosedModel:
                    trace.append(("closed", tid))
                except RuntimeErrorModel as e:
                    trace.append(("rt-error", tid, e.kind))
            trace.append(("end", tid))
        except TaskletExitModel:
            trace.append(("exit", tid))
            raise
        except BoomModel:
            trace.append(("boom", tid))
            raise
        finally:
            trace.append(("finally", tid))

    for op in prog["main"]:
        k = op[0]
        try:
            if apply_state(op, None):
                pass
            elif k == "run":
                m.raise_(m.run_toplevel())
            elif k == "run_n":
                m.raise_(m.run_toplevel(limit=op[1]))
            elif k == "send":
                m.main_send(chans[op[1]], op[2])
            elif k == "send_exc":
                m.main_send(chans[op[1]], EXC)
            elif k == "recv":
                trace.append(("main-got", "main", m.main_recv(chans[op[1]])))
            else:
                t = tasklets.get(op[1])
                if t is None:
                    continue
                if k == "insert":
                    insert(t)
                elif k == "kill":
                    m.raise_(m.kill("main", t, op[2]))
                elif k == "throw":
                    m.raise_(m.throw("main", t, BoomModel(), op[2]))
                elif k == "run_t":
                    m.raise_(m.run_tasklet_checked("main", t))
                elif k == "switch":
                    m.raise_(m.switch_checked("main", t))
        except Deadlock:
            trace.append(("main-error", "Deadlock"))
        except RuntimeErrorModel as e:
            trace.append(("main-error", e.kind))
        except ClosedModel:
            trace.append(("main-error", "closed"))
        except BoomModel:
            trace.append(("main-exc", "Boom"))
    _final(trace, chans, tasklets, m.switch_trap)
    # a copy: generators of tasklets left alive run their finally when collected
    return list(trace)


OUT_OF_SCOPE = [0]


def mismatch(prog):
    """None if the traces agree (or the program is outside the model,
    counted in OUT_OF_SCOPE, and the module ran it), else (real, model)."""
    from model import OutOfScope
    try:
        model = run_model(prog)
    except OutOfScope:
        # not compared, but the module must still run it (no crash, no
        # error escaping the program; under ASan, no memory error)
        OUT_OF_SCOPE[0] += 1
        run_real(prog)
        return None
    real = run_real(prog)
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
    lines = ["mode: %s%s" % ("nested" if prog.get("nested", True) else "flat",
                             ", schedule callback" if prog.get("callback") else ""),
             "channels: preferences %s, schedule_all %s" % (prog["prefs"], prog.get("sched_all"))]
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
