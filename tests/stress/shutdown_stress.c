/* Stress (docs/reliability.md): many tasklets waiting at carbon_shutdown.
 *
 *   shutdown_stress [--tasklets N] [--workers W] [--pairs P] [--script PATH]
 *
 * N tasklets (default 100,000) spread over the host thread and W workers
 * (default 3): blocked on channels (receiving and sending, local and shared
 * between threads), sleeping in carbon.sleep(3600) and reading loopback
 * sockets (P connected pairs per thread, both ends reading; default 250);
 * the workers' main tasklets are blocked too. Once every tasklet waits, the
 * host calls carbon_shutdown(). Each tasklet's finally block writes one byte
 * to a file (tests/stress/shutdown_script.py); after the interpreter is gone
 * this program checks that every finally ran exactly once, after
 * TaskletExit, and that shutdown returned CARBON_OK. Exit status 0 if so.
 * Run under valgrind at 10k (docs/reliability.md). */
#define _GNU_SOURCE
#include <carbon/carbon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef SHUTDOWN_SCRIPT
#define SHUTDOWN_SCRIPT "shutdown_script.py"
#endif

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Hitches (starting thousands of tasklets in one tick maps their stacks in
 * C) are counted, not printed: this program checks shutdown, not frame time. */
static long hitches;

static void on_hitch(void *userdata, const carbon_hitch *hitch)
{
    (void)userdata;
    (void)hitch;
    hitches++;
}

static int fail(const char *what)
{
    fprintf(stderr, "shutdown_stress: %s failed: %s\n", what, carbon_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    long tasklets = 100000, workers = 3, pairs = 250;
    const char *script = SHUTDOWN_SCRIPT;
    char path[] = "/tmp/carbon_shutdown_stress_XXXXXX";
    char *expected = NULL, *state = NULL, *dir, *slash;
    long counts[256] = {0}, lower = 0, other = 0;
    carbon_config cfg;
    struct rusage ru;
    double t0, t_ready, t_shut;
    int fd, rc, ticks = 0, ok = 1, c;
    FILE *f;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tasklets"))
            tasklets = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--workers"))
            workers = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--pairs"))
            pairs = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--script"))
            script = argv[i + 1];
        else {
            fprintf(stderr, "usage: %s [--tasklets N] [--workers W] [--pairs P] [--script PATH]\n", argv[0]);
            return 2;
        }
    }
    fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);

    dir = strdup(script);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    const char *paths[] = {dir, NULL};
    carbon_config_init(&cfg);
    cfg.module_paths = paths;
    cfg.on_hitch = on_hitch;
    /* Under valgrind the workers' teardown of 10k tasklets takes longer than
     * the default 5 s; a hang is caught by ctest's timeout instead. */
    cfg.shutdown_timeout_ns = 300LL * 1000000000LL;
    if (carbon_init(&cfg) != CARBON_OK)
        return fail("carbon_init");
    t0 = now_s();
    if (carbon_run_string("import shutdown_script as ss\n") != CARBON_OK)
        return fail("import shutdown_script");
    if (carbon_call_fmt("shutdown_script", "setup", NULL, "(slll)", path, tasklets, workers, pairs) != CARBON_OK)
        return fail("setup");
    /* Tick until every tasklet waits (never-started ones would just go). */
    for (;;) {
        if (carbon_tick(5000000, NULL) != CARBON_OK)
            return fail("carbon_tick");
        ticks++;
        carbon_free(state);
        state = NULL;
        if (carbon_call_fmt("shutdown_script", "ready", &state, NULL) != CARBON_OK)
            return fail("ready");
        if (state && !strcmp(state, "ok"))
            break;
        if (state && *state) {
            fprintf(stderr, "shutdown_stress: %s\n", state);
            return 1;
        }
        if (now_s() - t0 > 600) {
            fprintf(stderr, "shutdown_stress: not ready after 600 s\n");
            return 1;
        }
    }
    t_ready = now_s();
    if (carbon_call_fmt("shutdown_script", "expected_counts", &expected, NULL) != CARBON_OK)
        return fail("expected_counts");
    rc = carbon_shutdown();
    t_shut = now_s();
    if (rc != CARBON_OK) {
        fprintf(stderr, "shutdown_stress: carbon_shutdown returned %d (%s)\n", rc, carbon_strerror(rc));
        ok = 0;
    }

    f = fopen(path, "r");
    if (!f)
        return 1;
    while ((c = fgetc(f)) != EOF) {
        if (c >= 'A' && c <= 'Z')
            counts[c]++;
        else if (c >= 'a' && c <= 'z')
            lower++;
        else
            other++;
    }
    fclose(f);
    unlink(path);

    /* expected: "C=n M=n R=n S=n" */
    char got[256];
    snprintf(got, sizeof got, "C=%ld M=%ld R=%ld S=%ld", counts['C'], counts['M'], counts['R'], counts['S']);
    if (strcmp(got, expected) || lower || other)
        ok = 0;
    getrusage(RUSAGE_SELF, &ru);
    printf("shutdown_stress: %ld tasklets, %ld workers, %ld socket pairs per thread; ready in %.2f s (%d ticks), "
           "carbon_shutdown %.2f s, peak RSS %ld MiB, %ld hitches\n"
           "  finally blocks after TaskletExit: %s (expected %s); without TaskletExit: %ld; garbage: %ld\n"
           "shutdown_stress: %s\n",
           tasklets, workers, pairs, t_ready - t0, ticks, t_shut - t_ready, ru.ru_maxrss / 1024, hitches, got, expected,
           lower, other, ok ? "OK" : "FAILED");
    carbon_free(state);
    carbon_free(expected);
    free(dir);
    return ok ? 0 : 1;
}
