/* Generators running in suspended tasklets, hidden from a collection's
 * finalizer pass (gcmark.h). */
#include "gcmark.h"

#include <stdlib.h>

/* The tasklets whose generators are marked; t->gc_mark is 1 + the index.
 * Only tasklets with a generator in their frames get here, once per
 * collection. */
static cb_tasklet **marked;
static int marked_len, marked_cap;
static int collecting;

void cb_gcmark_begin(void)
{
    collecting = 1;
}

void cb_gcmark_end(void)
{
    collecting = 0;
    while (marked_len > 0)
        cb_gcmark_release(marked[marked_len - 1]);
}

void cb_gcmark_tasklet(cb_tasklet *t)
{
    if (!collecting || t->gc_mark || !cb_pystate_gens_hide(&t->run->st, 1))
        return;
    if (marked_len == marked_cap) {
        int cap = marked_cap ? 2 * marked_cap : 64;
        cb_tasklet **grown = realloc(marked, (size_t)cap * sizeof *grown);

        if (!grown) {
            /* Unmarked: at worst the message this avoids is printed. */
            cb_pystate_gens_hide(&t->run->st, 0);
            return;
        }
        marked = grown;
        marked_cap = cap;
    }
    marked[marked_len++] = t;
    t->gc_mark = marked_len;
}

void cb_gcmark_release(cb_tasklet *t)
{
    int i = t->gc_mark - 1;

    if (i < 0)
        return;
    if (t->run && cb_tasklet_needs_unwind(t))
        cb_pystate_gens_hide(&t->run->st, 0);
    t->gc_mark = 0;
    marked[i] = marked[--marked_len];
    if (i < marked_len)
        marked[i]->gc_mark = i + 1;
}
