/* Tasklet stacks: lazily committed memory, pooled per thread.
 *
 * A stack slot holds the tasklet's C stack (growing down from `top`); its
 * Python frames and run state are on the heap (transfer.c).
 *
 *   guarded slot:  [guard page][ C stack ........ top ]
 *   slab slot:     [ C stack ........ top ]   (no guard)
 *
 * Each guarded slot costs two memory maps; at the default vm.max_map_count
 * (65530) only ~32k of them fit. Up to a budget (half of what is left after a
 * reserve for the rest of the process), stacks are guarded; beyond it they are
 * carved out of unguarded slabs, one map per 64 slots. An unguarded stack is
 * checked for overflow at each switch away from it (its lowest bytes must
 * still be zero), and the C recursion budget of the interpreter is scaled to
 * the stack size so that Python code never gets that far.
 */
#ifndef CB_STACK_H
#define CB_STACK_H

#include <stddef.h>

#define CB_STACK_DEFAULT_SIZE (256u * 1024u)
#define CB_STACK_MIN_SIZE (128u * 1024u)
#define CB_STACK_MAX_SIZE (256u * 1024u * 1024u)

typedef struct cb_stack {
    char *lo;              /* lowest usable byte of the C stack */
    char *top;             /* the C stack grows down from here */
    size_t size;           /* bytes of C stack it was made with */
    struct cb_stack *next; /* free-list link */
    unsigned vg_id;        /* valgrind stack id */
    unsigned char guarded;
} cb_stack;

typedef struct cb_stack_pool {
    cb_stack *free;      /* cached stacks of size stack_size */
    unsigned nfree;
    unsigned max_free;
    unsigned live;       /* acquired and not yet released */
    size_t stack_size;   /* bytes of C stack per stack */
} cb_stack_pool;

typedef struct cb_stack_stats {
    size_t guarded_live;  /* guarded stacks mapped (in use or cached) */
    size_t slab_live;     /* slab slots in use or cached */
    size_t slab_free;     /* slab slots returned to the process-wide list */
    size_t guard_budget;  /* guarded stacks allowed */
    size_t slabs;         /* slabs mapped */
} cb_stack_stats;

/* Rounds a requested size to pages and checks it; 0 if out of range. */
size_t cb_stack_round_size(size_t size);
/* The C stack size a thread gets (the soft RLIMIT_STACK, which sizes the main
 * thread's stack and glibc's default for new threads; 8 MiB when unlimited),
 * rounded and clamped to [CB_STACK_MIN_SIZE, CB_STACK_MAX_SIZE]. It is the
 * default tasklet stack: a tasklet then has a thread's recursion budget. */
size_t cb_stack_thread_size(void);

void cb_stack_pool_init(cb_stack_pool *pool, size_t stack_size);
/* Returns a stack, or NULL with errno = ENOMEM when no memory can be mapped. */
cb_stack *cb_stack_acquire(cb_stack_pool *pool);
/* Gives a stack back; memory below the hot top is returned to the OS. */
void cb_stack_release(cb_stack_pool *pool, cb_stack *stack);
/* Returns the memory below the hot top to the OS if the stack went deeper. */
void cb_stack_trim(cb_stack *stack);
/* Unmaps (or returns to the process) every cached stack. */
void cb_stack_pool_clear(cb_stack_pool *pool);

/* 0 if the stack has not overflowed, -1 if an unguarded stack's lowest bytes
 * were written. */
int cb_stack_check(const cb_stack *stack);
/* 1 if addr lies in the guard page below this stack. Async-signal-safe. */
int cb_stack_guard_hit(const cb_stack *stack, const void *addr);

/* Process-wide limits and counters. */
void cb_stack_set_guard_budget(size_t guarded_stacks);
void cb_stack_get_stats(cb_stack_stats *stats);

#endif
