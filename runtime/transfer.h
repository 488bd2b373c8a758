/* The tasklet switch mechanism: starting a tasklet, switching from the
 * running tasklet to another, a finished tasklet's last switch, and the
 * hand-off a tasklet makes on behalf of a main tasklet waiting in a plain run
 * of its queue. Who runs next, parents and run loops (policy) live in
 * schedule.c; only this file touches contexts and stacks of tasklets.
 *
 * What crosses a switch is one record, cb_transfer: the outgoing side builds
 * it on its own stack, the incoming side copies it to a local before anything
 * else happens. It carries the references the outgoing side gives up (the
 * running tasklet's own reference, replaced parents, a finished tasklet's
 * leftovers) and a finished tasklet's stack. Nothing else is handed over
 * through the manager, so a switch nested in another's arrival can never
 * overwrite what the outer one still has to release.
 *
 * Releasing a reference can run Python code (finalizers, weakref callbacks),
 * and that code can switch. The incoming side therefore never releases them
 * where it stands: they go to the manager's release list, which is emptied
 * only at a safe point, where the running tasklet is not inside a blocking
 * operation (cb_tasklet.busy), not waiting for a child (in_loop) and not
 * inside a callback (runtime trap): cb_release_pending().
 */
#ifndef CB_TRANSFER_H
#define CB_TRANSFER_H

#include "core.h"

#define CB_TRANSFER_REFS 8

typedef struct cb_transfer {
    PyObject *refs[CB_TRANSFER_REFS]; /* owned; released by the incoming side */
    int nrefs;
    cb_runstate *run;                 /* a finished tasklet's run state, to free */
} cb_transfer;

#define CB_TRANSFER_INIT {{NULL}, 0, NULL}

/* Adds a reference (stolen, may be NULL) that is released after the switch. */
static inline void cb_transfer_hold(cb_transfer *x, PyObject *o)
{
    if (o)
        x->refs[x->nrefs++] = o;
}

/* Gives back the thread's regions and stack-copy context (manager teardown). */
void cb_transfer_free_regions(cb_manager *m);

/* Releases (later) what `x` holds, when no switch happens after all. */
void cb_transfer_drop(cb_manager *m, cb_transfer *x);

/* Gives t a stack and a fresh interpreter state; it starts at the first
 * switch into it. -1 with MemoryError. */
int cb_transfer_prepare(cb_manager *m, cb_tasklet *t);

/* Called where failing is a MemoryError and nothing has changed yet, before
 * a switch to `to` (started or prepared) is committed: makes sure the copy
 * out of its region that the switch may need cannot fail. A suspended
 * occupant is copied out now; the running tasklet, if it is the occupant,
 * gets a buffer as big as its stack can be at the switch (the thread's spare
 * holds up to CB_SLICE_SPARE, and is made again here once a copy took it).
 * -1 with errno = ENOMEM (no exception set) if memory is refused. One
 * branch when `to`'s stack is in its region (the usual case). */
int cb_transfer_make_room_slow(cb_manager *m, cb_tasklet *to);
static inline int cb_transfer_make_room(cb_manager *m, cb_tasklet *to)
{
    return to->run->slice.resident ? 0 : cb_transfer_make_room_slow(m, to);
}

/* Makes `to` the running tasklet (it must be started, or prepared) and
 * returns when the current one is resumed. The caller has done everything
 * that may run Python code; `x` (may be NULL) is released after the switch. */
void cb_transfer_switch(cb_manager *m, cb_tasklet *to, cb_transfer *x);

/* The last switch of the finished current tasklet t: its stack and state go
 * with `x` and are released by `to`. */
__attribute__((noreturn)) void cb_transfer_final(cb_manager *m, cb_tasklet *t, cb_tasklet *to,
                                                 cb_transfer *x);

/* The current tasklet `cur` gives control back to the main tasklet, which
 * waits in a plain run of its queue (or in cb_run_until, whose `done` it
 * asks): the tasklet main would run next, with main's bookkeeping done
 * (possibly `cur` itself), or NULL when main must wake up. Replaced references go to `x`. No Python code runs here. */
cb_tasklet *cb_transfer_handoff(cb_manager *m, cb_tasklet *cur, cb_transfer *x);

/* Releases `o` (stolen) at the next safe point. */
void cb_release_later(cb_manager *m, PyObject *o);
/* At a safe point (see above) releases what is waiting; a no-op elsewhere.
 * The raised exception, if any, is kept. */
void cb_release_pending(cb_manager *m);
/* Every waiting reference, wherever we are (manager teardown). */
void cb_release_all(cb_manager *m);

#endif
