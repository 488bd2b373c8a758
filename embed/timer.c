/* Tasklets waiting for a point in time (carbon.sleep) or a frame
 * (carbon.wait_frames).
 *
 * A waiter that goes into one of the loop's heaps is a heap block the
 * blocked call frees on its way out (CB_OFFSTACK): never on the tasklet's C
 * stack, which may be copied away while it waits (docs/design.md, "Nothing
 * points into a suspended tasklet's C stack"). The loop's heaps point at
 * waiters; a waiter leaves its heap when it is woken (by the loop) or when
 * its call returns early (kill, throw). Only the owning thread touches them.
 * A wait with no deadline links nothing: its waiter stays a local.
 *
 * Deadlines are checked against the precise monotonic clock, never libuv's
 * millisecond loop time, so a sleep never ends early. */
#include "internal.h"

#include <limits.h>

#define NOT_QUEUED ((size_t)-1)

struct cb_embed_waiter {
    long long key;
    unsigned long long seq;  /* arrival: equal keys wake in FIFO order */
    cb_tasklet *t;           /* borrowed: the waiting call holds a reference */
    cb_embed_heap *heap;     /* NULL once woken or detached */
    size_t index;
    unsigned flag;           /* set when woken (unless flagp points elsewhere) */
    unsigned *flagp;         /* the flag the wake sets: &flag, or a caller's */
    unsigned fired;          /* the heap woke it: its key passed */
};

/* ---- the heap ----------------------------------------------------------------------- */

static int before(const cb_embed_waiter *a, const cb_embed_waiter *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void place(cb_embed_heap *h, size_t i, cb_embed_waiter *w)
{
    h->v[i] = w;
    w->index = i;
}

static void sift_up(cb_embed_heap *h, size_t i)
{
    cb_embed_waiter *w = h->v[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(w, h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, w);
}

static void sift_down(cb_embed_heap *h, size_t i)
{
    cb_embed_waiter *w = h->v[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h->v[c + 1], h->v[c]))
            c++;
        if (!before(h->v[c], w))
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, w);
}

static int heap_push(cb_embed_heap *h, cb_embed_waiter *w)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cb_embed_waiter **v = PyMem_Realloc(h->v, cap * sizeof *v);
        if (!v) {
            PyErr_NoMemory();
            return -1;
        }
        h->v = v;
        h->cap = cap;
    }
    w->heap = h;
    h->v[h->n] = w;
    w->index = h->n++;
    sift_up(h, w->index);
    if (w->t->is_main)
        h->main_waiting++;
    return 0;
}

static void heap_remove(cb_embed_heap *h, cb_embed_waiter *w)
{
    size_t i = w->index;
    cb_embed_waiter *last = h->v[--h->n];

    if (w->t->is_main)
        h->main_waiting--;
    w->heap = NULL;
    w->index = NOT_QUEUED;
    if (last != w) {
        place(h, i, last);
        if (i > 0 && before(last, h->v[(i - 1) / 2]))
            sift_up(h, i);
        else
            sift_down(h, i);
    }
}

void cb_embed_heap_free(cb_embed_heap *h)
{
    cb_embed_heap_detach_all(h);
    PyMem_Free(h->v);
    h->v = NULL;
    h->cap = 0;
}

void cb_embed_heap_detach_all(cb_embed_heap *h)
{
    for (size_t i = 0; i < h->n; i++) {
        h->v[i]->heap = NULL;
        h->v[i]->index = NOT_QUEUED;
    }
    h->n = 0;
    h->main_waiting = 0;
}

long long cb_embed_heap_min(const cb_embed_heap *h)
{
    return h->n ? h->v[0]->key : LLONG_MAX;
}

void cb_embed_wake(cb_tasklet *t, unsigned *flag)
{
    cb_embed_loop *loop;

    *flag = 1;
    /* A main tasklet waiting in its loop is not queued: tell the loop not
     * to go on waiting this turn. */
    if (t->is_main && (loop = cb_embed_loop_peek()) && loop->mgr == t->mgr)
        loop->main_woken = 1;
    cb_make_runnable(t, 0); /* wakes its thread if it is another one */
}

size_t cb_embed_heap_wake(cb_embed_heap *h, long long limit)
{
    size_t n = 0;

    while (h->n && h->v[0]->key <= limit) {
        cb_embed_waiter *w = h->v[0];
        heap_remove(h, w);
        w->fired = 1;
        cb_embed_wake(w->t, w->flagp);
        n++;
    }
    return n;
}

/* ---- waiting ---------------------------------------------------------------------------------- */

/* Blocks until *flagp is set: by the heap when `key` passes, or (a caller's
 * flag) by whoever else wakes the tasklet. Returns 1 if the heap woke it, 0 if
 * something else did, -1 with an exception. */
static int wait_in(cb_embed_loop *loop, cb_embed_heap *h, long long key, unsigned *flagp,
                   const char *what)
{
    cb_manager *m = loop->mgr;
    cb_tasklet *cur = m->current;
    /* Only a waiter that goes into a heap must be off the stack (the top);
     * a caller's flag (flagp) is the caller's to place. */
    cb_embed_waiter local = {0};
    CB_OFFSTACK_IF(h != NULL, cb_embed_waiter, linked);
    cb_embed_waiter *w = h ? linked : &local;
    int rc = 0;

    if (!w) {
        PyErr_NoMemory();
        return -1;
    }
    w->key = key;
    w->seq = loop->seq++;
    w->t = cur;
    w->index = NOT_QUEUED;
    w->flagp = flagp ? flagp : &w->flag;
    if (cur->block_trap) {
        cb_embed_refuse_block(what);
        return -1;
    }
    if (flagp)
        cb_offstack_check(flagp, "a wait's flag");
    if (h) {
        cb_offstack_check(w, "a timer heap's waiter");
        if (heap_push(h, w) < 0)
            return -1;
    }
    Py_INCREF(cur); /* nothing else need keep a waiting tasklet alive */
    while (!*w->flagp) {
        if (cb_block_current(m, w->flagp) < 0) {
            rc = -1;
            break;
        }
    }
    /* Killed or thrown at before its time, or woken by someone else: leave
     * the heap, if the loop has not already let go of us (teardown). */
    if (w->heap)
        heap_remove(w->heap, w);
    Py_DECREF(cur);
    return rc < 0 ? -1 : (int)w->fired;
}

int cb_embed_sleep_until(cb_embed_loop *loop, long long deadline_ns)
{
    return wait_in(loop, &loop->sleepers, deadline_ns, NULL, "sleep") < 0 ? -1 : 0;
}

int cb_embed_wait_frame(cb_embed_loop *loop, unsigned long long frame)
{
    long long key = frame > (unsigned long long)LLONG_MAX ? LLONG_MAX : (long long)frame;

    return wait_in(loop, &loop->frame_waiters, key, NULL, "wait for frames") < 0 ? -1 : 0;
}

int cb_embed_wait_flag(cb_embed_loop *loop, unsigned *flag, long long deadline_ns, const char *what)
{
    int r = wait_in(loop, deadline_ns < 0 ? NULL : &loop->sleepers, deadline_ns, flag, what);

    return r < 0 ? -1 : !r;
}
