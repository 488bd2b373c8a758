/* Helpers shared by the embedding tests (tests/c/test_embed_*.c). */
#ifndef TEST_EMBED_UTIL_H
#define TEST_EMBED_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <carbon/carbon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Runs Python source in __main__; a failure prints the traceback. */
#define RUN(src) run_ok((src), __FILE__, __LINE__)

static inline void run_ok(const char *src, const char *file, int line)
{
    int rc = carbon_run_string(src);

    if (rc != CARBON_OK) {
        print_error("%s:%d: carbon_run_string failed (%s):\n%s\n", file, line, carbon_strerror(rc),
                    carbon_last_error());
        _fail(file, line);
    }
}

static inline long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void sleep_ns(long long ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};

    nanosleep(&ts, NULL);
}

/* Wall-clock slack multiplier: everything is ~50x slower under valgrind
 * (which preloads its vgpreload_*.so into the client). */
static inline long long time_scale(void)
{
    const char *pre = getenv("LD_PRELOAD");

    if (pre && strstr(pre, "vgpreload"))
        return 50;
#if defined(__SANITIZE_ADDRESS__)
    return 3;
#else
    return 1;
#endif
}

/* Between tests: kill what a test left on the host thread, clear traps. */
static inline int cleanup_host(void **state)
{
    (void)state;
    return carbon_run_string("import scheduler as _s\n"
                             "while _s.switch_trap(0) > 0: _s.switch_trap(-1)\n"
                             "for _t in _s.get_thread_tasklets()[1:]: _t.kill()\n"
                             "_s.run()\n") == CARBON_OK ? 0 : -1;
}

/* Ticks (1 ms budget, `gap_ns` apart) until the Python expression is true,
 * at most `max_ticks` times; returns the ticks done, -1 on timeout. */
#define TICK_UNTIL(expr, max_ticks, gap_ns) tick_until((expr), (max_ticks), (gap_ns), __FILE__, __LINE__)

static inline int tick_until(const char *expr, int max_ticks, long long gap_ns, const char *file, int line)
{
    char src[1024];

    snprintf(src, sizeof src, "_tick_until_done = bool(%s)\n", expr);
    for (int i = 0; i < max_ticks; i++) {
        carbon_stats st;
        int rc = carbon_tick(1000000, &st);
        if (rc != CARBON_OK) {
            print_error("%s:%d: carbon_tick: %s\n", file, line, carbon_last_error());
            _fail(file, line);
        }
        run_ok(src, file, line);
        if (carbon_run_string("assert _tick_until_done") == CARBON_OK)
            return i + 1;
        if (gap_ns)
            sleep_ns(gap_ns);
    }
    return -1;
}

/* The error callback records what it was given. */
typedef struct reported {
    int count;
    char tasklet[256];
    char traceback[4096];
    int reentry_rc; /* what a carbon call from inside the callback returned */
} reported;

static reported g_reported;

static inline void record_error(void *ud, const char *tasklet, const char *tb)
{
    reported *r = ud ? (reported *)ud : &g_reported;

    r->count++;
    snprintf(r->tasklet, sizeof r->tasklet, "%s", tasklet);
    snprintf(r->traceback, sizeof r->traceback, "%s", tb);
    r->reentry_rc = carbon_tick(0, NULL);
}

#endif
