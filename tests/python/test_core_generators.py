"""Generators, coroutines and async generators suspended inside tasklets
(switching.md section 4, item 3)."""
import asyncio
import gc
import sys
import types
import unittest
import weakref

import scheduler as s
from core_support import CoreTestCase


class GeneratorTests(CoreTestCase):

    def test_switch_inside_generator_body(self):
        def gen(tag, n):
            for i in range(n):
                local = (tag, i)
                s.schedule()
                assert local == (tag, i)
                yield local

        out = {}

        def consumer(tag):
            out[tag] = list(gen(tag, 20))

        for tag in "abc":
            s.tasklet(consumer)(tag)
        s.run()
        self.assertEqual(out, {tag: [(tag, i) for i in range(20)] for tag in "abc"})

    def test_generator_created_in_a_resumed_in_b(self):
        c = s.channel()
        log = []

        def gen():
            caller = sys._getframe(1).f_code.co_name
            x = yield caller
            while True:
                caller = sys._getframe(1).f_code.co_name
                x = yield (caller, x)

        def a():
            g = gen()
            log.append(next(g))
            log.append(g.send(1))
            c.send(g)

        def b():
            g = c.receive()
            log.append(g.send(2))
            log.append(g.send(3))
            g.close()
            log.append(g.gi_frame)

        s.tasklet(a)()
        s.tasklet(b)()
        s.run()
        self.assertEqual(log, ["a", ("a", 1), ("b", 2), ("b", 3), None])

    def test_generator_already_executing(self):
        state = {}

        def gen():
            s.schedule_remove()  # suspends the tasklet with the generator running
            yield "first"
            yield "second"

        def a():
            g = state["g"] = gen()
            state["a1"] = next(g)
            state["a2"] = next(g)

        def b():
            g = state["g"]
            state["running"] = g.gi_running
            try:
                next(g)
            except ValueError as e:
                state["b"] = str(e)
            try:
                g.close()
            except ValueError as e:
                state["b_close"] = str(e)

        ta = s.tasklet(a)()
        s.run()
        s.tasklet(b)()
        s.run()
        self.assertTrue(state["running"])
        self.assertEqual(state["b"], "generator already executing")
        self.assertEqual(state["b_close"], "generator already executing")
        ta.insert()
        s.run()
        self.assertEqual((state["a1"], state["a2"]), ("first", "second"))

    def test_coroutine_already_executing(self):
        state = {}

        @types.coroutine
        def suspend_tasklet():
            s.schedule_remove()
            yield "step"

        async def coro():
            await suspend_tasklet()
            return "done"

        def a():
            c = state["c"] = coro()
            state["step"] = c.send(None)
            try:
                c.send(None)
            except StopIteration as e:
                state["result"] = e.value

        def b():
            try:
                state["c"].send(None)
            except ValueError as e:
                state["b"] = str(e)

        ta = s.tasklet(a)()
        s.run()
        s.tasklet(b)()
        s.run()
        self.assertEqual(state["b"], "coroutine already executing")
        ta.insert()
        s.run()
        self.assertEqual((state["step"], state["result"]), ("step", "done"))

    def test_yield_from_chain_across_tasklets(self):
        def leaf(n):
            for i in range(n):
                got = yield i
                s.schedule()
                assert got == i * 10, (got, i)
            return "leaf-done"

        def middle():
            r = yield from leaf(5)
            yield r

        out = []

        def driver(g, tag):
            v = next(g)
            while True:
                s.schedule()
                try:
                    v = g.send(v * 10) if isinstance(v, int) else next(g)
                except StopIteration:
                    break
                out.append((tag, v))

        g1, g2 = middle(), middle()
        s.tasklet(driver)(g1, "x")
        s.tasklet(driver)(g2, "y")
        s.run()
        for tag in "xy":
            self.assertEqual([v for t, v in out if t == tag], [1, 2, 3, 4, "leaf-done"])

    def test_close_generator_suspended_in_other_tasklet(self):
        log = []

        def gen():
            try:
                yield 1
                yield 2
            finally:
                log.append(("gen finally", s.getcurrent() is box["b"]))

        box = {}

        def a():
            box["g"] = gen()
            next(box["g"])
            s.schedule()

        def b():
            box["g"].close()

        s.tasklet(a)()
        box["b"] = s.tasklet(b)()
        s.run()
        self.assertEqual(log, [("gen finally", True)])


class GeneratorExceptionStateTests(CoreTestCase):

    def test_exc_state_of_generator_suspended_in_except(self):
        # The tasklet is suspended inside a generator that is inside an except
        # block: the generator's exception state is on the tasklet's chain.
        log = []

        def gen():
            try:
                raise ValueError("in gen")
            except ValueError:
                s.schedule()
                log.append(("gen resumed", type(sys.exc_info()[1]).__name__))
                yield 1
                log.append(("gen after yield", type(sys.exc_info()[1]).__name__))
            yield 2

        def a():
            g = gen()
            log.append(("a got", next(g)))
            log.append(("a exc", sys.exc_info()[1]))
            s.schedule()
            log.append(("a got", next(g)))

        def b():
            log.append(("b exc", sys.exc_info()[1]))
            try:
                raise KeyError
            except KeyError as e:
                log.append(("b context", e.__context__))

        s.tasklet(a)()
        s.tasklet(b)()
        s.run()
        self.assertEqual(log, [("b exc", None), ("b context", None),
                               ("gen resumed", "ValueError"), ("a got", 1), ("a exc", None),
                               ("gen after yield", "ValueError"), ("a got", 2)])

    def test_generator_yielding_in_except_resumed_elsewhere(self):
        log = []

        def gen():
            try:
                raise ValueError("saved")
            except ValueError:
                yield "in except"
                log.append(("gen sees", type(sys.exc_info()[1]).__name__))
            yield "after"

        g = gen()
        next(g)  # main: gen's exception state saved in the generator

        def b():
            try:
                raise KeyError("b's")
            except KeyError:
                log.append(("b next", next(g)))
                log.append(("b sees", type(sys.exc_info()[1]).__name__))

        s.tasklet(b)()
        s.run()
        self.assertEqual(log, [("gen sees", "ValueError"), ("b next", "after"),
                               ("b sees", "KeyError")])
        self.assertEqual(sys.exc_info(), (None, None, None))

    def check_exceptions_work(self):
        for _ in range(3):
            try:
                raise KeyError("probe")
            except KeyError as e:
                self.assertIsNone(e.__context__)
                self.assertIs(sys.exc_info()[1], e)
            self.assertEqual(sys.exc_info(), (None, None, None))
            gc.collect()

    def test_suspended_in_generator_then_killed_then_collected(self):
        log = []

        def gen():
            try:
                raise ValueError("gen's")
            except ValueError:
                try:
                    s.schedule_remove()
                finally:
                    log.append("gen finally")
                yield 1

        def body():
            g = gen()
            next(g)
            log.append("not reached")

        t = s.tasklet(body)()
        s.run()
        self.check_exceptions_work()
        t.kill()
        self.assertEqual(log, ["gen finally"])
        del t
        self.check_exceptions_work()

    def test_generator_outlives_killed_tasklet(self):
        # The tasklet is killed while suspended in except: blocks of its own
        # and of a generator that is still referenced from outside.
        box = {}

        def gen():
            try:
                raise ValueError("gen's")
            except ValueError:
                yield "in except"
                s.schedule_remove()
            yield "unreachable"

        def body():
            g = box["g"] = gen()
            try:
                raise KeyError("body's")
            except KeyError:
                next(g)
                next(g)

        t = s.tasklet(body)()
        s.run()
        self.assertTrue(t.paused)
        wg = weakref.ref(box["g"])
        t.kill()
        self.assertFalse(t.alive)
        self.assertIsNone(box["g"].gi_frame)  # it was closed by the exception
        self.check_exceptions_work()
        del t
        box.clear()
        gc.collect()
        self.assertIsNone(wg())
        self.check_exceptions_work()

    def test_tasklet_dropped_while_suspended_in_generator(self):
        log = []

        def gen():
            try:
                raise ValueError("gen's")
            except ValueError:
                try:
                    s.schedule_remove()
                except BaseException as e:
                    log.append(type(e).__name__)
                    raise
                yield 1

        def body():
            for _ in gen():
                pass

        t = s.tasklet(body)()
        s.run()
        del t
        gc.collect()
        self.assertEqual(log, ["TaskletExit"])
        self.check_exceptions_work()


class AsyncTests(CoreTestCase):

    def test_asyncio_run_in_tasklet(self):
        async def leaf(i):
            await asyncio.sleep(0)
            if i == 3:
                raise KeyError(i)
            return i * 2

        async def middle(i):
            try:
                return await leaf(i)
            except KeyError:
                return "caught"

        async def top():
            results = await asyncio.gather(*(middle(i) for i in range(6)))
            q = asyncio.Queue()

            async def producer():
                for i in range(5):
                    await q.put(i)
                    await asyncio.sleep(0)
                await q.put(None)

            async def consumer():
                got = []
                while (item := await q.get()) is not None:
                    got.append(item)
                return got

            _, got = await asyncio.gather(producer(), consumer())
            return results, got

        box = {}

        def body():
            box["r"] = asyncio.run(top())

        s.tasklet(body)()
        s.run()
        self.assertEqual(box["r"], ([0, 2, 4, "caught", 8, 10], [0, 1, 2, 3, 4]))
        # and the thread's running-loop state is clean again
        with self.assertRaises(RuntimeError):
            asyncio.get_running_loop()
        self.assertEqual(asyncio.run(leaf(1)), 2)

    def test_tasklet_switch_inside_coroutine(self):
        log = []

        async def coro():
            for i in range(3):
                await asyncio.sleep(0)
                s.schedule()  # the whole event loop's tasklet yields
                log.append(("coro", i))
            return "coro done"

        def loop_tasklet():
            log.append(asyncio.run(coro()))

        def other():
            for i in range(3):
                log.append(("other", i))
                s.schedule()

        s.tasklet(loop_tasklet)()
        s.tasklet(other)()
        s.run()
        self.assertEqual(log[-1], "coro done")
        self.assertEqual([x for x in log if x[0] == "coro"], [("coro", i) for i in range(3)])
        self.assertEqual([x for x in log if x[0] == "other"], [("other", i) for i in range(3)])

    def test_async_generator_switching(self):
        log = []

        async def agen(n):
            try:
                for i in range(n):
                    s.schedule()
                    yield i
                    await asyncio.sleep(0)
            finally:
                log.append("agen finally")

        async def main():
            out = []
            async for v in agen(4):
                out.append(v)
            g = agen(10)
            out.append(await g.__anext__())
            await g.aclose()
            return out

        def loop_tasklet():
            log.append(asyncio.run(main()))

        def other():
            for _ in range(6):
                s.schedule()
                log.append("other")

        s.tasklet(loop_tasklet)()
        s.tasklet(other)()
        s.run()
        self.assertEqual(log.count("agen finally"), 2)
        self.assertIn([0, 1, 2, 3, 0], log)
        self.assertEqual(log.count("other"), 6)

    def test_coroutine_driven_by_two_tasklets(self):
        # A coroutine stepped alternately from two tasklets, suspended in an
        # await chain 10 deep between steps.
        @types.coroutine
        def step(v):
            got = yield v
            return got

        async def chain(depth, v):
            if depth == 0:
                return await step(v)
            return await chain(depth - 1, v) + 1

        async def runner():
            total = 0
            for i in range(6):
                total += await chain(10, i)
            return total

        box = {"c": runner(), "v": None}
        results = []

        def driver(tag):
            try:
                while "result" not in box:
                    got = box["c"].send(box["v"])
                    box["v"] = got * 100
                    results.append((tag, got))
                    s.schedule()
            except StopIteration as e:
                box["result"] = e.value

        s.tasklet(driver)("a")
        s.tasklet(driver)("b")
        s.run()
        self.assertEqual(results, [("ab"[i % 2], i) for i in range(6)])
        self.assertEqual(box["result"], sum(i * 100 + 10 for i in range(6)))


if __name__ == "__main__":
    unittest.main()
