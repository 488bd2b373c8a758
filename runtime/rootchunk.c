/* The adaptive size of new tasklets' root frame chunks (rootchunk.h). */
#include "rootchunk.h"
#include "pystate.h"

/* Room past the noted frames: CPython wants strictly more space than a frame
 * takes (_PyThreadState_HasStackSpace). Nothing more: a call a woken tasklet
 * makes past it borrows a 16 KiB chunk from chunkcache.c for its duration,
 * without a system call, and what a parked tasklet keeps is its whole cost
 * (measured needs, 3.11: 344 bytes three frames deep, +112 per frame of the
 * memory row's callers). */
#define SLACK 8u

size_t cb_rootchunk_need(const cb_pystate *st)
{
    const _PyStackChunk *c = st->datastack_chunk;
    size_t used;

    if (!c || !st->datastack_top)
        return 0;
    /* The newest chunk up to the top, then what each older one had in use
     * when the next was pushed (its `top`, in slots). */
    used = (size_t)((const char *)st->datastack_top - (const char *)c->data);
    while (c->previous) {
        c = c->previous;
        used += c->top * sizeof(PyObject *);
    }
    return offsetof(_PyStackChunk, data) + used;
}

static size_t fit(size_t need)
{
    size_t n = (need + SLACK + 15) & ~(size_t)15; /* malloc's granule */

    return n < CB_ROOT_CHUNK_MIN ? CB_ROOT_CHUNK_MIN : n > CB_ROOT_CHUNK_MAX ? CB_ROOT_CHUNK_MAX : n;
}

void cb_rootchunk_note(cb_rootchunk *rc, const cb_pystate *st)
{
    size_t need = cb_rootchunk_need(st);

    if (need > rc->peak) {
        rc->peak = need;
        if (fit(need) > cb_rootchunk_size(rc))
            rc->size = fit(need);
    }
    if (++rc->notes >= CB_ROOT_CHUNK_WINDOW) {
        rc->size = fit(rc->peak);
        rc->peak = 0;
        rc->notes = 0;
    }
}
