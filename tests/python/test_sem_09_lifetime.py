"""docs/design.md "Lifetime": lifetime and reference counts."""
import gc
import sys
import unittest
import weakref

import scheduler as s
from spec_support import SchedulerTestCase, assert_example, assert_snippet


class Examples(unittest.TestCase):
    def test_s18_life(self):
        assert_example(self, "s18_life")


class Obj:
    pass


class Lifetime(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)

    def test_getcurrent_identity_stable(self):
        m = s.getcurrent()
        w = weakref.ref(m)
        del m
        gc.collect()
        self.assertIs(w(), s.getcurrent())
        self.assertIs(s.getcurrent(), s.getmain())
        self.assertIs(s.get_schedule_manager(), s.get_schedule_manager())

    def test_getcurrent_identity_fresh_process(self):
        assert_snippet(self, """
            import scheduler as s, gc
            a = id(s.getcurrent()); gc.collect()
            print(s.get_number_of_active_schedule_managers(), a == id(s.getcurrent()),
                  s.getcurrent() is s.getmain(), s.getmain().is_main, s.getmain().thread_id != 0)
        """, "1 True True True True")

    def test_queue_reference(self):
        t = s.tasklet(lambda: None)
        r0 = sys.getrefcount(t)
        t()
        self.assertEqual(sys.getrefcount(t), r0 + 1)
        t.remove()
        self.assertEqual(sys.getrefcount(t), r0)
        t.insert()
        self.assertEqual(sys.getrefcount(t), r0 + 1)
        s.run()
        self.assertEqual(sys.getrefcount(t), r0)

    def test_channel_reference(self):
        c = s.channel()
        t = s.tasklet(c.receive)
        r0 = sys.getrefcount(t)
        t()
        s.run()
        self.assertTrue(t.blocked)
        self.assertEqual(sys.getrefcount(t), r0 + 1)  # the channel's (no longer the queue's)
        c.send(None)  # preference -1: the receiver runs next and finishes
        self.assertFalse(t.alive)
        self.assertEqual(sys.getrefcount(t), r0)

    def test_tasklet_references_callable_and_arguments(self):
        class F:
            def __call__(self, *a, **k):
                pass
        f, arg, kw = F(), Obj(), Obj()
        wf, wa, wk = weakref.ref(f), weakref.ref(arg), weakref.ref(kw)
        t = s.tasklet(f)
        t.setup(arg, k=kw)
        t.remove()
        del f, arg, kw
        gc.collect()
        self.assertIsNotNone(wf())
        self.assertIsNotNone(wa())
        self.assertIsNotNone(wk())
        del t
        gc.collect()
        self.assertIsNone(wf())
        self.assertIsNone(wa())
        self.assertIsNone(wk())

    def test_tasklet_references_handler_and_getter(self):
        h, g = (lambda info: None), (lambda t: None)
        wh, wg = weakref.ref(h), weakref.ref(g)
        t = s.tasklet()
        t.exception_handler = h
        t.context_manager_getter = g
        del h, g
        gc.collect()
        self.assertIs(t.exception_handler, wh())
        self.assertIs(t.context_manager_getter, wg())
        del t
        gc.collect()
        self.assertIsNone(wh())
        self.assertIsNone(wg())

    def test_suspended_stack_keeps_locals_alive(self):
        box = {}

        def f():
            local = Obj()
            box["w"] = weakref.ref(local)
            s.schedule_remove()
            box["still"] = local is box["w"]()
        t = s.tasklet(f)()
        s.run()
        gc.collect()
        self.assertIsNotNone(box["w"]())
        t.insert()
        s.run()
        self.assertTrue(box["still"])
        gc.collect()
        self.assertIsNone(box["w"]())

    def test_killed_suspended_tasklet_releases_locals(self):
        box = {}

        def f():
            local = Obj()
            box["w"] = weakref.ref(local)
            s.schedule_remove()
        t = s.tasklet(f)()
        s.run()
        t.kill()
        gc.collect()
        self.assertIsNone(box["w"]())

    def test_finished_tasklet_freed(self):
        w = weakref.ref(s.tasklet(lambda: None)())
        s.run()
        gc.collect()
        self.assertIsNone(w())

    def test_main_tasklet_does_not_reference_manager(self):
        mgr = s.get_schedule_manager()
        self.assertNotIn(mgr, gc.get_referents(s.getmain()))
        t = s.tasklet(lambda: None)
        self.assertNotIn(mgr, gc.get_referents(t))

    def test_tasklet_counters(self):
        a0, t0 = s.get_active_tasklet_count(), s.get_all_time_tasklet_count()
        ts = [s.tasklet(lambda: None) for _ in range(3)]
        self.assertEqual(s.get_active_tasklet_count(), a0 + 3)
        self.assertEqual(s.get_all_time_tasklet_count(), t0 + 3)
        for t in ts:
            t()
        s.run()  # dead tasklets still exist
        self.assertEqual(s.get_active_tasklet_count(), a0 + 3)
        del ts, t
        gc.collect()
        self.assertEqual(s.get_active_tasklet_count(), a0)
        self.assertEqual(s.get_all_time_tasklet_count(), t0 + 3)

    def test_channel_counter(self):
        n0 = s.get_number_of_active_channels()
        cs = [s.channel() for _ in range(4)]
        self.assertEqual(s.get_number_of_active_channels(), n0 + 4)
        del cs
        gc.collect()
        self.assertEqual(s.get_number_of_active_channels(), n0)

    def test_counters_in_fresh_process(self):
        assert_snippet(self, """
            import scheduler as s, gc
            print(s.get_number_of_active_schedule_managers(), s.get_active_tasklet_count(),
                  s.get_all_time_tasklet_count(), s.get_number_of_active_channels())
            t = s.tasklet(lambda: None)
            print(s.get_number_of_active_schedule_managers(), s.get_active_tasklet_count(),
                  s.get_all_time_tasklet_count())
            c = s.channel(); print(s.get_number_of_active_channels())
            del t, c; gc.collect()
            print(s.get_active_tasklet_count(), s.get_all_time_tasklet_count(), s.get_number_of_active_channels())
        """, """
            0 0 0 0
            1 2 2
            1
            1 2 0
        """)

    def test_tasklet_second_positional_argument_rejected(self):
        # Reference bug (is-main flag, segfault at exit): tasklet(f, x) is rejected with TypeError.
        assert_snippet(self, """
            import scheduler as s
            for extra in (True, 0, None):
                try: s.tasklet(print, extra); print("accepted")
                except TypeError: print("TypeError")
            s.run(); print("end")
        """, """
            TypeError
            TypeError
            TypeError
            end
        """)


if __name__ == "__main__":
    unittest.main()
