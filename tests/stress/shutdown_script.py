"""The Python side of tests/stress/shutdown_stress.c (docs/reliability.md):
tasklets blocked on channels (receiving and sending), sleeping in
carbon.sleep() and reading from loopback sockets (carbon.net), on the host
thread and on worker threads whose main tasklets are blocked too. The host
calls carbon_shutdown() once every one of them waits; each `finally` writes
one byte to a file the C side counts after the interpreter is gone:
upper case if the tasklet got TaskletExit, lower case if it ended otherwise.

    C  blocked on a channel      S  sleeping      R  reading a socket
    M  a worker's main tasklet (blocked on a channel)
"""
import os
import threading

import carbon
import carbon.net
import scheduler

begun = []              # one entry per tasklet that reached its wait
expected = {}           # letter -> count
setup_errors = []
_lock = threading.Lock()
_fd = None


def _mark(letter, exited, _write=os.write):
    _write(_fd, (letter if exited else letter.lower()).encode())


def _guarded(letter, wait):
    exited = False
    try:
        begun.append(letter)
        wait()
    except scheduler.TaskletExit:
        exited = True
        raise
    finally:
        _mark(letter, exited)


def _spawn(letter, wait):
    scheduler.tasklet(_guarded)(letter, wait)


def _populate(n_chan, n_sleep, pairs, local_chans, shared):
    """Spawns this thread's waiters; runs in a tasklet of the thread (it
    blocks to connect and accept)."""
    chans = local_chans + [shared]
    for i in range(n_chan):
        ch = chans[i % len(chans)]
        # receivers on even channels, senders on odd ones: balances of both signs
        _spawn("C", ch.receive if i % len(chans) % 2 == 0 else (lambda ch=ch, i=i: ch.send(i)))
    for i in range(n_sleep):
        _spawn("S", lambda: carbon.sleep(3600))
    if pairs:
        server = carbon.net.listen("127.0.0.1", 0)
        port = server.sockname[1]
        for _ in range(pairs):
            client = carbon.net.connect("127.0.0.1", port, timeout=30)
            peer = server.accept()
            # both ends read; nobody writes: they wait until killed
            _spawn("R", client.read)
            _spawn("R", peer.read)
        server.close()


def _thread_share(total, threads, pairs):
    readers = 2 * pairs
    rest = max(0, total // threads - readers)
    return rest - rest // 2, rest // 2, pairs   # channel waiters, sleepers, pairs


def _count(letter, n):
    with _lock:
        expected[letter] = expected.get(letter, 0) + n


def setup(path, total, workers, pairs):
    """Opens the result file and starts everything: `total` tasklets spread
    over the host thread and `workers` workers, `pairs` socket pairs per
    thread (2 readers each)."""
    global _fd
    _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    threads = workers + 1
    n_chan, n_sleep, p = _thread_share(total, threads, pairs)
    shared = scheduler.channel()
    globals()["shared"] = shared

    def populate_guarded(local):
        try:
            _populate(n_chan, n_sleep, p, local, shared)
        except BaseException as e:  # reported by ready()
            setup_errors.append(repr(e))
            raise

    def worker_main():
        local = [scheduler.channel() for _ in range(3)]
        scheduler.tasklet(populate_guarded)(local)
        # the worker's main tasklet blocks too; its finally counts as M
        _guarded("M", scheduler.channel().receive)

    for letter, n in (("C", n_chan), ("S", n_sleep), ("R", 2 * p)):
        _count(letter, n * threads)
    _count("M", workers)
    host_local = [scheduler.channel() for _ in range(3)]
    globals()["host_local"] = host_local
    scheduler.tasklet(populate_guarded)(host_local)
    globals()["workers"] = [carbon.spawn_worker(worker_main) for _ in range(workers)]
    return sum(expected.values())


def ready():
    """'' while starting, 'ok' once every tasklet waits, else an error."""
    if setup_errors:
        return "setup failed: " + setup_errors[0]
    return "ok" if len(begun) == sum(expected.values()) else ""


def expected_counts():
    return " ".join("%s=%d" % kv for kv in sorted(expected.items()))
