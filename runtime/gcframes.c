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
 *   depth up to the call's arguments (call_depth() below); for a frame in a
 *   FOR_ITER (or, on 3.11, a SEND) whose call is proven in progress, the
 *   depth of that instruction from the code's analysis (for_iter_depth() and
 *   send_depth() below, stackdepth.c).
 * Compiled as core code for the frame layout (pycore_frame.h).
 */
#define Py_BUILD_CORE_MODULE 1
#include "pystate.h"
#include "stackdepth.h"

#include <internal/pycore_frame.h>
#include <internal/pycore_gc.h>

#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

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

/* The code unit `f` executes (where prev_instr / instr_ptr point). */
static Py_ssize_t frame_index(struct _PyInterpreterFrame *f, PyCodeObject *co)
{
#ifdef CB_PY313
    return f->instr_ptr - _PyCode_CODE(co);
#else
    return f->prev_instr - _PyCode_CODE(co);
#endif
}

/* Whether `ret`, a return address, lies in CPython's eval loop
 * (_PyEval_EvalFrameDefault, an exported symbol): its range is looked up
 * once (dladdr1), then compared. Any doubt (no symbol, a part of the loop
 * moved out of it) answers no. Called by the collector only. */
static int in_eval_loop(const void *ret)
{
    static uintptr_t lo, hi;
    const ElfW(Sym) *sym = NULL;
    Dl_info info;

    if (!ret)
        return 0;
    if (lo < hi)
        return (uintptr_t)ret >= lo && (uintptr_t)ret < hi;
    if (!dladdr1(ret, &info, (void **)&sym, RTLD_DL_SYMENT) || !info.dli_sname || !sym ||
        strcmp(info.dli_sname, "_PyEval_EvalFrameDefault") != 0)
        return 0;
    lo = (uintptr_t)info.dli_saddr;
    hi = lo + sym->st_size;
    return (uintptr_t)ret >= lo && (uintptr_t)ret < hi;
}

/* How many localsplus slots of `f` a FOR_ITER in progress proves owned: 0
 * unless `f` executes a FOR_ITER whose call into the iterator is shown to be
 * running, then its locals and its whole stack (the iterator on top). The
 * depth comes from the code (stackdepth.c); the proof that the frame is in
 * that call, and not releasing values while a finalizer runs (CPython runs
 * finalizers and weakref callbacks with prev_instr / instr_ptr still at the
 * instruction, after popping the slots they release, and while unwinding an
 * exception), is that the top slot holds what is known to be iterated:
 * - `inner` NULL (`f` is the innermost frame): the channel whose __next__ is
 *   blocked (the record of channel.c's call_recorded, args NULL), called
 *   from the eval loop. The innermost frame is the one the innermost eval
 *   loop runs, and at a FOR_ITER that loop calls tp_iternext only on its top
 *   slot, before popping anything. (A popped channel can still be iterated
 *   from C while the frame unwinds past the FOR_ITER, e.g. by a weakref
 *   callback `functools.partial(next, ch)`, whence the return address.)
 * - `inner` a generator's frame running above `f`: that generator. A
 *   generator popped by the FOR_ITER has finished (exhausted, or it raised);
 *   it runs again only if its last reference goes while it is suspended,
 *   which a FOR_ITER never drops (an exception before it ran — "generator
 *   already executing" — leaves the reference of whoever runs it).
 * Anything else (a frame in CALL, map() or another C iterator between the
 * frame and the channel, SEND) is not proven: 0. */
static int for_iter_depth(struct _PyInterpreterFrame *f, PyCodeObject *co, const cb_gc_call *call,
                          struct _PyInterpreterFrame *inner)
{
    int d = cb_stackdepth_for_iter(co, frame_index(f, co));
    PyObject *expect;

    if (d < 1 || d > co->co_stacksize)
        return 0;
    if (!inner)
        expect = call && call->self && !call->args && in_eval_loop(call->caller) ? call->self
                                                                                 : NULL;
    else if (inner->owner == FRAME_OWNED_BY_GENERATOR)
        expect = (PyObject *)((char *)inner - offsetof(PyGenObject, gi_iframe));
    else
        expect = NULL;
    if (!expect || f->localsplus[co->co_nlocalsplus + d - 1] != expect)
        return 0;
    return co->co_nlocalsplus + d;
}

/* The same for a SEND on 3.11 (`yield from gen`): the stack below the value
 * sent (popped: its slot is released after the call) when the receiver just
 * below it is the generator whose frame runs above `f`. As for FOR_ITER,
 * that generator is popped only once finished; the value sent is not
 * visited. */
static int send_depth(struct _PyInterpreterFrame *f, PyCodeObject *co,
                      struct _PyInterpreterFrame *inner)
{
    int d = cb_stackdepth_send(co, frame_index(f, co));

    if (d < 2 || d > co->co_stacksize || !inner || inner->owner != FRAME_OWNED_BY_GENERATOR ||
        f->localsplus[co->co_nlocalsplus + d - 2] !=
            (PyObject *)((char *)inner - offsetof(PyGenObject, gi_iframe)))
        return 0;
    return co->co_nlocalsplus + d - 1;
}

/* The localsplus slots of `f`, executing (stacktop -1), known to be owned:
 * its locals, and its stack when a call in progress proves its depth. */
static int running_depth(struct _PyInterpreterFrame *f, PyCodeObject *co, const cb_gc_call *call,
                         struct _PyInterpreterFrame *inner)
{
    int n = call_depth(f, co, call);

    if (n == 0)
        n = for_iter_depth(f, co, call, inner);
    if (n == 0)
        n = send_depth(f, co, inner);
    return n == 0 ? co->co_nlocalsplus : n;
}

int cb_pystate_traverse(const cb_pystate *st, const cb_gc_call *call, visitproc visit, void *arg)
{
    /* The Python frame walked last: the one `f`'s instruction runs. */
    struct _PyInterpreterFrame *inner = NULL;

    for (struct _PyInterpreterFrame *f = top_frame(st); f; f = f->previous) {
        PyCodeObject *co;
        int n;

        if (f->owner == FRAME_OWNED_BY_GENERATOR) {
            /* Its generator visits the specials and, when recorded, the
             * stack (stacktop >= 0); while it executes (-1) nobody visits
             * its locals and stack: they are this tasklet's to visit. */
            if (f->stacktop < 0 && (co = frame_code(f))) {
                n = running_depth(f, co, call, inner);
                for (int i = 0; i < n; i++)
                    Py_VISIT(f->localsplus[i]);
            }
            inner = f;
            continue;
        }
#ifndef CB_PY311
        if (f->owner == FRAME_OWNED_BY_CSTACK)
            continue; /* an eval loop's entry frame, between `inner` and `f` */
#endif
        if (f->owner != FRAME_OWNED_BY_THREAD) {
            inner = f;
            continue;
        }
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
        if (!co) {
            inner = f;
            continue;
        }
        n = f->stacktop >= 0 ? f->stacktop : running_depth(f, co, call, inner);
        for (int i = 0; i < n; i++)
            Py_VISIT(f->localsplus[i]);
        inner = f;
    }
    return 0;
}

int cb_pystate_gens_hide(const cb_pystate *st, int hide)
{
    int n = 0;

    for (struct _PyInterpreterFrame *f = top_frame(st); f; f = f->previous) {
        PyGenObject *gen;
        PyGC_Head *gc;

        if (f->owner != FRAME_OWNED_BY_GENERATOR)
            continue;
        gen = (PyGenObject *)((char *)f - offsetof(PyGenObject, gi_iframe));
        if (gen->gi_frame_state != FRAME_EXECUTING)
            continue;
        gc = _Py_AS_GC((PyObject *)gen);
        if (hide && !(gc->_gc_prev & _PyGC_PREV_MASK_FINALIZED)) {
            gc->_gc_prev |= _PyGC_PREV_MASK_FINALIZED;
            n++;
        } else if (!hide && (gc->_gc_prev & _PyGC_PREV_MASK_FINALIZED)) {
            gc->_gc_prev &= ~(uintptr_t)_PyGC_PREV_MASK_FINALIZED;
            n++;
        }
    }
    return n;
}
