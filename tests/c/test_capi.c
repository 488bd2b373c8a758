/* The scheduler._C_API capsule (docs/scheduler.md "C API"), driven from C
 * as an embedding application or extension module would: every function of
 * SchedulerCAPI, its semantics and its reference-counting rules.
 *
 * The interpreter is initialised once (group setup) with `_scheduler` as a
 * built-in module. C code running *inside* tasklets never uses cmocka's
 * assertions (they longjmp, which must not cross tasklet stacks): it records
 * what it sees in `rec`, and the test checks that afterwards.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "carbon/scheduler.h"

#ifndef CARBON_PYTHON_DIR
#error "CARBON_PYTHON_DIR must be defined (the directory of the scheduler package)"
#endif

PyMODINIT_FUNC PyInit__scheduler(void);

#define T(o) ((PyTaskletObject *)(o))
#define CH(o) ((PyChannelObject *)(o))
#define O(o) ((PyObject *)(o))

static const char DEADLOCK[] = "Deadlock: the last runnable tasklet cannot be blocked.";
static const char BLOCK_TRAP[] = "Channel cannot block on main tasklet with block_trap set true";
static const char SWITCH_TRAP[] = "Cannot schedule when scheduler switch_trap level is non-zero";
static const char MUST_BIND[] =
    "This tasklet must be bound to a callable before you can call setup. Please call bind first.";
static const char BAD_EXC[] = "Exception type or instance required";

static SchedulerCAPI *api;
static PyObject *g; /* __main__.__dict__ (borrowed) */

/* ---- Python helpers ----------------------------------------------------------------------- */

static const char PY_HELPERS[] =
    "import scheduler as s, gc, sys, threading\n"
    "calls = []\n"
    "got = []\n"
    "def f0(*a, **k): calls.append((a, k))\n"
    "def noop(*a, **k): pass\n"
    "def raiser(): raise ValueError('from tasklet')\n"
    "def yielder(): s.schedule()\n"
    "class Sub(s.tasklet): pass\n"
    "class CSub(s.channel):\n"
    "    def __init__(self):\n"
    "        s.channel.__init__(self); self.extra = 1\n"
    "def blocked_receiver(ch):\n"
    "    def body():\n"
    "        try: got.append(ch.receive())\n"
    "        except BaseException as e: got.append((type(e).__name__, e.args, e))\n"
    "    t = s.tasklet(body)(); t.run(); return t\n"
    "def blocked_sender(ch, value):\n"
    "    def body():\n"
    "        try: ch.send(value)\n"
    "        except BaseException as e: got.append((type(e).__name__, e.args, e))\n"
    "    t = s.tasklet(body)(); t.run(); return t\n"
    "class Foreign:\n"
    "    \"\"\"Tasklets of another thread, alive until release().\"\"\"\n"
    "    def __init__(self):\n"
    "        self.ready = threading.Event(); self.go = threading.Event()\n"
    "        self.th = threading.Thread(target=self.main); self.th.start(); self.ready.wait()\n"
    "    def main(self):\n"
    "        self.t = s.tasklet(noop)()\n"
    "        self.bound = s.tasklet(noop)\n"
    "        self.ready.set(); self.go.wait(); s.run()\n"
    "    def release(self):\n"
    "        self.go.set(); self.th.join()\n"
    "def cleanup():\n"
    "    s.set_schedule_callback(None); s.set_channel_callback(None)\n"
    "    s.set_use_nested_tasklets(True)\n"
    "    level = s.switch_trap(0)\n"
    "    if level: s.switch_trap(-level)\n"
    "    s.getcurrent().block_trap = False\n"
    "    for i in range(3):\n"
    "        try:\n"
    "            s.unblock_all_channels(); s.run()\n"
    "        except BaseException:\n"
    "            pass\n"
    "    got.clear(); calls.clear(); gc.collect()\n"
    "    assert s.getruncount() == 1, s.getruncount()\n";

static void py_failed(const char *what, const char *file, int line)
{
    PyErr_Print();
    fail_msg("%s:%d: Python raised in: %s", file, line, what);
}

/* Runs statements in __main__; fails the test on an exception. */
#define pyexec(code) pyexec_((code), __FILE__, __LINE__)
static void pyexec_(const char *code, const char *file, int line)
{
    PyObject *r = PyRun_String(code, Py_file_input, g, g);

    if (!r)
        py_failed(code, file, line);
    Py_DECREF(r);
}

/* Evaluates an expression in __main__: new reference. */
#define pyeval(expr) pyeval_((expr), __FILE__, __LINE__)
static PyObject *pyeval_(const char *expr, const char *file, int line)
{
    PyObject *r = PyRun_String(expr, Py_eval_input, g, g);

    if (!r)
        py_failed(expr, file, line);
    return r;
}

#define pytrue(expr) assert_true(pytrue_((expr), __FILE__, __LINE__))
static int pytrue_(const char *expr, const char *file, int line)
{
    PyObject *r = pyeval_(expr, file, line);
    int v = PyObject_IsTrue(r);

    Py_DECREF(r);
    if (v != 1) {
        PyObject *dump = PyRun_String("(got, calls)", Py_eval_input, g, g);
        if (dump) {
            PyObject_Print(dump, stderr, 0);
            fputc('\n', stderr);
            Py_DECREF(dump);
        }
        PyErr_Clear();
        fail_msg("%s:%d: Python expression is false: %s", file, line, expr);
    }
    return 1;
}

#define pylong(expr) pylong_((expr), __FILE__, __LINE__)
static long pylong_(const char *expr, const char *file, int line)
{
    PyObject *r = pyeval_(expr, file, line);
    long v = PyLong_AsLong(r);

    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred())
        py_failed(expr, file, line);
    return v;
}

/* Binds a name in __main__ (borrows o). */
static void pyset(const char *name, PyObject *o)
{
    assert_int_equal(PyDict_SetItemString(g, name, o), 0);
}

static void pydel(const char *name)
{
    if (PyDict_DelItemString(g, name) < 0)
        PyErr_Clear();
}

static PyObject *fetch_exc(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;

    PyErr_Fetch(&type, &value, &tb);
    if (!type)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb) {
        PyException_SetTraceback(value, tb);
        Py_DECREF(tb);
    }
    Py_DECREF(type);
    return value;
#endif
}

/* Asserts that exactly `type` is raised with message `msg` (NULL: any), and clears it. */
#define expect_error(type, msg) expect_error_((type), (msg), __FILE__, __LINE__)
static void expect_error_(PyObject *type, const char *msg, const char *file, int line)
{
    PyObject *exc = fetch_exc();
    PyObject *s;
    const char *text;
    char buf[512];

    if (!exc)
        fail_msg("%s:%d: expected %s(%s), no exception set", file, line,
                 ((PyTypeObject *)type)->tp_name, msg ? msg : "...");
    s = PyObject_Str(exc);
    text = s ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(buf, sizeof buf, "%s", text ? text : "<unprintable>");
    Py_XDECREF(s);
    PyErr_Clear();
    if (O(Py_TYPE(exc)) != type) {
        const char *got = Py_TYPE(exc)->tp_name;
        Py_DECREF(exc);
        fail_msg("%s:%d: expected %s(%s), got %s(%s)", file, line,
                 ((PyTypeObject *)type)->tp_name, msg ? msg : "...", got, buf);
    }
    Py_DECREF(exc);
    if (msg && strcmp(msg, buf) != 0)
        fail_msg("%s:%d: expected message \"%s\", got \"%s\"", file, line, msg, buf);
}

#define expect_no_error() expect_no_error_(__FILE__, __LINE__)
static void expect_no_error_(const char *file, int line)
{
    if (PyErr_Occurred())
        py_failed("(C API call)", file, line);
}

/* ---- C callables run as tasklets ----------------------------------------------------------------- */

#define MAX_EVENTS 16

static struct {
    int calls;                 /* c_noop */
    Py_ssize_t nargs;
    PyObject *received;        /* c_receiver: value (owned) */
    PyObject *error;           /* exception seen by a C tasklet (owned) */
    int send_rc;               /* c_sender */
    int yields, yield_fail;    /* c_yielder */
    int remove_done;           /* c_remover */
    int kill_rc, kill_exc;     /* c_self_kill */
    PyObject *current;         /* c_introspect: GetCurrent() (owned) */
    int is_main, alive, runcount;
    /* the fast schedule hook */
    int hook_calls;
    PyTaskletObject *hook_from[MAX_EVENTS], *hook_to[MAX_EVENTS];
    Py_ssize_t hook_pylog_len[MAX_EVENTS];
    PyObject *pylog;           /* borrowed list filled by the Python schedule callback */
} rec;

static void rec_reset(void)
{
    Py_CLEAR(rec.received);
    Py_CLEAR(rec.error);
    Py_CLEAR(rec.current);
    memset(&rec, 0, sizeof rec);
}

/* A C tasklet keeps a non-TaskletExit error for the test; TaskletExit ends it. */
static PyObject *c_tasklet_error(void)
{
    PyObject *exc = fetch_exc();

    if (exc && PyErr_GivenExceptionMatches(exc, *api->TaskletExit)) {
        Py_XSETREF(rec.error, Py_NewRef(exc));
#if PY_VERSION_HEX >= 0x030C0000
        PyErr_SetRaisedException(exc);
#else
        PyErr_SetObject(O(Py_TYPE(exc)), exc);
        Py_DECREF(exc);
#endif
        return NULL;
    }
    Py_XSETREF(rec.error, exc);
    Py_RETURN_NONE;
}

static PyObject *c_noop(PyObject *self, PyObject *args)
{
    (void)self;
    rec.calls++;
    rec.nargs = PyTuple_GET_SIZE(args);
    Py_RETURN_NONE;
}

static PyObject *c_receiver(PyObject *self, PyObject *ch)
{
    PyObject *v;

    (void)self;
    v = api->PyChannel_Receive(CH(ch));
    if (!v)
        return c_tasklet_error();
    Py_XSETREF(rec.received, v);
    Py_RETURN_NONE;
}

static PyObject *c_sender(PyObject *self, PyObject *args)
{
    (void)self;
    rec.send_rc = api->PyChannel_Send(CH(PyTuple_GET_ITEM(args, 0)), PyTuple_GET_ITEM(args, 1));
    if (rec.send_rc < 0)
        return c_tasklet_error();
    Py_RETURN_NONE;
}

static PyObject *c_yielder(PyObject *self, PyObject *n)
{
    long count = PyLong_AsLong(n);

    (void)self;
    for (long i = 0; i < count; i++) {
        PyObject *r = api->PyScheduler_Schedule(NULL, 0);
        if (!r) {
            rec.yield_fail++;
            return c_tasklet_error();
        }
        if (r != Py_None)
            rec.yield_fail++;
        Py_DECREF(r);
        rec.yields++;
    }
    Py_RETURN_NONE;
}

static PyObject *c_remover(PyObject *self, PyObject *unused)
{
    PyObject *r;

    (void)self;
    (void)unused;
    r = api->PyScheduler_Schedule(Py_None, 1);
    if (!r)
        return c_tasklet_error();
    Py_DECREF(r);
    rec.remove_done = 1;
    Py_RETURN_NONE;
}

static PyObject *c_self_kill(PyObject *self, PyObject *unused)
{
    PyObject *cur = api->PyScheduler_GetCurrent();

    (void)self;
    (void)unused;
    rec.kill_rc = api->PyTasklet_Kill(T(cur));
    rec.kill_exc = PyErr_Occurred() && PyErr_ExceptionMatches(*api->TaskletExit);
    Py_DECREF(cur);
    if (!PyErr_Occurred())
        Py_RETURN_NONE;
    return NULL; /* TaskletExit ends the tasklet silently */
}

static PyObject *c_introspect(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_XSETREF(rec.current, api->PyScheduler_GetCurrent());
    rec.is_main = api->PyTasklet_IsMain(T(rec.current));
    rec.alive = api->PyTasklet_Alive(T(rec.current));
    rec.runcount = api->PyScheduler_GetRunCount();
    Py_RETURN_NONE;
}

static PyMethodDef c_defs[] = {
    {"c_noop", c_noop, METH_VARARGS, NULL},
    {"c_receiver", c_receiver, METH_O, NULL},
    {"c_sender", c_sender, METH_VARARGS, NULL},
    {"c_yielder", c_yielder, METH_O, NULL},
    {"c_remover", c_remover, METH_NOARGS, NULL},
    {"c_self_kill", c_self_kill, METH_NOARGS, NULL},
    {"c_introspect", c_introspect, METH_NOARGS, NULL},
};
enum { C_NOOP, C_RECEIVER, C_SENDER, C_YIELDER, C_REMOVER, C_SELF_KILL, C_INTROSPECT, C_COUNT };
static PyObject *cfunc[C_COUNT];

/* A new tasklet bound to `callable` (PyTasklet_New with (callable,)). */
static PyTaskletObject *new_tasklet(PyObject *callable)
{
    PyObject *args = PyTuple_Pack(1, callable);
    PyTaskletObject *t;

    assert_non_null(args);
    t = api->PyTasklet_New(api->PyTaskletType, args);
    Py_DECREF(args);
    if (!t)
        py_failed("PyTasklet_New", __FILE__, __LINE__);
    return t;
}

/* new_tasklet + PyTasklet_Setup with `args` (a new reference, consumed; NULL: ()). */
static PyTaskletObject *start_tasklet(PyObject *callable, PyObject *args)
{
    PyTaskletObject *t = new_tasklet(callable);

    if (!args)
        args = PyTuple_New(0);
    assert_int_equal(api->PyTasklet_Setup(t, args, NULL), 0);
    Py_DECREF(args);
    return t;
}

static void run_all(void)
{
    PyObject *r = api->PyScheduler_RunNTasklets(INT_MAX);

    if (!r)
        py_failed("PyScheduler_RunNTasklets", __FILE__, __LINE__);
    Py_DECREF(r);
}

/* ---- fixtures ------------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    PyObject *path, *dir, *main_mod;

    (void)state;
    if (PyImport_AppendInittab("_scheduler", PyInit__scheduler) < 0)
        return -1;
    Py_InitializeEx(0);
    path = PySys_GetObject("path");
    dir = PyUnicode_FromString(CARBON_PYTHON_DIR);
    if (!path || !dir || PyList_Insert(path, 0, dir) < 0)
        return -1;
    Py_DECREF(dir);
    main_mod = PyImport_AddModule("__main__");
    if (!main_mod)
        return -1;
    g = PyModule_GetDict(main_mod);
    api = (SchedulerCAPI *)PyCapsule_Import("scheduler._C_API", 0);
    if (!api) {
        PyErr_Print();
        return -1;
    }
    if (!PyRun_String(PY_HELPERS, Py_file_input, g, g)) {
        PyErr_Print();
        return -1;
    }
    for (int i = 0; i < C_COUNT; i++) {
        cfunc[i] = PyCFunction_NewEx(&c_defs[i], NULL, NULL);
        if (!cfunc[i])
            return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    rec_reset();
    for (int i = 0; i < C_COUNT; i++)
        Py_CLEAR(cfunc[i]);
    return Py_FinalizeEx() == 0 ? 0 : -1;
}

static int test_setup(void **state)
{
    (void)state;
    rec_reset();
    return PyErr_Occurred() ? -1 : 0;
}

static int test_teardown(void **state)
{
    PyObject *r;
    int ok = !PyErr_Occurred();

    (void)state;
    if (!ok) {
        fprintf(stderr, "test left an exception set:\n");
        PyErr_Print();
    }
    api->PyScheduler_SetScheduleFastCallback(NULL);
    r = PyRun_String("cleanup()", Py_eval_input, g, g);
    if (!r) {
        PyErr_Print();
        ok = 0;
    }
    Py_XDECREF(r);
    rec_reset();
    return ok ? 0 : -1;
}

/* ---- the capsule itself ----------------------------------------------------------------------------- */

static void test_capsule(void **state)
{
    PyObject *mod = PyImport_ImportModule("scheduler");
    PyObject *cap, *o;

    (void)state;
    assert_non_null(mod);
    cap = PyObject_GetAttrString(mod, "_C_API");
    assert_non_null(cap);
    assert_true(PyCapsule_IsValid(cap, "scheduler._C_API"));
    assert_ptr_equal(PyCapsule_GetPointer(cap, "scheduler._C_API"), api);
    Py_DECREF(cap);
    Py_DECREF(mod);

    o = pyeval("s.tasklet");
    assert_ptr_equal(o, api->PyTaskletType);
    Py_DECREF(o);
    o = pyeval("s.channel");
    assert_ptr_equal(o, api->PyChannelType);
    Py_DECREF(o);
    assert_non_null(api->TaskletExit);
    o = pyeval("s.TaskletExit");
    assert_ptr_equal(o, *api->TaskletExit);
    Py_DECREF(o);
    assert_true(PyExceptionClass_Check(*api->TaskletExit));
    assert_true(PyType_IsSubtype((PyTypeObject *)*api->TaskletExit, (PyTypeObject *)PyExc_SystemExit));

    /* Every entry is filled in. */
    {
        void *fns[] = {
            (void *)api->PyTasklet_New, (void *)api->PyTasklet_Setup, (void *)api->PyTasklet_Insert,
            (void *)api->PyTasklet_GetBlockTrap, (void *)api->PyTasklet_SetBlockTrap,
            (void *)api->PyTasklet_IsMain, (void *)api->PyTasklet_Check, (void *)api->PyTasklet_Alive,
            (void *)api->PyTasklet_Kill, (void *)api->PyChannel_New, (void *)api->PyChannel_Send,
            (void *)api->PyChannel_Receive, (void *)api->PyChannel_SendException,
            (void *)api->PyChannel_GetQueue, (void *)api->PyChannel_GetPreference,
            (void *)api->PyChannel_SetPreference, (void *)api->PyChannel_GetBalance,
            (void *)api->PyChannel_Check, (void *)api->PyChannel_SendThrow,
            (void *)api->PyScheduler_GetScheduler, (void *)api->PyScheduler_Schedule,
            (void *)api->PyScheduler_GetRunCount, (void *)api->PyScheduler_GetCurrent,
            (void *)api->PyScheduler_RunWithTimeout, (void *)api->PyScheduler_RunNTasklets,
            (void *)api->PyScheduler_SetChannelCallback, (void *)api->PyScheduler_GetChannelCallback,
            (void *)api->PyScheduler_SetScheduleCallback,
            (void *)api->PyScheduler_SetScheduleFastCallback,
            (void *)api->PyScheduler_GetNumberOfActiveScheduleManagers,
            (void *)api->PyScheduler_GetNumberOfActiveChannels,
            (void *)api->PyScheduler_GetAllTimeTaskletCount,
            (void *)api->PyScheduler_GetActiveTaskletCount,
            (void *)api->PyScheduler_GetTaskletsCompletedLastRunWithTimeout,
            (void *)api->PyScheduler_GetTaskletsSwitchedLastRunWithTimeout,
            (void *)api->PyTaskletType, (void *)api->PyChannelType, (void *)api->TaskletExit,
            (void *)api->PyTasklet_GetTimesSwitchedTo, (void *)api->PyTasklet_GetContext,
        };
        for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
            assert_non_null(fns[i]);
    }
    /* ABI: the member order of the reference header. */
    assert_int_equal(offsetof(SchedulerCAPI, PyTasklet_New), 0);
    assert_int_equal(offsetof(SchedulerCAPI, PyScheduler_GetScheduler), 19 * sizeof(void *));
    assert_int_equal(offsetof(SchedulerCAPI, PyTaskletType), 35 * sizeof(void *));
    assert_int_equal(offsetof(SchedulerCAPI, PyTasklet_GetContext), 39 * sizeof(void *));
    assert_int_equal(sizeof(SchedulerCAPI), 40 * sizeof(void *));
}

/* ---- tasklets -------------------------------------------------------------------------------------- */

static void test_tasklet_new(void **state)
{
    PyObject *f = pyeval("f0"), *args, *sub, *bad;
    Py_ssize_t rf, ra;
    long active = api->PyScheduler_GetActiveTaskletCount();
    long all = api->PyScheduler_GetAllTimeTaskletCount();
    PyTaskletObject *t;

    (void)state;
    rf = Py_REFCNT(f);
    args = PyTuple_Pack(1, f);
    ra = Py_REFCNT(args);
    t = api->PyTasklet_New(api->PyTaskletType, args);
    assert_non_null(t);
    expect_no_error();
    assert_ptr_equal(Py_TYPE(t), api->PyTaskletType);
    assert_int_equal(Py_REFCNT(t), 1);
    assert_int_equal(Py_REFCNT(args), ra);
    assert_int_equal(Py_REFCNT(f), rf + 2); /* the tuple and the tasklet */
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    assert_int_equal(api->PyTasklet_IsMain(t), 0);
    assert_int_equal(api->PyScheduler_GetActiveTaskletCount(), active + 1);
    assert_int_equal(api->PyScheduler_GetAllTimeTaskletCount(), all + 1);
    pyset("t", O(t));
    pytrue("t.method_name == 'f0' and not t.scheduled and t.thread_id == threading.get_ident()");
    pydel("t");
    Py_DECREF(t);
    Py_DECREF(args);
    assert_int_equal(Py_REFCNT(f), rf);
    assert_int_equal(api->PyScheduler_GetActiveTaskletCount(), active);
    assert_int_equal(api->PyScheduler_GetAllTimeTaskletCount(), all + 1);

    /* () makes an unbound tasklet */
    args = PyTuple_New(0);
    t = api->PyTasklet_New(api->PyTaskletType, args);
    assert_non_null(t);
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    assert_int_equal(api->PyTasklet_Setup(t, args, NULL), -1);
    expect_error(PyExc_RuntimeError, MUST_BIND);
    Py_DECREF(t);
    Py_DECREF(args);

    /* not callable */
    bad = Py_BuildValue("(i)", 12345);
    assert_null(api->PyTasklet_New(api->PyTaskletType, bad));
    expect_error(PyExc_TypeError, "parameter must be callable");
    Py_DECREF(bad);

    /* a subclass */
    sub = pyeval("Sub");
    args = PyTuple_Pack(1, cfunc[C_NOOP]);
    t = api->PyTasklet_New((PyTypeObject *)sub, args);
    assert_non_null(t);
    assert_ptr_equal(Py_TYPE(t), sub);
    assert_int_equal(api->PyTasklet_Check(O(t)), 1);
    Py_DECREF(t);
    Py_DECREF(args);
    Py_DECREF(sub);
    Py_DECREF(f);
}

static void test_tasklet_setup(void **state)
{
    PyObject *f = pyeval("f0");
    PyObject *a = Py_BuildValue("(is)", 7, "x");
    PyObject *kw = Py_BuildValue("{s:i}", "k", 3);
    PyTaskletObject *t = new_tasklet(f), *tc;
    Py_ssize_t rt = Py_REFCNT(t), ra = Py_REFCNT(a), rk = Py_REFCNT(kw);
    int rc0 = api->PyScheduler_GetRunCount();

    (void)state;
    assert_int_equal(api->PyTasklet_Setup(t, a, kw), 0);
    expect_no_error();
    assert_int_equal(Py_REFCNT(t), rt + 1); /* the queue's */
    assert_int_equal(api->PyScheduler_GetRunCount(), rc0 + 1);
    assert_int_equal(api->PyTasklet_Alive(t), 1);
    pyexec("s.run()");
    assert_int_equal(Py_REFCNT(t), rt);
    assert_int_equal(Py_REFCNT(a), ra);
    assert_int_equal(Py_REFCNT(kw), rk);
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    pytrue("calls == [((7, 'x'), {'k': 3})]");
    Py_DECREF(t);

    /* NULL kwds; a C callable */
    tc = new_tasklet(cfunc[C_NOOP]);
    assert_int_equal(api->PyTasklet_Setup(tc, a, NULL), 0);
    assert_int_equal(Py_REFCNT(tc), 2);
    run_all();
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.nargs, 2);
    assert_int_equal(Py_REFCNT(tc), 1);
    Py_DECREF(tc);

    /* another thread's tasklet */
    pyexec("fr = Foreign()");
    {
        PyObject *ft = pyeval("fr.bound");
        assert_int_equal(api->PyTasklet_Setup(T(ft), a, NULL), -1);
        expect_error(PyExc_RuntimeError,
                     "Failed to setup tasklet: Cannot setup tasklet from another thread");
        Py_DECREF(ft);
    }
    pyexec("fr.release(); del fr");
    Py_DECREF(a);
    Py_DECREF(kw);
    Py_DECREF(f);
}

static void test_tasklet_insert(void **state)
{
    PyObject *t = pyeval("s.tasklet().bind(noop, ())"), *blocked, *ch, *ft;
    Py_ssize_t rt = Py_REFCNT(t);

    (void)state;
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
    assert_int_equal(api->PyTasklet_Insert(T(t)), 0);
    expect_no_error();
    assert_int_equal(api->PyScheduler_GetRunCount(), 2);
    assert_int_equal(Py_REFCNT(t), rt + 1);
    assert_int_equal(api->PyTasklet_Insert(T(t)), 0); /* already queued: no-op */
    assert_int_equal(api->PyScheduler_GetRunCount(), 2);
    assert_int_equal(Py_REFCNT(t), rt + 1);
    run_all();
    assert_int_equal(Py_REFCNT(t), rt);
    assert_int_equal(api->PyTasklet_Insert(T(t)), -1);
    expect_error(PyExc_RuntimeError, "Failed to insert tasklet: Cannot insert dead tasklet");

    ch = O(api->PyChannel_New(NULL));
    pyset("ch", ch);
    blocked = pyeval("blocked_receiver(ch)");
    assert_int_equal(api->PyTasklet_Insert(T(blocked)), -1);
    expect_error(PyExc_RuntimeError, "Failed to insert tasklet: Cannot insert blocked tasklet");
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), -1);

    /* another thread's tasklet goes to its own thread's queue */
    pyexec("fr = Foreign()");
    ft = pyeval("fr.t");
    pyexec("fr.t.remove()");
    assert_int_equal(api->PyTasklet_Insert(T(ft)), 0);
    expect_no_error();
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
    pytrue("fr.t.scheduled");
    pyexec("fr.release(); del fr");
    Py_DECREF(ft);
    pydel("ch");
    Py_DECREF(blocked);
    Py_DECREF(ch);
    Py_DECREF(t);
}

static void test_tasklet_flags(void **state)
{
    PyTaskletObject *t = new_tasklet(cfunc[C_NOOP]);
    PyObject *main_t = api->PyScheduler_GetCurrent(), *pymain, *sub, *ch;

    (void)state;
    /* block trap */
    assert_int_equal(api->PyTasklet_GetBlockTrap(t), 0);
    api->PyTasklet_SetBlockTrap(t, 42);
    assert_int_equal(api->PyTasklet_GetBlockTrap(t), 1);
    pyset("t", O(t));
    pytrue("t.block_trap is True");
    api->PyTasklet_SetBlockTrap(t, 0);
    assert_int_equal(api->PyTasklet_GetBlockTrap(t), 0);
    pytrue("t.block_trap is False");
    pyexec("t.block_trap = True");
    assert_int_equal(api->PyTasklet_GetBlockTrap(t), 1);
    api->PyTasklet_SetBlockTrap(t, -1);
    assert_int_equal(api->PyTasklet_GetBlockTrap(t), 1);
    pydel("t");

    /* block trap on the main tasklet refuses to block */
    ch = O(api->PyChannel_New(NULL));
    pyexec("s.tasklet(noop)()");
    api->PyTasklet_SetBlockTrap(T(main_t), 1);
    assert_null(api->PyChannel_Receive(CH(ch)));
    expect_error(PyExc_RuntimeError, BLOCK_TRAP);
    assert_int_equal(api->PyChannel_Send(CH(ch), Py_None), -1);
    expect_error(PyExc_RuntimeError, BLOCK_TRAP);
    api->PyTasklet_SetBlockTrap(T(main_t), 0);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);
    assert_int_equal(api->PyScheduler_GetRunCount(), 2);
    Py_DECREF(ch);

    /* is_main / alive / check */
    pymain = pyeval("s.getmain()");
    assert_ptr_equal(pymain, main_t);
    assert_int_equal(api->PyTasklet_IsMain(T(main_t)), 1);
    assert_int_equal(api->PyTasklet_Alive(T(main_t)), 1);
    assert_int_equal(api->PyTasklet_IsMain(t), 0);
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    assert_int_equal(api->PyTasklet_Check(O(t)), 1);
    assert_int_equal(api->PyTasklet_Check(main_t), 1);
    assert_int_equal(api->PyTasklet_Check(NULL), 0);
    assert_int_equal(api->PyTasklet_Check(Py_None), 0);
    assert_int_equal(api->PyTasklet_Check(O(api->PyTaskletType)), 0);
    ch = O(api->PyChannel_New(NULL));
    assert_int_equal(api->PyTasklet_Check(ch), 0);
    assert_int_equal(api->PyChannel_Check(ch), 1);
    assert_int_equal(api->PyChannel_Check(O(t)), 0);
    assert_int_equal(api->PyChannel_Check(NULL), 0);
    assert_int_equal(api->PyChannel_Check(Py_None), 0);
    assert_int_equal(api->PyChannel_Check(O(api->PyChannelType)), 0);
    sub = pyeval("CSub()");
    assert_int_equal(api->PyChannel_Check(sub), 1);
    assert_int_equal(api->PyTasklet_Check(sub), 0);
    Py_DECREF(sub);
    sub = pyeval("Sub()");
    assert_int_equal(api->PyTasklet_Check(sub), 1);
    Py_DECREF(sub);
    Py_DECREF(ch);

    /* alive through a life; introspection from inside a C tasklet */
    Py_DECREF(t);
    t = start_tasklet(cfunc[C_INTROSPECT], NULL);
    assert_int_equal(api->PyTasklet_Alive(t), 1);
    run_all();
    assert_ptr_equal(rec.current, t);
    assert_int_equal(rec.is_main, 0);
    assert_int_equal(rec.alive, 1);
    assert_int_equal(rec.runcount, 2); /* main + itself */
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    Py_DECREF(t);
    Py_DECREF(pymain);
    Py_DECREF(main_t);
}

static void test_tasklet_kill(void **state)
{
    PyObject *ch = O(api->PyChannel_New(NULL)), *pt, *ft;
    PyTaskletObject *t;
    Py_ssize_t r;

    (void)state;
    pyset("ch", ch);
    /* a blocked Python tasklet */
    pt = pyeval("blocked_receiver(ch)");
    r = Py_REFCNT(pt);
    assert_int_equal(api->PyTasklet_Kill(T(pt)), 0);
    expect_no_error();
    assert_int_equal(api->PyTasklet_Alive(T(pt)), 0);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);
    assert_int_equal(Py_REFCNT(pt), r - 1); /* the channel's reference is gone */
    pytrue("got[0][0] == 'TaskletExit'");
    pyexec("got.clear()");
    Py_DECREF(pt);

    /* a C tasklet blocked in PyChannel_Receive */
    t = start_tasklet(cfunc[C_RECEIVER], PyTuple_Pack(1, ch));
    run_all();
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), -1);
    assert_int_equal(api->PyTasklet_Kill(t), 0);
    expect_no_error();
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    assert_non_null(rec.error);
    assert_true(PyErr_GivenExceptionMatches(rec.error, *api->TaskletExit));
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);
    assert_int_equal(Py_REFCNT(t), 1);

    /* dead: no-op */
    assert_int_equal(api->PyTasklet_Kill(t), 0);
    expect_no_error();
    Py_DECREF(t);

    /* never started: dies without running */
    t = start_tasklet(cfunc[C_NOOP], NULL);
    assert_int_equal(api->PyTasklet_Kill(t), 0);
    expect_no_error();
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
    run_all();
    assert_int_equal(rec.calls, 0);
    assert_int_equal(Py_REFCNT(t), 1);
    Py_DECREF(t);

    /* the current tasklet: 0 returned, TaskletExit set */
    t = start_tasklet(cfunc[C_SELF_KILL], NULL);
    run_all();
    expect_no_error();
    assert_int_equal(rec.kill_rc, 0);
    assert_int_equal(rec.kill_exc, 1);
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    Py_DECREF(t);

    /* another thread: 0 returned even though it failed */
    pyexec("fr = Foreign()");
    ft = pyeval("fr.t");
    assert_int_equal(api->PyTasklet_Kill(T(ft)), 0);
    expect_error(PyExc_RuntimeError, "Failed to kill tasklet: Cannot kill tasklet from another thread");
    assert_int_equal(api->PyTasklet_Alive(T(ft)), 1);
    pyexec("fr.release(); del fr");
    Py_DECREF(ft);
    pydel("ch");
    Py_DECREF(ch);
}

static void test_times_switched_to(void **state)
{
    PyTaskletObject *t = start_tasklet(cfunc[C_YIELDER], Py_BuildValue("(i)", 2));

    (void)state;
    assert_int_equal(api->PyTasklet_GetTimesSwitchedTo(t), 0);
    run_all();
    expect_no_error();
    assert_int_equal(rec.yields, 2);
    assert_int_equal(rec.yield_fail, 0);
    assert_int_equal(api->PyTasklet_GetTimesSwitchedTo(t), 3);
    pyset("t", O(t));
    pyexec("t.bind(noop)");
    assert_int_equal(api->PyTasklet_GetTimesSwitchedTo(t), 0);
    pydel("t");
    Py_DECREF(t);
}

static void test_tasklet_context(void **state)
{
    PyTaskletObject *t = new_tasklet(cfunc[C_NOOP]);
    const char *p;
    PyObject *v;

    (void)state;
    p = api->PyTasklet_GetContext(t);
    assert_non_null(p);
    assert_string_equal(p, "");
    v = PyUnicode_FromString("h\xc3\xa9llo w\xc3\xb6rld, a context long enough not to be cached");
    assert_int_equal(PyObject_SetAttrString(O(t), "context", v), 0);
    Py_DECREF(v); /* the tasklet holds the only reference now */
    p = api->PyTasklet_GetContext(t);
    assert_non_null(p);
    assert_string_equal(p, "h\xc3\xa9llo w\xc3\xb6rld, a context long enough not to be cached");
    /* still valid after unrelated allocations and a collection */
    pyexec("junk = ['x' * i for i in range(2000)]; del junk; gc.collect()");
    assert_string_equal(p, "h\xc3\xa9llo w\xc3\xb6rld, a context long enough not to be cached");
    assert_ptr_equal(api->PyTasklet_GetContext(t), p);
    /* Python-visible */
    pyset("t", O(t));
    pytrue("t.context.startswith('h\\u00e9llo')");
    pyexec("t.context = 'second'");
    pydel("t");
    assert_string_equal(api->PyTasklet_GetContext(t), "second");
    Py_DECREF(t);
}

/* ---- channels --------------------------------------------------------------------------------------- */

static void test_channel_new(void **state)
{
    long n = api->PyScheduler_GetNumberOfActiveChannels();
    PyChannelObject *c = api->PyChannel_New(NULL), *c2;
    PyObject *sub, *qc;

    (void)state;
    assert_non_null(c);
    assert_ptr_equal(Py_TYPE(c), api->PyChannelType);
    assert_int_equal(Py_REFCNT(c), 1);
    assert_int_equal(api->PyScheduler_GetNumberOfActiveChannels(), n + 1);
    assert_int_equal(api->PyChannel_GetPreference(c), -1);
    assert_int_equal(api->PyChannel_GetBalance(c), 0);
    c2 = api->PyChannel_New(api->PyChannelType);
    assert_non_null(c2);
    assert_ptr_equal(Py_TYPE(c2), api->PyChannelType);
    assert_int_equal(api->PyScheduler_GetNumberOfActiveChannels(), n + 2);
    Py_DECREF(c2);
    Py_DECREF(c);
    assert_int_equal(api->PyScheduler_GetNumberOfActiveChannels(), n);

    /* subclasses are constructed with their __init__ */
    sub = pyeval("CSub");
    c = api->PyChannel_New((PyTypeObject *)sub);
    assert_non_null(c);
    assert_ptr_equal(Py_TYPE(c), sub);
    pyset("c", O(c));
    pytrue("c.extra == 1 and c.preference == -1");
    pydel("c");
    Py_DECREF(c);
    Py_DECREF(sub);
    qc = pyeval("s.QueueChannel");
    c = api->PyChannel_New((PyTypeObject *)qc);
    assert_non_null(c);
    assert_int_equal(api->PyChannel_GetPreference(c), 1);
    assert_int_equal(api->PyChannel_Check(O(c)), 1);
    Py_DECREF(c);
    Py_DECREF(qc);
}

static void test_channel_send_receive_python_partner(void **state)
{
    PyObject *ch = O(api->PyChannel_New(NULL)), *value, *t, *r;
    Py_ssize_t rv;

    (void)state;
    pyset("ch", ch);
    /* send to a blocked Python receiver: not stolen */
    t = pyeval("blocked_receiver(ch)");
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), -1);
    value = PyList_New(0);
    assert_int_equal(Py_REFCNT(value), 1);
    assert_int_equal(api->PyChannel_Send(CH(ch), value), 0);
    expect_no_error();
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);
    run_all();
    assert_int_equal(api->PyTasklet_Alive(T(t)), 0);
    pyset("value", value);
    pytrue("got[0] is value");
    pydel("value");
    assert_int_equal(Py_REFCNT(value), 2); /* ours and got's */
    pyexec("got.clear()");
    assert_int_equal(Py_REFCNT(value), 1);
    Py_DECREF(t);

    /* receive from a blocked Python sender: a new reference */
    pyexec("t = blocked_sender(ch, ['payload'])");
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 1);
    r = api->PyChannel_Receive(CH(ch));
    assert_non_null(r);
    expect_no_error();
    run_all();
    pyexec("del t");
    assert_true(PyList_Check(r));
    assert_int_equal(Py_REFCNT(r), 1);
    Py_DECREF(r);

    /* deadlock: nothing else can run */
    rv = Py_REFCNT(value);
    assert_int_equal(api->PyChannel_Send(CH(ch), value), -1);
    expect_error(PyExc_RuntimeError, DEADLOCK);
    assert_int_equal(Py_REFCNT(value), rv);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);
    assert_null(api->PyChannel_Receive(CH(ch)));
    expect_error(PyExc_RuntimeError, DEADLOCK);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);

    /* the main tasklet blocks while a Python tasklet sends */
    pyexec("s.tasklet(lambda: ch.send('late'))()");
    r = api->PyChannel_Receive(CH(ch));
    assert_non_null(r);
    assert_true(PyUnicode_Check(r) && strcmp(PyUnicode_AsUTF8(r), "late") == 0);
    Py_DECREF(r);

    /* closed */
    pyexec("ch.close()");
    assert_int_equal(api->PyChannel_Send(CH(ch), value), -1);
    expect_error(PyExc_ValueError, "Send operation on a closed channel");
    assert_null(api->PyChannel_Receive(CH(ch)));
    expect_error(PyExc_ValueError, "receive operation on a closed channel");
    assert_int_equal(Py_REFCNT(value), rv);
    pydel("ch");
    Py_DECREF(value);
    Py_DECREF(ch);
}

static void test_channel_send_receive_c_partner(void **state)
{
    PyObject *ch = O(api->PyChannel_New(NULL)), *value = PyList_New(0), *r, *q;
    PyTaskletObject *t;

    (void)state;
    /* a C receiver */
    t = start_tasklet(cfunc[C_RECEIVER], PyTuple_Pack(1, ch));
    run_all();
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), -1);
    q = api->PyChannel_GetQueue(CH(ch));
    assert_ptr_equal(q, t);
    Py_DECREF(q);
    assert_int_equal(api->PyChannel_Send(CH(ch), value), 0);
    expect_no_error();
    run_all();
    assert_ptr_equal(rec.received, value);
    assert_int_equal(Py_REFCNT(value), 2);
    Py_CLEAR(rec.received);
    assert_int_equal(Py_REFCNT(value), 1);
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    Py_DECREF(t);

    /* a C sender */
    t = start_tasklet(cfunc[C_SENDER], PyTuple_Pack(2, ch, value));
    run_all();
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 1);
    r = api->PyChannel_Receive(CH(ch));
    assert_ptr_equal(r, value);
    run_all();
    assert_int_equal(rec.send_rc, 0);
    assert_null(rec.error);
    Py_DECREF(r);
    assert_int_equal(Py_REFCNT(t), 1);
    Py_DECREF(t); /* releases its arguments */
    assert_int_equal(Py_REFCNT(value), 1);

    /* C receiver and C sender, main not involved */
    t = start_tasklet(cfunc[C_RECEIVER], PyTuple_Pack(1, ch));
    {
        PyTaskletObject *t2 = start_tasklet(cfunc[C_SENDER], PyTuple_Pack(2, ch, value));
        run_all();
        assert_ptr_equal(rec.received, value);
        assert_int_equal(rec.send_rc, 0);
        assert_int_equal(api->PyTasklet_Alive(t), 0);
        assert_int_equal(api->PyTasklet_Alive(t2), 0);
        Py_DECREF(t2);
    }
    Py_DECREF(t);
    Py_CLEAR(rec.received);
    assert_int_equal(Py_REFCNT(value), 1);
    Py_DECREF(value);
    Py_DECREF(ch);
}

static void test_channel_send_exception(void **state)
{
    PyObject *ch = O(api->PyChannel_New(NULL)), *list, *tuple, *inst, *ki;
    Py_ssize_t r;

    (void)state;
    pyset("ch", ch);

    /* one value: the exception's value; stolen */
    pyexec("t = blocked_receiver(ch)");
    list = Py_BuildValue("[i]", 4242);
    Py_INCREF(list); /* one for us, one given away */
    assert_int_equal(Py_REFCNT(list), 2);
    assert_int_equal(api->PyChannel_SendException(CH(ch), PyExc_ValueError, list), 0);
    expect_no_error();
    run_all();
    pytrue("got[0][0] == 'ValueError' and got[0][1] == ([4242],)");
    pyexec("got.clear(); del t; gc.collect()");
    assert_int_equal(Py_REFCNT(list), 1);

    /* a tuple becomes the args */
    pyexec("t = blocked_receiver(ch)");
    tuple = Py_BuildValue("(is)", 1, "two");
    assert_int_equal(api->PyChannel_SendException(CH(ch), PyExc_KeyError, tuple), 0);
    run_all();
    pytrue("got[0][:2] == ('KeyError', (1, 'two'))");
    pyexec("got.clear(); del t");

    /* NULL value: no arguments */
    pyexec("t = blocked_receiver(ch)");
    assert_int_equal(api->PyChannel_SendException(CH(ch), PyExc_ValueError, NULL), 0);
    run_all();
    pytrue("got[0][:2] == ('ValueError', ())");
    pyexec("got.clear(); del t");

    /* an instance is raised as it is */
    pyexec("t = blocked_receiver(ch)");
    inst = PyObject_CallFunction(PyExc_KeyError, "s", "inst");
    pyset("inst", inst);
    assert_int_equal(api->PyChannel_SendException(CH(ch), inst, NULL), 0);
    run_all();
    pytrue("got[0][2] is inst");
    pyexec("got.clear(); del t, inst");
    Py_DECREF(inst);

    /* errors: RuntimeError, value stolen all the same */
    r = Py_REFCNT(list);
    Py_INCREF(list);
    assert_int_equal(api->PyChannel_SendException(CH(ch), NULL, list), -1);
    expect_error(PyExc_RuntimeError, BAD_EXC);
    assert_int_equal(Py_REFCNT(list), r);
    Py_INCREF(list);
    assert_int_equal(api->PyChannel_SendException(CH(ch), Py_None, list), -1);
    expect_error(PyExc_RuntimeError, BAD_EXC);
    assert_int_equal(Py_REFCNT(list), r);
    Py_INCREF(list);
    assert_int_equal(api->PyChannel_SendException(CH(ch), O(&PyLong_Type), list), -1);
    expect_error(PyExc_RuntimeError, BAD_EXC);
    assert_int_equal(Py_REFCNT(list), r);
    ki = PyObject_CallNoArgs(PyExc_KeyboardInterrupt); /* a BaseException-only instance */
    assert_int_equal(api->PyChannel_SendException(CH(ch), ki, NULL), -1);
    expect_error(PyExc_RuntimeError, BAD_EXC);
    Py_DECREF(ki);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);

    /* nobody to receive: deadlock, value stolen */
    Py_INCREF(list);
    assert_int_equal(api->PyChannel_SendException(CH(ch), PyExc_ValueError, list), -1);
    expect_error(PyExc_RuntimeError, DEADLOCK);
    pyexec("gc.collect()");
    assert_int_equal(Py_REFCNT(list), r);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);

    /* a C receiver sees the exception */
    {
        PyTaskletObject *t = start_tasklet(cfunc[C_RECEIVER], PyTuple_Pack(1, ch));
        run_all();
        assert_int_equal(api->PyChannel_SendException(CH(ch), PyExc_IndexError, PyLong_FromLong(9)), 0);
        run_all();
        assert_non_null(rec.error);
        assert_ptr_equal(Py_TYPE(rec.error), PyExc_IndexError);
        Py_DECREF(t);
    }
    pydel("ch");
    Py_DECREF(list);
    Py_DECREF(ch);
}

static void test_channel_send_throw(void **state)
{
    PyObject *ch = O(api->PyChannel_New(NULL)), *list, *inst, *tb;
    Py_ssize_t r;

    (void)state;
    pyset("ch", ch);
    /* val is not stolen */
    pyexec("t = blocked_receiver(ch)");
    list = Py_BuildValue("[i]", 7);
    assert_int_equal(api->PyChannel_SendThrow(CH(ch), PyExc_ValueError, list, NULL), 0);
    expect_no_error();
    run_all();
    pytrue("got[0][:2] == ('ValueError', ([7],))");
    pyexec("got.clear(); del t; gc.collect()");
    assert_int_equal(Py_REFCNT(list), 1);

    /* NULL val and tb */
    pyexec("t = blocked_receiver(ch)");
    assert_int_equal(api->PyChannel_SendThrow(CH(ch), PyExc_ValueError, NULL, NULL), 0);
    run_all();
    pytrue("got[0][:2] == ('ValueError', ())");
    pyexec("got.clear(); del t");

    /* a tuple val becomes the args; a real traceback is accepted */
    pyexec("t = blocked_receiver(ch)\n"
           "try:\n    raise KeyError('x')\nexcept KeyError as e:\n    tb = e.__traceback__\n");
    tb = pyeval("tb");
    {
        PyObject *tup = Py_BuildValue("(ii)", 1, 2);
        r = Py_REFCNT(tup);
        assert_int_equal(api->PyChannel_SendThrow(CH(ch), PyExc_KeyError, tup, tb), 0);
        run_all();
        pytrue("got[0][:2] == ('KeyError', (1, 2))");
        pyexec("got.clear(); del t, tb; gc.collect()");
        assert_int_equal(Py_REFCNT(tup), r);
        Py_DECREF(tup);
    }
    Py_DECREF(tb);

    /* an instance is raised as it is */
    pyexec("t = blocked_receiver(ch)");
    inst = PyObject_CallFunction(PyExc_KeyError, "s", "inst");
    pyset("inst", inst);
    assert_int_equal(api->PyChannel_SendThrow(CH(ch), inst, NULL, NULL), 0);
    run_all();
    pytrue("got[0][2] is inst");
    pyexec("got.clear(); del t, inst");
    Py_DECREF(inst);

    /* errors */
    r = Py_REFCNT(list);
    assert_int_equal(api->PyChannel_SendThrow(CH(ch), NULL, list, NULL), -1);
    expect_error(PyExc_RuntimeError, BAD_EXC);
    assert_int_equal(api->PyChannel_SendThrow(CH(ch), list, NULL, NULL), -1);
    expect_error(PyExc_RuntimeError, BAD_EXC);
    assert_int_equal(api->PyChannel_SendThrow(CH(ch), O(&PyLong_Type), list, NULL), -1);
    expect_error(PyExc_RuntimeError, BAD_EXC);
    assert_int_equal(Py_REFCNT(list), r);
    assert_int_equal(api->PyChannel_SendThrow(CH(ch), PyExc_ValueError, list, NULL), -1);
    expect_error(PyExc_RuntimeError, DEADLOCK);
    pyexec("gc.collect()");
    assert_int_equal(Py_REFCNT(list), r);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);
    pydel("ch");
    Py_DECREF(list);
    Py_DECREF(ch);
}

static void test_channel_queue_balance_preference(void **state)
{
    PyObject *ch = O(api->PyChannel_New(NULL)), *q, *t1, *t2;
    Py_ssize_t r;

    (void)state;
    pyset("ch", ch);
    q = api->PyChannel_GetQueue(CH(ch));
    assert_ptr_equal(q, Py_None);
    Py_DECREF(q);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);

    t1 = pyeval("blocked_receiver(ch)");
    t2 = pyeval("blocked_receiver(ch)");
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), -2);
    r = Py_REFCNT(t1);
    q = api->PyChannel_GetQueue(CH(ch));
    assert_ptr_equal(q, t1);
    assert_int_equal(Py_REFCNT(t1), r + 1);
    Py_DECREF(q);
    pyexec("ch.send(1)");
    q = api->PyChannel_GetQueue(CH(ch));
    assert_ptr_equal(q, t2);
    Py_DECREF(q);
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), -1);
    pyexec("ch.send(2)");
    Py_DECREF(t1);
    Py_DECREF(t2);
    t1 = pyeval("blocked_sender(ch, 1)");
    t2 = pyeval("blocked_sender(ch, 2)");
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 2);
    q = api->PyChannel_GetQueue(CH(ch));
    assert_ptr_equal(q, t1);
    Py_DECREF(q);
    pyexec("ch.clear()");
    assert_int_equal(api->PyChannel_GetBalance(CH(ch)), 0);
    q = api->PyChannel_GetQueue(CH(ch));
    assert_ptr_equal(q, Py_None);
    Py_DECREF(q);
    Py_DECREF(t1);
    Py_DECREF(t2);

    /* preference: clamped */
    assert_int_equal(api->PyChannel_GetPreference(CH(ch)), -1);
    api->PyChannel_SetPreference(CH(ch), 0);
    assert_int_equal(api->PyChannel_GetPreference(CH(ch)), 0);
    pytrue("ch.preference == 0");
    api->PyChannel_SetPreference(CH(ch), 5);
    assert_int_equal(api->PyChannel_GetPreference(CH(ch)), 1);
    api->PyChannel_SetPreference(CH(ch), INT_MIN);
    assert_int_equal(api->PyChannel_GetPreference(CH(ch)), -1);
    api->PyChannel_SetPreference(CH(ch), INT_MAX);
    assert_int_equal(api->PyChannel_GetPreference(CH(ch)), 1);
    pytrue("ch.preference == 1");
    api->PyChannel_SetPreference(CH(ch), -2);
    assert_int_equal(api->PyChannel_GetPreference(CH(ch)), -1);
    pyexec("ch.preference = 0");
    assert_int_equal(api->PyChannel_GetPreference(CH(ch)), 0);
    pydel("ch");
    Py_DECREF(ch);
}

/* ---- scheduler functions ------------------------------------------------------------------------------- */

static void test_get_scheduler_and_current(void **state)
{
    PyObject *m1, *m2, *pm, *c1, *c2;
    Py_ssize_t r;
    PyTaskletObject *t;

    (void)state;
    m1 = api->PyScheduler_GetScheduler();
    assert_non_null(m1);
    r = Py_REFCNT(m1);
    m2 = api->PyScheduler_GetScheduler();
    assert_ptr_equal(m1, m2);
    assert_int_equal(Py_REFCNT(m1), r); /* borrowed */
    pm = pyeval("s.get_schedule_manager()");
    assert_ptr_equal(pm, m1);
    Py_DECREF(pm);
    assert_string_equal(Py_TYPE(m1)->tp_name, "scheduler.ScheduleManager");

    c1 = api->PyScheduler_GetCurrent();
    r = Py_REFCNT(c1);
    c2 = api->PyScheduler_GetCurrent();
    assert_ptr_equal(c1, c2);
    assert_int_equal(Py_REFCNT(c1), r + 1); /* new references */
    Py_DECREF(c2);
    assert_int_equal(api->PyTasklet_IsMain(T(c1)), 1);
    Py_DECREF(c1);

    /* run count */
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
    t = start_tasklet(cfunc[C_NOOP], NULL);
    assert_int_equal(api->PyScheduler_GetRunCount(), 2);
    assert_int_equal(pylong("s.getruncount()"), 2);
    run_all();
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
    Py_DECREF(t);
}

static void test_schedule(void **state)
{
    PyObject *r, *retval = PyList_New(0);
    PyTaskletObject *t;
    Py_ssize_t rr = Py_REFCNT(retval);

    (void)state;
    /* from main: runs the queue */
    pyexec("s.tasklet(f0)(1); s.tasklet(f0)(2)");
    r = api->PyScheduler_Schedule(retval, 0);
    assert_ptr_equal(r, Py_None);
    Py_DECREF(r);
    assert_int_equal(Py_REFCNT(retval), rr);
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
    pytrue("calls == [((1,), {}), ((2,), {})]");
    pyexec("calls.clear(); s.tasklet(f0)(3)");
    r = api->PyScheduler_Schedule(NULL, 1);
    assert_ptr_equal(r, Py_None);
    Py_DECREF(r);
    pytrue("calls == [((3,), {})]");
    r = api->PyScheduler_Schedule(NULL, 0); /* empty queue */
    assert_ptr_equal(r, Py_None);
    Py_DECREF(r);

    /* a C tasklet yielding: re-queued each time */
    t = start_tasklet(cfunc[C_YIELDER], Py_BuildValue("(i)", 2));
    r = api->PyScheduler_RunNTasklets(1);
    if (!r)
        py_failed("PyScheduler_RunNTasklets(1)", __FILE__, __LINE__);
    Py_DECREF(r);
    assert_int_equal(rec.yields, 0); /* suspended in its first PyScheduler_Schedule */
    assert_int_equal(api->PyTasklet_Alive(t), 1);
    assert_int_equal(api->PyScheduler_GetRunCount(), 2);
    run_all();
    assert_int_equal(rec.yields, 2);
    assert_int_equal(rec.yield_fail, 0);
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    Py_DECREF(t);

    /* remove: paused until inserted */
    t = start_tasklet(cfunc[C_REMOVER], NULL);
    run_all();
    assert_int_equal(rec.remove_done, 0);
    assert_int_equal(api->PyTasklet_Alive(t), 1);
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
    pyset("t", O(t));
    pytrue("t.paused and not t.scheduled");
    pydel("t");
    assert_int_equal(api->PyTasklet_Insert(t), 0);
    run_all();
    assert_int_equal(rec.remove_done, 1);
    assert_int_equal(api->PyTasklet_Alive(t), 0);
    assert_null(rec.error);
    Py_DECREF(t);

    /* switch trap */
    pyexec("s.tasklet(noop)(); s.switch_trap(1)");
    assert_null(api->PyScheduler_Schedule(NULL, 0));
    expect_error(PyExc_RuntimeError, SWITCH_TRAP);
    assert_null(api->PyScheduler_Schedule(NULL, 1));
    expect_error(PyExc_RuntimeError, SWITCH_TRAP);
    assert_null(api->PyScheduler_RunNTasklets(1));
    expect_error(PyExc_RuntimeError, SWITCH_TRAP);
    assert_null(api->PyScheduler_RunWithTimeout(1000000000LL));
    expect_error(PyExc_RuntimeError, SWITCH_TRAP);
    assert_int_equal(api->PyScheduler_GetRunCount(), 2);
    pyexec("s.switch_trap(-1)");
    Py_DECREF(retval);
}

static void rwt(long long ns, int completed, int switched)
{
    PyObject *r = api->PyScheduler_RunWithTimeout(ns);

    if (!r)
        py_failed("PyScheduler_RunWithTimeout", __FILE__, __LINE__);
    assert_ptr_equal(r, Py_None);
    Py_DECREF(r);
    assert_int_equal(api->PyScheduler_GetTaskletsCompletedLastRunWithTimeout(), completed);
    assert_int_equal(api->PyScheduler_GetTaskletsSwitchedLastRunWithTimeout(), switched);
}

static void test_run_with_timeout(void **state)
{
    PyObject *r;

    (void)state;
    pyexec("for i in range(3): s.tasklet(noop)()");
    rwt(10000000000LL, 3, 6);
    pyexec("for i in range(5): s.tasklet(noop)()");
    rwt(0, 2, 4);
    assert_int_equal(api->PyScheduler_GetRunCount(), 4);
    pyexec("s.run()");
    /* other runs leave the statistics alone */
    assert_int_equal(api->PyScheduler_GetTaskletsCompletedLastRunWithTimeout(), 2);
    assert_int_equal(api->PyScheduler_GetTaskletsSwitchedLastRunWithTimeout(), 4);
    pyexec("s.tasklet(noop)(); s.run_n_tasklets(1)");
    assert_int_equal(api->PyScheduler_GetTaskletsCompletedLastRunWithTimeout(), 2);
    /* a yielding tasklet counts again when resumed */
    pyexec("s.tasklet(yielder)(); s.tasklet(noop)()");
    rwt(10000000000LL, 3, 6);
    /* nested run inside a tasklet is part of it */
    pyexec("def nest():\n    a = s.tasklet(noop)(); s.tasklet(noop)(); a.run()\n"
           "s.tasklet(nest)()");
    rwt(10000000000LL, 3, 6);
    /* C tasklets */
    {
        PyTaskletObject *a = start_tasklet(cfunc[C_NOOP], NULL);
        PyTaskletObject *b = start_tasklet(cfunc[C_NOOP], NULL);
        rwt(10000000000LL, 2, 4);
        assert_int_equal(rec.calls, 2);
        Py_DECREF(a);
        Py_DECREF(b);
    }
    /* an exception escaping a tasklet */
    pyexec("s.tasklet(raiser)(); s.tasklet(noop)()");
    r = api->PyScheduler_RunWithTimeout(10000000000LL);
    assert_null(r);
    expect_error(PyExc_ValueError, "from tasklet");
    assert_int_equal(api->PyScheduler_GetRunCount(), 2);
}

static void test_run_n_tasklets(void **state)
{
    PyObject *r;

    (void)state;
    pyexec("for i in range(4): s.tasklet(f0)(i)");
    r = api->PyScheduler_RunNTasklets(2);
    assert_ptr_equal(r, Py_None);
    Py_DECREF(r);
    assert_int_equal(api->PyScheduler_GetRunCount(), 3);
    r = api->PyScheduler_RunNTasklets(0); /* behaves as 1 */
    assert_ptr_equal(r, Py_None);
    Py_DECREF(r);
    assert_int_equal(api->PyScheduler_GetRunCount(), 2);
    r = api->PyScheduler_RunNTasklets(-7);
    assert_ptr_equal(r, Py_None);
    Py_DECREF(r);
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
    pytrue("[c[0][0] for c in calls] == [0, 1, 2, 3]");
    r = api->PyScheduler_RunNTasklets(5); /* empty queue */
    assert_ptr_equal(r, Py_None);
    Py_DECREF(r);
    pyexec("s.tasklet(raiser)()");
    assert_null(api->PyScheduler_RunNTasklets(1));
    expect_error(PyExc_ValueError, "from tasklet");
}

static void test_channel_callback(void **state)
{
    PyObject *cb, *ch, *notcallable, *prev;
    Py_ssize_t r;

    (void)state;
    assert_null(api->PyScheduler_GetChannelCallback());
    expect_no_error();
    pyexec("events = []\n"
           "def ccb(ch, t, sending, will_block): events.append((ch, t, sending, will_block))\n");
    cb = pyeval("ccb");
    r = Py_REFCNT(cb);
    Py_INCREF(cb); /* the reference given away */
    assert_int_equal(api->PyScheduler_SetChannelCallback(cb), 0);
    expect_no_error();
    assert_int_equal(Py_REFCNT(cb), r + 1);
    prev = api->PyScheduler_GetChannelCallback();
    assert_ptr_equal(prev, cb);
    assert_int_equal(Py_REFCNT(cb), r + 1); /* borrowed */
    pytrue("s.get_channel_callback() is ccb");

    ch = O(api->PyChannel_New(NULL));
    pyset("ch", ch);
    pyexec("r = blocked_receiver(ch)");
    assert_int_equal(api->PyChannel_Send(CH(ch), Py_True), 0);
    pytrue("len(events) == 2");
    pytrue("events[0] == (ch, r, False, True)");
    pytrue("events[1][0] is ch and events[1][1] is s.getmain() and events[1][2:] == (True, False)");
    pytrue("type(events[1][2]) is bool and type(events[1][3]) is bool");
    pyexec("events.clear(); del r");

    /* not callable: -1 without an exception; the callback stays */
    notcallable = PyLong_FromLong(123456789);
    assert_int_equal(api->PyScheduler_SetChannelCallback(notcallable), -1);
    assert_null(PyErr_Occurred());
    assert_ptr_equal(api->PyScheduler_GetChannelCallback(), cb);

    /* NULL removes, releasing it */
    assert_int_equal(api->PyScheduler_SetChannelCallback(NULL), 0);
    expect_no_error();
    assert_null(api->PyScheduler_GetChannelCallback());
    assert_null(PyErr_Occurred());
    assert_int_equal(Py_REFCNT(cb), r);
    pytrue("s.get_channel_callback() is None");
    pyexec("s.tasklet(lambda: ch.send(1))(); ch.receive()");
    pytrue("events == []");

    /* replacing releases the previous one */
    Py_INCREF(cb);
    assert_int_equal(api->PyScheduler_SetChannelCallback(cb), 0);
    {
        PyObject *other = pyeval("lambda *a: None");
        assert_int_equal(api->PyScheduler_SetChannelCallback(other), 0); /* stolen */
        assert_int_equal(Py_REFCNT(cb), r);
        assert_ptr_equal(api->PyScheduler_GetChannelCallback(), other);
    }
    assert_int_equal(api->PyScheduler_SetChannelCallback(NULL), 0);
    pydel("ch");
    pydel("events");
    pydel("ccb");
    Py_DECREF(cb);
    Py_DECREF(ch);
}

static void test_schedule_callback(void **state)
{
    PyObject *cb, *notcallable;
    PyTaskletObject *t;
    Py_ssize_t r;

    (void)state;
    pyexec("sevents = []\n"
           "def scb(prev, nxt): sevents.append((prev, nxt))\n");
    cb = pyeval("scb");
    r = Py_REFCNT(cb);
    Py_INCREF(cb);
    assert_int_equal(api->PyScheduler_SetScheduleCallback(cb), 0);
    expect_no_error();
    assert_int_equal(Py_REFCNT(cb), r + 1);
    pytrue("s.get_schedule_callback() is scb");
    t = start_tasklet(cfunc[C_NOOP], NULL);
    pyset("t", O(t));
    run_all();
    pytrue("sevents == [(s.getmain(), t), (t, s.getmain())]");

    notcallable = PyLong_FromLong(987654321);
    assert_int_equal(api->PyScheduler_SetScheduleCallback(notcallable), -1);
    assert_null(PyErr_Occurred());
    pytrue("s.get_schedule_callback() is scb");

    assert_int_equal(api->PyScheduler_SetScheduleCallback(NULL), 0);
    expect_no_error();
    assert_int_equal(Py_REFCNT(cb), r);
    pytrue("s.get_schedule_callback() is None");
    pyexec("sevents.clear(); s.tasklet(noop)(); s.run()");
    pytrue("sevents == []");
    pydel("t");
    pydel("scb");
    pydel("sevents");
    Py_DECREF(cb);
    Py_DECREF(t);
}

static int fast_hook(PyTaskletObject *from, PyTaskletObject *to)
{
    if (rec.hook_calls < MAX_EVENTS) {
        rec.hook_from[rec.hook_calls] = from;
        rec.hook_to[rec.hook_calls] = to;
        rec.hook_pylog_len[rec.hook_calls] = rec.pylog ? PyList_GET_SIZE(rec.pylog) : -1;
    }
    rec.hook_calls++;
    return -1; /* ignored */
}

static void test_schedule_fast_callback(void **state)
{
    PyObject *main_t = api->PyScheduler_GetCurrent(), *log;
    PyTaskletObject *t;

    (void)state;
    /* alone */
    api->PyScheduler_SetScheduleFastCallback(fast_hook);
    t = start_tasklet(cfunc[C_NOOP], NULL);
    run_all();
    expect_no_error();
    assert_int_equal(rec.hook_calls, 2);
    assert_ptr_equal(rec.hook_from[0], main_t);
    assert_ptr_equal(rec.hook_to[0], t);
    assert_ptr_equal(rec.hook_from[1], t);
    assert_ptr_equal(rec.hook_to[1], main_t);
    assert_int_equal(rec.calls, 1);
    Py_DECREF(t);

    /* after the Python callback, every time */
    rec.hook_calls = 0;
    pyexec("plog = []\ns.set_schedule_callback(lambda a, b: plog.append((a, b)))");
    log = pyeval("plog");
    rec.pylog = log;
    t = start_tasklet(cfunc[C_YIELDER], Py_BuildValue("(i)", 1));
    run_all();
    expect_no_error();
    assert_int_equal(rec.hook_calls, 4);
    assert_int_equal(PyList_GET_SIZE(log), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rec.hook_pylog_len[i], i + 1);
    assert_ptr_equal(rec.hook_to[0], t);
    assert_ptr_equal(rec.hook_to[1], main_t);
    assert_ptr_equal(rec.hook_to[2], t);
    assert_ptr_equal(rec.hook_from[3], t);
    rec.pylog = NULL;
    Py_DECREF(log);
    Py_DECREF(t);
    pyexec("s.set_schedule_callback(None); del plog");

    /* NULL removes */
    api->PyScheduler_SetScheduleFastCallback(NULL);
    rec.hook_calls = 0;
    pyexec("s.tasklet(noop)(); s.run()");
    assert_int_equal(rec.hook_calls, 0);
    Py_DECREF(main_t);
}

static void test_counters(void **state)
{
    long managers = api->PyScheduler_GetNumberOfActiveScheduleManagers();
    long channels = api->PyScheduler_GetNumberOfActiveChannels();
    long all = api->PyScheduler_GetAllTimeTaskletCount();
    long active = api->PyScheduler_GetActiveTaskletCount();
    PyTaskletObject *t;
    PyChannelObject *c;

    (void)state;
    assert_int_equal(managers, pylong("s.get_number_of_active_schedule_managers()"));
    assert_true(managers >= 1);
    assert_int_equal(channels, pylong("s.get_number_of_active_channels()"));
    assert_int_equal(all, pylong("s.get_all_time_tasklet_count()"));
    assert_int_equal(active, pylong("s.get_active_tasklet_count()"));
    t = new_tasklet(cfunc[C_NOOP]);
    c = api->PyChannel_New(NULL);
    assert_int_equal(api->PyScheduler_GetAllTimeTaskletCount(), all + 1);
    assert_int_equal(api->PyScheduler_GetActiveTaskletCount(), active + 1);
    assert_int_equal(api->PyScheduler_GetNumberOfActiveChannels(), channels + 1);
    Py_DECREF(t);
    Py_DECREF(c);
    assert_int_equal(api->PyScheduler_GetAllTimeTaskletCount(), all + 1);
    assert_int_equal(api->PyScheduler_GetActiveTaskletCount(), active);
    assert_int_equal(api->PyScheduler_GetNumberOfActiveChannels(), channels);

    /* another thread has its own manager (and main tasklet) while it lives */
    pyexec("fr = Foreign()");
    assert_int_equal(api->PyScheduler_GetNumberOfActiveScheduleManagers(), managers + 1);
    pyexec("fr.release(); del fr; gc.collect()");
    assert_int_equal(api->PyScheduler_GetNumberOfActiveScheduleManagers(), managers);
}

/* ---- the GIL ------------------------------------------------------------------------------------------ */

static void test_without_gil(void **state)
{
    PyObject *args = PyTuple_Pack(1, cfunc[C_NOOP]), *empty = PyTuple_New(0), *r;
    PyTaskletObject *t;
    PyChannelObject *c;
    PyThreadState *ts;
    int n0, n1, n2, setup_rc, balance, alive;

    (void)state;
    ts = PyEval_SaveThread();
    n0 = api->PyScheduler_GetRunCount();
    c = api->PyChannel_New(NULL);
    t = api->PyTasklet_New(api->PyTaskletType, args);
    setup_rc = t ? api->PyTasklet_Setup(t, empty, NULL) : -9;
    n1 = api->PyScheduler_GetRunCount();
    r = api->PyScheduler_RunNTasklets(5);
    n2 = api->PyScheduler_GetRunCount();
    balance = c ? api->PyChannel_GetBalance(c) : -9;
    alive = t ? api->PyTasklet_Alive(t) : -9;
    PyEval_RestoreThread(ts);

    assert_int_equal(n0, 1);
    assert_non_null(c);
    assert_non_null(t);
    assert_int_equal(setup_rc, 0);
    assert_int_equal(n1, 2);
    assert_ptr_equal(r, Py_None);
    assert_int_equal(n2, 1);
    assert_int_equal(balance, 0);
    assert_int_equal(alive, 0);
    assert_int_equal(rec.calls, 1);
    Py_XDECREF(r);
    Py_DECREF(t);
    Py_DECREF(c);
    Py_DECREF(args);
    Py_DECREF(empty);
}

static struct {
    int runcount_outside, runcount_inside, ran, setup_rc, is_main;
    int chan_ok;
} thr;

/* A C thread Python has never seen. */
static void *c_thread(void *arg)
{
    PyGILState_STATE st;
    PyChannelObject *c;

    (void)arg;
    /* without the GIL or any thread state */
    thr.runcount_outside = api->PyScheduler_GetRunCount();
    c = api->PyChannel_New(NULL);
    thr.chan_ok = c != NULL && api->PyChannel_GetBalance(c) == 0;
    /* with a thread state of its own, kept for a while */
    st = PyGILState_Ensure();
    Py_XDECREF(c);
    {
        PyObject *cur = api->PyScheduler_GetCurrent();
        PyObject *args = PyTuple_Pack(1, cfunc[C_NOOP]), *empty = PyTuple_New(0), *r;
        PyTaskletObject *t = api->PyTasklet_New(api->PyTaskletType, args);
        thr.is_main = cur ? api->PyTasklet_IsMain(T(cur)) : -1;
        thr.setup_rc = t ? api->PyTasklet_Setup(t, empty, NULL) : -9;
        thr.runcount_inside = api->PyScheduler_GetRunCount();
        r = api->PyScheduler_RunNTasklets(10);
        thr.ran = r == Py_None;
        if (!r)
            PyErr_Clear();
        Py_XDECREF(r);
        Py_XDECREF(t);
        Py_XDECREF(args);
        Py_XDECREF(empty);
        Py_XDECREF(cur);
    }
    PyGILState_Release(st);
    return NULL;
}

static void test_from_a_c_thread(void **state)
{
    pthread_t th;
    long managers = api->PyScheduler_GetNumberOfActiveScheduleManagers();

    (void)state;
    memset(&thr, 0, sizeof thr);
    Py_BEGIN_ALLOW_THREADS
    pthread_create(&th, NULL, c_thread, NULL);
    pthread_join(th, NULL);
    Py_END_ALLOW_THREADS
    assert_int_equal(thr.runcount_outside, 1);
    assert_int_equal(thr.chan_ok, 1);
    assert_int_equal(thr.is_main, 1);
    assert_int_equal(thr.setup_rc, 0);
    assert_int_equal(thr.runcount_inside, 2);
    assert_int_equal(thr.ran, 1);
    assert_int_equal(rec.calls, 1);
    pyexec("gc.collect()");
    assert_int_equal(api->PyScheduler_GetNumberOfActiveScheduleManagers(), managers);
    assert_int_equal(api->PyScheduler_GetRunCount(), 1);
}


/* issue 13 (defect 10): the entry points that read or write plain fields
 * take the GIL too, and check the type of what they are given. Each is
 * called here from a thread that does not hold the GIL; the block-trap
 * setter must not disturb the other flags of the same word. */
static struct {
    PyTaskletObject *t;
    PyChannelObject *c;
    PyObject *not_a_tasklet;
    int trap_on, trap_off, is_main, alive, check_t, check_c, check_bad_t, check_bad_c;
    int pref, balance, managers, channels, all_time, active, rwt_c, rwt_s;
    long switched;
    const char *context;
    PyObject *chan_cb;
    int bad_send;
} nogil;

static void *nogil_calls(void *arg)
{
    (void)arg;
    api->PyTasklet_SetBlockTrap(nogil.t, 1);
    nogil.trap_on = api->PyTasklet_GetBlockTrap(nogil.t);
    api->PyTasklet_SetBlockTrap(nogil.t, 0);
    nogil.trap_off = api->PyTasklet_GetBlockTrap(nogil.t);
    nogil.is_main = api->PyTasklet_IsMain(nogil.t);
    nogil.alive = api->PyTasklet_Alive(nogil.t);
    nogil.check_t = api->PyTasklet_Check((PyObject *)nogil.t);
    nogil.check_c = api->PyChannel_Check((PyObject *)nogil.c);
    nogil.check_bad_t = api->PyTasklet_Check((PyObject *)nogil.c);
    nogil.check_bad_c = api->PyChannel_Check(NULL);
    api->PyChannel_SetPreference(nogil.c, 5);
    nogil.pref = api->PyChannel_GetPreference(nogil.c);
    nogil.balance = api->PyChannel_GetBalance(nogil.c);
    nogil.managers = api->PyScheduler_GetNumberOfActiveScheduleManagers();
    nogil.channels = api->PyScheduler_GetNumberOfActiveChannels();
    nogil.all_time = api->PyScheduler_GetAllTimeTaskletCount();
    nogil.active = api->PyScheduler_GetActiveTaskletCount();
    nogil.rwt_c = api->PyScheduler_GetTaskletsCompletedLastRunWithTimeout();
    nogil.rwt_s = api->PyScheduler_GetTaskletsSwitchedLastRunWithTimeout();
    nogil.switched = api->PyTasklet_GetTimesSwitchedTo(nogil.t);
    nogil.context = api->PyTasklet_GetContext(nogil.t);
    nogil.chan_cb = api->PyScheduler_GetChannelCallback();
    api->PyScheduler_SetScheduleFastCallback(NULL);
    return NULL;
}

static void test_plain_fields_without_gil(void **state)
{
    PyObject *args = PyTuple_Pack(1, cfunc[C_NOOP]);
    pthread_t th;

    (void)state;
    memset(&nogil, 0, sizeof nogil);
    nogil.t = api->PyTasklet_New(api->PyTaskletType, args);
    nogil.c = api->PyChannel_New(NULL);
    nogil.not_a_tasklet = PyLong_FromLong(7);
    assert_non_null(nogil.t);
    assert_non_null(nogil.c);
    {
        PyObject *empty = PyTuple_New(0);
        assert_int_equal(api->PyTasklet_Setup(nogil.t, empty, NULL), 0);
        Py_DECREF(empty);
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_create(&th, NULL, nogil_calls, NULL);
    pthread_join(th, NULL);
    Py_END_ALLOW_THREADS
    assert_int_equal(nogil.trap_on, 1);
    assert_int_equal(nogil.trap_off, 0);
    assert_int_equal(nogil.is_main, 0);
    assert_int_equal(nogil.alive, 1); /* the trap setter left `alive` alone */
    assert_int_equal(nogil.check_t, 1);
    assert_int_equal(nogil.check_c, 1);
    assert_int_equal(nogil.check_bad_t, 0);
    assert_int_equal(nogil.check_bad_c, 0);
    assert_int_equal(nogil.pref, 1);
    assert_int_equal(nogil.balance, 0);
    assert_true(nogil.managers >= 1);
    assert_true(nogil.channels >= 1);
    assert_true(nogil.all_time >= nogil.active && nogil.active >= 2);
    assert_int_equal(nogil.switched, 0);
    assert_non_null(nogil.context);
    {
        /* wrong types: TypeError, no crash (this thread keeps its state, so
         * the error is there once the GIL is back) */
        PyTaskletObject *bad_t = (PyTaskletObject *)nogil.not_a_tasklet;
        PyChannelObject *bad_c = (PyChannelObject *)nogil.not_a_tasklet;
        PyThreadState *ts;
        int errors = 0;
#define NOGIL_BAD(call)                                          \
        ts = PyEval_SaveThread();                                \
        (void)(call);                                            \
        PyEval_RestoreThread(ts);                                \
        errors += PyErr_ExceptionMatches(PyExc_TypeError);       \
        PyErr_Clear()
        NOGIL_BAD(api->PyTasklet_GetBlockTrap(bad_t));
        NOGIL_BAD((api->PyTasklet_SetBlockTrap(bad_t, 1), 0));
        NOGIL_BAD(api->PyTasklet_Alive(bad_t));
        NOGIL_BAD(api->PyTasklet_IsMain(bad_t));
        NOGIL_BAD(api->PyTasklet_GetTimesSwitchedTo(bad_t));
        NOGIL_BAD(api->PyChannel_GetPreference(bad_c));
        NOGIL_BAD((api->PyChannel_SetPreference(bad_c, 1), 0));
        NOGIL_BAD(api->PyChannel_GetBalance(bad_c));
        NOGIL_BAD(nogil.bad_send = api->PyChannel_Send(bad_c, Py_None));
        NOGIL_BAD(api->PyChannel_Receive(bad_c));
        NOGIL_BAD(api->PyChannel_GetQueue(bad_c));
#undef NOGIL_BAD
        assert_int_equal(errors, 11);
    }
    assert_int_equal(nogil.bad_send, -1);
    assert_int_equal(api->PyTasklet_Alive(nogil.t), 1);
    Py_DECREF(nogil.not_a_tasklet);
    Py_DECREF(nogil.c);
    pyexec("import scheduler; scheduler.run()");
    Py_DECREF(nogil.t);
    Py_DECREF(args);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_capsule),
        TEST(test_tasklet_new),
        TEST(test_tasklet_setup),
        TEST(test_tasklet_insert),
        TEST(test_tasklet_flags),
        TEST(test_tasklet_kill),
        TEST(test_times_switched_to),
        TEST(test_tasklet_context),
        TEST(test_channel_new),
        TEST(test_channel_send_receive_python_partner),
        TEST(test_channel_send_receive_c_partner),
        TEST(test_channel_send_exception),
        TEST(test_channel_send_throw),
        TEST(test_channel_queue_balance_preference),
        TEST(test_get_scheduler_and_current),
        TEST(test_schedule),
        TEST(test_run_with_timeout),
        TEST(test_run_n_tasklets),
        TEST(test_channel_callback),
        TEST(test_schedule_callback),
        TEST(test_schedule_fast_callback),
        TEST(test_counters),
        TEST(test_without_gil),
        TEST(test_from_a_c_thread),
        TEST(test_plain_fields_without_gil),
    };
    return cmocka_run_group_tests_name("capi", tests, group_setup, group_teardown);
}
