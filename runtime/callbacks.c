/* The schedule and channel callbacks (semantics section 11).
 *
 * A callback runs with the thread's runtime switch trap raised, so it cannot
 * switch tasklets in the middle of a switch or a transfer; scheduler.
 * switch_trap() cannot lower that trap. What it raises is reported with
 * PyErr_WriteUnraisable (still trapped: the unraisable hook is Python code
 * too) and the operation carries on, except KeyboardInterrupt, which reaches
 * the code that called run().
 */
#include "core.h"

/* Ctrl-C must not be lost in a callback: the KeyboardInterrupt is raised in
 * the calling thread's main tasklet when it next resumes, that is, from the
 * run() (or blocking call) the program is in. */
static void keep_interrupt(void)
{
    PyObject *exc = cb_err_fetch();
    cb_manager *here = cb_manager_peek();

    if (here && !here->main->child_exc)
        here->main->child_exc = exc;
    else
        Py_XDECREF(exc); /* one is already on its way */
}

/* The caller has raised m->runtime_trap. */
static void call_guarded(PyObject *cb, PyObject *args)
{
    PyObject *saved = cb_err_fetch();
    PyObject *r;

    Py_INCREF(cb); /* the callback may replace itself */
    r = PyObject_Call(cb, args, NULL);
    if (r)
        Py_DECREF(r);
    else if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        keep_interrupt();
    else
        PyErr_WriteUnraisable(cb);
    Py_DECREF(cb);
    cb_err_restore(saved);
}

void cb_call_schedule_callback(cb_manager *m, cb_tasklet *from, cb_tasklet *to)
{
    /* Trapped from the first allocation (a collection runs finalizers). */
    m->runtime_trap++;
    if (cb_g.schedule_callback) {
        PyObject *args = PyTuple_Pack(2, (PyObject *)from, (PyObject *)to);
        if (args) {
            call_guarded(cb_g.schedule_callback, args);
            Py_DECREF(args);
        } else {
            PyErr_WriteUnraisable(cb_g.schedule_callback);
        }
    }
    if (cb_g.fast_callback)
        cb_g.fast_callback(from, to);
    m->runtime_trap--;
}

void cb_call_channel_callback(cb_channel *ch, cb_tasklet *t, int sending, int will_block)
{
    cb_manager *m = t->mgr;
    PyObject *args;

    if (!cb_g.channel_callback || !m)
        return;
    m->runtime_trap++;
    args = Py_BuildValue("(OOOO)", (PyObject *)ch, (PyObject *)t,
                         sending ? Py_True : Py_False, will_block ? Py_True : Py_False);
    if (args) {
        call_guarded(cb_g.channel_callback, args);
        Py_DECREF(args);
    } else {
        PyErr_WriteUnraisable(cb_g.channel_callback);
    }
    m->runtime_trap--;
}
