/* Tasklet stack pool (see stack.h). */
#define _GNU_SOURCE
#include "stack.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sanitizer.h"

#ifndef MAP_STACK
#define MAP_STACK 0
#endif

#define PAGE 4096u
/* Pages kept resident on release, below the top. */
#define HOT_BYTES (16u * 1024u)
#define DEFAULT_MAX_FREE 128u
/* Maps kept for the rest of the process when computing the guard budget. */
#define MAP_RESERVE 8192u
/* Stacks must not be backed by transparent huge pages. */
#define HUGE_PAGE (2u * 1024u * 1024u)

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t g_guard_budget = (size_t)-1; /* computed on first use */
static size_t g_guarded_live;

size_t cb_stack_round_size(size_t size)
{
    size = (size + PAGE - 1) & ~(size_t)(PAGE - 1);
    if (size < CB_STACK_MIN_SIZE || size > CB_STACK_MAX_SIZE)
        return 0;
    return size;
}

size_t cb_stack_tasklet_size(size_t size)
{
    size = cb_stack_round_size(size);
    return size >= cb_stack_thread_size() ? size : 0;
}

/* Read once: later changes of RLIMIT_STACK do not resize tasklet stacks
 * (they do not resize running threads either). Relaxed atomics: every thread
 * computes the same value. */
size_t cb_stack_thread_size(void)
{
    static _Atomic size_t cached;
    struct rlimit rl;
    size_t size = atomic_load_explicit(&cached, memory_order_relaxed);

    if (size)
        return size;
    size = 8u * 1024u * 1024u;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        size = rl.rlim_cur < CB_STACK_MAX_SIZE ? (size_t)rl.rlim_cur : CB_STACK_MAX_SIZE;
    size = (size + PAGE - 1) & ~(size_t)(PAGE - 1);
    if (size < CB_STACK_MIN_SIZE)
        size = CB_STACK_MIN_SIZE;
    atomic_store_explicit(&cached, size, memory_order_relaxed);
    return size;
}

static size_t read_max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    unsigned long n = 65530;

    if (f) {
        if (fscanf(f, "%lu", &n) != 1)
            n = 65530;
        fclose(f);
    }
    return n;
}

/* Caller holds g_lock. */
static size_t guard_budget_locked(void)
{
    if (g_guard_budget == (size_t)-1) {
        const char *env = getenv("CARBON_GUARDED_STACKS");
        size_t maps = read_max_map_count();

        if (env && *env)
            g_guard_budget = (size_t)strtoull(env, NULL, 10);
        else
            g_guard_budget = maps > MAP_RESERVE ? (maps - MAP_RESERVE) / 2 : 0;
    }
    return g_guard_budget;
}

/* (size_t)-1 restores the default, computed from vm.max_map_count. */
void cb_stack_set_guard_budget(size_t guarded_stacks)
{
    pthread_mutex_lock(&g_lock);
    g_guard_budget = guarded_stacks;
    pthread_mutex_unlock(&g_lock);
}

void cb_stack_get_stats(cb_stack_stats *stats)
{
    pthread_mutex_lock(&g_lock);
    stats->guarded_live = g_guarded_live;
    stats->guard_budget = guard_budget_locked();
    pthread_mutex_unlock(&g_lock);
}

/* Lays out a stack starting at `base` (first usable byte). */
static void set_geometry(cb_stack *s, char *base, size_t stack_size)
{
    s->lo = base;
    s->top = base + stack_size;
    s->size = stack_size;
    s->vg_id = CB_VALGRIND_STACK_REGISTER(s->lo, s->top);
}

static cb_stack *map_guarded(size_t stack_size)
{
    size_t len = PAGE + stack_size;
    cb_stack *s = malloc(sizeof *s);
    char *base;

    if (!s)
        return NULL;
    base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        free(s);
        return NULL;
    }
    if (mprotect(base, PAGE, PROT_NONE) != 0) {
        munmap(base, len);
        free(s);
        return NULL;
    }
    /* A huge page only fits a mapping that spans an aligned 2 MiB. */
    if (len >= HUGE_PAGE)
        madvise(base, len, MADV_NOHUGEPAGE);
    set_geometry(s, base + PAGE, stack_size);
    return s;
}

static void unmap_guarded(cb_stack *s)
{
    CB_VALGRIND_STACK_DEREGISTER(s->vg_id);
    munmap(s->lo - PAGE, PAGE + s->size);
    free(s);
}

/* Beyond the budget only a pool that has no stack out gets one (a thread's
 * first region, its bounce stack): the others share what they have. */
static cb_stack *new_stack(size_t stack_size, int first)
{
    cb_stack *s = NULL;
    int allowed;

    pthread_mutex_lock(&g_lock);
    allowed = first || g_guarded_live < guard_budget_locked();
    if (allowed)
        g_guarded_live++; /* reserved while mapping, outside the lock */
    pthread_mutex_unlock(&g_lock);
    if (allowed) {
        s = map_guarded(stack_size);
        if (!s) {
            pthread_mutex_lock(&g_lock);
            g_guarded_live--;
            pthread_mutex_unlock(&g_lock);
        }
    }
    if (!s)
        errno = ENOMEM;
    return s;
}

/* Unmaps a stack the pool does not keep. */
static void drop_stack(cb_stack *s)
{
    unmap_guarded(s);
    pthread_mutex_lock(&g_lock);
    g_guarded_live--;
    pthread_mutex_unlock(&g_lock);
}

void cb_stack_pool_init(cb_stack_pool *pool, size_t stack_size)
{
    memset(pool, 0, sizeof *pool);
    pool->stack_size = cb_stack_round_size(stack_size);
    if (!pool->stack_size)
        pool->stack_size = CB_STACK_DEFAULT_SIZE;
    pool->max_free = DEFAULT_MAX_FREE;
}

cb_stack *cb_stack_acquire(cb_stack_pool *pool)
{
    cb_stack *s = pool->free;

    if (s) {
        pool->free = s->next;
        pool->nfree--;
    } else {
        s = new_stack(pool->stack_size, pool->live == 0);
        if (!s)
            return NULL;
    }
    s->next = NULL;
    pool->live++;
    return s;
}

/* A fresh page reads as zero. A page the stack went through holds return
 * addresses and frame data somewhere: eight words spread over it are read
 * (one word alone can be zero by chance, every time for a deterministic
 * recursion). */
static int page_touched(const char *p)
{
    const volatile uint64_t *w =
        (const volatile uint64_t *)((uintptr_t)p & ~(uintptr_t)(PAGE - 1));

    for (unsigned i = 0; i < PAGE / sizeof *w; i += PAGE / sizeof *w / 8)
        if (w[i] != 0)
            return 1;
    return 0;
}

/* If the first page past the hot region was touched, the tasklet went
 * deeper, and everything beyond the hot region is given back. */
void cb_stack_trim(cb_stack *s)
{
    char *c_edge = s->top - HOT_BYTES;
    uintptr_t cut;

    if (c_edge - 8 > s->lo && page_touched(c_edge - 8)) {
        cut = (uintptr_t)c_edge & ~(uintptr_t)(PAGE - 1);
        madvise(s->lo, cut - (uintptr_t)s->lo, MADV_DONTNEED);
    }
}

void cb_stack_release(cb_stack_pool *pool, cb_stack *s)
{
    pool->live--;
    /* A stack of a size the pool no longer hands out goes back too. */
    if (pool->nfree >= pool->max_free || s->size != pool->stack_size) {
        drop_stack(s);
        return;
    }
    cb_stack_trim(s);
    s->next = pool->free;
    pool->free = s;
    pool->nfree++;
}

void cb_stack_pool_clear(cb_stack_pool *pool)
{
    while (pool->free) {
        cb_stack *s = pool->free;
        pool->free = s->next;
        pool->nfree--;
        drop_stack(s);
    }
}

int cb_stack_guard_hit(const cb_stack *s, const void *addr)
{
    const char *a = addr;

    return s && a >= s->lo - PAGE && a < s->lo;
}
