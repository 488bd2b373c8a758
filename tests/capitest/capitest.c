/* capitest: a tiny extension that drives the scheduler through its C API
 * capsule, as a third-party extension would (semantics section 10). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "carbon/scheduler.h"

static SchedulerCAPI *api;

/* rwt(ns) -> (result, completed, switched) */
static PyObject *rwt(PyObject *mod, PyObject *arg)
{
    long long ns = PyLong_AsLongLong(arg);
    PyObject *r;

    (void)mod;
    if (ns == -1 && PyErr_Occurred())
        return NULL;
    r = api->PyScheduler_RunWithTimeout(ns);
    if (!r)
        return NULL;
    return Py_BuildValue("(Nii)", r, api->PyScheduler_GetTaskletsCompletedLastRunWithTimeout(),
                         api->PyScheduler_GetTaskletsSwitchedLastRunWithTimeout());
}

/* stats() -> (completed, switched) of the last RunWithTimeout */
static PyObject *stats(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return Py_BuildValue("(ii)", api->PyScheduler_GetTaskletsCompletedLastRunWithTimeout(),
                         api->PyScheduler_GetTaskletsSwitchedLastRunWithTimeout());
}

static PyMethodDef methods[] = {
    {"rwt", rwt, METH_O, "PyScheduler_RunWithTimeout(ns) and its statistics."},
    {"stats", stats, METH_NOARGS, "Statistics of the last RunWithTimeout."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "capitest", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit_capitest(void)
{
    api = (SchedulerCAPI *)PyCapsule_Import(SCHEDULER_CAPI_NAME, 0);
    if (!api)
        return NULL;
    return PyModule_Create(&module);
}
