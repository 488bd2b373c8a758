/* series: see series.h. */
#include "series.h"

#include <stdlib.h>

int series_push(series *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        double *v = realloc(s->v, cap * sizeof *v);

        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

void series_sort(series *s)
{
    if (s->n)
        qsort(s->v, s->n, sizeof *s->v, cmp_double);
}

double series_pct(const series *s, double p)
{
    long long i = (long long)(p / 100.0 * (double)s->n + 0.5) - 1;

    if (s->n == 0)
        return 0;
    if (i < 0)
        i = 0;
    if (i >= (long long)s->n)
        i = (long long)s->n - 1;
    return s->v[i];
}

double series_max(const series *s)
{
    return s->n ? s->v[s->n - 1] : 0;
}

void series_free(series *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}
