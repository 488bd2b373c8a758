/* What a suspended tasklet's interpreter frames reference, for the cyclic
 * garbage collector (pystate.h; docs/design.md, "Collecting suspended
 * tasklets").
 *
 * Visiting a slot that holds no reference of the frame (a value already
 * popped and released, a borrowed pointer) corrupts the collector; not
 * visiting one only keeps objects alive. So only what is known to be owned is
 * visited:
 * - every frame owned by the thread (C-stack entry frames own nothing): its
 *   function, code, locals dict and frame object, as CPython's
 *   _PyFrame_Traverse does (globals and builtins are borrowed); a running
 *   generator's frame is its generator's, which visits these and its stack
 *   when recorded, but not its locals while it runs: those are visited here;
 * - its fast locals, cells and free variables (always owned or NULL: CPython
 *   replaces them atomically and unlinks a frame before clearing it);
 * - its value stack where the depth is known: CPython records it (stacktop
 *   >= 0) while the frame waits in a Python-to-Python call or a trace call,
 *   and is -1 while it executes, e.g. a call into C; for the frame that is
 *   blocked in channel.send()/receive() called straight from its CALL, the
 *   depth up to the call's arguments (call_depth() below).
 * Compiled as core code for the frame layout (pycore_frame.h).
 */
#define Py_BUILD_CORE_MODULE 1
#include "pystate.h"

#include <internal/pycore_frame.h>

/* The innermost frame saved at switch-out (never read through the cframe,
 * which lies on the tasklet's C stack). */
static struct _PyInterpreterFrame *top_frame(const cb_pystate *st)
{
    return st->frame;
}

static PyCodeObject *frame_code(struct _PyInterpreterFrame *f)
{
#ifdef CB_PY313
    return PyCode_Check(f->f_executable) ? (PyCodeObject *)f->f_executable : NULL;
#else
    return f->f_code;
#endif
}

/* How many localsplus slots of `f` a channel call in progress proves owned:
 * 0 unless the call's arguments lie in f's value stack with the method
 * descriptor and `self` just below them. A CALL of a method loaded as
 * `ch.send`/`ch.receive` lays out [descriptor, self, args...] and passes
 * pointers into it, and those slots stay owned until the call returns; a
 * callback or wrapper passes its own array, or lends `self` in a slot whose
 * descriptor slot below is not the method's. */
static int call_depth(struct _PyInterpreterFrame *f, PyCodeObject *co, const cb_gc_call *call)
{
    PyObject **base, **end, **args;
    PyObject *descr;

    if (!call || !call->self || !call->args)
        return 0;
    args = (PyObject **)call->args;
    base = f->localsplus + co->co_nlocalsplus;
    end = base + co->co_stacksize;
    if (args < base + 2 || args > end || call->nargs > end - args)
        return 0;
    descr = args[-2];
    if (args[-1] != call->self || !descr || !Py_IS_TYPE(descr, &PyMethodDescr_Type) ||
        ((PyMethodDescrObject *)descr)->d_method->ml_meth != call->meth)
        return 0;
    return (int)(args + call->nargs - f->localsplus);
}

int cb_pystate_traverse(const cb_pystate *st, const cb_gc_call *call, visitproc visit, void *arg)
{
    for (struct _PyInterpreterFrame *f = top_frame(st); f; f = f->previous) {
        PyCodeObject *co;
        int n;

        if (f->owner == FRAME_OWNED_BY_GENERATOR) {
            /* Its generator visits the specials and, when recorded, the
             * stack (stacktop >= 0); while it executes (-1) nobody visits
             * its locals and stack: they are this tasklet's to visit. */
            if (f->stacktop >= 0 || !(co = frame_code(f)))
                continue;
            n = call_depth(f, co, call);
            if (n == 0)
                n = co->co_nlocalsplus;
            for (int i = 0; i < n; i++)
                Py_VISIT(f->localsplus[i]);
            continue;
        }
        if (f->owner != FRAME_OWNED_BY_THREAD)
            continue;
        co = frame_code(f);
        Py_VISIT(f->frame_obj);
        Py_VISIT(f->f_locals);
#ifdef CB_PY311
        Py_VISIT(f->f_func);
        Py_VISIT(f->f_code);
#elif defined(CB_PY312)
        Py_VISIT(f->f_funcobj);
        Py_VISIT(f->f_code);
#else
        Py_VISIT(f->f_funcobj);
        Py_VISIT(f->f_executable);
#endif
        if (!co)
            continue;
        if (f->stacktop >= 0)
            n = f->stacktop;
        else if ((n = call_depth(f, co, call)) == 0)
            n = co->co_nlocalsplus;
        for (int i = 0; i < n; i++)
            Py_VISIT(f->localsplus[i]);
    }
    return 0;
}
