/* Switching between tasklets and the run loops built on it: the rules of
 * docs/run-order.md (the queue, yielding, run, switch, exceptions, limited runs) live here.
 *
 * Model. The running tasklet is manager->current. A tasklet gives control
 * away in one of two ways:
 *   - run_child(): it runs another tasklet as that tasklet's *parent* and is
 *     suspended "in a loop" until control comes back to it;
 *   - yield: it is suspended and control goes to its parent if that parent is
 *     still waiting in a loop, else to the main tasklet.
 * The main tasklet only ever gives control away through run_child(), so it is
 * always a valid place to return to. Whatever resumes a tasklet, it simply
 * continues after the switch it made, and re-reads the state it depends on.
 */
#include "core.h"
#include "offstack.h"
#include "transfer.h"
#include "preempt.h"

#include <time.h>

long long cb_monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- exceptions as objects --------------------------------------------------- */

PyObject *cb_err_fetch(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;

    PyErr_Fetch(&type, &value, &tb);
    if (!type)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb) {
        PyException_SetTraceback(value, tb);
        Py_DECREF(tb);
    }
    Py_DECREF(type);
    return value;
#endif
}

/* Re-raises an exception object as it was (traceback intact, no chaining to
 * what the receiver is handling). Steals `exc`; NULL clears. */
void cb_err_restore(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (!exc) {
        PyErr_Clear();
        return;
    }
    PyObject *type = (PyObject *)Py_TYPE(exc);
    PyObject *tb = PyException_GetTraceback(exc);

    Py_INCREF(type);
    PyErr_Restore(type, exc, tb);
#endif
}

/* Raises an exception thrown into a tasklet as a `raise` statement at its
 * suspension point would. Steals `exc`. */
static void err_raise_thrown(PyObject *exc)
{
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

/* ---- switching (the mechanism is in transfer.c) ------------------------------------- */

/* A tasklet chosen to run is still a valid choice after Python code ran
 * (schedule callback, a collection during its argument tuple): alive, ours,
 * not waiting on a channel, not the running one. */
static int still_runnable(cb_manager *m, cb_tasklet *to)
{
    return to->mgr == m && to != m->current && (to->is_main || (to->alive && !to->blocked)) &&
           (to->is_main || !to->in_loop);
}

/* Switches to `to` after the schedule callbacks; 0 if it ran, 1 if the
 * callbacks made it an invalid choice (nothing happened). */
static int do_switch(cb_manager *m, cb_tasklet *to, cb_transfer *x)
{
    cb_tasklet *from = m->current;

    if (cb_g.schedule_callback || cb_g.fast_callback) {
        Py_INCREF(to); /* the callback may drop every other reference */
        cb_call_schedule_callback(m, from, to);
        if (!still_runnable(m, to) || (!to->started && !to->is_main &&
                                       cb_transfer_prepare(m, to) < 0)) {
            PyErr_Clear();
            cb_release_later(m, (PyObject *)to);
            if (x)
                cb_transfer_drop(m, x);
            return 1;
        }
        cb_release_later(m, (PyObject *)to); /* released once we are back */
    }
    cb_transfer_switch(m, to, x);
    return 0;
}

/* ---- starting and finishing a tasklet --------------------------------------------- */

static void finish(cb_manager *m, cb_tasklet *t, PyObject *result);

void cb_tasklet_body(cb_manager *m, cb_tasklet *t)
{
    PyObject *result = NULL;

    t->start_time = cb_monotonic_ns();
    if (t->pending_exc) {
        /* Thrown before it ever ran: raised inside it, as Stackless does. */
        PyObject *exc = t->pending_exc;
        t->pending_exc = NULL;
        err_raise_thrown(exc);
    } else if (!t->callable || !t->alive) {
        result = Py_NewRef(Py_None);
    } else if (t->args && !PyTuple_Check(t->args)) {
        PyErr_SetString(PyExc_RuntimeError, "Arguments must be a tuple");
    } else if (t->kwargs && !PyDict_Check(t->kwargs)) {
        PyErr_SetString(PyExc_RuntimeError, "kwargs must be a dict");
    } else {
        PyObject *args = t->args ? t->args : PyTuple_New(0);
        if (args)
            result = PyObject_Call(t->callable, args, t->kwargs);
        if (args != t->args)
            Py_XDECREF(args);
    }
    t->end_time = cb_monotonic_ns();
    finish(m, t, result);
}

/* Where control goes when `t` stops running. */
static cb_tasklet *return_target(cb_manager *m, cb_tasklet *t)
{
    cb_tasklet *p = t->parent;

    if (p && p->in_loop && p->mgr == m && p != t)
        return p;
    return m->main;
}

/* Not inlined: its locals would sit in the bottom frame of every tasklet for
 * its whole life, copied with each parked tasklet's stack. */
static __attribute__((noinline)) void finish(cb_manager *m, cb_tasklet *t, PyObject *result)
{
    PyObject *exc = NULL;
    cb_tasklet *target;
    cb_transfer x = CB_TRANSFER_INIT;

    if (result) {
        Py_DECREF(result);
    } else {
        exc = cb_err_fetch();
        if (exc && PyErr_GivenExceptionMatches(exc, cb_TaskletExit))
            Py_CLEAR(exc);
    }
    /* Everything that may run Python code happens while t is still alive. */
    Py_CLEAR(t->callable);
    Py_CLEAR(t->args);
    Py_CLEAR(t->kwargs);
    Py_CLEAR(t->tempval);
    Py_CLEAR(t->pending_exc);
    Py_CLEAR(t->child_exc);
    Py_CLEAR(t->run->exc_state.exc_value);
    Py_CLEAR(m->tstate->context);
    if (exc && m->deadline_ns) /* only deadline runs report who failed */
        Py_XSETREF(m->last_failed, (cb_tasklet *)Py_NewRef(t));
    cb_release_pending(m);
    target = return_target(m, t);
    if (cb_g.schedule_callback || cb_g.fast_callback)
        cb_call_schedule_callback(m, t, target);
    target = return_target(m, t);

    /* From here on nothing may run Python code: what is replaced is
     * released after the switch. */
    t->alive = 0;
    t->paused = 0;
    if (t->node.next) {
        cb_queue_unlink(m, t);
        Py_DECREF(t); /* the queue's; current still holds one */
    }
    if (exc) {
        cb_transfer_hold(&x, target->child_exc);
        target->child_exc = exc;
    }
    cb_transfer_hold(&x, (PyObject *)t->parent); /* it may be `target` */
    t->parent = NULL;
    if (target == m->main && !exc) {
        cb_tasklet *next = cb_transfer_handoff(m, t, &x);
        if (next)
            target = next;
    }
    cb_transfer_final(m, t, target, &x);
}

/* ---- resuming ------------------------------------------------------------------------ */

/* After control came back to `t`: raises what was thrown at it, or what
 * escaped from a child it ran. */
static int resume_check(cb_tasklet *t)
{
    PyObject *exc;

    if (t->pending_exc) {
        exc = t->pending_exc;
        t->pending_exc = NULL;
        Py_CLEAR(t->child_exc);
        err_raise_thrown(exc);
        return -1;
    }
    if (t->child_exc) {
        exc = t->child_exc;
        t->child_exc = NULL;
        cb_err_restore(exc);
        return -1;
    }
    return 0;
}

int cb_raise_deferred(cb_tasklet *cur)
{
    if (cur->pending_exc || cur->child_exc)
        return resume_check(cur);
    return 0;
}

int cb_check_switch_allowed(cb_manager *m)
{
    if (cb_switch_trapped(m)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot schedule when scheduler switch_trap level is non-zero");
        return -1;
    }
    if (cb_is_finalizing()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot switch tasklets while the interpreter is finalizing");
        return -1;
    }
    if (cb_gc_in_tasklet(m)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot switch tasklets in code the garbage collector runs inside a "
                        "tasklet (a finalizer or weakref callback)");
        return -1;
    }
    return 0;
}

/* The current tasklet runs `c` as its parent until control comes back. */
static int run_child(cb_manager *m, cb_tasklet *c)
{
    cb_tasklet *p = m->current;
    cb_tasklet *old = c->parent;
    cb_transfer x = CB_TRANSFER_INIT;

    if (!c->started && !c->is_main && cb_transfer_prepare(m, c) < 0)
        return -1;
    if (cb_transfer_make_room(m, c) < 0) {
        PyErr_SetString(PyExc_MemoryError, "cannot save a suspended tasklet's stack");
        return -1;
    }
    Py_XINCREF(old); /* to put back if no switch happens */
    cb_transfer_hold(&x, (PyObject *)c->parent); /* may be the last reference to it */
    c->parent = (cb_tasklet *)Py_NewRef(p);
    p->in_loop = 1;
    if (do_switch(m, c, &x) == 0) {
        m->completed++;
        cb_release_later(m, (PyObject *)old);
    } else if (c->parent == p) {
        /* The schedule callback made c an invalid choice: nothing happened,
         * so c keeps the parent it had. Otherwise a tasklet suspended in
         * its own loop would be returned to by no one (a child that was a
         * refused choice of another loop would end into main). */
        c->parent = old;
        Py_DECREF(p); /* p is current: not the last reference */
    } else {
        cb_release_later(m, (PyObject *)old);
    }
    p->in_loop = 0;
    cb_release_pending(m);
    return resume_check(p);
}

void cb_suspend(cb_manager *m)
{
    cb_tasklet *cur = m->current;
    cb_tasklet *to = return_target(m, cur);
    cb_tasklet *next;
    cb_transfer x = CB_TRANSFER_INIT;

    if (to == m->main && (next = cb_transfer_handoff(m, cur, &x)) != NULL) {
        if (next == cur) {
            /* Main would have switched straight back to us. */
            cur->times_switched_to++;
            m->switches++;
            cb_transfer_drop(m, &x);
        } else {
            cb_transfer_switch(m, next, &x);
        }
    } else {
        if (cb_g.schedule_callback || cb_g.fast_callback) {
            cb_call_schedule_callback(m, cur, to);
            to = return_target(m, cur); /* main, or a parent still in its loop */
        }
        cb_transfer_switch(m, to, &x);
    }
    cb_release_pending(m);
}

/* ---- run loops --------------------------------------------------------------------------- */

static void node_link_after(cb_node *pos, cb_node *n)
{
    if (n->kind != CB_NODE_TASKLET)
        cb_offstack_check(n, "a nested run loop's queue marker");
    n->prev = pos;
    n->next = pos->next;
    pos->next->prev = n;
    pos->next = n;
}

static void node_unlink(cb_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

/* The main tasklet runs the queue from its front: until it is empty, `done`
 * says stop, or the limits are reached (semantics section 10). */
static int run_toplevel_until(cb_manager *m, long long max_switches, long long timeout_ns,
                              int (*done)(void *), void *arg, long long deadline_ns)
{
    long long start = timeout_ns >= 0 ? cb_monotonic_ns() : 0;
    long long count = 0;
    int deadline_seen = 0;

    for (;;) {
        cb_tasklet *t;
        int last = 0, rc;

        if (m->deferred_kills)
            cb_process_deferred_kills(m);
        if (m->stop_run) /* a preemption (preempt.c) ends this run */
            return 0;
        if (done && done(arg))
            return 0;
        t = cb_queue_first(m);
        if (!t)
            return 0;
        if (max_switches >= 0 && count >= max_switches)
            return 0;
        if (deadline_ns && count > 0 && cb_monotonic_ns() >= deadline_ns)
            return 0;
        if (cb_check_switch_allowed(m) < 0)
            return -1;
        if (timeout_ns >= 0 && cb_monotonic_ns() - start >= timeout_ns)
            last = ++deadline_seen >= 2;
        count++;
        /* A run that ends on `done` (main blocked in a wait: a sleep, a
         * read) hands off too; the hand-off asks `done` first. */
        m->main_plain_loop = max_switches < 0 && timeout_ns < 0;
        m->run_done = done;
        m->run_done_arg = arg;
        m->deadline_ns = deadline_ns;
        rc = run_child(m, t);
        m->main_plain_loop = 0;
        m->run_done = NULL;
        m->run_done_arg = NULL;
        m->deadline_ns = 0;
        if (rc < 0)
            return -1;
        if (last)
            return 0;
    }
}

static int run_toplevel(cb_manager *m, long long max_switches, long long timeout_ns,
                        int (*done)(void *), void *arg)
{
    return run_toplevel_until(m, max_switches, timeout_ns, done, arg, 0);
}

int cb_run_deadline(cb_manager *m, long long deadline_ns)
{
    if (cb_raise_deferred(m->current) < 0)
        return -1;
    return run_toplevel_until(m, -1, -1, NULL, NULL, deadline_ns);
}

/* The current tasklet runs, as their parent, the queued tasklets from
 * `start` up to the one that is last in the queue now (or `start` alone).
 * Two markers in the queue keep the loop's place and end, so tasklets that
 * finish, block, or move to the back in the meantime are handled, and ones
 * put "right behind the current tasklet" run next. */
static int run_segment(cb_manager *m, cb_tasklet *start, int only_start)
{
    cb_node *head = &m->main->node;
    /* The markers are read by the tasklets this loop runs, while the
     * running tasklet's C stack may be copied out of its region: they live
     * on the heap (offstack.h). */
    cb_node *marks = PyMem_Malloc(2 * sizeof *marks);
    cb_node *cursor, *end;
    int rc = 0;

    if (!marks) {
        PyErr_NoMemory();
        return -1;
    }
    cursor = marks;
    end = marks + 1;
    *cursor = (cb_node){NULL, NULL, CB_NODE_CURSOR};
    *end = (cb_node){NULL, NULL, CB_NODE_END};
    node_link_after(only_start ? &start->node : head->prev, end);
    node_link_after(start->node.prev, cursor);
    for (;;) {
        cb_node *n = cursor->next;
        cb_tasklet *t;

        while (n != end && n != head && n->kind != CB_NODE_TASKLET)
            n = n->next;
        if (n == end || n == head)
            break;
        node_unlink(cursor);
        node_link_after(n, cursor);
        t = (cb_tasklet *)((char *)n - offsetof(cb_tasklet, node));
        if (t == m->current)
            continue;
        if (cb_check_switch_allowed(m) < 0 || run_child(m, t) < 0) {
            rc = -1;
            break;
        }
    }
    node_unlink(cursor);
    node_unlink(end);
    PyMem_Free(marks);
    return rc;
}

/* ---- yielding ------------------------------------------------------------------------------- */

int cb_yield(cb_manager *m)
{
    cb_tasklet *cur = m->current;

    if (cur->is_main)
        return run_toplevel(m, -1, -1, NULL, NULL);
    cb_suspend(m);
    return resume_check(cur);
}

/* Moves `t` (queued or not) right behind `after`. */
static void queue_move_after(cb_manager *m, cb_tasklet *t, cb_tasklet *after)
{
    cb_queue_remove(m, t); /* callers hold their own reference */
    Py_INCREF(t);
    node_link_after(&after->node, &t->node);
    m->queued++;
    t->paused = 0;
}

int cb_schedule(cb_manager *m, int remove)
{
    cb_tasklet *cur = m->current;

    if (cb_raise_deferred(cur) < 0)
        return -1;
    if (cur->is_main) {
        if (cb_queue_first(m) && cb_check_switch_allowed(m) < 0)
            return -1;
        return run_toplevel(m, -1, -1, NULL, NULL);
    }
    if (cb_check_switch_allowed(m) < 0)
        return -1;
    cb_queue_remove(m, cur); /* current still holds a reference */
    if (remove)
        cur->paused = 1;
    else
        cb_queue_append(m, cur);
    return cb_yield(m);
}

/* A non-main tasklet hands control straight to the main tasklet. */
static int switch_to_main(cb_manager *m, int stay_queued)
{
    cb_tasklet *cur = m->current;

    if (!stay_queued && cur->node.next) {
        cb_queue_remove(m, cur);
        cur->paused = 1;
    }
    do_switch(m, m->main, NULL);
    cb_release_pending(m);
    return resume_check(cur);
}

int cb_run_tasklet(cb_manager *m, cb_tasklet *t)
{
    cb_tasklet *cur = m->current;

    if (t == cur)
        return 0;
    if (cb_raise_deferred(cur) < 0 || cb_check_switch_allowed(m) < 0)
        return -1;
    if (t->is_main)
        return switch_to_main(m, 1);
    if (cb_g.use_nested) {
        if (!t->node.next)
            cb_queue_append(m, t);
        return run_segment(m, t, 0);
    }
    /* Flat: t runs next, the caller right after it ("front plus one"). */
    if (cur->node.next || cur->is_main)
        queue_move_after(m, t, cur);
    else
        queue_move_after(m, t, m->main);
    if (cur->is_main)
        return run_toplevel(m, -1, -1, NULL, NULL);
    queue_move_after(m, cur, t);
    return cb_yield(m);
}

int cb_switch_tasklet(cb_manager *m, cb_tasklet *t)
{
    cb_tasklet *cur = m->current;
    int rc, was_queued;
    unsigned was_paused;

    if (t == cur)
        return 0;
    if (cb_raise_deferred(cur) < 0 || cb_check_switch_allowed(m) < 0)
        return -1;
    if (t->is_main)
        return switch_to_main(m, 0);
    if (!t->node.next) {
        /* Not queued: it runs by itself; the caller is paused meanwhile. */
        was_paused = cur->paused;
        cb_queue_append(m, t);
        cur->paused = 1;
        rc = run_segment(m, t, 1);
        cur->paused = was_paused;
        return rc;
    }
    /* The caller is paused while the tasklets from t on run: out of the
     * queue (the main tasklet only flagged: it heads the queue), until
     * someone insert()s it. */
    was_queued = cur->node.next != NULL;
    was_paused = cur->paused;
    if (was_queued && !cur->is_main)
        cb_queue_remove(m, cur);
    cur->paused = 1;
    rc = run_segment(m, t, 0);
    if (cur->is_main) {
        cur->paused = 0;
        return rc < 0 ? -1 : run_toplevel(m, -1, -1, NULL, NULL);
    }
    if (rc < 0) {
        /* An exception came back from the segment: the caller goes on. */
        if (was_queued && !cur->node.next)
            cb_queue_append(m, cur);
        else if (!cur->node.next)
            cur->paused = was_paused;
        return -1;
    }
    /* The caller yields: still paused, it waits until someone resumes it;
     * insert()ed meanwhile, it waits its turn in the queue. */
    return cb_yield(m);
}

int cb_run(cb_manager *m, long long max_switches, long long timeout_ns)
{
    cb_tasklet *cur = m->current;
    cb_tasklet *t;

    if (cb_raise_deferred(cur) < 0)
        return -1;
    if (cur->is_main)
        return run_toplevel(m, max_switches, timeout_ns, NULL, NULL);
    if (!cb_g.use_nested)
        return cb_schedule(m, 0);
    t = cur->node.next ? cb_queue_next_of(m, cur) : cb_queue_first(m);
    if (!t)
        return 0;
    if (cb_check_switch_allowed(m) < 0)
        return -1;
    return run_segment(m, t, 0);
}

int cb_run_until(cb_manager *m, int (*done)(void *), void *arg)
{
    for (;;) {
        int r;

        /* A kill or throw from another thread arrives while we wait. */
        if (cb_raise_deferred(m->current) < 0)
            return -1;
        if (run_toplevel(m, -1, -1, done, arg) < 0)
            return -1;
        if (done(arg))
            return 1;
        if (!m->idle)
            return 0;
        r = m->idle(m, m->hook_arg);
        if (r <= 0)
            return r;
    }
}

static int flag_set(void *arg)
{
    return *(unsigned *)arg != 0;
}

static int block_current(cb_manager *m, cb_tasklet *cur, unsigned *flag);

int cb_block_current(cb_manager *m, unsigned *flag)
{
    cb_tasklet *cur = m->current;
    int r;

    if (cb_raise_deferred(cur) < 0 || cb_check_switch_allowed(m) < 0)
        return -1;
    if (cur->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot block: this tasklet is already waiting in a blocking operation");
        return -1;
    }
    cur->busy++;
    r = block_current(m, cur, flag);
    cur->busy--;
    cb_release_pending(m);
    return r;
}

static int block_current(cb_manager *m, cb_tasklet *cur, unsigned *flag)
{
    int r;

    if (cur->is_main) {
        r = cb_run_until(m, flag_set, flag);
        if (r < 0)
            return -1;
        if (r == 0) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Deadlock: the last runnable tasklet cannot be blocked.");
            return -1;
        }
        return 0;
    }
    cb_queue_remove(m, cur);
    cur->paused = 1;
    cb_suspend(m);
    return resume_check(cur);
}

/* ---- throw and kill ------------------------------------------------------------------------ */

/* A tasklet that never ran dies without running. */
static void die_unstarted(cb_manager *m, cb_tasklet *t)
{
    PyObject *callable = t->callable, *args = t->args, *kwargs = t->kwargs;

    t->alive = 0;
    t->paused = 0;
    t->callable = t->args = t->kwargs = NULL;
    cb_queue_remove(m, t); /* the caller holds a reference */
    Py_XDECREF(callable);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
}

/* Kills a tasklet that never ran: it dies without running. Pending, that is
 * all. Otherwise the rest is what t.run() would do, t dying as it starts
 * (no stack is needed for that): nested mode runs the tasklets queued behind
 * it, flat mode from the main tasklet runs the queue. */
static int kill_unstarted(cb_manager *m, cb_tasklet *t, int pending)
{
    cb_tasklet *cur = m->current, *behind;

    if (pending) {
        die_unstarted(m, t);
        return 0;
    }
    if (cb_raise_deferred(cur) < 0 || cb_check_switch_allowed(m) < 0)
        return -1;
    behind = t->node.next ? cb_queue_next_of(m, t) : NULL;
    die_unstarted(m, t);
    if (cb_g.use_nested)
        return behind ? run_segment(m, behind, 0) : 0;
    return cur->is_main ? run_toplevel(m, -1, -1, NULL, NULL) : 0;
}

int cb_throw(cb_tasklet *t, PyObject *exc, int pending)
{
    cb_manager *m = t->mgr;

    if (t == m->current) {
        err_raise_thrown(exc);
        return -1;
    }
    if (!t->started && !t->is_main && PyErr_GivenExceptionMatches(exc, cb_TaskletExit)) {
        Py_DECREF(exc);
        return kill_unstarted(m, t, pending);
    }
    if (!pending && cb_check_switch_allowed(m) < 0) {
        Py_DECREF(exc);
        return -1;
    }
    if (t->chan) {
        if (pending) {
            t->blocked = 0; /* stays on the channel until it runs */
        } else {
            cb_channel_remove(t); /* the caller holds a reference */
        }
    }
    Py_XSETREF(t->pending_exc, exc);
    if (pending) {
        if (!t->is_main && !t->node.next)
            cb_queue_append(m, t);
        return 0;
    }
    return cb_run_tasklet(m, t);
}

/* From a libuv callback on t's own thread (no switch happens here): t raises
 * exc when it next resumes; a main tasklet waiting in its loop (then the
 * current one) raises it when its wait next checks. Steals exc. Returns 1,
 * dropping exc, if t already has an exception to raise or is dead. */
int cb_throw_async(cb_tasklet *t, PyObject *exc)
{
    cb_manager *m = t->mgr;

    if (!m || (!t->alive && !t->is_main) || t->pending_exc || (!t->started && !t->is_main)) {
        Py_DECREF(exc);
        return 1;
    }
    if (t->chan)
        t->blocked = 0; /* stays on the channel until it runs, as a pending throw */
    t->pending_exc = exc;
    if (!t->is_main && !t->node.next)
        cb_queue_append(m, t);
    return 0;
}

int cb_forget_exception(cb_tasklet *t, PyObject *exc)
{
    if (t->pending_exc == exc) {
        Py_CLEAR(t->pending_exc);
        return 1;
    }
    if (t->child_exc == exc) {
        Py_CLEAR(t->child_exc);
        return 1;
    }
    return 0;
}

/* Takes t off its channel and gives it a TaskletExit to raise when it next
 * runs. The caller holds a reference to t. */
static int arm_kill(cb_tasklet *t)
{
    PyObject *exc;

    if (t->chan)
        cb_channel_remove(t);
    exc = PyObject_CallNoArgs(cb_TaskletExit);
    if (!exc)
        return -1;
    Py_XSETREF(t->pending_exc, exc);
    return 0;
}

static int kill_pending(cb_tasklet *t)
{
    return t->pending_exc && PyErr_GivenExceptionMatches(t->pending_exc, cb_TaskletExit);
}

int cb_kill(cb_tasklet *t, int pending)
{
    cb_manager *m = t->mgr;

    if (!t->alive && !t->is_main)
        return 0;
    if (t == m->current) {
        /* Even with a kill pending (deferred after a completed transfer):
         * killing oneself always raises. */
        if (kill_pending(t))
            Py_CLEAR(t->pending_exc);
        PyErr_SetNone(cb_TaskletExit);
        return -1;
    }
    if (kill_pending(t))
        return 0;
    if (!t->started && !t->is_main)
        return kill_unstarted(m, t, pending);
    if (!pending && cb_check_switch_allowed(m) < 0)
        return -1;
    if (arm_kill(t) < 0)
        return -1;
    if (pending) {
        if (!t->is_main && !t->node.next)
            cb_queue_append(m, t);
        return 0;
    }
    return cb_run_tasklet(m, t);
}

int cb_kill_remote(cb_tasklet *t)
{
    if (!t->mgr || (!t->alive && !t->is_main) || kill_pending(t))
        return 0;
    if (arm_kill(t) < 0)
        return -1;
    cb_make_runnable(t, 0); /* wakes its thread */
    return 0;
}

/* Kills `t` by running it alone (teardown: nothing else should run). */
int cb_kill_alone(cb_manager *m, cb_tasklet *t)
{
    if (!t->started) {
        die_unstarted(m, t);
        return 0;
    }
    if (arm_kill(t) < 0)
        return -1;
    if (!t->node.next)
        cb_queue_append(m, t);
    return run_segment(m, t, 1);
}

void cb_tasklet_abandon(cb_tasklet *t)
{
    if (!t->leaked) {
        t->leaked = 1;
        Py_INCREF(t); /* never freed: its stack holds live frames */
    }
}

int cb_kill_all(cb_manager *m)
{
    for (int pass = 0; pass < 3; pass++) {
        Py_ssize_t n = 0, i;
        cb_tasklet **victims;

        for (cb_tasklet *t = m->all; t; t = t->mgr_next)
            if (!t->is_main && t->alive && !t->leaked)
                n++;
        if (n == 0)
            return 0;
        victims = PyMem_Malloc((size_t)n * sizeof *victims);
        if (!victims)
            return -1;
        i = 0;
        for (cb_tasklet *t = m->all; t && i < n; t = t->mgr_next)
            if (!t->is_main && t->alive && !t->leaked)
                victims[i++] = (cb_tasklet *)Py_NewRef(t);
        n = i;
        for (i = 0; i < n; i++) {
            cb_tasklet *t = victims[i];
            if (t->alive && t->mgr == m && t != m->current && cb_kill_alone(m, t) < 0)
                PyErr_WriteUnraisable((PyObject *)t);
            Py_DECREF(t);
        }
        PyMem_Free(victims);
    }
    return 0;
}

void cb_process_deferred_kills(cb_manager *m)
{
    while (m->deferred_kills) {
        cb_tasklet *t = m->deferred_kills;

        m->deferred_kills = t->kill_next;
        t->kill_next = NULL;
        t->kill_deferred = 0;
        if (t->alive && t->started && t->mgr == m) {
            if (cb_kill_alone(m, t) < 0)
                PyErr_WriteUnraisable((PyObject *)t);
            cb_tasklet_leak_if_unowned(t, 1); /* the list's reference */
        }
        Py_DECREF(t); /* taken when its last reference was dropped elsewhere */
    }
}

/* ---- introspection ---------------------------------------------------------------------- */

PyObject *cb_tasklet_frame(cb_tasklet *t)
{
    cb_manager *m = t->mgr;
    PyObject *frame = NULL;

    if (!m || (!t->started && !t->is_main) || (!t->alive && !t->is_main))
        Py_RETURN_NONE;
    if (t == m->current)
        frame = (PyObject *)PyThreadState_GetFrame(m->tstate);
    else
        frame = t->run ? cb_pystate_frame(PyThreadState_Get(), &t->run->st) : NULL;
    if (!frame)
        Py_RETURN_NONE;
    return frame;
}
