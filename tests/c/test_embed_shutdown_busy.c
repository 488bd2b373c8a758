/* carbon_shutdown with a worker busy in a Python loop that never reaches a
 * blocking point: at shutdown_timeout_ns the worker is interrupted through
 * the preemption mechanism (TaskletExit at its next Python instruction), so
 * shutdown completes with CARBON_OK, and the log names the worker. */
#define _GNU_SOURCE
#include "test_embed_util.h"

#define LOG_MAX 64
static struct {
    int n;
    char text[LOG_MAX][1024];
} g_log;

static void record_log(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    if (g_log.n < LOG_MAX)
        snprintf(g_log.text[g_log.n++], sizeof g_log.text[0], "%s", msg);
}

static void test_shutdown_interrupts_busy_worker(void **state)
{
    carbon_config cfg;
    carbon_worker *w = NULL;
    long long t0, dt;
    int found = 0;

    (void)state;
    carbon_config_init(&cfg);
    cfg.log = record_log;
    cfg.shutdown_timeout_ns = 200000000; /* 200 ms */
    assert_int_equal(carbon_init(&cfg), CARBON_OK);
    RUN("started = []\n"
        "def busy():\n"
        "    started.append(1)\n"
        "    n = 0\n"
        "    while True: n += 1\n");
    assert_int_equal(carbon_worker_start("__main__:busy", &w), CARBON_OK);
    assert_true(TICK_UNTIL("started", 2000, 1000000) > 0);
    t0 = now_ns();
    assert_int_equal(carbon_shutdown(), CARBON_OK);
    dt = now_ns() - t0;
    assert_true(dt >= 200000000LL);
    assert_true(dt < 3000000000LL * time_scale());
    for (int i = 0; i < g_log.n; i++)
        found += strstr(g_log.text[i], "worker __main__:busy has not ended") != NULL &&
                 strstr(g_log.text[i], "interrupting it") != NULL;
    assert_int_equal(found, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shutdown_interrupts_busy_worker),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
