/* Frame safety on the embedding side: the slice that carbon_tick (and a
 * worker's turn) arms around its run of the queue, the hitch reports of
 * preempted tasklets, and the watchdog's reports of threads stuck outside
 * Python code. The mechanism is runtime/preempt.c. */
#include "internal.h"

#include "preempt.h"

#include <string.h>

/* The Python stack of `t` (suspended, or the current tasklet of its thread)
 * as text; new PyMem string, "" if none. */
static char *stack_text(cb_tasklet *t)
{
    PyObject *frame, *tb = NULL, *lines = NULL, *sep = NULL, *text = NULL;
    char *out = NULL;
    const char *u = NULL;

    frame = cb_tasklet_frame(t);
    if (frame && frame != Py_None) {
        tb = PyImport_ImportModule("traceback");
        lines = tb ? PyObject_CallMethod(tb, "format_stack", "O", frame) : NULL;
        sep = lines ? PyUnicode_FromString("") : NULL;
        text = sep ? PyUnicode_Join(sep, lines) : NULL;
        u = text ? PyUnicode_AsUTF8(text) : NULL;
    }
    PyErr_Clear();
    if (!u)
        u = "";
    out = PyMem_Malloc(strlen(u) + 1);
    if (out)
        strcpy(out, u);
    Py_XDECREF(text);
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(tb);
    Py_XDECREF(frame);
    return out;
}

static void deliver(cb_tasklet *t, long long ran_ns, unsigned in_a_row, int stuck, int host)
{
    const carbon_config *cfg = cb_embed_config();
    PyObject *exc = cb_err_fetch(); /* keep whatever was pending */
    char label[256];
    char *stack = stack_text(t);
    carbon_hitch h;

    cb_tasklet_label(t, label, sizeof label);
    h.tasklet = label;
    h.stack = stack ? stack : "";
    h.ran_ns = ran_ns;
    h.in_a_row = in_a_row;
    h.stuck_in_c = stuck;
    h.host_thread = host;
    if (cfg->on_hitch)
        cfg->on_hitch(cfg->userdata, &h);
    else if (stuck)
        cb_embed_log(CARBON_LOG_WARNING,
                     "hitch: tasklet %s is stuck outside Python code (a C call) for %.1f ms on the %s "
                     "thread; it cannot be preempted:\n%s",
                     label, ran_ns / 1e6, host ? "host" : "a worker", h.stack);
    else
        cb_embed_log(CARBON_LOG_WARNING,
                     "hitch: tasklet %s ran %.1f ms without switching (%u tick%s in a row); preempted "
                     "at:\n%s",
                     label, ran_ns / 1e6, in_a_row, in_a_row == 1 ? "" : "s", h.stack);
    PyErr_Clear();
    PyMem_Free(stack);
    cb_err_restore(exc);
}

/* The watchdog's report (its thread, GIL held). */
static void stuck_report(cb_manager *m, cb_tasklet *cur, long long ns)
{
    cb_embed_loop *loop = m->idle ? (cb_embed_loop *)m->hook_arg : NULL;

    deliver(cur, ns, 1, 1, !loop || loop->worker == NULL);
}

/* A worker that does not end at shutdown (carbon_shutdown's timeout): its
 * running code gets TaskletExit at its next Python instruction, through the
 * same mechanism as a preempted slice. Called with the GIL held. */
static void interrupt_worker(carbon_worker *w)
{
    cb_embed_loop *loop = cb_embed_worker_loop(w);

    if (loop && loop->mgr && cb_preempt_interrupt(loop->mgr, cb_TaskletExit) < 0)
        cb_embed_log(CARBON_LOG_ERROR, "cannot interrupt a worker: the preemption watchdog thread did not start");
}

void cb_embed_hitch_install(void)
{
    cb_preempt_set_stuck_reporter(stuck_report);
    /* The host layer's hooks (embed/worker.c, embed/tasklets.c). */
    cb_embed_worker_interrupt_hook = interrupt_worker;
    cb_embed_tasklet_time_hook = cb_preempt_tick_ns;
}

int cb_embed_slice_arm(cb_embed_loop *loop)
{
    const carbon_config *cfg = cb_embed_config();

    if (cfg->slice_ns < 0)
        return 0;
    if (cb_preempt_arm(loop->mgr, CB_PREEMPT_SLICE, cfg->slice_ns ? cfg->slice_ns : CB_EMBED_DEFAULT_SLICE_NS,
                       0, 0, 1) < 0) {
        cb_embed_report(NULL, "<preemption>");
        return 0;
    }
    return 1;
}

void cb_embed_slice_disarm(cb_embed_loop *loop, cb_embed_run_result *res)
{
    cb_manager *m = loop->mgr;
    cb_preempt_hitch h;

    cb_preempt_disarm(m);
    cb_preempt_take_hitch(m, &h);
    res->slowest_ns = cb_preempt_slowest(m, res->slowest, sizeof res->slowest);
    res->stuck_ns = cb_preempt_stuck_ns(m);
    if (!h.t)
        return;
    res->preempted += h.count;
    deliver(h.t, h.ran_ns, h.streak, 0, loop->worker == NULL);
    Py_DECREF(h.t);
}
