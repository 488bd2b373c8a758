/* Schedule managers: one per thread, created on first use, owned by the
 * thread-state dict; the run queue primitives; what happens at a thread's end
 * (semantics section 8 and 9). */
#include "core.h"
#include "transfer.h"
#include "preempt.h"

#define MANAGER_KEY "SCHEDULE_MANAGER"
#define THREAD_END_KEY "SCHEDULE_MANAGER_THREAD_END"

/* Sits next to the manager in the thread-state dict and holds a reference
 * to it: when the thread ends (its dict is cleared) this dies on that thread,
 * and the manager's tasklets are killed there even if something else keeps
 * the manager alive (a waiter left on a channel would swallow what is sent
 * to it). */
typedef struct {
    PyObject_HEAD
    cb_manager *mgr; /* owned */
} thread_end;

static void thread_end_dealloc(PyObject *self)
{
    cb_manager *m = ((thread_end *)self)->mgr;

    cb_g.manager_threads--;
    if (cb_can_unwind_here(m) && Py_REFCNT(m) > 1) {
        PyObject *exc = cb_err_fetch();
        if (cb_kill_all(m) < 0)
            PyErr_WriteUnraisable((PyObject *)m);
        cb_err_restore(exc);
    }
    Py_DECREF(m); /* the last one runs the manager's own finalizer */
    PyObject_Free(self);
}

static PyTypeObject thread_end_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "scheduler._ThreadEnd",
    .tp_basicsize = sizeof(thread_end),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = thread_end_dealloc,
};

static int add_thread_end(PyObject *dict, cb_manager *m)
{
    thread_end *e;
    int rc;

    if (!(thread_end_type.tp_flags & Py_TPFLAGS_READY) && PyType_Ready(&thread_end_type) < 0)
        return -1;
    e = PyObject_New(thread_end, &thread_end_type);
    if (!e)
        return -1;
    e->mgr = (cb_manager *)Py_NewRef(m);
    cb_g.manager_threads++;
    rc = PyDict_SetItemString(dict, THREAD_END_KEY, (PyObject *)e);
    Py_DECREF(e);
    return rc;
}

cb_globals cb_g = {
    .use_nested = 1,
    .stack_size = 0, /* 0: CB_TASKLET_STACK_SIZE */
};

/* Fast path to the calling thread's manager; validated against the thread
 * state, which a C host may delete and re-create on the same OS thread.
 * Initial-exec: one load from the thread pointer instead of a call to
 * __tls_get_addr (the module is small enough for the static TLS surplus). */
static _Thread_local cb_manager *tls_manager __attribute__((tls_model("initial-exec")));

/* Main tasklets whose manager died while they and their thread state were
 * still alive; the thread's next manager adopts its old main tasklet, so
 * getcurrent() keeps returning the same object. Linked through mgr_next;
 * GIL-protected. */
static cb_tasklet *orphan_mains;

cb_manager *cb_manager_peek(void)
{
    cb_manager *m = tls_manager;
    PyThreadState *ts;

    if (!m)
        return NULL;
    ts = cb_tstate_unchecked();
    if (ts && m->tstate == ts && m->tstate_id == ts->id)
        return m;
    return NULL;
}

cb_tasklet *cb_current(void)
{
    cb_manager *m = cb_manager_get();

    return m ? m->current : NULL;
}

/* ---- run queue ------------------------------------------------------------- */

static cb_tasklet *node_tasklet(cb_node *n)
{
    return (cb_tasklet *)((char *)n - offsetof(cb_tasklet, node));
}

static void link_after(cb_node *pos, cb_node *n)
{
    n->prev = pos;
    n->next = pos->next;
    pos->next->prev = n;
    pos->next = n;
}

void cb_queue_append(cb_manager *m, cb_tasklet *t)
{
    Py_INCREF(t);
    link_after(m->main->node.prev, &t->node);
    m->queued++;
    t->paused = 0;
}

void cb_queue_insert_next(cb_manager *m, cb_tasklet *t)
{
    cb_node *pos = m->current->node.next ? &m->current->node : &m->main->node;

    /* A run loop's cursor right behind the current tasklet stays in front,
     * so that loop runs t next. */
    while (pos->next->kind == CB_NODE_CURSOR)
        pos = pos->next;
    Py_INCREF(t);
    link_after(pos, &t->node);
    m->queued++;
    t->paused = 0;
}

/* Unlinks t; the queue's reference passes to the caller. */
void cb_queue_unlink(cb_manager *m, cb_tasklet *t)
{
    t->node.prev->next = t->node.next;
    t->node.next->prev = t->node.prev;
    t->node.prev = t->node.next = NULL;
    m->queued--;
}

/* Unlinks t if it is queued and drops the queue's reference: the one place
 * that does (t may be freed unless the caller holds a reference). */
void cb_queue_remove(cb_manager *m, cb_tasklet *t)
{
    if (!t->node.next)
        return;
    cb_queue_unlink(m, t);
    Py_DECREF(t);
}

static cb_tasklet *tasklet_after(cb_manager *m, cb_node *n)
{
    cb_node *head = &m->main->node;

    for (n = n->next; n != head; n = n->next)
        if (n->kind == CB_NODE_TASKLET)
            return node_tasklet(n);
    return NULL;
}

cb_tasklet *cb_queue_first(cb_manager *m)
{
    return tasklet_after(m, &m->main->node);
}

cb_tasklet *cb_queue_next_of(cb_manager *m, cb_tasklet *t)
{
    if (t->is_main)
        return cb_queue_first(m);
    return t->node.next ? tasklet_after(m, &t->node) : NULL;
}

cb_tasklet *cb_queue_prev_of(cb_manager *m, cb_tasklet *t)
{
    cb_node *head = &m->main->node;
    cb_node *n;

    if (t->is_main || !t->node.prev)
        return NULL;
    for (n = t->node.prev; n != head; n = n->prev)
        if (n->kind == CB_NODE_TASKLET)
            return node_tasklet(n);
    return m->main;
}

void cb_make_runnable(cb_tasklet *t, int next)
{
    cb_make_runnable_from(cb_manager_peek(), t, next);
}

void cb_make_runnable_from(cb_manager *here, cb_tasklet *t, int next)
{
    cb_manager *m = t->mgr;
    int remote;

    if (!m)
        return;
    remote = m != here;
    if (t->is_main) {
        /* A waiting main tasklet runs its own loop and re-checks what it
         * waits for after every turn: only another thread needs waking. */
        if (remote && m->wakeup)
            m->wakeup(m, m->hook_arg);
        return;
    }
    if (t->node.next || !t->alive)
        return;
    if (next)
        cb_queue_insert_next(m, t);
    else
        cb_queue_append(m, t);
    if (remote && m->wakeup)
        m->wakeup(m, m->hook_arg);
}

/* ---- creation ----------------------------------------------------------------- */

static cb_tasklet *adopt_orphan_main(cb_manager *m)
{
    cb_tasklet **link = &orphan_mains;

    for (cb_tasklet *t = orphan_mains; t; link = &t->mgr_next, t = t->mgr_next) {
        if (t->home_tstate_id == m->tstate_id) {
            *link = t->mgr_next;
            Py_INCREF(t);
            t->mgr_next = NULL;
            return t;
        }
    }
    return NULL;
}

static cb_manager *manager_new(PyThreadState *ts)
{
    cb_manager *m = PyObject_New(cb_manager, &cb_ManagerType);
    cb_tasklet *main;

    if (!m)
        return NULL;
    memset((char *)m + sizeof(PyObject), 0, sizeof *m - sizeof(PyObject));
    m->thread_id = (long)PyThread_get_thread_ident();
    m->tstate = ts;
    m->tstate_id = ts->id;
    cb_stack_pool_init(&m->pool, cb_g.stack_size ? cb_g.stack_size : CB_TASKLET_STACK_SIZE);
    main = adopt_orphan_main(m);
    if (!main)
        main = cb_tasklet_new_main(m);
    if (!main) {
        Py_DECREF(m);
        return NULL;
    }
    main->mgr = m;
    main->thread_id = m->thread_id;
    main->home_tstate_id = m->tstate_id;
    main->alive = 1;
    main->node.prev = main->node.next = &main->node;
    main->mgr_prev = NULL;
    main->mgr_next = NULL;
    cb_ctx_init_thread(&m->main_run.ctx);
    cb_pystate_init_main(&m->main_run.st);
    m->main_run.slice.resident = 1; /* on the thread's own stack */
    cb_region_set_init(&m->regions);
    main->run = &m->main_run;
    m->all = main;
    m->main = main;
    m->current = (cb_tasklet *)Py_NewRef(main);
    cb_g.managers++;
    m->all_next = cb_g.all_managers;
    if (cb_g.all_managers)
        cb_g.all_managers->all_prev = m;
    cb_g.all_managers = m;
    return m;
}

cb_manager *cb_manager_get(void)
{
    cb_manager *m = cb_manager_peek();
    PyThreadState *ts;
    PyObject *dict, *found;

    if (m)
        return m;
    ts = PyThreadState_Get();
    dict = PyThreadState_GetDict(); /* borrowed */
    if (!dict) {
        PyErr_SetString(PyExc_RuntimeError, "the thread has no thread-state dict");
        return NULL;
    }
    found = PyDict_GetItemString(dict, MANAGER_KEY); /* borrowed */
    if (found && Py_IS_TYPE(found, &cb_ManagerType) &&
        ((cb_manager *)found)->tstate == ts) {
        tls_manager = (cb_manager *)found;
        return tls_manager;
    }
    m = manager_new(ts);
    if (!m)
        return NULL;
    tls_manager = m;
    if (PyDict_SetItemString(dict, MANAGER_KEY, (PyObject *)m) < 0 ||
        add_thread_end(dict, m) < 0) {
        PyObject *exc = cb_err_fetch();
        if (PyDict_DelItemString(dict, MANAGER_KEY) < 0)
            PyErr_Clear();
        cb_err_restore(exc);
        tls_manager = NULL;
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(m); /* the thread-state dict owns it */
    return m;
}

/* The manager of thread state `ts`, if it has one (no exception). */
cb_manager *cb_manager_of(PyThreadState *ts)
{
    PyObject *found;

    if (!ts->dict)
        return NULL;
    found = PyDict_GetItemString(ts->dict, MANAGER_KEY); /* borrowed */
    if (found && Py_IS_TYPE(found, &cb_ManagerType) && ((cb_manager *)found)->tstate == ts)
        return (cb_manager *)found;
    return NULL;
}

/* ---- a thread's end ------------------------------------------------------------- */

int cb_can_unwind_here(cb_manager *m)
{
    return !cb_is_finalizing() && cb_tstate_unchecked() == m->tstate &&
           m->current == m->main && (long)PyThread_get_thread_ident() == m->thread_id;
}

/* The manager is about to die: its tasklets get TaskletExit, on their own
 * thread and while the interpreter can still run them. */
static void manager_finalize(PyObject *self)
{
    cb_manager *m = (cb_manager *)self;
    PyObject *exc;

    if (!cb_can_unwind_here(m))
        return;
    exc = cb_err_fetch();
    m->dying = 1;
    cb_release_all(m);
    if (cb_kill_all(m) < 0)
        PyErr_WriteUnraisable(self);
    cb_err_restore(exc);
}

/* Cuts a tasklet loose from its dead manager; the references the queue and
 * channels held are appended to `drop` (leaked if `drop` could not be
 * allocated: never a queue link to a dead manager). One that could not be
 * unwound keeps its stack (frames on it may still be referenced) and is
 * leaked. */
static void detach_tasklet(cb_manager *m, cb_tasklet *t, PyObject **drop, size_t *ndrop)
{
    if (t->chan) {
        cb_channel_unlink(t);
        if (drop)
            drop[(*ndrop)++] = (PyObject *)t;
    }
    if (t->node.next) {
        cb_queue_unlink(m, t);
        if (drop)
            drop[(*ndrop)++] = (PyObject *)t;
    }
    if (t->alive && t->started && !t->leaked) {
        t->leaked = 1;
        Py_INCREF(t); /* never freed: its stack holds live frames */
    }
    t->alive = 0;
    t->paused = 0;
    t->mgr = NULL;
    t->thread_id = -1;
}

static void manager_dealloc(PyObject *self)
{
    cb_manager *m = (cb_manager *)self;
    cb_tasklet *main = m->main;
    PyObject **drop;
    size_t ndrop = 0, n = 0;

    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return; /* resurrected */
    if (tls_manager == m)
        tls_manager = NULL;
    cb_preempt_manager_gone(m);
    for (cb_tasklet *t = m->all; t; t = t->mgr_next)
        n++;
    /* Releasing references runs Python code; that happens only once the
     * manager is gone. */
    drop = PyMem_Malloc((2 * n + 6 + m->nlater) * sizeof *drop);
    while (m->all) {
        cb_tasklet *t = m->all;
        m->all = t->mgr_next;
        t->mgr_prev = t->mgr_next = NULL;
        if (t != main)
            detach_tasklet(m, t, drop, &ndrop);
    }
    while (m->deferred_kills) {
        cb_tasklet *t = m->deferred_kills;
        m->deferred_kills = t->kill_next;
        t->kill_next = NULL;
        t->kill_deferred = 0;
        if (drop)
            drop[ndrop++] = (PyObject *)t;
    }
    /* What waits for a safe point is released with the rest. */
    if (drop) {
        for (size_t i = 0; i < m->nlater; i++)
            drop[ndrop++] = m->later[i];
        m->nlater = 0;
    }
    PyMem_Free(m->later);
    m->later = NULL;
    cb_transfer_free_regions(m);
    cb_stack_pool_clear(&m->pool);
    if (m->current && drop)
        drop[ndrop++] = (PyObject *)m->current;
    if (m->main_run.st.context && drop)
        drop[ndrop++] = m->main_run.st.context;
    if (m->last_failed && drop)
        drop[ndrop++] = (PyObject *)m->last_failed;
    main->run = NULL;
    main->mgr = NULL;
    main->thread_id = -1;
    main->node.prev = main->node.next = NULL;
    if (Py_REFCNT(main) > 1 + (m->current == main) && cb_tstate_unchecked() == m->tstate &&
        m->tstate->dict != NULL) {
        /* Still referenced, and the thread state lives on (it is not being
         * cleared): the thread's next manager adopts it. */
        main->mgr_next = orphan_mains;
        orphan_mains = main;
    }
    cb_g.managers--;
    if (m->all_prev)
        m->all_prev->all_next = m->all_next;
    else if (cb_g.all_managers == m)
        cb_g.all_managers = m->all_next;
    if (m->all_next)
        m->all_next->all_prev = m->all_prev;
    PyObject_Free(self);
    if (drop) {
        for (size_t i = 0; i < ndrop; i++)
            Py_DECREF(drop[i]);
        PyMem_Free(drop);
    }
    Py_DECREF(main);
}

/* Called from a main tasklet's dealloc. */
void cb_forget_orphan_main(cb_tasklet *t)
{
    cb_tasklet **link = &orphan_mains;

    for (cb_tasklet *o = orphan_mains; o; link = &o->mgr_next, o = o->mgr_next) {
        if (o == t) {
            *link = o->mgr_next;
            return;
        }
    }
}

static PyObject *manager_new_error(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)type;
    (void)args;
    (void)kwds;
    PyErr_SetString(PyExc_TypeError,
                    "ScheduleManager objects are created by the scheduler; "
                    "use scheduler.get_schedule_manager()");
    return NULL;
}

PyTypeObject cb_ManagerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "scheduler.ScheduleManager",
    .tp_basicsize = sizeof(cb_manager),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The per-thread scheduler: run queue and main tasklet.",
    .tp_new = manager_new_error,
    .tp_dealloc = manager_dealloc,
    .tp_finalize = manager_finalize,
};
