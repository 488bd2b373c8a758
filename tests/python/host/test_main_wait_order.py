"""Run order while the main tasklet waits (a channel receive, carbon.sleep):
tasklets that give control back hand it straight to the next queued one on
main's behalf (docs/design.md, "Direct hand-off"), and main runs as soon as
what it waits for has happened, exactly as if it had switched each time.
The expected order is the one the runtime gave before that hand-off existed
(the same script under the previous build). Run by the carbon host only."""
import unittest

import carbon
import scheduler


class MainWaitOrder(unittest.TestCase):
    def test_order_with_main_waiting(self):
        log = []
        ch = scheduler.channel()

        def a():
            log.append('a1')
            scheduler.schedule()
            log.append('a2')
            ch.send('x')
            log.append('a3')
            scheduler.schedule()
            log.append('a4')

        def b():
            log.append('b1')
            scheduler.schedule()
            log.append('b2')
            scheduler.schedule()
            log.append('b3')

        def c():
            log.append('c1')
            carbon.sleep(0.01)
            log.append('c2')
            scheduler.schedule()
            log.append('c3')

        def d():
            log.append('d1')

        for fn in (a, b, c, d):
            scheduler.tasklet(fn)()
        log.append('main-recv')
        log.append('main-got-' + ch.receive())
        scheduler.tasklet(d)()
        log.append('main-sleep')
        carbon.sleep(0.05)
        log.append('main-end')

        ch2 = scheduler.channel()
        ch2.preference = 1

        def e():
            log.append('e1')
            scheduler.schedule()
            log.append('e2')
            ch2.send(1)
            log.append('e3')

        def f():
            log.append('f1')
            scheduler.schedule()
            log.append('f2')
            scheduler.schedule()
            log.append('f3')

        scheduler.tasklet(e)()
        scheduler.tasklet(f)()
        log.append('main-recv2')
        ch2.receive()
        log.append('main-got2')
        carbon.sleep(0.02)
        log.append('end')
        self.assertEqual(log, [
            'main-recv', 'a1', 'b1', 'c1', 'd1', 'a2', 'main-got-x', 'main-sleep', 'b2', 'a3', 'd1',
            'b3', 'a4', 'c2', 'c3', 'main-end', 'main-recv2', 'e1', 'f1', 'e2', 'e3', 'main-got2',
            'f2', 'f3', 'end'])

    def test_an_exception_goes_to_main_not_to_the_next_tasklet(self):
        log = []

        def bad():
            log.append('bad')
            raise ValueError('boom')

        def good():
            log.append('good')

        scheduler.tasklet(bad)()
        scheduler.tasklet(good)()
        with self.assertRaises(ValueError):
            carbon.sleep(0.01)
        self.assertEqual(log, ['bad'])  # main got it before `good` ran
        carbon.sleep(0.01)
        self.assertEqual(log, ['bad', 'good'])


if __name__ == '__main__':
    unittest.main()
