"""contextvars across switches (switching.md section 4, item 7): every tasklet
has its own current Context; new tasklets start with an empty one (not a copy
of their creator's); ContextVar caches never leak a value across tasklets."""
import contextvars
import decimal
import gc
import unittest
import weakref

import scheduler as s
from core_support import CoreTestCase

var = contextvars.ContextVar("var", default="default")
other_var = contextvars.ContextVar("other_var")


class ContextVarTests(CoreTestCase):

    def test_new_tasklet_starts_with_empty_context(self):
        seen = {}
        token = var.set("main's")
        try:
            def child():
                seen["var"] = var.get()
                seen["len"] = len(contextvars.copy_context())
                seen["other"] = other_var.get("unset")

            other_var.set("main other")
            s.tasklet(child)()
            s.run()
            # also when created from a tasklet with values of its own
            def parent():
                var.set("parent's")
                s.tasklet(child)()
                s.schedule()
            s.tasklet(parent)()
            s.run()
            self.assertEqual(var.get(), "main's")
        finally:
            var.reset(token)
        self.assertEqual(seen, {"var": "default", "len": 0, "other": "unset"})

    def test_values_isolated_per_tasklet(self):
        seen = []

        def worker(tag):
            var.set(tag)
            for i in range(50):
                s.schedule()
                if var.get() != tag:
                    seen.append(("wrong", tag, var.get()))
                    return
                var.set(tag)
            seen.append(("ok", tag))

        for tag in "abcde":
            s.tasklet(worker)(tag)
        before = var.get()
        s.run()
        self.assertEqual(var.get(), before)
        self.assertEqual(sorted(seen), [("ok", t) for t in "abcde"])

    def test_cache_invalidated_across_switch(self):
        # get (fills the per-thread cache) -> switch -> set in the other
        # tasklet -> switch back -> get must see this tasklet's value again.
        log = []

        def a():
            var.set("A")
            for _ in range(20):
                log.append(("a", var.get()))
                s.schedule()

        def b():
            for i in range(20):
                log.append(("b before set", var.get()))
                var.set("B%d" % i)
                log.append(("b", var.get()))
                s.schedule()

        def c():
            for _ in range(20):
                log.append(("c", var.get()))  # never set here
                s.schedule()

        s.tasklet(a)()
        s.tasklet(b)()
        s.tasklet(c)()
        s.run()
        self.assertEqual({v for k, v in log if k == "a"}, {"A"})
        self.assertEqual({v for k, v in log if k == "c"}, {"default"})
        self.assertEqual([v for k, v in log if k == "b before set"],
                         ["default"] + ["B%d" % i for i in range(19)])

    def test_main_cache_after_tasklets(self):
        token = var.set("main")
        try:
            self.assertEqual(var.get(), "main")

            def t():
                var.set("tasklet")
                self.assertEqual(var.get(), "tasklet")
            s.tasklet(t)()
            s.run()
            self.assertEqual(var.get(), "main")
        finally:
            var.reset(token)

    def test_context_run_around_switch(self):
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in ctx")
        log = []

        def inside():
            log.append(("inside", var.get()))
            s.schedule()
            log.append(("inside after switch", var.get()))
            var.set("changed in ctx")
            return "ret"

        def a():
            var.set("a's own")
            log.append(("ctx.run", ctx.run(inside)))
            log.append(("a after run", var.get()))

        def b():
            log.append(("b", var.get()))
            try:
                ctx.run(lambda: None)
            except RuntimeError as e:
                log.append(("b enter", "already entered" in str(e)))
            other = contextvars.Context()
            log.append(("b other ctx", other.run(lambda: (var.set("o"), var.get())[1])))
            log.append(("b after", var.get()))

        s.tasklet(a)()
        s.tasklet(b)()
        s.run()
        self.assertEqual(log, [
            ("inside", "in ctx"), ("b", "default"), ("b enter", True),
            ("b other ctx", "o"), ("b after", "default"),
            ("inside after switch", "in ctx"), ("ctx.run", "ret"), ("a after run", "a's own")])
        self.assertEqual(ctx[var], "changed in ctx")

    def test_context_run_entered_in_two_tasklets_nested(self):
        # Each tasklet enters its own Context and switches inside it; exits
        # happen in a different order than the entries.
        c1, c2 = contextvars.Context(), contextvars.Context()
        log = []

        def runner(ctx, tag, rounds):
            def body():
                var.set(tag)
                for _ in range(rounds):
                    s.schedule()
                    log.append((tag, var.get()))
            ctx.run(body)
            log.append((tag, "exited", var.get()))

        s.tasklet(runner)(c1, "one", 3)
        s.tasklet(runner)(c2, "two", 1)
        s.run()
        self.assertEqual([x for x in log if x[0] == "one"],
                         [("one", "one")] * 3 + [("one", "exited", "default")])
        self.assertEqual([x for x in log if x[0] == "two"],
                         [("two", "two"), ("two", "exited", "default")])
        self.assertEqual((c1[var], c2[var]), ("one", "two"))

    def test_killed_inside_context_run(self):
        ctx = contextvars.Context()
        log = []

        def body():
            var.set("in ctx")
            try:
                s.schedule_remove()
            finally:
                log.append(("finally", var.get()))

        def worker():
            var.set("worker")
            try:
                ctx.run(body)
            finally:
                log.append(("after run", var.get()))

        t = s.tasklet(worker)()
        s.run()
        t.kill()
        self.assertEqual(log, [("finally", "in ctx"), ("after run", "worker")])
        self.assertEqual(ctx.run(var.get), "in ctx")  # it can be entered again
        self.assertEqual(var.get(), "default")

    def test_decimal_localcontext_across_switches(self):
        D = decimal.Decimal
        log = []

        def a():
            with decimal.localcontext() as ctx:
                ctx.prec = 5
                s.schedule()
                log.append(("a", str(D(1) / D(3))))
            log.append(("a after", decimal.getcontext().prec))

        def b():
            log.append(("b", decimal.getcontext().prec))
            with decimal.localcontext() as ctx:
                ctx.prec = 10
                s.schedule()
                log.append(("b in", str(D(1) / D(3))))

        main_prec = decimal.getcontext().prec
        s.tasklet(a)()
        s.tasklet(b)()
        s.run()
        self.assertEqual(decimal.getcontext().prec, main_prec)
        self.assertEqual(sorted(log), sorted([
            ("a", "0.33333"), ("a after", 28), ("b", 28), ("b in", "0.3333333333")]))

    def test_context_released_when_tasklet_ends(self):
        class Value:
            pass
        refs = []

        def finishing():
            v = Value()
            refs.append(weakref.ref(v))
            var.set(v)

        def killed():
            v = Value()
            refs.append(weakref.ref(v))
            var.set(v)
            del v
            s.schedule_remove()

        s.tasklet(finishing)()
        t = s.tasklet(killed)()
        s.run()
        self.assertIsNone(refs[0]())
        self.assertIsNotNone(refs[1]())  # still in the suspended tasklet's context
        t.kill()
        gc.collect()
        self.assertIsNone(refs[1]())

    def test_context_survives_gc_while_suspended(self):
        def worker(tag, out):
            var.set([tag])
            s.schedule_remove()
            out.append(var.get())

        out = []
        ts = [s.tasklet(worker)(i, out) for i in range(50)]
        s.run()
        gc.collect()
        for t in ts:
            t.insert()
        s.run()
        self.assertEqual(sorted(out), [[i] for i in range(50)])


if __name__ == "__main__":
    unittest.main()
