"""Nothing sent is lost (docs/run-order.md, "Exceptions, throw and kill").

A tasklet whose blocked send() or receive() was completed by its partner
completes that operation when it resumes, even if a kill or throw reached it
in between: receive() returns the value, send() returns normally, and the
exception is raised at the tasklet's next scheduling operation. So a value
handed over is always received, and a sender never sees an error for a value
that was delivered."""
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

    def woken_receiver(self):
        """A receiver that was handed a value and has not run since."""
        ch = s.channel()
        ch.preference = 0  # the sender goes on; the receiver waits in the queue
        r = s.tasklet(self.receiver)(ch)
        s.run()
        ch.send("v")
        self.assertTrue(r.scheduled)
        self.assertFalse(r.blocked)
        return r

    def test_killed_receiver_still_receives(self):
        r = self.woken_receiver()
        r.kill()
        self.assertEqual(self.log, [("got", "v"), "TaskletExit"])
        self.assertFalse(r.alive)

    def test_pending_kill_of_receiver_still_receives(self):
        r = self.woken_receiver()
        r.kill(pending=True)
        s.run()
        self.assertEqual(self.log, [("got", "v"), "TaskletExit"])
        self.assertFalse(r.alive)

    def test_throw_at_receiver_after_delivery(self):
        r = self.woken_receiver()
        with self.assertRaises(KeyError):
            r.throw(KeyError("late"))
        self.assertEqual(self.log, [("got", "v")])
        self.assertFalse(r.alive)

    def test_killed_sender_still_sends(self):
        ch = s.channel()
        ch.preference = 0
        snd = s.tasklet(self.sender)(ch, "w")
        s.run()
        self.assertEqual(ch.balance, 1)
        self.assertEqual(ch.receive(), "w")  # taken: the sender waits in the queue
        snd.kill()
        self.assertEqual(self.log, ["sent", "TaskletExit"])
        self.assertFalse(snd.alive)

    def test_kill_is_moot_if_the_tasklet_ends_first(self):
        ch = s.channel()
        ch.preference = 0
        r = s.tasklet(lambda: self.log.append(("got", ch.receive())))()
        s.run()
        ch.send("x")
        r.kill(pending=True)
        s.run()
        self.assertEqual(self.log, [("got", "x")])
        self.assertFalse(r.alive)

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
