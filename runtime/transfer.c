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
         * nothing, rather than in the switch; unless the switch's exchange()
         * will copy it to the thread's free buffer, which is made to hold it
         * here (a game loop's every wakeup; if the buffer is resized by
         * another exchange meanwhile and that fails, the switch's plain copy
         * takes the spare, which holds as much as the free buffer can). */
        cb_runstate *run = slice_owner(occ);
        need = evict_need(run, &n);
        if (!s->fresh && cb_slice_stash_buffer(&m->regions, need))
            return 0;
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

/* Copies the suspended `out` out of the region `in` is copied into, into
 * the thread's free buffer rather than out's own (cb_slice_stash), then `in`
 * in: -1 (nothing done) if `in` never ran or the free buffer cannot be had.
 * Measured on the game loop (10k tasklets, 16 regions, thread CPU time per
 * wakeup, prefetch_ahead on): ~180 -> ~170 ns with the copy going through a
 * scratch buffer into the buffer `in` leaves, ~4 ns less again straight
 * into the free buffer (no third copy). */
static void install(cb_manager *m, cb_runstate *run);

static int exchange(cb_manager *m, cb_runstate *out, cb_runstate *in)
{
    cb_slice *s = &out->slice;
    char *sp = cb_ctx_sp(&out->ctx);
    char *top = s->region->stack->top;
    size_t n, head, need;
    char *buf;

    if (in->slice.fresh)
        return -1;
    CB_ASAN_UNPOISON(sp, (size_t)(top - sp));
    n = cb_frames_hide(&out->st.frame, sp, top, NULL);
    head = n * sizeof(cb_relink);
    need = cb_slice_need(s, sp, top, head);
    buf = cb_slice_stash_buffer(&m->regions, need);
    if (!buf)
        return -1;
    s->nrelink = (unsigned)n;
    /* Before the copy: on 3.12+ the chain runs through entry frames on the
     * stack, which the copy leaves filled or poisoned. */
    cb_frames_hide(&out->st.frame, sp, top, (cb_relink *)buf);
    if (!s->warm)
        m->regions.typical = need;
    cb_rootchunk_note(&m->rootchunk, &out->st); /* what its frames take, parked */
    cb_slice_stash(&m->regions, s, sp, head);
    install(m, in);
    cb_slice_unstash(&m->regions, &in->slice);
    return 0;
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
    if (!r->occupant || exchange(m, slice_owner(r->occupant), to) < 0) {
        if (r->occupant)
            evict(m, slice_owner(r->occupant));
        install(m, to);
    }
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
    if (!run || bounce_make(m) < 0 || cb_region_spare_make(&m->regions) < 0 ||
        cb_region_scratch_make(&m->regions) < 0) {
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

static void prefetch_lines(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch((const char *)p + i);
}

/* Resuming a tasklet reads its object, its run state, its newest frames and
 * its C stack (or its slice): thousands of tasklets (a game loop's) do not
 * fit in the caches. While one runs, the ones after it are fetched in
 * stages, each stage's pointers read from what the stage before fetched
 * (a chain of dependent misses in one go stalls the switch): the object of
 * the third, the run state of the second, and what the next one's resume
 * reads. Only a hint: the queue may change meanwhile. Measured on the game
 * loop (10k tasklets, 16 regions; thread CPU time per wakeup): fetching
 * the next one's slice 200 -> 180 ns; in stages rather than in one go,
 * ~5 ns less; a stage further ahead (the slice of the second) ~10 ns more. */
static void prefetch_ahead(cb_manager *m, const cb_tasklet *n)
{
    cb_tasklet *a = cb_queue_next_of(m, (cb_tasklet *)n), *b, *c;
    const cb_runstate *run;

    if (!a)
        return;
    b = cb_queue_next_of(m, a);
    if (b) {
        c = cb_queue_next_of(m, b);
        if (c)
            prefetch_lines(c, 192);
        if (b->run)
            prefetch_lines(b->run, sizeof *b->run);
    }
    run = a->run;
    if (!run)
        return;
    if (!run->slice.resident) {
        /* Its stack is copied in from its slice. (Fetching the run state
         * of its region's occupant, which is copied out, as well made no
         * difference: that one ran 16 wakeups ago, still in the cache.) */
        cb_slice_prefetch(&run->slice, run->slice.nrelink * sizeof(cb_relink));
    } else {
        const char *sp = NULL;
#ifndef CB_SWITCH_UCONTEXT
        sp = run->ctx.sp;
#endif
        if (sp)
            prefetch_lines(sp, 1024);
    }
    if (run->st.datastack_top)
        prefetch_lines((const char *)run->st.datastack_top - 256, 256);
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
    /* The tasklets after n run next. */
    prefetch_ahead(m, n);
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
