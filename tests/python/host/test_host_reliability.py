"""Issue 13 regression tests for the carbon host (docs/reliability.md):
the main tasklet's wait ends on a deadlock and on signals (defect 6), and a
worker that swallows every TaskletExit no longer spins or hangs the exit
(defect 9)."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import carbon
import scheduler as s


def run_host(code, timeout=30):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


class MainWait(unittest.TestCase):
    def test_deadlock_once_the_other_thread_ends(self):
        # A thread with a scheduler makes main's receive() legal; once it
        # ends, nobody can send: Deadlock, not a wait for ever.
        ch = s.channel()

        def other():
            s.getcurrent()
            time.sleep(0.2)
        th = threading.Thread(target=other)
        th.start()
        t0 = time.monotonic()
        with self.assertRaises(RuntimeError) as cm:
            ch.receive()
        th.join()
        self.assertIn("Deadlock", str(cm.exception))
        self.assertLess(time.monotonic() - t0, 5)

    def test_signal_handler_runs_during_sleep(self):
        fired = []

        class Alarm(Exception):
            pass

        def handler(signum, frame):
            fired.append(time.monotonic())
            raise Alarm
        old = signal.signal(signal.SIGALRM, handler)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            t0 = time.monotonic()
            with self.assertRaises(Alarm):
                carbon.sleep(5)
            self.assertLess(time.monotonic() - t0, 2)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        self.assertEqual(len(fired), 1)

    def test_sigint_from_another_thread_interrupts_sleep(self):
        def kick():
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
        th = threading.Thread(target=kick)
        th.start()
        t0 = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            carbon.sleep(5)
        th.join()
        self.assertLess(time.monotonic() - t0, 2)


class WorkerSwallowingTaskletExit(unittest.TestCase):
    def test_exit_is_bounded(self):
        t0 = time.monotonic()
        proc = run_host("""
            import carbon, time
            caught = [0]
            def work():
                while True:
                    try:
                        carbon.sleep(10)
                    except BaseException:
                        caught[0] += 1
            carbon.spawn_worker(work)
            time.sleep(0.2)
            print("exiting", flush=True)
        """)
        self.assertLess(time.monotonic() - t0, 20)
        self.assertEqual(proc.stdout, "exiting\n", proc.stderr)
        self.assertIn("ignored TaskletExit 100 times while stopping; it is abandoned",
                      proc.stderr)

    def test_stop_and_join_return(self):
        proc = run_host("""
            import carbon, time
            def work():
                while True:
                    try:
                        carbon.sleep(10)
                    except BaseException:
                        pass
            w = carbon.spawn_worker(work)
            time.sleep(0.1)
            w.stop()
            w.join()
            print("joined", flush=True)
        """)
        self.assertEqual(proc.stdout, "joined\n", proc.stderr)


if __name__ == "__main__":
    unittest.main()
