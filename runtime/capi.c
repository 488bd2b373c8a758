/* The scheduler._C_API capsule (include/carbon/scheduler.h). Every entry
 * point takes the GIL itself (tests/c/test_capi.c calls each one from a
 * thread that does not hold it) and checks the type of the object it is
 * given. */
#include "core.h"

#include "carbon/scheduler.h"

#define T(t) ((cb_tasklet *)(t))
#define C(c) ((cb_channel *)(c))

/* With the GIL held: 1 if o is a tasklet / channel, else 0 and TypeError. */
static int is_tasklet(PyTaskletObject *o)
{
    if (o && CB_Tasklet_Check((PyObject *)o))
        return 1;
    PyErr_SetString(PyExc_TypeError, "a tasklet is required");
    return 0;
}

static int is_channel(PyChannelObject *o)
{
    if (o && CB_Channel_Check((PyObject *)o))
        return 1;
    PyErr_SetString(PyExc_TypeError, "a channel is required");
    return 0;
}

static PyObject *call_method(PyObject *o, const char *name, PyObject *args, PyObject *kwds)
{
    PyObject *method = PyObject_GetAttrString(o, name);
    PyObject *r;

    if (!method)
        return NULL;
    r = PyObject_Call(method, args, kwds);
    Py_DECREF(method);
    return r;
}

static PyTaskletObject *capi_tasklet_new(PyTypeObject *type, PyObject *args)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *empty = NULL, *r;

    if (!args)
        args = empty = PyTuple_New(0);
    r = args ? PyObject_Call((PyObject *)(type ? type : &cb_TaskletType), args, NULL) : NULL;
    Py_XDECREF(empty);
    PyGILState_Release(g);
    return (PyTaskletObject *)r;
}

static int capi_tasklet_setup(PyTaskletObject *t, PyObject *args, PyObject *kwds)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *empty = NULL, *r;

    if (!args)
        args = empty = PyTuple_New(0);
    r = args ? call_method((PyObject *)t, "setup", args, kwds) : NULL;
    Py_XDECREF(empty);
    Py_XDECREF(r);
    PyGILState_Release(g);
    return r ? 0 : -1;
}

static int simple_method(PyObject *o, const char *name)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(o, name, NULL);

    Py_XDECREF(r);
    PyGILState_Release(g);
    return r ? 0 : -1;
}

static int capi_tasklet_insert(PyTaskletObject *t)
{
    return simple_method((PyObject *)t, "insert");
}

/* The bit-fields share one word with alive/blocked/paused, which the
 * scheduler writes under the GIL: reads and writes here take it too. */
static int capi_tasklet_get_block_trap(PyTaskletObject *t)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int r = is_tasklet(t) ? T(t)->block_trap : 0;

    PyGILState_Release(g);
    return r;
}

static void capi_tasklet_set_block_trap(PyTaskletObject *t, int value)
{
    PyGILState_STATE g = PyGILState_Ensure();

    if (is_tasklet(t))
        T(t)->block_trap = value != 0;
    PyGILState_Release(g);
}

static int capi_tasklet_is_main(PyTaskletObject *t)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int r = is_tasklet(t) ? T(t)->is_main : 0;

    PyGILState_Release(g);
    return r;
}

static int capi_tasklet_check(PyObject *o)
{
    PyGILState_STATE g;
    int r;

    if (!o)
        return 0;
    g = PyGILState_Ensure();
    r = CB_Tasklet_Check(o);
    PyGILState_Release(g);
    return r;
}

static int capi_tasklet_alive(PyTaskletObject *t)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int r = is_tasklet(t) ? (T(t)->is_main ? T(t)->mgr != NULL : T(t)->alive) : 0;

    PyGILState_Release(g);
    return r;
}

static int capi_tasklet_kill(PyTaskletObject *t)
{
    simple_method((PyObject *)t, "kill");
    return 0; /* Stackless compatibility: the caller tests PyErr_Occurred() */
}

static PyChannelObject *capi_channel_new(PyTypeObject *type)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallNoArgs((PyObject *)(type ? type : &cb_ChannelType));

    PyGILState_Release(g);
    return (PyChannelObject *)r;
}

static int capi_channel_send(PyChannelObject *c, PyObject *value)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc;

    if (!is_channel(c)) {
        rc = -1;
    } else if (Py_IS_TYPE((PyObject *)c, &cb_ChannelType)) {
        rc = C(c)->initialised ? cb_channel_send(C(c), value, 0) : -1;
        if (!C(c)->initialised)
            PyErr_SetString(PyExc_RuntimeError, "Channel object is not valid.");
    } else {
        PyObject *r = PyObject_CallMethod((PyObject *)c, "send", "O", value);
        Py_XDECREF(r);
        rc = r ? 0 : -1;
    }
    PyGILState_Release(g);
    return rc;
}

static PyObject *capi_channel_receive(PyChannelObject *c)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r;

    if (!is_channel(c))
        r = NULL;
    else if (Py_IS_TYPE((PyObject *)c, &cb_ChannelType) && C(c)->initialised)
        r = cb_channel_receive(C(c));
    else
        r = PyObject_CallMethod((PyObject *)c, "receive", NULL);
    PyGILState_Release(g);
    return r;
}

static int capi_channel_send_exception(PyChannelObject *c, PyObject *klass, PyObject *value)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = -1;

    if (!is_channel(c))
        ;
    else if (!cb_is_throwable(klass))
        PyErr_SetString(PyExc_RuntimeError, "Exception type or instance required");
    else
        rc = cb_channel_send_exception(C(c), klass, value ? value : Py_None);
    Py_XDECREF(value); /* stolen, as the reference implementation does */
    PyGILState_Release(g);
    return rc;
}

static PyObject *capi_channel_get_queue(PyChannelObject *c)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = NULL;

    if (is_channel(c))
        r = Py_NewRef(C(c)->head ? (PyObject *)C(c)->head : Py_None);

    PyGILState_Release(g);
    return r;
}

static int capi_channel_get_preference(PyChannelObject *c)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int r = is_channel(c) ? C(c)->preference : 0;

    PyGILState_Release(g);
    return r;
}

static void capi_channel_set_preference(PyChannelObject *c, int value)
{
    PyGILState_STATE g = PyGILState_Ensure();

    if (is_channel(c))
        C(c)->preference = value < -1 ? -1 : value > 1 ? 1 : value;
    PyGILState_Release(g);
}

static int capi_channel_get_balance(PyChannelObject *c)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int r = is_channel(c) ? C(c)->balance : 0;

    PyGILState_Release(g);
    return r;
}

static int capi_channel_check(PyObject *o)
{
    PyGILState_STATE g;
    int r;

    if (!o)
        return 0;
    g = PyGILState_Ensure();
    r = CB_Channel_Check(o);
    PyGILState_Release(g);
    return r;
}

static int capi_channel_send_throw(PyChannelObject *c, PyObject *exc, PyObject *val, PyObject *tb)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = -1;

    if (!is_channel(c))
        ;
    else if (!cb_is_throwable(exc) && !(exc && PyExceptionInstance_Check(exc)))
        PyErr_SetString(PyExc_RuntimeError, "Exception type or instance required");
    else if (tb && tb != Py_None && !PyTraceBack_Check(tb))
        PyErr_SetString(PyExc_TypeError, "tb must be a traceback or None");
    else
        rc = cb_channel_send_throw(C(c), exc, val ? val : Py_None, tb ? tb : Py_None);
    PyGILState_Release(g);
    return rc;
}

static PyObject *capi_get_scheduler(void)
{
    PyGILState_STATE g = PyGILState_Ensure();
    cb_manager *m = cb_manager_get();

    PyGILState_Release(g);
    return (PyObject *)m; /* borrowed: the thread-state dict owns it */
}

static PyObject *capi_schedule(PyObject *retval, int remove)
{
    PyGILState_STATE g = PyGILState_Ensure();
    cb_manager *m = cb_manager_get();
    PyObject *r = NULL;

    (void)retval;
    if (m && cb_schedule(m, remove != 0) == 0)
        r = Py_NewRef(Py_None);
    PyGILState_Release(g);
    return r;
}

static int capi_get_run_count(void)
{
    PyGILState_STATE g = PyGILState_Ensure();
    cb_manager *m = cb_manager_get();
    int n = m ? (int)m->queued + 1 : -1;

    PyGILState_Release(g);
    return n;
}

static PyObject *capi_get_current(void)
{
    PyGILState_STATE g = PyGILState_Ensure();
    cb_manager *m = cb_manager_get();
    PyObject *r = m ? Py_NewRef((PyObject *)m->current) : NULL;

    PyGILState_Release(g);
    return r;
}

static PyObject *capi_run_with_timeout(long long timeout_ns)
{
    PyGILState_STATE g = PyGILState_Ensure();
    cb_manager *m = cb_manager_get();
    PyObject *r = NULL;

    if (m) {
        unsigned long long switches = m->switches, completed = m->completed;
        int rc;

        cb_g.rwt_completed = 0;
        cb_g.rwt_switched = 0;
        rc = cb_run(m, -1, timeout_ns < 0 ? 0 : timeout_ns);
        cb_g.rwt_completed = (long)(m->completed - completed);
        cb_g.rwt_switched = (long)(m->switches - switches);
        if (rc == 0)
            r = Py_NewRef(Py_None);
    }
    PyGILState_Release(g);
    return r;
}

static PyObject *capi_run_n_tasklets(int n)
{
    PyGILState_STATE g = PyGILState_Ensure();
    cb_manager *m = cb_manager_get();
    PyObject *r = NULL;

    if (m && cb_run(m, n <= 0 ? 1 : n, -1) == 0)
        r = Py_NewRef(Py_None);
    PyGILState_Release(g);
    return r;
}

static int set_callback(PyObject **slot, PyObject *cb)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = 0;

    if (cb && !PyCallable_Check(cb)) {
        Py_DECREF(cb);
        rc = -1;
    } else {
        Py_XSETREF(*slot, cb); /* steals cb */
    }
    PyGILState_Release(g);
    return rc;
}

static int capi_set_channel_callback(PyObject *cb)
{
    return set_callback(&cb_g.channel_callback, cb);
}

static PyObject *capi_get_channel_callback(void)
{
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = cb_g.channel_callback;

    PyGILState_Release(g);
    return r;
}

static int capi_set_schedule_callback(PyObject *cb)
{
    return set_callback(&cb_g.schedule_callback, cb);
}

static void capi_set_schedule_fast_callback(schedule_hook_func *func)
{
    PyGILState_STATE g = PyGILState_Ensure();

    cb_g.fast_callback = (cb_fast_callback)(void (*)(void))func;
    PyGILState_Release(g);
}

/* A process-wide counter, read under the GIL. */
static int read_counter(const long *counter)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int r = (int)*counter;

    PyGILState_Release(g);
    return r;
}

static int capi_managers(void)
{
    return read_counter(&cb_g.managers);
}

static int capi_channels(void)
{
    return read_counter(&cb_g.channels);
}

static int capi_all_time(void)
{
    return read_counter(&cb_g.tasklets_all_time);
}

static int capi_active(void)
{
    return read_counter(&cb_g.tasklets);
}

static int capi_rwt_completed(void)
{
    return read_counter(&cb_g.rwt_completed);
}

static int capi_rwt_switched(void)
{
    return read_counter(&cb_g.rwt_switched);
}

static long capi_times_switched_to(PyTaskletObject *t)
{
    PyGILState_STATE g = PyGILState_Ensure();
    long r = is_tasklet(t) ? T(t)->times_switched_to : 0;

    PyGILState_Release(g);
    return r;
}

static const char *capi_get_context(PyTaskletObject *t)
{
    PyGILState_STATE g = PyGILState_Ensure();
    const char *s = !is_tasklet(t) ? "" :
                    T(t)->context_text ? PyUnicode_AsUTF8(T(t)->context_text) : "";

    if (!s) {
        PyErr_Clear();
        s = "";
    }
    PyGILState_Release(g);
    return s;
}

static SchedulerCAPI capi = {
    capi_tasklet_new,
    capi_tasklet_setup,
    capi_tasklet_insert,
    capi_tasklet_get_block_trap,
    capi_tasklet_set_block_trap,
    capi_tasklet_is_main,
    capi_tasklet_check,
    capi_tasklet_alive,
    capi_tasklet_kill,
    capi_channel_new,
    capi_channel_send,
    capi_channel_receive,
    capi_channel_send_exception,
    capi_channel_get_queue,
    capi_channel_get_preference,
    capi_channel_set_preference,
    capi_channel_get_balance,
    capi_channel_check,
    capi_channel_send_throw,
    capi_get_scheduler,
    capi_schedule,
    capi_get_run_count,
    capi_get_current,
    capi_run_with_timeout,
    capi_run_n_tasklets,
    capi_set_channel_callback,
    capi_get_channel_callback,
    capi_set_schedule_callback,
    capi_set_schedule_fast_callback,
    capi_managers,
    capi_channels,
    capi_all_time,
    capi_active,
    capi_rwt_completed,
    capi_rwt_switched,
    &cb_TaskletType,
    &cb_ChannelType,
    &cb_TaskletExit,
    capi_times_switched_to,
    capi_get_context,
};

PyObject *cb_capi_capsule(void)
{
    return PyCapsule_New(&capi, SCHEDULER_CAPI_NAME, NULL);
}
