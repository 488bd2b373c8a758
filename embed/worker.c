/* Worker threads: libuv threads, each with its own thread state, schedule
 * manager and loop, running one function in its main tasklet and then its
 * tasklets until none is left alive or it is stopped.
 *
 * Shared state (the registry, a worker's flags, joiners, result, loop
 * pointer) is protected by the GIL; `stop` is also atomic so that a worker's
 * poll-free checks stay correct. A worker handle is owned by the C host
 * (carbon_worker_start .. carbon_worker_join) or by one Python `Worker`
 * object; once its owner is gone and its thread has ended the struct is
 * freed. carbon_shutdown stops and joins every worker still running. */
#define _GNU_SOURCE
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct joiner {
    cb_tasklet *t;      /* borrowed: the joining call holds a reference */
    unsigned flag;
    struct joiner *next;
} joiner;

struct carbon_worker {
    struct carbon_worker *prev, *next; /* registry */
    uv_thread_t thread;
    PyInterpreterState *interp;
    PyObject *fn, *args;   /* owned; taken over by the thread when it starts */
    PyObject *result;      /* what fn returned (Python-owned workers only) */
    PyObject *exc;         /* what fn raised (Python-owned workers only; not TaskletExit) */
    char *traceback;       /* ...formatted (malloc), for carbon_worker_join_ex */
    int raised;            /* fn raised something other than TaskletExit */
    char *name;
    atomic_int stop;
    atomic_int exited;     /* the thread function returned */
    atomic_int abandoned;  /* parked for ever after ignoring its stop */
    int stop_raises;       /* TaskletExits raised into its main tasklet to stop it */
    unsigned started : 1;  /* the thread exists */
    unsigned ended : 1;    /* the thread has finished with Python */
    unsigned joining : 1;  /* someone is (or was) in uv_thread_join */
    unsigned joined : 1;
    unsigned c_owned : 1;  /* handle held by the C host */
    unsigned py_owned : 1; /* handle held by a Python Worker */
    cb_embed_loop *loop;   /* while the thread runs its loop */
    joiner *joiners;
};

void (*cb_embed_worker_interrupt_hook)(carbon_worker *w);

static carbon_worker *registry;
static long running;

long cb_embed_workers_running(void)
{
    return running;
}

int cb_embed_worker_stopping(cb_embed_loop *loop)
{
    return loop->worker && !loop->ending && atomic_load(&loop->worker->stop);
}

cb_embed_loop *cb_embed_worker_loop(carbon_worker *w)
{
    return w->loop;
}

const char *cb_embed_worker_name(carbon_worker *w)
{
    return w->name;
}

static int worker_end(carbon_worker *w);

int cb_embed_worker_stop_retry(cb_embed_loop *loop)
{
    carbon_worker *w = loop->worker;

    if (++w->stop_raises <= CB_WORKER_STOP_RETRIES)
        return 0;
    /* Its main function swallows every TaskletExit (`except BaseException`
     * in a loop): raising more only spins. It is given up: joiners and
     * carbon_shutdown stop waiting, and the thread sleeps for ever without
     * the GIL, touching nothing again. */
    cb_embed_log(CARBON_LOG_ERROR,
                 "worker %s ignored TaskletExit %d times while stopping; it is abandoned "
                 "(its thread is parked and not joined)", w->name, CB_WORKER_STOP_RETRIES);
    loop->worker = NULL;
    w->loop = NULL;
    worker_end(w);
    atomic_store(&w->abandoned, 1);
    (void)PyEval_SaveThread();
    for (;;)
        pause();
}

int cb_embed_worker_alive(carbon_worker *w)
{
    return w->started && !w->ended;
}

static void unlink_worker(carbon_worker *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (registry == w)
        registry = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

/* GIL held (or the interpreter is gone: `python` = 0). */
static void free_worker(carbon_worker *w, int python)
{
    unlink_worker(w);
    if (python) {
        Py_CLEAR(w->fn);
        Py_CLEAR(w->args);
        Py_CLEAR(w->result);
        Py_CLEAR(w->exc);
    }
    free(w->traceback);
    free(w->name);
    free(w);
}

/* The exception line of a traceback (its last non-empty line): start and length. */
static int last_line(const char *tb, const char **start)
{
    const char *end;

    if (!tb || !*tb) {
        *start = "(no traceback)";
        return (int)strlen(*start);
    }
    end = tb + strlen(tb);
    while (end > tb && end[-1] == '\n')
        end--;
    *start = end;
    while (*start > tb && (*start)[-1] != '\n')
        (*start)--;
    return (int)(end - *start);
}

/* The function raised: keep what join needs, then report it. */
static void record_failure(carbon_worker *w)
{
    PyObject *exc = cb_err_fetch();
    char *tb, *copy;

    if (!exc)
        return;
    if (cb_TaskletExit && PyErr_GivenExceptionMatches(exc, cb_TaskletExit)) {
        Py_DECREF(exc); /* a stop, not a failure */
        return;
    }
    w->raised = 1;
    cb_err_restore(Py_NewRef(exc));
    tb = cb_embed_format_exception(); /* clears it */
    copy = tb ? strdup(tb) : NULL;
    PyMem_Free(tb);
    free(w->traceback);
    w->traceback = copy;
    {
        const char *line;
        int len = last_line(copy, &line);
        cb_embed_log(CARBON_LOG_ERROR, "worker %s: its function raised %.*s (traceback: error callback, "
                     "carbon_worker_join_ex, Worker.join())", w->name, len, line);
    }
    if (w->py_owned)
        w->exc = Py_NewRef(exc);
    cb_err_restore(exc);
    cb_embed_report(NULL, w->name);
}

/* ---- the thread --------------------------------------------------------------------------- */

/* Runs the queue between turns of the loop until stopped or nothing can
 * ever run here again. */
static void serve(carbon_worker *w, cb_embed_loop *loop)
{
    long long budget = cb_embed_config()->worker_budget_ns;

    while (!atomic_load(&w->stop)) {
        cb_manager *m = loop->mgr;
        cb_embed_run_result res = {0};

        if (m->queued == 0 && !m->deferred_kills && !loop->sleepers.n && !loop->frame_waiters.n &&
            !uv_loop_alive(&loop->uv) && !cb_embed_has_tasklets(m))
            break; /* none alive: nothing can ever run here again */
        cb_embed_loop_step(loop, m->queued == 0 ? CB_EMBED_TURN_WAIT : CB_EMBED_TURN_POLL);
        if (atomic_load(&w->stop))
            break;
        cb_embed_run_budget(loop, cb_monotonic_ns(), budget, &res);
        if (res.failed) {
            /* A switch trap left set, or its main tasklet was killed from
             * another thread (TaskletExit: not an error). */
            cb_embed_log(res.errors ? CARBON_LOG_ERROR : CARBON_LOG_DEBUG,
                         "worker %s: its run queue cannot be run; it ends", w->name);
            break;
        }
    }
}

static void run_worker(carbon_worker *w)
{
    cb_embed_loop *loop = cb_embed_loop_get();
    PyObject *fn = w->fn, *args = w->args, *r = NULL;

    w->fn = w->args = NULL; /* ours now */
    if (!loop) {
        cb_embed_report(NULL, w->name);
        Py_XDECREF(fn);
        Py_XDECREF(args);
        return;
    }
    loop->worker = w;
    w->loop = loop;
    if (!atomic_load(&w->stop)) {
        r = PyObject_Call(fn, args, NULL);
        if (!r)
            record_failure(w);
    }
    Py_DECREF(fn);
    Py_DECREF(args);
    if (w->py_owned)
        w->result = r;
    else
        Py_XDECREF(r);
    serve(w, loop);
    w->loop = NULL;
    cb_embed_loop_close(); /* TaskletExit into what is left */
}

/* The thread is done with Python: wake the joiners. Returns 1 if nobody owns
 * the handle any more (the thread then detaches and frees it). */
static int worker_end(carbon_worker *w)
{
    joiner *j = w->joiners;

    w->ended = 1;
    running--;
    w->joiners = NULL;
    while (j) {
        joiner *next = j->next;
        cb_embed_wake(j->t, &j->flag);
        j = next;
    }
    if (!w->c_owned && !w->py_owned && !w->joining) {
        unlink_worker(w);
        Py_CLEAR(w->result);
        Py_CLEAR(w->exc);
        return 1;
    }
    return 0;
}

static void worker_thread(void *arg)
{
    carbon_worker *w = arg;
    PyThreadState *ts = PyThreadState_New(w->interp);
    int orphan;

    if (!ts) {
        /* Cannot even take the GIL: the handle stays "running" until joined. */
        fprintf(stderr, "carbon: worker %s: cannot create a Python thread state\n", w->name);
        return;
    }
    PyEval_RestoreThread(ts);
    run_worker(w);
    orphan = worker_end(w);
    PyThreadState_Clear(ts); /* drops the thread's manager */
    PyThreadState_DeleteCurrent(); /* and the GIL */
    atomic_store(&w->exited, 1); /* w stays valid: a joiner, or freed below */
    if (orphan) {
        pthread_detach(pthread_self());
        free(w->traceback);
        free(w->name);
        free(w);
    }
}

carbon_worker *cb_embed_worker_spawn(PyObject *fn, PyObject *args, const char *name, int py_owned)
{
    carbon_worker *w;
    int err;

    if (!cb_embed_accepting_workers()) {
        PyErr_SetString(PyExc_RuntimeError, "cannot start a worker: the runtime is shutting down");
        return NULL;
    }
    w = calloc(1, sizeof *w);
    if (!w || !(w->name = strdup(name ? name : "?"))) {
        free(w);
        PyErr_NoMemory();
        return NULL;
    }
    /* Owned from the start: the thread cannot end before we let go of the
     * GIL, but an unowned handle would be freed at its end. */
    w->py_owned = py_owned ? 1 : 0;
    w->c_owned = py_owned ? 0 : 1;
    w->interp = PyInterpreterState_Get();
    w->fn = Py_NewRef(fn);
    w->args = Py_NewRef(args);
    atomic_init(&w->stop, 0);
    atomic_init(&w->exited, 0);
    atomic_init(&w->abandoned, 0);
    w->next = registry;
    if (registry)
        registry->prev = w;
    registry = w;
    running++;
    w->started = 1;
    if ((err = uv_thread_create(&w->thread, worker_thread, w)) != 0) {
        running--;
        w->started = 0;
        free_worker(w, 1);
        PyErr_Format(PyExc_OSError, "cannot start a worker thread: %s", uv_strerror(err));
        return NULL;
    }
    return w;
}

int cb_embed_worker_request_stop(carbon_worker *w)
{
    atomic_store(&w->stop, 1);
    if (w->loop)
        uv_async_send(&w->loop->async);
    return 0;
}

/* Waits (GIL released) for the thread's end, then joins it; once per
 * worker. timeout_ns < 0: no limit. Returns 0, or 1 if it timed out (the
 * handle can be joined again). */
static int join_thread_timed(carbon_worker *w, long long timeout_ns)
{
    PyThreadState *save;
    long long deadline = timeout_ns >= 0 ? cb_monotonic_ns() + timeout_ns : 0;
    int done;

    if (!w->started || w->joining)
        return 0;
    w->joining = 1; /* nobody frees it meanwhile */
    save = PyEval_SaveThread();
    /* Polled, not a plain join: an abandoned worker's thread never exits. */
    while (!(done = atomic_load(&w->exited) || atomic_load(&w->abandoned))) {
        if (timeout_ns >= 0 && cb_monotonic_ns() >= deadline)
            break;
        uv_sleep(1);
    }
    if (done && atomic_load(&w->abandoned))
        pthread_detach(w->thread);
    else if (done)
        uv_thread_join(&w->thread);
    PyEval_RestoreThread(save);
    if (!done) {
        w->joining = 0;
        return 1;
    }
    w->joined = 1;
    return 0;
}

static void join_thread(carbon_worker *w)
{
    (void)join_thread_timed(w, -1);
}

void cb_embed_worker_overdue(carbon_worker *w, const char *why)
{
    cb_embed_log(CARBON_LOG_WARNING, "worker %s has not ended %s (busy in Python or C code)%s", w->name, why,
                 cb_embed_worker_interrupt_hook ? "; interrupting it" : "");
    if (cb_embed_worker_interrupt_hook)
        cb_embed_worker_interrupt_hook(w);
}

PyObject *cb_embed_worker_join_tasklet(carbon_worker *w)
{
    if (!w->ended) {
        cb_embed_loop *loop = cb_embed_loop_get();
        cb_manager *m;
        CB_OFFSTACK(joiner, j);

        if (!j)
            return PyErr_NoMemory();
        if (!loop)
            return NULL;
        if (loop == w->loop) {
            PyErr_SetString(PyExc_RuntimeError, "a worker cannot join itself");
            return NULL;
        }
        m = loop->mgr;
        if (m->current->block_trap)
            return cb_embed_refuse_block("join a worker");
        j->t = (cb_tasklet *)Py_NewRef((PyObject *)m->current);
        j->next = w->joiners;
        /* unlinked again before this scope ends (below, or by worker_end) */
        cb_offstack_check(j, "a worker's joiner");
        w->joiners = j;
        while (!j->flag) {
            if (cb_block_current(m, &j->flag) < 0) {
                for (joiner **p = &w->joiners; *p; p = &(*p)->next) {
                    if (*p == j) {
                        *p = j->next;
                        break;
                    }
                }
                Py_DECREF(j->t);
                return NULL;
            }
        }
        Py_DECREF(j->t);
    }
    join_thread(w);
    if (w->exc) {
        cb_err_restore(Py_NewRef(w->exc)); /* join() re-raises what the function raised */
        return NULL;
    }
    return Py_NewRef(w->result ? w->result : Py_None);
}

void cb_embed_worker_release_py(carbon_worker *w)
{
    w->py_owned = 0;
    if (w->joined) {
        free_worker(w, 1);
    } else if (w->ended && !w->joining) {
        /* Its thread is gone or about to be: let it go by itself. */
        pthread_detach(w->thread);
        free_worker(w, 1);
    }
    /* else still running: an orphan, freed by its thread at its end. */
}

/* Joins every started worker not being joined elsewhere, until the
 * deadline (0: none); 1 if one is left. */
static int join_all(long long deadline)
{
    carbon_worker *w;

    /* The registry can change while the GIL is released: restart each time. */
    for (;;) {
        for (w = registry; w; w = w->next)
            if (w->started && !w->joining)
                break;
        if (!w)
            return 0;
        if (join_thread_timed(w, deadline ? (deadline - cb_monotonic_ns() > 0 ? deadline - cb_monotonic_ns() : 0)
                                          : -1))
            return 1;
    }
}

int cb_embed_workers_shutdown(long long timeout_ns)
{
    carbon_worker *w;

    cb_embed_stop_accepting_workers();
    for (w = registry; w; w = w->next)
        cb_embed_worker_request_stop(w);
    if (join_all(timeout_ns >= 0 ? cb_monotonic_ns() + (timeout_ns ? timeout_ns : 1) : 0)) {
        char why[64];
        snprintf(why, sizeof why, "%lld ms after carbon_shutdown asked it to stop",
                 (long long)(timeout_ns / 1000000));
        for (w = registry; w; w = w->next)
            if (w->started && !w->ended)
                cb_embed_worker_overdue(w, why);
        if (join_all(cb_monotonic_ns() + CB_EMBED_INTERRUPT_WAIT_NS))
            return -1;
    }
    for (w = registry; w;) {
        carbon_worker *next = w->next;
        if (!w->py_owned)
            free_worker(w, 1); /* C handles are invalid after shutdown */
        w = next;
    }
    return 0;
}

void cb_embed_workers_free_all(void)
{
    while (registry)
        free_worker(registry, 0);
    running = 0;
}

/* ---- the C API ------------------------------------------------------------------------------ */

static carbon_worker *find_c_handle(carbon_worker *w)
{
    for (carbon_worker *x = registry; x; x = x->next)
        if (x == w && x->c_owned)
            return x;
    return NULL;
}

/* "pkg.module:attr.attr" -> the callable (new reference) or NULL + exception. */
static PyObject *resolve_spec(const char *spec)
{
    const char *colon = strchr(spec, ':');
    PyObject *modname, *obj;
    const char *p;

    modname = PyUnicode_FromStringAndSize(spec, colon - spec);
    if (!modname)
        return NULL;
    obj = PyImport_Import(modname);
    Py_DECREF(modname);
    for (p = colon + 1; obj && *p;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        PyObject *name = PyUnicode_FromStringAndSize(p, (Py_ssize_t)n);
        PyObject *next = name ? PyObject_GetAttr(obj, name) : NULL;
        Py_XDECREF(name);
        Py_DECREF(obj);
        obj = next;
        p += n + (dot ? 1 : 0);
    }
    if (obj && !PyCallable_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "worker spec %s does not name a callable", spec);
        Py_CLEAR(obj);
    }
    return obj;
}

static int valid_spec(const char *spec)
{
    const char *colon = strchr(spec, ':');

    if (!colon || colon == spec || !colon[1] || strchr(colon + 1, ':'))
        return 0;
    for (const char *p = colon + 1; *p; p++)
        if (*p == '.' && (p == colon + 1 || !p[1] || p[1] == '.'))
            return 0;
    return 1;
}

int carbon_worker_start(const char *spec, carbon_worker **out)
{
    PyObject *fn, *args;
    carbon_worker *w;
    int rc;

    if (out)
        *out = NULL;
    if (!spec || !out)
        return cb_embed_fail(CARBON_EINVAL, "carbon_worker_start: spec and out must not be NULL");
    if (!valid_spec(spec))
        return cb_embed_fail(CARBON_EINVAL, "carbon_worker_start: spec must be \"module:function\", not \"%s\"",
                             spec);
    if ((rc = cb_embed_host_enter("carbon_worker_start")) != CARBON_OK)
        return rc;
    fn = resolve_spec(spec);
    if (!fn)
        return cb_embed_host_leave(cb_embed_fail_python());
    args = PyTuple_New(0);
    w = args ? cb_embed_worker_spawn(fn, args, spec, 0) : NULL;
    Py_XDECREF(args);
    Py_DECREF(fn);
    if (!w)
        return cb_embed_host_leave(cb_embed_fail_python());
    *out = w;
    return cb_embed_host_leave(CARBON_OK);
}

int carbon_worker_stop(carbon_worker *w)
{
    int rc;

    if (!w)
        return cb_embed_fail(CARBON_EINVAL, "carbon_worker_stop: worker is NULL");
    if ((rc = cb_embed_host_enter("carbon_worker_stop")) != CARBON_OK)
        return rc;
    if (!find_c_handle(w))
        return cb_embed_host_leave(
            cb_embed_fail(CARBON_EINVAL, "carbon_worker_stop: not a live worker handle"));
    cb_embed_worker_request_stop(w);
    return cb_embed_host_leave(CARBON_OK);
}

int carbon_worker_join(carbon_worker *w)
{
    return carbon_worker_join_ex(w, -1, NULL);
}

int carbon_worker_join_ex(carbon_worker *w, int64_t timeout_ns, carbon_worker_result *result)
{
    int rc;

    if (result) {
        result->raised = 0;
        result->traceback = NULL;
    }
    if (!w)
        return cb_embed_fail(CARBON_EINVAL, "carbon_worker_join: worker is NULL");
    if ((rc = cb_embed_host_enter("carbon_worker_join")) != CARBON_OK)
        return rc;
    if (!find_c_handle(w))
        return cb_embed_host_leave(
            cb_embed_fail(CARBON_EINVAL, "carbon_worker_join: not a live worker handle"));
    if (join_thread_timed(w, timeout_ns < 0 ? -1 : timeout_ns)) {
        if (atomic_load(&w->stop))
            cb_embed_worker_overdue(w, "within the join's timeout after it was asked to stop");
        return cb_embed_host_leave(cb_embed_fail(CARBON_ETIMEDOUT,
                                                 "carbon_worker_join: worker %s still running after %lld ms",
                                                 w->name, (long long)(timeout_ns / 1000000)));
    }
    if (result && w->raised) {
        result->raised = 1;
        result->traceback = w->traceback; /* the caller's now */
        w->traceback = NULL;
    }
    free_worker(w, 1);
    return cb_embed_host_leave(CARBON_OK);
}
