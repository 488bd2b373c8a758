/* carbon_tick: one frame of the host thread, and the budgeted run of a
 * thread's queue that ticks and worker loops share.
 *
 * The queue runs with the core's deadline run: the budget is checked before
 * every tasklet but the first, so a tick overruns by at most one tasklet's
 * run (the C API's run-with-timeout may start two after its deadline), and
 * tasklets still hand control straight to each other. An exception escaping a
 * tasklet stops that run; it is reported with the tasklet's name
 * (mgr->last_failed) and the run goes on. */
#include "internal.h"

#include <limits.h>
#include <string.h>

void cb_embed_run_budget(cb_embed_loop *loop, long long start_ns, long long budget_ns,
                         cb_embed_run_result *res)
{
    cb_manager *m = loop->mgr;
    long long deadline = budget_ns > LLONG_MAX - start_ns ? LLONG_MAX : start_ns + budget_ns;
    int first = 1, armed;

    if (deadline <= 0)
        deadline = 1; /* 0 means "no deadline" to the core */
    /* Nothing queued, nothing to preempt: an empty tick stays cheap. */
    armed = cb_queue_first(m) ? cb_embed_slice_arm(loop) : 0;
    for (;;) {
        unsigned long long switches = m->switches;
        cb_tasklet *failed;

        if (!cb_queue_first(m))
            break;
        if (!first && cb_monotonic_ns() >= deadline)
            break;
        first = 0;
        Py_CLEAR(m->last_failed);
        if (cb_run_deadline(m, deadline) == 0)
            break;
        if (m->switches == switches) {
            /* Nothing ran: switching is trapped, the interpreter is
             * finalizing, or the main tasklet had an exception waiting for
             * it. Retrying cannot help this tick. */
            res->errors += (unsigned long long)cb_embed_report(NULL, "<main tasklet>");
            res->failed = 1;
            break;
        }
        failed = m->last_failed; /* its name is read after it ended */
        m->last_failed = NULL;
        res->errors += (unsigned long long)cb_embed_report(failed, failed ? NULL : "<main tasklet>");
        Py_XDECREF(failed);
    }
    if (armed)
        cb_embed_slice_disarm(loop, res);
}

/* Tasklets neither runnable nor in our heaps: blocked on channels, joins,
 * or removed from the queue. */
static unsigned long long count_blocked(cb_embed_loop *loop)
{
    cb_manager *m = loop->mgr;
    unsigned long long n = 0, waiting;

    for (cb_tasklet *t = m->all; t; t = t->mgr_next)
        if (!t->is_main && t->alive && !t->node.next)
            n++;
    waiting = (loop->sleepers.n - loop->sleepers.main_waiting) +
              (loop->frame_waiters.n - loop->frame_waiters.main_waiting);
    return n > waiting ? n - waiting : 0;
}

int carbon_tick(int64_t budget_ns, carbon_stats *stats)
{
    cb_embed_loop *loop;
    cb_embed_run_result res;
    unsigned long long switches0, completed0;
    long long called = cb_monotonic_ns(), start;
    int rc;

    if (budget_ns < 0)
        return cb_embed_fail(CARBON_EINVAL, "carbon_tick: budget_ns must not be negative");
    if ((rc = cb_embed_host_enter("carbon_tick")) != CARBON_OK)
        return rc;
    memset(&res, 0, sizeof res);
    /* The budget counts from here: taking the GIL from a busy worker may
     * already have cost up to the interpreter's switch interval. */
    start = cb_monotonic_ns();
    loop = cb_embed_loop_get();
    if (!loop)
        return cb_embed_host_leave(cb_embed_fail_python());
    if (loop->mgr->current != loop->mgr->main)
        return cb_embed_host_leave(cb_embed_fail(CARBON_EBUSY, "carbon_tick: called from inside a tasklet"));
    switches0 = loop->mgr->switches;
    completed0 = loop->mgr->completed;

    cb_embed_loop_step(loop, CB_EMBED_TURN_TICK); /* events, frame + 1, expired sleepers, frame waiters */
    cb_embed_post_deliver(); /* carbon_post values, before any tasklet runs */
    cb_embed_run_budget(loop, start, budget_ns, &res);

    if (stats) {
        stats->frame = loop->frame;
        stats->tasklets_run = loop->mgr->completed - completed0;
        stats->switches = loop->mgr->switches - switches0;
        stats->runnable = (uint64_t)loop->mgr->queued;
        stats->sleeping = loop->sleepers.n - loop->sleepers.main_waiting;
        stats->waiting_frames = loop->frame_waiters.n - loop->frame_waiters.main_waiting;
        stats->blocked = count_blocked(loop);
        stats->errors = res.errors;
        stats->elapsed_ns = cb_monotonic_ns() - called;
        stats->preempted = res.preempted;
        stats->stuck_ns = res.stuck_ns;
        stats->slowest_ns = res.slowest_ns;
        memcpy(stats->slowest, res.slowest, sizeof stats->slowest);
    }
    if (res.failed)
        rc = cb_embed_fail(CARBON_EPYTHON, "carbon_tick: the run queue could not be run (switch_trap "
                                           "set, or an exception was pending in the main tasklet); "
                                           "see the error callback");
    return cb_embed_host_leave(rc);
}
