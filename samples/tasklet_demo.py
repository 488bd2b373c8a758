"""A short tasklet demo: producers and a consumer over a channel."""
import time

import scheduler

results = scheduler.channel()


def producer(name, n):
    for i in range(n):
        results.send((name, i))
        scheduler.schedule()


def consumer(total):
    seen = {}
    for _ in range(total):
        name, i = results.receive()
        seen[name] = seen.get(name, 0) + 1
    print("consumer received", sum(seen.values()), "messages from", len(seen), "producers")


start = time.perf_counter()
for p in range(10):
    scheduler.tasklet(producer)("p%d" % p, 1000)
scheduler.tasklet(consumer)(10 * 1000)
scheduler.run()
print("done in %.1f ms, switch backend %s" % ((time.perf_counter() - start) * 1e3,
                                            scheduler.switch_backend))
