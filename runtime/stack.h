/* Tasklet stacks: lazily committed memory, pooled per thread.
 *
 * A stack holds C stacks (a thread's stack regions, region.h; its bounce
 * stack, transfer.c); Python frames and run state are on the heap.
 *
 *   [guard page][ C stack ........ top ]
 *
 * Every stack has a guard page, so every overflow faults (SIGSEGV, reported
 * by the fault handler) instead of writing a neighbour. A guarded stack costs
 * two memory maps; at the default vm.max_map_count (65530) only ~32k fit. Up
 * to a process-wide budget (half of what is left after a reserve for the rest
 * of the process) any pool gets new stacks; beyond it only a pool that has
 * none out does (a thread's first region), and a thread's tasklets share the
 * regions it has (region.c falls back to sharing when no region can be made).
 * A thread has at most 16 regions, so the budget is reached only with ~1800
 * threads that all use 16.
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
} cb_stack;

typedef struct cb_stack_pool {
    cb_stack *free;      /* cached stacks of size stack_size */
    unsigned nfree;
    unsigned max_free;
    unsigned live;       /* acquired and not yet released */
    size_t stack_size;   /* bytes of C stack per stack */
} cb_stack_pool;

typedef struct cb_stack_stats {
    size_t guarded_live;  /* stacks mapped (in use or cached), all guarded */
    size_t guard_budget;  /* stacks any pool may map (beyond: a pool's first) */
} cb_stack_stats;

/* Rounds a requested size to pages and checks it; 0 if out of range. */
size_t cb_stack_round_size(size_t size);
/* A tasklet stack size as scheduler.set_stack_size() and carbon_config take
 * it: rounded to pages, 0 unless between cb_stack_thread_size() and
 * CB_STACK_MAX_SIZE. Never smaller than a thread's: only touched pages cost
 * memory, and a tasklet then nests as deep as its thread's main tasklet. */
size_t cb_stack_tasklet_size(size_t size);
/* The C stack size a thread gets (the soft RLIMIT_STACK, which sizes the main
 * thread's stack and glibc's default for new threads; 8 MiB when unlimited),
 * rounded and clamped to [CB_STACK_MIN_SIZE, CB_STACK_MAX_SIZE]. It is the
 * default tasklet stack: a tasklet then has a thread's recursion budget. */
size_t cb_stack_thread_size(void);

void cb_stack_pool_init(cb_stack_pool *pool, size_t stack_size);
/* Returns a stack, or NULL with errno = ENOMEM when no memory can be mapped
 * or the budget is spent and the pool already has a stack out. */
cb_stack *cb_stack_acquire(cb_stack_pool *pool);
/* Gives a stack back; memory below the hot top is returned to the OS. */
void cb_stack_release(cb_stack_pool *pool, cb_stack *stack);
/* Returns the memory below the hot top to the OS if the stack went deeper. */
void cb_stack_trim(cb_stack *stack);
/* Unmaps every cached stack. */
void cb_stack_pool_clear(cb_stack_pool *pool);

/* 1 if addr lies in the guard page below this stack. Async-signal-safe. */
int cb_stack_guard_hit(const cb_stack *stack, const void *addr);

/* Process-wide limits and counters. */
void cb_stack_set_guard_budget(size_t guarded_stacks);
void cb_stack_get_stats(cb_stack_stats *stats);

#endif
