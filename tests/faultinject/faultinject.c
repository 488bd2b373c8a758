/* faultinject: fails the Nth allocation, for the fault-injection sweep
 * (tests/python/test_fault_injection.py, docs/reliability.md).
 *
 * PyMem_SetAllocator hooks wrap the MEM and OBJ domains (everything the
 * scheduler and the interpreter allocate under the GIL); when the process
 * runs with the mmap shim (faultshim.c) in LD_PRELOAD, the same counter
 * also fails mmap(), which the runtime uses for tasklet stacks. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <execinfo.h>
#include <stdlib.h>
#include <unistd.h>

static PyMemAllocatorEx saved_mem, saved_obj;
static long long counter, fail_at = -1, fail_count = 1, failures;
static int installed;
static void (*shim_arm)(long long *counter, long long *fail_at, long long *failures);

static int should_fail(void)
{
    if (fail_at < 0)
        return 0;
    if (++counter >= fail_at && counter < fail_at + fail_count) {
        failures++;
        if (getenv("FAULTINJECT_BACKTRACE")) { /* debugging aid: where it failed */
            void *frames[32];
            backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
        }
        return 1;
    }
    return 0;
}

static void *h_malloc(void *ctx, size_t n)
{
    PyMemAllocatorEx *a = ctx;
    return should_fail() ? NULL : a->malloc(a->ctx, n);
}

static void *h_calloc(void *ctx, size_t n, size_t size)
{
    PyMemAllocatorEx *a = ctx;
    return should_fail() ? NULL : a->calloc(a->ctx, n, size);
}

static void *h_realloc(void *ctx, void *p, size_t n)
{
    PyMemAllocatorEx *a = ctx;
    return should_fail() ? NULL : a->realloc(a->ctx, p, n);
}

static void h_free(void *ctx, void *p)
{
    PyMemAllocatorEx *a = ctx;
    a->free(a->ctx, p);
}

/* arm(n, count=1): the n-th allocation from now fails, and the count - 1
 * after it (n >= 1). */
static PyObject *arm(PyObject *mod, PyObject *args)
{
    long long n, count = 1;
    PyMemAllocatorEx mem = {&saved_mem, h_malloc, h_calloc, h_realloc, h_free};
    PyMemAllocatorEx obj = {&saved_obj, h_malloc, h_calloc, h_realloc, h_free};

    (void)mod;
    if (!PyArg_ParseTuple(args, "L|L:arm", &n, &count))
        return NULL;
    if (n < 1 || count < 1) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 1");
        return NULL;
    }
    if (!installed) {
        PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &saved_mem);
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &saved_obj);
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
        installed = 1;
    }
    counter = 0;
    failures = 0;
    fail_at = n;
    fail_count = count;
    if (shim_arm)
        shim_arm(&counter, &fail_at, &failures);
    Py_RETURN_NONE;
}

/* disarm() -> (allocations counted, failures injected) */
static PyObject *disarm(PyObject *mod, PyObject *unused)
{
    long long c = counter, f = failures;

    (void)mod;
    (void)unused;
    fail_at = -1;
    if (shim_arm)
        shim_arm(NULL, NULL, NULL);
    if (installed) {
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &saved_mem);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &saved_obj);
        installed = 0;
    }
    return Py_BuildValue("(LL)", c, f);
}

static PyObject *has_mmap_shim(PyObject *mod, PyObject *unused)
{
    (void)mod;
    (void)unused;
    return PyBool_FromLong(shim_arm != NULL);
}

static PyMethodDef methods[] = {
    {"arm", arm, METH_VARARGS, "arm(n, count=1): fail allocations n .. n+count-1 from now."},
    {"disarm", disarm, METH_NOARGS, "disarm() -> (allocations counted, failures injected)."},
    {"has_mmap_shim", has_mmap_shim, METH_NOARGS, "Whether mmap() failures are injected too."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "faultinject", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit_faultinject(void)
{
    *(void **)&shim_arm = dlsym(RTLD_DEFAULT, "carbon_faultshim_arm");
    return PyModule_Create(&module);
}
