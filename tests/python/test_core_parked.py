"""Parked tasklets (issue 8): what inspects or acts on a tasklet blocked in
channel.receive() works whatever became of its C stack meanwhile.

Each test parks more tasklets than a thread keeps stack regions (PARKED),
then runs others through (churn()) so that, where tasklets share regions by
copying (docs/design.md, "Stacks"), the parked ones are copied out when they
are inspected, thrown into, killed or resumed. Where every tasklet has a
stack of its own nothing is copied and the same behaviour holds.
"""
import contextvars
import gc
import sys
import threading
import traceback
import unittest
import weakref

import scheduler as s
from core_support import CoreTestCase, PY, describe, frame_names, run_python

PARKED = 60


def churn(rounds=3, n=20):
    """Runs n short tasklets that switch among themselves `rounds` times:
    each takes a stack (or a region) while the parked ones wait."""
    done = []

    def busy(i):
        local = [i] * 4
        for _ in range(rounds):
            s.schedule()
        done.append(sum(local))
    for i in range(n):
        s.tasklet(busy)(i)
    s.run()
    assert len(done) == n, done


class ParkedTests(CoreTestCase):

    def park(self, body, n=PARKED):
        """Starts n tasklets running body(i, ch) and runs until all block."""
        ch = s.channel()
        ts = [s.tasklet(body)(i, ch) for i in range(n)]
        s.run()
        self.assertEqual(ch.balance, -n)
        return ch, ts

    def test_frame_and_locals_of_parked(self):
        out = {}

        def f3(i, ch):
            mine = ("f3", i)
            v = ch.receive()
            out[i] = (mine, v)

        def f2(i, ch):
            mine = ("f2", i)
            f3(i, ch)
            return mine

        def f1(i, ch):
            self.assertEqual(f2(i, ch), ("f2", i))

        ch, ts = self.park(f1)
        churn()
        for i, t in enumerate(ts):
            f = t.frame
            self.assertEqual(frame_names(f), ["f3", "f2", "f1"])
            self.assertEqual(f.f_locals["mine"], ("f3", i))
            self.assertEqual(f.f_back.f_locals["mine"], ("f2", i))
            self.assertEqual(f.f_lineno, f3.__code__.co_firstlineno + 2)
            churn(rounds=1, n=3)  # the one looked at next may have been copied out again
        for i in range(PARKED):
            ch.send(i * 10)
        s.run()
        self.assertEqual(out, {i: (("f3", i), i * 10) for i in range(PARKED)})
        self.assertTrue(all(not t.alive for t in ts))

    def test_traceback_module_on_parked(self):
        def waits_here(i, ch):
            ch.receive()

        ch, ts = self.park(lambda i, ch: waits_here(i, ch))
        churn()
        for t in ts:
            stack = traceback.extract_stack(t.frame)
            self.assertEqual([fs.name for fs in stack], ["<lambda>", "waits_here"])
            self.assertEqual(stack[-1].line, "ch.receive()")
        for t in ts:
            t.kill()
        self.assertTrue(all(not t.alive for t in ts))

    def test_format_tasklet_stacks_lists_every_parked(self):
        def parked_in_here(i, ch):
            ch.receive()

        ch, ts = self.park(parked_in_here)
        churn()
        text = s.format_tasklet_stacks()
        self.assertEqual(text.count(", in parked_in_here\n"), PARKED, text[:2000])
        self.assertEqual(text.count("ch.receive()"), PARKED, text[:2000])
        for t in ts:
            t.kill()

    def test_gc_sees_objects_only_parked_frames_hold(self):
        class Node:
            pass

        refs = []
        out = []

        def holder(i, ch):
            a, b = Node(), Node()
            a.other, b.other = b, a  # a cycle only this frame points at
            a.i = i
            refs.append(weakref.ref(a))
            ch.receive()
            out.append(a.other.other.i)

        ch, ts = self.park(holder)
        churn()
        gc.collect()
        self.assertTrue(all(r() is not None for r in refs))
        # gc.get_referrers() walks every tracked object, parked frames included
        parked = [t.frame for t in ts]
        self.assertEqual(sorted(f.f_locals["a"].i for f in parked), list(range(PARKED)))
        del parked
        for i in range(PARKED):
            ch.send(None)
        s.run()
        self.assertEqual(sorted(out), list(range(PARKED)))
        del ts
        gc.collect()
        self.assertTrue(all(r() is None for r in refs))

    def test_unreachable_parked_tasklets_are_collected(self):
        # A tasklet blocked on a channel nothing else references: the garbage
        # collector kills it (TaskletExit runs its finally) wherever its stack is.
        finished = []

        def doomed(i, ch):
            try:
                ch.receive()
            finally:
                finished.append(i)

        ch, ts = self.park(doomed, n=30)
        refs = [weakref.ref(t) for t in ts]
        churn()
        del ch, ts
        for _ in range(3):
            gc.collect()
            s.run()
        self.assertEqual(sorted(finished), list(range(30)))
        self.assertTrue(all(r() is None or not r().alive for r in refs))

    def test_parked_past_the_first_frame_chunk(self):
        # Frames with many locals, tens deep: each tasklet's frames spill into
        # further data-stack chunks; they stay where frame objects point.
        names = ["v%d" % k for k in range(100)]
        src = "def wide(depth, ch):\n"
        src += "".join("    %s = (depth, %d)\n" % (n, k) for k, n in enumerate(names))
        src += "    r = wide(depth - 1, ch) if depth else ch.receive()\n"
        src += "    assert (%s) == tuple((depth, k) for k in range(%d))\n" % (
            ", ".join(names), len(names))
        src += "    return r + 1\n"
        ns = {}
        exec(src, ns)
        wide = ns["wide"]
        got = {}

        def body(i, ch):
            got[i] = wide(10 + i % 30, ch)

        ch, ts = self.park(body)
        churn()
        frames = [t.frame for t in ts]  # frame objects of parked frames
        churn()
        for i, f in enumerate(frames):
            self.assertEqual(f.f_locals["v99"], (0, 99))
            self.assertEqual(len(frame_names(f)), 10 + i % 30 + 2)
        del frames
        gc.collect()
        for i in range(PARKED):
            ch.send(i * 1000)
            churn(rounds=1, n=2)
        s.run()
        self.assertEqual(got, {i: i * 1000 + 10 + i % 30 + 1 for i in range(PARKED)})

    def test_parked_in_a_root_chunk_sized_from_siblings(self):
        # Tasklets that park alike twelve frames deep: the first ones spill
        # out of the first root chunk, the later ones get a root chunk as big
        # as what their parked siblings' frames took (runtime/rootchunk.h);
        # a last one goes deeper than that and spills out of the bigger one.
        class Node:
            pass

        refs = []

        def down(k, i, ch):
            if k:
                return down(k - 1, i, ch) + 1
            mine = Node()  # a cycle only this frame points at
            mine.me, mine.i = mine, i
            refs.append(weakref.ref(mine))
            return ch.receive() + mine.i

        def body(i, ch):
            return down(40 if i == PARKED - 1 else 10, i, ch)

        ch, ts = self.park(body)
        churn()
        gc.collect()
        self.assertTrue(all(r() is not None for r in refs))
        for i, t in enumerate(ts):
            names = frame_names(t.frame)
            deep = 40 if i == PARKED - 1 else 10
            self.assertEqual(names, ["down"] * (deep + 1) + ["body"])
            self.assertEqual(t.frame.f_locals["mine"].i, i)
            self.assertEqual(len(traceback.extract_stack(t.frame)), deep + 2)
        text = s.format_tasklet_stacks()
        self.assertEqual(text.count(", in body\n"), PARKED, text[:2000])
        self.assertEqual(text.count("return ch.receive() + mine.i"), PARKED, text[:2000])
        out = []
        for i, t in enumerate(ts):
            ch.send(1000)
        s.run()
        for i, t in enumerate(ts):
            self.assertFalse(t.alive)
        del ts
        gc.collect()
        self.assertTrue(all(r() is None for r in refs))

    def test_traceback_object_into_parked_frames(self):
        # A traceback caught earlier in the tasklet points at frames that are
        # parked now: they read the same through it.
        tbs = {}

        def f2(i):
            secret = ("f2", i)
            raise RuntimeError(secret)

        def body(i, ch):
            try:
                f2(i)
            except RuntimeError as e:
                tbs[i] = e.__traceback__
            outer = ("body", i)
            ch.receive()
            return outer

        ch, ts = self.park(body)
        churn()
        for i, tb in tbs.items():
            self.assertEqual(tb.tb_frame.f_code.co_name, "body")
            self.assertEqual(tb.tb_frame.f_locals["outer"], ("body", i))
            self.assertEqual(tb.tb_next.tb_frame.f_locals["secret"], ("f2", i))
            self.assertIs(tb.tb_frame, ts[i].frame)
        for t in ts:
            t.kill()
        tbs.clear()
        gc.collect()

    def test_parked_inside_c_reentry(self):
        # Parked in Python code that C code called (sorted()'s key, repr()'s
        # __repr__, json's default): C frames sit between Python frames.
        import json
        got = {}

        class Blocks:
            def __init__(self, i, ch):
                self.i, self.ch = i, ch

            def __repr__(self):
                return "B%d:%s" % (self.i, self.ch.receive())

        def by_key(i, ch):
            def key(x):
                return ch.receive() if x == 1 else 0
            got[("sorted", i)] = sorted([2, 1, 0], key=key)

        def by_repr(i, ch):
            got[("repr", i)] = repr([[Blocks(i, ch)]])

        def by_json(i, ch):
            got[("json", i)] = json.dumps({"k": [Blocks]}, default=lambda o: ch.receive())

        ch, ts = self.park(lambda i, ch: (by_key, by_repr, by_json)[i % 3](i, ch))
        churn()
        gc.collect()
        names = [frame_names(t.frame) for t in ts]
        for i, n in enumerate(names):
            self.assertEqual(n[-1], "<lambda>")
            self.assertIn(("by_key", "by_repr", "by_json")[i % 3], n)
        for i in range(PARKED):
            ch.send(i)
            churn(rounds=1, n=2)
        s.run()
        for i in range(PARKED):
            k = ("sorted", "repr", "json")[i % 3]
            want = {"sorted": [2, 0, 1] if i > 0 else [2, 1, 0],
                    "repr": "[[B%d:%d]]" % (i, i),
                    "json": '{"k": [%d]}' % i}[k]
            self.assertEqual(got[(k, i)], want, (k, i))

    def test_throw_into_parked(self):
        caught = {}

        def f3(i, ch):
            try:
                ch.receive()
            except ValueError as e:
                caught[i] = (e.args[0], [fs.name for fs in traceback.extract_tb(e.__traceback__)])

        def f1(i, ch):
            f3(i, ch)

        ch, ts = self.park(f1)
        churn()
        for i, t in enumerate(ts):
            t.throw(ValueError(i), pending=bool(i % 2))
            churn(rounds=1, n=2)
        s.run()
        self.assertEqual(set(caught), set(range(PARKED)))
        for i, (arg, names) in caught.items():
            self.assertEqual(arg, i)
            self.assertEqual(names[-1:], ["f3"])
        self.assertEqual(ch.balance, 0)

    def test_kill_parked_runs_finally(self):
        cleaned = []

        def f3(i, ch):
            try:
                ch.receive()
            finally:
                cleaned.append(i)

        ch, ts = self.park(lambda i, ch: f3(i, ch))
        churn()
        for t in ts[::2]:
            t.kill()
        churn()
        for t in ts[1::2]:
            t.kill(pending=True)
        s.run()
        self.assertEqual(sorted(cleaned), list(range(PARKED)))
        self.assertTrue(all(not t.alive for t in ts))

    def test_exception_escaping_resumed_parked_has_full_traceback(self):
        def f3(i, ch):
            if ch.receive() == "boom":
                raise KeyError(i)

        def f2(i, ch):
            f3(i, ch)

        def f1(i, ch):
            try:
                f2(i, ch)
            except KeyError as e:
                got.append((e.args[0], [fs.name for fs in traceback.extract_tb(e.__traceback__)]))

        got = []
        ch, ts = self.park(f1)
        churn()
        for i in range(PARKED):
            ch.send("boom")
        s.run()
        self.assertEqual(sorted(got), [(i, ["f1", "f2", "f3"]) for i in range(PARKED)])

    def test_generator_and_coroutine_suspended_in_parked(self):
        results = {}

        def counter(start):
            n = start
            while True:
                n += yield n

        class Awaitable:
            def __await__(self):
                return (yield "awaited")

        async def coro(i):
            got = await Awaitable()
            return (i, got)

        def inside_gen(i, ch):
            # the tasklet blocks inside the generator's body
            v = ch.receive()
            yield v + i

        def body(i, ch):
            g = counter(i)
            self.assertEqual(next(g), i)
            c = coro(i)
            self.assertEqual(c.send(None), "awaited")
            blocking = inside_gen(i, ch)
            first = next(blocking)  # parks inside the generator
            g_after = g.send(100)
            try:
                c.send("sent")
            except StopIteration as e:
                c_result = e.value
            results[i] = (first, g_after, c_result, blocking.gi_frame.f_code.co_name)

        ch, ts = self.park(body)
        churn()
        for t in ts:
            self.assertEqual(frame_names(t.frame)[:2], ["inside_gen", "body"])
        for i in range(PARKED):
            ch.send(1000)
        s.run()
        self.assertEqual(results, {i: (1000 + i, i + 100, (i, "sent"), "inside_gen")
                                   for i in range(PARKED)})

    def test_contextvars_of_parked(self):
        var = contextvars.ContextVar("who", default=None)
        seen = {}

        def body(i, ch):
            var.set(i)
            ch.receive()
            seen[i] = var.get()

        ch, ts = self.park(body)
        churn()
        self.assertIsNone(var.get())
        for i in range(PARKED):
            ch.send(None)
        s.run()
        self.assertEqual(seen, {i: i for i in range(PARKED)})

    def test_exc_info_handled_inside_parked(self):
        seen = {}

        def body(i, ch):
            try:
                raise LookupError(i)
            except LookupError:
                ch.receive()
                seen[i] = sys.exc_info()[1].args[0]
            seen[(i, "after")] = sys.exc_info()

        ch, ts = self.park(body)
        churn()
        self.assertEqual(sys.exc_info(), (None, None, None))
        for i in range(PARKED):
            ch.send(None)
        s.run()
        for i in range(PARKED):
            self.assertEqual(seen[i], i)
            self.assertEqual(seen[(i, "after")], (None, None, None))

    def test_settrace_active_across_parking(self):
        events = []

        def tracer(frame, event, arg):
            if frame.f_code.co_name in ("traced_inner", "traced_outer"):
                events.append((frame.f_code.co_name, event))
            return tracer

        def traced_inner(i, ch):
            ch.receive()
            return i

        def traced_outer(i, ch):
            return traced_inner(i, ch)

        old = sys.gettrace()
        sys.settrace(tracer)
        try:
            ch, ts = self.park(traced_outer, n=PARKED)
            churn()
            del events[:]
            for i in range(PARKED):
                ch.send(None)
            s.run()
        finally:
            sys.settrace(old)
        # each resumed tasklet: a line event or more in each frame, then both return
        returns = [e for e in events if e[1] == "return"]
        self.assertEqual(returns, [("traced_inner", "return"), ("traced_outer", "return")] * PARKED)

    def test_setprofile_active_across_parking(self):
        events = []

        def profiler(frame, event, arg):
            if frame.f_code.co_name == "profiled" and event in ("call", "return"):
                events.append(event)

        def profiled(i, ch):
            ch.receive()

        old = sys.getprofile()
        sys.setprofile(profiler)
        try:
            ch, ts = self.park(profiled)
            churn()
            for i in range(PARKED):
                ch.send(None)
            s.run()
        finally:
            sys.setprofile(old)
        self.assertEqual(events.count("call"), PARKED)
        self.assertEqual(events.count("return"), PARKED)


class WorkerThreadParkedTests(CoreTestCase):

    def test_parked_on_a_worker_thread_seen_from_main(self):
        # A worker thread's parked tasklets (its own regions) are read from
        # the main thread while the worker waits outside its scheduler.
        ready, go = threading.Event(), threading.Event()
        ts, out, errors = [], [], []

        def worker():
            try:
                ch = s.channel()

                def parked_on_worker(i):
                    mine = ("w", i)
                    ch.receive()
                    out.append(mine)

                ts.extend(s.tasklet(parked_on_worker)(i) for i in range(PARKED))
                s.run()
                churn()
            except BaseException as e:  # reported below, not lost in the thread
                errors.append(repr(e))
            finally:
                ready.set()
            go.wait(60)
            for _ in range(PARKED):
                ch.send(None)
            s.run()

        th = threading.Thread(target=worker)
        th.start()
        try:
            self.assertTrue(ready.wait(60))
            self.assertEqual(errors, [])
            text = s.format_tasklet_stacks(all_threads=True)
            self.assertEqual(text.count(", in parked_on_worker\n"), PARKED, text[:2000])
            self.assertEqual(sorted(t.frame.f_locals["mine"] for t in ts),
                             [("w", i) for i in range(PARKED)])
        finally:
            go.set()
            th.join(60)
        self.assertEqual(sorted(out), [("w", i) for i in range(PARKED)])


class DeepParkedTests(CoreTestCase):

    def test_parked_5000_deep_among_many(self):
        # One tasklet parks 5000 Python frames deep (limit 20000) while 60
        # others park and run around it: its frames, its locals and its
        # return value come back intact.
        proc = run_python(r'''
            import sys, scheduler as s
            sys.setrecursionlimit(20000)
            ch = s.channel()
            others = s.channel()
            def dive(n):
                mine = n
                if n:
                    r = dive(n - 1)
                    assert mine == n
                    return r + 1
                return ch.receive()
            deep = s.tasklet(dive)(5000)
            s.run()
            def other(i):
                for _ in range(3):
                    others.receive()
                    s.schedule()
            ts = [s.tasklet(other)(i) for i in range(60)]
            s.run()
            f, n = deep.frame, 0
            while f is not None:
                n, f = n + 1, f.f_back
            print("frames", n, deep.frame.f_locals["mine"], flush=True)
            for _ in range(3):
                for _ in range(60):
                    others.send(None)
                s.run()
            ch.send(7)
            s.run()
            print("done", deep.alive, sum(t.alive for t in ts), flush=True)
            # the value dive() returned is not observable from here: check it another way
            box = []
            t = s.tasklet(lambda: box.append(dive(4000)))()
            s.run()
            ch.send(1)
            s.run()
            print("returned", box, flush=True)
        ''')
        self.assertEqual(proc.returncode, 0, describe(proc))
        self.assertIn("frames 5001 0", proc.stdout, describe(proc))
        self.assertIn("done False 0", proc.stdout, describe(proc))
        self.assertIn("returned [4001]", proc.stdout, describe(proc))


if __name__ == "__main__":
    unittest.main()
