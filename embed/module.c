/* _carbon: the built-in half of the `carbon` package (embed/python/carbon):
 * time, frames and workers for tasklets.
 *
 * Each blocking function blocks only the calling tasklet; called from a
 * thread's main tasklet it runs the thread's other tasklets and its loop
 * until the wait is over (or raises the scheduler's deadlock RuntimeError if
 * nothing could ever end it). */
#include "internal.h"

#include <math.h>

/* ---- time and frames ----------------------------------------------------------------------- */

/* Longest sleep accepted: a deadline must fit the monotonic clock's range. */
#define MAX_SLEEP_SECONDS 1e9

static PyObject *mod_sleep(PyObject *mod, PyObject *arg)
{
    double s = PyFloat_AsDouble(arg);
    cb_embed_loop *loop;

    (void)mod;
    if (s == -1.0 && PyErr_Occurred())
        return NULL;
    if (isnan(s) || s < 0) {
        PyErr_SetString(PyExc_ValueError, "sleep length must be a non-negative number of seconds");
        return NULL;
    }
    if (s > MAX_SLEEP_SECONDS) {
        PyErr_SetString(PyExc_ValueError, "sleep length is too large");
        return NULL;
    }
    loop = cb_embed_loop_get();
    if (!loop)
        return NULL;
    /* Rounded up: never a nanosecond early. */
    if (cb_embed_sleep_until(loop, cb_monotonic_ns() + (long long)ceil(s * 1e9)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *mod_wait_frames(PyObject *mod, PyObject *args)
{
    PyObject *arg = NULL;
    long long n = 1;
    cb_embed_loop *loop;

    (void)mod;
    if (!PyArg_ParseTuple(args, "|O:wait_frames", &arg))
        return NULL;
    if (arg) {
        if (!PyIndex_Check(arg)) {
            PyErr_Format(PyExc_TypeError, "wait_frames() argument must be an int, not %.200s",
                         Py_TYPE(arg)->tp_name);
            return NULL;
        }
        n = PyLong_AsLongLong(arg);
        if (n == -1 && PyErr_Occurred())
            return NULL;
        if (n < 0) {
            PyErr_SetString(PyExc_ValueError, "wait_frames() argument must not be negative");
            return NULL;
        }
    }
    if (n == 0)
        Py_RETURN_NONE;
    loop = cb_embed_loop_get();
    if (!loop)
        return NULL;
    if (cb_embed_wait_frame(loop, loop->frame + (unsigned long long)n) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *mod_frame(PyObject *mod, PyObject *unused)
{
    cb_embed_loop *loop = cb_embed_loop_peek();

    (void)mod;
    (void)unused;
    return PyLong_FromUnsignedLongLong(loop ? loop->frame : 0);
}

static PyObject *mod_now(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyFloat_FromDouble((double)cb_monotonic_ns() / 1e9);
}

/* ---- workers -------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    carbon_worker *w; /* we own the handle (released in dealloc) */
    PyObject *name;
} WorkerObject;

static PyTypeObject *worker_type; /* strong reference, dropped at module free */

static PyObject *worker_join(PyObject *self, PyObject *unused)
{
    (void)unused;
    return cb_embed_worker_join_tasklet(((WorkerObject *)self)->w);
}

static PyObject *worker_stop(PyObject *self, PyObject *unused)
{
    (void)unused;
    cb_embed_worker_request_stop(((WorkerObject *)self)->w);
    Py_RETURN_NONE;
}

static PyObject *worker_get_alive(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(cb_embed_worker_alive(((WorkerObject *)self)->w));
}

static PyObject *worker_get_name(PyObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(((WorkerObject *)self)->name);
}

static PyObject *worker_repr(PyObject *self)
{
    WorkerObject *o = (WorkerObject *)self;

    return PyUnicode_FromFormat("<carbon.Worker %R %s>", o->name,
                                cb_embed_worker_alive(o->w) ? "running" : "ended");
}

static void worker_dealloc(PyObject *self)
{
    WorkerObject *o = (WorkerObject *)self;
    PyTypeObject *tp = Py_TYPE(self);

    if (o->w)
        cb_embed_worker_release_py(o->w);
    Py_XDECREF(o->name);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef worker_methods[] = {
    {"join", worker_join, METH_NOARGS,
     "join() -> result: block the calling tasklet until the worker ended; returns what its "
     "function returned, or raises what it raised."},
    {"stop", worker_stop, METH_NOARGS,
     "stop(): ask the worker to end (TaskletExit into its tasklets); does not wait."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef worker_getset[] = {
    {"alive", worker_get_alive, NULL, "True while the worker thread runs.", NULL},
    {"name", worker_get_name, NULL, "The worker's function name.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot worker_slots[] = {
    {Py_tp_dealloc, worker_dealloc},
    {Py_tp_repr, worker_repr},
    {Py_tp_methods, worker_methods},
    {Py_tp_getset, worker_getset},
    {Py_tp_doc, "A worker thread started by carbon.spawn_worker()."},
    {0, NULL},
};

static PyType_Spec worker_spec = {
    .name = "carbon.Worker",
    .basicsize = sizeof(WorkerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = worker_slots,
};

static PyObject *callable_name(PyObject *fn)
{
    PyObject *name = PyObject_GetAttrString(fn, "__qualname__");

    if (!name || !PyUnicode_Check(name)) {
        PyErr_Clear();
        Py_XDECREF(name);
        name = PyObject_Repr(fn);
    }
    return name;
}

static PyObject *mod_spawn_worker(PyObject *mod, PyObject *args)
{
    PyObject *fn, *rest, *name;
    WorkerObject *o;
    const char *cname;

    (void)mod;
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "spawn_worker() missing required argument 'fn'");
        return NULL;
    }
    fn = PyTuple_GET_ITEM(args, 0);
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "spawn_worker() argument 'fn' must be callable, not %.200s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    /* The caller will likely wait for the worker over channels: its main
     * tasklet can block only with a loop to wait in. */
    if (!cb_embed_loop_get())
        return NULL;
    name = callable_name(fn);
    if (!name)
        return NULL;
    cname = PyUnicode_AsUTF8(name);
    rest = cname ? PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args)) : NULL;
    o = rest ? PyObject_New(WorkerObject, worker_type) : NULL;
    if (!o) {
        Py_XDECREF(rest);
        Py_DECREF(name);
        return NULL;
    }
    o->name = name;
    o->w = cb_embed_worker_spawn(fn, rest, cname, 1);
    Py_DECREF(rest);
    if (!o->w) {
        Py_DECREF(o);
        return NULL;
    }
    return (PyObject *)o;
}

/* atexit: in a host without carbon_init (tools/carbon_main.c), workers are
 * stopped and joined and the main thread's tasklets get TaskletExit while
 * the interpreter can still run them. After carbon_shutdown's own steps this
 * finds nothing left to do. */
static PyObject *mod_atexit(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    cb_embed_workers_shutdown(-1);
    cb_embed_loop_close();
    Py_RETURN_NONE;
}

static PyObject *mod_log(PyObject *mod, PyObject *args)
{
    int level;
    const char *text;

    (void)mod;
    if (!PyArg_ParseTuple(args, "is:_log", &level, &text))
        return NULL;
    cb_embed_log(level, "%s", text);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"sleep", mod_sleep, METH_O,
     "sleep(seconds): block the calling tasklet for at least this long; it wakes on the first "
     "tick (or loop turn) after its deadline."},
    {"wait_frames", mod_wait_frames, METH_VARARGS,
     "wait_frames(n=1): block the calling tasklet until n more frames (ticks) have begun."},
    {"frame", mod_frame, METH_NOARGS, "frame() -> int: frames (ticks) this thread has done."},
    {"now", mod_now, METH_NOARGS, "now() -> float: monotonic clock, in seconds."},
    {"spawn_worker", mod_spawn_worker, METH_VARARGS,
     "spawn_worker(fn, *args) -> Worker: run fn(*args) in the main tasklet of a new worker "
     "thread with its own scheduler and loop."},
    {"_atexit", mod_atexit, METH_NOARGS, "Stop workers and kill this thread's tasklets (atexit hook)."},
    {"_log", mod_log, METH_VARARGS, "_log(level, text): a line to the host's log callback."},
    {"_queue_put", cb_embed_queue_put, METH_VARARGS, "carbon.HostQueue's non-blocking put (C: atomic under the GIL)."},
    {"_queue_receive", cb_embed_queue_receive, METH_VARARGS, "carbon.HostQueue's receive (C: atomic under the GIL)."},
    {NULL, NULL, 0, NULL},
};

static void module_free(void *mod)
{
    (void)mod;
    Py_CLEAR(worker_type);
}

static struct PyModuleDef carbon_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_carbon",
    .m_doc = "Carbon runtime: sleep, frame waits and worker threads for tasklets.",
    .m_size = -1,
    .m_methods = module_methods,
    .m_free = module_free,
};

static int register_atexit(PyObject *mod)
{
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *hook = NULL, *r = NULL;

    if (atexit)
        hook = PyObject_GetAttrString(mod, "_atexit");
    if (hook)
        r = PyObject_CallMethod(atexit, "register", "O", hook);
    Py_XDECREF(r);
    Py_XDECREF(hook);
    Py_XDECREF(atexit);
    return r ? 0 : -1;
}

PyMODINIT_FUNC PyInit__carbon(void)
{
    PyObject *sched, *mod;

    /* The core's types and TaskletExit are made by _scheduler's init. */
    sched = PyImport_ImportModule("_scheduler");
    if (!sched)
        return NULL;
    Py_DECREF(sched);
    mod = PyModule_Create(&carbon_module);
    if (!mod)
        return NULL;
    cb_embed_hitch_install();
    if (!worker_type) {
        worker_type = (PyTypeObject *)PyType_FromSpec(&worker_spec);
        if (!worker_type)
            goto fail;
    }
    if (PyModule_AddObjectRef(mod, "Worker", (PyObject *)worker_type) < 0 ||
        PyModule_AddObjectRef(mod, "TaskletExit", cb_TaskletExit) < 0 ||
        PyModule_AddIntConstant(mod, "LOG_DEBUG", CARBON_LOG_DEBUG) < 0 ||
        PyModule_AddIntConstant(mod, "LOG_INFO", CARBON_LOG_INFO) < 0 ||
        PyModule_AddIntConstant(mod, "LOG_WARNING", CARBON_LOG_WARNING) < 0 ||
        PyModule_AddIntConstant(mod, "LOG_ERROR", CARBON_LOG_ERROR) < 0 ||
        register_atexit(mod) < 0 || cb_embed_patch_add(mod) < 0)
        goto fail;
    return mod;
fail:
    Py_DECREF(mod);
    return NULL;
}
