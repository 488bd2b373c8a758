/* Stack regions: C stacks that several tasklets share by copying.
 *
 * A started tasklet runs at a fixed stack address (its C stack holds absolute
 * pointers), but it does not need that address to itself. Each thread keeps a
 * few regions, C stacks as large as the thread's own (a cb_stack of the
 * thread's pool: guard page below, committed lazily). A tasklet is bound to
 * one region for life; the region's `occupant` is the tasklet whose stack is
 * in it now. To run a tasklet whose region holds another's stack, the
 * occupant's used part [sp, top) is copied to a heap buffer (its slice) and
 * the tasklet's own slice copied back in: the way greenlets share the C stack.
 *
 * This file is the mechanism (regions, slices, the copies) and, apart, the
 * binding policy (cb_region_bind); transfer.c decides when to copy.
 */
#ifndef CB_REGION_H
#define CB_REGION_H

#include <stddef.h>

#include "stack.h"

/* Regions a thread may have before new tasklets share them (each costs a
 * page-table page and its touched top pages: ~8-12 KiB resident). */
#define CB_REGIONS_MAX 16u

/* Bytes a slice buffer gets when its tasklet is made before any slice was
 * copied out on the thread (then: the size of the last one; transfer.c). */
#define CB_SLICE_RESERVE 512u
/* Bytes a slice buffer has past its packed data (region.c's copy loops). */
#define CB_SLICE_SLACK 8u
/* A slice buffer at most this much larger than needed is kept as it is at
 * eviction (no realloc for tasklets that park alike but not exactly). */
#define CB_SLICE_TOLERANCE 48u

typedef struct cb_slice cb_slice;

typedef struct cb_region {
    cb_stack *stack;     /* the C stack (from the thread's pool) */
    cb_slice *occupant;  /* whose stack is in it now, or NULL */
    unsigned nbound;     /* tasklets bound to it */
    char *stale;         /* lowest byte of what its last occupant left (poisoned
                            for ASan, or filled), NULL when nothing is */
} cb_region;

/* A tasklet's claim on its region. While it is not the occupant, `saved`
 * holds [top - len, top) of the region as the tasklet left it, preceded by
 * `nrelink` relink records (transfer.c's frame bookkeeping): packed
 * (cb_slice_packed_size) the first time it is copied out — a parked tasklet
 * keeps half the bytes — and raw (one memcpy each way, ~4x faster) once it
 * has been copied back in: a tasklet that is woken is likely to be woken
 * again (a game loop's 10k tasklets, every frame). */
struct cb_slice {
    cb_region *region;        /* NULL: not bound (a main tasklet: the thread's stack) */
    char *saved;              /* heap buffer, kept for reuse while resident */
    size_t len;               /* stack bytes in `saved` (valid when !resident) */
    size_t cap;               /* bytes allocated at `saved` */
    unsigned nrelink;         /* relink records before the stack bytes */
    unsigned char resident;   /* its stack is in its region (or it has no region) */
    unsigned char fresh;      /* bound but never entered: nothing to copy in */
    unsigned char warm;       /* was copied back in at least once: kept raw */
    unsigned char packed;     /* `saved` holds the packed form (else raw bytes) */
    unsigned long long stamp; /* when it last became the occupant */
};

typedef struct cb_region_set {
    cb_region *regions[CB_REGIONS_MAX];
    unsigned n;
    unsigned max;             /* <= CB_REGIONS_MAX */
    unsigned long long clock; /* occupancy stamps */
    size_t typical;           /* buffer bytes of the last slice copied out */
    char *spare;              /* CB_SLICE_SPARE bytes for a copy-out malloc() refused */
    char *scratch;            /* the thread's free slice buffer (cb_slice_stash), or NULL */
    size_t scratch_cap;       /* bytes allocated at `scratch` */
    size_t last_len;          /* stack bytes of the last slice copied out */
    unsigned long long exchanges; /* copies out made through cb_slice_stash() */
    unsigned char fill;       /* fill what an occupant leaves with CB_REGION_FILL */
} cb_region_set;

/* What a stack copied out of its region leaves behind when the set's `fill`
 * is on (CARBON_STACK_REGIONS is set): a stale pointer into it then reads
 * 0xdbdb... and crashes at once rather than later. Under AddressSanitizer
 * the range is poisoned instead, so the access is reported where it happens. */
#define CB_REGION_FILL 0xdb

/* `max` is CB_REGIONS_MAX, or CARBON_STACK_REGIONS (1..CB_REGIONS_MAX) from
 * the environment: a test and tuning knob that makes tasklets share regions
 * (and copy) as soon as more than that many exist; it also turns on `fill`. */
void cb_region_set_init(cb_region_set *set);
/* Gives back every region nobody is bound to (the rest stay: leaked tasklets
 * keep theirs for ever). */
void cb_region_set_clear(cb_region_set *set, cb_stack_pool *pool);

/* Policy: binds `s` (not bound, not resident, fresh) to a region of the pool's
 * stack size. -1 with errno = ENOMEM if no region can be made. */
int cb_region_bind(cb_region_set *set, cb_stack_pool *pool, cb_slice *s);
/* A finished tasklet leaves its region without a copy; a region nobody is
 * bound to any more goes back to the pool when the set has too many. */
void cb_region_unbind(cb_region_set *set, cb_stack_pool *pool, cb_slice *s);

/* The thread's spare slice buffer: made where failing is a MemoryError
 * (a tasklet's prepare), so that copying a tasklet out, which cannot fail,
 * survives one refused malloc(). -1 with errno = ENOMEM. */
#define CB_SLICE_SPARE 16384u
int cb_region_spare_make(cb_region_set *set);
/* Gives s the spare buffer if it holds `bytes`: -1 if it cannot. */
int cb_region_spare_take(cb_region_set *set, cb_slice *s, size_t bytes);

/* The thread's free slice buffer (cb_slice_stash): made at prepare with
 * CB_SLICE_SCRATCH bytes if there is none; -1 with errno = ENOMEM. */
#define CB_SLICE_SCRATCH 16384u
int cb_region_scratch_make(cb_region_set *set);

/* Makes sure s->saved has room for `bytes`; -1 with errno = ENOMEM. */
int cb_slice_reserve(cb_slice *s, size_t bytes);
/* Shrinks s->saved to `bytes` if it is larger (kept as it is if that fails). */
void cb_slice_fit(cb_slice *s, size_t bytes);
/* Bytes the stack [sp, sp + len) takes in a slice buffer (it is stored
 * packed: zero words cost one bit), CB_SLICE_SLACK not included. len is a
 * multiple of 8. */
size_t cb_slice_packed_size(const char *sp, size_t len);
/* Bytes s->saved needs for [sp, top) after `head` bytes: packed or raw
 * (see cb_slice), slack included. */
size_t cb_slice_need(const cb_slice *s, const char *sp, const char *top, size_t head);
/* Copies [sp, top) of the region to s->saved after `head` bytes of relink
 * records (room made by the caller: cb_slice_need) and marks the region
 * empty. */
void cb_slice_copy_out(cb_region_set *set, cb_slice *s, char *sp, size_t head);
/* Copying an occupant out when `in`, of the same region, is copied in
 * next (a game loop's every wakeup): the copy goes to the thread's free
 * buffer instead of the occupant's own. cb_slice_stash_buffer() makes the
 * free buffer `need` bytes (cb_slice_need) unless it is within
 * CB_SLICE_TOLERANCE of that and returns it (the caller puts the relink
 * records first), or NULL: nothing changed, copy out as usual.
 * cb_slice_stash() then copies s out to it (as cb_slice_copy_out) and s
 * takes it; s's own buffer becomes the free one. Once `in` is copied in,
 * cb_slice_unstash(in) swaps in's buffer, just read and in the cache, with
 * the free one. So every wakeup writes to a buffer in the cache rather than
 * to a cold one, and each tasklet still holds one buffer, resident or not. */
char *cb_slice_stash_buffer(cb_region_set *set, size_t need);
void cb_slice_stash(cb_region_set *set, cb_slice *s, char *sp, size_t head);
void cb_slice_unstash(cb_region_set *set, cb_slice *in);
/* A finished occupant whose stack stopped at `sp` leaves its region
 * without a copy. */
void cb_slice_vacate(cb_region_set *set, cb_slice *s, char *sp);
/* Copies s's saved bytes back to the region and makes s the occupant. */
void cb_slice_copy_in(cb_region_set *set, cb_slice *s, size_t head);
/* Marks s the occupant of its region without a copy (a fresh tasklet). */
void cb_slice_occupy(cb_region_set *set, cb_slice *s);
/* A hint, no effect on state: s (saved bytes after `head`) may be copied
 * in soon; starts fetching its saved copy. (Fetching, for writing, the
 * buffer its region's occupant would be copied out to made the game loop
 * ~5 ns slower per wakeup once that copy went to the free buffer.) */
void cb_slice_prefetch(const cb_slice *s, size_t head);

#endif
