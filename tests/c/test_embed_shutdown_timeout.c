/* carbon_shutdown with a worker stuck in C (a blocking time.sleep, which no
 * interruption reaches): after shutdown_timeout_ns (plus the interrupt wait)
 * it returns CARBON_ETIMEDOUT, logs the worker, and the runtime keeps running
 * (ticks work, new workers are refused); once the worker ends, a second
 * carbon_shutdown completes. A worker busy in Python code is interrupted
 * instead (test_embed_shutdown_busy.c). */
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

static void test_shutdown_timeout(void **state)
{
    carbon_config cfg;
    carbon_worker *w = NULL, *w2 = NULL;
    long long t0, dt;
    int found = 0;

    (void)state;
    carbon_config_init(&cfg);
    cfg.log = record_log;
    cfg.shutdown_timeout_ns = 200000000; /* 200 ms */
    assert_int_equal(carbon_init(&cfg), CARBON_OK);
    RUN("import time\n"
        "started = []\n"
        "def busy():\n"
        "    started.append(1)\n"
        "    time.sleep(1.5)\n");
    assert_int_equal(carbon_worker_start("__main__:busy", &w), CARBON_OK);
    assert_true(TICK_UNTIL("started", 2000, 1000000) > 0);
    t0 = now_ns();
    assert_int_equal(carbon_shutdown(), CARBON_ETIMEDOUT);
    dt = now_ns() - t0;
    assert_true(dt >= 200000000LL);
    assert_true(dt < 2000000000LL * time_scale());
    assert_non_null(strstr(carbon_last_error(), "call carbon_shutdown again"));
    for (int i = 0; i < g_log.n; i++)
        found += strstr(g_log.text[i], "worker __main__:busy has not ended 200 ms after carbon_shutdown") != NULL;
    assert_int_equal(found, 1);
    /* Still running: ticks, code; no new worker. */
    assert_int_equal(carbon_tick(1000000, NULL), CARBON_OK);
    assert_int_equal(carbon_worker_start("__main__:busy", &w2), CARBON_EPYTHON);
    assert_non_null(strstr(carbon_last_error(), "shutting down"));
    /* Once the sleep is over, the pending interruption ends the worker. */
    sleep_ns(1500000000LL);
    assert_int_equal(carbon_shutdown(), CARBON_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shutdown_timeout),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
