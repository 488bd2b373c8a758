/* The _scheduler extension module: module functions (docs/scheduler.md,
 * "Module functions") and initialisation. */
#include "chunkcache.h"
#include "core.h"
#include "gcmark.h"
#include "preempt.h"

#include "carbon/scheduler.h"
#include "sanitizer.h"

#ifdef CB_ASAN
#define CB_SANITIZED 1
#else
#define CB_SANITIZED 0
#endif

PyObject *cb_TaskletExit;

static cb_manager *manager(void)
{
    return cb_manager_get();
}

static PyObject *none_or_null(int rc)
{
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *mod_getcurrent(PyObject *mod, PyObject *unused)
{
    cb_manager *m = manager();

    (void)mod;
    (void)unused;
    return m ? Py_NewRef((PyObject *)m->current) : NULL;
}

static PyObject *mod_getmain(PyObject *mod, PyObject *unused)
{
    cb_manager *m = manager();

    (void)mod;
    (void)unused;
    return m ? Py_NewRef((PyObject *)m->main) : NULL;
}

static PyObject *mod_getruncount(PyObject *mod, PyObject *unused)
{
    cb_manager *m = manager();

    (void)mod;
    (void)unused;
    return m ? PyLong_FromSsize_t(m->queued + 1) : NULL;
}

static PyObject *mod_calculateruncount(PyObject *mod, PyObject *unused)
{
    cb_manager *m = manager();
    Py_ssize_t n = 1;

    (void)mod;
    (void)unused;
    if (!m)
        return NULL;
    for (cb_tasklet *t = cb_queue_first(m); t; t = cb_queue_next_of(m, t))
        n++;
    return PyLong_FromSsize_t(n);
}

/* run(timeout=0, threadblock=False, soft=False, ignore_nesting=False,
 * totaltimeout=False): Stackless's signature; with a timeout the run is
 * preemptive (preempt.c) and returns the interrupted tasklet. */
static PyObject *mod_run(PyObject *mod, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"timeout", "threadblock", "soft", "ignore_nesting", "totaltimeout", NULL};
    long long timeout = 0;
    int threadblock = 0, soft = 0, ignore_nesting = 0, totaltimeout = 0;
    cb_manager *m;
    cb_tasklet *victim;
    int rc;

    (void)mod;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|Lpppp:run", kwlist, &timeout, &threadblock,
                                     &soft, &ignore_nesting, &totaltimeout))
        return NULL;
    (void)threadblock;
    (void)ignore_nesting; /* every nesting level can be interrupted here */
    m = manager();
    if (!m)
        return NULL;
    if (timeout <= 0)
        return none_or_null(cb_run(m, -1, -1));
    if (m->current != m->main) {
        PyErr_SetString(PyExc_RuntimeError, "run() with a timeout must be called from the main tasklet");
        return NULL;
    }
    if (timeout > LLONG_MAX / CB_PREEMPT_TICK_NS)
        timeout = LLONG_MAX / CB_PREEMPT_TICK_NS;
    if (cb_preempt_arm(m, CB_PREEMPT_TIMEOUT, timeout * CB_PREEMPT_TICK_NS, totaltimeout, soft, 0) < 0)
        return NULL;
    rc = cb_run(m, -1, -1);
    cb_preempt_disarm(m);
    victim = cb_preempt_take_victim(m);
    if (rc < 0) {
        Py_XDECREF(victim);
        return NULL;
    }
    if (victim)
        return (PyObject *)victim;
    Py_RETURN_NONE;
}

static PyObject *mod_run_n_tasklets(PyObject *mod, PyObject *args)
{
    long long n;
    cb_manager *m;

    (void)mod;
    if (!PyArg_ParseTuple(args, "L:number_of_tasklets", &n))
        return NULL;
    if (n < 0) {
        /* The reference parses "I" and a negative count wraps to 4294967295. */
        PyErr_SetString(PyExc_ValueError,
                        "Invalid number: Number of Tasklets to run cannot be negative.");
        return NULL;
    }
    if (n == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Invalid number: Number of Tasklets to run must be greater than 0.");
        return NULL;
    }
    m = manager();
    return m ? none_or_null(cb_run(m, n, -1)) : NULL;
}

/* Replaces a process-wide callback; returns the previous one. */
static PyObject *swap_callback(PyObject **slot, PyObject *cb)
{
    PyObject *previous;

    if (cb != Py_None && !PyCallable_Check(cb)) {
        PyErr_SetString(PyExc_TypeError, "parameter must be callable or None.");
        return NULL;
    }
    if (!manager())
        return NULL;
    previous = *slot;
    *slot = cb == Py_None ? NULL : Py_NewRef(cb);
    return previous ? previous : Py_NewRef(Py_None);
}

static PyObject *mod_set_schedule_callback(PyObject *mod, PyObject *cb)
{
    (void)mod;
    return swap_callback(&cb_g.schedule_callback, cb);
}

static PyObject *mod_get_schedule_callback(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return Py_NewRef(cb_g.schedule_callback ? cb_g.schedule_callback : Py_None);
}

static PyObject *mod_set_channel_callback(PyObject *mod, PyObject *cb)
{
    (void)mod;
    return swap_callback(&cb_g.channel_callback, cb);
}

static PyObject *mod_get_channel_callback(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return Py_NewRef(cb_g.channel_callback ? cb_g.channel_callback : Py_None);
}

static PyObject *mod_switch_trap(PyObject *mod, PyObject *args)
{
    cb_manager *m;
    int delta, previous;

    (void)mod;
    if (!PyArg_ParseTuple(args, "i", &delta)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_RuntimeError, "Scheduler_switch_trap requires a delta argument.");
        return NULL;
    }
    m = manager();
    if (!m)
        return NULL;
    previous = m->switch_trap;
    m->switch_trap += delta;
    return PyLong_FromLong(previous);
}

static PyObject *mod_enable_softswitch(PyObject *mod, PyObject *flag)
{
    (void)mod;
    if (flag != Py_None) {
        PyErr_SetString(PyExc_RuntimeError,
                        "enable_soft_switch is only implemented for legacy reasons, the value "
                        "cannot be changed.");
        return NULL;
    }
    Py_RETURN_FALSE;
}

static PyObject *mod_get_schedule_manager(PyObject *mod, PyObject *unused)
{
    cb_manager *m = manager();

    (void)mod;
    (void)unused;
    return m ? Py_NewRef((PyObject *)m) : NULL;
}

static PyObject *mod_get_number_of_active_schedule_managers(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromLong(cb_g.managers);
}

static PyObject *mod_get_number_of_active_channels(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromLong(cb_g.channels);
}

int cb_unblock_all_channels(void)
{
    Py_ssize_t n = 0, i;
    cb_channel **chans;
    int rc = 0;

    for (cb_channel *c = cb_g.all_channels; c; c = c->all_next)
        if (c->balance != 0)
            n++;
    if (n == 0)
        return 0;
    chans = PyMem_Malloc((size_t)n * sizeof *chans);
    if (!chans) {
        PyErr_NoMemory();
        return -1;
    }
    i = 0;
    for (cb_channel *c = cb_g.all_channels; c && i < n; c = c->all_next)
        if (c->balance != 0)
            chans[i++] = (cb_channel *)Py_NewRef(c);
    n = i;
    for (i = 0; i < n; i++) {
        if (rc >= 0 && cb_channel_clear(chans[i]) < 0)
            rc = -1;
        Py_DECREF(chans[i]);
    }
    PyMem_Free(chans);
    return rc < 0 ? -1 : (int)n;
}

static PyObject *mod_unblock_all_channels(PyObject *mod, PyObject *unused)
{
    int n;

    (void)mod;
    (void)unused;
    if (!manager())
        return NULL;
    n = cb_unblock_all_channels();
    return n < 0 ? NULL : PyLong_FromLong(n);
}

static PyObject *mod_set_use_nested_tasklets(PyObject *mod, PyObject *args)
{
    PyObject *flag;
    int on;

    (void)mod;
    if (!PyArg_ParseTuple(args, "O:set_use_nested_tasklets", &flag))
        return NULL;
    /* Any integer by its truth (the reference's "b" rejected 300). */
    if (!PyIndex_Check(flag)) {
        PyErr_Format(PyExc_TypeError, "'%.200s' object cannot be interpreted as an integer",
                     Py_TYPE(flag)->tp_name);
        return NULL;
    }
    on = PyObject_IsTrue(flag);
    if (on < 0)
        return NULL;
    cb_g.use_nested = on;
    Py_RETURN_NONE;
}

static PyObject *mod_get_use_nested_tasklets(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyBool_FromLong(cb_g.use_nested);
}

static PyObject *mod_get_all_time_tasklet_count(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromLong(cb_g.tasklets_all_time);
}

static PyObject *mod_get_active_tasklet_count(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromLong(cb_g.tasklets);
}

/* ---- beyond the reference -------------------------------------------------------- */

static PyObject *mod_get_thread_tasklets(PyObject *mod, PyObject *unused)
{
    cb_manager *m = manager();
    PyObject *list;

    (void)mod;
    (void)unused;
    if (!m)
        return NULL;
    list = PyList_New(0);
    if (!list)
        return NULL;
    if (PyList_Append(list, (PyObject *)m->main) < 0)
        goto fail;
    for (cb_tasklet *t = m->all; t; t = t->mgr_next)
        if (!t->is_main && t->alive && PyList_Append(list, (PyObject *)t) < 0)
            goto fail;
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

/* [(thread_id, [main, live tasklets...]), ...] for every thread with a
 * scheduler (the calling thread first). */
static PyObject *mod_get_all_thread_tasklets(PyObject *mod, PyObject *unused)
{
    cb_manager *self = manager();
    PyObject *out;

    (void)mod;
    (void)unused;
    if (!self)
        return NULL;
    out = PyList_New(0);
    if (!out)
        return NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (cb_manager *m = cb_g.all_managers; m; m = m->all_next) {
            PyObject *list, *item;
            if ((m == self) != (pass == 0) || !m->main)
                continue;
            list = PyList_New(0);
            if (!list || PyList_Append(list, (PyObject *)m->main) < 0)
                goto fail_list;
            for (cb_tasklet *t = m->all; t; t = t->mgr_next)
                if (!t->is_main && t->alive && PyList_Append(list, (PyObject *)t) < 0)
                    goto fail_list;
            item = Py_BuildValue("(lN)", m->thread_id, list);
            if (!item || PyList_Append(out, item) < 0) {
                Py_XDECREF(item);
                goto fail;
            }
            Py_DECREF(item);
            continue;
        fail_list:
            Py_XDECREF(list);
            goto fail;
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *mod_set_stack_size(PyObject *mod, PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    size_t rounded;
    cb_manager *m;

    (void)mod;
    if (size == -1 && PyErr_Occurred())
        return NULL;
    rounded = size > 0 ? cb_stack_tasklet_size((size_t)size) : 0;
    if (!rounded) {
        PyErr_Format(PyExc_ValueError,
                     "stack size must be between %zu (a thread's stack) and %u bytes",
                     CB_TASKLET_STACK_SIZE, CB_STACK_MAX_SIZE);
        return NULL;
    }
    cb_g.stack_size = rounded;
    /* The calling thread's pool switches at once; stacks in use keep theirs. */
    m = cb_manager_peek();
    if (m && m->pool.stack_size != rounded) {
        cb_stack_pool_clear(&m->pool);
        m->pool.stack_size = rounded;
    }
    Py_RETURN_NONE;
}

static PyObject *mod_get_stack_size(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyLong_FromSize_t(cb_g.stack_size ? cb_g.stack_size : CB_TASKLET_STACK_SIZE);
}

static PyObject *mod_get_stack_stats(PyObject *mod, PyObject *unused)
{
    cb_stack_stats s;
    cb_manager *m = cb_manager_peek();
    unsigned bound = 0;

    (void)mod;
    (void)unused;
    cb_stack_get_stats(&s);
    for (unsigned i = 0; m && i < m->regions.n; i++)
        bound += m->regions.regions[i]->nbound;
    return Py_BuildValue("{s:n,s:n,s:I,s:I,s:I,s:I,s:I,s:n,s:K,s:s}", "guarded",
                         (Py_ssize_t)s.guarded_live, "guard_budget", (Py_ssize_t)s.guard_budget,
                         "thread_live",
                         m ? m->pool.live : 0, "thread_cached", m ? m->pool.nfree : 0,
                         "thread_regions", m ? m->regions.n : 0, "thread_regions_max",
                         m ? m->regions.max : 0, "thread_bound", bound, "thread_slice_bytes",
                         (Py_ssize_t)(m ? m->regions.last_len : 0), "thread_exchanges",
                         m ? m->regions.exchanges : 0ULL, "switch", cb_ctx_backend());
}

static PyObject *mod_set_guarded_stacks(PyObject *mod, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);

    (void)mod;
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "the number of guarded stacks cannot be negative");
        return NULL;
    }
    cb_stack_set_guard_budget((size_t)n);
    Py_RETURN_NONE;
}

/* (C stack bytes in use, recursion units in use) of the current tasklet, for
 * measuring (tests/python/test_core_overflow.py). */
static PyObject *mod_stack_usage(PyObject *mod, PyObject *unused)
{
    cb_manager *m = manager();
    cb_tasklet *cur;
    PyThreadState *ts;
    long used_bytes = -1, units;
    char here;

    (void)mod;
    (void)unused;
    if (!m)
        return NULL;
    cur = m->current;
    ts = m->tstate;
    if (cur->stack)
        used_bytes = (long)(cur->stack->top - &here);
#ifdef CB_PY311
    units = ts->recursion_limit - ts->recursion_remaining;
#else
    units = CB_C_RECURSION_LIMIT - ts->c_recursion_remaining;
#endif
    return Py_BuildValue("(ll)", used_bytes, units);
}

/* Registered with atexit: the main thread's tasklets get TaskletExit while the
 * interpreter can still run their finally blocks. */
static PyObject *mod_gc_phase(PyObject *mod, PyObject *args);

static PyObject *mod_atexit(PyObject *mod, PyObject *unused)
{
    cb_manager *m = cb_manager_peek();

    (void)mod;
    (void)unused;
    cb_preempt_shutdown();
    if (m && m->current == m->main && cb_kill_all(m) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"getcurrent", mod_getcurrent, METH_NOARGS, "The calling thread's current tasklet."},
    {"getmain", mod_getmain, METH_NOARGS, "The calling thread's main tasklet."},
    {"getruncount", mod_getruncount, METH_NOARGS, "Queued tasklets + 1 (the main tasklet)."},
    {"calculateruncount", mod_calculateruncount, METH_NOARGS, "getruncount(), by walking the queue."},
    {"schedule", (PyCFunction)(void (*)(void))cb_mod_schedule, METH_FASTCALL | METH_KEYWORDS,
     "schedule(retval=None) -> retval: yield; the current tasklet goes to the back of the queue."},
    {"schedule_remove", (PyCFunction)(void (*)(void))cb_mod_schedule_remove,
     METH_FASTCALL | METH_KEYWORDS, "schedule_remove(retval=None) -> retval: yield without being re-queued."},
    {"run", (PyCFunction)(void (*)(void))mod_run, METH_VARARGS | METH_KEYWORDS,
     "run(timeout=0, threadblock=False, soft=False, ignore_nesting=False, totaltimeout=False): "
     "run the queue; with a timeout, preemptively (see docs/scheduler.md)."},
    {"run_n_tasklets", mod_run_n_tasklets, METH_VARARGS, "run_n_tasklets(n): run() stopping after n switches."},
    {"set_schedule_callback", mod_set_schedule_callback, METH_O, "set_schedule_callback(cb) -> previous"},
    {"get_schedule_callback", mod_get_schedule_callback, METH_NOARGS, "The schedule callback or None."},
    {"set_channel_callback", mod_set_channel_callback, METH_O, "set_channel_callback(cb) -> previous"},
    {"get_channel_callback", mod_get_channel_callback, METH_NOARGS, "The channel callback or None."},
    {"get_thread_info", cb_mod_get_thread_info, METH_VARARGS,
     "get_thread_info(thread_id=None) -> (main, current, runcount); see docs/scheduler.md"},
    {"_thread_ids", cb_mod_thread_ids, METH_NOARGS, "Ids of the threads that have a scheduler."},
    {"switch_trap", mod_switch_trap, METH_VARARGS, "switch_trap(delta) -> previous level"},
    {"enable_softswitch", mod_enable_softswitch, METH_O, "Legacy: always False."},
    {"get_schedule_manager", mod_get_schedule_manager, METH_NOARGS, "The calling thread's manager."},
    {"get_number_of_active_schedule_managers", mod_get_number_of_active_schedule_managers, METH_NOARGS,
     "Managers alive, all threads."},
    {"get_number_of_active_channels", mod_get_number_of_active_channels, METH_NOARGS,
     "Channels alive, all threads."},
    {"unblock_all_channels", mod_unblock_all_channels, METH_NOARGS,
     "clear() every channel with waiters; returns how many."},
    {"set_use_nested_tasklets", mod_set_use_nested_tasklets, METH_VARARGS,
     "set_use_nested_tasklets(flag): nested (default) or flat run order."},
    {"get_use_nested_tasklets", mod_get_use_nested_tasklets, METH_NOARGS, "The run-order mode."},
    {"get_all_time_tasklet_count", mod_get_all_time_tasklet_count, METH_NOARGS,
     "Tasklets ever initialised."},
    {"get_active_tasklet_count", mod_get_active_tasklet_count, METH_NOARGS,
     "Tasklet objects that exist now."},
    {"get_thread_tasklets", mod_get_thread_tasklets, METH_NOARGS,
     "The calling thread's main tasklet and its other live tasklets."},
    {"get_all_thread_tasklets", mod_get_all_thread_tasklets, METH_NOARGS,
     "[(thread_id, [main, live tasklets]), ...] for every thread with a scheduler, the calling "
     "thread first."},
    {"set_stack_size", mod_set_stack_size, METH_O, "set_stack_size(bytes): C stack of new tasklets."},
    {"get_stack_size", mod_get_stack_size, METH_NOARGS, "C stack bytes of new tasklets."},
    {"get_stack_stats", mod_get_stack_stats, METH_NOARGS, "Stack pool counters."},
    {"set_guarded_stacks", mod_set_guarded_stacks, METH_O,
     "set_guarded_stacks(n): how many stacks may be mapped (process-wide) before threads' "
     "tasklets share the stack regions they have."},
    {"_atexit", mod_atexit, METH_NOARGS, "Kill the main thread's tasklets (atexit hook)."},
    {"_gc_phase", mod_gc_phase, METH_VARARGS,
     "gc.callbacks hook: notes the tasklet a collection runs in."},
    {"_interrupt", cb_preempt_py_interrupt, METH_O,
     "_interrupt(thread_ident): raise TaskletExit in that thread's running code (tests)."},
    {"_stack_usage", mod_stack_usage, METH_NOARGS,
     "(C stack bytes, recursion units) used by the current tasklet (measuring)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scheduler_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_scheduler",
    .m_doc = "Tasklets and channels on their own C stacks (Carbon runtime).",
    .m_size = -1,
    .m_methods = module_methods,
};

/* gc.callbacks: a collection that starts in a tasklet other than a main
 * tasklet runs there to its end (core.h, cb_gc_in_tasklet). */
static PyObject *mod_gc_phase(PyObject *mod, PyObject *args)
{
    const char *phase;
    PyObject *info;
    cb_manager *m = cb_manager_peek();

    (void)mod;
    if (!PyArg_ParseTuple(args, "sO", &phase, &info))
        return NULL;
    if (strcmp(phase, "start") == 0)
        cb_gcmark_begin();
    else
        cb_gcmark_end();
    if (m && m->current) {
        if (strcmp(phase, "start") == 0)
            m->gc_owner = m->current->is_main ? NULL : m->current;
        else
            m->gc_owner = NULL;
    }
    Py_RETURN_NONE;
}

static int register_gc_phase(PyObject *mod)
{
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *callbacks = gc ? PyObject_GetAttrString(gc, "callbacks") : NULL;
    PyObject *hook = callbacks ? PyObject_GetAttrString(mod, "_gc_phase") : NULL;
    int rc = hook ? PyList_Append(callbacks, hook) : -1;

    Py_XDECREF(hook);
    Py_XDECREF(callbacks);
    Py_XDECREF(gc);
    return rc;
}

static int register_atexit(PyObject *mod)
{
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *hook, *r;

    if (!atexit)
        return -1;
    hook = PyObject_GetAttrString(mod, "_atexit");
    r = hook ? PyObject_CallMethod(atexit, "register", "O", hook) : NULL;
    Py_XDECREF(hook);
    Py_DECREF(atexit);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int add_type(PyObject *mod, const char *name, PyTypeObject *type)
{
    if (PyType_Ready(type) < 0)
        return -1;
    return PyModule_AddObjectRef(mod, name, (PyObject *)type);
}

PyObject *cb_capi_capsule(void);

PyMODINIT_FUNC PyInit__scheduler(void)
{
    PyObject *mod = PyModule_Create(&scheduler_module);
    PyObject *capsule;
    int rc;

    if (!mod)
        return NULL;
    if (add_type(mod, "tasklet", &cb_TaskletType) < 0 ||
        add_type(mod, "channel", &cb_ChannelType) < 0 ||
        add_type(mod, "schedule_manager", &cb_ManagerType) < 0 ||
        add_type(mod, "callable_wrapper", &cb_CallableWrapperType) < 0)
        goto fail;
    if (!cb_TaskletExit) {
        cb_TaskletExit = PyErr_NewException("_scheduler.TaskletExit", PyExc_SystemExit, NULL);
        if (!cb_TaskletExit)
            goto fail;
    }
    if (PyModule_AddObjectRef(mod, "TaskletExit", cb_TaskletExit) < 0)
        goto fail;
    capsule = cb_capi_capsule();
    rc = capsule ? PyModule_AddObjectRef(mod, "_C_API", capsule) : -1;
    Py_XDECREF(capsule); /* PyModule_AddObject leaked it on failure */
    if (rc < 0)
        goto fail;
    if (PyModule_AddStringConstant(mod, "switch_backend", cb_ctx_backend()) < 0 ||
        PyModule_AddIntConstant(mod, "MIN_STACK_SIZE", (long)CB_TASKLET_STACK_SIZE) < 0 ||
        PyModule_AddIntConstant(mod, "MAX_STACK_SIZE", CB_STACK_MAX_SIZE) < 0 ||
        PyModule_AddIntConstant(mod, "DEFAULT_STACK_SIZE", (long)CB_TASKLET_STACK_SIZE) < 0 ||
        PyModule_AddIntConstant(mod, "_sanitized", CB_SANITIZED) < 0)
        goto fail;
    if (register_atexit(mod) < 0 || register_gc_phase(mod) < 0)
        goto fail;
    cb_chunkcache_install();
    return mod;
fail:
    Py_DECREF(mod);
    return NULL;
}
