/* Waiting records off the tasklet's C stack (CB_OFFSTACK in internal.h; the
 * rule and the check are in runtime/offstack.h and docs/design.md), and the
 * check's test hooks in `_carbon`. */
#include "internal.h"

#include <stdlib.h>

void *cb_offstack_alloc(size_t size)
{
    return calloc(1, size);
}

void cb_offstack_free(void *p)
{
    free(*(void **)p);
}

/* ---- Python (tests) ---------------------------------------------------------------------- */

static PyObject *offstack_checks(PyObject *mod, PyObject *unused)
{
    PyObject *d = PyDict_New();
    const char *what;
    unsigned long long n;

    (void)mod;
    (void)unused;
    for (int i = 0; d && cb_offstack_checks(i, &what, &n); i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(n);
        if (!v || PyDict_SetItemString(d, what, v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *stack_owns_local(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    /* The frame address is on the real C stack even under ASan's fake
     * stacks, which can hold an address-taken local. */
    return PyBool_FromLong(cb_stack_owns(__builtin_frame_address(0)));
}

static PyObject *offstack_violate(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    cb_offstack_check(__builtin_frame_address(0), "a test record (_carbon._offstack_violate)");
    Py_RETURN_NONE;
}

static PyMethodDef offstack_methods[] = {
    {"_offstack_checks", offstack_checks, METH_NOARGS,
     "_offstack_checks() -> {kind: count}: waiting records checked to be off their tasklet's "
     "C stack so far, per kind of record (for tests)."},
    {"_stack_owns_local", stack_owns_local, METH_NOARGS,
     "_stack_owns_local() -> bool: whether this call's C frame lies on the running tasklet's own "
     "C stack (False in a main tasklet: the thread's stack is not a tasklet's; for tests)."},
    {"_offstack_violate", offstack_violate, METH_NOARGS,
     "_offstack_violate(): checks a record on the C stack as a waiting record; in a tasklet "
     "other than a main one the process aborts with the check's message (for tests)."},
    {NULL, NULL, 0, NULL},
};

int cb_embed_offstack_add(PyObject *mod)
{
    return PyModule_AddFunctions(mod, offstack_methods);
}
