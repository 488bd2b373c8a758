/* carbon_shutdown with a worker stuck in C (a blocking time.sleep, which no
 * interruption reaches): after shutdown_timeout_ns (plus the interrupt wait)
 * it returns CARBON_ETIMEDOUT, logs the worker, and the runtime keeps running
 * (ticks work, new workers are refused); once the worker ends, a second
 * carbon_shutdown completes. A worker busy in Python code is interrupted
 * instead (test_embed_shutdown_busy.c). */
#define _GNU_SOURCE
#include "test_embed_util.h"
#include "test_embed_shutdown_util.h"

static void test_shutdown_timeout(void **state)
{
    carbon_worker *w2 = NULL;

    (void)state;
    start_busy_worker("import time\n"
                      "started = []\n"
                      "def busy():\n"
                      "    started.append(1)\n"
                      "    time.sleep(1.5)\n");
    shutdown_expect(CARBON_ETIMEDOUT, 2000000000LL);
    assert_non_null(strstr(carbon_last_error(), "call carbon_shutdown again"));
    assert_int_equal(log_count("worker __main__:busy has not ended 200 ms after carbon_shutdown", NULL), 1);
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
