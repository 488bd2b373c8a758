/* carbon_shutdown with a worker busy in a Python loop that never reaches a
 * blocking point: at shutdown_timeout_ns the worker is interrupted through
 * the preemption mechanism (TaskletExit at its next Python instruction), so
 * shutdown completes with CARBON_OK, and the log names the worker. */
#define _GNU_SOURCE
#include "test_embed_util.h"
#include "test_embed_shutdown_util.h"

static void test_shutdown_interrupts_busy_worker(void **state)
{
    (void)state;
    start_busy_worker("started = []\n"
                      "def busy():\n"
                      "    started.append(1)\n"
                      "    n = 0\n"
                      "    while True: n += 1\n");
    shutdown_expect(CARBON_OK, 3000000000LL);
    assert_int_equal(log_count("worker __main__:busy has not ended", "interrupting it", NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shutdown_interrupts_busy_worker),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
