/* The per-tasklet part of the interpreter's thread state.
 *
 * One PyThreadState per OS thread is kept; on every switch the fields that
 * belong to the running code (frame pointers, recursion depth, handled
 * exception, contextvars context, frame data stack, trashcan nesting,
 * tracing depth) are saved into the outgoing tasklet and the incoming
 * tasklet's are written back. See docs/design.md for the per-version list.
 */
#ifndef CB_PYSTATE_H
#define CB_PYSTATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#error "Carbon runtime supports CPython 3.11, 3.12 and 3.13"
#endif
#ifdef Py_GIL_DISABLED
#error "free-threaded CPython builds are not supported"
#endif

#include "stack.h"

/* Default C stack of a tasklet, and the smallest: a thread's
 * (cb_stack_thread_size(), 8 MiB usually). Memory is committed only where
 * touched, so the size costs address space only, and a tasklet on a stack
 * that size gets a thread's recursion budget (pystate.c): it nests as deep as
 * the thread's main tasklet. */
#define CB_TASKLET_STACK_SIZE cb_stack_thread_size()

#if PY_VERSION_HEX >= 0x030D0000
#define CB_PY313 1
#define CB_C_RECURSION_LIMIT Py_C_RECURSION_LIMIT
#elif PY_VERSION_HEX >= 0x030C0000
#define CB_PY312 1
#define CB_C_RECURSION_LIMIT C_RECURSION_LIMIT
#else
#define CB_PY311 1
#endif

/* The calling thread's state, NULL if it has none; whether the interpreter is
 * being finalized. */
static inline PyThreadState *cb_tstate_unchecked(void)
{
#ifdef CB_PY313
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

static inline int cb_is_finalizing(void)
{
#ifdef CB_PY313
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

typedef struct cb_pystate {
    /* The innermost frame while suspended (saved at switch-out; NULL when the
     * tasklet has none). Everything that inspects a suspended tasklet's frames
     * starts here and follows `previous`: on 3.11/3.12 the cframe lies on the
     * tasklet's C stack and is never read while it is suspended. */
    struct _PyInterpreterFrame *frame;
#ifndef CB_PY313
    _PyCFrame *cframe;          /* NULL until a new tasklet's bootstrap runs */
    unsigned char use_tracing;  /* 3.11: for its cframe (cb_pystate_place, boot) */
#endif
    int py_depth;               /* Python recursion depth (3.11: all of it) */
#ifndef CB_PY311
    int c_remaining;            /* C recursion units left */
#endif
    _PyErr_StackItem *exc_info;
    PyObject *context;          /* owned while suspended */
    _PyStackChunk *datastack_chunk;
    PyObject **datastack_top;
    PyObject **datastack_limit;
#ifndef CB_PY313
    int trash_delete_nesting;
#endif
    int tracing;
} cb_pystate;

/* A new tasklet: empty frame chain, its own exception item, no context, the
 * root frame chunk `chunk` and a new thread's recursion budget (its stack is
 * at least as large as a thread's: cb_stack_tasklet_size()). */
void cb_pystate_init_new(cb_pystate *st, char *chunk, size_t chunk_size,
                         _PyErr_StackItem *exc_item);
/* The thread's own state (main tasklet): filled by the first save. */
void cb_pystate_init_main(cb_pystate *st);

/* Moves the running code's state out of tstate into `from`, and `to`'s in. */
void cb_pystate_switch(PyThreadState *ts, cb_pystate *from, cb_pystate *to);

#ifndef CB_PY313
/* Called first thing on a new tasklet's stack, with a cframe that lives as
 * long as the tasklet. */
void cb_pystate_boot(PyThreadState *ts, cb_pystate *st, _PyCFrame *cframe);
#endif

/* Once the incoming tasklet's C stack is in place (in its region), before
 * switching to it: 3.11 hands it the tracing flag cb_pystate_switch()
 * computed, into its cframe, which lies on that stack. Written earlier, it
 * would land in whatever stack the region held then. */
static inline void cb_pystate_place(cb_pystate *st)
{
#ifdef CB_PY311
    if (st->cframe)
        st->cframe->use_tracing = st->use_tracing;
#else
    (void)st;
#endif
}

/* After the running tasklet's C stack was copied back in: tstate's frame
 * pointer is the saved one again (3.13; a no-op before). */
static inline void cb_pystate_resume_frame(PyThreadState *ts, cb_pystate *st)
{
#ifdef CB_PY313
    ts->current_frame = st->frame;
#else
    (void)ts;
    (void)st;
#endif
}

/* Frees frame chunks pushed beyond the root chunk of a finished tasklet and
 * detaches its data stack from tstate. */
void cb_pystate_finish(PyThreadState *ts, cb_pystate *st);

/* The suspended tasklet's current frame (new reference, may be NULL). */
PyObject *cb_pystate_frame(PyThreadState *ts, cb_pystate *st);

/* A channel method's call in progress in a tasklet: what it was called with,
 * noted on entry and put back on return (two stores each way); whether the
 * call came straight from a frame's stack is checked only by the collector
 * (gcframes.c). */
typedef struct cb_gc_call {
    PyObject *self;             /* NULL: none */
    PyObject *const *args;      /* NULL: the channel's __next__ (tp_iternext) */
    Py_ssize_t nargs;
    PyCFunction meth;           /* the method's C function (NULL for __next__) */
    const void *caller;         /* __next__: the address it returns to */
} cb_gc_call;

/* Visits what the frames of a suspended tasklet own (its state `st` saved,
 * not loaded in any thread): only references known to be owned (gcframes.c).
 * Runs no Python code and allocates nothing. */
int cb_pystate_traverse(const cb_pystate *st, const cb_gc_call *call, visitproc visit,
                        void *arg);

/* Sets (hide 1) or clears (hide 0) the "finalized" mark of the generators
 * executing in the frames of a suspended tasklet (its state `st` saved), so
 * that a collection does not try to close them while they run (gcmark.c).
 * Returns how many it changed. Runs no Python code, allocates nothing. */
int cb_pystate_gens_hide(const cb_pystate *st, int hide);

#endif
