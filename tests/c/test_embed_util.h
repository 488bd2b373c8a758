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

/* Runs Python source in a tasklet (exec in __main__'s namespace), ticking
 * (1 ms budget, 1 ms apart) until it ends, at most `max_ticks` times; an
 * exception escaping it fails the test with its traceback. Top-level code
 * of a host call may not block (the host never waits); this is how the tests
 * run code that does. */
#define RUN_IN_TASKLET(src, max_ticks) run_in_tasklet((src), (max_ticks), __FILE__, __LINE__)

static inline void run_in_tasklet(const char *src, int max_ticks, const char *file, int line)
{
    size_t n = strlen(src);
    char *buf = malloc(2 * n + 512);
    int ticks;

    if (!buf)
        _fail(file, line);
    strcpy(buf, "import scheduler as _s, traceback as _tb\n"
                "_rit_error = None\n"
                "def _rit_body(_src=bytes.fromhex('");
    for (size_t i = 0; i < n; i++)
        sprintf(buf + strlen(buf), "%02x", (unsigned char)src[i]);
    strcat(buf, "').decode()):\n"
                "    global _rit_error\n"
                "    try: exec(_src, globals())\n"
                "    except BaseException: _rit_error = _tb.format_exc()\n"
                "_rit_t = _s.tasklet(_rit_body)()\n");
    run_ok(buf, file, line);
    free(buf);
    ticks = tick_until("not _rit_t.alive", max_ticks, 1000000, file, line);
    if (ticks < 0) {
        print_error("%s:%d: the tasklet did not end within %d ticks\n", file, line, max_ticks);
        _fail(file, line);
    }
    if (carbon_run_string("assert _rit_error is None, _rit_error") != CARBON_OK) {
        print_error("%s:%d: the tasklet raised:\n%s\n", file, line, carbon_last_error());
        _fail(file, line);
    }
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
