/* series: a growable array of samples and their nearest-rank percentiles,
 * shared by the game server's host (tick times) and the bots (round trips). */
#ifndef GAME_SERIES_H
#define GAME_SERIES_H

#include <stddef.h>

typedef struct series {
    double *v;
    size_t n, cap;
} series;

/* Appends x; 0, or -1 when out of memory (the series is unchanged). */
int series_push(series *s, double x);
/* Sorts the samples in place (ascending); the percentile functions need it. */
void series_sort(series *s);
/* Nearest-rank percentile p (0-100) of a sorted series; 0 if it is empty. */
double series_pct(const series *s, double p);
/* The largest sample of a sorted series; 0 if it is empty. */
double series_max(const series *s);
void series_free(series *s);

#endif
