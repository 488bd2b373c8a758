/* ns per context switch for both backends of runtime/switch.h.
 *
 * Two contexts, the thread's own and one on a pooled tasklet stack, hand a
 * pointer back and forth; a round trip is two switches. Prints one JSON line
 * per backend: {"impl": "asm"|"ucontext", "ns_per_switch": ..., "switches": ...}
 * (the median of 7 timed runs after a warm-up).
 *
 *   switch_bench [round_trips]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stack.h"
#include "switch.h"

#define RUNS 7

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

#ifdef CB_HAVE_ASM_SWITCH
static void *asm_main_sp, *asm_co_sp;

static void asm_entry(void *arg)
{
    for (;;)
        arg = cb_asm_swap(&asm_co_sp, asm_main_sp, (void *)((uintptr_t)arg + 1));
}

static double bench_asm(cb_stack *st, long n)
{
    uintptr_t v = 0;
    double t;

    cb_asm_make(&asm_co_sp, st->lo, (size_t)(st->top - st->lo), asm_entry);
    for (long i = 0; i < 1000; i++) /* warm-up */
        v = (uintptr_t)cb_asm_swap(&asm_main_sp, asm_co_sp, (void *)v);
    t = now_ns();
    for (long i = 0; i < n; i++)
        v = (uintptr_t)cb_asm_swap(&asm_main_sp, asm_co_sp, (void *)v);
    t = now_ns() - t;
    if (v != (uintptr_t)n + 1000) {
        fprintf(stderr, "switch_bench: asm: wrong value %lu\n", (unsigned long)v);
        exit(1);
    }
    return t / (2.0 * (double)n);
}
#endif

static cb_uc_ctx uc_main, uc_co;

static void uc_entry(void *arg)
{
    for (;;)
        arg = cb_uc_swap(&uc_co, &uc_main, (void *)((uintptr_t)arg + 1));
}

static double bench_uc(cb_stack *st, long n)
{
    uintptr_t v = 0;
    double t;

    if (cb_uc_make(&uc_co, st->lo, (size_t)(st->top - st->lo), uc_entry) != 0) {
        perror("switch_bench: cb_uc_make");
        exit(1);
    }
    for (long i = 0; i < 1000; i++)
        v = (uintptr_t)cb_uc_swap(&uc_main, &uc_co, (void *)v);
    t = now_ns();
    for (long i = 0; i < n; i++)
        v = (uintptr_t)cb_uc_swap(&uc_main, &uc_co, (void *)v);
    t = now_ns() - t;
    if (v != (uintptr_t)n + 1000) {
        fprintf(stderr, "switch_bench: ucontext: wrong value %lu\n", (unsigned long)v);
        exit(1);
    }
    return t / (2.0 * (double)n);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    cb_stack_pool pool;
    double runs[RUNS];

    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
#ifdef CB_HAVE_ASM_SWITCH
    for (int r = 0; r < RUNS; r++) {
        cb_stack *st = cb_stack_acquire(&pool);
        if (!st) {
            perror("switch_bench: cb_stack_acquire");
            return 1;
        }
        runs[r] = bench_asm(st, n);
        cb_stack_release(&pool, st); /* the suspended context is abandoned */
    }
    printf("{\"impl\": \"asm\", \"ns_per_switch\": %.3f, \"switches\": %ld}\n", median(runs, RUNS), 2 * n);
#endif
    /* ucontext does a sigprocmask syscall per switch: fewer round trips. */
    n = n / 8 > 0 ? n / 8 : 1;
    for (int r = 0; r < RUNS; r++) {
        cb_stack *st = cb_stack_acquire(&pool);
        if (!st) {
            perror("switch_bench: cb_stack_acquire");
            return 1;
        }
        runs[r] = bench_uc(st, n);
        cb_stack_release(&pool, st);
    }
    printf("{\"impl\": \"ucontext\", \"ns_per_switch\": %.3f, \"switches\": %ld}\n", median(runs, RUNS), 2 * n);
    cb_stack_pool_clear(&pool);
    return 0;
}
