/* Generators running in suspended tasklets, hidden from a collection's
 * finalizer pass (docs/design.md, "Collecting suspended tasklets").
 *
 * A tasklet suspended inside a generator (`for x in gen()`, the generator
 * blocked in receive()) keeps that generator executing. When the collector
 * finds the tasklet unreachable, the generator is garbage with it, and the
 * collector calls finalizers in the order of its lists: the generator's can
 * come first, and closing a running generator fails ("Exception ignored ...
 * generator already executing"). So while a collection runs, the generators
 * executing in the tasklets it traverses are marked finalized (the collector
 * then skips them); the mark is taken off when the collection ends, before a
 * tasklet is killed by its finalizer, and when a tasklet is freed. The
 * tasklet's kill unwinds such a generator normally. All calls hold the GIL.
 */
#ifndef CB_GCMARK_H
#define CB_GCMARK_H

#include "core.h"

/* A collection starts / ends (the gc.callbacks hook, module.c). */
void cb_gcmark_begin(void);
void cb_gcmark_end(void);

/* From the tasklet's traverse, its frames visible (suspended): marks its
 * running generators while a collection runs. Allocates with malloc only. */
void cb_gcmark_tasklet(cb_tasklet *t);

/* Takes the marks of `t` off, if any: before it is killed, or freed. */
void cb_gcmark_release(cb_tasklet *t);

#endif
