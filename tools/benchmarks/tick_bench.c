/* carbon_tick() costs:
 *   - an empty tick: the embedding API's per-frame overhead with nothing to
 *     run (no tasklets, no timers, no events), with stats == NULL and with a
 *     stats struct;
 *   - a frame of 10k wakeups: 10k tasklets loop on receive() from one
 *     preference-0 channel, one tasklet sends to each of them and waits for
 *     the next frame; ns per wakeup, send and receive included.
 *
 * Prints {"impl": "ours", "ns_per_tick": ..., "ns_per_tick_stats": ...,
 * "ns_per_wakeup": ..., "cpu_ns_per_wakeup": ..., "ticks": ...}: medians of
 * 7 timed runs. cpu_ns_per_wakeup is the host thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID) per wakeup: on a loaded machine it leaves out the
 * time the thread waited for a core, which wall-clock time does not.
 *
 *   tick_bench [ticks] [noslice|longslice]
 *
 * noslice: carbon_config.slice_ns < 0 (no preemption, no per-tasklet time);
 * longslice: a 1 s slice, so that a loaded machine does not preempt the
 * sender mid-frame: the frame is the same as noslice's, plus the armed
 * tick's per-tasklet time accounting. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <carbon/carbon.h>

#define RUNS 7

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double timed(long n, carbon_stats *stats)
{
    double runs[RUNS];

    for (int r = 0; r < RUNS; r++) {
        double t = now_ns();
        for (long i = 0; i < n; i++) {
            if (carbon_tick(1000000000, stats) != CARBON_OK) {
                fprintf(stderr, "tick_bench: carbon_tick: %s\n", carbon_last_error());
                exit(1);
            }
        }
        runs[r] = (now_ns() - t) / (double)n;
    }
    qsort(runs, RUNS, sizeof runs[0], cmp_double);
    return runs[RUNS / 2];
}

#define WAKEUPS 10000

static const char frame_script[] =
    "import carbon, scheduler\n"
    "ch = scheduler.channel()\n"
    "ch.preference = 0\n"
    "def receiver():\n"
    "    r = ch.receive\n"
    "    while True:\n"
    "        r()\n"
    "def sender(n):\n"
    "    s = ch.send\n"
    "    while True:\n"
    "        for i in range(n):\n"
    "            s(i)\n"
    "        carbon.wait_frames(1)\n"
    "for _ in range(10000):\n"
    "    scheduler.tasklet(receiver)()\n"
    "scheduler.tasklet(sender)(10000)\n";

/* ns per wakeup of a frame that wakes WAKEUPS tasklets; the thread's CPU
 * time per wakeup in *cpu. */
static double frame_wakeup(double *cpu)
{
    double runs[RUNS], cpus[RUNS];
    carbon_stats stats;

    if (carbon_run_string(frame_script) != CARBON_OK) {
        fprintf(stderr, "tick_bench: frame script: %s\n", carbon_last_error());
        exit(1);
    }
    for (int i = 0; i < 3; i++) /* block the receivers, then steady frames */
        carbon_tick(INT64_MAX, NULL);
    for (int r = 0; r < RUNS; r++) {
        double t = now_ns(), c = cpu_ns();
        if (carbon_tick(INT64_MAX, &stats) != CARBON_OK) {
            fprintf(stderr, "tick_bench: carbon_tick: %s\n", carbon_last_error());
            exit(1);
        }
        runs[r] = (now_ns() - t) / WAKEUPS;
        cpus[r] = (cpu_ns() - c) / WAKEUPS;
        if (stats.tasklets_run < WAKEUPS) {
            fprintf(stderr, "tick_bench: only %llu tasklets ran in a frame\n",
                    (unsigned long long)stats.tasklets_run);
            exit(1);
        }
    }
    qsort(runs, RUNS, sizeof runs[0], cmp_double);
    qsort(cpus, RUNS, sizeof cpus[0], cmp_double);
    *cpu = cpus[RUNS / 2];
    return runs[RUNS / 2];
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    carbon_config cfg;
    carbon_stats stats;
    double plain, with_stats, wakeup, wakeup_cpu;

    carbon_config_init(&cfg);
    if (argc > 2 && !strcmp(argv[2], "noslice"))
        cfg.slice_ns = -1; /* no preemption, no per-tasklet timing */
    else if (argc > 2 && !strcmp(argv[2], "longslice"))
        cfg.slice_ns = 1000000000; /* armed, never preempting here */
#ifdef CARBON_PYTHON_DIR
    cfg.package_dir = CARBON_PYTHON_DIR;
#endif
    if (carbon_init(&cfg) != CARBON_OK) {
        fprintf(stderr, "tick_bench: carbon_init: %s\n", carbon_last_error());
        return 1;
    }
    /* A tasklet that ran once makes sure the scheduler is set up. */
    if (carbon_run_string("import scheduler\nscheduler.tasklet(lambda: None)()\n") != CARBON_OK) {
        fprintf(stderr, "tick_bench: carbon_run_string: %s\n", carbon_last_error());
        return 1;
    }
    timed(n / 10 > 0 ? n / 10 : 1, NULL); /* warm-up */
    plain = timed(n, NULL);
    with_stats = timed(n, &stats);
    if (stats.runnable != 0 || stats.tasklets_run != 0) {
        fprintf(stderr, "tick_bench: the tick was not empty\n");
        return 1;
    }
    wakeup = frame_wakeup(&wakeup_cpu);
    printf("{\"impl\": \"ours\", \"ns_per_tick\": %.1f, \"ns_per_tick_stats\": %.1f, "
           "\"ns_per_wakeup\": %.1f, \"cpu_ns_per_wakeup\": %.1f, \"ticks\": %ld}\n",
           plain, with_stats, wakeup, wakeup_cpu, n);
    return carbon_shutdown() == CARBON_OK ? 0 : 1;
}
