"""A pure-Python model of the documented scheduler semantics (docs/run-order.md,
docs/scheduler.md), for model-based differential tests (docs/reliability.md).

It covers what random programs (program.py) use: the run queue and run()'s
round robin, run_n_tasklets(), schedule(), channel transfers with each
preference (who runs next, who yields), blocking and balance, main blocking
(it runs the queue until its transfer is done, else Deadlock), kill(pending=True)
of unstarted, queued, blocked and current tasklets, and the rule that an
exception beats a transfer completed by a partner: the tasklet raises and a
value it was handed is dropped (docs/run-order.md, "An exception beats a
completed transfer").

Tasklet bodies are generators that yield requests to the model scheduler; the
trace they append to must equal the one the real module produces.
"""


class TaskletExitModel(BaseException):
    pass


class Deadlock(Exception):
    pass


class MTasklet:
    def __init__(self, tid, gen):
        self.tid = tid
        self.gen = gen
        self.started = False
        self.alive = True
        self.kill_pending = False
        self.chan = None         # channel whose waiting list holds it
        self.resume_value = None
        self.xfer_done = False   # its blocked operation was completed
        self.yield_error = False  # a receive that yielded to its partner


class MChannel:
    def __init__(self, preference):
        self.preference = preference
        self.waiters = []        # (tasklet or "main", direction, value)

    @property
    def balance(self):
        return sum(d for _, d, _ in self.waiters)


MAIN = "main"


class Model:
    def __init__(self, trace):
        self.trace = trace
        self.queue = []          # tasklets, front first (the running one stays in it)
        self.current = MAIN
        self.main_done = False   # main's blocked transfer completed
        self.main_value = None

    # ---- queue ----
    def append(self, t):
        if t not in self.queue:
            self.queue.append(t)

    def insert_next(self, t):
        # right behind the current tasklet if it is queued, else at the front
        if self.current is not MAIN and self.current in self.queue:
            self.queue.insert(self.queue.index(self.current) + 1, t)
        else:
            self.queue.insert(0, t)

    def unqueue(self, t):
        if t in self.queue:
            self.queue.remove(t)

    def unlink_waiter(self, who):
        for ch in who_channels(self, who):
            ch.waiters = [w for w in ch.waiters if w[0] is not who]
        if who is not MAIN:
            who.chan = None

    # ---- running a tasklet until it gives control back to main ----
    def run_child(self, t):
        self.current = t
        # An exception beats a completed transfer (docs/run-order.md): a
        # tasklet killed before it resumes raises, its value is dropped.
        throw = t.kill_pending
        value, t.resume_value = t.resume_value, None
        t.xfer_done = False
        t.started = True
        while True:
            try:
                if throw:
                    t.kill_pending = False
                    req = t.gen.throw(TaskletExitModel())
                else:
                    req = t.gen.send(value)
            except (StopIteration, TaskletExitModel):
                t.alive = False
                t.kill_pending = False
                self.unqueue(t)
                break
            throw, value = False, None
            # a scheduling operation first raises a kill left pending
            if req[0] in ("schedule", "remove", "send", "recv") and t.kill_pending:
                throw = True
                continue
            action, value = self.tasklet_request(t, req)
            if action == "continue":
                continue
            if action == "raise":
                throw = True
                continue
            break  # "yield": control goes back to main
        self.current = MAIN

    def tasklet_request(self, t, req):
        op = req[0]
        if op == "schedule":
            self.unqueue(t)
            self.append(t)
            return "yield", None
        if op == "remove":  # schedule_remove(): back only when inserted or killed
            self.unqueue(t)
            return "yield", None
        if op == "kill":
            target = req[1]
            if target is t:
                return "raise", None
            self.kill(target)
            return "continue", None
        ch = req[1]
        if op == "send":
            v = req[2]
            if ch.balance < 0:
                r = self.take_waiter(ch)
                runs_next = ch.preference == -1
                self.deliver_to(r, v, runs_next)
                if runs_next:
                    self.unqueue(t)
                    self.append(t)
                    return "yield", None
                return "continue", None
            ch.waiters.append((t, 1, v))
            t.chan = ch
            self.unqueue(t)
            return "yield", None
        if op == "recv":
            if ch.balance > 0:
                s, v = self.take_waiter(ch, with_value=True)
                runs_next = ch.preference == 1
                self.deliver_to(s, None, runs_next)
                if runs_next:
                    self.unqueue(t)
                    self.append(t)
                    t.resume_value = v  # dropped if an exception comes first
                    return "yield", None
                return "continue", v
            ch.waiters.append((t, -1, None))
            t.chan = ch
            self.unqueue(t)
            return "yield", None
        raise AssertionError(req)

    def take_waiter(self, ch, with_value=False):
        w, d, v = ch.waiters.pop(0)
        if w is not MAIN:
            w.chan = None
        return (w, v) if with_value else w

    def deliver_to(self, w, value, runs_next):
        if w is MAIN:
            self.main_done = True
            self.main_value = value
            return
        w.resume_value = value
        w.xfer_done = True
        if runs_next:
            self.insert_next(w)
        else:
            self.append(w)

    # ---- kill(pending=True) ----
    def kill(self, t):
        if t is MAIN or not t.alive or t.kill_pending:
            return
        if not t.started:
            t.alive = False
            self.unqueue(t)
            t.gen.close()
            return
        if t.chan is not None:
            t.chan.waiters = [w for w in t.chan.waiters if w[0] is not t]
            t.chan = None
        t.kill_pending = True
        self.append(t)

    # ---- main's operations ----
    def run(self, limit=None, done=None):
        count = 0
        while True:
            if done is not None and done():
                return True
            if not self.queue:
                return False
            if limit is not None and count >= limit:
                return False
            count += 1
            self.run_child(self.queue[0])

    def main_send(self, ch, v):
        if ch.balance < 0:
            r = self.take_waiter(ch)
            runs_next = ch.preference == -1
            self.deliver_to(r, v, runs_next)
            if runs_next:
                self.run()
            return
        self.main_block(ch, 1, v)

    def main_recv(self, ch):
        if ch.balance > 0:
            s, v = self.take_waiter(ch, with_value=True)
            runs_next = ch.preference == 1
            self.deliver_to(s, None, runs_next)
            if runs_next:
                self.run()
            return v
        return self.main_block(ch, -1, None)

    def main_block(self, ch, d, v):
        if not self.queue:
            raise Deadlock()
        self.main_done = False
        ch.waiters.append((MAIN, d, v))
        if self.run(done=lambda: self.main_done):
            value, self.main_value = self.main_value, None
            return value
        ch.waiters = [w for w in ch.waiters if w[0] is not MAIN]
        raise Deadlock()


def who_channels(model, who):
    return [who.chan] if who is not MAIN and who.chan is not None else []
