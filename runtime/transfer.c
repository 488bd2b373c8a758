/* The switch mechanism (transfer.h). */
#include "transfer.h"

#include <errno.h>

#include "frames.h"
#include "preempt.h"
#include "region.h"
#include "rootchunk.h"
#include "sanitizer.h"

/* ---- the release list ------------------------------------------------------------- */

void cb_release_later(cb_manager *m, PyObject *o)
{
    if (!o)
        return;
    if (Py_REFCNT(o) > 1) {
        Py_DECREF(o); /* not the last reference: runs no code (the usual case) */
        return;
    }
    if (m->nlater == m->later_cap) {
        size_t cap = m->later_cap ? 2 * m->later_cap : 16;
        PyObject **p = PyMem_Realloc(m->later, cap * sizeof *p); /* runs no Python code */
        if (!p) {
            /* Out of memory: kept alive for ever rather than released in
             * the middle of a switch. */
            return;
        }
        m->later = p;
        m->later_cap = cap;
    }
    m->later[m->nlater++] = o;
}

static void release_drain(cb_manager *m)
{
    PyObject *saved = cb_err_fetch();

    /* One at a time from the end: what a release runs may switch, and other
     * tasklets may drain (or add to) the list meanwhile. */
    while (m->nlater) {
        PyObject *o = m->later[--m->nlater];
        Py_DECREF(o);
    }
    cb_err_restore(saved);
}

void cb_release_pending(cb_manager *m)
{
    cb_tasklet *cur = m->current;

    if (m->nlater && !m->switching && !m->runtime_trap && !cur->busy && !cur->in_loop &&
        !cb_is_finalizing())
        release_drain(m);
}

void cb_release_all(cb_manager *m)
{
    if (m->nlater)
        release_drain(m);
}

void cb_transfer_drop(cb_manager *m, cb_transfer *x)
{
    for (int i = 0; i < x->nrefs; i++)
        cb_release_later(m, x->refs[i]);
    x->nrefs = 0;
}

/* ---- the switch ---------------------------------------------------------------------- */

/* First thing on the incoming side: takes over what the outgoing side left. */
static void arrive(cb_manager *m, cb_transfer *in)
{
    cb_transfer x;

    m->switching = 0;
    if (!in)
        return;
    x = *in; /* `in` lies on a stack that may be copied over below */
    if (x.run) { /* a finished tasklet's: it leaves its region */
        cb_slice_vacate(&m->regions, &x.run->slice, cb_ctx_sp(&x.run->ctx));
        cb_region_unbind(&m->regions, &m->pool, &x.run->slice);
        PyMem_Free(x.run);
    }
    cb_transfer_drop(m, &x);
}

/* ---- sharing regions ------------------------------------------------------------------------- */

static void tasklet_entry(void *arg);

static cb_runstate *slice_owner(cb_slice *s)
{
    return (cb_runstate *)((char *)s - offsetof(cb_runstate, slice));
}

/* Bytes `run`'s slice buffer needs to copy its suspended C stack out of its
 * region; `*n`: the relink records that takes (frames.h). */
static size_t evict_need(cb_runstate *run, size_t *n)
{
    cb_slice *s = &run->slice;
    char *sp = cb_ctx_sp(&run->ctx);
    char *top = s->region->stack->top;

    /* Its frames' red zones are poisoned for AddressSanitizer: the copy
     * reads them. */
    CB_ASAN_UNPOISON(sp, (size_t)(top - sp));
    *n = cb_frames_hide(&run->st.frame, sp, top, NULL);
    return cb_slice_need(s, sp, top, *n * sizeof(cb_relink));
}

/* Copies it out, its buffer holding `need` bytes. Its frame chain first stops
 * leading into the region (frames.h); its saved innermost frame stays
 * readable. No Python code runs here. */
static void evict_copy(cb_manager *m, cb_runstate *run, size_t n, size_t need)
{
    cb_slice *s = &run->slice;
    char *sp = cb_ctx_sp(&run->ctx);

    cb_rootchunk_note(&m->rootchunk, &run->st); /* what its frames take, parked */
    if (s->cap > need + CB_SLICE_TOLERANCE)
        cb_slice_fit(s, need);
    s->nrelink = (unsigned)n;
    cb_frames_hide(&run->st.frame, sp, s->region->stack->top, (cb_relink *)s->saved);
    if (!s->warm)
        m->regions.typical = need;
    cb_slice_copy_out(&m->regions, s, sp, n * sizeof(cb_relink));
}

/* Room for `need` bytes, else (a woken tasklet's copy is kept raw) for its
 * packed form, which usually fits the buffer its first, packed copy was
 * sized to. -1 with nothing changed but that form (`need`: its size). */
static int evict_reserve(cb_runstate *run, size_t n, size_t *need)
{
    cb_slice *s = &run->slice;
    char *sp;

    if (cb_slice_reserve(s, *need) == 0)
        return 0;
    if (!s->warm || CB_RUNNING_ON_VALGRIND)
        return -1;
    sp = cb_ctx_sp(&run->ctx);
    s->warm = 0;
    *need = cb_slice_need(s, sp, s->region->stack->top, n * sizeof(cb_relink));
    return cb_slice_reserve(s, *need); /* on failure it stays packed: smaller */
}

/* Copies the suspended `run`'s C stack out of its region, in a switch: it
 * cannot fail. Usually the buffer reserved at prepare fits a first, packed
 * copy (tasklets of a thread tend to park alike); kept to size, as what a
 * parked tasklet keeps is its whole cost. If malloc() refuses, the thread's
 * spare buffer is taken; cb_transfer_make_room() made sure beforehand that
 * it, or the slice's own buffer, holds what this copy needs. */
static void evict(cb_manager *m, cb_runstate *run)
{
    size_t n, need = evict_need(run, &n);

    if (evict_reserve(run, n, &need) < 0 &&
        cb_region_spare_take(&m->regions, &run->slice, need) < 0)
        Py_FatalError("carbon: out of memory saving a suspended tasklet's C stack");
    evict_copy(m, run, n, need);
}

/* What may still run on the current tasklet's stack before its switch away
 * (the switch's own frames, from a safe point down to cb_ctx_switch). */
#define ROOM_MARGIN 4096u

int cb_transfer_make_room_slow(cb_manager *m, cb_tasklet *to)
{
    cb_slice *s = &to->run->slice, *occ = s->region->occupant;
    cb_slice *cur = m->current->run ? &m->current->run->slice : NULL;
    size_t n, need;

    if (cb_region_spare_make(&m->regions) < 0) /* the one a copy-out may take */
        return -1;
    if (!occ)
        return 0;
    if (occ != cur) {
        /* A suspended occupant: copied out now, where failing changes
         * nothing, rather than in the switch. */
        cb_runstate *run = slice_owner(occ);
        need = evict_need(run, &n);
        if (evict_reserve(run, n, &need) < 0) {
            errno = ENOMEM;
            return -1;
        }
        evict_copy(m, run, n, need);
        return 0;
    }
    /* The running tasklet itself will be copied out (through the bounce
     * context): its size is not known yet, but it is at most what lies above
     * here and the margin, plus a relink record per 64 bytes (one per entry
     * frame, each on an eval loop's C frame), the packed form's bitmap and
     * slack. */
    {
        char *here = (char *)__builtin_frame_address(0);
        char *top = s->region->stack->top;
        size_t len, bound;

        if (here < s->region->stack->lo || here >= top)
            return 0;
        len = (size_t)(top - here) + ROOM_MARGIN;
        bound = len + len / 4 + len / 64 + 64;
        if (bound <= occ->cap || bound <= CB_SLICE_SPARE)
            return 0; /* its buffer or the spare (made above) holds it */
        return cb_slice_reserve(occ, bound);
    }
}

/* Puts `run`'s C stack (or, never entered, its first context) in its region,
 * which nobody occupies. */
static void install(cb_manager *m, cb_runstate *run)
{
    cb_slice *s = &run->slice;
    cb_stack *stack = s->region->stack;

    if (s->fresh) {
        cb_slice_occupy(&m->regions, s); /* first: unpoisons what the context writes */
        if (cb_ctx_make(&run->ctx, stack->lo, (size_t)(stack->top - stack->lo), tasklet_entry) < 0)
            Py_FatalError("carbon: cannot create a tasklet context");
        return;
    }
    cb_slice_copy_in(&m->regions, s, s->nrelink * sizeof(cb_relink));
    cb_frames_unhide((const cb_relink *)s->saved, s->nrelink);
    s->nrelink = 0;
    cb_pystate_resume_frame(m->tstate, &run->st);
    cb_pystate_place(&run->st);
}

/* A switch to a tasklet whose region holds another's stack, made from the
 * region itself, goes through this small context: it copies the running
 * tasklet out and the target in, then switches to the target. */
typedef struct cb_bounce {
    cb_stack_pool pool;
    cb_stack *stack;
    cb_ctx ctx;
} cb_bounce;

typedef struct bounce_req {
    cb_manager *m;
    cb_runstate *from, *to;
    cb_transfer *x;
    int final;           /* from is finished: nothing to copy out */
} bounce_req;

static void bounce_entry(void *arg)
{
    cb_ctx_entered();
    for (;;) {
        /* The request and the record lie on from's stack, which is about to
         * be overwritten. */
        bounce_req req = *(bounce_req *)arg;
        cb_transfer x, *xp = NULL;
        cb_bounce *b = req.m->bounce;

        if (req.x) {
            x = *req.x;
            xp = &x;
        }
        if (req.final) {
            cb_slice_vacate(&req.m->regions, &req.from->slice, cb_ctx_sp(&req.from->ctx));
        } else {
            evict(req.m, req.from);
        }
        install(req.m, req.to);
        arg = cb_ctx_switch(&b->ctx, &req.to->ctx, xp);
    }
}

/* Made with the thread's first tasklet (a switch cannot fail). */
static int bounce_make(cb_manager *m)
{
    cb_bounce *b;

    if (m->bounce)
        return 0;
    b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    cb_stack_pool_init(&b->pool, CB_STACK_MIN_SIZE);
    b->stack = cb_stack_acquire(&b->pool);
    if (!b->stack) {
        free(b);
        return -1;
    }
    if (cb_ctx_make(&b->ctx, b->stack->lo, (size_t)(b->stack->top - b->stack->lo), bounce_entry) <
        0) {
        cb_stack_release(&b->pool, b->stack);
        cb_stack_pool_clear(&b->pool);
        free(b);
        return -1;
    }
    m->bounce = b;
    return 0;
}

void cb_transfer_free_regions(cb_manager *m)
{
    cb_bounce *b = m->bounce;

    cb_region_set_clear(&m->regions, &m->pool);
    if (b) {
        cb_stack_release(&b->pool, b->stack);
        cb_stack_pool_clear(&b->pool);
        free(b);
        m->bounce = NULL;
    }
}

/* The slow path of a switch: `to`'s stack is not in its region. */
static void *switch_in(cb_manager *m, cb_runstate *from, cb_runstate *to, cb_transfer *x,
                       int final)
{
    cb_region *r = to->slice.region;

    if (r->occupant == &from->slice) {
        bounce_req req = {m, from, to, x, final};
        cb_bounce *b = m->bounce;
        if (final)
            cb_ctx_switch_final(&from->ctx, &b->ctx, &req);
        return cb_ctx_switch(&from->ctx, &b->ctx, &req);
    }
    if (r->occupant)
        evict(m, slice_owner(r->occupant));
    install(m, to);
    if (final)
        cb_ctx_switch_final(&from->ctx, &to->ctx, x);
    return cb_ctx_switch(&from->ctx, &to->ctx, x);
}

/* Bookkeeping shared by both kinds of switch; `x` gets from's reference. */
static void depart(cb_manager *m, cb_tasklet *from, cb_tasklet *to, cb_transfer *x)
{
    if (m->switching)
        Py_FatalError("carbon: tasklet switch re-entered");
    m->switching = 1;
    m->switches++;
    to->times_switched_to++;
    if (m->timing)
        cb_preempt_account(m, from);
    Py_INCREF(to);
    m->current = to;
    x->refs[x->nrefs++] = (PyObject *)from; /* current's reference */
}

static __attribute__((noinline)) void switch_local(cb_manager *m, cb_tasklet *to)
{
    cb_transfer local = CB_TRANSFER_INIT;

    cb_transfer_switch(m, to, &local);
}

void cb_transfer_switch(cb_manager *m, cb_tasklet *to, cb_transfer *x)
{
    cb_tasklet *from = m->current;
    void *in;

    /* The record lives in the caller's frame: every byte of a suspended
     * tasklet's stack is kept by it while parked (a local record here would
     * add 80 bytes to each, unused when the caller brings its own). */
    if (!x) {
        switch_local(m, to);
        return;
    }
    depart(m, from, to, x);
    cb_pystate_switch(m->tstate, &from->run->st, &to->run->st);
    if (__builtin_expect(!to->run->slice.resident, 0)) {
        in = switch_in(m, from->run, to->run, x, 0);
    } else {
        cb_pystate_place(&to->run->st);
        in = cb_ctx_switch(&from->run->ctx, &to->run->ctx, x);
    }
    arrive(m, in);
}

void cb_transfer_final(cb_manager *m, cb_tasklet *t, cb_tasklet *to, cb_transfer *x)
{
    cb_runstate *run = t->run; /* freed by `to`, after the switch */

    depart(m, t, to, x);
    x->run = run;
    t->stack = NULL;
    t->started = 0;
    t->run = NULL;
    cb_pystate_finish(m->tstate, &run->st);
    cb_pystate_switch(m->tstate, &run->st, &to->run->st);
    /* Whatever the finished tasklet still held goes with its stack. */
    cb_transfer_hold(x, run->st.context);
    cb_transfer_hold(x, run->exc_state.exc_value);
    run->st.context = NULL;
    run->exc_state.exc_value = NULL;
    if (!to->run->slice.resident)
        switch_in(m, run, to->run, x, 1);
    cb_pystate_place(&to->run->st);
    cb_ctx_switch_final(&run->ctx, &to->run->ctx, x);
}

/* ---- starting ---------------------------------------------------------------------------- */

static void tasklet_entry(void *arg)
{
    cb_manager *m = cb_manager_peek();
    cb_tasklet *t;
#ifndef CB_PY313
    _PyCFrame cframe; /* lives as long as the tasklet */
#endif

    cb_ctx_entered();
    t = m->current;
#ifndef CB_PY313
    cb_pystate_boot(m->tstate, &t->run->st, &cframe);
#endif
    arrive(m, arg);
    cb_release_pending(m);
    cb_tasklet_body(m, t); /* never returns */
}

/* The run state and the root chunk of the frame data stack share one heap
 * block: [cb_runstate | root chunk]. Python frames are pointed at from frame
 * objects, generators and tracebacks, so they never live on the C stack. The
 * chunk is as big as the thread's parked tasklets' frames (rootchunk.h). */
#define RUN_BYTES ((sizeof(cb_runstate) + 15) & ~(size_t)15)

int cb_transfer_prepare(cb_manager *m, cb_tasklet *t)
{
    size_t chunk = cb_rootchunk_size(&m->rootchunk);
    cb_runstate *run = PyMem_Malloc(RUN_BYTES + chunk);

    /* Everything a switch into or away from t needs is allocated here, where
     * failing is a MemoryError: the slice buffer gets room for a typical
     * suspended stack (the last one copied out, and a little), so copying it
     * out usually needs no allocation (a deeper one is reallocated then;
     * cb_transfer_make_room() sees to it that this cannot fail). */
    if (!run || bounce_make(m) < 0 || cb_region_spare_make(&m->regions) < 0) {
        PyMem_Free(run);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a tasklet stack");
        return -1;
    }
    memset(run, 0, sizeof *run);
    if (cb_slice_reserve(&run->slice,
                         m->regions.typical ? m->regions.typical : CB_SLICE_RESERVE) < 0 ||
        cb_region_bind(&m->regions, &m->pool, &run->slice) < 0) {
        free(run->slice.saved);
        PyMem_Free(run);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a tasklet stack");
        return -1;
    }
    /* Its context is made when it first enters its region (install). */
    cb_pystate_init_new(&run->st, (char *)run + RUN_BYTES, chunk, &run->exc_state);
    t->stack = run->slice.region->stack;
    t->run = run;
    t->started = 1;
    return 0;
}

/* ---- the hand-off ------------------------------------------------------------------------- */

static void prefetch_resume(const cb_tasklet *t)
{
    const cb_runstate *run;
    const char *sp = NULL;

    if (!t)
        return;
    __builtin_prefetch(t);
    __builtin_prefetch((const char *)t + 64);
    __builtin_prefetch((const char *)t + 128);
    run = t->run;
    if (!run)
        return;
    __builtin_prefetch(run);
    __builtin_prefetch((const char *)run + 64);
#ifndef CB_SWITCH_UCONTEXT
    sp = run->ctx.sp;
#endif
    if (sp)
        for (int i = 0; i < 1024; i += 64)
            __builtin_prefetch(sp + i);
    if (run->st.datastack_top)
        for (int i = 1; i <= 4; i++)
            __builtin_prefetch((const char *)run->st.datastack_top - 64 * i);
}

cb_tasklet *cb_transfer_handoff(cb_manager *m, cb_tasklet *cur, cb_transfer *x)
{
    cb_tasklet *main = m->main;
    cb_tasklet *n;

    if (!m->main_plain_loop || m->stop_run || cb_g.schedule_callback || cb_g.fast_callback ||
        m->deferred_kills || main->pending_exc || main->child_exc || m->switch_trap ||
        m->runtime_trap || cb_is_finalizing() ||
        (m->deadline_ns && cb_preempt_clock(m, cur) >= m->deadline_ns) ||
        (m->run_done && m->run_done(m->run_done_arg)))
        return NULL;
    n = cb_queue_first(m);
    if (!n || (n != cur && n->in_loop))
        return NULL;
    if (!n->started && cb_transfer_prepare(m, n) < 0) {
        PyErr_Clear(); /* main will try again and raise it */
        return NULL;
    }
    if (cb_transfer_make_room(m, n) < 0)
        return NULL; /* the same */
    /* The tasklet after n runs next: start fetching what resuming it reads
     * (its object, the top of its C stack, its newest frames) while n runs. */
    prefetch_resume(cb_queue_next_of(m, n));
    /* What main's run_child() and loop would have counted. */
    main->times_switched_to++;
    m->switches++;
    m->completed++;
    if (n->parent != main) {
        cb_transfer_hold(x, (PyObject *)n->parent);
        n->parent = (cb_tasklet *)Py_NewRef(main);
    }
    return n;
}
