/* game_loop: a C host running game logic as tasklets at a fixed 60 Hz.
 *
 *   game_loop [--frames N] [--entities N] [--budget-ms MS] [--script-dir DIR]
 *             [--package-dir DIR] [--runaway]
 *
 * Each frame calls carbon_tick() with a time budget, then sleeps until the
 * next frame boundary (a real engine would render here). game.py spawns the
 * entities (tasklets that sleep, wait for frames and talk over channels) and
 * one pathfinding worker thread. At the end it prints the per-frame
 * statistics: tick time percentiles, tasklets run and still runnable.
 * --runaway adds an entity that loops for ever from frame 30: the tick
 * preempts it after carbon_config.slice_ns, the hitch report names it, and
 * the frame still ends within its budget plus one slice. */
#define _POSIX_C_SOURCE 200809L
#include <carbon/carbon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef GAME_LOOP_DIR
#define GAME_LOOP_DIR "."
#endif

#define HZ 60
#define FRAME_NS (1000000000LL / HZ)

static long long now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

/* Percentile of a sorted array (nearest rank). */
static long long pct(const long long *sorted, int n, double p)
{
    int i = (int)(p / 100.0 * n + 0.5) - 1;

    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return sorted[i];
}

static void row(const char *name, long long *v, int n, double scale, const char *fmt)
{
    double sum = 0;

    for (int i = 0; i < n; i++)
        sum += (double)v[i];
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    printf("%-22s", name);
    printf(fmt, pct(v, n, 50) / scale);
    printf(fmt, pct(v, n, 99) / scale);
    printf(fmt, v[n - 1] / scale);
    printf(fmt, sum / n / scale);
    printf("\n");
}

static void usage(void)
{
    fprintf(stderr, "usage: game_loop [--frames N] [--entities N] [--budget-ms MS] [--script-dir DIR]\n"
                    "                 [--package-dir DIR] [--runaway]\n");
    exit(2);
}

/* Hitch reports (carbon_config.on_hitch): counted; the first is kept. */
static struct {
    unsigned long long preempted, stuck;
    char first[4096];
} hitches;

static void on_hitch(void *userdata, const carbon_hitch *h)
{
    (void)userdata;
    if (h->stuck_in_c)
        hitches.stuck++;
    else
        hitches.preempted++;
    if (!hitches.first[0])
        snprintf(hitches.first, sizeof hitches.first,
                 "hitch: tasklet '%s' ran %.2f ms (%u in a row)%s; stack:\n%s", h->tasklet,
                 h->ran_ns / 1e6, h->in_a_row, h->stuck_in_c ? ", stuck in C" : ", preempted", h->stack);
}

int main(int argc, char **argv)
{
    int frames = 240, entities = 300, runaway = 0;
    double budget_ms = 4.0;
    const char *dir = GAME_LOOP_DIR;
    const char *package_dir = NULL; /* NULL: found next to libcarbon */
    const char *paths[2];
    char code[128];
    carbon_config cfg;
    carbon_stats st;
    long long *tick_ns, *run, *runnable, *switches, *wake_late, next;
    unsigned long long errors = 0, late = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runaway")) {
            runaway = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--frames"))
            frames = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--entities"))
            entities = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--budget-ms"))
            budget_ms = atof(argv[++i]);
        else if (!strcmp(argv[i], "--script-dir"))
            dir = argv[++i];
        else if (!strcmp(argv[i], "--package-dir"))
            package_dir = argv[++i];
        else
            usage();
    }
    if (frames <= 0 || entities < 0 || budget_ms <= 0)
        usage();
    tick_ns = calloc((size_t)frames, sizeof *tick_ns);
    run = calloc((size_t)frames, sizeof *run);
    runnable = calloc((size_t)frames, sizeof *runnable);
    switches = calloc((size_t)frames, sizeof *switches);
    wake_late = calloc((size_t)frames, sizeof *wake_late);
    if (!tick_ns || !run || !runnable || !switches || !wake_late)
        return 1;

    carbon_config_init(&cfg);
    paths[0] = dir;
    paths[1] = NULL;
    cfg.module_paths = paths;
    cfg.program_name = argv[0];
    cfg.package_dir = package_dir;
    cfg.on_hitch = on_hitch;
    if ((rc = carbon_init(&cfg)) != CARBON_OK) {
        fprintf(stderr, "carbon_init: %s: %s\n", carbon_strerror(rc), carbon_last_error());
        return 1;
    }
    snprintf(code, sizeof code, "import game\ngame.start(%d, runaway=%s)\n", entities,
             runaway ? "True" : "False");
    if ((rc = carbon_run_string(code)) != CARBON_OK) {
        fprintf(stderr, "game.start: %s\n", carbon_last_error());
        carbon_shutdown();
        return 1;
    }

    printf("game_loop: %d frames at %d Hz, tick budget %.2f ms, %d entities, 1 pathfinding worker\n",
           frames, HZ, budget_ms, entities);
    next = now_ns();
    for (int f = 0; f < frames; f++) {
        struct timespec ts;

        if ((rc = carbon_tick((int64_t)(budget_ms * 1e6), &st)) != CARBON_OK)
            fprintf(stderr, "frame %d: %s\n", f, carbon_last_error());
        tick_ns[f] = st.elapsed_ns;
        run[f] = (long long)st.tasklets_run;
        runnable[f] = (long long)st.runnable;
        switches[f] = (long long)st.switches;
        errors += st.errors;
        /* ... the engine would simulate physics and render here ... */
        next += FRAME_NS;
        if (now_ns() > next) {
            late++;
            next = now_ns(); /* dropped a frame: do not try to catch up */
        }
        ts.tv_sec = (time_t)(next / 1000000000LL);
        ts.tv_nsec = (long)(next % 1000000000LL);
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        wake_late[f] = now_ns() - next; /* how late the OS woke us: its scheduling delay */
    }
    printf("last frame: %llu tasklets sleeping, %llu waiting for frames, %llu blocked\n",
           (unsigned long long)st.sleeping, (unsigned long long)st.waiting_frames,
           (unsigned long long)st.blocked);

    /* game.finish() starts a tasklet that joins the worker: tick until it is
     * done (at most 10 s). */
    if ((rc = carbon_call("game", "finish")) != CARBON_OK)
        fprintf(stderr, "game.finish: %s\n", carbon_last_error());
    for (int i = 0; rc == CARBON_OK && i < 600; i++) {
        char *done = NULL;
        struct timespec pause = {0, 16666667};
        carbon_tick((int64_t)(budget_ms * 1e6), NULL);
        if ((rc = carbon_call_fmt("game", "finished", &done, NULL)) != CARBON_OK)
            fprintf(stderr, "game.finished: %s\n", carbon_last_error());
        if (done && strcmp(done, "True") == 0) {
            carbon_free(done);
            break;
        }
        carbon_free(done);
        nanosleep(&pause, NULL);
    }

    printf("\nper-frame statistics over %d frames (%llu late, %llu game errors)\n", frames, late, errors);
    printf("%-22s%10s%10s%10s%10s\n", "", "p50", "p99", "max", "mean");
    row("tick time (us)", tick_ns, frames, 1000.0, "%10.1f");
    row("tasklets run", run, frames, 1.0, "%10.0f");
    row("switches", switches, frames, 1.0, "%10.0f");
    row("runnable left", runnable, frames, 1.0, "%10.0f");
    printf("hitches: %llu preempted, %llu stuck in C\n", hitches.preempted, hitches.stuck);
    if (hitches.first[0])
        printf("%s", hitches.first);
    if (runaway) {
        /* With a runaway entity every tick must still end within budget +
         * slice + 1 ms. A machine loaded beyond its cores delays any thread
         * (the watchdog's too) by its scheduling delay, measured here as how
         * late this loop's own sleeps woke up (90th percentile): the bound
         * is widened by it, and up to a quarter of the ticks may be over. */
        long long bound = (long long)(budget_ms * 1e6) + cfg.slice_ns + 1000000, delay;
        int over = 0;

        qsort(wake_late, (size_t)frames, sizeof *wake_late, cmp_ll);
        delay = pct(wake_late, frames, 90);
        if (delay < 0)
            delay = 0;
        for (int f = 0; f < frames; f++)
            over += tick_ns[f] > bound + delay;
        printf("max tick %.2f ms; budget + slice + 1 ms = %.2f ms; OS wake-up delay p90 %.2f ms; "
               "%d of %d ticks over both\n",
               tick_ns[frames - 1] / 1e6, bound / 1e6, delay / 1e6, over, frames);
        if (over * 4 > frames || !hitches.preempted) {
            fprintf(stderr, "game_loop --runaway: %s\n",
                    hitches.preempted ? "too many ticks over budget + slice + 1 ms"
                                      : "the runaway entity was never preempted");
            rc = 3;
        }
    }
    if (carbon_shutdown() != CARBON_OK) {
        fprintf(stderr, "carbon_shutdown: %s\n", carbon_last_error());
        return 1;
    }
    free(tick_ns);
    free(run);
    free(runnable);
    free(switches);
    free(wake_late);
    return rc == 3 ? 3 : 0;
}
