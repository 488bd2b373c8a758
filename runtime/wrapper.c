/* scheduler.CallableWrapper: what a tasklet with dont_raise runs instead of
 * its callable (docs/scheduler.md, "Helpers in the package"). */
#include "core.h"

typedef struct {
    PyObject_HEAD
    PyObject *callable;
} cb_wrapper;

static PyObject *wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *callable;
    cb_wrapper *w;

    if (kwds && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "CallableWrapper takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:CallableWrapper", &callable))
        return NULL;
    if (!PyCallable_Check(callable)) {
        PyErr_SetString(PyExc_TypeError, "parameter must be callable");
        return NULL;
    }
    w = (cb_wrapper *)type->tp_alloc(type, 0);
    if (w)
        w->callable = Py_NewRef(callable);
    return (PyObject *)w;
}

static int wrapper_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((cb_wrapper *)self)->callable);
    return 0;
}

static int wrapper_clear(PyObject *self)
{
    Py_CLEAR(((cb_wrapper *)self)->callable);
    return 0;
}

static void wrapper_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    wrapper_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static void display(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_DisplayException(exc);
#else
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Display((PyObject *)Py_TYPE(exc), exc, tb);
    Py_XDECREF(tb);
#endif
}

/* Calls the handler with the info string while sys.exc_info() is `exc`; what
 * the handler raises is printed (chained to exc) and dropped. */
static void call_handler(cb_tasklet *t, PyObject *exc)
{
    PyObject *handler = Py_NewRef(t->exception_handler);
    PyObject *state = cb_tasklet_repr_state(t);
    PyObject *info, *r, *previous;

    info = state ? PyUnicode_FromFormat("Unhandled exception in %U", state) : NULL;
    Py_XDECREF(state);
    if (!info) {
        PyErr_Clear();
        Py_DECREF(handler);
        return;
    }
    previous = PyErr_GetHandledException();
    PyErr_SetHandledException(exc);
    r = PyObject_CallOneArg(handler, info);
    PyErr_SetHandledException(previous);
    Py_XDECREF(previous);
    if (r) {
        Py_DECREF(r);
    } else {
        PyObject *err = cb_err_fetch();
        if (err) {
            display(err);
            Py_DECREF(err);
        }
    }
    Py_DECREF(info);
    Py_DECREF(handler);
}

static PyObject *call_exit(PyObject *exit)
{
    return PyObject_CallFunctionObjArgs(exit, Py_None, Py_None, Py_None, NULL);
}

static PyObject *wrapper_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    cb_wrapper *w = (cb_wrapper *)self;
    cb_tasklet *t = cb_current();
    PyObject *cm = NULL, *exit = NULL, *result = NULL;

    if (!t)
        return NULL;
    if (t->context_manager_getter) {
        PyObject *entered;
        cm = PyObject_CallOneArg(t->context_manager_getter, (PyObject *)t);
        if (!cm)
            return NULL;
        exit = PyObject_GetAttrString(cm, "__exit__");
        entered = exit ? PyObject_CallMethod(cm, "__enter__", NULL) : NULL;
        if (!entered)
            goto done;
        Py_DECREF(entered);
    }
    result = PyObject_Call(w->callable, args, kwds);
    if (!result) {
        PyObject *exc;
        if (PyErr_ExceptionMatches(cb_TaskletExit))
            goto done; /* a kill is never swallowed, and skips __exit__ */
        exc = cb_err_fetch();
        if (t->exception_handler)
            call_handler(t, exc);
        Py_XDECREF(exc);
        result = Py_NewRef(Py_None);
    }
    if (exit) {
        PyObject *r = call_exit(exit);
        if (!r)
            Py_CLEAR(result);
        Py_XDECREF(r);
    }
done:
    Py_XDECREF(exit);
    Py_XDECREF(cm);
    return result;
}

PyTypeObject cb_CallableWrapperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "scheduler.CallableWrapper",
    .tp_basicsize = sizeof(cb_wrapper),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Internal: runs a dont_raise tasklet's callable.",
    .tp_new = wrapper_new,
    .tp_dealloc = wrapper_dealloc,
    .tp_traverse = wrapper_traverse,
    .tp_clear = wrapper_clear,
    .tp_call = wrapper_call,
};
