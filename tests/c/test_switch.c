/* Context switching without Python: both backends and the cb_ctx wrapper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "switch.h"

#define ROUNDS 10000
#define NCTX 64

/* ---- raw backends -------------------------------------------------------------- */

static void *main_sp;
static void *coro_sp;

#ifdef CB_HAVE_ASM_SWITCH
static void asm_pingpong_entry(void *arg)
{
    uintptr_t v = (uintptr_t)arg;

    for (;;)
        v = (uintptr_t)cb_asm_swap(&coro_sp, main_sp, (void *)(v + 1));
}

static void test_asm_pingpong(void **state)
{
    cb_stack_pool pool;
    cb_stack *s;

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    s = cb_stack_acquire(&pool);
    assert_non_null(s);
    cb_asm_make(&coro_sp, s->lo, (size_t)(s->top - s->lo), asm_pingpong_entry);
    for (uintptr_t i = 0; i < ROUNDS; i++) {
        uintptr_t r = (uintptr_t)cb_asm_swap(&main_sp, coro_sp, (void *)(i * 2));
        assert_int_equal(r, i * 2 + 1);
    }
    cb_stack_release(&pool, s);
    cb_stack_pool_clear(&pool);
}

/* Each context keeps its own FP rounding mode across switches. */
static unsigned read_mxcsr(void)
{
    unsigned v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}

static void write_mxcsr(unsigned v)
{
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
}

static void asm_fpu_entry(void *arg)
{
    (void)arg;
    write_mxcsr((read_mxcsr() & ~0x6000u) | 0x6000u); /* round toward zero */
    for (;;) {
        unsigned mine = read_mxcsr() & 0x6000u;
        cb_asm_swap(&coro_sp, main_sp, (void *)(uintptr_t)mine);
    }
}

static void test_asm_preserves_fp_control(void **state)
{
    cb_stack_pool pool;
    cb_stack *s;
    unsigned before = read_mxcsr();

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    s = cb_stack_acquire(&pool);
    assert_non_null(s);
    cb_asm_make(&coro_sp, s->lo, (size_t)(s->top - s->lo), asm_fpu_entry);
    for (int i = 0; i < 3; i++) {
        uintptr_t theirs = (uintptr_t)cb_asm_swap(&main_sp, coro_sp, NULL);
        assert_int_equal(theirs, 0x6000u);
        assert_int_equal(read_mxcsr(), before);
    }
    cb_stack_release(&pool, s);
    cb_stack_pool_clear(&pool);
}
#endif

static cb_uc_ctx uc_main, uc_coro;

static void uc_pingpong_entry(void *arg)
{
    uintptr_t v = (uintptr_t)arg;

    for (;;)
        v = (uintptr_t)cb_uc_swap(&uc_coro, &uc_main, (void *)(v + 1));
}

static void test_ucontext_pingpong(void **state)
{
    cb_stack_pool pool;
    cb_stack *s;

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    s = cb_stack_acquire(&pool);
    assert_non_null(s);
    assert_int_equal(cb_uc_make(&uc_coro, s->lo, (size_t)(s->top - s->lo), uc_pingpong_entry), 0);
    for (uintptr_t i = 0; i < 1000; i++) {
        uintptr_t r = (uintptr_t)cb_uc_swap(&uc_main, &uc_coro, (void *)(i * 2));
        assert_int_equal(r, i * 2 + 1);
    }
    cb_stack_release(&pool, s);
    cb_stack_pool_clear(&pool);
}

/* ---- the wrapper: many interleaved contexts ------------------------------------- */

typedef struct worker {
    cb_ctx ctx;
    cb_stack *stack;
    int id;
    long sum;      /* written by the worker from a value kept on its stack */
    int finished;
} worker;

static cb_ctx thread_ctx;
static worker workers[NCTX];
static worker *running;

static long depth_sum(int id, int depth, int rounds)
{
    volatile long locals[16]; /* live across switches */
    long total = 0;

    for (int i = 0; i < 16; i++)
        locals[i] = id * 1000 + depth * 16 + i;
    if (depth > 0)
        total += depth_sum(id, depth - 1, rounds);
    for (int r = 0; r < rounds; r++)
        cb_ctx_switch(&running->ctx, &thread_ctx, NULL);
    for (int i = 0; i < 16; i++)
        total += locals[i];
    return total;
}

static void worker_entry(void *arg)
{
    worker *w = arg;

    cb_ctx_entered();
    /* Different depths so that frames of different sizes interleave. */
    w->sum = depth_sum(w->id, w->id % 7, 3);
    w->finished = 1;
    cb_ctx_switch_final(&w->ctx, &thread_ctx, NULL);
}

static long expected_sum(int id, int depth)
{
    long total = 0;

    for (int d = depth; d >= 0; d--)
        for (int i = 0; i < 16; i++)
            total += id * 1000 + d * 16 + i;
    return total;
}

static void test_interleaved_contexts(void **state)
{
    cb_stack_pool pool;
    int alive = NCTX;

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    cb_ctx_init_thread(&thread_ctx);
    for (int i = 0; i < NCTX; i++) {
        workers[i].id = i;
        workers[i].stack = cb_stack_acquire(&pool);
        assert_non_null(workers[i].stack);
        assert_int_equal(cb_ctx_make(&workers[i].ctx, workers[i].stack->lo,
                                     (size_t)(workers[i].stack->top - workers[i].stack->lo),
                                     worker_entry), 0);
    }
    while (alive > 0) {
        /* Resume in a changing order so the contexts finish out of order. */
        for (int k = 0; k < NCTX; k++) {
            int i = (k * 37 + alive) % NCTX;
            if (workers[i].finished)
                continue;
            running = &workers[i];
            cb_ctx_switch(&thread_ctx, &workers[i].ctx, &workers[i]);
            if (workers[i].finished)
                alive--;
        }
    }
    for (int i = 0; i < NCTX; i++) {
        assert_int_equal(workers[i].sum, expected_sum(i, i % 7));
        cb_stack_release(&pool, workers[i].stack);
    }
    assert_int_equal(pool.live, 0);
    cb_stack_pool_clear(&pool);
}

static void test_backend_name(void **state)
{
    (void)state;
#ifdef CB_SWITCH_UCONTEXT
    assert_string_equal(cb_ctx_backend(), "ucontext");
#else
    assert_string_equal(cb_ctx_backend(), "asm-x86_64");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifdef CB_HAVE_ASM_SWITCH
        cmocka_unit_test(test_asm_pingpong),
        cmocka_unit_test(test_asm_preserves_fp_control),
#endif
        cmocka_unit_test(test_ucontext_pingpong),
        cmocka_unit_test(test_interleaved_contexts),
        cmocka_unit_test(test_backend_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
