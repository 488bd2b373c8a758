/* The rest of the Stackless API, beside the reference's (docs/scheduler.md,
 * docs/stackless-divergence.md): tempval and schedule(retval), the tasklet
 * introspection attributes, channel.send_sequence and schedule_all,
 * get_thread_info(thread_id) and the list of scheduler threads, and the
 * pickling names, which exist to say that tasklets cannot be pickled. */
#include "core.h"

/* ---- tempval and schedule(retval) ------------------------------------------------ */

/* The value the tasklet resumes with: what schedule(retval) returns, the
 * value a blocked sender offers or a woken receiver is about to return (an
 * exception instance if it will raise one). None when there is none. */
PyObject *cb_tasklet_get_tempval(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    return Py_NewRef(t->tempval ? t->tempval : Py_None);
}

int cb_tasklet_set_tempval(PyObject *self, PyObject *v, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return -1;
    /* A blocked receiver waits for a value: it has none to replace. */
    if (t->chan && t->chan_dir < 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot set tempval of a tasklet waiting to receive");
        return -1;
    }
    Py_XSETREF(t->tempval, Py_NewRef(v ? v : Py_None));
    t->tempval_is_exc = 0;
    return 0;
}

/* schedule(retval=None) / schedule_remove(retval=None): the current
 * tasklet's tempval is retval while it is away; it returns its tempval
 * (retval unless someone set tasklet.tempval meanwhile). */
static PyObject *schedule_with_retval(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                                      int remove)
{
    const char *name = remove ? "schedule_remove" : "schedule";
    PyObject *retval = Py_None, *result;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    cb_manager *m;
    cb_tasklet *cur;

    /* Parsed by hand: schedule() is on the hot path. */
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument (%zd given)", name,
                     nargs + nkw);
        return NULL;
    }
    if (nargs == 1) {
        retval = args[0];
    } else if (nkw == 1) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "retval") != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", name,
                         PyTuple_GET_ITEM(kwnames, 0));
            return NULL;
        }
        retval = args[0];
    }
    m = cb_manager_get();
    if (!m)
        return NULL;
    /* Borrowed: no reference of ours may keep a suspended tasklet alive
     * (dropping its last one kills it); it is current again on return. */
    cur = m->current;
    Py_XSETREF(cur->tempval, retval != Py_None ? Py_NewRef(retval) : NULL);
    cur->tempval_is_exc = 0;
    if (cb_schedule(m, remove) < 0) {
        Py_CLEAR(cur->tempval);
        return NULL;
    }
    result = cur->tempval ? cur->tempval : Py_NewRef(Py_None);
    cur->tempval = NULL;
    return result;
}

PyObject *cb_mod_schedule(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    (void)mod;
    return schedule_with_retval(args, nargs, kwnames, 0);
}

PyObject *cb_mod_schedule_remove(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames)
{
    (void)mod;
    return schedule_with_retval(args, nargs, kwnames, 1);
}

/* ---- introspection ------------------------------------------------------------------ */

/* Python frames on the tasklet's own stack (a main tasklet: the thread's). */
PyObject *cb_tasklet_get_recursion_depth(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;
    PyObject *frame;
    long n = 0;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    frame = cb_tasklet_frame(t);
    if (!frame)
        return NULL;
    while (frame != Py_None) {
        PyObject *back = (PyObject *)PyFrame_GetBack((PyFrameObject *)frame);
        n++;
        Py_DECREF(frame);
        frame = back ? back : Py_NewRef(Py_None);
    }
    Py_DECREF(frame);
    return PyLong_FromLong(n);
}

/* 0 for a tasklet that holds no C state (never started, or finished); else
 * 1 for its own C stack, plus 1 while it waits in a run loop it started
 * (tasklet.run(), switch(), a non-pending kill or throw, scheduler.run()). */
PyObject *cb_tasklet_get_nesting_level(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    if (!t->is_main && (!t->started || !t->alive))
        return PyLong_FromLong(0);
    if (t->is_main && !t->mgr)
        return PyLong_FromLong(0);
    return PyLong_FromLong(1 + (long)t->in_loop);
}

/* True when the tasklet holds no C state: only such a tasklet could be
 * recreated from its Python state (nothing can be pickled here, though). */
PyObject *cb_tasklet_get_restorable(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    if (t->is_main)
        return PyBool_FromLong(t->mgr == NULL);
    return PyBool_FromLong(!(t->started && t->alive));
}

/* ---- pickling: the names exist and say why not --------------------------------------- */

static PyObject *cannot_pickle(PyObject *self, const char *why)
{
    PyErr_Format(PyExc_TypeError, "cannot pickle '%.100s' object: %s", Py_TYPE(self)->tp_name,
                 why);
    return NULL;
}

static const char TASKLET_WHY[] =
    "Carbon runtime tasklets run on their own C stacks, which cannot be saved "
    "(see docs/stackless-divergence.md)";
static const char CHANNEL_WHY[] =
    "channels hold tasklets, which cannot be pickled (see docs/stackless-divergence.md)";

PyObject *cb_tasklet_reduce(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return cannot_pickle(self, TASKLET_WHY);
}

PyObject *cb_channel_reduce(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return cannot_pickle(self, CHANNEL_WHY);
}

/* ---- channel.send_sequence and schedule_all ------------------------------------------ */

/* Sends every item of `seq` in turn; returns how many were sent. */
PyObject *cb_channel_send_sequence(PyObject *self, PyObject *seq)
{
    cb_channel *ch = (cb_channel *)self;
    PyObject *it, *item;
    Py_ssize_t n = 0;

    if (!cb_channel_valid(ch))
        return NULL;
    it = PyObject_GetIter(seq);
    if (!it)
        return NULL;
    while ((item = PyIter_Next(it)) != NULL) {
        int rc = cb_channel_send(ch, item, 0);
        Py_DECREF(item);
        if (rc < 0) {
            Py_DECREF(it);
            return NULL;
        }
        n++;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t(n);
}

PyObject *cb_channel_get_schedule_all(PyObject *self, void *c)
{
    (void)c;
    if (!cb_channel_valid((cb_channel *)self))
        return NULL;
    return PyBool_FromLong(((cb_channel *)self)->schedule_all);
}

int cb_channel_set_schedule_all(PyObject *self, PyObject *v, void *c)
{
    cb_channel *ch = (cb_channel *)self;
    int flag;

    (void)c;
    if (!cb_channel_valid(ch))
        return -1;
    if (!v) {
        PyErr_SetString(PyExc_TypeError, "cannot delete schedule_all");
        return -1;
    }
    flag = PyObject_IsTrue(v);
    if (flag < 0)
        return -1;
    ch->schedule_all = (unsigned)flag;
    return 0;
}

/* ---- threads ------------------------------------------------------------------------- */

/* get_thread_info(thread_id=None). Without an argument, the reference's
 * (main, current, getruncount() + 1) for the calling thread. With a thread
 * id, Stackless's (main, current, runcount) for that thread: runcount counts
 * its main tasklet and its queue; (None, None, 0) for a thread that has not
 * used the scheduler; ValueError for an id that is no thread. */
PyObject *cb_mod_get_thread_info(PyObject *mod, PyObject *args)
{
    PyObject *id_obj = Py_None;
    unsigned long id;
    PyThreadState *ts;
    cb_manager *m;

    (void)mod;
    if (!PyArg_ParseTuple(args, "|O:get_thread_info", &id_obj))
        return NULL;
    if (id_obj == Py_None) {
        m = cb_manager_get();
        if (!m)
            return NULL;
        return Py_BuildValue("(OOn)", (PyObject *)m->main, (PyObject *)m->current, m->queued + 2);
    }
    if (!PyLong_Check(id_obj)) {
        PyErr_SetString(PyExc_TypeError, "get_thread_info(): thread_id must be an int");
        return NULL;
    }
    id = PyLong_AsUnsignedLong(id_obj);
    if (id == (unsigned long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "Thread id not found");
        return NULL;
    }
    ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get());
    for (; ts; ts = PyThreadState_Next(ts))
        if (ts->thread_id == id)
            break;
    if (!ts) {
        PyErr_SetString(PyExc_ValueError, "Thread id not found");
        return NULL;
    }
    m = cb_manager_of(ts);
    if (!m)
        return Py_BuildValue("(OOi)", Py_None, Py_None, 0);
    return Py_BuildValue("(OOn)", (PyObject *)m->main, (PyObject *)m->current, m->queued + 1);
}

/* Ids of the threads that have a schedule manager, oldest thread first. */
PyObject *cb_mod_thread_ids(PyObject *mod, PyObject *unused)
{
    PyObject *list = PyList_New(0);

    (void)mod;
    (void)unused;
    if (!list)
        return NULL;
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); ts;
         ts = PyThreadState_Next(ts)) {
        PyObject *id;
        if (!cb_manager_of(ts))
            continue;
        id = PyLong_FromUnsignedLong(ts->thread_id);
        if (!id || PyList_Insert(list, 0, id) < 0) {
            Py_XDECREF(id);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(id);
    }
    return list;
}
