/* game_server: the sample game server's C host.
 *
 *   game_server [--port N] [--db PATH] [--budget-ms MS] [--hz N] [--world-hz N]
 *               [--npcs N] [--save-interval S] [--idle-timeout S] [--duration S]
 *               [--script-dir DIR]
 *
 * Starts the runtime, loads the game (python/gameserver, tasklets) and ticks it
 * at a fixed rate (30 Hz) with a time budget per tick, reporting each tick's
 * time to the game for its dashboard. SIGINT or SIGTERM (or --duration) stops
 * it cleanly: the game stops accepting, says bye, saves every player and stops
 * its workers; carbon_shutdown() then runs every remaining tasklet's finally.
 * Exit code 0 after a clean shutdown. The summary line at exit:
 *   game_server: summary frames=N late=N budget_ms=X tick_p50_ms=X tick_p99_ms=X
 *                tick_max_ms=X over_budget=N cpu_p50_ms=X cpu_p99_ms=X cpu_max_ms=X
 *                runq_wait_p50_ms=X runq_wait_p99_ms=X unqueued_p50_ms=X unqueued_p99_ms=X
 *                tasklets=N rss_kib=N
 * (tick_*: wall time of carbon_tick; cpu_*: the host thread's CPU time in it;
 * runq_wait_*: time in it the thread was runnable but had no CPU - on a
 * loaded machine, most of the difference; unqueued_*: wall minus that wait,
 * the tick's time on a machine with a CPU free for it). */
#define _POSIX_C_SOURCE 200809L
#include <carbon/carbon.h>

#include "series.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef GAME_SERVER_DIR
#define GAME_SERVER_DIR "."
#endif

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static long long clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* Nanoseconds this thread has waited for a CPU while runnable (the run
 * queue), from /proc/thread-self/schedstat; -1 if unavailable. On a loaded
 * machine it is what separates a tick's wall time from its CPU time. */
static long long runq_wait_ns(int fd)
{
    char buf[128];
    unsigned long long run, wait;
    ssize_t n;

    if (fd < 0 || (n = pread(fd, buf, sizeof buf - 1, 0)) <= 0)
        return -1;
    buf[n] = 0;
    if (sscanf(buf, "%llu %llu", &run, &wait) != 2)
        return -1;
    return (long long)wait;
}

/* Resident memory plus page tables, KiB (the project's memory measure). */
static long rss_kib(void)
{
    char line[256];
    long rss = 0, pte = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6))
            rss = atol(line + 6);
        else if (!strncmp(line, "VmPTE:", 6))
            pte = atol(line + 6);
    }
    fclose(f);
    return rss + pte;
}

static void usage(void)
{
    fprintf(stderr, "usage: game_server [--port N] [--db PATH] [--budget-ms MS] [--hz N] [--world-hz N]\n"
                    "                   [--npcs N] [--save-interval S] [--idle-timeout S] [--duration S]\n"
                    "                   [--script-dir DIR]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 0, hz = 30, world_hz = 10, npcs = 50;
    double budget_ms = 16.0, save_interval = 2.0, idle_timeout = 30.0, duration = 0;
    const char *db = "game_server.db", *dir = GAME_SERVER_DIR;
    const char *paths[2];
    char code[1024];
    carbon_config cfg;
    carbon_stats st;
    struct sigaction sa;
    struct rlimit rl;
    series ticks = {0}, cpu = {0}, waits = {0}, own = {0}; /* per tick, ns */
    long long next, period, started, over = 0;
    int schedstat = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    unsigned long long late = 0, tasklets = 0;
    int rc, status = 0;

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--port"))
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--db"))
            db = argv[++i];
        else if (!strcmp(argv[i], "--budget-ms"))
            budget_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--hz"))
            hz = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--world-hz"))
            world_hz = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--npcs"))
            npcs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--save-interval"))
            save_interval = atof(argv[++i]);
        else if (!strcmp(argv[i], "--idle-timeout"))
            idle_timeout = atof(argv[++i]);
        else if (!strcmp(argv[i], "--duration"))
            duration = atof(argv[++i]);
        else if (!strcmp(argv[i], "--script-dir"))
            dir = argv[++i];
        else
            usage();
    }
    if (port < 0 || port > 65535 || hz <= 0 || world_hz <= 0 || npcs < 0 || budget_ms <= 0 ||
        save_interval <= 0 || idle_timeout <= 0 || duration < 0 || strchr(db, '\'') || strchr(db, '\\'))
        usage();
    period = 1000000000LL / hz;

    /* One descriptor per player: take what the hard limit allows. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* A peer gone while we write is an error code for the writer, not a signal. */
    signal(SIGPIPE, SIG_IGN);

    carbon_config_init(&cfg);
    paths[0] = dir;
    paths[1] = NULL;
    cfg.module_paths = paths;
    cfg.program_name = argv[0];
    /* gameserver.start() and shutdown() wait in the host's main tasklet (for
     * the database worker, for clients to take their bye): the host means to
     * wait there (docs/embedding.md, allow_blocking_host_calls). */
    cfg.allow_blocking_host_calls = 1;
    if ((rc = carbon_init(&cfg)) != CARBON_OK) {
        fprintf(stderr, "carbon_init: %s: %s\n", carbon_strerror(rc), carbon_last_error());
        return 1;
    }
    /* The runtime leaves signals to the host (no Python handlers). */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    snprintf(code, sizeof code,
             "import gameserver\n"
             "gameserver.start(port=%d, db='%s', budget_ms=%g, hz=%d, world_hz=%d, npcs_n=%d, "
             "save_interval=%g, idle_timeout=%g)\n",
             port, db, budget_ms, hz, world_hz, npcs, save_interval, idle_timeout);
    if ((rc = carbon_run_string(code)) != CARBON_OK) {
        fprintf(stderr, "game_server: the game did not start: %s\n", carbon_last_error());
        carbon_shutdown();
        return 1;
    }
    printf("game_server: %d Hz, tick budget %.1f ms of a %.1f ms frame\n", hz, budget_ms, period / 1e6);
    fflush(stdout);

    started = next = now_ns();
    while (!stop_signal) {
        struct timespec ts;
        long long t;

        if (duration > 0 && now_ns() - started >= (long long)(duration * 1e9))
            break;
        long long cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), cpu_ns, wait0 = runq_wait_ns(schedstat), wait_ns;

        if ((rc = carbon_tick((int64_t)(budget_ms * 1e6), &st)) != CARBON_OK)
            fprintf(stderr, "game_server: tick: %s\n", carbon_last_error());
        /* CPU time of the host thread in the tick: the wall time minus what
         * other processes and threads (the GIL) took from it. */
        cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
        wait_ns = wait0 < 0 ? 0 : runq_wait_ns(schedstat) - wait0;
        if (series_push(&ticks, (double)st.elapsed_ns) < 0 || series_push(&cpu, (double)cpu_ns) < 0 ||
            series_push(&waits, (double)wait_ns) < 0 || series_push(&own, (double)(st.elapsed_ns - wait_ns)) < 0) {
            fprintf(stderr, "game_server: out of memory\n");
            status = 1;
            break;
        }
        if (st.elapsed_ns > (int64_t)(budget_ms * 1e6))
            over++;
        tasklets = st.runnable + st.blocked + st.sleeping + st.waiting_frames;
        /* The dashboard's numbers: a few microseconds, outside the tick. */
        if (carbon_call_fmt("gameserver", "host_frame", NULL, "(LLLKK)", (long long)st.elapsed_ns, cpu_ns,
                            wait_ns, tasklets, late) != CARBON_OK)
            fprintf(stderr, "game_server: host_frame: %s\n", carbon_last_error());

        next += period;
        t = now_ns();
        if (t > next) {
            late++;
            next = t; /* a dropped frame: do not try to catch up */
        }
        ts.tv_sec = (time_t)(next / 1000000000LL);
        ts.tv_nsec = (long)(next % 1000000000LL);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop_signal)
            ;
    }
    if (stop_signal)
        printf("game_server: %s: shutting down\n", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    else
        printf("game_server: shutting down\n");
    fflush(stdout);

    if ((rc = carbon_call("gameserver", "shutdown")) != CARBON_OK) {
        fprintf(stderr, "game_server: shutdown: %s\n", carbon_last_error());
        status = 1;
    }
    series_sort(&ticks);
    series_sort(&cpu);
    series_sort(&waits);
    series_sort(&own);
    printf("game_server: summary frames=%zu late=%llu budget_ms=%.1f tick_p50_ms=%.3f tick_p99_ms=%.3f "
           "tick_max_ms=%.3f over_budget=%lld cpu_p50_ms=%.3f cpu_p99_ms=%.3f cpu_max_ms=%.3f "
           "runq_wait_p50_ms=%.3f runq_wait_p99_ms=%.3f unqueued_p50_ms=%.3f unqueued_p99_ms=%.3f "
           "tasklets=%llu rss_kib=%ld\n",
           ticks.n, late, budget_ms, series_pct(&ticks, 50) / 1e6, series_pct(&ticks, 99) / 1e6,
           series_max(&ticks) / 1e6, over, series_pct(&cpu, 50) / 1e6, series_pct(&cpu, 99) / 1e6,
           series_max(&cpu) / 1e6, series_pct(&waits, 50) / 1e6, series_pct(&waits, 99) / 1e6,
           series_pct(&own, 50) / 1e6, series_pct(&own, 99) / 1e6, tasklets, rss_kib());
    fflush(stdout);
    series_free(&ticks);
    series_free(&cpu);
    series_free(&waits);
    series_free(&own);
    if (schedstat >= 0)
        close(schedstat);
    if ((rc = carbon_shutdown()) != CARBON_OK) {
        fprintf(stderr, "carbon_shutdown: %s\n", carbon_last_error());
        status = 1;
    }
    return status;
}
