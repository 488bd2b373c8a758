"""carbon.spawn_worker in the carbon host: join, stop, errors, idle CPU,
100k messages between the main thread and 3 workers."""
import io
import sys
import threading
import time
import unittest

import carbon
import scheduler


class Workers(unittest.TestCase):
    def test_join_returns_result(self):
        def add(a, b):
            carbon.sleep(0.01)
            return a + b

        w = carbon.spawn_worker(add, 2, 3)
        self.assertIsInstance(w, carbon.Worker)
        self.assertEqual(w.name, "Workers.test_join_returns_result.<locals>.add")
        self.assertIn("add", repr(w))
        self.assertEqual(w.join(), 5)
        self.assertFalse(w.alive)
        self.assertEqual(w.join(), 5)

    def test_runs_on_its_own_thread_with_its_own_scheduler(self):
        main_ident = threading.get_ident()

        def where():
            return threading.get_ident(), scheduler.getmain() is scheduler.getcurrent()

        ident, on_main = carbon.spawn_worker(where).join()
        self.assertNotEqual(ident, main_ident)
        self.assertTrue(on_main)

    def test_worker_keeps_serving_its_tasklets_after_its_function(self):
        ch = scheduler.channel()

        def spawn_echo():
            def echo():
                for _ in range(3):
                    ch.send(ch.receive() * 10)
            scheduler.tasklet(echo)()
            return "spawned"

        w = carbon.spawn_worker(spawn_echo)
        for i in range(3):
            ch.send(i)
            self.assertEqual(ch.receive(), i * 10)
        self.assertEqual(w.join(), "spawned")  # ends once its tasklets are done

    def test_join_blocks_only_the_calling_tasklet(self):
        order = []

        def slow():
            carbon.sleep(0.3)
            return "slow"

        w = carbon.spawn_worker(slow)

        def joiner():
            order.append(("joined", w.join()))

        def other():
            for i in range(3):
                order.append(i)
                carbon.sleep(0.005)

        scheduler.tasklet(joiner)()
        scheduler.tasklet(other)()
        while len(order) < 4:
            carbon.sleep(0.01)
        self.assertEqual(order, [0, 1, 2, ("joined", "slow")])

    def test_kill_joining_tasklet(self):
        gate = scheduler.channel()
        w = carbon.spawn_worker(gate.receive)
        log = []

        def joiner():
            try:
                w.join()
            finally:
                log.append("finally")

        t = scheduler.tasklet(joiner)()
        scheduler.run()
        t.kill()
        self.assertEqual(log, ["finally"])
        gate.send("go")
        self.assertEqual(w.join(), "go")

    def test_stop_raises_taskletexit_in_the_worker(self):
        log = []
        never = scheduler.channel()
        started = scheduler.channel()

        def body():
            started.send(None)

            def child():
                try:
                    never.receive()
                finally:
                    log.append("child")
            scheduler.tasklet(child)()
            try:
                carbon.sleep(1000)
            finally:
                log.append("main")

        w = carbon.spawn_worker(body)
        started.receive()
        while never.balance != -1:  # the child is waiting
            carbon.sleep(0.001)
        self.assertTrue(w.alive)
        w.stop()
        self.assertIsNone(w.join())
        self.assertEqual(sorted(log), ["child", "main"])
        self.assertEqual(never.balance, 0)
        w.stop()  # harmless once ended

    def test_errors_go_to_the_error_report(self):
        def broken():
            def bad_child():
                raise KeyError("child")
            scheduler.tasklet(bad_child)()
            scheduler.run()

        def fine_then_bad_tasklet():
            def exploding():
                carbon.sleep(0.001)
                raise ValueError("later")
            scheduler.tasklet(exploding)()
            return "ok"

        old, sys.stderr = sys.stderr, io.StringIO()
        try:
            w = carbon.spawn_worker(broken)
            # join() re-raises what the function raised (each time).
            with self.assertRaises(KeyError) as cm:
                w.join()
            self.assertEqual(cm.exception.args, ("child",))
            with self.assertRaises(KeyError):
                w.join()
            self.assertEqual(carbon.spawn_worker(fine_then_bad_tasklet).join(), "ok")
            text = sys.stderr.getvalue()
        finally:
            sys.stderr = old
        # An exception escaping the worker's function is named after it; one
        # escaping a tasklet of its loop, after the tasklet.
        self.assertIn("uncaught exception in tasklet "
                      "Workers.test_errors_go_to_the_error_report.<locals>.broken", text)
        self.assertIn("KeyError: 'child'", text)
        # named by tasklet.name: module.qualname of the callable by default
        self.assertIn("uncaught exception in tasklet __main__.Workers.test_errors_go_to_the_error_report"
                      ".<locals>.fine_then_bad_tasklet.<locals>.exploding:", text)
        self.assertIn("ValueError: later", text)

    def test_worker_cannot_join_itself(self):
        box = {}

        def me():
            carbon.sleep(0.01)
            try:
                box["w"].join()
            except RuntimeError as e:
                return str(e)

        box["w"] = carbon.spawn_worker(me)
        self.assertIn("itself", box["w"].join())

    def test_nested_workers(self):
        def inner(x):
            return x * 2

        def outer(x):
            return carbon.spawn_worker(inner, x).join() + 1

        self.assertEqual(carbon.spawn_worker(outer, 20).join(), 41)

    def test_dropped_handle(self):
        ch = scheduler.channel()

        def ping():
            ch.send("pong")

        carbon.spawn_worker(ping)  # handle dropped at once
        self.assertEqual(ch.receive(), "pong")
        carbon.sleep(0.01)

    def test_idle_worker_uses_no_cpu(self):
        wake = scheduler.channel()
        result = scheduler.channel()

        def idle():
            t0 = time.thread_time()
            wake.receive()
            return time.thread_time() - t0

        w = carbon.spawn_worker(idle)
        carbon.sleep(1.0)
        wake.send(None)
        cpu = w.join()
        self.assertLess(cpu, 0.02, "idle worker used %.4f s CPU in 1 s" % cpu)
        del result

    def test_100k_messages_with_3_workers(self):
        n, nworkers = 100_000, 3
        reqs = [scheduler.channel() for _ in range(nworkers)]
        rep = scheduler.channel()

        def server(req):
            served = 0
            while True:
                x = req.receive()
                if x is None:
                    return served
                rep.send(x)
                served += 1

        workers = [carbon.spawn_worker(server, reqs[i]) for i in range(nworkers)]

        def producer(k):
            for i in range(k, n, nworkers):
                reqs[k].send(i)
            reqs[k].send(None)

        for k in range(nworkers):
            scheduler.tasklet(producer)(k)
        seen = bytearray(n)
        for _ in range(n):
            seen[rep.receive()] += 1
        self.assertEqual(seen, bytearray([1]) * n, "a message was lost or duplicated")
        self.assertEqual(sum(w.join() for w in workers), n)


if __name__ == "__main__":
    unittest.main()
