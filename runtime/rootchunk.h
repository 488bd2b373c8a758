/* How big a new tasklet's root frame chunk is: adapted, per thread, to what
 * its tasklets' frames take when they are parked.
 *
 * A tasklet's Python frames live in a root chunk in its run state's heap
 * block (transfer.c). Frames beyond it go to a chunk CPython allocates
 * itself: 16 KiB at least on 3.11-3.13 (push_chunk()'s
 * DATA_STACK_CHUNK_SIZE; the size cannot be asked for), of which a parked
 * tasklet keeps at least the first page resident. With a fixed 384-byte root
 * chunk a tasklet parked four Python frames deep cost 5.7-5.9 KB instead of
 * 1.5 KiB. Frames cannot move once made (frame objects, generators, the
 * eval loop's C locals point at them), so the root chunk is sized when the
 * tasklet starts, from what its siblings used: each tasklet copied out of its
 * region (a parked one: transfer.c's evict, a cold path) notes the bytes its
 * frames take; a new tasklet's root chunk holds the largest of the recent
 * notes, and a little more, between CB_ROOT_CHUNK_MIN and CB_ROOT_CHUNK_MAX.
 * The size only grows during a window of CB_ROOT_CHUNK_WINDOW notes and
 * falls back to that window's peak after it: one deep tasklet does not make
 * every later one big for ever.
 */
#ifndef CB_ROOTCHUNK_H
#define CB_ROOTCHUNK_H

#include <stddef.h>

struct cb_pystate;

/* What a tasklet three frames deep needs (tools/bench's memory row): 384 B
 * of chunk, 1.5 KiB of tasklet in all. */
#define CB_ROOT_CHUNK_MIN 384u
/* About 60 small Python frames. A tasklet that parks deeper overflows into a
 * 16 KiB chunk of CPython's as before; a larger root chunk would not save
 * that chunk's first page, only waste more when the tasklets that follow
 * park shallower. */
#define CB_ROOT_CHUNK_MAX 8192u
#define CB_ROOT_CHUNK_WINDOW 1024u

typedef struct cb_rootchunk {
    size_t size;      /* bytes of a new tasklet's root chunk (0: CB_ROOT_CHUNK_MIN) */
    size_t peak;      /* largest need noted in this window */
    unsigned notes;   /* notes in this window */
} cb_rootchunk;

/* Bytes a new tasklet's root chunk gets. */
static inline size_t cb_rootchunk_size(const cb_rootchunk *rc)
{
    return rc->size ? rc->size : CB_ROOT_CHUNK_MIN;
}

/* Notes what the frames of a suspended tasklet (its saved state `st`) take. */
void cb_rootchunk_note(cb_rootchunk *rc, const struct cb_pystate *st);

/* Bytes a single root chunk would need to hold every frame of `st` (its
 * chunk header and CPython's skipped first slot included; 0: no frames). */
size_t cb_rootchunk_need(const struct cb_pystate *st);

#endif
