/* The switch mechanism (transfer.h). */
#include "transfer.h"
#include "preempt.h"

/* ---- the release list ------------------------------------------------------------- */

void cb_release_later(cb_manager *m, PyObject *o)
{
    if (!o)
        return;
    if (Py_REFCNT(o) > 1) {
        Py_DECREF(o); /* not the last reference: runs no code (the usual case) */
        return;
    }
    if (m->nlater == m->later_cap) {
        size_t cap = m->later_cap ? 2 * m->later_cap : 16;
        PyObject **p = PyMem_Realloc(m->later, cap * sizeof *p); /* runs no Python code */
        if (!p) {
            /* Out of memory: kept alive for ever rather than released in
             * the middle of a switch. */
            return;
        }
        m->later = p;
        m->later_cap = cap;
    }
    m->later[m->nlater++] = o;
}

static void release_drain(cb_manager *m)
{
    PyObject *saved = cb_err_fetch();

    /* One at a time from the end: what a release runs may switch, and other
     * tasklets may drain (or add to) the list meanwhile. */
    while (m->nlater) {
        PyObject *o = m->later[--m->nlater];
        Py_DECREF(o);
    }
    cb_err_restore(saved);
}

void cb_release_pending(cb_manager *m)
{
    cb_tasklet *cur = m->current;

    if (m->nlater && !m->switching && !m->runtime_trap && !cur->busy && !cur->in_loop &&
        !cb_is_finalizing())
        release_drain(m);
}

void cb_release_all(cb_manager *m)
{
    if (m->nlater)
        release_drain(m);
}

void cb_transfer_drop(cb_manager *m, cb_transfer *x)
{
    for (int i = 0; i < x->nrefs; i++)
        cb_release_later(m, x->refs[i]);
    x->nrefs = 0;
}

/* ---- the switch ---------------------------------------------------------------------- */

/* First thing on the incoming side: takes over what the outgoing side left. */
static void arrive(cb_manager *m, cb_transfer *in)
{
    cb_transfer x;

    m->switching = 0;
    if (!in)
        return;
    x = *in; /* `in` lies on a stack that may be given back just below */
    if (x.stack)
        cb_stack_release(&m->pool, x.stack);
    cb_transfer_drop(m, &x);
}

/* An unguarded stack's lowest bytes were written: the tasklet ran past its
 * stack into its neighbour's memory. Reported, never run on. */
static void overflow_abort(cb_tasklet *t, cb_stack *s)
{
    fprintf(stderr,
            "carbon: C stack overflow in tasklet %s (unguarded stack of %zu "
            "bytes; raise the stack size)\n",
            t->method_name ? PyUnicode_AsUTF8(t->method_name) : "?", s->size);
    abort();
}

/* Bookkeeping shared by both kinds of switch; `x` gets from's reference. */
static void depart(cb_manager *m, cb_tasklet *from, cb_stack *from_stack, cb_tasklet *to,
                   cb_transfer *x)
{
    if (m->switching)
        Py_FatalError("carbon: tasklet switch re-entered");
    m->switching = 1;
    m->switches++;
    to->times_switched_to++;
    if (m->timing)
        cb_preempt_account(m, from);
    Py_INCREF(to);
    m->current = to;
    x->refs[x->nrefs++] = (PyObject *)from; /* current's reference */
    /* Checked on every switch away, including a finished tasklet's last one:
     * an overflow that returned is reported too. */
    if (from_stack && !from_stack->guarded && cb_stack_check(from_stack) < 0)
        overflow_abort(from, from_stack);
}

void cb_transfer_switch(cb_manager *m, cb_tasklet *to, cb_transfer *x)
{
    cb_tasklet *from = m->current;
    cb_transfer local = CB_TRANSFER_INIT;
    void *in;

    if (!x)
        x = &local;
    depart(m, from, from->stack, to, x);
    cb_pystate_switch(m->tstate, &from->run->st, &to->run->st);
    in = cb_ctx_switch(&from->run->ctx, &to->run->ctx, x);
    arrive(m, in);
}

void cb_transfer_final(cb_manager *m, cb_tasklet *t, cb_tasklet *to, cb_transfer *x)
{
    cb_runstate *run = t->run; /* inside the stack: valid until `to` releases it */

    depart(m, t, t->stack, to, x);
    x->stack = t->stack;
    t->stack = NULL;
    t->started = 0;
    t->run = NULL;
    cb_pystate_finish(m->tstate, &run->st);
    cb_pystate_switch(m->tstate, &run->st, &to->run->st);
    /* Whatever the finished tasklet still held goes with its stack. */
    cb_transfer_hold(x, run->st.context);
    cb_transfer_hold(x, run->exc_state.exc_value);
    run->st.context = NULL;
    run->exc_state.exc_value = NULL;
    cb_ctx_switch_final(&run->ctx, &to->run->ctx, x);
}

/* ---- starting ---------------------------------------------------------------------------- */

static void tasklet_entry(void *arg)
{
    cb_manager *m = cb_manager_peek();
    cb_tasklet *t;
#ifndef CB_PY313
    _PyCFrame cframe; /* lives as long as the tasklet */
#endif

    cb_ctx_entered();
    t = m->current;
#ifndef CB_PY313
    cb_pystate_boot(m->tstate, &t->run->st, &cframe);
#endif
    arrive(m, arg);
    cb_release_pending(m);
    cb_tasklet_body(m, t); /* never returns */
}

/* The run state goes at the bottom of the frame region, the root frame
 * chunk right after it. */
#define RUN_BYTES ((sizeof(cb_runstate) + 15) & ~(size_t)15)

int cb_transfer_prepare(cb_manager *m, cb_tasklet *t)
{
    cb_stack *stack = cb_stack_acquire(&m->pool);
    cb_runstate *run;

    if (!stack) {
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a tasklet stack");
        return -1;
    }
    run = (cb_runstate *)stack->top;
    cb_pystate_init_new(&run->st, stack->top + RUN_BYTES,
                        (size_t)(cb_stack_frames_end(stack) - stack->top) - RUN_BYTES,
                        stack->size, &run->exc_state);
    memset(&run->gc_call, 0, sizeof run->gc_call);
    if (cb_ctx_make(&run->ctx, stack->lo, (size_t)(stack->top - stack->lo), tasklet_entry) < 0) {
        cb_stack_release(&m->pool, stack);
        PyErr_SetString(PyExc_MemoryError, "cannot create a tasklet context");
        return -1;
    }
    t->stack = stack;
    t->run = run;
    t->started = 1;
    return 0;
}

/* ---- the hand-off ------------------------------------------------------------------------- */

static void prefetch_resume(const cb_tasklet *t)
{
    const cb_runstate *run;
    const char *sp = NULL;

    if (!t)
        return;
    __builtin_prefetch(t);
    __builtin_prefetch((const char *)t + 64);
    __builtin_prefetch((const char *)t + 128);
    run = t->run;
    if (!run)
        return;
    __builtin_prefetch(run);
    __builtin_prefetch((const char *)run + 64);
#ifndef CB_SWITCH_UCONTEXT
    sp = run->ctx.sp;
#endif
    if (sp)
        for (int i = 0; i < 1024; i += 64)
            __builtin_prefetch(sp + i);
    if (run->st.datastack_top)
        for (int i = 1; i <= 4; i++)
            __builtin_prefetch((const char *)run->st.datastack_top - 64 * i);
}

cb_tasklet *cb_transfer_handoff(cb_manager *m, cb_tasklet *cur, cb_transfer *x)
{
    cb_tasklet *main = m->main;
    cb_tasklet *n;

    if (!m->main_plain_loop || m->stop_run || cb_g.schedule_callback || cb_g.fast_callback ||
        m->deferred_kills || main->pending_exc || main->child_exc || m->switch_trap ||
        m->runtime_trap || cb_is_finalizing() ||
        (m->deadline_ns && cb_preempt_clock(m, cur) >= m->deadline_ns) ||
        (m->run_done && m->run_done(m->run_done_arg)))
        return NULL;
    n = cb_queue_first(m);
    if (!n || (n != cur && n->in_loop))
        return NULL;
    if (!n->started && cb_transfer_prepare(m, n) < 0) {
        PyErr_Clear(); /* main will try again and raise it */
        return NULL;
    }
    /* The tasklet after n runs next: start fetching what resuming it reads
     * (its object, the top of its C stack, its newest frames) while n runs. */
    prefetch_resume(cb_queue_next_of(m, n));
    /* What main's run_child() and loop would have counted. */
    main->times_switched_to++;
    m->switches++;
    m->completed++;
    if (n->parent != main) {
        cb_transfer_hold(x, (PyObject *)n->parent);
        n->parent = (cb_tasklet *)Py_NewRef(main);
    }
    return n;
}
