"""Frame data stack and frame-chain integrity under interleaving (switching.md
section 4, item 1): every tasklet has its own chain of interpreter frames and
its own data-stack chunks, whatever the call depths at which tasklets switch
and whatever order they finish in."""
import gc
import random
import sys
import traceback
import unittest

import scheduler as s
from core_support import CoreTestCase, PY, rss_bytes


def make_wide_function(nlocals):
    """A recursive function with `nlocals` locals: big frames fill data-stack
    chunks quickly, so deep recursion pushes extra chunks."""
    names = ["v%d" % i for i in range(nlocals)]
    src = ["def wide(depth, tag, at_each_level):"]
    for i, n in enumerate(names):
        src.append("    %s = (tag, depth, %d)" % (n, i))
    src.append("    at_each_level(depth)")
    src.append("    if depth > 0:")
    src.append("        sub = wide(depth - 1, tag, at_each_level)")
    src.append("    else:")
    src.append("        sub = 0")
    src.append("    at_each_level(depth)")
    src.append("    for i, v in enumerate((%s,)):" % ", ".join(names))
    src.append("        if v != (tag, depth, i):")
    src.append("            raise AssertionError('local %d of %r at depth %d is %r' % (i, tag, depth, v))")
    src.append("    return sub + 1")
    ns = {}
    exec("\n".join(src), ns)
    return ns["wide"]


WIDE = make_wide_function(120)


class InterleavingTests(CoreTestCase):

    def test_deep_and_shallow_interleave(self):
        # A goes 60 levels deep with 120 locals per frame (several data-stack
        # chunks), B stays shallow; both switch at every level, many times.
        log = []

        def deep(tag, depth):
            def at_level(d):
                s.schedule()
            for rnd in range(3):
                log.append((tag, rnd, WIDE(depth, (tag, rnd), at_level)))

        def shallow(tag, n):
            acc = []
            for i in range(n):
                local = (tag, i)
                s.schedule()
                self.assertEqual(local, (tag, i))
                acc.append(i)
            log.append((tag, sum(acc)))

        s.tasklet(deep)("A", 60)
        s.tasklet(shallow)("B", 400)
        s.tasklet(deep)("C", 5)
        s.tasklet(shallow)("D", 50)
        s.run()
        self.assertEqual(sorted(log), sorted(
            [("A", r, 61) for r in range(3)] + [("C", r, 6) for r in range(3)] +
            [("B", sum(range(400))), ("D", sum(range(50)))]))

    def test_many_depths_random_switch_points(self):
        # Ten tasklets at depths 0..90 switch at pseudo-random levels.
        rng = random.Random(1234)
        results = {}

        def worker(tag, depth, switch_levels):
            def at_level(d):
                if d in switch_levels:
                    s.schedule()
            results[tag] = WIDE(depth, tag, at_level)

        for i in range(10):
            depth = i * 10
            levels = set(rng.sample(range(depth + 1), min(depth + 1, 7)))
            s.tasklet(worker)(i, depth, levels)
        s.run()
        self.assertEqual(results, {i: i * 10 + 1 for i in range(10)})

    def test_finish_out_of_order(self):
        # Tasklets suspended at different depths are resumed and finished in a
        # shuffled order; each still sees its own locals. Then again, on the
        # stacks the first round gave back to the pool.
        for rnd in range(3):
            done = []

            def worker(tag, depth):
                suspended = []

                def at_level(d):
                    if d == 0 and not suspended:
                        suspended.append(d)
                        s.schedule_remove()
                done.append((tag, WIDE(depth, tag, at_level)))

            ts = [s.tasklet(worker)(i, (i * 7) % 45) for i in range(12)]
            s.run()
            self.assertTrue(all(t.alive and t.paused for t in ts))
            order = list(range(12))
            random.Random(rnd).shuffle(order)
            for i in order:
                ts[i].run()
                self.assertFalse(ts[i].alive)
            self.assertEqual([tag for tag, _ in done], order)
            self.assertEqual(sorted(done), [(i, (i * 7) % 45 + 1) for i in range(12)])

    def test_child_finishes_before_suspended_parent_loop(self):
        # A nested run: P runs C, C suspends, P returns, C finishes later (the
        # frames of P are popped while C's are still live) - and the reverse.
        log = []

        def child(tag):
            x = [tag] * 3
            s.schedule_remove()
            log.append(("child", x))

        def parent():
            y = "parent-local"
            c = s.tasklet(child)("c")
            c.run()
            log.append(("parent", y))
            return c

        box = []
        s.tasklet(lambda: box.append(parent()))()
        s.run()
        self.assertEqual(log, [("parent", "parent-local")])
        c = box.pop()
        self.assertTrue(c.alive)
        c.run()
        self.assertEqual(log[-1], ("child", ["c"] * 3))

    def test_datastack_chunks_are_freed(self):
        # Each of these tasklets needs extra data-stack chunks (40 frames of
        # ~1.7 KiB, beyond the root chunk) and finishes; if chunks leaked, RSS
        # would grow by >60 MiB.
        ns = {}
        exec("def big(n):\n    if n:\n        big(n - 1)\n    if False:\n        "
             + " = ".join("v%d" % i for i in range(200)) + " = 0\n", ns)
        big = ns["big"]

        def worker():
            big(40)

        for _ in range(200):  # warm up pools and allocator
            s.tasklet(worker)()
        s.run()
        gc.collect()
        before = rss_bytes()
        for _ in range(10):
            for _ in range(200):
                s.tasklet(worker)()
            s.run()
        gc.collect()
        grown = rss_bytes() - before
        self.assertLess(grown, 16 * 1024 * 1024, "RSS grew by %d bytes" % grown)


class FrameChainTests(CoreTestCase):

    def test_getframe_shows_only_own_frames(self):
        seen = {}

        def inner(tag):
            seen[tag, "before"] = [f.name for f in traceback.extract_stack()]
            s.schedule()
            seen[tag, "after"] = [f.name for f in traceback.extract_stack()]
            f = sys._getframe()
            chain = []
            while f is not None:
                chain.append(f.f_code.co_name)
                last = f
                f = f.f_back
            seen[tag, "chain"] = chain
            seen[tag, "bottom_back"] = last.f_back

        def outer(tag):
            inner(tag)

        def spawner():
            # a tasklet started from a tasklet does not see its spawner
            t = s.tasklet(outer)("nested")
            t.run()
            s.schedule()
            while t.alive:
                s.schedule()

        s.tasklet(outer)("a")
        s.tasklet(spawner)()
        s.tasklet(outer)("b")
        s.run()
        for tag in ("a", "b", "nested"):
            self.assertEqual(seen[tag, "before"], ["outer", "inner"], tag)
            self.assertEqual(seen[tag, "after"], ["outer", "inner"], tag)
            self.assertEqual(seen[tag, "chain"], ["inner", "outer"], tag)
            self.assertIsNone(seen[tag, "bottom_back"], tag)

    def test_main_frames_unaffected(self):
        before = [f.name for f in traceback.extract_stack()]
        me = sys._getframe()

        def t():
            s.schedule()
        for _ in range(5):
            s.tasklet(t)()
        s.run()
        self.assertEqual([f.name for f in traceback.extract_stack()], before)
        self.assertIs(sys._getframe(), me)
        self.assertEqual(sys._getframe().f_code.co_name, "test_main_frames_unaffected")

    def test_traceback_of_escaping_exception(self):
        def level2():
            s.schedule()
            raise ValueError("deep")

        def level1():
            level2()

        s.tasklet(level1)()
        try:
            s.run()
        except ValueError as e:
            names = [fs.name for fs in traceback.extract_tb(e.__traceback__)]
        else:
            self.fail("no exception")
        # the frame that ran the queue, then the tasklet's own frames only
        self.assertEqual(names, ["test_traceback_of_escaping_exception", "level1", "level2"])

    def test_frame_of_suspended_tasklet(self):
        def inner(x):
            marker = x * 2
            s.schedule_remove()
            return marker

        def entry(x):
            return inner(x) + 1

        t = s.tasklet(entry)(21)
        self.assertIsNone(t.frame)  # not started yet
        s.run()
        self.assertTrue(t.paused)
        f = t.frame
        self.assertIsNotNone(f)
        self.assertEqual(f.f_code.co_name, "inner")
        self.assertEqual(f.f_locals["marker"], 42)
        self.assertEqual(f.f_lineno, inner.__code__.co_firstlineno + 2)
        names = []
        while f is not None:
            names.append(f.f_code.co_name)
            f = f.f_back
        self.assertEqual(names, ["inner", "entry"])
        # looked at from another tasklet too
        box = {}
        s.tasklet(lambda: box.setdefault("name", t.frame.f_back.f_code.co_name))()
        s.run()
        self.assertEqual(box["name"], "entry")
        keep = t.frame
        t.insert()
        s.run()
        self.assertFalse(t.alive)
        self.assertIsNone(t.frame)
        # the frame object outlives the tasklet's stack
        self.assertEqual(keep.f_code.co_name, "inner")
        self.assertEqual(keep.f_locals["marker"], 42)
        gc.collect()

    def test_frame_suspended_inside_c_callback(self):
        # Suspended in a lambda called from C (map): on 3.12+ an entry frame
        # on the tasklet's C stack sits between the lambda and `outer`.
        seen = {}

        def outer():
            def cb(x):
                seen["stack"] = [f.name for f in traceback.extract_stack()]
                s.schedule_remove()
                seen["after"] = [f.name for f in traceback.extract_stack()]
                return x * 2
            return sorted(map(cb, [1, 2]), key=lambda v: -v)

        box = []
        t = s.tasklet(lambda: box.append(outer()))()
        s.run()
        names = []
        f = t.frame
        while f is not None:
            names.append(f.f_code.co_name)
            f = f.f_back
        self.assertEqual(names, ["cb", "outer", "<lambda>"])
        self.assertEqual(seen["stack"], ["<lambda>", "outer", "cb"])
        t.insert()
        s.run()
        t.insert()
        s.run()
        self.assertEqual(box, [[4, 2]])
        self.assertEqual(seen["after"], ["<lambda>", "outer", "cb"])

    def test_frame_suspended_inside_generator(self):
        def gen():
            s.schedule_remove()
            yield 1

        def consumer():
            return list(gen())

        t = s.tasklet(consumer)()
        s.run()
        self.assertEqual([t.frame.f_code.co_name, t.frame.f_back.f_code.co_name],
                         ["gen", "consumer"])
        t.insert()
        s.run()
        self.assertFalse(t.alive)

    def test_clearing_suspended_frame_is_refused(self):
        def victim():
            x = [1, 2, 3]
            s.schedule_remove()
            return x

        box = []
        t = s.tasklet(lambda: box.append(victim()))()
        s.run()
        with self.assertRaises(RuntimeError):
            t.frame.clear()
        with self.assertRaises(RuntimeError):
            t.frame.f_back.clear()
        t.insert()
        s.run()
        self.assertEqual(box, [[1, 2, 3]])

    @unittest.skipUnless(PY >= (3, 13), "PEP 667 write-through f_locals is 3.13+")
    def test_write_locals_of_suspended_frame(self):
        def victim():
            x = "before"
            s.schedule_remove()
            return x

        box = []
        t = s.tasklet(lambda: box.append(victim()))()
        s.run()
        t.frame.f_locals["x"] = "written while suspended"
        t.insert()
        s.run()
        self.assertEqual(box, ["written while suspended"])

    def test_current_frames_shows_running_tasklet(self):
        import threading
        box = {}

        def inner():
            box["cur"] = sys._current_frames()[threading.get_ident()].f_code.co_name
        s.tasklet(inner)()
        s.run()
        self.assertEqual(box["cur"], "inner")
        self.assertIs(sys._current_frames()[threading.get_ident()], sys._getframe())

    def test_frame_of_blocked_and_current(self):
        c = s.channel()
        box = {}

        def receiver():
            box["value"] = c.receive()

        def me():
            box["me"] = s.getcurrent().frame.f_code.co_name

        t = s.tasklet(receiver)()
        s.run()
        self.assertTrue(t.blocked)
        self.assertEqual(t.frame.f_code.co_name, "receiver")
        self.assertIsNone(t.frame.f_back)
        s.tasklet(me)()
        s.run()
        self.assertEqual(box["me"], "me")
        self.assertEqual(s.getmain().frame.f_code.co_name, "test_frame_of_blocked_and_current")
        c.send(5)
        s.run()
        self.assertEqual(box["value"], 5)

    def test_format_tasklet_stacks(self):
        def waiting_here():
            s.schedule_remove()
        t = s.tasklet(waiting_here)()
        s.run()
        text = s.format_tasklet_stacks()
        self.assertIn("waiting_here", text)
        t.kill()

    def test_locals_intact_after_many_switches(self):
        def worker(tag, out):
            a, b, c = tag, [tag], {"k": tag}
            big = list(range(tag, tag + 100))
            for i in range(200):
                s.schedule()
                if (a, b, c, big) != (tag, [tag], {"k": tag}, list(range(tag, tag + 100))):
                    out.append(("corrupt", tag, i))
                    return
            out.append(("ok", tag))

        out = []
        for i in range(20):
            s.tasklet(worker)(i, out)
        s.run()
        self.assertEqual(sorted(out), [("ok", i) for i in range(20)])


if __name__ == "__main__":
    unittest.main()
