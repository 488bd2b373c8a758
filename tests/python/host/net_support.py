"""Helpers for the carbon.net tests (run in the carbon host)."""
import os
import time

import carbon
import scheduler


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def fd_count_settled(expected, timeout=3.0):
    """The descriptor count once it reaches `expected` (closes finish on
    later loop turns), or whatever it is after `timeout` seconds."""
    deadline = carbon.now() + timeout
    n = fd_count()
    while n != expected and carbon.now() < deadline:
        carbon.sleep(0.02)
        n = fd_count()
    return n


def settle(seconds=0.05):
    """Let the loop run close callbacks and queued writes."""
    carbon.sleep(seconds)


def run_all(*fns):
    """Runs each fn in its own tasklet; returns their results in order, or
    raises the first exception one of them raised."""
    ch = scheduler.channel()

    def wrap(i, fn):
        try:
            ch.send((i, True, fn()))
        except BaseException as e:  # noqa: B902 - handed to the caller
            ch.send((i, False, e))

    for i, fn in enumerate(fns):
        scheduler.tasklet(wrap)(i, fn)
    results = [None] * len(fns)
    error = None
    for _ in fns:
        i, ok, value = ch.receive()
        if ok:
            results[i] = value
        elif error is None:
            error = value
    if error is not None:
        raise error
    return results


def echo_handler(stream):
    while True:
        data = stream.read(65536)
        if not data:
            return
        stream.write(data)


def warm_up():
    """Opens what a loop keeps for its whole life, so that descriptor counts
    compare like with like: libuv's reserve descriptor for EMFILE (at the
    first listen) and glibc's resolver state (at the first lookup)."""
    import carbon.net as net
    net.listen("127.0.0.1", 0).close()
    net.getaddrinfo("localhost")
    settle(0.01)


def run_tasklets(*fns, limit=10.0):
    """Runs each fn in its own tasklet while the caller sleeps in
    carbon.sleep(); returns their results in order, re-raising the first
    error, or fails if they have not all finished within `limit` seconds."""
    results = [None] * len(fns)
    errors = []
    done = []

    def wrap(i, fn):
        try:
            results[i] = fn()
        except BaseException as e:  # noqa: B902 - reported to the test
            errors.append(e)
        finally:
            done.append(i)

    for i, fn in enumerate(fns):
        scheduler.tasklet(wrap)(i, fn)
    t0 = time.monotonic()
    while len(done) < len(fns):
        if time.monotonic() - t0 > limit:
            raise AssertionError('tasklets did not finish in %s s' % limit)
        carbon.sleep(0.002)
    if errors:
        raise errors[0]
    return results
