"""Regions shared by copying (issue 8): a tasklet copied out of its region
while another is copied in from its slice goes through the thread's scratch
buffer into the buffer the incoming one leaves ("exchange", docs/design.md,
"Stacks"). A game loop's tasklets (many, woken in turn) take that path on
nearly every wakeup; tasklets parked at other depths do not fit the buffer
and take the plain copy. Both must keep every tasklet's stack and frames.
"""
import sys
import unittest

import scheduler as s
from core_support import CoreTestCase, describe, frame_names, run_python

N = 120  # more than a thread's regions (16): tasklets share them


class ExchangeTests(CoreTestCase):

    def game_loop(self, member, frames=4):
        """Starts N tasklets member(i, ch, got) that loop on ch.receive()
        (preference 0), then runs `frames` frames: a send to each, then
        run(). Returns got[i] = values tasklet i received."""
        ch = s.channel()
        ch.preference = 0
        got = {i: [] for i in range(N)}
        ts = [s.tasklet(member)(i, ch, got) for i in range(N)]
        s.run()
        self.assertEqual(ch.balance, -N)
        before = s.get_stack_stats()["thread_exchanges"]
        for f in range(frames):
            for i in range(N):
                ch.send((f, i))
            s.run()
            self.assertEqual(ch.balance, -N)
        stats = s.get_stack_stats()
        return ch, ts, got, stats["thread_exchanges"] - before, stats

    def finish(self, ch, ts):
        for _ in ts:
            ch.send(None)
        s.run()
        self.assertTrue(all(not t.alive for t in ts))

    def test_game_loop_keeps_every_stack(self):
        def member(i, ch, got):
            mine = ("member", i)
            while True:
                v = ch.receive()
                if v is None:
                    return
                self.assertEqual(mine, ("member", i))
                got[i].append(v)

        ch, ts, got, exchanges, stats = self.game_loop(member)
        self.assertEqual(got, {i: [(f, i) for f in range(4)] for i in range(N)})
        if 1 < stats["thread_regions_max"] < N:
            # every wakeup but a few (the first of a run) copies a tasklet
            # out to the buffer the next one leaves (with one region, the
            # .shared variant, the tasklet that blocks is the one copied
            # out: no exchange but at main's switches)
            self.assertGreater(exchanges, 2 * N, stats)
            self.assertGreater(stats["thread_slice_bytes"], 0, stats)
        for i, t in enumerate(ts):
            self.assertEqual(frame_names(t.frame), ["member"])
            self.assertEqual(t.frame.f_locals["mine"], ("member", i))
        self.finish(ch, ts)

    def test_mixed_depths(self):
        # Tasklets parked at different depths have slices of different sizes:
        # the exchange applies only where the incoming buffer fits, the plain
        # copy elsewhere; each must come back with its own frames.
        def deep(k, i, ch, got):
            if k:
                return deep(k - 1, i, ch, got) + 1
            while True:
                v = ch.receive()
                if v is None:
                    return 0
                got[i].append(v)
                if v[0] == 1:
                    # a woken tasklet parks once at another depth
                    deep(3, i, ch, got)
                    return 0

        def member(i, ch, got):
            self.assertEqual(deep(i % 5 * 4, i, ch, got), i % 5 * 4)

        ch, ts, got, exchanges, stats = self.game_loop(member, frames=3)
        self.assertEqual(got, {i: [(0, i), (1, i), (2, i)] for i in range(N)})
        for i, t in enumerate(ts):
            names = frame_names(t.frame)
            self.assertEqual(names, ["deep"] * (i % 5 * 4 + 5) + ["member"])
        self.finish(ch, ts)

    def test_parked_under_c_calls(self):
        # Blocked under C calls into the interpreter (map, sorted's key): on
        # 3.12+ their entry frames lie on the C stack and are unlinked while
        # the stack is out of its region (relink records in the slice).
        def key(x, ch, got, i):
            v = ch.receive()
            got[i].append(v)
            return x

        def member(i, ch, got):
            while True:
                out = list(map(lambda x: sorted([x], key=lambda y: key(y, ch, got, i)), [i]))
                self.assertEqual(out, [[i]])
                if got[i][-1] is None:
                    return

        ch, ts, got, exchanges, stats = self.game_loop(member)
        self.assertEqual(got, {i: [(f, i) for f in range(4)] for i in range(N)})
        for t in ts:
            self.assertEqual(frame_names(t.frame), ["key", "<lambda>", "<lambda>", "member"])
        if 1 < stats["thread_regions_max"] < N:
            self.assertGreater(exchanges, 2 * N, stats)
        self.finish(ch, ts)

    def test_throw_into_exchanged(self):
        def member(i, ch, got):
            try:
                while True:
                    got[i].append(ch.receive())
            except ValueError as e:
                got[i].append(str(e))

        ch, ts, got, exchanges, stats = self.game_loop(member, frames=2)
        for i, t in enumerate(ts):
            t.throw(ValueError("stop %d" % i))
        s.run()
        self.assertEqual(got, {i: [(0, i), (1, i), "stop %d" % i] for i in range(N)})
        self.assertTrue(all(not t.alive for t in ts))

    def test_in_a_child_with_few_regions(self):
        # Four regions and CARBON_STACK_REGIONS set (what a tasklet leaves in
        # a region is filled with 0xdb): tasklets blocked under C calls
        # (3.12+: entry frames on the C stack, linked from heap frames) are
        # copied out while others come in; the chain is rewritten before the
        # copy, never read from a filled region.
        proc = run_python(r'''
            import scheduler as s
            ch = s.channel()
            ch.preference = 0
            got = []

            def key(x):
                got.append(ch.receive())
                return x

            def member(i):
                while True:
                    out = list(map(lambda x: sorted([x, -x], key=key), [i + 1]))
                    assert out == [[-(i + 1), i + 1]], out
                    if got[-1] is None:
                        return

            ts = [s.tasklet(member)(i) for i in range(40)]
            s.run()
            for f in range(6):
                while ch.balance < 0:
                    ch.send(f)
                s.run()
            while any(t.alive for t in ts):
                ch.send(None)
                s.run()
            stats = s.get_stack_stats()
            print("ok", len(got), stats["thread_exchanges"] > 40, flush=True)
        ''', env={"CARBON_STACK_REGIONS": "4"})
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertIn("ok", proc.stdout, describe(proc))
        self.assertIn(" True", proc.stdout, describe(proc))


if __name__ == "__main__":
    unittest.main()
