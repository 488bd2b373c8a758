/* The schedule and channel callbacks (semantics section 11).
 *
 * A callback runs with the thread's switch trap raised, so it cannot switch
 * tasklets in the middle of a switch or a transfer; what it raises is
 * reported with PyErr_WriteUnraisable and the operation carries on.
 */
#include "core.h"

static void call_guarded(cb_manager *m, PyObject *cb, PyObject *args)
{
    PyObject *saved = cb_err_fetch();
    PyObject *r;

    Py_INCREF(cb); /* the callback may replace itself */
    m->switch_trap++;
    r = PyObject_Call(cb, args, NULL);
    m->switch_trap--;
    if (r)
        Py_DECREF(r);
    else
        PyErr_WriteUnraisable(cb);
    Py_DECREF(cb);
    cb_err_restore(saved);
}

void cb_call_schedule_callback(cb_manager *m, cb_tasklet *from, cb_tasklet *to)
{
    if (cb_g.schedule_callback) {
        PyObject *args = PyTuple_Pack(2, (PyObject *)from, (PyObject *)to);
        if (args) {
            call_guarded(m, cb_g.schedule_callback, args);
            Py_DECREF(args);
        } else {
            PyErr_WriteUnraisable(cb_g.schedule_callback);
        }
    }
    if (cb_g.fast_callback)
        cb_g.fast_callback(from, to);
}

void cb_call_channel_callback(cb_channel *ch, cb_tasklet *t, int sending, int will_block)
{
    PyObject *args;

    if (!cb_g.channel_callback || !t->mgr)
        return;
    args = Py_BuildValue("(OOOO)", (PyObject *)ch, (PyObject *)t,
                         sending ? Py_True : Py_False, will_block ? Py_True : Py_False);
    if (!args) {
        PyErr_WriteUnraisable(cb_g.channel_callback);
        return;
    }
    call_guarded(t->mgr, cb_g.channel_callback, args);
    Py_DECREF(args);
}
