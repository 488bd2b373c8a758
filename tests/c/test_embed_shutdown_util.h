/* Shared by the carbon_shutdown tests with a worker that does not end
 * (test_embed_shutdown_busy.c, test_embed_shutdown_timeout.c): a log
 * recorder, and the start of such a worker. Include after test_embed_util.h. */
#ifndef TEST_EMBED_SHUTDOWN_UTIL_H
#define TEST_EMBED_SHUTDOWN_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The log recorder: `cfg.log = log_record`, then log_count(). It keeps the
 * first LOG_MAX lines. */
#define LOG_MAX 64

static struct {
    pthread_mutex_t lock; /* the log callback may run on any thread */
    int n;
    char text[LOG_MAX][1024];
} g_log = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void log_record(void *ud, int level, const char *msg)
{
    (void)ud;
    (void)level;
    pthread_mutex_lock(&g_log.lock);
    if (g_log.n < LOG_MAX)
        snprintf(g_log.text[g_log.n++], sizeof g_log.text[0], "%s", msg);
    pthread_mutex_unlock(&g_log.lock);
}

/* How many recorded lines contain every one of the texts (NULL-terminated). */
__attribute__((sentinel)) static int log_count(const char *needle, ...)
{
    int c = 0;

    pthread_mutex_lock(&g_log.lock);
    for (int i = 0; i < g_log.n; i++) {
        va_list ap;
        const char *s = needle;
        int all = 1;

        va_start(ap, needle);
        for (; s && all; s = va_arg(ap, const char *))
            all = strstr(g_log.text[i], s) != NULL;
        va_end(ap);
        c += all;
    }
    pthread_mutex_unlock(&g_log.lock);
    return c;
}

/* carbon_init with the log recorded and a 200 ms shutdown timeout; runs
 * `src`, which defines busy() appending to the list `started` first, starts
 * "__main__:busy" as a worker and returns once busy() runs. */
static void start_busy_worker(const char *src)
{
    carbon_config cfg;
    carbon_worker *w = NULL;

    carbon_config_init(&cfg);
    cfg.log = log_record;
    cfg.shutdown_timeout_ns = 200000000; /* 200 ms */
    assert_int_equal(carbon_init(&cfg), CARBON_OK);
    RUN(src);
    assert_int_equal(carbon_worker_start("__main__:busy", &w), CARBON_OK);
    assert_true(TICK_UNTIL("started", 2000, 1000000) > 0);
}

/* carbon_shutdown(), asserting it returns `expect` after the 200 ms timeout
 * and before `max_ns` (scaled for slow runs). */
static void shutdown_expect(int expect, long long max_ns)
{
    long long t0 = now_ns(), dt;

    assert_int_equal(carbon_shutdown(), expect);
    dt = now_ns() - t0;
    assert_true(dt >= 200000000LL);
    assert_true(dt < max_ns * time_scale());
}

#endif
