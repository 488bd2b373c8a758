/* ns per empty carbon_tick(): the embedding API's per-frame overhead with
 * nothing to run (no tasklets, no timers, no events).
 *
 * Prints {"impl": "ours", "ns_per_tick": ..., "ns_per_tick_stats": ..., "ticks": ...}:
 * the median of 7 timed runs, with stats == NULL and with a stats struct.
 *
 *   tick_bench [ticks]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <carbon/carbon.h>

#define RUNS 7

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    carbon_config cfg;
    carbon_stats stats;
    double plain, with_stats;

    carbon_config_init(&cfg);
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
    printf("{\"impl\": \"ours\", \"ns_per_tick\": %.1f, \"ns_per_tick_stats\": %.1f, \"ticks\": %ld}\n",
           plain, with_stats, n);
    return carbon_shutdown() == CARBON_OK ? 0 : 1;
}
