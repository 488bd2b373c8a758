"""The workloads on our `scheduler` module (Carbon runtime).

Run with the interpreter the module was built for, <build>/python on
PYTHONPATH. Default run-order mode (nested), default stack size.
"""
import scheduler as s

from common import callers, clock, pte_bytes, rss_bytes, settle

IMPL = "ours"


def pingpong():
    """Two tasklets, two channels: ping sends, pong receives and sends back."""
    def run(n):
        c1 = s.channel()
        c2 = s.channel()

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

        s.tasklet(pong)()
        s.tasklet(ping)()
        t = clock()
        s.run()
        dt = clock() - t
        assert s.getruncount() == 1
        return dt, n
    return run


ARMED_TIMEOUT = 10 ** 12  # ticks (10 ns each): armed, never expires


def _sched(ntasklets, armed=False):
    """Round robin: each tasklet calls schedule() `rounds` times. The tasklets
    are started and parked on a channel before the clock starts, and park on
    another one at the end: only the schedule() calls are timed, not starting
    or finishing tasklets (spawn + finish has its own rows)."""
    def factory():
        def run(rounds):
            gate = s.channel()
            done = s.channel()

            def worker(k):
                gate.receive()
                sch = s.schedule
                for _ in range(k):
                    sch()
                done.receive()
            for _ in range(ntasklets):
                s.tasklet(worker)(rounds)
            s.run()
            gate.preference = done.preference = 1  # senders keep going: each waiter is queued
            for _ in range(ntasklets):
                gate.send(None)
            t = clock()
            if armed:
                # preemption armed (docs/scheduler.md): the watchdog thread
                # watches this run; the switch path itself is unchanged
                assert s.run(ARMED_TIMEOUT) is None
            else:
                s.run()
            dt = clock() - t
            assert done.balance == -ntasklets
            for _ in range(ntasklets):
                done.send(None)
            s.run()
            assert s.getruncount() == 1
            return dt, rounds * ntasklets
        return run
    return factory


sched10 = _sched(10)
sched1000 = _sched(1000)
sched10_armed = _sched(10, armed=True)

SPAWN_BATCH = 100


def _noop():
    pass


def spawn_main():
    """From the main tasklet: create a batch of tiny tasklets, run() them."""
    def run(batches):
        tasklet, srun, f = s.tasklet, s.run, _noop
        t = clock()
        for _ in range(batches):
            for _ in range(SPAWN_BATCH):
                tasklet(f)()
            srun()
        dt = clock() - t
        return dt, batches * SPAWN_BATCH
    return run


def spawn_tasklet():
    """From inside a tasklet: create a batch, schedule() so that they run."""
    def run(batches):
        def spawner():
            tasklet, sch, f = s.tasklet, s.schedule, _noop
            for _ in range(batches):
                for _ in range(SPAWN_BATCH):
                    tasklet(f)()
                sch()
        s.tasklet(spawner)()
        t = clock()
        s.run()
        dt = clock() - t
        assert s.getruncount() == 1
        return dt, batches * SPAWN_BATCH
    return run


PRODUCERS = 1000


def fanin():
    """1000 producers (already blocked on their first send) and one consumer;
    producers park on another channel when done, so that finishing them is
    not timed."""
    def run(per_producer):
        c = s.channel()
        done = s.channel()
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
            s.tasklet(producer)(per_producer)
        s.run()
        assert c.balance == PRODUCERS
        t = clock()
        s.tasklet(consumer)(PRODUCERS * per_producer)
        s.run()
        dt = clock() - t
        assert got[0] == PRODUCERS * per_producer and c.balance == 0
        assert done.balance == -PRODUCERS
        done.preference = 1
        for _ in range(PRODUCERS):
            done.send(None)
        s.run()
        return dt, PRODUCERS * per_producer
    return run


GAME_TASKLETS = 10000


def gameloop():
    """10k tasklets looping on receive() from one preference-0 channel; a frame
    sends to each of them, then runs the queue."""
    c = s.channel()
    c.preference = 0
    count = [0]

    def member():
        rcv = c.receive
        while True:
            if rcv() is None:
                return
            count[0] += 1

    for _ in range(GAME_TASKLETS):
        s.tasklet(member)()
    s.run()
    assert c.balance == -GAME_TASKLETS

    def run(frames):
        snd, srun, n = c.send, s.run, GAME_TASKLETS
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
        s.run()
        assert c.balance == 0 and s.getruncount() == 1
    run.cleanup = cleanup
    return run


def memory(n, blocked=None, depth=3):
    """n tasklets blocked in channel.receive() `depth` (3) Python frames deep."""
    c = s.channel()
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
        s.tasklet(entry)()
    s.run()
    t_create = clock() - t
    settle()
    r1 = rss_bytes()
    p1 = pte_bytes()
    if blocked:
        blocked()  # tools/benchmarks/memory_breakdown.py looks while all are blocked
    blocked = -c.balance
    stats = dict(s.get_stack_stats())
    c.preference = 1  # the sender (main) keeps going; receivers are queued
    t = clock()
    for i in range(n):
        c.send(i)
    s.run()
    t_finish = clock() - t
    return {
        "rss_before": r0, "rss_blocked": r1, "pte_before": p0, "pte_blocked": p1, "blocked": blocked,
        "create_s": t_create, "finish_s": t_finish, "finished": done[0],
        "runcount_after": s.getruncount(), "stack_stats": stats,
    }
