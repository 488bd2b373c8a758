"""A pure-Python model of the documented scheduler semantics (docs/run-order.md,
docs/scheduler.md), for model-based differential tests (docs/reliability.md).

It covers what random programs (program.py) use, in nested and flat mode:
the run queue and run()'s round robin, run_n_tasklets(), schedule(),
schedule_remove() and insert(); nested runs (scheduler.run() inside a
tasklet, tasklet.run(), tasklet.switch()), each a loop owned by its caller
over a range of the queue; channel transfers with each preference (who runs
next, who yields) and with schedule_all, send_exception(), blocking,
balance, close() and open(); the main tasklet
blocking (it runs the queue until its transfer is done, else Deadlock);
kill() and throw(), pending or not, of unstarted, queued, blocked, paused
and current tasklets; an exception escaping a tasklet raised in the loop
that ran it; and "an exception beats a completed transfer"; the switch
trap (`switch_trap()`: every switch raises, queued tasklets stay queued, a
transfer that would yield to its partner does not) and `block_trap` (an
operation that would block raises). With trace_switches, every change of the
current tasklet is traced as the schedule callback sees it.

Tasklet bodies are generators that yield requests to the model scheduler;
the trace they append to must equal the one the real module produces.

Out of scope (OutOfScope is raised, the program is not compared): a run
loop reaching a tasklet that is itself suspended inside a run loop of its
own (re-entering a loop owner); docs/run-order.md does not define it.
"""


class TaskletExitModel(BaseException):
    pass


class BoomModel(Exception):
    """The exception programs throw()."""


class ClosedModel(Exception):
    """ValueError: an operation on a closed channel."""


class RuntimeErrorModel(Exception):
    def __init__(self, kind):
        Exception.__init__(self, kind)
        self.kind = kind


class Deadlock(Exception):
    pass


class OutOfScope(Exception):
    pass


class Marker:
    """A run loop's place (cursor) or end in the queue."""

    def __init__(self, kind):
        self.kind = kind


MAIN = "main"
EXC = "exc"          # a value sent with send_exception(): the receiver raises BoomModel
YIELD = "yield"      # a request's outcome: the calling tasklet yields


class MTasklet:
    def __init__(self, tid, gen):
        self.tid = tid
        self.gen = gen
        self.started = False
        self.alive = True
        self.pending = None      # exception to raise when it next runs
        self.chan = None         # channel whose waiting list holds it
        self.blocked = False
        self.resume = None       # how it resumes: "yield", "recv_yield", "wait"
        self.resume_value = None
        self.xfer_done = False   # its blocked operation was completed
        self.in_loop = False     # a child of its run loop is running
        self.block_trap = False


class MChannel:
    def __init__(self, preference, schedule_all=False):
        self.preference = preference
        self.schedule_all = schedule_all
        self.waiters = []        # [tasklet or MAIN, direction, value]
        self.closing = False

    def rule(self, sending):
        """(the partner runs next, the caller yields) for a transfer that
        does not block: docs/run-order.md, "Channels"."""
        if self.schedule_all:
            return False, True
        runs_next = self.preference == (-1 if sending else 1)
        return runs_next, runs_next

    @property
    def balance(self):
        return sum(d for _, d, _ in self.waiters)

    @property
    def closed(self):
        return self.closing and self.balance == 0


class Model:
    def __init__(self, trace, nested=True):
        self.trace = trace
        self.nested = nested
        self.queue = []          # tasklets and loop markers, front first; main heads it implicitly
        self.current = MAIN
        self.main_blocked = False
        self.main_value = None
        self.switch_trap = 0     # the level switch_trap() sets
        self.trace_switches = False  # a schedule callback traces every switch
        self.main_block_trap = False

    # ---- queue ----
    def queued(self, t):
        return any(x is t for x in self.queue)

    def index(self, x):
        for i, y in enumerate(self.queue):
            if y is x:
                return i
        raise ValueError(x)

    def append(self, t):
        if not self.queued(t):
            self.queue.append(t)

    def unqueue(self, t):
        if self.queued(t):
            del self.queue[self.index(t)]

    def insert_next(self, t):
        # right behind the current tasklet if it is queued, else at the
        # front; a run loop's cursor there stays in front, so that loop runs
        # t next
        if self.current is not MAIN and self.queued(self.current):
            pos = self.index(self.current) + 1
        else:
            pos = 0
        while pos < len(self.queue) and isinstance(self.queue[pos], Marker) \
                and self.queue[pos].kind == "cursor":
            pos += 1
        self.queue.insert(pos, t)

    def move_after(self, t, after):
        self.unqueue(t)
        pos = 0 if after is MAIN else self.index(after) + 1
        self.queue.insert(pos, t)

    def first(self):
        for x in self.queue:
            if isinstance(x, MTasklet):
                return x
        return None

    def next_of(self, t):
        for x in self.queue[self.index(t) + 1:]:
            if isinstance(x, MTasklet):
                return x
        return None

    def make_runnable(self, t, runs_next):
        if self.queued(t) or not t.alive:
            return
        if runs_next:
            self.insert_next(t)
        else:
            self.append(t)

    # ---- channels ----
    def take_waiter(self, ch):
        w, d, v = ch.waiters.pop(0)
        if w is not MAIN:
            w.chan = None
            w.blocked = False
        return w, v

    def remove_from_channel(self, t):
        if t.chan is not None:
            t.chan.waiters = [w for w in t.chan.waiters if w[0] is not t]
            t.chan = None
        t.blocked = False

    def deliver_to(self, w, value, runs_next):
        if w is MAIN:
            self.main_blocked = False
            self.main_value = value
            return
        w.resume_value = value
        w.xfer_done = True
        self.make_runnable(w, runs_next)

    # ---- running tasklets ----
    def run_child(self, owner, c):
        """owner runs c as its parent until c yields or ends; returns the
        exception to raise in owner, or None."""
        if c.in_loop:
            raise OutOfScope("a run loop reaches a tasklet suspended in its own run loop")
        if owner is not MAIN:
            owner.in_loop = True
        self.switched(owner, c)
        exc = self.drive(c)
        self.switched(c, owner)
        if owner is not MAIN:
            owner.in_loop = False
        self.current = owner
        # the owner resumes: what was thrown at it first, else the child's exception
        if owner is not MAIN and owner.pending is not None:
            e, owner.pending = owner.pending, None
            return e
        return exc

    def switched(self, prev, nxt):
        # the schedule callback: called before every change of the current tasklet
        if self.trace_switches:
            self.trace.append(("sw", getattr(prev, "tid", MAIN), getattr(nxt, "tid", MAIN)))

    def finish(self, c):
        c.alive = False
        c.pending = None
        self.remove_from_channel(c)
        self.unqueue(c)

    def resume_action(self, c):
        """How a suspended tasklet goes on: ("send", v), ("throw", e) or None
        (it blocks again at once)."""
        kind, c.resume = c.resume, None
        if kind in ("yield", "recv_yield"):
            value, c.resume_value = c.resume_value, None
            if c.pending is not None:
                e, c.pending = c.pending, None
                return "throw", e     # a value taken while yielding is dropped
            if kind == "recv_yield":
                return ("throw", BoomModel()) if value is EXC else ("send", value)
            return "send", None
        assert kind == "wait", kind
        if c.xfer_done:
            c.xfer_done = False
            value, c.resume_value = c.resume_value, None
            if c.pending is not None:  # an exception beats a completed transfer
                e, c.pending = c.pending, None
                return "throw", e
            return ("throw", BoomModel()) if value is EXC else ("send", value)
        if c.pending is not None:
            self.remove_from_channel(c)
            e, c.pending = c.pending, None
            return "throw", e
        if c.chan is None:
            return "throw", RuntimeErrorModel("channel operation interrupted")
        c.blocked = True
        self.unqueue(c)
        c.resume = "wait"
        return None

    def drive(self, c):
        self.current = c
        if not c.started:
            c.started = True
            if c.pending is not None:
                # thrown at before it ever ran: it dies as it starts
                e, c.pending = c.pending, None
                c.gen.close()
                self.finish(c)
                return None if isinstance(e, TaskletExitModel) else e
            action = ("send", None)
        else:
            action = self.resume_action(c)
            if action is None:
                return None
        while True:
            try:
                if action[0] == "throw":
                    req = c.gen.throw(action[1])
                else:
                    req = c.gen.send(action[1])
            except (StopIteration, TaskletExitModel):
                self.finish(c)
                return None
            except BoomModel as e:
                self.finish(c)
                return e
            self.current = c
            out = self.request(c, req)
            if out is YIELD:
                return None
            if isinstance(out, tuple):
                action = out
            elif out is None:
                action = ("send", None)
            else:
                action = ("throw", out)

    def deferred(self, c):
        """A scheduling operation first raises what is pending."""
        if c is not MAIN and c.pending is not None:
            e, c.pending = c.pending, None
            return e
        return None

    def trapped(self):
        """The error of a switch while the switch trap is up, or None."""
        return RuntimeErrorModel("trap") if self.switch_trap != 0 else None

    def may_block(self, c):
        """The error of an operation that would block c, or None."""
        if (self.main_block_trap if c is MAIN else c.block_trap):
            return RuntimeErrorModel("block_trap")
        if self.switch_trap != 0:
            return RuntimeErrorModel("trap")
        if c is MAIN and self.first() is None:
            return Deadlock()
        return None

    def suspend(self, c, kind, value=None):
        c.resume = kind
        c.resume_value = value
        return YIELD

    def request(self, c, req):
        """Performs a tasklet's request. Returns YIELD (c suspends), None
        (goes on), ("send", value) or an exception to raise in c."""
        op = req[0]
        if op == "schedule":
            e = self.deferred(c) or self.trapped()
            if e:
                return e
            self.unqueue(c)
            self.append(c)
            return self.suspend(c, "yield")
        if op == "remove":
            e = self.deferred(c) or self.trapped()
            if e:
                return e
            self.unqueue(c)
            return self.suspend(c, "yield")
        if op == "send":
            return self.send(c, req[1], req[2])
        if op == "recv":
            return self.recv(c, req[1])
        if op == "kill":
            return self.kill(c, req[1], req[2])
        if op == "throw":
            return self.throw(c, req[1], BoomModel(), req[2])
        if op == "run_t":
            return self.run_tasklet_checked(c, req[1])
        if op == "switch":
            return self.switch_checked(c, req[1])
        if op == "nested_run":
            return self.run_inside(c)
        raise AssertionError(req)

    # ---- channel operations of a tasklet ----
    def send(self, c, ch, v):
        e = self.deferred(c)
        if e:
            return e
        if ch.balance < 0:
            r, _ = self.take_waiter(ch)
            runs_next, yields = ch.rule(True)
            self.deliver_to(r, v, runs_next)
            if yields:
                return self.yield_to_partner(c)
            return None
        if ch.closing:
            return ClosedModel()
        e = self.may_block(c)
        if e:
            return e
        ch.waiters.append((c, 1, v))
        c.chan, c.blocked = ch, True
        self.unqueue(c)
        return self.suspend(c, "wait")

    def recv(self, c, ch):
        e = self.deferred(c)
        if e:
            return e
        if ch.balance > 0:
            s, v = self.take_waiter(ch)
            runs_next, yields = ch.rule(False)
            self.deliver_to(s, None, runs_next)
            if yields:
                out = self.yield_to_partner(c)
                if out is YIELD:
                    c.resume = "recv_yield"
                    c.resume_value = v   # dropped if an exception comes first
                elif out is None:        # trapped: no yield
                    return BoomModel() if v is EXC else ("send", v)
                return out
            return BoomModel() if v is EXC else ("send", v)
        if ch.closing:
            return ClosedModel()
        e = self.may_block(c)
        if e:
            return e
        ch.waiters.append((c, -1, None))
        c.chan, c.blocked = ch, True
        self.unqueue(c)
        return self.suspend(c, "wait")

    def yield_to_partner(self, c):
        if self.switch_trap != 0:
            return None          # trapped: the partner waits in the queue
        e = self.deferred(c)
        if e:
            return e
        self.unqueue(c)
        self.append(c)
        return self.suspend(c, "yield")

    # ---- kill, throw, run, switch (caller: a tasklet or MAIN) ----
    def die_unstarted(self, t):
        t.alive = False
        t.started = True
        t.gen.close()
        self.unqueue(t)

    def kill(self, cur, t, pending):
        if not t.alive:
            return None
        if t is cur:
            t.pending = None
            return TaskletExitModel()
        if isinstance(t.pending, TaskletExitModel):
            return None
        if not t.started:
            if pending:
                self.die_unstarted(t)
                return None
            e = self.deferred(cur) or self.trapped()
            if e:
                return e
            behind = self.next_of(t) if self.queued(t) else None
            self.die_unstarted(t)
            if self.nested:
                return self.run_segment(cur, behind, False) if behind else None
            return self.run_toplevel() if cur is MAIN else None
        if not pending and self.trapped():
            return self.trapped()
        self.remove_from_channel(t)
        t.pending = TaskletExitModel()
        if pending:
            self.append(t)
            return None
        return self.run_tasklet(cur, t)

    def throw(self, cur, t, exc, pending):
        if not t.alive:
            return RuntimeErrorModel("dead")
        if t is cur:
            return exc
        if not pending and self.trapped():
            return self.trapped()
        if t.chan is not None:
            if pending:
                t.blocked = False   # stays on the channel until it runs
            else:
                self.remove_from_channel(t)
        t.pending = exc
        if pending:
            self.append(t)
            return None
        return self.run_tasklet(cur, t)

    def run_tasklet_checked(self, cur, t):
        if not t.alive:
            return RuntimeErrorModel("dead")
        if t.blocked:
            return RuntimeErrorModel("blocked")
        return self.run_tasklet(cur, t)

    def run_tasklet(self, cur, t):
        if t is cur:
            return None
        e = self.deferred(cur) or self.trapped()
        if e:
            return e
        if self.nested:
            self.append(t)
            return self.run_segment(cur, t, False)
        # flat: t runs next, then the caller
        if cur is MAIN or self.queued(cur):
            self.move_after(t, cur)
        else:
            self.move_after(t, MAIN)
        if cur is MAIN:
            return self.run_toplevel()
        self.move_after(cur, t)
        return self.suspend(cur, "yield")

    def switch_checked(self, cur, t):
        if not t.alive:
            return RuntimeErrorModel("dead")
        if t.blocked:
            return RuntimeErrorModel("blocked")
        if t is cur:
            return None
        e = self.deferred(cur) or self.trapped()
        if e:
            return e
        if not self.queued(t):
            # not queued: it runs by itself, the caller is paused meanwhile
            self.append(t)
            return self.run_segment(cur, t, True)
        was_queued = cur is not MAIN and self.queued(cur)
        if was_queued:
            self.unqueue(cur)
        rc = self.run_segment(cur, t, False)
        if cur is MAIN:
            return rc if rc is not None else self.run_toplevel()
        if rc is not None:
            # an exception came back: the caller goes on (back in the queue)
            if was_queued:
                self.append(cur)
            return rc
        # the caller yields, paused unless someone insert()ed it meanwhile
        return self.suspend(cur, "yield")

    def run_inside(self, c):
        """scheduler.run() inside a tasklet."""
        e = self.deferred(c)
        if e:
            return e
        if not self.nested:
            e = self.trapped()
            if e:
                return e
            self.unqueue(c)
            self.append(c)
            return self.suspend(c, "yield")
        t = self.next_of(c) if self.queued(c) else self.first()
        if t is None:
            return None
        return self.trapped() or self.run_segment(c, t, False)

    # ---- run loops ----
    def run_segment(self, owner, start, only_start):
        """owner runs, as their parent, the queued tasklets from start to the
        one last in the queue now (or start alone)."""
        end, cursor = Marker("end"), Marker("cursor")
        if only_start:
            self.queue.insert(self.index(start) + 1, end)
        else:
            self.queue.append(end)
        self.queue.insert(self.index(start), cursor)
        rc = None
        while True:
            i = self.index(cursor) + 1
            while i < len(self.queue) and self.queue[i] is not end \
                    and not isinstance(self.queue[i], MTasklet):
                i += 1
            if i == len(self.queue) or self.queue[i] is end:
                break
            n = self.queue[i]
            del self.queue[self.index(cursor)]
            self.queue.insert(self.index(n) + 1, cursor)
            if n is owner:
                continue
            rc = self.trapped() or self.run_child(owner, n)
            if rc is not None:
                break
        del self.queue[self.index(cursor)]
        del self.queue[self.index(end)]
        return rc

    def run_toplevel(self, limit=None, done=None):
        """The main tasklet runs the queue from its front; returns the
        exception that escaped, or None."""
        count = 0
        while True:
            if done is not None and done():
                return None
            t = self.first()
            if t is None:
                return None
            if limit is not None and count >= limit:
                return None
            if self.trapped():
                return self.trapped()
            count += 1
            e = self.run_child(MAIN, t)
            if e is not None:
                return e

    # ---- the main tasklet's channel operations (raise on error) ----
    def main_send(self, ch, v):
        if ch.balance < 0:
            r, _ = self.take_waiter(ch)
            runs_next, yields = ch.rule(True)
            self.deliver_to(r, v, runs_next)
            if yields and self.switch_trap == 0:
                self.raise_(self.run_toplevel())
            return
        if ch.closing:
            raise ClosedModel()
        self.main_block(ch, 1, v)

    def main_recv(self, ch):
        if ch.balance > 0:
            s, v = self.take_waiter(ch)
            runs_next, yields = ch.rule(False)
            self.deliver_to(s, None, runs_next)
            if yields and self.switch_trap == 0:
                self.raise_(self.run_toplevel())   # an exception drops v
            if v is EXC:
                raise BoomModel()
            return v
        if ch.closing:
            raise ClosedModel()
        return self.main_block(ch, -1, None)

    def main_block(self, ch, d, v):
        self.raise_(self.may_block(MAIN))
        self.main_blocked = True
        ch.waiters.append((MAIN, d, v))
        e = self.run_toplevel(done=lambda: not self.main_blocked)
        if not self.main_blocked:
            value, self.main_value = self.main_value, None
            self.raise_(e)       # an exception beats the completed transfer
            if value is EXC:
                raise BoomModel()
            return value
        self.main_blocked = False
        ch.waiters = [w for w in ch.waiters if w[0] is not MAIN]
        self.raise_(e)
        raise Deadlock()

    @staticmethod
    def raise_(e):
        if e is not None:
            raise e
