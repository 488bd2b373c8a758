"""A kill or throw beats a completed transfer (docs/run-order.md, "Exceptions,
throw and kill").

A tasklet whose blocked send() or receive() was completed by its partner, but
that gets an exception (kill or throw, pending or not) before it resumes,
raises that exception from the operation, as Stackless and the reference do:
receive() does not return the value (it is dropped) and send() raises although
its value was taken. A tasklet still blocked when it is killed is taken off
its channel first, so nothing was handed over."""
import unittest

import scheduler as s


class DeliveryTests(unittest.TestCase):

    def setUp(self):
        s.set_use_nested_tasklets(True)
        self.log = []

    def tearDown(self):
        for t in s.get_thread_tasklets()[1:]:
            if t.alive:
                t.kill()
        s.run()

    def receiver(self, ch):
        try:
            self.log.append(("got", ch.receive()))
            s.schedule()  # the next scheduling operation
            self.log.append("after schedule")
        except s.TaskletExit:
            self.log.append("TaskletExit")
            raise

    def sender(self, ch, value):
        try:
            ch.send(value)
            self.log.append("sent")
            s.schedule()
            self.log.append("after schedule")
        except s.TaskletExit:
            self.log.append("TaskletExit")
            raise

    def woken_receiver(self, preference=1):
        """A receiver that was handed a value and has not run since."""
        ch = s.channel()
        ch.preference = preference  # the sender goes on; the receiver waits in the queue
        r = s.tasklet(self.receiver)(ch)
        s.run()
        ch.send("v")
        self.assertTrue(r.scheduled)
        self.assertFalse(r.blocked)
        return r

    def test_pending_kill_beats_delivery_to_receiver(self):
        r = self.woken_receiver()
        r.kill(pending=True)
        self.assertTrue(r.alive)
        s.run()
        self.assertEqual(self.log, ["TaskletExit"])  # the value is dropped
        self.assertFalse(r.alive)

    def test_pending_kill_beats_delivery_preference_0(self):
        r = self.woken_receiver(preference=0)
        r.kill(pending=True)
        s.run()
        self.assertEqual(self.log, ["TaskletExit"])
        self.assertFalse(r.alive)

    def test_kill_beats_delivery_to_receiver(self):
        r = self.woken_receiver()
        r.kill()
        self.assertEqual(self.log, ["TaskletExit"])
        self.assertFalse(r.alive)

    def test_pending_throw_beats_delivery_to_receiver(self):
        r = self.woken_receiver()
        r.throw(KeyError("late"), pending=True)
        with self.assertRaises(KeyError):
            s.run()
        self.assertEqual(self.log, [])
        self.assertFalse(r.alive)

    def test_throw_beats_delivery_to_receiver(self):
        r = self.woken_receiver()
        with self.assertRaises(KeyError):
            r.throw(KeyError("late"))
        self.assertEqual(self.log, [])
        self.assertFalse(r.alive)

    def taken_sender(self, value):
        """A sender whose value was taken and that has not run since."""
        ch = s.channel()  # default preference: the receiver goes on
        snd = s.tasklet(self.sender)(ch, value)
        s.run()
        self.assertEqual(ch.balance, 1)
        self.assertEqual(ch.receive(), value)  # taken: the sender waits in the queue
        self.assertTrue(snd.scheduled)
        return snd

    def test_pending_kill_beats_taken_send(self):
        snd = self.taken_sender("w")
        snd.kill(pending=True)
        s.run()
        self.assertEqual(self.log, ["TaskletExit"])  # send() raised
        self.assertFalse(snd.alive)

    def test_kill_beats_taken_send(self):
        snd = self.taken_sender("w")
        snd.kill()
        self.assertEqual(self.log, ["TaskletExit"])
        self.assertFalse(snd.alive)

    def test_pending_throw_beats_taken_send(self):
        snd = self.taken_sender("w")
        snd.throw(ValueError, pending=True)
        with self.assertRaises(ValueError):
            s.run()
        self.assertEqual(self.log, [])
        self.assertFalse(snd.alive)

    def test_pending_kill_after_receiver_preferring_sender_yielded(self):
        # preference 1: a receiver that takes a waiting sender's value yields
        # to the sender; killed pending meanwhile, its receive() raises.
        ch = s.channel()
        ch.preference = 1
        victim = []

        def sender():
            victim[0].kill(pending=True)

        snd = s.tasklet(lambda: (ch.send("z"), sender()))()
        s.run()
        r = s.tasklet(self.receiver)(ch)
        victim.append(r)
        s.run()
        self.assertEqual(self.log, ["TaskletExit"])
        self.assertFalse(r.alive)
        self.assertFalse(snd.alive)

    def test_kill_is_moot_if_the_tasklet_ends_first(self):
        ch = s.channel()
        ch.preference = 0
        r = s.tasklet(lambda: self.log.append(("got", ch.receive())))()
        s.run()
        ch.send("x")
        s.run()
        r.kill(pending=True)  # dead by now: nothing happens
        self.assertEqual(self.log, [("got", "x")])
        self.assertFalse(r.alive)

    def test_exception_escaping_while_main_waits_beats_delivery(self):
        # The main tasklet waits in receive(), running the queue; the sender
        # hands it a value, goes on (preference 0) and fails: the failure is
        # raised from main's receive(), the value is dropped (Stackless too).
        ch = s.channel()
        ch.preference = 0

        def sender():
            ch.send("lost")
            raise ValueError("sender failed")
        s.tasklet(sender)()
        with self.assertRaisesRegex(ValueError, "sender failed"):
            ch.receive()
        self.assertEqual(ch.balance, 0)
        s.run()  # nothing deferred is left over
        self.assertEqual(s.getruncount(), 1)

    def test_main_value_kept_without_exception(self):
        ch = s.channel()
        s.tasklet(ch.send)("m")
        self.assertEqual(ch.receive(), "m")

    def test_blocked_tasklet_killed_before_transfer_loses_nothing(self):
        # Killed while still blocked: taken off the channel, nothing was sent.
        ch = s.channel()
        r = s.tasklet(self.receiver)(ch)
        s.run()
        r.kill()
        self.assertEqual(self.log, ["TaskletExit"])
        self.assertEqual(ch.balance, 0)


if __name__ == "__main__":
    unittest.main()
