/* Ending a thread's tasklets: carbon_shutdown on the host thread, a worker's
 * end, the `carbon` command's exit.
 *
 * The rule (docs/embedding.md, "Shutdown"):
 *   1. every alive tasklet gets TaskletExit, run alone from the main tasklet;
 *   2. for up to the grace period, while some are alive, the thread's loop
 *      keeps turning and its queue running: finally blocks may sleep, wait
 *      frames (the frame clock), use channels and join workers;
 *   3. each tasklet still alive then gets TaskletExit again, run alone, up to
 *      CB_EMBED_EXIT_RETRIES times (so a tasklet that swallows TaskletExit is
 *      hit 1 + CB_EMBED_EXIT_RETRIES times in all); a finally block it is in
 *      is cut short, which is logged;
 *   4. what is still alive is logged with its stack and abandoned: never
 *      freed, its stack kept for the life of the process (the core's later
 *      kills skip it). */
#include "internal.h"

#include <limits.h>
#include <string.h>

long long cb_embed_grace_ns(void)
{
    long long g = cb_embed_config()->shutdown_grace_ns;

    if (g == 0)
        return CB_EMBED_DEFAULT_GRACE_NS;
    return g < 0 ? 0 : g;
}

/* The alive, not abandoned tasklets of the thread, main excepted (new
 * references in a PyMem array; *n = 0 and NULL if none or out of memory). */
static cb_tasklet **snapshot(cb_manager *m, Py_ssize_t *n)
{
    Py_ssize_t count = 0, i = 0;
    cb_tasklet **v;

    for (cb_tasklet *t = m->all; t; t = t->mgr_next)
        if (!t->is_main && t->alive && !t->leaked)
            count++;
    *n = 0;
    if (!count)
        return NULL;
    v = PyMem_Malloc((size_t)count * sizeof *v);
    if (!v)
        return NULL;
    for (cb_tasklet *t = m->all; t && i < count; t = t->mgr_next)
        if (!t->is_main && t->alive && !t->leaked)
            v[i++] = (cb_tasklet *)Py_NewRef(t);
    *n = i;
    return v;
}

static void release(cb_tasklet **v, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(v[i]);
    PyMem_Free(v);
}

static int any_alive(cb_manager *m)
{
    for (cb_tasklet *t = m->all; t; t = t->mgr_next)
        if (!t->is_main && t->alive && !t->leaked)
            return 1;
    return 0;
}

static char *label_of(cb_tasklet *t)
{
    PyObject *s = cb_embed_tasklet_label(t);
    const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
    char *out = NULL;

    if (u) {
        size_t n = strlen(u) + 1;
        out = PyMem_Malloc(n);
        if (out)
            memcpy(out, u, n);
    }
    Py_XDECREF(s);
    PyErr_Clear();
    return out;
}

/* TaskletExit into each tasklet, run alone. `retry`: 0 for the first one, else
 * which retry this is (logged). */
static void hit_all(cb_manager *m, int retry, long long since_ns)
{
    Py_ssize_t n;
    cb_tasklet **v = snapshot(m, &n);

    for (Py_ssize_t i = 0; i < n; i++) {
        cb_tasklet *t = v[i];
        if (!t->alive || t->leaked || t->mgr != m || t == m->current)
            continue;
        if (retry) {
            char *label = label_of(t);
            cb_embed_log(CARBON_LOG_WARNING,
                         "tasklet %s still runs %lld ms after TaskletExit (grace period over): "
                         "TaskletExit again (%d of %d); a finally block it is in is cut short",
                         label ? label : "?", (cb_monotonic_ns() - since_ns) / 1000000, retry,
                         CB_EMBED_EXIT_RETRIES);
            PyMem_Free(label);
        }
        if (cb_kill_alone(m, t) < 0)
            cb_embed_report(t, NULL); /* its finally raised */
    }
    release(v, n);
}

static void abandon_rest(cb_manager *m)
{
    Py_ssize_t n;
    cb_tasklet **v = snapshot(m, &n);

    for (Py_ssize_t i = 0; i < n; i++) {
        cb_tasklet *t = v[i];
        char *label = label_of(t);
        char *stack = cb_embed_tasklet_stack(t);

        cb_embed_log(CARBON_LOG_WARNING,
                     "tasklet %s left alive at shutdown: it survived TaskletExit %d times; abandoned "
                     "(its stack is kept until the process ends)%s%s",
                     label ? label : "?", 1 + CB_EMBED_EXIT_RETRIES, stack ? "\n" : "", stack ? stack : "");
        cb_tasklet_abandon(t);
        PyMem_Free(stack);
        PyMem_Free(label);
    }
    release(v, n);
}

void cb_embed_end_tasklets(cb_embed_loop *loop, long long grace_ns)
{
    cb_manager *m = loop->mgr;
    PyObject *saved;
    long long start;

    if (!m || loop->ending || !cb_can_unwind_here(m) || !any_alive(m))
        return;
    saved = cb_err_fetch();
    loop->ending = 1;
    start = cb_monotonic_ns();
    hit_all(m, 0, start);
    if (grace_ns > 0) {
        long long deadline = grace_ns > LLONG_MAX - start ? LLONG_MAX : start + grace_ns;

        loop->wait_until_ns = deadline;
        while (any_alive(m)) {
            cb_embed_run_result res = {0};
            long long now = cb_monotonic_ns();

            if (now >= deadline || (!m->queued && !cb_embed_loop_can_wake(loop)))
                break; /* over, or nothing could ever run again */
            cb_embed_loop_step(loop, m->queued ? CB_EMBED_TURN_POLL : CB_EMBED_TURN_WAIT);
            cb_embed_run_budget(loop, cb_monotonic_ns(), deadline - cb_monotonic_ns(), &res);
            if (res.failed)
                break;
        }
        loop->wait_until_ns = 0;
    }
    for (int retry = 1; retry <= CB_EMBED_EXIT_RETRIES && any_alive(m); retry++)
        hit_all(m, retry, start);
    if (any_alive(m))
        abandon_rest(m);
    loop->ending = 0;
    PyErr_Clear();
    cb_err_restore(saved);
}
