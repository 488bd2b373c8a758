/* carbon.Timeout: `with carbon.timeout(seconds):` raises TimeoutError in the
 * tasklet that entered the block if the block has not ended in time, at
 * whatever it waits on (a channel, a descriptor, a sleep, a join).
 *
 * A libuv timer on the tasklet's thread fires and throws (cb_throw_async:
 * the tasklet raises when it resumes, as for a pending throw; a waiting main
 * tasklet when its wait next checks). If the tasklet already has an exception
 * to raise (a kill, another timeout), the timer tries again 1 ms later, so an
 * outer timeout is never lost. On exit the timer is stopped and a TimeoutError
 * of ours that was thrown but not yet raised (the tasklet was already runnable,
 * say with a value received) is taken back: nothing escapes the block late.
 *
 * The uv_timer_t is allocated apart from the Python object (closing a handle
 * is asynchronous). A stopped timer goes to a per-thread free list instead
 * of being closed: the next timeout reuses it, and no closing handle keeps
 * a loop alive after the block; the list is closed with the loop. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct TimeoutObject TimeoutObject;

typedef struct timeout_timer {
    uv_timer_t timer;       /* first: the handle's address is the timer's */
    TimeoutObject *owner;   /* borrowed; NULL once disarmed */
    struct timeout_timer *next_free;
} timeout_timer;

static _Thread_local timeout_timer *free_timers; /* stopped, of this thread's loop */

struct TimeoutObject {
    PyObject_HEAD
    PyObject *seconds;      /* None or a float */
    timeout_timer *timer;   /* while armed */
    cb_tasklet *t;          /* strong: the tasklet in the block, while armed */
    PyObject *exc;          /* strong: the TimeoutError thrown, while armed */
    int entered;
    int expired;            /* its TimeoutError was raised in the block */
};

static PyTypeObject *timeout_type;

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_timer(uv_timer_t *handle)
{
    timeout_timer *tm = (timeout_timer *)handle;
    TimeoutObject *self = tm->owner;
    PyObject *exc, *keep;

    if (!self || !self->t)
        return;
    exc = PyObject_CallFunction(PyExc_TimeoutError, "s", "timed out");
    if (!exc) {
        cb_embed_report(self->t, "carbon.timeout");
        return;
    }
    keep = Py_NewRef(exc);
    if (cb_throw_async(self->t, exc) == 0) {
        cb_embed_loop *loop = cb_embed_loop_peek();
        Py_XSETREF(self->exc, keep);
        if (self->t->is_main && loop)
            loop->main_woken = 1; /* its wait must not go on this turn */
        return;
    }
    Py_DECREF(keep);
    /* Busy with another exception (or dead): try again shortly. */
    if (self->t->alive || self->t->is_main)
        uv_timer_start(handle, on_timer, 1, 0);
}

static void disarm(TimeoutObject *self)
{
    timeout_timer *tm = self->timer;

    if (!tm)
        return;
    self->timer = NULL;
    tm->owner = NULL;
    uv_timer_stop(&tm->timer);
    tm->next_free = free_timers;
    free_timers = tm;
}

void cb_embed_timeout_close(cb_embed_loop *loop)
{
    while (free_timers) {
        timeout_timer *tm = free_timers;
        free_timers = tm->next_free;
        if (tm->timer.loop == &loop->uv)
            uv_close((uv_handle_t *)&tm->timer, on_timer_closed);
    }
}

static PyObject *timeout_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"seconds", NULL};
    PyObject *seconds;
    TimeoutObject *self;
    double s = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Timeout", kwlist, &seconds))
        return NULL;
    if (seconds != Py_None) {
        s = PyFloat_AsDouble(seconds);
        if (s == -1.0 && PyErr_Occurred())
            return NULL;
        if (isnan(s) || s < 0) {
            PyErr_SetString(PyExc_ValueError, "timeout must be None or a non-negative number of seconds");
            return NULL;
        }
    }
    self = (TimeoutObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->seconds = seconds == Py_None ? Py_NewRef(Py_None) : PyFloat_FromDouble(s);
    if (!self->seconds) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *timeout_enter(PyObject *op, PyObject *unused)
{
    TimeoutObject *self = (TimeoutObject *)op;
    cb_embed_loop *loop;
    timeout_timer *tm;
    double s, ms;
    int err;

    (void)unused;
    if (self->entered) {
        PyErr_SetString(PyExc_RuntimeError, "this carbon.timeout is already in use");
        return NULL;
    }
    self->expired = 0;
    if (self->seconds == Py_None || (s = PyFloat_AS_DOUBLE(self->seconds)) > 1e9) {
        self->entered = 1; /* never fires */
        return Py_NewRef(op);
    }
    loop = cb_embed_loop_get();
    if (!loop)
        return NULL;
    while ((tm = free_timers) && tm->timer.loop != &loop->uv) { /* another loop's: stale */
        free_timers = tm->next_free;
        free(tm);
    }
    if (tm) {
        free_timers = tm->next_free;
    } else {
        tm = calloc(1, sizeof *tm);
        if (!tm)
            return PyErr_NoMemory();
        if ((err = uv_timer_init(&loop->uv, &tm->timer)) < 0) {
            free(tm);
            PyErr_Format(PyExc_OSError, "libuv uv_timer_init: %s", uv_strerror(err));
            return NULL;
        }
    }
    /* libuv's clock counts whole milliseconds and may be stale: read it now
     * and add one, so the timer never fires early. */
    uv_update_time(&loop->uv);
    ms = ceil(s * 1000.0) + 1;
    tm->owner = self;
    uv_timer_start(&tm->timer, on_timer, (uint64_t)ms, 0);
    self->timer = tm;
    self->t = (cb_tasklet *)Py_NewRef(loop->mgr->current);
    self->entered = 1;
    return Py_NewRef(op);
}

/* Ends the block: stops the timer; takes back a TimeoutError of ours not yet
 * raised. */
static void timeout_finish(TimeoutObject *self, PyObject *raised)
{
    disarm(self);
    if (self->exc) {
        if (raised == self->exc)
            self->expired = 1;
        else if (!self->t || !cb_forget_exception(self->t, self->exc))
            self->expired = 1; /* raised in the block, and caught there */
    }
    Py_CLEAR(self->exc);
    Py_CLEAR(self->t);
    self->entered = 0;
}

static PyObject *timeout_exit(PyObject *op, PyObject *args)
{
    PyObject *type = Py_None, *value = Py_None, *tb = Py_None;

    if (!PyArg_UnpackTuple(args, "__exit__", 0, 3, &type, &value, &tb))
        return NULL;
    timeout_finish((TimeoutObject *)op, value);
    Py_RETURN_FALSE;
}

static PyObject *timeout_cancel(PyObject *op, PyObject *unused)
{
    (void)unused;
    disarm((TimeoutObject *)op);
    Py_RETURN_NONE;
}

static void timeout_dealloc(PyObject *op)
{
    TimeoutObject *self = (TimeoutObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    timeout_timer *tm = self->timer;

    if (tm) {
        /* Left without __exit__: the handle can only be closed on its own
         * thread (its loop); elsewhere the timer stays, owned by nobody. */
        if (cb_embed_loop_peek() && tm->timer.loop == &cb_embed_loop_peek()->uv) {
            disarm(self);
        } else {
            tm->owner = NULL;
            self->timer = NULL;
        }
    }
    Py_XDECREF(self->exc);
    Py_XDECREF(self->t);
    Py_XDECREF(self->seconds);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *timeout_get_seconds(PyObject *op, void *closure)
{
    (void)closure;
    return Py_NewRef(((TimeoutObject *)op)->seconds);
}

static PyObject *timeout_get_expired(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((TimeoutObject *)op)->expired);
}

static PyObject *timeout_get_pending(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((TimeoutObject *)op)->timer != NULL);
}

static PyObject *timeout_repr(PyObject *op)
{
    TimeoutObject *self = (TimeoutObject *)op;

    return PyUnicode_FromFormat("<carbon.Timeout %R%s%s>", self->seconds,
                                self->timer ? " armed" : "", self->expired ? " expired" : "");
}

static PyMethodDef timeout_methods[] = {
    {"__enter__", timeout_enter, METH_NOARGS, "Start the timer for the calling tasklet."},
    {"__exit__", timeout_exit, METH_VARARGS, "Stop the timer; never swallows an exception."},
    {"cancel", timeout_cancel, METH_NOARGS, "Stop the timer early; the block goes on without a limit."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef timeout_getset[] = {
    {"seconds", timeout_get_seconds, NULL, "The limit given (None: none).", NULL},
    {"expired", timeout_get_expired, NULL,
     "True once this timeout's TimeoutError was raised in its block.", NULL},
    {"pending", timeout_get_pending, NULL, "True while the timer runs.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot timeout_slots[] = {
    {Py_tp_new, timeout_new},
    {Py_tp_dealloc, timeout_dealloc},
    {Py_tp_repr, timeout_repr},
    {Py_tp_methods, timeout_methods},
    {Py_tp_getset, timeout_getset},
    {Py_tp_doc, "Timeout(seconds): `with carbon.timeout(seconds):` raises TimeoutError in the "
                "tasklet if the block has not ended in time. seconds=None: no limit."},
    {0, NULL},
};

static PyType_Spec timeout_spec = {
    .name = "carbon.Timeout",
    .basicsize = sizeof(TimeoutObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = timeout_slots,
};

int cb_embed_timeout_add_type(PyObject *mod)
{
    if (!timeout_type) {
        timeout_type = (PyTypeObject *)PyType_FromSpec(&timeout_spec);
        if (!timeout_type)
            return -1;
    }
    return PyModule_AddObjectRef(mod, "Timeout", (PyObject *)timeout_type);
}
