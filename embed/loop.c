/* A thread's libuv loop: created on the thread's first use of a carbon
 * function (or by carbon_init / a worker), hooked into the thread's schedule
 * manager, and closed at the thread's end.
 *
 * How a thread waits. The loop is never run in blocking mode with the GIL
 * released: instead the thread polls the loop's backend descriptor (epoll)
 * without the GIL, then runs the loop once without blocking, with the GIL.
 * So every libuv callback runs with the GIL held and may touch Python objects
 * and tasklets directly. Another thread wakes this one with uv_async_send()
 * (the manager's wakeup hook), which makes the backend descriptor readable.
 *
 * Ownership. The thread-state dict holds a capsule whose destructor closes
 * the loop, so the loop dies with the thread state (thread end, interpreter
 * finalization) even if nobody closes it explicitly. The loop holds a strong
 * reference to its manager, so the manager (and with it the hooks pointing
 * here) outlives the loop. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#define LOOP_KEY "carbon.loop"

static _Thread_local cb_embed_loop *tls_loop;

/* ---- hooks called by the scheduler core ----------------------------------------------- */

static void on_async(uv_async_t *handle)
{
    (void)handle; /* waking the thread was the whole point */
}

/* Another thread made one of our tasklets runnable (GIL held there). */
static void hook_wakeup(cb_manager *m, void *arg)
{
    cb_embed_loop *loop = arg;

    (void)m;
    loop->async_sent = 1;
    uv_async_send(&loop->async);
}

/* The main tasklet is blocked and nothing is runnable: wait for the loop. */
static int hook_idle(cb_manager *m, void *arg)
{
    cb_embed_loop *loop = arg;

    (void)m;
    if (cb_embed_worker_stopping(loop)) {
        cb_embed_worker_stop_retry(loop); /* bounded: then it never returns */
        PyErr_SetNone(cb_TaskletExit);
        return -1;
    }
    if (!cb_embed_loop_can_wake(loop))
        return 0; /* deadlock: the core raises it */
    if (cb_embed_loop_step(loop, CB_EMBED_TURN_WAIT) < 0)
        return -1;
    return 1; /* the core raises a kill or throw that arrived meanwhile */
}

/* ---- queries ------------------------------------------------------------------------------ */

int cb_embed_has_tasklets(cb_manager *m)
{
    for (cb_tasklet *t = m->all; t; t = t->mgr_next)
        if (!t->is_main && t->alive)
            return 1;
    return 0;
}

int cb_embed_loop_can_wake(cb_embed_loop *loop)
{
    return loop->sleepers.n || loop->frame_waiters.n || uv_loop_alive(&loop->uv) ||
           cb_g.manager_threads > 1 || cb_embed_workers_running() > 0;
}

/* ---- one turn ------------------------------------------------------------------------------ */

/* The longest single wait of a thread with nothing to do (see
 * cb_embed_loop_step): the latency of Ctrl-C delivered to another thread
 * and of a deadlock check after the last other thread ends. */
#define WAIT_SLICE_NS (100LL * 1000000LL)

/* How long the thread may sleep: -1 forever, else nanoseconds. */
static long long wait_budget(cb_embed_loop *loop)
{
    long long ns = -1, deadline, now;
    int uv_ms;

    if (loop->mgr->queued > 0 || loop->mgr->deferred_kills || loop->main_woken ||
        cb_embed_worker_stopping(loop))
        return 0;
    /* uv_backend_timeout() says 0 for a loop without live handles: then
     * only our sleepers, frames and the wakeup handle can end the wait. */
    if (uv_loop_alive(&loop->uv)) {
        uv_update_time(&loop->uv);
        uv_ms = uv_backend_timeout(&loop->uv);
        if (uv_ms >= 0)
            ns = (long long)uv_ms * 1000000LL;
    }
    deadline = cb_embed_heap_min(&loop->sleepers);
    if (loop->frame_waiters.n && loop->next_frame_ns < deadline)
        deadline = loop->next_frame_ns;
    if (loop->wait_until_ns && loop->wait_until_ns < deadline)
        deadline = loop->wait_until_ns;
    if (deadline != LLONG_MAX) {
        now = cb_monotonic_ns();
        if (deadline <= now)
            return 0;
        if (ns < 0 || deadline - now < ns)
            ns = deadline - now;
    }
    return ns;
}

/* uv_run() does nothing at all on a loop without referenced handles, not
 * even registering descriptors with epoll; our wakeup handle is referenced
 * just for the run so the loop always turns. */
static void run_nowait(cb_embed_loop *loop)
{
    loop->async_sent = 0;
    uv_ref((uv_handle_t *)&loop->async);
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    uv_unref((uv_handle_t *)&loop->async);
}

static void advance_frames(cb_embed_loop *loop, int mode, long long now)
{
    long long period = cb_embed_config()->frame_period_ns;

    if (mode == CB_EMBED_TURN_TICK) {
        loop->frame++;
        /* Should the host stop ticking, the clock takes over from here. */
        loop->next_frame_ns = now + period;
    } else if (now >= loop->next_frame_ns) {
        /* One frame per turn: a late thread drops frames rather than
         * catching up, so wait_frames(n) always sees exactly n frames. */
        loop->frame++;
        loop->next_frame_ns += period;
        if (loop->next_frame_ns <= now)
            loop->next_frame_ns = now + period;
    }
}

int cb_embed_loop_step(cb_embed_loop *loop, int mode)
{
    long long ns, now;

    /* Also registers descriptors started since the last turn with epoll. A
     * tick with no handle of its own and no wakeup pending skips it (a poll
     * is a system call): tasklets woken by other threads are already in the
     * queue, the wakeup only ends a wait. */
    int was_alive = uv_loop_alive(&loop->uv);

    loop->main_woken = 0;
    if (mode != CB_EMBED_TURN_TICK || loop->async_sent || was_alive)
        run_nowait(loop);
    /* No wait either if the turn closed the last handles (their close
     * callbacks ran): whoever decides whether the thread is done must look
     * again before waiting on a loop with nothing left in it. */
    if (mode == CB_EMBED_TURN_WAIT && !(was_alive && !uv_loop_alive(&loop->uv)) &&
        (ns = wait_budget(loop)) != 0) {
        struct pollfd pfd = {.fd = uv_backend_fd(&loop->uv), .events = POLLIN};
        struct timespec ts;

        /* Never an endless wait: a signal may be delivered to another
         * thread (its Python handler runs only here, on the main thread),
         * and the other threads that made this wait legal may end without
         * waking us (the caller then re-checks for a deadlock). */
        if (ns < 0 || ns > WAIT_SLICE_NS)
            ns = WAIT_SLICE_NS;
        ts.tv_sec = (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        Py_BEGIN_ALLOW_THREADS
        ppoll(&pfd, 1, &ts, NULL);
        Py_END_ALLOW_THREADS
        run_nowait(loop);
        /* Python signal handlers (KeyboardInterrupt for SIGINT): a no-op
         * off the main thread. */
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
    now = cb_monotonic_ns();
    advance_frames(loop, mode, now);
    cb_embed_heap_wake(&loop->sleepers, now);
    cb_embed_heap_wake(&loop->frame_waiters, (long long)loop->frame);
    return 0;
}

/* ---- creation and teardown ----------------------------------------------------------------- */

static int on_owner_thread(cb_embed_loop *loop)
{
    uv_thread_t self = uv_thread_self();

    return uv_thread_equal(&self, &loop->thread);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Kills the thread's remaining tasklets while the interpreter can still run
 * their finally blocks (shutdown.c: grace period, retry rule). */
static void kill_remaining(cb_embed_loop *loop, long long grace_ns)
{
    if (loop->mgr)
        cb_embed_end_tasklets(loop, grace_ns);
}

static void loop_destroy(cb_embed_loop *loop)
{
    cb_manager *m = loop->mgr;

    if (!on_owner_thread(loop)) {
        /* Another thread is tearing our thread state down (interpreter
         * finalization of a daemon thread that never runs again): the loop
         * cannot be closed from here, so it is left as it is. */
        return;
    }
    kill_remaining(loop, 0); /* normally done already, with the grace period */
    cb_embed_heap_free(&loop->sleepers);
    cb_embed_heap_free(&loop->frame_waiters);
    if (m && m->hook_arg == loop) {
        m->idle = NULL;
        m->wakeup = NULL;
        m->hook_arg = NULL;
    }
    if (tls_loop == loop)
        tls_loop = NULL;
    cb_net_loop_closing(loop);
    cb_embed_poll_close(loop);
    cb_embed_timeout_close(loop);
    uv_walk(&loop->uv, close_walk, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT); /* runs the close callbacks */
    if (uv_loop_close(&loop->uv) != 0) {
        cb_embed_log(CARBON_LOG_WARNING, "a thread's libuv loop could not be closed; it is leaked");
        loop->mgr = NULL;
        Py_XDECREF(m);
        return;
    }
    loop->mgr = NULL;
    free(loop);
    Py_XDECREF(m); /* may destroy the manager: no longer points at us */
}

static void capsule_destructor(PyObject *capsule)
{
    cb_embed_loop *loop = PyCapsule_GetPointer(capsule, LOOP_KEY);

    if (loop)
        loop_destroy(loop);
    else
        PyErr_Clear();
}

cb_embed_loop *cb_embed_loop_peek(void)
{
    return tls_loop;
}

static int uv_fail(const char *what, int err)
{
    PyErr_Format(PyExc_OSError, "libuv %s: %s", what, uv_strerror(err));
    return -1;
}

cb_embed_loop *cb_embed_loop_get(void)
{
    cb_embed_loop *loop = tls_loop;
    cb_manager *m;
    PyObject *dict, *capsule;
    unsigned pool;
    int err;

    if (loop)
        return loop;
    m = cb_manager_get();
    if (!m)
        return NULL;
    if (m->idle || m->wakeup) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this thread's scheduler is already driven by another event loop");
        return NULL;
    }
    dict = PyThreadState_GetDict(); /* borrowed */
    if (!dict) {
        PyErr_SetString(PyExc_RuntimeError, "the thread has no thread-state dict");
        return NULL;
    }
    loop = calloc(1, sizeof *loop);
    if (!loop) {
        PyErr_NoMemory();
        return NULL;
    }
    if ((err = uv_loop_init(&loop->uv)) != 0) {
        free(loop);
        uv_fail("uv_loop_init", err);
        return NULL;
    }
    if ((err = uv_async_init(&loop->uv, &loop->async, on_async)) != 0) {
        uv_loop_close(&loop->uv);
        free(loop);
        uv_fail("uv_async_init", err);
        return NULL;
    }
    /* The wakeup handle alone does not keep the loop "alive" (deadlock
     * detection looks at the other handles). */
    uv_unref((uv_handle_t *)&loop->async);
    loop->mgr = (cb_manager *)Py_NewRef((PyObject *)m);
    loop->tstate = PyThreadState_Get();
    loop->thread = uv_thread_self();
    loop->next_frame_ns = cb_monotonic_ns() + cb_embed_config()->frame_period_ns;
    pool = cb_embed_config()->stack_pool_size;
    if (pool)
        m->pool.max_free = pool;
    /* Puts the async descriptor into the epoll set before the first poll. */
    run_nowait(loop);

    capsule = PyCapsule_New(loop, LOOP_KEY, capsule_destructor);
    if (!capsule) {
        loop_destroy(loop);
        return NULL;
    }
    tls_loop = loop;
    m->idle = hook_idle;
    m->wakeup = hook_wakeup;
    m->hook_arg = loop;
    if (PyDict_SetItemString(dict, LOOP_KEY, capsule) < 0) {
        Py_DECREF(capsule); /* destroys the loop */
        return NULL;
    }
    Py_DECREF(capsule); /* the thread-state dict owns it */
    return loop;
}

void cb_embed_loop_close(void)
{
    cb_embed_loop *loop = tls_loop;
    PyObject *dict;

    if (!loop)
        return;
    kill_remaining(loop, cb_embed_grace_ns());
    dict = PyThreadState_GetDict(); /* borrowed */
    if (!dict || PyDict_DelItemString(dict, LOOP_KEY) < 0) {
        PyErr_Clear();
        if (tls_loop == loop)
            loop_destroy(loop);
    }
}
