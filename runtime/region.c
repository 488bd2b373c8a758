/* Stack regions shared by copying (region.h). */
#include "region.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sanitizer.h"

void cb_region_set_init(cb_region_set *set)
{
    const char *env = getenv("CARBON_STACK_REGIONS");

    memset(set, 0, sizeof *set);
    set->max = CB_REGIONS_MAX;
    if (env && *env) {
        long n = strtol(env, NULL, 10);
        set->max = n < 1 ? 1u : n > (long)CB_REGIONS_MAX ? CB_REGIONS_MAX : (unsigned)n;
        set->fill = 1;
    }
}

static void region_free(cb_stack_pool *pool, cb_region *r)
{
    /* The pool may hand the stack out again, to a region that knows nothing
     * of what was poisoned in it. */
    CB_ASAN_UNPOISON(r->stack->lo, (size_t)(r->stack->top - r->stack->lo));
    cb_stack_release(pool, r->stack);
    free(r);
}

static void set_remove(cb_region_set *set, unsigned i)
{
    set->regions[i] = set->regions[--set->n];
    set->regions[set->n] = NULL;
}

void cb_region_set_clear(cb_region_set *set, cb_stack_pool *pool)
{
    free(set->spare);
    set->spare = NULL;
    free(set->scratch);
    set->scratch = NULL;
    for (unsigned i = set->n; i-- > 0;) {
        cb_region *r = set->regions[i];
        if (r->nbound == 0) {
            region_free(pool, r);
            set_remove(set, i);
        }
    }
}

static cb_region *region_new(cb_region_set *set, cb_stack_pool *pool)
{
    cb_region *r = calloc(1, sizeof *r);

    if (!r)
        return NULL;
    r->stack = cb_stack_acquire(pool);
    if (!r->stack) {
        free(r);
        return NULL;
    }
    set->regions[set->n++] = r;
    return r;
}

/* ---- policy --------------------------------------------------------------------------------- */

/* A new tasklet gets a region nobody is bound to, or a new one while the
 * thread has fewer than `max`; beyond that the region whose occupant became
 * resident longest ago (an idle one first), so tasklets that switch among
 * themselves often keep their own regions and copy nothing, and parked,
 * cold ones live as their slices. Regions of another stack size (before a
 * set_stack_size()) are only used when nothing else is possible. */
static cb_region *choose(cb_region_set *set, cb_stack_pool *pool)
{
    cb_region *best = NULL;
    unsigned long long best_stamp = 0;

    for (unsigned i = set->n; i-- > 0;) {
        cb_region *r = set->regions[i];
        if (r->nbound)
            continue;
        if (r->stack->size == pool->stack_size)
            return r;
        /* idle, of another size: make room for one of the right size */
        region_free(pool, r);
        set_remove(set, i);
    }
    if (set->n < set->max && (best = region_new(set, pool)))
        return best;
    for (unsigned i = 0; i < set->n; i++) {
        cb_region *r = set->regions[i];
        unsigned long long stamp = r->occupant ? r->occupant->stamp : 0;
        if (r->stack->size != pool->stack_size)
            continue;
        if (!best || stamp < best_stamp || (stamp == best_stamp && r->nbound < best->nbound)) {
            best = r;
            best_stamp = stamp;
        }
    }
    if (!best && set->n)
        best = set->regions[set->n - 1];
    return best;
}

int cb_region_bind(cb_region_set *set, cb_stack_pool *pool, cb_slice *s)
{
    cb_region *r = choose(set, pool);

    if (!r) {
        errno = ENOMEM;
        return -1;
    }
    r->nbound++;
    s->region = r;
    s->resident = 0;
    s->fresh = 1;
    s->warm = 0;
    s->packed = 0;
    s->len = 0;
    s->nrelink = 0;
    return 0;
}

/* ---- mechanism ------------------------------------------------------------------------------ */

void cb_region_unbind(cb_region_set *set, cb_stack_pool *pool, cb_slice *s)
{
    cb_region *r = s->region;

    free(s->saved);
    s->saved = NULL;
    s->cap = s->len = 0;
    s->region = NULL;
    if (!r)
        return;
    if (r->occupant == s)
        r->occupant = NULL;
    if (--r->nbound == 0) {
        /* Deep use is given back (the hot top stays); a region of a size
         * the pool no longer makes goes. */
        for (unsigned i = 0; i < set->n; i++) {
            if (set->regions[i] == r && r->stack->size != pool->stack_size) {
                region_free(pool, r);
                set_remove(set, i);
                return;
            }
        }
        cb_stack_trim(r->stack);
    }
}

int cb_region_spare_make(cb_region_set *set)
{
    if (!set->spare)
        set->spare = malloc(CB_SLICE_SPARE);
    if (!set->spare) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int cb_region_scratch_make(cb_region_set *set)
{
    if (!set->scratch) {
        set->scratch = malloc(CB_SLICE_SCRATCH);
        set->scratch_cap = set->scratch ? CB_SLICE_SCRATCH : 0;
    }
    if (!set->scratch) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int cb_region_spare_take(cb_region_set *set, cb_slice *s, size_t bytes)
{
    if (!set->spare || bytes > CB_SLICE_SPARE)
        return -1;
    /* The slice's own copy is stale (it is being copied out again). */
    free(s->saved);
    s->saved = set->spare;
    s->cap = CB_SLICE_SPARE;
    set->spare = NULL;
    return 0;
}

int cb_slice_reserve(cb_slice *s, size_t bytes)
{
    char *p;

    if (bytes <= s->cap)
        return 0;
    p = realloc(s->saved, bytes);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    s->saved = p;
    s->cap = bytes;
    return 0;
}

void cb_slice_fit(cb_slice *s, size_t bytes)
{
    char *p;

    if (bytes >= s->cap || !bytes)
        return;
    p = realloc(s->saved, bytes);
    if (p) {
        s->saved = p;
        s->cap = bytes;
    }
}

/* A slice is stored packed: a bitmap with one bit per 8-byte word of the
 * stack (set: the word is not zero), then the non-zero words in order. About
 * half the words of a parked tasklet's stack are zero (measured at a
 * receive() three frames deep: 584-632 of 1152 bytes on 3.11), so this halves
 * what a parked tasklet keeps; the copies are branch-free loops over ~150
 * words, paid only when a tasklet leaves or re-enters its region. Both loops
 * touch one word past the packed data (an unconditional store or load):
 * CB_SLICE_SLACK bytes more are allocated. */
size_t cb_slice_packed_size(const char *sp, size_t len)
{
    const uint64_t *w = (const uint64_t *)(const void *)sp;
    size_t nw = len / 8, nz = 0;

    for (size_t i = 0; i < nw; i++)
        nz += w[i] != 0;
    return (nw + 7) / 8 + nz * 8;
}

/* Under valgrind slices are kept raw: packing tests every word, and a stack
 * holds uninitialised ones (padding, unused locals), which memcheck would
 * report; a raw copy carries their state along instead. */
static int keep_raw(const cb_slice *s)
{
    return s->warm || CB_RUNNING_ON_VALGRIND;
}

size_t cb_slice_need(const cb_slice *s, const char *sp, const char *top, size_t head)
{
    size_t len = (size_t)(top - sp);

    return head + (keep_raw(s) ? len : cb_slice_packed_size(sp, len)) + CB_SLICE_SLACK;
}

static void pack(unsigned char *out, const char *sp, size_t len)
{
    const uint64_t *w = (const uint64_t *)(const void *)sp;
    size_t nw = len / 8, nb = (nw + 7) / 8;
    unsigned char *words = out + nb;
    size_t k = 0;

    for (size_t g = 0; g < nb; g++) {
        size_t n = nw - g * 8 < 8 ? nw - g * 8 : 8;
        unsigned bits = 0;
        for (size_t j = 0; j < n; j++) {
            uint64_t v = w[g * 8 + j];
            unsigned nz = v != 0;
            memcpy(words + 8 * k, &v, 8); /* overwritten next unless kept */
            k += nz;
            bits |= nz << j;
        }
        out[g] = (unsigned char)bits;
    }
}

static void unpack(char *sp, const unsigned char *in, size_t len)
{
    uint64_t *w = (uint64_t *)(void *)sp;
    size_t nw = len / 8, nb = (nw + 7) / 8;
    const unsigned char *words = in + nb;
    size_t k = 0;

    for (size_t g = 0; g < nb; g++) {
        size_t n = nw - g * 8 < 8 ? nw - g * 8 : 8;
        unsigned bits = in[g];
        for (size_t j = 0; j < n; j++) {
            uint64_t b = (bits >> j) & 1u, v;
            memcpy(&v, words + 8 * k, 8);
            w[g * 8 + j] = v & (0 - b);
            k += b;
        }
    }
}

/* What an occupant left in [lo, top) is stale: poisoned for ASan (any access
 * reports), or filled so that a stale pointer crashes at once. */
static void leave_stale(cb_region_set *set, cb_region *r, char *lo)
{
    char *top = r->stack->top;

    if (lo < r->stack->lo || lo > top)
        lo = r->stack->lo;
#ifdef CB_ASAN
    CB_ASAN_POISON(lo, (size_t)(top - lo));
#else
    if (set->fill)
        memset(lo, CB_REGION_FILL, (size_t)(top - lo));
#endif
    (void)set;
    if (!r->stale || lo < r->stale)
        r->stale = lo;
}

/* Before a new occupant uses [lo, top): nothing of it stays poisoned (the
 * frames a previous occupant left would read as red zones). */
static void take_stale(cb_region *r, char *lo)
{
    char *top = r->stack->top;

    if (r->stale && r->stale < lo)
        lo = r->stale;
    CB_ASAN_UNPOISON(lo, (size_t)(top - lo));
    r->stale = NULL;
}

static void copy_out_to(cb_region_set *set, cb_slice *s, char *sp, char *dst)
{
    cb_region *r = s->region;
    char *top = r->stack->top;

    s->len = (size_t)(top - sp);
    set->last_len = s->len;
    CB_ASAN_UNPOISON(sp, s->len); /* red zones of its frames: the copy reads them */
    s->packed = !keep_raw(s);
    if (s->packed)
        pack((unsigned char *)dst, sp, s->len);
    else
        memcpy(dst, sp, s->len);
    s->resident = 0;
    r->occupant = NULL;
    leave_stale(set, r, sp);
}

void cb_slice_copy_out(cb_region_set *set, cb_slice *s, char *sp, size_t head)
{
    copy_out_to(set, s, sp, s->saved + head);
}

char *cb_slice_stash_buffer(cb_region_set *set, size_t need)
{
    char *buf = set->scratch;

    if (!buf || need > CB_SLICE_SCRATCH)
        return NULL;
    if (set->scratch_cap < need || set->scratch_cap > need + CB_SLICE_TOLERANCE) {
        /* A slice of another size than the last: its contents do not
         * matter, and a game loop's are all alike (no realloc once warm). */
        char *p = realloc(buf, need);
        if (p) {
            set->scratch = buf = p;
            set->scratch_cap = need;
        } else if (set->scratch_cap < need) {
            return NULL;
        }
    }
    return buf;
}

void cb_slice_stash(cb_region_set *set, cb_slice *s, char *sp, size_t head)
{
    char *buf = set->scratch;
    size_t cap = set->scratch_cap;

    copy_out_to(set, s, sp, buf + head);
    set->scratch = s->saved;
    set->scratch_cap = s->cap;
    s->saved = buf;
    s->cap = cap;
    set->exchanges++;
}

void cb_slice_unstash(cb_region_set *set, cb_slice *in)
{
    char *buf = in->saved;
    size_t cap = in->cap;

    in->saved = set->scratch;
    in->cap = set->scratch_cap;
    set->scratch = buf;
    set->scratch_cap = cap;
}

void cb_slice_vacate(cb_region_set *set, cb_slice *s, char *sp)
{
    cb_region *r = s->region;

    s->resident = 0;
    if (r->occupant != s)
        return;
    r->occupant = NULL;
    leave_stale(set, r, sp);
}

void cb_slice_occupy(cb_region_set *set, cb_slice *s)
{
    cb_stack *stack = s->region->stack;
    size_t first = (size_t)(stack->top - stack->lo) < 4096 ? (size_t)(stack->top - stack->lo) : 4096;

    /* The new context's first frame is written just below the top. */
    take_stale(s->region, stack->top);
    CB_VALGRIND_MAKE_UNDEFINED(stack->top - first, first);
    s->region->occupant = s;
    s->resident = 1;
    s->fresh = 0;
    s->stamp = ++set->clock;
}

void cb_slice_copy_in(cb_region_set *set, cb_slice *s, size_t head)
{
    char *top = s->region->stack->top;

    take_stale(s->region, top - s->len);
    CB_VALGRIND_MAKE_UNDEFINED(top - s->len, s->len);
    if (s->packed)
        unpack(top - s->len, (const unsigned char *)s->saved + head, s->len);
    else
        memcpy(top - s->len, s->saved + head, s->len);
    s->warm = 1;
    s->region->occupant = s;
    s->resident = 1;
    s->fresh = 0;
    s->stamp = ++set->clock;
}

void cb_slice_prefetch(const cb_slice *s, size_t head)
{
    size_t n;

    if (s->resident || s->fresh || !s->saved)
        return;
    n = head + s->len < s->cap ? head + s->len : s->cap;
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch(s->saved + i, 0);
}
