/* Stack regions shared by copying (region.h). */
#include "region.h"

#include <errno.h>
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

int cb_slice_reserve(cb_slice *s, size_t bytes)
{
    char *p;
    size_t cap;

    if (bytes <= s->cap)
        return 0;
    cap = (bytes + 63) & ~(size_t)63;
    p = realloc(s->saved, cap);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    s->saved = p;
    s->cap = cap;
    return 0;
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

void cb_slice_copy_out(cb_region_set *set, cb_slice *s, char *sp, size_t head)
{
    cb_region *r = s->region;
    char *top = r->stack->top;

    s->len = (size_t)(top - sp);
    /* The frames' red zones are poisoned for AddressSanitizer: the copy may
     * read them. */
    CB_ASAN_UNPOISON(sp, s->len);
    memcpy(s->saved + head, sp, s->len);
    s->resident = 0;
    r->occupant = NULL;
    leave_stale(set, r, sp);
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
    take_stale(s->region, s->region->stack->top);
    s->region->occupant = s;
    s->resident = 1;
    s->fresh = 0;
    s->stamp = ++set->clock;
}

void cb_slice_copy_in(cb_region_set *set, cb_slice *s, size_t head)
{
    char *top = s->region->stack->top;

    take_stale(s->region, top - s->len);
    memcpy(top - s->len, s->saved + head, s->len);
    s->region->occupant = s;
    s->resident = 1;
    s->fresh = 0;
    s->stamp = ++set->clock;
}
