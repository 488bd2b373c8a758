/* Saving and restoring the per-tasklet part of PyThreadState (pystate.h).
 *
 * Nothing here allocates or runs Python code: it is called between the last
 * and the first Python-visible action of a switch.
 */
#include "pystate.h"

void cb_pystate_init_main(cb_pystate *st)
{
    memset(st, 0, sizeof *st);
}

/* A tasklet's stack is at least as large as a thread's, so it gets what a
 * new thread gets: nothing but the interpreter's own limits (3.11: the
 * recursion limit on one counter; 3.12+: the C recursion limit besides). It
 * therefore nests as deep as its thread's main tasklet. */
void cb_pystate_init_new(cb_pystate *st, char *chunk_base, size_t chunk_size,
                         _PyErr_StackItem *exc_item)
{
    _PyStackChunk *chunk = (_PyStackChunk *)chunk_base;

    memset(st, 0, sizeof *st);
#ifndef CB_PY311
    st->c_remaining = CB_C_RECURSION_LIMIT;
#endif
    exc_item->exc_value = NULL;
    exc_item->previous_item = NULL;
    st->exc_info = exc_item;
    /* A root chunk (previous == NULL) is never freed by CPython; slot 0 is
     * skipped exactly as push_chunk() does for the root. */
    chunk->previous = NULL;
    chunk->size = chunk_size;
    chunk->top = 0;
    st->datastack_chunk = chunk;
    st->datastack_top = &chunk->data[1];
    st->datastack_limit = (PyObject **)((char *)chunk + chunk->size);
}

static inline void save(PyThreadState *ts, cb_pystate *st)
{
#ifdef CB_PY313
    st->frame = ts->current_frame;
#else
    st->cframe = ts->cframe;
    st->frame = ts->cframe->current_frame;
#endif
#ifdef CB_PY311
    st->py_depth = ts->recursion_limit - ts->recursion_remaining;
#else
    st->py_depth = ts->py_recursion_limit - ts->py_recursion_remaining;
    st->c_remaining = ts->c_recursion_remaining;
#endif
    st->exc_info = ts->exc_info;
    st->context = ts->context; /* the reference moves with the pointer */
    ts->context = NULL;
    st->datastack_chunk = ts->datastack_chunk;
    st->datastack_top = ts->datastack_top;
    st->datastack_limit = ts->datastack_limit;
#ifdef CB_PY311
    st->trash_delete_nesting = ts->trash_delete_nesting;
#elif defined(CB_PY312)
    st->trash_delete_nesting = ts->trash.delete_nesting;
#endif
    st->tracing = ts->tracing;
}

static inline void restore(PyThreadState *ts, cb_pystate *st)
{
#ifdef CB_PY313
    ts->current_frame = st->frame;
#else
    /* A new tasklet has no cframe until its bootstrap runs; until then the
     * thread's root cframe (whose current_frame is NULL) stands in. */
    ts->cframe = st->cframe ? st->cframe : &ts->root_cframe;
#endif
#ifdef CB_PY311
    ts->recursion_remaining = ts->recursion_limit - st->py_depth;
#else
    ts->py_recursion_remaining = ts->py_recursion_limit - st->py_depth;
    ts->c_recursion_remaining = st->c_remaining;
#endif
    ts->exc_info = st->exc_info;
    ts->context = st->context;
    st->context = NULL;
    ts->context_ver++; /* ContextVar caches are keyed on it */
    ts->datastack_chunk = st->datastack_chunk;
    ts->datastack_top = st->datastack_top;
    ts->datastack_limit = st->datastack_limit;
#ifdef CB_PY311
    ts->trash_delete_nesting = st->trash_delete_nesting;
#elif defined(CB_PY312)
    ts->trash.delete_nesting = st->trash_delete_nesting;
#endif
    ts->tracing = st->tracing;
}

void cb_pystate_switch(PyThreadState *ts, cb_pystate *from, cb_pystate *to)
{
    save(ts, from);
    restore(ts, to);
#ifdef CB_PY311
    {
        /* sys.settrace/setprofile are per thread, but the flag the eval loop
         * reads lives in the running cframe: it is recomputed for the incoming
         * tasklet as CPython does, off while that tasklet is itself inside a
         * trace function (a switch made by a tracer must not carry its
         * "paused" flag into other tasklets). */
        unsigned char use_tracing =
            to->tracing == 0 && (ts->c_tracefunc != NULL || ts->c_profilefunc != NULL) ? 255 : 0;
        to->use_tracing = use_tracing; /* into its cframe: cb_pystate_place() */
    }
#endif
}

#ifndef CB_PY313
void cb_pystate_boot(PyThreadState *ts, cb_pystate *st, _PyCFrame *cframe)
{
#ifdef CB_PY311
    cframe->use_tracing = st->use_tracing;
#endif
    cframe->current_frame = NULL;
    /* Never the spawner's cframe: its lifetime is unrelated to ours. */
    cframe->previous = &ts->root_cframe;
    ts->cframe = cframe;
    st->cframe = cframe;
}
#endif

void cb_pystate_finish(PyThreadState *ts, cb_pystate *st)
{
    PyObjectArenaAllocator arena;
    _PyStackChunk *chunk = ts->datastack_chunk;

    PyObject_GetArenaAllocator(&arena);
    while (chunk && chunk->previous) {
        _PyStackChunk *prev = chunk->previous;
        arena.free(arena.ctx, chunk, chunk->size);
        chunk = prev;
    }
    ts->datastack_chunk = chunk;
    ts->datastack_top = chunk ? &chunk->data[1] : NULL;
    st->datastack_chunk = NULL;
    st->datastack_top = NULL;
    st->datastack_limit = NULL;
}

PyObject *cb_pystate_frame(PyThreadState *ts, cb_pystate *st)
{
    PyFrameObject *frame;
    int gc_enabled;

#ifdef CB_PY313
    struct _PyInterpreterFrame *saved = ts->current_frame;
#else
    _PyCFrame *saved = ts->cframe;
    _PyCFrame stand_in; /* the tasklet's own cframe is on its C stack */
#endif
    if (!st->frame)
        return NULL;
    /* Materialising the frame object allocates; a collection run here could
     * execute Python code while tstate points at another tasklet's frames. */
    gc_enabled = PyGC_Disable();
#ifdef CB_PY313
    ts->current_frame = st->frame;
    frame = PyThreadState_GetFrame(ts);
    ts->current_frame = saved;
#else
    memset(&stand_in, 0, sizeof stand_in);
    stand_in.current_frame = st->frame;
    ts->cframe = &stand_in;
    frame = PyThreadState_GetFrame(ts);
    ts->cframe = saved;
#endif
    if (gc_enabled)
        PyGC_Enable();
    return (PyObject *)frame;
}
