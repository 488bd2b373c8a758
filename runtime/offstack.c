/* The off-stack check (offstack.h). */
#include "offstack.h"

#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Checks made, per kind of record (the `what` of the call sites: a dozen). */
#define KINDS 32

static struct {
    const char *what;
    unsigned long long n;
} kinds[KINDS];

int cb_stack_owns(const void *p)
{
    cb_manager *m = cb_manager_peek();
    const cb_stack *s;
    const char *c = p;

    if (!m || !m->current || !(s = m->current->stack))
        return 0;
    return c >= s->lo && c < s->top;
}

static void count(const char *what)
{
    for (int i = 0; i < KINDS; i++) {
        if (!kinds[i].what)
            kinds[i].what = what;
        else if (kinds[i].what != what && strcmp(kinds[i].what, what) != 0)
            continue;
        kinds[i].n++;
        return;
    }
}

void cb_offstack_check(const void *p, const char *what)
{
    count(what);
    if (cb_stack_owns(p)) {
        fprintf(stderr,
                "carbon: internal error: %s at %p lies on the C stack of the tasklet that "
                "waits for it (docs/design.md, \"Nothing points into a suspended tasklet's C "
                "stack\")\n",
                what, p);
        abort();
    }
}

int cb_offstack_checks(int i, const char **what, unsigned long long *n)
{
    if (i < 0 || i >= KINDS || !kinds[i].what)
        return 0;
    *what = kinds[i].what;
    *n = kinds[i].n;
    return 1;
}
