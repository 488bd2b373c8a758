/* The tasklet stack pool. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sanitizer.h"
#include "stack.h"
#include "switch.h"

#define PAGE 4096

static void test_geometry(void **state)
{
    cb_stack_pool pool;
    cb_stack *s;

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    assert_int_equal(pool.stack_size, CB_STACK_DEFAULT_SIZE);
    s = cb_stack_acquire(&pool);
    assert_non_null(s);
    assert_true(s->top > s->lo);
    assert_true((size_t)(s->top - s->lo) >= CB_STACK_DEFAULT_SIZE - PAGE);
    assert_int_equal((uintptr_t)s->top % 16, 0);
    /* The whole stack is usable memory. */
    memset(s->lo, 1, 64);
    memset(s->top - 64, 1, 64);
    memset(s->lo, 0, 64);
    cb_stack_release(&pool, s);
    cb_stack_pool_clear(&pool);
}

static void test_sizes_are_checked(void **state)
{
    (void)state;
    assert_int_equal(cb_stack_round_size(1), 0);
    assert_int_equal(cb_stack_round_size(CB_STACK_MAX_SIZE + 1), 0);
    assert_int_equal(cb_stack_round_size(CB_STACK_MIN_SIZE + 1), CB_STACK_MIN_SIZE + PAGE);
}

static void test_reuse(void **state)
{
    cb_stack_pool pool;
    cb_stack *a, *b;

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    a = cb_stack_acquire(&pool);
    assert_non_null(a);
    assert_int_equal(pool.live, 1);
    cb_stack_release(&pool, a);
    assert_int_equal(pool.live, 0);
    assert_int_equal(pool.nfree, 1);
    b = cb_stack_acquire(&pool);
    assert_ptr_equal(a, b);
    cb_stack_release(&pool, b);
    cb_stack_pool_clear(&pool);
    assert_int_equal(pool.nfree, 0);
}

static void test_cache_is_capped(void **state)
{
    cb_stack_pool pool;
    cb_stack *s[8];

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    pool.max_free = 3;
    for (int i = 0; i < 8; i++)
        assert_non_null(s[i] = cb_stack_acquire(&pool));
    for (int i = 0; i < 8; i++)
        cb_stack_release(&pool, s[i]);
    assert_int_equal(pool.nfree, 3);
    cb_stack_pool_clear(&pool);
}

static int resident(const void *addr)
{
    unsigned char v = 0;
    uintptr_t page = (uintptr_t)addr & ~(uintptr_t)(PAGE - 1);

    assert_int_equal(mincore((void *)page, PAGE, &v), 0);
    return v & 1;
}

/* Deep use is given back on release; the hot top stays. */
static void test_release_trims_cold_pages(void **state)
{
    cb_stack_pool pool;
    cb_stack *s;
    char *deep;

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    s = cb_stack_acquire(&pool);
    assert_non_null(s);
    deep = s->top - 128 * 1024;
    memset(deep, 0x5a, (size_t)(s->top - deep));
    assert_true(resident(deep));
    cb_stack_release(&pool, s);
    assert_false(resident(deep));
    assert_true(resident(s->top - 64));
    cb_stack_pool_clear(&pool);
}

/* A deep page whose first word happens to stay zero is still seen as used
 * (a deterministic recursion can leave the same zero word every time). */
static void test_release_trims_despite_zero_words(void **state)
{
    cb_stack_pool pool;
    cb_stack *s;
    char *deep, *c_probe;

    (void)state;
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    s = cb_stack_acquire(&pool);
    assert_non_null(s);
    deep = s->top - 128 * 1024;
    memset(deep, 0x5a, (size_t)(s->top - deep));
    c_probe = s->top - 16 * 1024 - 8;
    memset(c_probe, 0, 8);
    cb_stack_release(&pool, s);
    assert_false(resident(deep));
    cb_stack_pool_clear(&pool);
}

/* Beyond the map budget a pool that has a stack out gets no more (its
 * thread shares the regions it has); one that has none still gets one. Every
 * stack has a guard page. */
static void test_guard_budget(void **state)
{
    cb_stack_pool pool, other;
    cb_stack *s[4], *first, *one_more;
    cb_stack_stats before, during;

    (void)state;
    cb_stack_get_stats(&before);
    cb_stack_set_guard_budget(before.guarded_live + 4);
    cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
    cb_stack_pool_init(&other, CB_STACK_DEFAULT_SIZE);
    for (int i = 0; i < 4; i++) {
        s[i] = cb_stack_acquire(&pool);
        assert_non_null(s[i]);
        /* Every stack is usable, top to bottom. */
        memset(s[i]->lo, 0xab, 4096);
        memset(s[i]->top - 4096, 0xab, 4096);
    }
    errno = 0;
    assert_null(cb_stack_acquire(&pool));
    assert_int_equal(errno, ENOMEM);
    first = cb_stack_acquire(&other); /* its first: beyond the budget */
    assert_non_null(first);
    assert_null(cb_stack_acquire(&other));
    cb_stack_get_stats(&during);
    assert_int_equal(during.guarded_live, before.guarded_live + 5);
    assert_int_equal(during.guard_budget, before.guarded_live + 4);
    /* Stacks given back (not cached) make room under the budget again. */
    pool.max_free = 0;
    cb_stack_release(&pool, s[3]);
    assert_null(cb_stack_acquire(&other)); /* budget + 1 -> budget */
    cb_stack_release(&pool, s[2]);
    one_more = cb_stack_acquire(&other);
    assert_non_null(one_more);
    other.max_free = 0;
    cb_stack_release(&other, one_more);
    cb_stack_release(&other, first);
    for (int i = 0; i < 2; i++)
        cb_stack_release(&pool, s[i]);
    cb_stack_get_stats(&during);
    assert_int_equal(during.guarded_live, before.guarded_live);
    cb_stack_set_guard_budget((size_t)-1); /* back to the default */
}

/* ---- a guard-page hit, in a child process -------------------------------------- */

static cb_stack *overflowing;
static cb_ctx child_main, child_ctx;

static void on_segv(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)uc;
    _exit(cb_stack_guard_hit(overflowing, info->si_addr) ? 42 : 43);
}

static volatile int keep_going = 1;

static int recurse(int n)
{
    volatile char pad[512];

    pad[0] = (char)n;
    if (!keep_going)
        return pad[0];
    return recurse(n + 1) + pad[0];
}

static void overflow_entry(void *arg)
{
    (void)arg;
    cb_ctx_entered();
    recurse(0);
}

static void test_guard_page_hit(void **state)
{
    pid_t pid;
    int status;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static char altstack[64 * 1024];
        stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
        struct sigaction sa;
        cb_stack_pool pool;

        sigaltstack(&ss, NULL);
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigaction(SIGSEGV, &sa, NULL);
        cb_stack_pool_init(&pool, CB_STACK_MIN_SIZE);
        overflowing = cb_stack_acquire(&pool);
        if (!overflowing)
            _exit(44);
        cb_ctx_init_thread(&child_main);
        cb_ctx_make(&child_ctx, overflowing->lo, (size_t)(overflowing->top - overflowing->lo),
                    overflow_entry);
        cb_ctx_switch(&child_main, &child_ctx, NULL);
        _exit(45);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 42);
}

/* ---- exhaustion ------------------------------------------------------------------ */

static void test_exhaustion_is_an_error(void **state)
{
    pid_t pid;
    int status;

    (void)state;
#ifdef CB_ASAN
    skip(); /* the sanitizer's shadow memory does not fit an address-space limit */
#endif
    /* Nor does valgrind's own memory: the limit leaves the client nothing
     * (it passed there only while slab slots freed by an earlier test were
     * reused without a new map), and valgrind itself dies when it is hit. */
    if (CB_RUNNING_ON_VALGRIND)
        skip();
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {64u << 20, 64u << 20};
        cb_stack_pool pool;
        cb_stack *last = NULL, *s;
        int n = 0;

        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(50);
        cb_stack_pool_init(&pool, CB_STACK_DEFAULT_SIZE);
        while ((s = cb_stack_acquire(&pool)) != NULL && n < 100000) {
            last = s;
            n++;
        }
        if (s || errno != ENOMEM || n == 0)
            _exit(51);
        /* Giving one back makes room again. */
        cb_stack_release(&pool, last);
        if (!cb_stack_acquire(&pool))
            _exit(52);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_sizes_are_checked),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_cache_is_capped),
        cmocka_unit_test(test_release_trims_cold_pages),
        cmocka_unit_test(test_release_trims_despite_zero_words),
        cmocka_unit_test(test_guard_budget),
        cmocka_unit_test(test_guard_page_hit),
        cmocka_unit_test(test_exhaustion_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
