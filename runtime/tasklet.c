/* The tasklet type: construction, binding, the Python methods and attributes
 * (docs/scheduler.md, "tasklet"), and its lifetime: a suspended tasklet that
 * loses its last reference is killed, so its finally blocks run. */
#include "core.h"
#include "gcmark.h"
#include "preempt.h"

static const char INVALID_MSG[] =
    "Tasklet object is not valid. Most likely cause being __init__ not called on base type.";

int cb_tasklet_valid(cb_tasklet *t)
{
    if (!t->initialised) {
        PyErr_SetString(PyExc_RuntimeError, INVALID_MSG);
        return 0;
    }
    return 1;
}

/* 1 if t belongs to the calling thread, else RuntimeError naming `verb`. */
int cb_tasklet_owned(cb_tasklet *t, const char *verb)
{
    cb_manager *m = cb_manager_get();

    if (!m)
        return 0;
    if (t->mgr != m) {
        PyErr_Format(PyExc_RuntimeError,
                     "Failed to %s tasklet: Cannot %s tasklet from another thread", verb, verb);
        return 0;
    }
    return 1;
}

int cb_tasklet_needs_unwind(cb_tasklet *t)
{
    return t->started && t->alive && !t->is_main && !t->leaked && t->mgr;
}

static int scheduled(cb_tasklet *t)
{
    return t->is_main ? t->mgr != NULL : t->node.next != NULL;
}

/* ---- allocation and lifetime -------------------------------------------------------- */

static void register_with(cb_manager *m, cb_tasklet *t)
{
    t->mgr = m;
    t->thread_id = m->thread_id;
    t->mgr_prev = NULL;
    t->mgr_next = m->all;
    if (m->all)
        m->all->mgr_prev = t;
    m->all = t;
    t->initialised = 1;
    cb_g.tasklets++;
    cb_g.tasklets_all_time++;
}

static void unregister(cb_tasklet *t)
{
    cb_manager *m = t->mgr;

    if (!m)
        return;
    if (t->mgr_prev)
        t->mgr_prev->mgr_next = t->mgr_next;
    else if (m->all == t)
        m->all = t->mgr_next;
    if (t->mgr_next)
        t->mgr_next->mgr_prev = t->mgr_prev;
    t->mgr_prev = t->mgr_next = NULL;
}

cb_tasklet *cb_tasklet_new_main(cb_manager *m)
{
    cb_tasklet *t = (cb_tasklet *)cb_TaskletType.tp_alloc(&cb_TaskletType, 0);

    if (!t)
        return NULL;
    t->is_main = 1;
    t->alive = 1;
    t->initialised = 1;
    t->mgr = m;
    cb_g.tasklets++;
    cb_g.tasklets_all_time++;
    return t;
}

static void tasklet_finalize(PyObject *self);

static PyObject *tasklet_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    /* A subclass defining __del__ got CPython's slot function, which would
     * run only __del__: ours runs it, then kills the tasklet. */
    if (type->tp_finalize != tasklet_finalize)
        type->tp_finalize = tasklet_finalize;
    return type->tp_alloc(type, 0);
}

static int do_bind(cb_tasklet *t, PyObject *callable, PyObject *args, PyObject *kwargs);

/* The keyword `name` of kwds (borrowed), or of `alias`; NULL if absent. */
static PyObject *kw_get(PyObject *kwds, const char *name, const char *alias)
{
    PyObject *v = NULL;

    if (!kwds)
        return NULL;
    v = PyDict_GetItemString(kwds, name);
    if (!v && alias)
        v = PyDict_GetItemString(kwds, alias);
    return v;
}

/* tasklet(func=None, args=None, kwargs=None). The reference takes the
 * callable only and ignores keywords: unknown keywords are still ignored;
 * `func` (or `callable`), `args` and `kwargs` are Stackless's. Given args or
 * kwargs, the tasklet is bound with them (alive, not queued). */
static int tasklet_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    cb_tasklet *t = (cb_tasklet *)self;
    PyObject *callable = NULL, *cargs = NULL, *ckwargs = NULL;
    cb_manager *m;

    if (!PyArg_ParseTuple(args, "|OOO:tasklet", &callable, &cargs, &ckwargs))
        return -1;
    if (!callable)
        callable = kw_get(kwds, "func", NULL); /* `callable=` stays ignored */
    if (!cargs)
        cargs = kw_get(kwds, "args", NULL);
    if (!ckwargs)
        ckwargs = kw_get(kwds, "kwargs", NULL);
    if (callable == Py_None)
        callable = NULL;
    /* The reference rejects any second positional argument (the spec's
     * tasklet(f, None) included); Stackless's args must be a tuple. */
    if (PyTuple_GET_SIZE(args) > 1 && !PyTuple_Check(cargs)) {
        PyErr_SetString(PyExc_TypeError, "tasklet(): args must be a tuple");
        return -1;
    }
    if (cargs == Py_None)
        cargs = NULL;
    if (ckwargs == Py_None)
        ckwargs = NULL;
    if (callable && !PyCallable_Check(callable)) {
        PyErr_SetString(PyExc_TypeError, "parameter must be callable");
        return -1;
    }
    if (cargs && !PyTuple_Check(cargs)) {
        PyErr_SetString(PyExc_TypeError, "tasklet(): args must be a tuple");
        return -1;
    }
    if (ckwargs && !PyDict_Check(ckwargs)) {
        PyErr_SetString(PyExc_TypeError, "tasklet(): kwargs must be a dict");
        return -1;
    }
    if ((cargs || ckwargs) && !callable) {
        PyErr_SetString(PyExc_TypeError, "tasklet(): args or kwargs given without a callable");
        return -1;
    }
    m = cb_manager_get();
    if (!m)
        return -1;
    if (!t->initialised)
        register_with(m, t);
    else if (t->mgr != m) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Failed to bind tasklet: Cannot bind tasklet from another thread");
        return -1;
    }
    return callable ? do_bind(t, callable, cargs, ckwargs) : 0;
}

/* Whether the collector sees what a tasklet's frames reference, so that a
 * suspended tasklet in a cycle with them (blocked on a channel only it
 * references) is found and killed by its finalizer (docs/design.md,
 * "Collecting suspended tasklets"). Only a suspended, killable tasklet of a
 * manager not in a switch: a running tasklet's frames are in its thread's
 * state, not its own. Once finalized (it survived TaskletExit) its frames
 * are no longer visited: what they use stays reachable, never cleared. */
static int frames_visible(cb_tasklet *t)
{
    return cb_tasklet_needs_unwind(t) && t->mgr->current != t && !t->mgr->switching &&
           !PyObject_GC_IsFinalized((PyObject *)t);
}

static int tasklet_traverse(PyObject *self, visitproc visit, void *arg)
{
    cb_tasklet *t = (cb_tasklet *)self;

    /* Not Py_VISIT(Py_TYPE(self)): the type is static, and CPython's
     * subtype_traverse visits a heap subclass (visiting it here too counted
     * it twice). */
    Py_VISIT(t->callable);
    Py_VISIT(t->args);
    Py_VISIT(t->kwargs);
    Py_VISIT(t->parent);
    Py_VISIT(t->tempval);
    Py_VISIT(t->pending_exc);
    Py_VISIT(t->child_exc);
    Py_VISIT(t->exception_handler);
    Py_VISIT(t->context_manager_getter);
    if (t->run) {
        Py_VISIT(t->run->st.context);
        if (!t->is_main)
            Py_VISIT(t->run->exc_state.exc_value);
        if (frames_visible(t)) {
            cb_gcmark_tasklet(t);
            return cb_pystate_traverse(&t->run->st, &t->run->gc_call, visit, arg);
        }
    }
    return 0;
}

static int tasklet_clear(PyObject *self)
{
    cb_tasklet *t = (cb_tasklet *)self;

    Py_CLEAR(t->callable);
    Py_CLEAR(t->args);
    Py_CLEAR(t->kwargs);
    Py_CLEAR(t->pending_exc);
    Py_CLEAR(t->child_exc);
    Py_CLEAR(t->exception_handler);
    Py_CLEAR(t->context_manager_getter);
    /* A tasklet with live frames still needs what it would resume with. */
    if (!t->run) {
        Py_CLEAR(t->parent);
        Py_CLEAR(t->tempval);
    }
    return 0;
}

void cb_tasklet_leak_if_unowned(cb_tasklet *t, Py_ssize_t refs)
{
    if (!cb_tasklet_needs_unwind(t) || Py_REFCNT(t) > refs)
        return; /* dead, or queued / waiting / referenced: it goes on */
    /* It caught TaskletExit and went on waiting: its frames stay alive, so
     * the object and its stack are kept for ever (and reachable, so the
     * collector never clears what its frames use). */
    t->leaked = 1;
    Py_INCREF(t);
    PySys_WriteStderr("carbon: tasklet %s survived TaskletExit after its last "
                      "reference was dropped; it is leaked\n",
                      t->method_name ? PyUnicode_AsUTF8(t->method_name) : "?");
    PyErr_Clear();
}

/* A subclass's __del__, if it defines one (not our own slot wrapper). */
static void call_subclass_del(PyObject *self)
{
    PyObject *mro = Py_TYPE(self)->tp_mro;
    PyObject *del = NULL, *r;

    if (Py_TYPE(self) == &cb_TaskletType || !mro)
        return;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *k = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (k == &cb_TaskletType)
            break;
        del = k->tp_dict ? PyDict_GetItemString(k->tp_dict, "__del__") : NULL; /* borrowed */
        if (del)
            break;
    }
    if (!del)
        return;
    Py_INCREF(del);
    r = PyObject_CallOneArg(del, self);
    if (r)
        Py_DECREF(r);
    else
        PyErr_WriteUnraisable(del);
    Py_DECREF(del);
}

/* The last reference to a suspended tasklet is gone (or the collector found
 * it in a cycle): it is killed, on its own thread (or later, there, if the
 * reference was dropped on another one). A subclass's __del__ runs first. */
static void tasklet_finalize(PyObject *self)
{
    cb_tasklet *t = (cb_tasklet *)self;
    cb_manager *m;
    PyObject *saved;

    saved = cb_err_fetch();
    call_subclass_del(self);
    m = t->mgr;
    if (!cb_tasklet_needs_unwind(t) || t->kill_deferred) {
        cb_err_restore(saved);
        return;
    }
    if (m != cb_manager_peek() || cb_switch_trapped(m) || m->switching || cb_gc_in_tasklet(m)) {
        /* Resurrected by the deferred-kill list until its thread kills it. */
        t->kill_deferred = 1;
        t->kill_next = m->deferred_kills;
        m->deferred_kills = (cb_tasklet *)Py_NewRef(self);
        if (m != cb_manager_peek() && m->wakeup)
            m->wakeup(m, m->hook_arg);
    } else {
        cb_gcmark_release(t);
        if (cb_kill_alone(m, t) < 0)
            PyErr_WriteUnraisable(self);
        cb_tasklet_leak_if_unowned(t, 1); /* revived by the dealloc: 1 */
    }
    cb_err_restore(saved);
}

static void tasklet_dealloc(PyObject *self)
{
    cb_tasklet *t = (cb_tasklet *)self;

    if (cb_tasklet_needs_unwind(t)) {
        if (PyObject_CallFinalizerFromDealloc(self) < 0)
            return; /* resurrected */
        if (cb_tasklet_needs_unwind(t)) {
            /* Not killed (its finalizer could not run here): kept. */
            Py_SET_REFCNT(self, 0);
            cb_tasklet_leak_if_unowned(t, 0);
            return;
        }
    }
    PyObject_GC_UnTrack(self);
    cb_gcmark_release(t);
    if (t->weakreflist)
        PyObject_ClearWeakRefs(self);
    unregister(t);
    if (t->is_main)
        cb_forget_orphan_main(t);
    tasklet_clear(self);
    Py_CLEAR(t->parent);
    Py_CLEAR(t->tempval);
    Py_CLEAR(t->method_name);
    Py_CLEAR(t->module_name);
    Py_CLEAR(t->file_name);
    Py_CLEAR(t->name);
    Py_CLEAR(t->qualname);
    Py_CLEAR(t->context_text);
    Py_CLEAR(t->parent_callsite);
    if (t->initialised)
        cb_g.tasklets--;
    Py_TYPE(self)->tp_free(self);
}

/* ---- binding ------------------------------------------------------------------------------ */

static PyObject *attr_str(PyObject *o, const char *name, const char *fallback)
{
    PyObject *v = PyObject_GetAttrString(o, name);
    PyObject *s;

    if (!v) {
        PyErr_Clear();
        return PyUnicode_FromString(fallback);
    }
    s = PyObject_Str(v);
    Py_DECREF(v);
    if (!s) {
        PyErr_Clear();
        return PyUnicode_FromString(fallback);
    }
    return s;
}

/* A plain function's trace data, read straight from it: bind() is on the
 * spawn path, and attribute lookups by name were most of a spawn's cost. */
static void record_function_trace_data(cb_tasklet *t, PyFunctionObject *f)
{
    PyCodeObject *code = (PyCodeObject *)f->func_code;
    PyObject *module = f->func_module;

    Py_XSETREF(t->method_name, Py_NewRef(f->func_name));
    Py_XSETREF(t->qualname, Py_XNewRef(f->func_qualname));
    if (module && PyUnicode_CheckExact(module))
        Py_XSETREF(t->module_name, Py_NewRef(module));
    else
        Py_XSETREF(t->module_name, attr_str((PyObject *)f, "__module__", "unknown_module"));
    Py_XSETREF(t->file_name, Py_NewRef(code->co_filename));
    t->line_number = code->co_firstlineno;
}

/* method_name, module_name, file_name and line_number from the callable. */
static void record_trace_data(cb_tasklet *t, PyObject *callable)
{
    PyObject *code;

    PyObject *file = NULL, *line = NULL;

    if (PyFunction_Check(callable)) {
        record_function_trace_data(t, (PyFunctionObject *)callable);
        return;
    }
    code = PyObject_GetAttrString(callable, "__code__");
    if (!code)
        PyErr_Clear(); /* builtins and other callables have none */

    Py_XSETREF(t->method_name, attr_str(callable, "__name__", "unknown_method"));
    Py_XSETREF(t->qualname, PyObject_GetAttrString(callable, "__qualname__"));
    if (!t->qualname || !PyUnicode_Check(t->qualname)) {
        PyErr_Clear();
        Py_CLEAR(t->qualname);
    }
    Py_XSETREF(t->module_name, attr_str(callable, "__module__", "unknown_module"));
    if (code) {
        file = PyObject_GetAttrString(code, "co_filename");
        line = PyObject_GetAttrString(code, "co_firstlineno");
        Py_DECREF(code);
    }
    PyErr_Clear();
    if (file && PyUnicode_Check(file))
        Py_XSETREF(t->file_name, Py_NewRef(file));
    else
        Py_XSETREF(t->file_name, PyUnicode_FromString("unknown_file"));
    t->line_number = line && PyLong_Check(line) ? (int)PyLong_AsLong(line) : 0;
    Py_XDECREF(file);
    Py_XDECREF(line);
    PyErr_Clear();
}

static PyObject *wrap_dont_raise(PyObject *callable)
{
    return PyObject_CallOneArg((PyObject *)&cb_CallableWrapperType, callable);
}

static int do_bind(cb_tasklet *t, PyObject *callable, PyObject *args, PyObject *kwargs)
{
    if ((callable || args || kwargs) && t->started && t->alive) {
        PyErr_SetString(PyExc_RuntimeError, "cannot bind a tasklet that has started; kill it first");
        return -1;
    }
    if (callable) {
        PyObject *bound;
        if (!PyCallable_Check(callable)) {
            PyErr_SetString(PyExc_TypeError, "parameter must be callable");
            return -1;
        }
        record_trace_data(t, callable);
        bound = t->dont_raise ? wrap_dont_raise(callable) : Py_NewRef(callable);
        if (!bound)
            return -1;
        Py_XSETREF(t->callable, bound);
    }
    if (args || kwargs) {
        Py_XSETREF(t->args, args && args != Py_None ? Py_NewRef(args) : PyTuple_New(0));
        Py_XSETREF(t->kwargs, kwargs && kwargs != Py_None ? Py_NewRef(kwargs) : NULL);
        if (!t->args)
            return -1;
        t->alive = 1;
        t->args_bound = 1;
        if (!t->node.next)
            t->paused = 1;
    }
    t->times_switched_to = 0;
    return 0;
}

/* Before bind(): a started tasklet that is paused (alive, neither queued nor
 * blocked nor current) is unwound: TaskletExit is raised at its suspension
 * point and it runs alone until it ends, so its finally blocks and context
 * managers run and its stack is released. Stackless drops such a tasklet's
 * frames instead; here they live on its C stack and must unwind. */
static int unwind_for_bind(cb_tasklet *t)
{
    if (t->mgr && t == t->mgr->current) {
        PyErr_SetString(PyExc_RuntimeError, "cannot unbind current tasklet");
        return -1;
    }
    if (t->is_main) {
        PyErr_SetString(PyExc_RuntimeError, "can't unbind the main tasklet");
        return -1;
    }
    if (scheduled(t)) {
        PyErr_SetString(PyExc_RuntimeError, "cannot unbind scheduled tasklet");
        return -1;
    }
    if (t->blocked || t->chan) {
        PyErr_SetString(PyExc_RuntimeError, "cannot unbind a blocked tasklet");
        return -1;
    }
    if (!cb_tasklet_needs_unwind(t))
        return 0;
    if (cb_check_switch_allowed(t->mgr) < 0 || cb_kill_alone(t->mgr, t) < 0)
        return -1;
    if (t->alive) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot unbind the tasklet: it caught TaskletExit and went on");
        return -1;
    }
    return 0;
}

/* bind(None) */
static int unbind(cb_tasklet *t)
{
    if (unwind_for_bind(t) < 0)
        return -1;
    if (t->started && t->alive) {
        PyErr_SetString(PyExc_RuntimeError, "cannot unbind a tasklet that has started; kill it first");
        return -1;
    }
    Py_CLEAR(t->callable);
    Py_CLEAR(t->args);
    Py_CLEAR(t->kwargs);
    Py_CLEAR(t->tempval);
    t->alive = 0;
    t->paused = 0;
    t->times_switched_to = 0;
    return 0;
}

/* bind(func=None, args=None, kwargs=None); `callable` is the reference's
 * name for the first keyword. */
static PyObject *tasklet_bind(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"callable", "args", "kwargs", NULL};
    cb_tasklet *t = (cb_tasklet *)self;
    PyObject *callable = NULL, *cargs = NULL, *ckwargs = NULL;
    PyObject *func = NULL;

    if (!cb_tasklet_valid(t))
        return NULL;
    if (kwds && (func = PyDict_GetItemString(kwds, "func")) != NULL) {
        /* Stackless's keyword: take it out before parsing the rest. */
        if (PyDict_GetItemString(kwds, "callable") || PyTuple_GET_SIZE(args) > 0) {
            PyErr_SetString(PyExc_TypeError, "bind(): the callable was given twice");
            return NULL;
        }
        kwds = PyDict_Copy(kwds);
        if (!kwds)
            return NULL;
        Py_INCREF(func);
        if (PyDict_DelItemString(kwds, "func") < 0 ||
            PyDict_SetItemString(kwds, "callable", func) < 0) {
            Py_DECREF(func);
            Py_DECREF(kwds);
            return NULL;
        }
        Py_DECREF(func);
    } else {
        Py_XINCREF(kwds);
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:bind", kwlist, &callable, &cargs, &ckwargs)) {
        Py_XDECREF(kwds);
        return NULL;
    }
    /* The parsed objects stay referenced by args or by the caller's kwds. */
    Py_XDECREF(kwds);
    if (!cb_tasklet_owned(t, "bind"))
        return NULL;
    if (cargs == Py_None)
        cargs = NULL;
    if (ckwargs == Py_None)
        ckwargs = NULL;
    if (callable == Py_None && !cargs && !ckwargs) {
        if (unbind(t) < 0)
            return NULL;
        return Py_NewRef(self);
    }
    if (callable == Py_None)
        callable = NULL; /* keep the bound callable, bind new arguments */
    /* A paused started tasklet is rebound (Stackless): unwound first. */
    if ((callable || cargs || ckwargs) && t->started && t->alive && !t->is_main &&
        unwind_for_bind(t) < 0)
        return NULL;
    /* A non-tuple args or non-dict kwargs is reported when the tasklet starts. */
    if (do_bind(t, callable, cargs, ckwargs) < 0)
        return NULL;
    return Py_NewRef(self);
}

static PyObject *tasklet_setup(PyObject *self, PyObject *args, PyObject *kwds)
{
    cb_tasklet *t = (cb_tasklet *)self;

    if (!cb_tasklet_valid(t))
        return NULL;
    if (!t->callable) {
        PyErr_SetString(PyExc_RuntimeError,
                        "This tasklet must be bound to a callable before you can call setup. "
                        "Please call bind first.");
        return NULL;
    }
    if (!cb_tasklet_owned(t, "setup"))
        return NULL;
    if (t->alive) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Failed to setup tasklet: it is already set up (alive); a tasklet is "
                        "set up once, unbind it with bind(None) first");
        return NULL;
    }
    if (do_bind(t, NULL, args, kwds && PyDict_GET_SIZE(kwds) ? kwds : NULL) < 0)
        return NULL;
    if (!t->node.next)
        cb_queue_append(t->mgr, t);
    return Py_NewRef(self);
}

/* ---- queue and control methods --------------------------------------------------------- */

static PyObject *tasklet_insert(PyObject *self, PyObject *unused)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)unused;
    if (!cb_tasklet_valid(t))
        return NULL;
    if (t->blocked) {
        PyErr_SetString(PyExc_RuntimeError, "Failed to insert tasklet: Cannot insert blocked tasklet");
        return NULL;
    }
    if (!t->mgr || (!t->alive && !t->is_main)) {
        PyErr_SetString(PyExc_RuntimeError, "Failed to insert tasklet: Cannot insert dead tasklet");
        return NULL;
    }
    cb_make_runnable(t, 0);
    t->paused = 0;
    return Py_NewRef(self);
}

static PyObject *tasklet_remove(PyObject *self, PyObject *unused)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)unused;
    if (!cb_tasklet_valid(t))
        return NULL;
    if (!t->is_main && t->node.next) {
        cb_queue_remove(t->mgr, t); /* the caller holds a reference */
        t->paused = 1;
    }
    return Py_NewRef(self);
}

static PyObject *tasklet_run(PyObject *self, PyObject *unused)
{
    cb_tasklet *t = (cb_tasklet *)self;
    cb_manager *m = cb_manager_get();

    (void)unused;
    if (!m || !cb_tasklet_valid(t))
        return NULL;
    if (t->mgr != m)
        Py_RETURN_NONE; /* another thread's tasklet: silently nothing */
    if (!t->alive && !t->is_main) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot run tasklet that is not alive (dead)");
        return NULL;
    }
    if (t->blocked) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot run tasklet that is blocked");
        return NULL;
    }
    if (cb_run_tasklet(m, t) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tasklet_switch(PyObject *self, PyObject *unused)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)unused;
    if (!cb_tasklet_valid(t) || !cb_tasklet_owned(t, "switch"))
        return NULL;
    if (!t->alive && !t->is_main) {
        PyErr_SetString(PyExc_RuntimeError, "You cannot run an unbound(dead) tasklet");
        return NULL;
    }
    if (t->blocked) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot switch to a tasklet that is blocked");
        return NULL;
    }
    if (cb_switch_tasklet(t->mgr, t) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* throw()'s rules for a dead target and the thread check, then the throw. */
static PyObject *throw_checked(cb_tasklet *t, PyObject *exc, PyObject *val, PyObject *tb,
                               int pending)
{
    PyObject *instance;

    if (!cb_tasklet_owned(t, "throw"))
        return NULL;
    if (!t->alive && !t->is_main) {
        if (PyType_Check(exc) && PyType_IsSubtype((PyTypeObject *)exc, (PyTypeObject *)cb_TaskletExit))
            Py_RETURN_NONE;
        PyErr_SetString(PyExc_RuntimeError, pending ? "You cannot throw to a dead tasklet."
                                                    : "You cannot throw to a dead tasklet");
        return NULL;
    }
    instance = cb_make_exception(exc, val);
    if (!instance)
        return NULL;
    if (tb && tb != Py_None && PyException_SetTraceback(instance, tb) < 0) {
        Py_DECREF(instance);
        return NULL;
    }
    if (cb_throw(t, instance, pending) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tasklet_throw(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"exc", "val", "tb", "pending", NULL};
    cb_tasklet *t = (cb_tasklet *)self;
    PyObject *exc = NULL, *val = Py_None, *tb = Py_None, *pending = Py_False;
    int is_pending;

    if (!cb_tasklet_valid(t))
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOOO:throw", kwlist, &exc, &val, &tb, &pending)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_RuntimeError, "Failed to parse arguments");
        return NULL;
    }
    if (!exc || exc == Py_None) {
        PyErr_SetString(PyExc_TypeError, "missing required argument 'exc' (pos 1)");
        return NULL;
    }
    if (PyExceptionInstance_Check(exc) && val != Py_None) {
        PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
        return NULL;
    }
    if (tb != Py_None && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
        return NULL;
    }
    if (!cb_is_throwable(exc)) {
        PyErr_SetString(PyExc_TypeError, "exceptions must be classes, or instances");
        return NULL;
    }
    is_pending = PyObject_IsTrue(pending);
    if (is_pending < 0)
        return NULL;
    return throw_checked(t, exc, val, tb, is_pending);
}

static PyObject *tasklet_raise_exception(PyObject *self, PyObject *args)
{
    cb_tasklet *t = (cb_tasklet *)self;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *exc, *rest, *r;

    if (!cb_tasklet_valid(t))
        return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_RuntimeError, "Failed to parse arguments");
        return NULL;
    }
    exc = PyTuple_GET_ITEM(args, 0);
    if (!cb_is_throwable(exc)) {
        PyErr_SetString(PyExc_TypeError, "exceptions must be classes, or instances");
        return NULL;
    }
    if (n > 1 && PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
        return NULL;
    }
    rest = PyTuple_GetSlice(args, 1, n);
    if (!rest)
        return NULL;
    r = throw_checked(t, exc, n > 1 ? rest : Py_None, NULL, 0);
    Py_DECREF(rest);
    return r;
}

static PyObject *tasklet_kill(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"pending", NULL};
    cb_tasklet *t = (cb_tasklet *)self;
    PyObject *pending = Py_False;
    int is_pending;

    if (!cb_tasklet_valid(t))
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:kill", kwlist, &pending))
        return NULL;
    if (!cb_tasklet_owned(t, "kill"))
        return NULL;
    is_pending = PyObject_IsTrue(pending);
    if (is_pending < 0)
        return NULL;
    if (cb_kill(t, is_pending) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *tasklet_set_context(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyErr_SetString(PyExc_RuntimeError, "Tasklet_setcontext Not yet implemented");
    return NULL;
}

static PyObject *tasklet_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    return tasklet_setup(self, args, kwds);
}

/* ---- attributes ------------------------------------------------------------------------------ */

#define FLAG_GETTER(name, expr)                                        \
    static PyObject *get_##name(PyObject *self, void *c)              \
    {                                                                  \
        cb_tasklet *t = (cb_tasklet *)self;                            \
        (void)c;                                                       \
        if (!cb_tasklet_valid(t))                                      \
            return NULL;                                               \
        return PyBool_FromLong(expr);                                  \
    }

FLAG_GETTER(alive, t->is_main ? t->mgr != NULL : t->alive)
FLAG_GETTER(blocked, t->blocked)
FLAG_GETTER(scheduled, scheduled(t))
FLAG_GETTER(paused, t->paused)
FLAG_GETTER(block_trap, t->block_trap)
FLAG_GETTER(is_current, t->mgr && t->mgr == cb_manager_peek() && t->mgr->current == t)
FLAG_GETTER(is_main, t->is_main)
FLAG_GETTER(highlighted, t->highlighted)
FLAG_GETTER(dont_raise, t->dont_raise)
FLAG_GETTER(atomic, t->atomic)

/* ---- preemption and attribution (preempt.c) ---- */

static PyObject *get_name(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;
    char buf[256];

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    if (t->name)
        return Py_NewRef(t->name);
    cb_tasklet_label(t, buf, sizeof buf);
    return PyUnicode_FromString(buf);
}

static int set_name(PyObject *self, PyObject *v, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return -1;
    if (v && v != Py_None && !PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "tasklet.name must be a str or None, not %.100s",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    Py_XSETREF(t->name, v && v != Py_None ? Py_NewRef(v) : NULL);
    return 0;
}

static PyObject *get_tick_ns(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    return PyLong_FromLongLong(cb_preempt_tick_ns(t));
}

/* METH_FASTCALL: an uninitialised subclass is reported before the
 * arguments are looked at, as by every other method. */
static PyObject *tasklet_set_atomic(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    cb_tasklet *t = (cb_tasklet *)self;
    int old, v;

    if (!cb_tasklet_valid(t))
        return NULL;
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "set_atomic() takes exactly one argument (%zd given)", nargs);
        return NULL;
    }
    v = PyObject_IsTrue(args[0]);
    if (v < 0)
        return NULL;
    old = t->atomic;
    t->atomic = (unsigned char)v;
    /* A preemption the flag held back happens now. */
    if (old && !v && t->mgr && t->mgr->current == t && t->mgr == cb_manager_peek() &&
        cb_preempt_atomic_cleared(t->mgr) < 0)
        return NULL;
    return PyBool_FromLong(old);
}

static int set_block_trap(PyObject *self, PyObject *v, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return -1;
    if (!v || !PyBool_Check(v)) {
        PyErr_SetString(PyExc_RuntimeError, "Blocktrap expects a boolean");
        return -1;
    }
    t->block_trap = v == Py_True;
    return 0;
}

static int set_highlighted(PyObject *self, PyObject *v, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return -1;
    if (!v || !PyBool_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "highlighted must be either a True or False value");
        return -1;
    }
    t->highlighted = v == Py_True;
    return 0;
}

static int set_dont_raise(PyObject *self, PyObject *v, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return -1;
    if (!v || !PyBool_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "dont_raise must be either a True or False value");
        return -1;
    }
    if (t->args_bound) {
        PyErr_SetString(PyExc_RuntimeError, "dont_raise cannot be altered after the Tasklet has been bound");
        return -1;
    }
    t->dont_raise = v == Py_True;
    return 0;
}

static PyObject *get_thread_id(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    return PyLong_FromLong(t->thread_id);
}

static PyObject *tasklet_or_none(cb_tasklet *t)
{
    return Py_NewRef(t ? (PyObject *)t : Py_None);
}

static PyObject *get_next(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    if (!t->mgr || !scheduled(t))
        Py_RETURN_NONE;
    return tasklet_or_none(cb_queue_next_of(t->mgr, t));
}

static PyObject *get_prev(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    if (!t->mgr || !scheduled(t))
        Py_RETURN_NONE;
    return tasklet_or_none(cb_queue_prev_of(t->mgr, t));
}

static PyObject *get_frame(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    return cb_tasklet_frame(t);
}

static PyObject *str_or_empty(PyObject *s)
{
    return s ? Py_NewRef(s) : PyUnicode_FromString("");
}

#define STR_GETTER(name, field)                             \
    static PyObject *get_##name(PyObject *self, void *c)   \
    {                                                       \
        cb_tasklet *t = (cb_tasklet *)self;                 \
        (void)c;                                            \
        if (!cb_tasklet_valid(t))                           \
            return NULL;                                    \
        return str_or_empty(t->field);                      \
    }

STR_GETTER(method_name, method_name)
STR_GETTER(module_name, module_name)
STR_GETTER(file_name, file_name)
STR_GETTER(context, context_text)
STR_GETTER(parent_callsite, parent_callsite)

static int set_text(cb_tasklet *t, PyObject **field, PyObject *v)
{
    if (!cb_tasklet_valid(t))
        return -1;
    if (!v || !PyUnicode_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "value must be a string");
        return -1;
    }
    Py_XSETREF(*field, Py_NewRef(v));
    return 0;
}

static int set_context(PyObject *self, PyObject *v, void *c)
{
    (void)c;
    return set_text((cb_tasklet *)self, &((cb_tasklet *)self)->context_text, v);
}

static int set_parent_callsite(PyObject *self, PyObject *v, void *c)
{
    (void)c;
    return set_text((cb_tasklet *)self, &((cb_tasklet *)self)->parent_callsite, v);
}

#define INT_GETTER(name, expr)                               \
    static PyObject *get_##name(PyObject *self, void *c)    \
    {                                                        \
        cb_tasklet *t = (cb_tasklet *)self;                  \
        (void)c;                                             \
        if (!cb_tasklet_valid(t))                            \
            return NULL;                                     \
        return PyLong_FromLongLong((long long)(expr));       \
    }

INT_GETTER(line_number, t->line_number)
INT_GETTER(start_time, t->start_time)
INT_GETTER(end_time, t->end_time)
INT_GETTER(times_switched_to, t->times_switched_to)

static PyObject *get_run_time(PyObject *self, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    if (!cb_tasklet_valid(t))
        return NULL;
    return PyFloat_FromDouble(t->run_time);
}

static int set_run_time(PyObject *self, PyObject *v, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;
    double d;

    (void)c;
    if (!cb_tasklet_valid(t))
        return -1;
    if (!v) {
        PyErr_SetString(PyExc_TypeError, "cannot delete runTime");
        return -1;
    }
    d = PyFloat_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    t->run_time = d;
    return 0;
}

static PyObject *get_object(PyObject *self, PyObject *field)
{
    if (!cb_tasklet_valid((cb_tasklet *)self))
        return NULL;
    return Py_NewRef(field ? field : Py_None);
}

static int set_callable_field(cb_tasklet *t, PyObject **field, PyObject *v, const char *msg)
{
    if (!cb_tasklet_valid(t))
        return -1;
    if (!v || (v != Py_None && !PyCallable_Check(v))) {
        PyErr_SetString(PyExc_TypeError, msg);
        return -1;
    }
    Py_XSETREF(*field, v == Py_None ? NULL : Py_NewRef(v));
    return 0;
}

static PyObject *get_exception_handler(PyObject *self, void *c)
{
    (void)c;
    return get_object(self, ((cb_tasklet *)self)->exception_handler);
}

static int set_exception_handler(PyObject *self, PyObject *v, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    return set_callable_field(t, &t->exception_handler, v, "exception_handler must be a callable");
}

static PyObject *get_context_manager_getter(PyObject *self, void *c)
{
    (void)c;
    return get_object(self, ((cb_tasklet *)self)->context_manager_getter);
}

static int set_context_manager_getter(PyObject *self, PyObject *v, void *c)
{
    cb_tasklet *t = (cb_tasklet *)self;

    (void)c;
    return set_callable_field(t, &t->context_manager_getter, v,
                              "context_manager_fun must be a callable that returns a context "
                              "manager object");
}

/* "<Tasklet alive=%d blocked=%d paused=%d scheduled=%d context=%s>" */
PyObject *cb_tasklet_repr_state(cb_tasklet *t)
{
    PyObject *text = t->context_text ? Py_NewRef(t->context_text) : PyUnicode_FromString("");
    PyObject *r;

    if (!text)
        return NULL;
    r = PyUnicode_FromFormat("<Tasklet alive=%d blocked=%d paused=%d scheduled=%d context=%U>",
                             t->is_main ? 1 : (int)t->alive, (int)t->blocked, (int)t->paused,
                             scheduled(t), text);
    Py_DECREF(text);
    return r;
}

/* bind_thread(thread_id=None): a tasklet that holds no C state (never
 * started, unbound or ended) moves to the thread `thread_id` (default: the
 * calling one), which must use the scheduler; a queued one moves to that
 * thread's queue. */
static PyObject *tasklet_bind_thread(PyObject *self, PyObject *args)
{
    cb_tasklet *t = (cb_tasklet *)self;
    PyObject *id_obj = Py_None;
    cb_manager *to = NULL;

    if (!cb_tasklet_valid(t))
        return NULL;
    if (!PyArg_ParseTuple(args, "|O:bind_thread", &id_obj))
        return NULL;
    if (t->is_main) {
        PyErr_SetString(PyExc_RuntimeError, "cannot rebind a main tasklet to another thread");
        return NULL;
    }
    if (t->started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot bind the tasklet to another thread: it holds C state (its own "
                        "C stack); only a tasklet that never ran may move");
        return NULL;
    }
    if (id_obj == Py_None) {
        to = cb_manager_get();
        if (!to)
            return NULL;
    } else {
        unsigned long id;
        if (!PyLong_Check(id_obj)) {
            PyErr_SetString(PyExc_TypeError, "bind_thread(): thread_id must be an int");
            return NULL;
        }
        id = PyLong_AsUnsignedLong(id_obj);
        if (id == (unsigned long)-1 && PyErr_Occurred())
            PyErr_Clear();
        else
            for (PyThreadState *ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); ts;
                 ts = PyThreadState_Next(ts))
                if (ts->thread_id == id) {
                    to = cb_manager_of(ts);
                    if (!to) {
                        PyErr_Format(PyExc_RuntimeError,
                                     "bind_thread(): thread %lu does not use the scheduler yet",
                                     id);
                        return NULL;
                    }
                    break;
                }
        if (!to) {
            PyErr_SetString(PyExc_ValueError, "bind_thread(): no thread with that id");
            return NULL;
        }
    }
    if (t->mgr != to) {
        /* Queued (never started): it moves to its new thread's queue. */
        int queued = t->node.next != NULL;

        if (queued) {
            cb_queue_unlink(t->mgr, t);
            Py_DECREF(t); /* the queue's; the caller holds one */
        }
        unregister(t);
        t->mgr = to;
        t->thread_id = to->thread_id;
        t->mgr_prev = NULL;
        t->mgr_next = to->all;
        if (to->all)
            to->all->mgr_prev = t;
        to->all = t;
        Py_CLEAR(t->parent);
        if (queued)
            cb_make_runnable(t, 0); /* wakes that thread */
    }
    Py_RETURN_NONE;
}

/* Every method checks that the base __init__ ran before it looks at its
 * arguments: an uninitialised subclass gets that RuntimeError, not a
 * TypeError about the arguments. */
#define NOARGS_CHECKED(wrapper, impl, pyname)                                             \
    static PyObject *wrapper(PyObject *self, PyObject *const *args, Py_ssize_t nargs)   \
    {                                                                                   \
        (void)args;                                                                     \
        if (!cb_tasklet_valid((cb_tasklet *)self))                                      \
            return NULL;                                                                \
        if (nargs) {                                                                    \
            PyErr_Format(PyExc_TypeError, pyname "() takes no arguments (%zd given)",   \
                         nargs);                                                        \
            return NULL;                                                                \
        }                                                                               \
        return impl(self, NULL);                                                        \
    }

NOARGS_CHECKED(tasklet_insert_m, tasklet_insert, "insert")
NOARGS_CHECKED(tasklet_remove_m, tasklet_remove, "remove")
NOARGS_CHECKED(tasklet_run_m, tasklet_run, "run")
NOARGS_CHECKED(tasklet_switch_m, tasklet_switch, "switch")
NOARGS_CHECKED(tasklet_set_context_m, tasklet_set_context, "set_context")

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL

static PyMethodDef tasklet_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))tasklet_bind, METH_VARARGS | METH_KEYWORDS,
     "bind(callable=None, args=None, kwargs=None) -> self"},
    {"setup", (PyCFunction)(void (*)(void))tasklet_setup, METH_VARARGS | METH_KEYWORDS,
     "setup(*args, **kwargs) -> self: bind the arguments and queue the tasklet."},
    {"insert", FASTCALL(tasklet_insert_m), "insert() -> self: append to its thread's run queue."},
    {"remove", FASTCALL(tasklet_remove_m), "remove() -> self: take it out of the run queue."},
    {"run", FASTCALL(tasklet_run_m), "run(): run the tasklet now."},
    {"set_atomic", (PyCFunction)(void (*)(void))tasklet_set_atomic, METH_FASTCALL,
     "set_atomic(flag) -> old flag: while set, the tasklet is never preempted."},
    {"switch", FASTCALL(tasklet_switch_m), "switch(): run the tasklet now, pausing the caller."},
    {"throw", (PyCFunction)(void (*)(void))tasklet_throw, METH_VARARGS | METH_KEYWORDS,
     "throw(exc, val=None, tb=None, pending=False): raise exc in the tasklet."},
    {"raise_exception", tasklet_raise_exception, METH_VARARGS,
     "raise_exception(exc_class, *args): raise exc_class(*args) in the tasklet."},
    {"kill", (PyCFunction)(void (*)(void))tasklet_kill, METH_VARARGS | METH_KEYWORDS,
     "kill(pending=False): raise TaskletExit in the tasklet."},
    {"set_context", FASTCALL(tasklet_set_context_m), "Not implemented."},
    {"bind_thread", (PyCFunction)(void (*)(void))tasklet_bind_thread, METH_VARARGS,
     "bind_thread(thread_id=None): move a tasklet that holds no C state to another thread."},
    {"__reduce__", FASTCALL(cb_tasklet_reduce), "Tasklets cannot be pickled."},
    {"__reduce_ex__", FASTCALL(cb_tasklet_reduce), "Tasklets cannot be pickled."},
    {"__setstate__", FASTCALL(cb_tasklet_reduce), "Tasklets cannot be pickled."},
    {NULL, NULL, 0, NULL},
};

#define RO(name, getter, doc) {name, getter, NULL, doc, NULL}
#define RW(name, getter, setter, doc) {name, getter, setter, doc, NULL}

static PyGetSetDef tasklet_getset[] = {
    RO("alive", get_alive, "Bound with arguments and not finished."),
    RO("blocked", get_blocked, "Waiting on a channel."),
    RO("scheduled", get_scheduled, "In the run queue (the running tasklet is)."),
    RO("paused", get_paused, "Alive but not in the run queue."),
    RW("block_trap", get_block_trap, set_block_trap, "Refuse to block on channels."),
    RO("is_current", get_is_current, "The calling thread's running tasklet."),
    RO("is_main", get_is_main, "A thread's main tasklet."),
    RO("thread_id", get_thread_id, "threading.get_ident() of the owner thread, -1 after its end."),
    RO("next", get_next, "The tasklet behind this one in the run queue."),
    RO("prev", get_prev, "The tasklet in front of this one in the run queue."),
    RO("frame", get_frame, "The tasklet's current Python frame, or None."),
    RW("tempval", cb_tasklet_get_tempval, cb_tasklet_set_tempval,
       "The value the tasklet resumes with (schedule()'s return, a channel value)."),
    RO("recursion_depth", cb_tasklet_get_recursion_depth, "Python frames on the tasklet's stack."),
    RO("nesting_level", cb_tasklet_get_nesting_level,
       "0 without C state; 1 on its own C stack, 2 while waiting in a run loop."),
    RO("restorable", cb_tasklet_get_restorable, "Holds no C state (never started, or ended)."),
    RO("method_name", get_method_name, "__name__ of the bound callable."),
    RO("module_name", get_module_name, "__module__ of the bound callable."),
    RO("file_name", get_file_name, "co_filename of the bound callable."),
    RO("line_number", get_line_number, "co_firstlineno of the bound callable."),
    RW("context", get_context, set_context, "Free text."),
    RW("parent_callsite", get_parent_callsite, set_parent_callsite, "Free text."),
    RO("startTime", get_start_time, "CLOCK_MONOTONIC ns when the callable was entered."),
    RO("endTime", get_end_time, "CLOCK_MONOTONIC ns when the callable returned."),
    RW("runTime", get_run_time, set_run_time, "Free float, not maintained by the scheduler."),
    RW("highlighted", get_highlighted, set_highlighted, "Tracing marker."),
    RW("dont_raise", get_dont_raise, set_dont_raise, "Swallow the callable's exceptions."),
    RW("context_manager_getter", get_context_manager_getter, set_context_manager_getter,
       "With dont_raise: getter(tasklet) -> context manager around the callable."),
    RW("exception_handler", get_exception_handler, set_exception_handler,
       "With dont_raise: handler(info) called for an exception."),
    RO("times_switched_to", get_times_switched_to, "Switches into this tasklet since bind."),
    RW("name", get_name, set_name, "Label used in reports (default: module.qualname of the callable)."),
    RO("atomic", get_atomic, "Never preempted (set with set_atomic or scheduler.atomic())."),
    RO("tick_ns", get_tick_ns, "Time run in its thread's current or last tick (or timed run), ns."),
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject cb_TaskletType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "scheduler.Tasklet",
    .tp_basicsize = sizeof(cb_tasklet),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "tasklet(callable=None): a microthread with its own C stack.",
    .tp_new = tasklet_new,
    .tp_init = tasklet_init,
    .tp_dealloc = tasklet_dealloc,
    .tp_traverse = tasklet_traverse,
    .tp_clear = tasklet_clear,
    .tp_finalize = tasklet_finalize,
    .tp_call = tasklet_call,
    .tp_weaklistoffset = offsetof(cb_tasklet, weakreflist),
    .tp_methods = tasklet_methods,
    .tp_getset = tasklet_getset,
};
