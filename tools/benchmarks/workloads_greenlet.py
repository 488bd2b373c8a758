"""The workloads over raw greenlet: the baseline.

A minimal scheduler in the style of a greenlet-based tasklet library: a
deque run queue, schedule() switching straight to the next greenlet (no hop
through a hub), and a channel with the same transfer rules as ours (a
blocked party is taken out of the queue; preference -1 lets the receiver run
next, 0 lets the caller continue). Ping-pong is measured twice: with a
direct greenlet.switch() between two greenlets (the issue's baseline) and
over this channel ("greenlet-chan").
"""
from collections import deque

import greenlet

from common import callers, clock, pte_bytes, rss_bytes, settle

IMPL = "greenlet"


getcurrent = greenlet.getcurrent
Greenlet = greenlet.greenlet
main = getcurrent()
q = deque()  # runnable greenlets; the running one is not in it


# A greenlet starts on the C stack of whoever first switches to it, below
# that caller's frames: started from one another, 10k greenlets would nest 10k
# deep and overflow the C stack (and inherit each other's recursion depth).
# So a new greenlet is always started by main, the hub: the others hand it to
# main (main.switch(g)), and so does a finishing greenlet; every other switch
# goes straight to its target.


def spawn(f, *args):
    def body(*_):
        f(*args)
        # Dying hands control and the return value to the parent, main, which
        # switches to the next runnable. (Re-parenting the dying greenlet to
        # the next one would save that hop, but chains dead greenlets through
        # their parent links: freeing 70k of them recurses and overflows.)
        return q.popleft()
    g = greenlet.greenlet(body, main)
    q.append(g)
    return g


def schedule():
    q.append(getcurrent())
    g = q.popleft()
    if g:  # started (main always is)
        g.switch()
    else:
        main.switch(g)


def run():
    """From main: run until nothing is runnable (main takes its turn too)."""
    while q:
        q.append(main)
        g = q.popleft().switch()
        while type(g) is Greenlet:  # handed back to main: to start, or next after a death
            g = g.switch()


class Channel:
    __slots__ = ("receivers", "senders", "preference")

    def __init__(self, preference=-1):
        self.receivers = deque()  # [greenlet, value] records
        self.senders = deque()
        self.preference = preference

    @property
    def balance(self):
        return len(self.senders) - len(self.receivers)

    def send(self, value):
        if self.receivers:
            rec = self.receivers.popleft()
            rec[1] = value
            if self.preference == -1:  # receiver runs next, sender to the back
                q.append(getcurrent())
                rec[0].switch()
            else:
                q.append(rec[0])
            return
        self.senders.append([getcurrent(), value])
        g = q.popleft()
        if g:
            g.switch()
        else:
            main.switch(g)

    def receive(self):
        if self.senders:
            rec = self.senders.popleft()
            if self.preference == 1:  # sender runs next, receiver to the back
                q.append(getcurrent())
                rec[0].switch()
            else:
                q.append(rec[0])
            return rec[1]
        rec = [getcurrent(), None]
        self.receivers.append(rec)
        g = q.popleft()
        if g:
            g.switch()
        else:
            main.switch(g)
        return rec[1]


def pingpong():
    """Direct switching between two greenlets (main is the pinger)."""
    def run(n):
        def pong(v):
            sw = main.switch
            while v is not None:
                v = sw(v)
        g = greenlet.greenlet(pong)
        sw = g.switch
        t = clock()
        for i in range(n):
            sw(i)
        sw(None)
        dt = clock() - t
        assert g.dead
        return dt, n
    return run


def pingpong_chan():
    """The same shape as ours: two greenlets, two channels."""
    def run(n):
        c1 = Channel()
        c2 = Channel()

        def pong():
            rcv, snd = c1.receive, c2.send
            while True:
                v = rcv()
                if v is None:
                    return
                snd(v)

        def ping():
            snd, rcv = c1.send, c2.receive
            for i in range(n):
                snd(i)
                rcv()
            snd(None)

        spawn(pong)
        spawn(ping)
        t = clock()
        run_()
        dt = clock() - t
        assert not q
        return dt, n
    return run


run_ = run


def _sched(ntasklets):
    def factory():
        def run(rounds):
            gate = Channel(preference=1)
            done = Channel(preference=1)

            def worker(k):
                gate.receive()  # started and parked before the clock starts
                sch = schedule
                for _ in range(k):
                    sch()
                done.receive()  # parked, not finished, when the clock stops
            for _ in range(ntasklets):
                spawn(worker, rounds)
            run_()
            for _ in range(ntasklets):
                gate.send(None)
            t = clock()
            run_()
            dt = clock() - t
            assert done.balance == -ntasklets
            for _ in range(ntasklets):
                done.send(None)
            run_()
            assert not q
            return dt, rounds * ntasklets
        return run
    return factory


sched10 = _sched(10)
sched1000 = _sched(1000)

SPAWN_BATCH = 100


def _noop():
    pass


def spawn_main():
    def run(batches):
        sp, f = spawn, _noop
        t = clock()
        for _ in range(batches):
            for _ in range(SPAWN_BATCH):
                sp(f)
            run_()
        dt = clock() - t
        return dt, batches * SPAWN_BATCH
    return run


def spawn_tasklet():
    def run(batches):
        def spawner():
            sp, sch, f = spawn, schedule, _noop
            for _ in range(batches):
                for _ in range(SPAWN_BATCH):
                    sp(f)
                sch()
        spawn(spawner)
        t = clock()
        run_()
        dt = clock() - t
        assert not q
        return dt, batches * SPAWN_BATCH
    return run


PRODUCERS = 1000


def fanin():
    def run(per_producer):
        c = Channel()
        done = Channel(preference=1)
        got = [0]

        def producer(k):
            snd = c.send
            for i in range(k):
                snd(i)
            done.receive()

        def consumer(total):
            rcv = c.receive
            for _ in range(total):
                rcv()
            got[0] = total

        for _ in range(PRODUCERS):
            spawn(producer, per_producer)
        run_()
        assert c.balance == PRODUCERS
        t = clock()
        spawn(consumer, PRODUCERS * per_producer)
        run_()
        dt = clock() - t
        assert got[0] == PRODUCERS * per_producer and c.balance == 0
        assert done.balance == -PRODUCERS
        for _ in range(PRODUCERS):
            done.send(None)
        run_()
        return dt, PRODUCERS * per_producer
    return run


GAME_TASKLETS = 10000


def gameloop():
    c = Channel(preference=0)
    count = [0]

    def member():
        rcv = c.receive
        while True:
            if rcv() is None:
                return
            count[0] += 1

    for _ in range(GAME_TASKLETS):
        spawn(member)
    run_()
    assert c.balance == -GAME_TASKLETS

    def run(frames):
        snd, srun, n = c.send, run_, GAME_TASKLETS
        before = count[0]
        t = clock()
        for _ in range(frames):
            for i in range(n):
                snd(i)
            srun()
        dt = clock() - t
        assert count[0] - before == frames * n and c.balance == -n
        return dt, frames * n

    def cleanup():
        for _ in range(GAME_TASKLETS):
            c.send(None)
        run_()
        assert c.balance == 0 and not q
    run.cleanup = cleanup
    return run


def memory(n, blocked=None, depth=3):
    c = Channel()
    done = [0]

    def f3():
        c.receive()
        done[0] += 1

    def f2():
        f3()

    def f1():
        f2()

    entry = callers(f1, depth - 3)
    settle()
    r0 = rss_bytes()
    p0 = pte_bytes()
    t = clock()
    for _ in range(n):
        spawn(entry)
    run_()
    t_create = clock() - t
    settle()
    r1 = rss_bytes()
    p1 = pte_bytes()
    if blocked:
        blocked()  # tools/benchmarks/memory_breakdown.py looks while all are blocked
    blocked = -c.balance
    c.preference = 1
    t = clock()
    for i in range(n):
        c.send(i)
    run_()
    t_finish = clock() - t
    return {
        "rss_before": r0, "rss_blocked": r1, "pte_before": p0, "pte_blocked": p1, "blocked": blocked,
        "create_s": t_create, "finish_s": t_finish, "finished": done[0],
        "runcount_after": len(q) + 1,
    }
