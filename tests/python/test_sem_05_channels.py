"""docs/run-order.md "Channels": channels (transfer, preference, balance, closing)."""
import gc
import unittest
import weakref

import scheduler as s
from spec_support import SchedulerTestCase, assert_example, assert_snippet


class Examples(unittest.TestCase):
    def test_e09_pref_queue(self):
        assert_example(self, "e09_pref_queue")

    def test_s10_chan(self):
        assert_example(self, "s10_chan")


class Preference(SchedulerTestCase):
    """The preference matrix, with two tasklets behind the pair to tell "runs next"
    (right behind the current tasklet) from "appended at the back"."""

    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)

    def trial(self, pref, sender_first):
        c = s.channel()
        c.preference = pref
        out = []

        def snd():
            out.append("S1")
            c.send("v")
            out.append("S2")

        def rcv():
            out.append("R1")
            out.append("got " + c.receive())
            out.append("R2")
        first, second = (snd, rcv) if sender_first else (rcv, snd)
        s.tasklet(first)()
        s.tasklet(out.append)("X")
        s.tasklet(second)()
        s.tasklet(out.append)("Y")
        s.tasklet(out.append)("Z")
        s.run()
        self.assertEqual(c.balance, 0)
        return " ".join(out)

    def test_sender_meets_receiver(self):
        # receiver blocked first, the sender makes the second (non-blocking) call
        self.assertEqual(self.trial(-1, False), "R1 X S1 got v R2 Y Z S2")
        self.assertEqual(self.trial(0, False), "R1 X S1 S2 Y Z got v R2")
        self.assertEqual(self.trial(1, False), "R1 X S1 S2 Y Z got v R2")

    def test_receiver_meets_sender(self):
        self.assertEqual(self.trial(-1, True), "S1 X R1 got v R2 Y Z S2")
        self.assertEqual(self.trial(0, True), "S1 X R1 got v R2 Y Z S2")
        self.assertEqual(self.trial(1, True), "S1 X R1 S2 Y Z got v R2")

    def test_main_sender_pref0_appends_receiver(self):
        c = s.channel()
        c.preference = 0
        out = []
        s.tasklet(lambda: out.append(c.receive()))().run()
        s.tasklet(out.append)("A")
        c.send("v")
        self.assertEqual(out, [])
        self.assertEqual(s.getruncount(), 3)
        s.run()
        self.assertEqual(out, ["A", "v"])

    def test_preference_attribute(self):
        c = s.channel()
        self.assertEqual(c.preference, -1)
        for v in (0, 1, -1):
            c.preference = v
            self.assertEqual(c.preference, v)
        c.preference = 5  # out of range: silently ignored
        self.assertEqual(c.preference, -1)
        c.preference = -2
        self.assertEqual(c.preference, -1)
        with self.assertRaises(TypeError) as cm:
            c.preference = "x"
        self.assertEqual(str(cm.exception), "The first attribute value must be a number")
        with self.assertRaises(TypeError) as cm:
            del c.preference
        self.assertEqual(str(cm.exception), "Cannot delete the first attribute")


class Transfer(SchedulerTestCase):
    def setUp(self):
        super().setUp()
        s.set_use_nested_tasklets(True)

    def test_new_channel(self):
        c = s.channel()
        self.assertEqual((c.balance, c.preference, c.closing, c.closed), (0, -1, False, False))
        self.assertIsNone(c.queue)

    def test_blocked_senders_fifo_and_state(self):
        c = s.channel()
        ts = [s.tasklet(c.send)(i) for i in range(3)]
        s.run()
        self.assertEqual(c.balance, 3)
        self.assertIs(c.queue, ts[0])
        for t in ts:
            self.assertEqual((t.alive, t.blocked, t.scheduled), (True, True, False))
        self.assertEqual(s.getruncount(), 1)
        self.assertEqual([c.receive() for _ in range(3)], [0, 1, 2])
        self.assertEqual(c.balance, 0)
        self.assertIsNone(c.queue)
        # the senders were re-queued (preference -1: sender appended to the back)
        self.assertEqual(s.getruncount(), 4)
        self.assertTrue(all(t.scheduled and not t.blocked for t in ts))
        s.run()
        self.assertFalse(any(t.alive for t in ts))

    def test_blocked_receivers_fifo(self):
        c = s.channel()
        out = []
        ts = [s.tasklet(lambda n=n: out.append((n, c.receive())))() for n in range(3)]
        s.run()
        self.assertEqual(c.balance, -3)
        self.assertIs(c.queue, ts[0])
        c.preference = 0
        for v in "abc":
            c.send(v)
        self.assertEqual(c.balance, 0)
        s.run()
        self.assertEqual(out, [(0, "a"), (1, "b"), (2, "c")])

    def test_channel_holds_blocked_tasklet(self):
        c = s.channel()
        w = weakref.ref(s.tasklet(c.receive)())
        s.run()
        gc.collect()
        self.assertIsNotNone(w())
        self.assertIs(c.queue, w())
        c.send(1)
        s.run()
        gc.collect()
        self.assertIsNone(w())

    def test_values_are_passed_unchanged(self):
        c = s.channel()
        obj = object()
        got = []
        s.tasklet(lambda: got.append(c.receive()))()
        s.run()
        c.send(obj)
        self.assertIs(got[0], obj)

    def test_send_exception(self):
        c = s.channel()
        got = []

        def rcv():
            try:
                c.receive()
            except Exception as e:
                got.append((type(e), e.args))
        for args, want in [((), ()), ((5,), (5,)), (((1, 2),), (1, 2)), ((1, 2), (1, 2))]:
            s.tasklet(rcv)()
            s.run()
            self.assertIsNone(c.send_exception(KeyError, *args))
            self.assertEqual(got.pop(), (KeyError, want))
        with self.assertRaises(RuntimeError) as cm:
            c.send_exception()
        self.assertEqual(str(cm.exception), "Exception type required")
        with self.assertRaises(RuntimeError) as cm:
            c.send_exception(42)
        self.assertEqual(str(cm.exception), "Exception type or instance required")
        self.assertEqual(c.balance, 0)

    def test_send_exception_instance(self):
        # Reference bug (SystemError): send_exception(instance) raises that instance in the receiver.
        assert_snippet(self, """
            import scheduler as s
            c = s.channel(); e = KeyError("inst")
            def rcv():
                try: c.receive()
                except BaseException as x: print(type(x).__name__, x.args, x is e)
            s.tasklet(rcv)(); s.run()
            c.send_exception(e); print("balance", c.balance)
        """, """
            KeyError ('inst',) True
            balance 0
        """)

    def test_send_throw(self):
        c = s.channel()
        got = []

        def rcv():
            try:
                c.receive()
            except Exception as e:
                got.append((type(e), e.args))
        for kw, want in [(dict(exc=ValueError), ()), (dict(exc=ValueError, val="x"), ("x",)),
                         (dict(exc=ValueError, val=(1, 2)), (1, 2))]:
            s.tasklet(rcv)()
            s.run()
            self.assertIsNone(c.send_throw(**kw))
            self.assertEqual(got.pop(), (ValueError, want))
        with self.assertRaises(TypeError) as cm:
            c.send_throw(42)
        self.assertEqual(str(cm.exception),
                         "Channel.send_throw() argument 'exc' (pos 1) must be an Exception type or instance")
        with self.assertRaises(TypeError) as cm:
            c.send_throw()
        self.assertEqual(str(cm.exception), "Channel.send_throw() missing required argument 'exc' (pos 1)")

    def test_send_throw_instance(self):
        # Reference bug (segfault): send_throw(instance) raises that instance in the receiver.
        assert_snippet(self, """
            import scheduler as s
            c = s.channel(); e = KeyError("inst")
            def rcv():
                try: c.receive()
                except BaseException as x: print(type(x).__name__, x.args, x is e)
            s.tasklet(rcv)(); s.run()
            c.send_throw(e); print("balance", c.balance)
        """, """
            KeyError ('inst',) True
            balance 0
        """)

    def test_send_requires_argument(self):
        c = s.channel()
        with self.assertRaises(TypeError):
            c.send()
        self.assertEqual(c.balance, 0)

    def test_queue_prefers_receivers_and_balance_sign(self):
        c = s.channel()
        r = s.tasklet(c.receive)()
        s.run()
        self.assertEqual(c.balance, -1)
        self.assertIs(c.queue, r)
        c.send(None)
        s.run()
        snd = s.tasklet(c.send)(1)
        s.run()
        self.assertEqual(c.balance, 1)
        self.assertIs(c.queue, snd)
        c.receive()


class Closing(SchedulerTestCase):
    def test_close_empty_channel_is_closed_at_once(self):
        c = s.channel()
        self.assertIsNone(c.close())
        self.assertTrue(c.closing)
        self.assertTrue(c.closed)
        with self.assertRaises(ValueError) as cm:
            c.receive()
        self.assertEqual(str(cm.exception), "receive operation on a closed channel")
        with self.assertRaises(ValueError) as cm:
            c.send(1)
        self.assertEqual(str(cm.exception), "Send operation on a closed channel")
        self.assertEqual(c.balance, 0)
        self.assertIsNone(c.open())
        self.assertFalse(c.closing or c.closed)

    def test_closing_completes_transfers_with_blocked_receivers(self):
        c = s.channel()
        out = []
        c.preference = 0
        for n in range(2):
            s.tasklet(lambda: out.append(c.receive()))()
        s.run()
        c.close()
        self.assertEqual((c.closing, c.closed, c.balance), (True, False, -2))
        c.send("a")
        self.assertEqual((c.closed, c.balance), (False, -1))
        c.send("b")
        self.assertEqual((c.closed, c.balance), (True, 0))
        s.run()
        self.assertEqual(out, ["a", "b"])

    def test_closing_rejects_operation_that_would_block(self):
        c = s.channel()
        s.tasklet(c.send)("x")
        s.run()
        c.close()
        # a second send would block (no receiver): refused
        with self.assertRaises(ValueError) as cm:
            c.send("y")
        self.assertEqual(str(cm.exception), "Send operation on a closed channel")
        self.assertEqual((c.balance, c.closing, c.closed), (1, True, False))
        self.assertEqual(c.receive(), "x")
        self.assertTrue(c.closed)
        with self.assertRaises(ValueError):
            c.receive()
        s.run()

    def test_closed_flips_when_blocked_tasklet_killed(self):
        c = s.channel()
        t = s.tasklet(c.receive)()
        s.run()
        c.close()
        self.assertFalse(c.closed)
        t.kill()
        self.assertEqual(c.balance, 0)
        self.assertTrue(c.closed)

    def test_reopen(self):
        c = s.channel()
        c.close()
        c.open()
        s.tasklet(c.send)(7)
        s.run()
        self.assertEqual(c.receive(), 7)
        s.run()

    def test_iteration(self):
        c = s.channel()
        self.assertIs(iter(c), c)
        for i in range(3):
            s.tasklet(c.send)(i)
        s.run()
        c.close()
        self.assertEqual(list(c), [0, 1, 2])
        self.assertTrue(c.closed)
        with self.assertRaises(StopIteration) as cm:
            next(c)
        self.assertEqual(cm.exception.args, ("Channel is closed",))
        s.run()

    def test_for_loop_over_channel_in_tasklet(self):
        c = s.channel()
        got = []

        def consumer():
            for v in c:
                got.append(v)
            got.append("done")
        s.tasklet(consumer)()
        s.run()
        c.send(1)  # preference -1: the consumer runs next, main's yield drains the queue
        c.send(2)
        self.assertEqual(got, [1, 2])
        # closing while the consumer is blocked: it stays blocked (balance -1), the next
        # transfer completes and closes the channel, which ends the consumer's loop
        c.close()
        self.assertFalse(c.closed)
        c.send(3)
        self.assertTrue(c.closed)
        self.assertEqual(got, [1, 2, 3, "done"])


class Clear(SchedulerTestCase):
    def test_clear_kills_blocked_in_order(self):
        c = s.channel()
        out = []

        def victim(n):
            try:
                c.send(n)
            except s.TaskletExit:
                out.append(n)
                raise
        ts = [s.tasklet(victim)(n) for n in range(3)]
        s.run()
        self.assertEqual(c.balance, 3)
        self.assertIsNone(c.clear())
        self.assertEqual(out, [0, 1, 2])
        self.assertEqual(c.balance, 0)
        self.assertFalse(any(t.alive for t in ts))

    def test_unblock_all_channels(self):
        c1, c2, c3 = s.channel(), s.channel(), s.channel()
        a = s.tasklet(c1.receive)()
        b = s.tasklet(c2.send)(1)
        s.run()
        self.assertEqual(s.unblock_all_channels(), 2)
        self.assertEqual((c1.balance, c2.balance, c3.balance), (0, 0, 0))
        self.assertFalse(a.alive or b.alive)
        self.assertEqual(s.unblock_all_channels(), 0)


if __name__ == "__main__":
    unittest.main()
