"""The Stackless API beside the reference's (docs/scheduler.md): keyword
forms, schedule(retval), tempval, the introspection attributes, bind_thread,
send_sequence, schedule_all, channel iteration, get_thread_info(thread_id),
scheduler.threads and runcount, and the pickling names."""
import copy
import pickle
import threading
import unittest

import scheduler as s


class Base(unittest.TestCase):
    def setUp(self):
        self.nested = s.get_use_nested_tasklets()
        s.set_use_nested_tasklets(True)
        self.log = []

    def tearDown(self):
        for t in s.get_thread_tasklets()[1:]:
            if t.alive and not t.is_current:
                t.kill()
        s.run()
        s.set_use_nested_tasklets(self.nested)
        self.assertEqual(s.getruncount(), 1)

    def record(self, *args, **kwargs):
        self.log.append((args, kwargs))


class KeywordForms(Base):
    def test_tasklet_stackless_form(self):
        t = s.tasklet(self.record, (1, 2), {"k": 3})
        self.assertTrue(t.alive)
        self.assertFalse(t.scheduled)  # bound, not queued: as bind()
        self.assertTrue(t.paused)
        t.insert()
        s.run()
        self.assertEqual(self.log, [((1, 2), {"k": 3})])

    def test_tasklet_keywords(self):
        t = s.tasklet(func=self.record, args=(1,), kwargs={"a": 2})
        t.insert()
        s.run()
        t2 = s.tasklet(func=self.record)
        self.assertFalse(t2.alive)
        t2(9)
        s.run()
        self.assertEqual(self.log, [((1,), {"a": 2}), ((9,), {})])

    def test_tasklet_reference_forms_still_work(self):
        self.assertFalse(s.tasklet(foo=1).alive)  # unknown keywords ignored
        self.assertFalse(s.tasklet(callable=self.record).alive)  # the reference ignores it
        s.tasklet(self.record, bar=2)(5)
        s.run()
        self.assertEqual(self.log, [((5,), {})])

    def test_tasklet_bad_args(self):
        with self.assertRaisesRegex(TypeError, "tuple"):
            s.tasklet(self.record, 1)
        with self.assertRaisesRegex(TypeError, "tuple"):
            s.tasklet(self.record, None)  # the reference's rule for a positional None
        with self.assertRaisesRegex(TypeError, "dict"):
            s.tasklet(self.record, (), [1])
        with self.assertRaisesRegex(TypeError, "callable"):
            s.tasklet(args=(1,))
        t = s.tasklet(self.record, args=None)  # keyword None: not bound
        self.assertFalse(t.alive)

    def test_bind_keywords(self):
        t = s.tasklet()
        self.assertIs(t.bind(func=self.record, args=(1,), kwargs={"x": 1}), t)
        self.assertTrue(t.alive)
        t.insert()
        s.run()
        t = s.tasklet().bind(callable=self.record, args=(2,))
        t.insert()
        s.run()
        self.assertEqual(self.log, [((1,), {"x": 1}), ((2,), {})])
        with self.assertRaisesRegex(TypeError, "twice"):
            s.tasklet().bind(self.record, func=self.record)
        with self.assertRaises(TypeError):
            s.tasklet().bind(nonsense=1)


class RetvalAndTempval(Base):
    def test_schedule_returns_retval(self):
        def body():
            self.log.append(s.schedule("a"))
            self.log.append(s.schedule())
            self.log.append(s.schedule(retval=7))
        s.tasklet(body)()
        s.run()
        self.assertEqual(self.log, ["a", None, 7])

    def test_schedule_remove_returns_retval(self):
        def body():
            self.log.append(s.schedule_remove("r"))
        t = s.tasklet(body)()
        s.run()
        self.assertEqual(t.tempval, "r")  # what it will resume with
        t.insert()
        s.run()
        self.assertEqual(self.log, ["r"])

    def test_bad_arguments(self):
        for call in (lambda: s.schedule(1, 2), lambda: s.schedule(foo=1),
                     lambda: s.schedule_remove(1, retval=2)):
            with self.assertRaises(TypeError):
                call()

    def test_from_main(self):
        self.assertEqual(s.schedule(3), 3)
        self.assertEqual(s.schedule_remove(retval=4), 4)
        self.assertIsNone(s.schedule())

    def test_tempval_set_changes_the_result(self):
        def body():
            self.log.append(s.schedule_remove("mine"))
        t = s.tasklet(body)()
        s.run()
        t.tempval = "yours"
        t.insert()
        s.run()
        self.assertEqual(self.log, ["yours"])
        self.assertIsNone(t.tempval)  # cleared when it ends

    def test_tempval_of_channel_partners(self):
        ch = s.channel()
        snd = s.tasklet(ch.send)("offered")
        s.run()
        self.assertEqual(snd.tempval, "offered")
        snd.tempval = "replaced"  # the value it sends
        self.assertEqual(ch.receive(), "replaced")
        rcv = s.tasklet(lambda: self.log.append(ch.receive()))()
        s.run()
        self.assertIsNone(rcv.tempval)
        with self.assertRaises(RuntimeError):
            rcv.tempval = 1  # waits for a value: nothing to replace
        ch.preference = 1  # the sender goes on: the receiver is woken, not run
        ch.send("v")
        self.assertEqual(rcv.tempval, "v")
        rcv.tempval = "w"
        s.run()
        self.assertEqual(self.log, ["w"])

    def test_tempval_none_sent(self):
        ch = s.channel()
        snd = s.tasklet(ch.send)(1)
        s.run()
        del snd.tempval
        self.assertIsNone(ch.receive())


class Introspection(Base):
    def test_restorable(self):
        t = s.tasklet(s.schedule_remove)()
        self.assertTrue(t.restorable)  # no C state yet
        s.run()
        self.assertFalse(t.restorable)  # suspended on its own C stack
        self.assertFalse(s.getmain().restorable)
        t.insert()
        s.run()
        self.assertTrue(t.restorable)  # ended: nothing left
        self.assertTrue(s.tasklet().restorable)

    def test_nesting_level(self):
        t = s.tasklet(s.schedule_remove)()
        self.assertEqual(t.nesting_level, 0)

        def inner():
            self.log.append(("outer waits", outer.nesting_level))

        def body():
            self.log.append(("self", s.getcurrent().nesting_level))
            s.tasklet(inner)().run()
        outer = s.tasklet(body)()
        s.run()
        self.assertEqual(self.log, [("self", 1), ("outer waits", 2)])
        self.assertEqual(t.nesting_level, 1)
        self.assertGreaterEqual(s.getmain().nesting_level, 1)
        t.kill()
        self.assertEqual(t.nesting_level, 0)

    def test_recursion_depth(self):
        def rec(n):
            if n:
                return rec(n - 1)
            return s.schedule_remove()
        t = s.tasklet(rec)(5)
        self.assertEqual(t.recursion_depth, 0)
        s.run()
        self.assertEqual(t.recursion_depth, 6)  # rec x 6 (schedule_remove is C)

        def me():
            self.log.append(s.getcurrent().recursion_depth)
        s.tasklet(me)()
        s.run()
        self.assertEqual(self.log, [1])
        self.assertGreaterEqual(s.getmain().recursion_depth, 1)
        t.kill()
        self.assertEqual(t.recursion_depth, 0)


class BindThread(Base):
    def run_in_thread(self, body):
        ready, done = threading.Event(), threading.Event()
        box = {}

        def main():
            s.getcurrent()  # this thread uses the scheduler
            box["id"] = threading.get_ident()
            ready.set()
            done.wait(10)
            box["result"] = body()
        th = threading.Thread(target=main)
        th.start()
        ready.wait(10)
        return th, done, box

    def test_new_tasklet_moves_and_runs_there(self):
        where = []
        th, done, box = self.run_in_thread(lambda: s.run())
        t = s.tasklet().bind(lambda: where.append(threading.get_ident()), ())
        self.assertIsNone(t.bind_thread(box["id"]))
        self.assertEqual(t.thread_id, box["id"])
        t.insert()  # into its new thread's queue
        self.assertEqual(s.getruncount(), 1)
        done.set()
        th.join(10)
        self.assertEqual(where, [box["id"]])

    def test_back_to_the_calling_thread(self):
        th, done, box = self.run_in_thread(lambda: None)
        t = s.tasklet()
        t.bind_thread(box["id"])
        self.assertEqual(t.thread_id, box["id"])
        t.bind_thread()
        self.assertEqual(t.thread_id, threading.get_ident())
        t.bind(self.record, (1,))
        t.insert()
        s.run()
        self.assertEqual(self.log, [((1,), {})])
        done.set()
        th.join(10)

    def test_queued_new_tasklet_moves_to_that_queue(self):
        where = []
        th, done, box = self.run_in_thread(lambda: s.run())
        t = s.tasklet(lambda: where.append(threading.get_ident()))()
        s.tasklet(self.record)("stays")
        self.assertEqual(s.getruncount(), 3)
        t.bind_thread(box["id"])
        self.assertEqual(s.getruncount(), 2)
        self.assertTrue(t.scheduled)
        done.set()
        th.join(10)
        self.assertEqual(where, [box["id"]])
        t.bind_thread()  # ended: may come back
        s.run()
        self.assertEqual(self.log, [(("stays",), {})])

    def test_refused(self):
        t = s.tasklet(s.schedule_remove)()
        t.bind_thread()  # queued, never ran, this thread already: nothing to do
        self.assertTrue(t.scheduled)
        s.run()
        with self.assertRaisesRegex(RuntimeError, "C state"):
            t.bind_thread()  # started: its C stack belongs to this thread
        with self.assertRaisesRegex(RuntimeError, "main"):
            s.getmain().bind_thread()
        with self.assertRaises(ValueError):
            s.tasklet().bind_thread(-5)
        with self.assertRaises(TypeError):
            s.tasklet().bind_thread("x")


class ChannelAdditions(Base):
    def test_send_sequence(self):
        ch = s.channel()
        got = []

        def receiver():
            for _ in range(4):
                got.append(ch.receive())
        s.tasklet(receiver)()
        self.assertEqual(ch.send_sequence(iter([1, 2, 3, 4])), 4)
        self.assertEqual(got, [1, 2, 3, 4])
        self.assertEqual(ch.send_sequence([]), 0)

    def test_send_sequence_stops_at_an_error(self):
        ch = s.channel()
        got = []
        s.tasklet(lambda: got.append(ch.receive()))()
        with self.assertRaisesRegex(RuntimeError, "Deadlock"):
            ch.send_sequence([1, 2])
        self.assertEqual(got, [1])
        with self.assertRaises(TypeError):
            ch.send_sequence(5)

    def test_schedule_all(self):
        ch = s.channel()
        self.assertFalse(ch.schedule_all)
        ch.schedule_all = True
        self.assertTrue(ch.schedule_all)

        def receiver():
            self.log.append(("got", ch.receive()))

        def sender():
            ch.send("x")
            self.log.append("sender after send")
        s.tasklet(receiver)()
        s.tasklet(sender)()
        s.tasklet(self.log.append)("third")
        s.run()
        # Both sides go to the back: the tasklet queued meanwhile runs first.
        self.assertEqual(self.log, ["third", ("got", "x"), "sender after send"])
        ch.schedule_all = 0
        self.assertFalse(ch.schedule_all)

    def test_iteration(self):
        ch = s.channel()
        for i in range(3):
            s.tasklet(ch.send)(i)
        s.run()  # three senders wait
        ch.close()
        self.assertTrue(ch.closing)
        self.assertFalse(ch.closed)
        self.assertIs(iter(ch), ch)
        self.assertEqual(list(ch), [0, 1, 2])
        with self.assertRaises(StopIteration):
            next(ch)
        self.assertTrue(ch.closed)


class Threads(Base):
    def test_get_thread_info_forms(self):
        main, cur, n = s.get_thread_info()
        self.assertEqual((main, cur, n), (s.getmain(), s.getcurrent(), s.getruncount() + 1))
        main, cur, n = s.get_thread_info(threading.get_ident())
        self.assertEqual((main, cur, n), (s.getmain(), s.getcurrent(), s.getruncount()))
        with self.assertRaises(ValueError):
            s.get_thread_info(123456789)
        with self.assertRaises(TypeError):
            s.get_thread_info("x")

    def test_other_threads(self):
        ready, done = threading.Event(), threading.Event()
        box = {}

        def uses():
            box["main"] = s.getmain()
            s.tasklet(lambda: None)()
            ready.set()
            done.wait(10)
            s.run()

        def plain():
            ready.wait(10)
            box["plain"] = threading.get_ident()
            done.wait(10)
        t1 = threading.Thread(target=uses)
        t2 = threading.Thread(target=plain)
        t1.start()
        t2.start()
        ready.wait(10)
        while "plain" not in box:
            pass
        try:
            info = s.get_thread_info(t1.ident)
            self.assertIs(info[0], box["main"])
            self.assertIs(info[1], box["main"])
            self.assertEqual(info[2], 2)  # its main tasklet + one queued
            self.assertEqual(s.get_thread_info(box["plain"]), (None, None, 0))
            ids = s.threads
            self.assertEqual(ids[0], threading.main_thread().ident)
            self.assertIn(t1.ident, ids)
            self.assertNotIn(box["plain"], ids)
        finally:
            done.set()
            t1.join(10)
            t2.join(10)

    def test_runcount(self):
        self.assertEqual(s.runcount, 1)
        s.tasklet(lambda: None)()
        self.assertEqual(s.runcount, 2)
        s.run()
        self.assertEqual(s.runcount, s.getruncount())


class Pickling(Base):
    def test_tasklet_and_channel_refuse(self):
        t = s.tasklet(lambda: None)
        for obj in (t, s.channel(), s.getmain()):
            with self.subTest(obj=obj):
                with self.assertRaisesRegex(TypeError, "cannot pickle"):
                    pickle.dumps(obj)
                with self.assertRaisesRegex(TypeError, "cannot pickle"):
                    copy.copy(obj)
                with self.assertRaisesRegex(TypeError, "cannot pickle"):
                    obj.__reduce__()
                with self.assertRaisesRegex(TypeError, "cannot pickle"):
                    obj.__setstate__(())

    def test_pickle_flags(self):
        with self.assertRaisesRegex(RuntimeError, "can be pickled"):
            s.pickle_flags()
        with self.assertRaisesRegex(RuntimeError, "can be pickled"):
            s.pickle_flags_default(0)


if __name__ == "__main__":
    unittest.main()
