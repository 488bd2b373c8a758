/* carbon_tick: the budget, error reporting, sleep and frame waits, stats. */
#define _GNU_SOURCE
#include "test_embed_util.h"

#include <stdlib.h>

static int setup(void **state)
{
    carbon_config cfg;

    (void)state;
    carbon_config_init(&cfg);
    cfg.error = record_error;
    cfg.userdata = &g_reported;
    if (carbon_init(&cfg) != CARBON_OK) {
        fprintf(stderr, "carbon_init: %s\n", carbon_last_error());
        return -1;
    }
    return carbon_run_string("import scheduler, carbon, time") == CARBON_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return carbon_shutdown() == CARBON_OK ? 0 : -1;
}

/* 10k runnable tasklets of ~50 us each, 1 ms budget: no tasklet starts once
 * the budget is spent, the tick ends right after the last one, the rest are
 * left for the next ticks, and every tasklet runs exactly once. */
static void test_budget_10k(void **state)
{
    carbon_stats st;
    unsigned long long total = 0;
    long long budget = 1000000;
    int misses = 0;

    (void)state;
    RUN("runs = []\n"
        "slow = True\n"
        "def work(i):\n"
        "    t0 = time.monotonic_ns()\n"
        "    if slow:\n"
        "        while time.monotonic_ns() - t0 < 50_000: pass\n"
        "    runs.append((i, t0, time.monotonic_ns()))\n"
        "for i in range(10_000): scheduler.tasklet(work)(i)\n");
    for (int k = 0; k < 10; k++) {
        long long t0 = now_ns(), t1;
        char check[768];

        assert_int_equal(carbon_tick(budget, &st), CARBON_OK);
        t1 = now_ns();
        assert_true(st.tasklets_run >= 1);
        assert_true(st.tasklets_run < 10000);
        assert_int_equal(st.switches, 2 * st.tasklets_run);
        total += st.tasklets_run;
        assert_int_equal(st.runnable, 10000 - total);
        assert_true(st.elapsed_ns <= t1 - t0);
        /* Every tasklet but the last ended before the budget was spent (the
         * check before the next one passed), and the tick returned right
         * after the last one (walking 10k tasklets for `blocked`). Without
         * the budget the tick would take 500 ms; the slack and the one
         * allowed miss below cover preemption on a loaded machine. */
        snprintf(check, sizeof check,
                 "mine = runs[len(runs) - %llu:]\n"
                 "assert len(runs) == %llu, len(runs)\n"
                 "within = (all(r[2] - %lld < %lld + %lld for r in mine[:-1])\n"
                 "          and %lld - mine[-1][2] < %lld)\n"
                 "if not within: print('    tick over budget:', [r[2] - %lld for r in mine], %lld - mine[-1][2])\n",
                 (unsigned long long)st.tasklets_run, total, t0, budget, 2000000 * time_scale(), t1,
                 5000000 * time_scale(), t0, t1);
        RUN(check);
        if (carbon_run_string("assert within") != CARBON_OK)
            misses++;
    }
    assert_true(misses <= 1);
    RUN("slow = False");
    for (int k = 0; k < 1000 && total < 10000; k++) {
        assert_int_equal(carbon_tick(10 * budget, &st), CARBON_OK);
        total += st.tasklets_run;
    }
    assert_int_equal(total, 10000);
    assert_int_equal(st.runnable, 0);
    RUN("assert sorted(r[0] for r in runs) == list(range(10_000))");
}

/* A budget of 0 still runs one tasklet per tick. */
static void test_zero_budget_progresses(void **state)
{
    carbon_stats st;

    (void)state;
    RUN("for i in range(3): scheduler.tasklet(lambda: None)()");
    for (int i = 3; i > 0; i--) {
        assert_int_equal(carbon_tick(0, &st), CARBON_OK);
        assert_int_equal(st.tasklets_run, 1);
        assert_int_equal(st.runnable, (unsigned long long)i - 1);
    }
}

static void test_exception_reported_tick_goes_on(void **state)
{
    carbon_stats st;

    (void)state;
    memset(&g_reported, 0, sizeof g_reported);
    RUN("done = []\n"
        "def good(x): done.append(x)\n"
        "def exploding_entity(): raise ValueError('boom')\n"
        "scheduler.tasklet(good)(1)\n"
        "scheduler.tasklet(exploding_entity)()\n"
        "scheduler.tasklet(good)(2)\n");
    assert_int_equal(carbon_tick(100000000, &st), CARBON_OK);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.tasklets_run, 3);
    assert_int_equal(g_reported.count, 1);
    assert_string_equal(g_reported.tasklet, "__main__.exploding_entity");
    assert_non_null(strstr(g_reported.traceback, "Traceback"));
    assert_non_null(strstr(g_reported.traceback, "ValueError: boom"));
    RUN("assert done == [1, 2], done");
    /* The next tick runs normally; TaskletExit is never reported. */
    RUN("def quitter(): raise scheduler.TaskletExit\n"
        "scheduler.tasklet(quitter)(); scheduler.tasklet(good)(3)\n");
    assert_int_equal(carbon_tick(100000000, &st), CARBON_OK);
    assert_int_equal(st.errors, 0);
    assert_int_equal(g_reported.count, 1);
    RUN("assert done == [1, 2, 3], done");
}

/* A switch trap left set by game code: the tick cannot run tasklets, says
 * so, and recovers once it is cleared. */
static void test_switch_trap(void **state)
{
    carbon_stats st;

    (void)state;
    memset(&g_reported, 0, sizeof g_reported);
    RUN("scheduler.tasklet(lambda: None)(); scheduler.switch_trap(1)");
    assert_int_equal(carbon_tick(1000000, &st), CARBON_EPYTHON);
    assert_int_equal(g_reported.count, 1);
    assert_non_null(strstr(g_reported.traceback, "switch_trap"));
    assert_int_equal(st.runnable, 1);
    RUN("scheduler.switch_trap(-1)");
    assert_int_equal(carbon_tick(1000000, &st), CARBON_OK);
    assert_int_equal(st.runnable, 0);
}

#define MAX_TICKS 400

/* Sleepers never wake early, and wake on the first tick after their
 * deadline: tick F-1 started before the deadline. */
static void test_sleep_precision(void **state)
{
    static long long start[MAX_TICKS + 2], end[MAX_TICKS + 2];
    carbon_stats st;
    int n = 0;

    (void)state;
    RUN("woke = []\n"
        "def sleeper(s):\n"
        "    t0 = time.monotonic_ns()\n"
        "    carbon.sleep(s)\n"
        "    woke.append((s, t0, time.monotonic_ns(), carbon.frame()))\n"
        "for i in range(20): scheduler.tasklet(sleeper)(0.0013 * i + 0.0005)\n");
    /* Frame numbers index start/end: this thread's frame counter. */
    for (;;) {
        long long t0 = now_ns();
        /* A budget large enough that every woken tasklet runs in the tick
         * that woke it: the frame it reads is the frame it was woken in. */
        assert_int_equal(carbon_tick(1000000000, &st), CARBON_OK);
        assert_true(st.frame < MAX_TICKS);
        start[st.frame] = t0;
        end[st.frame] = now_ns();
        if (carbon_run_string("assert len(woke) == 20") == CARBON_OK)
            break;
        assert_true(++n < 300);
        sleep_ns(700000);
    }
    /* Hand the host's tick times to Python, indexed by frame number. */
    {
        size_t cap = 64 + 2 * (size_t)(MAX_TICKS + 2) * 24, len = 0;
        char *src = malloc(cap);
        assert_non_null(src);
        len += (size_t)snprintf(src + len, cap - len, "starts = [");
        for (int f = 0; f < MAX_TICKS; f++)
            len += (size_t)snprintf(src + len, cap - len, "%lld,", start[f]);
        len += (size_t)snprintf(src + len, cap - len, "]\nends = [");
        for (int f = 0; f < MAX_TICKS; f++)
            len += (size_t)snprintf(src + len, cap - len, "%lld,", end[f]);
        snprintf(src + len, cap - len, "]\n");
        RUN(src);
        free(src);
    }
    RUN("for s, t0, t1, f in woke:\n"
        "    deadline = t0 + s * 1e9\n"
        "    assert t1 >= deadline, ('woke early', s, t1 - t0)\n"
        "    assert deadline <= ends[f], ('woken before its deadline', s, f)\n"
        "    assert deadline > starts[f - 1], ('late: tick %d began after the deadline' % (f - 1), s)\n");
    RUN("assert sorted(woke) == woke");
}

static void test_wait_frames(void **state)
{
    carbon_stats st;

    (void)state;
    RUN("seen = []\n"
        "def waiter(n):\n"
        "    f0 = carbon.frame()\n"
        "    carbon.wait_frames(n)\n"
        "    seen.append((n, carbon.frame() - f0))\n"
        "    carbon.wait_frames(0)\n"
        "    seen.append((0, carbon.frame() - f0 - n))\n"
        "def stepper():\n"
        "    for i in range(5):\n"
        "        f = carbon.frame(); carbon.wait_frames(); seen.append(('step', carbon.frame() - f))\n"
        "for n in (1, 2, 5): scheduler.tasklet(waiter)(n)\n"
        "scheduler.tasklet(stepper)()\n");
    for (int i = 0; i < 8; i++) {
        /* Budget enough for all: a tasklet left runnable would see a
         * later frame than the one that woke it. */
        assert_int_equal(carbon_tick(1000000000, &st), CARBON_OK);
        if (i == 0) {
            assert_int_equal(st.waiting_frames, 4);
            assert_int_equal(st.blocked, 0);
        }
    }
    RUN("assert sorted(x for x in seen if x[0] != 'step') == [(0, 0)] * 3 + [(1, 1), (2, 2), (5, 5)], seen\n"
        "assert [x for x in seen if x[0] == 'step'] == [('step', 1)] * 5, seen\n");
}

static void test_stats_counts(void **state)
{
    carbon_stats st;

    (void)state;
    RUN("ch = scheduler.channel()\n"
        "def sleepy(): carbon.sleep(100)\n"
        "def framey(): carbon.wait_frames(1000)\n"
        "def stuck(): ch.receive()\n"
        "def remover(): scheduler.schedule_remove()\n"
        "def busy():\n"
        "    while True: scheduler.schedule()\n"
        "ts = [scheduler.tasklet(f)() for f in [sleepy]*3 + [framey]*2 + [stuck]*4 + [remover] + [busy]]\n");
    /* `busy` stays runnable: the tick lasts its whole budget. */
    assert_int_equal(carbon_tick(20000000 * time_scale(), &st), CARBON_OK);
    assert_int_equal(st.sleeping, 3);
    assert_int_equal(st.waiting_frames, 2);
    assert_int_equal(st.blocked, 5);
    assert_int_equal(st.runnable, 1);
    assert_true(st.elapsed_ns > 0);
    /* Killing them: the sleepers leave the heaps. */
    RUN("for t in ts: t.kill()");
    assert_int_equal(carbon_tick(1000000, &st), CARBON_OK);
    assert_int_equal(st.sleeping, 0);
    assert_int_equal(st.waiting_frames, 0);
    assert_int_equal(st.blocked, 0);
    assert_int_equal(st.runnable, 0);
}

/* A tasklet of the host blocks in sleep and wait_frames across ticks (frames
 * are ticks here). A host call's own top level never blocks: see
 * test_embed_host.c. */
static void test_tasklet_blocks_between_ticks(void **state)
{
    (void)state;
    RUN_IN_TASKLET("out = []\n"
                   "def bg():\n"
                   "    for i in range(3): carbon.wait_frames(1); out.append(i)\n"
                   "scheduler.tasklet(bg)()\n"
                   "t0 = time.monotonic(); carbon.sleep(0.02); assert time.monotonic() - t0 >= 0.02\n"
                   "f0 = carbon.frame()\n"
                   "carbon.wait_frames(6)\n"
                   "assert carbon.frame() - f0 == 6, carbon.frame() - f0\n"
                   "while len(out) < 3: carbon.wait_frames(1)\n"
                   "assert out == [0, 1, 2], out\n", 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_budget_10k, cleanup_host),
        cmocka_unit_test_teardown(test_zero_budget_progresses, cleanup_host),
        cmocka_unit_test_teardown(test_exception_reported_tick_goes_on, cleanup_host),
        cmocka_unit_test_teardown(test_switch_trap, cleanup_host),
        cmocka_unit_test_teardown(test_sleep_precision, cleanup_host),
        cmocka_unit_test_teardown(test_wait_frames, cleanup_host),
        cmocka_unit_test_teardown(test_stats_counts, cleanup_host),
        cmocka_unit_test_teardown(test_tasklet_blocks_between_ticks, cleanup_host),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
