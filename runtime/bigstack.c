/* Parsing on a big C stack.
 *
 * CPython's parser recurses on the C stack and counts only its own nesting
 * (up to 6000 levels), so deeply nested source compiled on a small tasklet
 * stack would run into the guard page instead of raising. compile(), and
 * exec()/eval() of source text, called from a tasklet with a small stack,
 * therefore parse on a per-thread 8 MiB stack (the size of a thread's own
 * stack), with the thread's full recursion budget; executing the result
 * happens back on the tasklet's stack. While on the big stack switching is
 * trapped, so no other tasklet can get there.
 */
#include "core.h"

#include <sys/mman.h>

#include "sanitizer.h"

#define BIG_STACK_SIZE (8u * 1024u * 1024u)
/* Tasklet stacks at least this big parse in place. */
#define HOP_BELOW (4u * 1024u * 1024u)
#define PAGE 4096u

typedef struct big_call {
    PyObject *fn;
    PyObject *const *args;
    size_t nargsf;
    PyObject *kwnames;
    PyObject *result;
    cb_ctx caller;
} big_call;

typedef struct big_stack {
    char *map;
    cb_ctx ctx;
    big_call *call;
    unsigned vg_id;
    int busy;
} big_stack;

static PyObject *original_compile, *original_exec, *original_eval;

/* Serves calls for ever: each switch in runs the posted call, then switches
 * back to its caller. */
static void big_entry(void *arg)
{
    big_stack *big = arg;

    cb_ctx_entered();
    for (;;) {
        big_call *c = big->call;
        c->result = PyObject_Vectorcall(c->fn, c->args, c->nargsf, c->kwnames);
        cb_ctx_switch(&big->ctx, &c->caller, NULL);
    }
}

static big_stack *big_stack_get(cb_manager *m)
{
    big_stack *big = m->big_stack;

    if (big)
        return big;
    big = PyMem_Calloc(1, sizeof *big);
    if (!big)
        return NULL;
    big->map = mmap(NULL, PAGE + BIG_STACK_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (big->map == MAP_FAILED || mprotect(big->map, PAGE, PROT_NONE) != 0) {
        if (big->map != MAP_FAILED)
            munmap(big->map, PAGE + BIG_STACK_SIZE);
        PyMem_Free(big);
        return NULL;
    }
    big->vg_id = CB_VALGRIND_STACK_REGISTER(big->map + PAGE, big->map + PAGE + BIG_STACK_SIZE);
    if (cb_ctx_make(&big->ctx, big->map + PAGE, BIG_STACK_SIZE, big_entry) < 0) {
        munmap(big->map, PAGE + BIG_STACK_SIZE);
        PyMem_Free(big);
        return NULL;
    }
    /* The first switch in starts big_entry with this as its argument. */
    m->big_stack = big;
    return big;
}

void cb_big_stack_free(cb_manager *m)
{
    big_stack *big = m->big_stack;

    if (!big)
        return;
    CB_VALGRIND_STACK_DEREGISTER(big->vg_id);
    munmap(big->map, PAGE + BIG_STACK_SIZE);
    PyMem_Free(big);
    m->big_stack = NULL;
}

/* The calling thread's manager if the current tasklet runs on a small stack
 * and the big one is free. */
static cb_manager *needs_hop(void)
{
    cb_manager *m = cb_manager_peek();
    cb_tasklet *cur;

    if (!m)
        return NULL;
    cur = m->current;
    if (cur->is_main || !cur->stack || m->pool.stack_size >= HOP_BELOW)
        return NULL;
    if (m->big_stack && ((big_stack *)m->big_stack)->busy)
        return NULL; /* already on it */
    return m;
}

/* Gives the running code the recursion budget of a thread's own stack for
 * the duration of the call; returns what to restore. */
static int widen_budget(PyThreadState *ts, cb_tasklet *cur)
{
#ifdef CB_PY311
    int saved = ts->recursion_remaining;
    ts->recursion_remaining += cur->run->st.py_offset;
#else
    int saved = ts->c_recursion_remaining;
    (void)cur;
    ts->c_recursion_remaining = CB_C_RECURSION_LIMIT;
#endif
    return saved;
}

static void restore_budget(PyThreadState *ts, int saved)
{
#ifdef CB_PY311
    ts->recursion_remaining = saved;
#else
    ts->c_recursion_remaining = saved;
#endif
}

static PyObject *call_on_big_stack(cb_manager *m, PyObject *fn, PyObject *const *args,
                                   size_t nargsf, PyObject *kwnames)
{
    big_stack *big = big_stack_get(m);
    cb_tasklet *cur = m->current;
    big_call call;
    int saved;

    if (!big) /* no memory for it: parse in place */
        return PyObject_Vectorcall(fn, args, nargsf, kwnames);
    call.fn = fn;
    call.args = args;
    call.nargsf = nargsf;
    call.kwnames = kwnames;
    call.result = NULL;
    call.caller = cur->run->ctx; /* stack bounds of where we come back to */
    big->call = &call;
    big->busy = 1;
    m->runtime_trap++;
    saved = widen_budget(m->tstate, cur);
    cb_ctx_switch(&call.caller, &big->ctx, big);
    restore_budget(m->tstate, saved);
    m->runtime_trap--;
    big->busy = 0;
    return call.result;
}

/* A wrapped function whose whole call runs on the big stack. */
#define HOPPING_WRAPPER(fn, original)                                                   \
    static PyObject *fn(PyObject *self, PyObject *const *args, Py_ssize_t nargs,        \
                        PyObject *kwnames)                                              \
    {                                                                                   \
        cb_manager *m = needs_hop();                                                    \
        (void)self;                                                                     \
        if (!m)                                                                         \
            return PyObject_Vectorcall(original, args, (size_t)nargs, kwnames);         \
        return call_on_big_stack(m, original, args, (size_t)nargs, kwnames);            \
    }

static PyObject *original_marshal_dumps, *original_marshal_loads, *original_symtable;

HOPPING_WRAPPER(sched_compile, original_compile)
HOPPING_WRAPPER(sched_marshal_dumps, original_marshal_dumps)
HOPPING_WRAPPER(sched_marshal_loads, original_marshal_loads)
HOPPING_WRAPPER(sched_symtable, original_symtable)

static int is_source(PyObject *o)
{
    return PyUnicode_Check(o) || PyBytes_Check(o) || PyByteArray_Check(o);
}

/* exec()/eval() of source text: compile it on the big stack (inheriting the
 * caller's future flags, as exec and eval do), then run the code object. */
static PyObject *run_source(PyObject *runner, const char *mode, int strip,
                            PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    cb_manager *m = needs_hop();
    PyObject *source, *code, *result, *cargs[3];
    PyObject *fwd[8];
    Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);

    if (!m || nargs < 1 || !is_source(args[0]) || total > 8)
        return PyObject_Vectorcall(runner, args, (size_t)nargs, kwnames);
    source = Py_NewRef(args[0]);
    if (strip && PyUnicode_Check(source)) /* eval() ignores leading blanks */
        Py_SETREF(source, PyObject_CallMethod(source, "lstrip", "s", " \t"));
    else if (strip)
        Py_SETREF(source, PyObject_CallMethod(source, "lstrip", "y", " \t"));
    if (!source)
        return NULL;
    cargs[0] = source;
    cargs[1] = PyUnicode_FromString("<string>");
    cargs[2] = PyUnicode_FromString(mode);
    code = cargs[1] && cargs[2] ? call_on_big_stack(m, original_compile, cargs, 3, NULL) : NULL;
    Py_DECREF(source);
    Py_XDECREF(cargs[1]);
    Py_XDECREF(cargs[2]);
    if (!code)
        return NULL;
    fwd[0] = code;
    for (Py_ssize_t i = 1; i < total; i++)
        fwd[i] = args[i];
    result = PyObject_Vectorcall(runner, fwd, (size_t)nargs, kwnames);
    Py_DECREF(code);
    return result;
}

static PyObject *sched_exec(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    (void)self;
    return run_source(original_exec, "exec", 0, args, nargs, kwnames);
}

static PyObject *sched_eval(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    (void)self;
    return run_source(original_eval, "eval", 1, args, nargs, kwnames);
}

#ifdef CB_PY311
/* 3.11 counts a tasklet's stack cap as recursion depth (see pystate.c);
 * sys.setrecursionlimit() must see the real depth, and the cap is then
 * re-applied under the new limit. */
static PyObject *original_setrecursionlimit;

static PyObject *sched_setrecursionlimit(PyObject *self, PyObject *const *args,
                                         Py_ssize_t nargs, PyObject *kwnames)
{
    cb_manager *m = cb_manager_peek();
    cb_tasklet *cur = m ? m->current : NULL;
    PyThreadState *ts = PyThreadState_Get();
    PyObject *r;
    int limit;

    (void)self;
    if (!cur || !cur->run->st.py_offset)
        return PyObject_Vectorcall(original_setrecursionlimit, args, (size_t)nargs, kwnames);
    ts->recursion_remaining += cur->run->st.py_offset;
    cur->run->st.py_offset = 0;
    r = PyObject_Vectorcall(original_setrecursionlimit, args, (size_t)nargs, kwnames);
    limit = ts->recursion_limit;
    cur->run->st.py_offset = cur->run->st.py_cap < limit ? limit - cur->run->st.py_cap : 0;
    ts->recursion_remaining -= cur->run->st.py_offset;
    return r;
}
#endif

typedef struct wrapped {
    const char *module;
    PyMethodDef def;
    PyObject **original;
} wrapped;

#define WRAP(module, name, fn, original) \
    {module, {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL | METH_KEYWORDS, NULL}, &original}

static wrapped wrappers[] = {
    WRAP("builtins", "compile", sched_compile, original_compile),
    WRAP("builtins", "exec", sched_exec, original_exec),
    WRAP("builtins", "eval", sched_eval, original_eval),
    WRAP("marshal", "dumps", sched_marshal_dumps, original_marshal_dumps),
    WRAP("marshal", "loads", sched_marshal_loads, original_marshal_loads),
    WRAP("_symtable", "symtable", sched_symtable, original_symtable),
#ifdef CB_PY311
    WRAP("sys", "setrecursionlimit", sched_setrecursionlimit, original_setrecursionlimit),
#endif
};

/* Replaces module.name by a wrapper with the same documentation, signature
 * and __self__. */
static int install(wrapped *w)
{
    PyObject *module = PyImport_ImportModule(w->module);
    PyObject *orig = NULL, *sig = NULL, *doc = NULL, *full = NULL, *fn = NULL, *name = NULL;
    int rc = -1;

    if (!module)
        return -1;
    orig = PyObject_GetAttrString(module, w->def.ml_name);
    if (!orig)
        goto done;
    if (!PyCFunction_Check(orig) || PyCFunction_GetFunction(orig) == w->def.ml_meth) {
        rc = 0; /* replaced by someone else, or already ours: leave it */
        goto done;
    }
    sig = PyObject_GetAttrString(orig, "__text_signature__");
    doc = PyObject_GetAttrString(orig, "__doc__");
    if (!sig || !doc)
        goto done;
    full = sig != Py_None ? PyUnicode_FromFormat("%s%U\n--\n\n%S", w->def.ml_name, sig, doc)
                          : Py_NewRef(doc);
    if (!full || !PyUnicode_Check(full))
        goto done;
    /* `full` is kept for ever: ml_doc points into it, as a builtin's
     * docstring lives as long as the process. */
    w->def.ml_doc = PyUnicode_AsUTF8(full);
    name = PyUnicode_FromString(w->module);
    if (!w->def.ml_doc || !name)
        goto done;
    fn = PyCFunction_NewEx(&w->def, module, name);
    if (!fn || PyObject_SetAttrString(module, w->def.ml_name, fn) < 0)
        goto done;
    *w->original = Py_NewRef(orig);
    full = NULL;
    rc = 0;
done:
    Py_XDECREF(fn);
    Py_XDECREF(name);
    Py_XDECREF(full);
    Py_XDECREF(doc);
    Py_XDECREF(sig);
    Py_XDECREF(orig);
    Py_DECREF(module);
    return rc;
}

int cb_big_stack_install(void)
{
    for (size_t i = 0; i < sizeof wrappers / sizeof wrappers[0]; i++)
        if (!*wrappers[i].original && install(&wrappers[i]) < 0)
            return -1;
    return 0;
}
