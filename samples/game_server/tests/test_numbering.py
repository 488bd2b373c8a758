"""In the game itself (the `carbon` host, no sockets): replies keep their
numbers in wire order while the tasklets queueing them are preempted at any
instruction (frame safety interrupts a tasklet past its slice), and a move
read by the fast path is the move the JSON decoder reads.

Regression: the number used to be taken when a reply was queued, in a step
of its own; a tasklet preempted between taking it and queueing let another
tasklet's reply take the next number first, and a client saw a gap, then the
missing number late (seen under cProfile at 1000 bots: 2 lost, 2 duplicated)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import harness  # noqa: E402

SCRIPT = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import scheduler
import gameserver as g

# 1. Numbering under preemption: three tasklets queue to one connection,
# run(timeout) preempts them every ~0.1 ms of running; between runs the main
# tasklet takes the queue as the flusher does. In rounds, until enough
# preemptions happened (the watchdog needs a core now and then).
g.MAX_OUT = 10 ** 9
N = 4000

def sender(c, k):
    for i in range(N):
        c.send_body(b'{"t":"x","k":%d,"i":%d' % (k, i), False)
        for _ in range(5):
            pass

preempted = rounds = 0
while preempted < 20 and rounds < 200:
    rounds += 1
    c = g.Conn(None)
    ts = [scheduler.tasklet(sender)(c, k) for k in range(3)]
    wire = []
    while any(t.alive for t in ts):
        t = scheduler.run(10000)
        if t is not None:
            preempted += 1
            t.insert()
        out, c.out = c.out, []
        wire.append(g._number(c, out))
    msgs = [json.loads(line) for line in b"".join(wire).splitlines()]
    assert [m["seq"] for m in msgs] == list(range(1, 3 * N + 1)), "numbers out of wire order"
    for k in range(3):
        assert [m["i"] for m in msgs if m["k"] == k] == list(range(N)), "a sender's order changed"
assert preempted > 0, "no preemption happened in %d rounds: the test proved nothing" % rounds

# 2. The fast path for moves agrees with the JSON decoder.
p = g.Player("ann", 10, 10, 0)
c = g.Conn(None)
c.player = p
p.conn = c
lines = [b'{"t":"move","dx":1,"dy":0,"id":7}', b'{"t":"move","dx":-1,"dy":-0,"id":0}',
         b'{"t":"move","dx":0,"dy":1,"id":-3}', b'{"t":"move","dx":0,"dy":1,"id":123456789012}',
         b'{"t":"move","dx":1,"dy":0,"id":07}', b'{"t":"move","dx":2,"dy":0,"id":1}',
         b'{"t":"move", "dx":1,"dy":0,"id":1}', b'{"t":"move","dx":1,"dy":0,"id":1.5}',
         b'{"t":"move","dx":true,"dy":0,"id":1}', b'{"t":"move","dx":1,"dy":0,"id":1}x']
class NoMatch:                  # the general path only
    fullmatch = staticmethod(lambda line: None)

fast_path = g._MOVE
for line in lines:
    results = []
    for g._MOVE in (fast_path, NoMatch):
        p.moves, c.out, c.errors = [], [], 0
        ok = g._message(c, line)
        results.append((ok, p.moves, [b.split(b'"msg"')[0] for b in c.out]))   # the error code
    g._MOVE = fast_path
    assert results[0] == results[1], (line, results)
print("numbering ok: %d preemptions in %d rounds of %d messages; move fast path ok" % (preempted, rounds, 3 * N))
'''


def main():
    bin_dir = harness.bin_dir_from_argv()
    game_dir = os.path.join(harness.HERE, "python")
    p = subprocess.run([os.path.join(bin_dir, "carbon"), "-c", SCRIPT, game_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    print(p.stdout)
    assert p.returncode == 0, "exit %d" % p.returncode
    assert "numbering ok" in p.stdout
    print("ok")


if __name__ == "__main__":
    main()
