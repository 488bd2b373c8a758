"""Kill, dealloc and GC of tasklets (switching.md section 4, item 4): a
suspended tasklet whose last reference goes is unwound with TaskletExit; one
that refuses to die is leaked, never freed; the cyclic GC never frees what a
suspended tasklet still uses; __del__ and weakref callbacks may switch."""
import gc
import unittest
import weakref

import scheduler as s
from core_support import CoreTestCase


class DropLastReferenceTests(CoreTestCase):

    def test_drop_suspended_runs_finally(self):
        log = []

        def victim():
            resource = ["held"]
            try:
                s.schedule_remove()
                log.append("resumed normally")
            except Exception as e:
                log.append(("except Exception caught", type(e).__name__))
            except BaseException as e:
                log.append(("BaseException", type(e).__name__, resource))
                raise
            finally:
                log.append("finally")

        t = s.tasklet(victim)()
        s.run()
        self.assertTrue(t.paused)
        wr = weakref.ref(t)
        del t  # no gc.collect(): the reference count alone triggers the kill
        self.assertEqual(log, [("BaseException", "TaskletExit", ["held"]), "finally"])
        gc.collect()
        self.assertIsNone(wr())

    def test_unreferenced_tasklet_suspends_itself(self):
        # Only the run queue and the "current" slot reference it: when it
        # removes itself, the scheduler drops the last reference while
        # switching away, and the tasklet must still be unwound.
        log = []

        def victim():
            try:
                s.schedule_remove()
                log.append("resumed")
            finally:
                log.append("finally")

        s.tasklet(victim)()
        s.run()
        gc.collect()
        self.assertEqual(log, ["finally"])

    def test_drop_under_switch_trap_is_deferred(self):
        log = []

        def victim():
            try:
                s.schedule_remove()
            finally:
                log.append("finally")

        t = s.tasklet(victim)()
        s.run()
        s.switch_trap(1)
        try:
            del t
            gc.collect()
            self.assertEqual(log, [])
        finally:
            s.switch_trap(-1)
        s.run()
        self.assertEqual(log, ["finally"])

    def test_child_kills_its_parent(self):
        log = []

        def child(parent):
            log.append("child kills parent")
            parent.kill()
            log.append(("child continues", parent.alive))

        def parent():
            try:
                s.tasklet(child)(s.getcurrent()).run()
                log.append("parent resumed normally")
            finally:
                log.append("parent finally")

        s.tasklet(parent)()
        s.run()
        self.assertEqual(log, ["child kills parent", "parent finally", ("child continues", False)])

    def test_drop_from_inside_another_tasklet(self):
        log = []

        def victim():
            try:
                s.schedule_remove()
            finally:
                log.append(("victim finally", s.getcurrent() is not s.getmain()))

        def dropper(box):
            log.append("dropper start")
            box.clear()
            log.append("dropper end")

        box = [s.tasklet(victim)()]
        s.run()
        s.tasklet(dropper)(box)
        s.run()
        self.assertEqual(log, ["dropper start", ("victim finally", True), "dropper end"])

    def test_drop_many_at_once(self):
        log = []

        def victim(i):
            try:
                s.schedule_remove()
            finally:
                log.append(i)

        ts = [s.tasklet(victim)(i) for i in range(200)]
        s.run()
        del ts
        self.assertEqual(sorted(log), list(range(200)))

    def test_drop_child_suspended_in_nested_run(self):
        log = []

        def child():
            try:
                s.schedule_remove()
            finally:
                log.append("child finally")

        def parent():
            c = s.tasklet(child)()
            c.run()
            log.append("parent drops")
            del c
            log.append("parent continues")

        s.tasklet(parent)()
        s.run()
        self.assertEqual(log, ["parent drops", "child finally", "parent continues"])

    def test_blocked_tasklet_and_channel_unreachable(self):
        # The blocked frame references the channel, the channel the tasklet:
        # the collector finds the cycle (issue 13, defect 7) and the tasklet
        # is killed (test_core_gc_cycles.py has the cases).
        log = []

        def receiver(c):
            try:
                log.append(("got", c.receive()))
            finally:
                log.append("finally")

        c = s.channel()
        t = s.tasklet(receiver)(c)
        s.run()
        wc = weakref.ref(c)
        del t, c
        gc.collect()
        self.assertEqual(log, ["finally"])
        self.assertIsNone(wc())

    def test_kill_chain_in_finally(self):
        # The finally of one dropped tasklet drops the last reference of another.
        log = []

        def victim(name, holding):
            try:
                s.schedule_remove()
            finally:
                log.append(name)
                holding.clear()

        inner = [s.tasklet(victim)("inner", [])]
        s.run()
        outer = s.tasklet(victim)("outer", inner)
        s.run()
        del outer
        self.assertEqual(log, ["outer", "inner"])

    def test_unstarted_tasklet_dropped(self):
        log = []
        t = s.tasklet().bind(lambda: log.append("ran"), ())
        self.assertTrue(t.alive)
        self.assertFalse(t.scheduled)
        del t
        gc.collect()
        self.assertEqual(log, [])


    def test_finally_that_switches_while_being_killed_by_dealloc(self):
        log = []

        def victim():
            try:
                s.schedule_remove()
            finally:
                log.append("finally start")
                s.schedule()
                log.append("finally end")

        t = s.tasklet(victim)()
        s.run()
        del t
        s.run()
        gc.collect()
        self.assertEqual(log, ["finally start", "finally end"])
        self.assertEqual(s.get_thread_tasklets(), [s.getmain()])


class StubbornTaskletTests(CoreTestCase):

    def test_catches_tasklet_exit_and_finishes(self):
        log = []

        def victim():
            try:
                s.schedule_remove()
            except s.TaskletExit:
                log.append("swallowed")
            log.append("returns")

        t = s.tasklet(victim)()
        s.run()
        del t
        self.assertEqual(log, ["swallowed", "returns"])

    def test_catches_tasklet_exit_and_blocks_again_is_leaked(self):
        # In a child: the leaked tasklet must not be freed, its frames stay
        # usable, and the process exits cleanly.
        proc = self.run_child("""
            import gc, scheduler as s, weakref
            log = []
            class Marker: pass
            def stubborn():
                m = Marker()
                log.append(weakref.ref(m))
                while True:
                    try:
                        s.schedule_remove()
                    except s.TaskletExit:
                        print("swallowed", flush=True)
            t = s.tasklet(stubborn)()
            s.run()
            del t
            gc.collect()
            print("marker alive", log[0]() is not None)
            leftover = [x for x in s.get_thread_tasklets()[1:] if x.alive]
            print("listed", len(leftover), leftover[0].frame.f_code.co_name if leftover else None)
            del leftover
            for i in range(50):
                s.tasklet(lambda: None)()
            s.run()
            gc.collect()
            print("end")
        """, clean_stderr=False)
        self.assertEqual(proc.stdout.splitlines()[:4],
                         ["swallowed", "marker alive True", "listed 1 stubborn", "end"])
        self.assertNotIn("Fatal", proc.stderr)
        self.assertNotIn("Segmentation", proc.stderr)


class GCTests(CoreTestCase):

    def test_subclass_cycle_through_suspended_tasklet(self):
        log = []

        class T(s.tasklet):
            pass

        def victim():
            try:
                s.schedule_remove()
            finally:
                log.append("finally")

        t = T(victim)()
        t.me = t
        s.run()
        wr = weakref.ref(t)
        del t
        self.assertEqual(log, [])
        gc.collect()
        # unreachable: it is killed (finally runs) and freed, or kept alive
        # and still resumable; never freed while suspended
        if wr() is not None:
            self.assertTrue(wr().alive)
            wr().kill()
        self.assertEqual(log, ["finally"])

    def test_cycle_through_suspended_frame(self):
        # tasklet -> args -> holder -> tasklet, with the holder also referenced
        # from the suspended frame (which the GC cannot see): kept alive, and
        # resumable with its locals intact.
        log = []

        def victim(holder):
            data = list(range(100))
            try:
                s.schedule_remove()
                log.append(("resumed", holder["t"] is s.getcurrent(), data == list(range(100))))
            finally:
                log.append("finally")

        holder = {}
        holder["t"] = s.tasklet(victim)(holder)
        holder["self"] = holder
        s.run()
        wr = weakref.ref(holder["t"])
        del holder
        for _ in range(3):
            gc.collect()
        t = wr()
        if t is not None and t.alive:
            t.insert()
            del t
            s.run()
            self.assertEqual(log, [("resumed", True, True), "finally"])
        else:
            self.assertEqual(log, ["finally"])

    def test_gc_with_many_suspended_tasklets(self):
        class Node:
            def __init__(self, v):
                self.v = v
                self.me = self

        results = []

        def worker(i, depth):
            if depth:
                return worker(i, depth - 1)
            nodes = [Node((i, k)) for k in range(5)]
            cyc = {"i": i}
            cyc["self"] = cyc
            for _ in range(3):
                s.schedule_remove()
                gc.collect()
            results.append(i if [n.v for n in nodes] == [(i, k) for k in range(5)]
                           and cyc["self"]["i"] == i else ("bad", i))

        ts = [s.tasklet(worker)(i, i % 20) for i in range(300)]
        for rnd in range(3):
            s.run()
            for _ in range(3):
                gc.collect()
            for t in ts:
                if t.alive:
                    t.insert()
        s.run()
        self.assertEqual(sorted(results, key=str), sorted(range(300), key=str))


    def test_binding_builtins_under_gc_pressure(self):
        # Binding a callable without __code__ (a builtin) must not leave an
        # AttributeError pending while more Python API calls (and
        # collections) run.
        proc = self.run_child("""
            import gc, scheduler as s
            gc.set_threshold(1)
            ts = []
            for i in range(50):
                ts.append(s.tasklet(len))
                ts.append(s.tasklet().bind(print, ()))
            print("done")
        """)
        self.assertEqual(proc.stdout, "done\n")
        self.assertEqual(proc.stderr, "")


class SwitchingFinalizerTests(CoreTestCase):

    def test_del_that_switches(self):
        log = []

        class Switcher:
            def __init__(self, n):
                self.n = n

            def __del__(self):
                log.append(("del start", self.n))
                s.schedule()
                log.append(("del end", self.n))

        def worker(n):
            obj = Switcher(n)
            del obj
            log.append(("worker end", n))

        def other():
            log.append("other")

        s.tasklet(worker)(1)
        s.tasklet(other)()
        s.run()
        self.assertEqual(log, [("del start", 1), "other", ("del end", 1), ("worker end", 1)])

    def test_del_that_switches_when_args_are_released(self):
        # A finishing tasklet releases its arguments; their __del__ switches.
        log = []

        class Switcher:
            def __del__(self):
                log.append("del start")
                s.schedule()
                log.append("del end")

        s.tasklet(lambda obj: log.append("body"))(Switcher())
        s.tasklet(lambda: log.append("other"))()
        s.run()
        s.run()
        self.assertEqual(log.count("del start"), 1)
        self.assertEqual(log.count("del end"), 1)
        self.assertIn("other", log)
        self.assertEqual(log[0], "body")

    def test_weakref_callback_that_switches(self):
        log = []

        class Obj:
            pass

        def cb(ref):
            log.append("cb start")
            s.schedule()
            log.append("cb end")

        def worker():
            o = Obj()
            r = weakref.ref(o, cb)
            del o
            log.append("worker end")
            return r

        s.tasklet(worker)()
        s.tasklet(lambda: log.append("other"))()
        s.run()
        self.assertEqual(log, ["cb start", "other", "cb end", "worker end"])

    def test_gc_finalizers_switching_at_random_points(self):
        # With a tiny GC threshold, collections (and the switching __del__ of
        # cyclic garbage) run inside arbitrary allocations, including ones made
        # by the scheduler while it prepares a switch.
        state = {"made": 0, "deleted": 0}

        class Cyclic:
            def __init__(self):
                self.me = self
                state["made"] += 1

            def __del__(self):
                state["deleted"] += 1
                if s.getcurrent() is not s.getmain() and state["deleted"] % 3 == 0:
                    s.schedule()

        c = s.channel()
        done = []

        def pinger(n):
            for i in range(n):
                Cyclic()
                c.send([i])
            done.append("pinger")

        def ponger(n):
            total = 0
            for _ in range(n):
                Cyclic()
                total += c.receive()[0]
                s.schedule()
            done.append(total)

        def spawner(n):
            for i in range(n):
                Cyclic()
                s.tasklet(lambda: Cyclic())()
                s.schedule()
            done.append("spawner")

        old = gc.get_threshold()
        gc.set_threshold(1, 1, 1)
        try:
            s.tasklet(pinger)(300)
            s.tasklet(ponger)(300)
            s.tasklet(spawner)(100)
            s.run()
        finally:
            gc.set_threshold(*old)
        gc.collect()
        s.run()
        gc.collect()
        self.assertEqual(sorted(done, key=str), sorted(["pinger", sum(range(300)), "spawner"], key=str))
        self.assertEqual(state["deleted"], state["made"])

    def test_del_dropping_suspended_tasklet_during_gc(self):
        # Collecting garbage whose __del__ drops the last reference to a
        # suspended tasklet: the kill runs from inside the collection.
        log = []

        def victim():
            try:
                s.schedule_remove()
            finally:
                log.append("victim finally")

        class Holder:
            def __init__(self, t):
                self.t = t
                self.me = self

            def __del__(self):
                log.append("holder del")
                self.t = None

        t = s.tasklet(victim)()
        s.run()
        Holder(t)
        del t
        gc.collect()
        # both finalizers run, in either order
        self.assertEqual(sorted(log), ["holder del", "victim finally"])


if __name__ == "__main__":
    unittest.main()
