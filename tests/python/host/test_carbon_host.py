"""Host plumbing seen from Python, in the carbon host: carbon.queue (what
carbon_post feeds; delivery is simulated with the function a tick calls),
Worker.join() re-raising, scheduler.format_tasklet_stacks(all_threads=True),
the shutdown retry rule's numbers."""
import sys
import threading
import traceback
import unittest

import carbon
import scheduler


class Queues(unittest.TestCase):
    def test_same_object_per_name_and_checks(self):
        self.assertIs(carbon.queue("q-same"), carbon.queue("q-same"))
        self.assertIsInstance(carbon.queue("q-same"), carbon.HostQueue)
        self.assertIn("q-same", repr(carbon.queue("q-same")))
        with self.assertRaises(TypeError):
            carbon.queue(b"bytes")
        with self.assertRaises(ValueError):
            carbon.queue("")
        with self.assertRaises(ValueError):
            carbon.queue("x" * 256)

    def test_buffered_then_waiting_receiver(self):
        q = carbon.queue("q-order")
        for v in (1, (2, 3), None, ()):
            carbon._deliver_post("q-order", v)
        self.assertEqual(len(q), 4)
        self.assertEqual(q.balance, 4)
        self.assertEqual([q.receive() for _ in range(4)], [1, (2, 3), None, ()])
        got = []

        def rx():
            for v in q:
                got.append(v)
                if v == "stop":
                    return
        t = scheduler.tasklet(rx)()
        t.run()
        self.assertEqual(q.balance, -1)
        # A put to a waiting receiver makes it runnable; the putter goes on.
        carbon._deliver_post("q-order", "a")
        self.assertEqual(got, [])
        carbon._deliver_post("q-order", "stop")
        self.assertEqual(len(q), 1)
        scheduler.run()
        self.assertEqual(got, ["a", "stop"])
        self.assertFalse(t.alive)

    def test_receiver_on_a_worker(self):
        q = carbon.queue("q-worker")

        def consume(n):
            return [q.receive() for _ in range(n)]

        w = carbon.spawn_worker(consume, 1000)
        for i in range(1000):
            carbon._deliver_post("q-worker", i)
            if i % 100 == 0:
                carbon.sleep(0.001)
        self.assertEqual(w.join(), list(range(1000)))


class Stacks(unittest.TestCase):
    def test_all_threads(self):
        ch = scheduler.channel()

        class Orc:
            def think(self):
                ch.receive()

        def body():
            scheduler.tasklet(Orc().think)()
            ch.receive()

        w = carbon.spawn_worker(body)
        while ch.balance != -2:
            carbon.sleep(0.001)
        text = scheduler.format_tasklet_stacks(all_threads=True)
        self.assertEqual(text.count("Thread "), 2, text)
        self.assertIn("Thread %d (current)" % threading.get_ident(), text)
        self.assertIn("Orc.think", text)
        self.assertIn("in body", text)
        own = scheduler.format_tasklet_stacks().splitlines()
        self.assertFalse([line for line in own if line.startswith("Tasklet") and "Orc" in line], own)
        ch.send(None)
        ch.send(None)
        w.join()

    def test_label(self):
        class Named(scheduler.tasklet):
            pass

        def f():
            pass
        t = Named(f)()
        t.name = "goblin-3"
        self.assertEqual(scheduler.tasklet_label(t), "goblin-3")
        u = scheduler.tasklet(f)()
        self.assertTrue(scheduler.tasklet_label(u).endswith("f"))
        self.assertTrue(scheduler.tasklet_label(scheduler.getmain()))
        t.kill()
        u.kill()


class RetryRule(unittest.TestCase):
    """The `carbon` command's exit ends the main thread's tasklets by the rule
    of docs/embedding.md: a tasklet swallowing TaskletExit is hit 3 times."""

    SCRIPT = (
        "import os, carbon, scheduler\n"
        "def sw():\n"
        "    while True:\n"
        "        try: carbon.sleep(100)\n"
        "        except scheduler.TaskletExit: os.write(1, b'hit\\n')\n"
        "def fin():\n"
        "    try: carbon.sleep(100)\n"
        "    finally: carbon.sleep(0.02); carbon.wait_frames(1); os.write(1, b'finally done\\n')\n"
        "scheduler.tasklet(sw)().run()\n"
        "scheduler.tasklet(fin)().run()\n")

    def test_three_hits_and_grace(self):
        import subprocess
        out = subprocess.run([sys.executable, "-c", self.SCRIPT], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.count("hit\n"), 3, out.stdout)
        self.assertEqual(out.stdout.count("finally done\n"), 1, out.stdout)
        self.assertIn("TaskletExit again (2 of 2)", out.stderr)
        self.assertIn("sw left alive at shutdown: it survived TaskletExit 3 times", out.stderr)


class WorkerErrors(unittest.TestCase):
    def test_join_reraises(self):
        def bad():
            raise LookupError("nope")

        w = carbon.spawn_worker(bad)
        try:
            w.join()
        except LookupError as e:
            self.assertEqual(e.args, ("nope",))
            self.assertIn("in bad", "".join(traceback.format_tb(e.__traceback__)))
        else:
            self.fail("join() did not re-raise")

    def test_stopped_worker_is_not_a_failure(self):
        def waits():
            scheduler.channel().receive()

        w = carbon.spawn_worker(waits)
        carbon.sleep(0.01)
        w.stop()
        self.assertIsNone(w.join())


if __name__ == "__main__":
    unittest.main()
