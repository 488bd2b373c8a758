/* Channels: synchronous transfer between tasklets, on one thread or across
 * threads (semantics sections 5 and 6).
 *
 * A transfer is done entirely under the GIL, between the channel callback
 * (the only Python code that runs before it) and the hand-over, so no other
 * thread can observe a half-done transfer. A tasklet whose blocked operation
 * was completed by its partner (xfer_done) but that gets an exception (kill,
 * throw) before it resumes raises that exception from the operation; the
 * value handed to a receiver is dropped (docs/run-order.md, as Stackless and
 * the reference do).
 */
#include "core.h"
#include "transfer.h"

static const char BLOCK_TRAP_MSG[] = "Channel cannot block on main tasklet with block_trap set true";
static const char DEADLOCK_MSG[] = "Deadlock: the last runnable tasklet cannot be blocked.";
static const char NESTED_MSG[] =
    "cannot block: this tasklet is already waiting in a blocking operation";
static const char INVALID_MSG[] =
    "Channel object is not valid. Most likely cause being __init__ not called on base type.";

static int channel_valid(cb_channel *ch)
{
    if (!ch->initialised) {
        PyErr_SetString(PyExc_RuntimeError, INVALID_MSG);
        return 0;
    }
    return 1;
}

int cb_channel_valid(cb_channel *ch)
{
    return channel_valid(ch);
}

/* ---- the waiting list ----------------------------------------------------------- */

static void update_closed(cb_channel *ch)
{
    if (ch->closing && ch->balance == 0)
        ch->closed = 1;
}

static void waiter_append(cb_channel *ch, cb_tasklet *t, int dir)
{
    Py_INCREF(t);
    t->chan = ch;
    t->chan_dir = dir;
    t->chan_next = NULL;
    t->chan_prev = ch->tail;
    if (ch->tail)
        ch->tail->chan_next = t;
    else
        ch->head = t;
    ch->tail = t;
    ch->balance += dir;
}

/* Takes t off its channel; the channel's reference passes to the caller. */
void cb_channel_unlink(cb_tasklet *t)
{
    cb_channel *ch = t->chan;

    /* A hint: the waiter after next is likely taken soon (a frame's sends
     * to 10k receivers take them in turn, each one a cold object): fetched
     * while this one and the next are served. The next one was fetched so
     * by the previous unlink. */
    if (t->chan_next && t->chan_next->chan_next) {
        __builtin_prefetch(t->chan_next->chan_next);
        __builtin_prefetch((const char *)t->chan_next->chan_next + 64);
        __builtin_prefetch((const char *)t->chan_next->chan_next + 128);
    }
    if (t->chan_prev)
        t->chan_prev->chan_next = t->chan_next;
    else
        ch->head = t->chan_next;
    if (t->chan_next)
        t->chan_next->chan_prev = t->chan_prev;
    else
        ch->tail = t->chan_prev;
    t->chan_prev = t->chan_next = NULL;
    t->chan = NULL;
    t->blocked = 0;
    ch->balance -= t->chan_dir;
    update_closed(ch);
}

/* Takes t off its channel and drops the channel's reference: the only
 * place that does (t may be freed unless the caller holds a reference). */
void cb_channel_remove(cb_tasklet *t)
{
    cb_channel_unlink(t);
    Py_DECREF(t);
}

/* After a non-blocking transfer that prefers the partner, the caller yields
 * (re-queued at the back); not while switching is trapped. */
static int yield_to_partner(cb_manager *m)
{
    if (cb_switch_trapped(m))
        return 0;
    return cb_schedule(m, 0);
}

static int main_unblocked(void *arg)
{
    return !((cb_tasklet *)arg)->blocked;
}

/* The current tasklet is on ch's list; waits until a partner completes the
 * transfer (0) or an exception ends the wait (-1; it is then off the list).
 * An exception that reaches it after the partner completed the transfer
 * wins: -1, and a received value is dropped. */
static int wait_for_partner(cb_manager *m, cb_tasklet *cur)
{
    int r;

    for (;;) {
        if (cur->is_main) {
            r = cb_run_until(m, main_unblocked, cur);
        } else {
            cb_queue_remove(m, cur); /* current holds a reference */
            cb_suspend(m);
            r = 1;
        }
        if (cur->xfer_done) {
            cur->xfer_done = 0;
            if (r < 0 || cb_raise_deferred(cur) < 0) {
                Py_CLEAR(cur->tempval);
                return -1;
            }
            return 0;
        }
        if (r < 0 || cb_raise_deferred(cur) < 0 || r == 0) {
            if (cur->chan)
                cb_channel_remove(cur);
            cur->blocked = 0;
            Py_CLEAR(cur->tempval);
            if (r == 0 && !PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, DEADLOCK_MSG);
            return -1;
        }
        /* Resumed with neither a partner nor an exception. */
        if (!cur->chan) {
            Py_CLEAR(cur->tempval);
            PyErr_SetString(PyExc_RuntimeError, "channel operation interrupted");
            return -1;
        }
        cur->blocked = 1;
    }
}

/* Checks that may refuse to block the current tasklet. */
static int may_block(cb_manager *m, cb_tasklet *cur)
{
    if (cur->block_trap) {
        PyErr_SetString(PyExc_RuntimeError, BLOCK_TRAP_MSG);
        return 0;
    }
    if (cb_check_switch_allowed(m) < 0)
        return 0;
    if (cur->busy) {
        /* Python code (an unraisable hook, an idle hook) running inside
         * this tasklet's own wait: a second wait would overwrite the first. */
        PyErr_SetString(PyExc_RuntimeError, NESTED_MSG);
        return 0;
    }
    if (cur->is_main && m->queued == 0 && !m->idle) {
        PyErr_SetString(PyExc_RuntimeError, DEADLOCK_MSG);
        return 0;
    }
    return 1;
}

static PyObject *deliver(PyObject *value, int is_exc)
{
    if (!is_exc)
        return value;
    PyErr_SetObject((PyObject *)Py_TYPE(value), value);
    Py_DECREF(value);
    return NULL;
}

/* ---- send and receive --------------------------------------------------------------- */

/* `value` is borrowed: the receiver gets its own new reference. */
int cb_channel_send(cb_channel *ch, PyObject *value, int is_exc)
{
    cb_manager *m = cb_manager_get();
    cb_tasklet *cur;
    int rc;

    if (!m)
        return -1;
    cur = m->current;
    if (cb_g.channel_callback)
        cb_call_channel_callback(ch, cur, 1, !(ch->balance < 0));
    if (cb_raise_deferred(cur) < 0)
        return -1;
    if (ch->balance < 0) {
        cb_tasklet *r = ch->head;
        /* schedule_all: the receiver goes to the back, the sender yields. */
        int runs_next = ch->preference == -1 && !ch->schedule_all;
        int yields = runs_next || ch->schedule_all;

        cb_channel_unlink(r); /* its reference is now ours */
        Py_INCREF(value);
        Py_XSETREF(r->tempval, value);
        r->tempval_is_exc = is_exc;
        r->xfer_done = 1;
        cb_make_runnable_from(m, r, runs_next); /* its own thread's queue */
        Py_DECREF(r);
        return yields ? yield_to_partner(m) : 0;
    }
    if (ch->closing) {
        PyErr_SetString(PyExc_ValueError, "Send operation on a closed channel");
        return -1;
    }
    if (!may_block(m, cur))
        return -1;
    Py_INCREF(value);
    Py_XSETREF(cur->tempval, value);
    cur->tempval_is_exc = is_exc;
    cur->xfer_done = 0;
    cur->blocked = 1;
    waiter_append(ch, cur, +1);
    cur->busy++;
    rc = wait_for_partner(m, cur);
    cur->busy--;
    cb_release_pending(m);
    return rc;
}

PyObject *cb_channel_receive(cb_channel *ch)
{
    cb_manager *m = cb_manager_get();
    cb_tasklet *cur;
    PyObject *value;
    int is_exc;

    if (!m)
        return NULL;
    cur = m->current;
    if (cb_g.channel_callback)
        cb_call_channel_callback(ch, cur, 0, !(ch->balance > 0));
    if (cb_raise_deferred(cur) < 0)
        return NULL;
    if (ch->balance > 0) {
        cb_tasklet *s = ch->head;
        int runs_next = ch->preference == 1 && !ch->schedule_all;
        int yields = runs_next || ch->schedule_all;

        cb_channel_unlink(s); /* its reference is now ours */
        value = s->tempval ? s->tempval : Py_NewRef(Py_None);
        is_exc = s->tempval_is_exc;
        s->tempval = NULL;
        s->xfer_done = 1;
        cb_make_runnable_from(m, s, runs_next);
        Py_DECREF(s);
        if (yields && yield_to_partner(m) < 0) {
            /* Killed or thrown at before it resumed: that wins. */
            Py_DECREF(value);
            return NULL;
        }
        return deliver(value, is_exc);
    }
    if (ch->closing) {
        PyErr_SetString(PyExc_ValueError, "receive operation on a closed channel");
        return NULL;
    }
    if (!may_block(m, cur))
        return NULL;
    cur->xfer_done = 0;
    cur->blocked = 1;
    waiter_append(ch, cur, -1);
    cur->busy++;
    if (wait_for_partner(m, cur) < 0) {
        cur->busy--;
        cb_release_pending(m);
        return NULL;
    }
    value = cur->tempval;
    cur->tempval = NULL;
    is_exc = cur->tempval_is_exc;
    cur->busy--;
    cb_release_pending(m); /* the value is ours now: Python code may run */
    if (!value)
        Py_RETURN_NONE;
    return deliver(value, is_exc);
}

/* Kills every waiting tasklet: receivers first, then senders, in list order.
 * A waiter of another thread is taken off the channel and gets a pending
 * TaskletExit on its own thread. */
int cb_channel_clear(cb_channel *ch)
{
    Py_ssize_t n = 0, i = 0;
    cb_tasklet **victims;
    cb_manager *m = cb_manager_get();

    if (!m)
        return -1;
    for (cb_tasklet *t = ch->head; t; t = t->chan_next)
        n++;
    if (n == 0)
        return 0;
    victims = PyMem_Malloc((size_t)n * sizeof *victims);
    if (!victims) {
        PyErr_NoMemory();
        return -1;
    }
    for (int dir = -1; dir <= 1; dir += 2)
        for (cb_tasklet *t = ch->head; t; t = t->chan_next)
            if (t->chan_dir == dir && i < n)
                victims[i++] = (cb_tasklet *)Py_NewRef(t);
    n = i;
    for (i = 0; i < n; i++) {
        cb_tasklet *t = victims[i];
        int rc = 0;
        if (t->chan == ch) {
            if (t->mgr == m)
                rc = cb_kill(t, 0);
            else if (t->mgr)
                rc = cb_kill_remote(t);
        }
        if (rc < 0) {
            for (; i < n; i++)
                Py_DECREF(victims[i]);
            PyMem_Free(victims);
            return -1;
        }
        Py_DECREF(t);
    }
    PyMem_Free(victims);
    return 0;
}

/* ---- Python type ---------------------------------------------------------------------- */

static PyObject *channel_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    cb_channel *ch = (cb_channel *)type->tp_alloc(type, 0);

    (void)args;
    (void)kwds;
    if (ch)
        ch->preference = -1;
    return (PyObject *)ch;
}

static int channel_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    cb_channel *ch = (cb_channel *)self;

    (void)args;
    (void)kwds;
    if (ch->initialised)
        return 0;
    ch->initialised = 1;
    ch->preference = -1;
    ch->all_next = cb_g.all_channels;
    if (cb_g.all_channels)
        cb_g.all_channels->all_prev = ch;
    cb_g.all_channels = ch;
    cb_g.channels++;
    return 0;
}

/* The waiting tasklets are the channel's own references (one each): the
 * collector sees tasklet -> its frames -> channel -> tasklet. Nothing to
 * clear: killing the tasklets (their finalizers) breaks such a cycle. */
static int channel_traverse(PyObject *self, visitproc visit, void *arg)
{
    /* No Py_VISIT(Py_TYPE(self)): the type is static, and CPython's
     * subtype_traverse visits a heap subclass itself. */
    for (cb_tasklet *t = ((cb_channel *)self)->head; t; t = t->chan_next)
        Py_VISIT((PyObject *)t);
    return 0;
}

static void channel_dealloc(PyObject *self)
{
    cb_channel *ch = (cb_channel *)self;

    PyObject_GC_UnTrack(self);
    if (ch->weakreflist)
        PyObject_ClearWeakRefs(self);
    /* Unreachable while a tasklet waits in one of its methods; a leaked
     * waiter is simply let go. */
    while (ch->head) {
        cb_tasklet *t = ch->head;
        cb_channel_remove(t); /* may free t: read ch->head again */
    }
    if (ch->initialised) {
        if (ch->all_prev)
            ch->all_prev->all_next = ch->all_next;
        else
            cb_g.all_channels = ch->all_next;
        if (ch->all_next)
            ch->all_next->all_prev = ch->all_prev;
        cb_g.channels--;
    }
    Py_TYPE(self)->tp_free(self);
}

static PyObject *channel_send(PyObject *self, PyObject *value)
{
    if (!channel_valid((cb_channel *)self))
        return NULL;
    if (cb_channel_send((cb_channel *)self, value, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *channel_receive(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (!channel_valid((cb_channel *)self))
        return NULL;
    return cb_channel_receive((cb_channel *)self);
}

int cb_is_exception_class(PyObject *o)
{
    return PyType_Check(o) && PyType_IsSubtype((PyTypeObject *)o, (PyTypeObject *)PyExc_BaseException);
}

int cb_is_throwable(PyObject *o)
{
    return o && (cb_is_exception_class(o) || PyObject_TypeCheck(o, (PyTypeObject *)PyExc_Exception));
}

/* A class whose constructor returns something else is refused here, before
 * anything is delivered. Steals `exc`. */
static PyObject *checked_exception(PyObject *exc)
{
    if (PyExceptionInstance_Check(exc))
        return exc;
    Py_DECREF(exc);
    PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    return NULL;
}

/* The exception `raise type(value)` would raise (new reference). */
PyObject *cb_make_exception(PyObject *type, PyObject *value)
{
    PyObject *exc;

    if (PyExceptionInstance_Check(type))
        return Py_NewRef(type);
    if (!value || value == Py_None) {
        exc = PyObject_CallNoArgs(type);
        return exc ? checked_exception(exc) : NULL;
    }
    if (PyObject_TypeCheck(value, (PyTypeObject *)type))
        return Py_NewRef(value);
    if (PyTuple_Check(value))
        exc = PyObject_Call(type, value, NULL);
    else
        exc = PyObject_CallOneArg(type, value);
    return exc ? checked_exception(exc) : NULL;
}

int cb_channel_send_exception(cb_channel *ch, PyObject *klass, PyObject *args)
{
    PyObject *exc;
    int rc;

    if (!klass || (!cb_is_exception_class(klass) && !PyExceptionInstance_Check(klass))) {
        PyErr_SetString(PyExc_RuntimeError, "Exception type or instance required");
        return -1;
    }
    exc = cb_make_exception(klass, args);
    if (!exc)
        return -1;
    rc = cb_channel_send(ch, exc, 1);
    Py_DECREF(exc);
    return rc;
}

static PyObject *channel_send_exception(PyObject *self, PyObject *args)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *rest, *value;
    int rc;

    if (!channel_valid((cb_channel *)self))
        return NULL;
    if (n == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Exception type required");
        return NULL;
    }
    rest = PyTuple_GetSlice(args, 1, n);
    if (!rest)
        return NULL;
    /* One argument is the exception's value (a tuple its args); several are
     * the constructor's arguments. */
    value = n == 2 ? Py_NewRef(PyTuple_GET_ITEM(args, 1)) : Py_NewRef(rest);
    if (n == 1)
        Py_SETREF(value, Py_NewRef(Py_None));
    rc = cb_channel_send_exception((cb_channel *)self, PyTuple_GET_ITEM(args, 0), value);
    Py_DECREF(value);
    Py_DECREF(rest);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

int cb_channel_send_throw(cb_channel *ch, PyObject *exc, PyObject *val, PyObject *tb)
{
    PyObject *instance;
    int rc;

    instance = cb_make_exception(exc, val);
    if (!instance)
        return -1;
    if (tb && tb != Py_None && PyException_SetTraceback(instance, tb) < 0) {
        Py_DECREF(instance);
        return -1;
    }
    rc = cb_channel_send(ch, instance, 1);
    Py_DECREF(instance);
    return rc;
}

static PyObject *channel_send_throw(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"exc", "val", "tb", NULL};
    PyObject *exc = NULL, *val = Py_None, *tb = Py_None;

    if (!channel_valid((cb_channel *)self))
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:send_throw", kwlist, &exc, &val, &tb))
        return NULL;
    if (!exc) {
        PyErr_SetString(PyExc_TypeError,
                        "Channel.send_throw() missing required argument 'exc' (pos 1)");
        return NULL;
    }
    if (!cb_is_exception_class(exc) && !PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_TypeError,
                        "Channel.send_throw() argument 'exc' (pos 1) must be an Exception "
                        "type or instance");
        return NULL;
    }
    if (tb != Py_None && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError,
                        "Channel.send_throw() argument 'tb' (pos 3) must be a traceback or None");
        return NULL;
    }
    if (cb_channel_send_throw((cb_channel *)self, exc, val, tb) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *channel_clear(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (!channel_valid((cb_channel *)self) || cb_channel_clear((cb_channel *)self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *channel_close(PyObject *self, PyObject *unused)
{
    cb_channel *ch = (cb_channel *)self;

    (void)unused;
    if (!channel_valid(ch))
        return NULL;
    ch->closing = 1;
    update_closed(ch);
    Py_RETURN_NONE;
}

static PyObject *channel_open(PyObject *self, PyObject *unused)
{
    cb_channel *ch = (cb_channel *)self;

    (void)unused;
    if (!channel_valid(ch))
        return NULL;
    ch->closing = 0;
    ch->closed = 0;
    Py_RETURN_NONE;
}

static PyObject *channel_iter(PyObject *self)
{
    if (!channel_valid((cb_channel *)self))
        return NULL;
    return Py_NewRef(self);
}

static PyObject *call_recorded(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyCFunction meth, const void *caller,
                               PyObject *(*impl)(PyObject *, PyObject *const *, Py_ssize_t));

static PyObject *channel_next(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    cb_channel *ch = (cb_channel *)self;

    (void)args;
    (void)nargs;
    if (!channel_valid(ch))
        return NULL;
    if (ch->closed) {
        PyErr_SetString(PyExc_StopIteration, "Channel is closed");
        return NULL;
    }
    return cb_channel_receive(ch);
}

/* Recorded too (args NULL), with the address it returns to (the eval
 * loop's FOR_ITER, or C code such as next()): a tasklet blocked in
 * `for x in ch` is collectable with the channel on its frame's stack
 * (gcframes.c). */
static PyObject *channel_iternext(PyObject *self)
{
    return call_recorded(self, NULL, 0, NULL, __builtin_return_address(0), channel_next);
}

static PyObject *get_preference(PyObject *self, void *c)
{
    (void)c;
    if (!channel_valid((cb_channel *)self))
        return NULL;
    return PyLong_FromLong(((cb_channel *)self)->preference);
}

static int set_preference(PyObject *self, PyObject *value, void *c)
{
    cb_channel *ch = (cb_channel *)self;
    long v;

    (void)c;
    if (!channel_valid(ch))
        return -1;
    if (!value) {
        PyErr_SetString(PyExc_TypeError, "Cannot delete the first attribute");
        return -1;
    }
    if (!PyLong_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "The first attribute value must be a number");
        return -1;
    }
    v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0; /* out of range: ignored */
    }
    if (v >= -1 && v <= 1)
        ch->preference = (int)v;
    return 0;
}

static PyObject *get_balance(PyObject *self, void *c)
{
    (void)c;
    if (!channel_valid((cb_channel *)self))
        return NULL;
    return PyLong_FromLong(((cb_channel *)self)->balance);
}

static PyObject *get_queue(PyObject *self, void *c)
{
    cb_channel *ch = (cb_channel *)self;

    (void)c;
    if (!channel_valid(ch))
        return NULL;
    if (!ch->head)
        Py_RETURN_NONE;
    return Py_NewRef((PyObject *)ch->head);
}

static PyObject *get_closing(PyObject *self, void *c)
{
    (void)c;
    if (!channel_valid((cb_channel *)self))
        return NULL;
    return PyBool_FromLong(((cb_channel *)self)->closing);
}

static PyObject *get_closed(PyObject *self, void *c)
{
    (void)c;
    if (!channel_valid((cb_channel *)self))
        return NULL;
    return PyBool_FromLong(((cb_channel *)self)->closed);
}

/* Every method checks that the base __init__ ran before it looks at its
 * arguments: an uninitialised subclass gets that RuntimeError, not a
 * TypeError about the arguments. */
#define ARGS_CHECKED(wrapper, impl, pyname, n)                                          \
    static PyObject *wrapper(PyObject *self, PyObject *const *args, Py_ssize_t nargs)   \
    {                                                                                   \
        if (!channel_valid((cb_channel *)self))                                         \
            return NULL;                                                                \
        if (nargs != (n)) {                                                             \
            PyErr_Format(PyExc_TypeError, pyname "() takes %d argument%s (%zd given)",  \
                         (n), (n) == 1 ? "" : "s", nargs);                              \
            return NULL;                                                                \
        }                                                                               \
        return impl(self, (n) ? args[0] : NULL);                                        \
    }

ARGS_CHECKED(channel_send_c, channel_send, "send", 1)
ARGS_CHECKED(channel_receive_c, channel_receive, "receive", 0)

/* send(), receive() and __next__ note, while they run, what they were
 * called with: a tasklet blocked in them called straight from a frame's CALL
 * or FOR_ITER is then collectable with the channel on that frame's stack
 * (gcframes.c). */
static PyObject *channel_send_m(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
static PyObject *channel_receive_m(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* A channel call made inside another's (a callback's, a finalizer's): the
 * outer record is kept here, off the usual path, whose frame every tasklet
 * blocked in a channel call keeps on its stack (32 bytes less per slice:
 * 960 -> 928 in the game loop). */
static __attribute__((noinline)) PyObject *
call_recorded_nested(cb_runstate *run, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                     PyCFunction meth, const void *caller,
                     PyObject *(*impl)(PyObject *, PyObject *const *, Py_ssize_t))
{
    cb_gc_call saved = run->gc_call;
    PyObject *r;

    run->gc_call = (cb_gc_call){self, args, nargs, meth, caller};
    r = impl(self, args, nargs);
    run->gc_call = saved; /* the same tasklet: it is the one that returns here */
    return r;
}

static PyObject *call_recorded(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyCFunction meth, const void *caller,
                               PyObject *(*impl)(PyObject *, PyObject *const *, Py_ssize_t))
{
    cb_manager *m = cb_manager_peek();
    cb_runstate *run = m && m->current && !m->current->is_main ? m->current->run : NULL;
    PyObject *r;

    if (!run)
        return impl(self, args, nargs);
    if (run->gc_call.self)
        return call_recorded_nested(run, self, args, nargs, meth, caller, impl);
    run->gc_call = (cb_gc_call){self, args, nargs, meth, caller};
    r = impl(self, args, nargs);
    run->gc_call.self = NULL; /* the same tasklet: it is the one that returns here */
    return r;
}

static PyObject *channel_send_m(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return call_recorded(self, args, nargs, (PyCFunction)(void (*)(void))channel_send_m, NULL,
                         channel_send_c);
}

static PyObject *channel_receive_m(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return call_recorded(self, args, nargs, (PyCFunction)(void (*)(void))channel_receive_m, NULL,
                         channel_receive_c);
}
ARGS_CHECKED(channel_clear_m, channel_clear, "clear", 0)
ARGS_CHECKED(channel_close_m, channel_close, "close", 0)
ARGS_CHECKED(channel_open_m, channel_open, "open", 0)
ARGS_CHECKED(channel_send_sequence_m, cb_channel_send_sequence, "send_sequence", 1)

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL

static PyMethodDef channel_methods[] = {
    {"send", FASTCALL(channel_send_m), "send(value): deliver value to a receiver, blocking until one comes."},
    {"receive", FASTCALL(channel_receive_m), "receive() -> value: take a value, blocking until one is sent."},
    {"send_exception", channel_send_exception, METH_VARARGS,
     "send_exception(exc, *args): the receiver raises exc built from args."},
    {"send_throw", (PyCFunction)(void (*)(void))channel_send_throw, METH_VARARGS | METH_KEYWORDS,
     "send_throw(exc, val=None, tb=None): the receiver raises exc as by raise."},
    {"clear", FASTCALL(channel_clear_m), "clear(): kill every tasklet waiting on the channel."},
    {"close", FASTCALL(channel_close_m), "close(): refuse new operations; closed once the balance is 0."},
    {"open", FASTCALL(channel_open_m), "open(): undo close()."},
    {"send_sequence", FASTCALL(channel_send_sequence_m),
     "send_sequence(seq) -> count: send every item of seq in turn."},
    {"__reduce__", FASTCALL(cb_channel_reduce), "Channels cannot be pickled."},
    {"__reduce_ex__", FASTCALL(cb_channel_reduce), "Channels cannot be pickled."},
    {"__setstate__", FASTCALL(cb_channel_reduce), "Channels cannot be pickled."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef channel_getset[] = {
    {"preference", get_preference, set_preference,
     "-1 prefer the receiver (default), 0 neither, 1 prefer the sender.", NULL},
    {"balance", get_balance, NULL, "Senders waiting (>0) or minus the receivers waiting (<0).", NULL},
    {"queue", get_queue, NULL, "The first waiting tasklet, or None.", NULL},
    {"closing", get_closing, NULL, "close() was called.", NULL},
    {"closed", get_closed, NULL, "Closing and nobody is waiting.", NULL},
    {"schedule_all", cb_channel_get_schedule_all, cb_channel_set_schedule_all,
     "Every transfer re-queues the partner and the caller at the back (overrides preference).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject cb_ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "scheduler.Channel",
    .tp_basicsize = sizeof(cb_channel),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "channel(): synchronous communication between tasklets.",
    .tp_traverse = channel_traverse,
    .tp_new = channel_new,
    .tp_init = channel_init,
    .tp_dealloc = channel_dealloc,
    .tp_weaklistoffset = offsetof(cb_channel, weakreflist),
    .tp_iter = channel_iter,
    .tp_iternext = channel_iternext,
    .tp_methods = channel_methods,
    .tp_getset = channel_getset,
};
