"""The workloads on asyncio (default event loop), for context.

Channels become asyncio.Queue (unbounded for ping-pong and the game loop;
maxsize=1 for fan-in so that producers block as they do on a channel);
schedule() is `await asyncio.sleep(0)`; spawning is loop.create_task().
"""
import asyncio

from common import async_callers, clock, pte_bytes, rss_bytes, settle

IMPL = "asyncio"

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
go = loop.run_until_complete


def pingpong():
    def run(n):
        q1 = asyncio.Queue()
        q2 = asyncio.Queue()

        async def pong():
            get, put = q1.get, q2.put_nowait
            while True:
                v = await get()
                if v is None:
                    return
                put(v)

        async def ping():
            put, get = q1.put_nowait, q2.get
            for i in range(n):
                put(i)
                await get()
            put(None)

        async def main():
            t = clock()
            await asyncio.gather(pong(), ping())
            return clock() - t
        return go(main()), n
    return run


def _sched(ntasks):
    def factory():
        def run(rounds):
            async def worker(k, state, release):
                sleep = asyncio.sleep
                await sleep(0)  # started before the clock starts
                for _ in range(k):
                    await sleep(0)
                state[0] += 1
                if state[0] == ntasks:
                    state[1].set_result(clock())
                await release.wait()  # parked, not finished, when the clock stops

            async def main():
                state, release = [0, loop.create_future()], asyncio.Event()
                tasks = [loop.create_task(worker(rounds, state, release)) for _ in range(ntasks)]
                await asyncio.sleep(0)
                t = clock()
                dt = await state[1] - t
                release.set()
                await asyncio.gather(*tasks)
                return dt
            return go(main()), rounds * ntasks
        return run
    return factory


sched10 = _sched(10)
sched1000 = _sched(1000)

SPAWN_BATCH = 100


async def _noop():
    pass


async def _tick():
    await asyncio.sleep(0)


def spawn_main():
    """Tasks created from outside the loop, then the loop runs them."""
    def run(batches):
        create, f = loop.create_task, _noop
        t = clock()
        for _ in range(batches):
            for _ in range(SPAWN_BATCH):
                create(f())
            go(_tick())
        dt = clock() - t
        return dt, batches * SPAWN_BATCH
    return run


def spawn_tasklet():
    """Tasks created from inside a task, which then yields."""
    def run(batches):
        async def spawner():
            create, f, sleep = loop.create_task, _noop, asyncio.sleep
            t = clock()
            for _ in range(batches):
                for _ in range(SPAWN_BATCH):
                    create(f())
                await sleep(0)
            await sleep(0)
            return clock() - t
        return go(spawner()), batches * SPAWN_BATCH
    return run


PRODUCERS = 1000


def fanin():
    def run(per_producer):
        async def main():
            q = asyncio.Queue(maxsize=1)
            release = asyncio.Event()

            async def producer(k):
                put = q.put
                for i in range(k):
                    await put(i)
                await release.wait()

            tasks = [loop.create_task(producer(per_producer)) for _ in range(PRODUCERS)]
            await asyncio.sleep(0)
            await asyncio.sleep(0)  # every producer now waits in put()
            total = PRODUCERS * per_producer
            get = q.get
            t = clock()
            for _ in range(total):
                await get()
            dt = clock() - t
            release.set()
            await asyncio.gather(*tasks)
            return dt
        return go(main()), PRODUCERS * per_producer
    return run


GAME_TASKLETS = 10000


def gameloop():
    q = asyncio.Queue()
    count = [0]

    async def member():
        get = q.get
        while True:
            if await get() is None:
                return
            count[0] += 1

    tasks = [loop.create_task(member()) for _ in range(GAME_TASKLETS)]
    go(_tick())

    def run(frames):
        async def main():
            put, sleep, n = q.put_nowait, asyncio.sleep, GAME_TASKLETS
            t = clock()
            for _ in range(frames):
                for i in range(n):
                    put(i)
                await sleep(0)
            return clock() - t
        before = count[0]
        dt = go(main())
        assert count[0] - before == frames * GAME_TASKLETS and q.empty()
        return dt, frames * GAME_TASKLETS

    def cleanup():
        for _ in range(GAME_TASKLETS):
            q.put_nowait(None)
        go(asyncio.gather(*tasks))
    run.cleanup = cleanup
    return run


def memory(n, blocked=None, depth=3):
    done = [0]

    async def f3(q):
        await q.get()
        done[0] += 1

    async def f2(q):
        await f3(q)

    async def f1(q):
        await f2(q)

    entry = async_callers(f1, depth - 3)
    q = asyncio.Queue()
    settle()
    r0 = rss_bytes()
    p0 = pte_bytes()
    t = clock()
    tasks = [loop.create_task(entry(q)) for _ in range(n)]
    go(_tick())
    t_create = clock() - t
    settle()
    r1 = rss_bytes()
    p1 = pte_bytes()
    if blocked:
        blocked()  # tools/benchmarks/memory_breakdown.py looks while all are blocked
    blocked = sum(1 for x in tasks if not x.done())
    t = clock()
    for i in range(n):
        q.put_nowait(i)
    go(asyncio.gather(*tasks))
    t_finish = clock() - t
    del tasks
    return {
        "rss_before": r0, "rss_blocked": r1, "pte_before": p0, "pte_blocked": p1, "blocked": blocked,
        "create_s": t_create, "finish_s": t_finish, "finished": done[0],
        "runcount_after": len(asyncio.all_tasks(loop)) + 1,
    }
