/* Preemption of long-running tasklets (see preempt.h for the model).
 *
 * Threads and locks. Each armed manager has a slot in a registry guarded by
 * `reg.lock`. Slots are created, changed and freed by their own thread with
 * the GIL held; the watchdog thread reads them under the lock and never
 * waits for the GIL while holding it (order: GIL, then reg.lock). What the
 * watchdog reads of a manager outside the lock (its switch counter, current
 * tasklet pointer, slice start) it reads with relaxed atomic loads and only
 * compares; it never dereferences a tasklet without the GIL.
 *
 * Delivery, per version (the interrupted thread must run the trace hook
 * itself, inside its running tasklet):
 *   main thread, 3.11-3.13: Py_AddPendingCall (handled by the main thread);
 *   other threads, 3.12:    _PyEval_AddPendingCall(..., mainthreadonly=0),
 *                           handled by whichever thread runs Python next,
 *                           which installs the hook on the target thread
 *                           state (_PyEval_SetTrace);
 *   other threads, 3.13:    the same call, plus the target thread's own
 *                           eval-breaker bit so that it is the one to run it;
 *   other threads, 3.11:    pending calls are main-thread-only there: the
 *                           watchdog takes the GIL (waiting at most the
 *                           interpreter's switch interval, as any thread
 *                           does) and installs the hook itself.
 * The hook is a trace function (PyEval_SetTrace): on its first line event it
 * removes itself (restoring a trace function the program had), then
 * suspends the tasklet with an ordinary schedule. Requests not served in
 * time are posted again.
 */
#include "preempt.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(CB_PY311) || defined(CB_PY312)
/* evalbreaker.c: after adding a pending call from the watchdog, the
 * interpreter must be told (see there). */
void cb_eval_breaker_set(PyInterpreterState *interp);
#define SET_EVAL_BREAKER(ts) cb_eval_breaker_set((ts)->interp)
#endif

#ifdef CB_PY313
/* Exported, declared in the internal headers only (pycore_ceval.h). */
extern int _PyEval_AddPendingCall(PyInterpreterState *interp, int (*func)(void *), void *arg,
                                  int flags);
#define CB_CALLS_TO_DO_BIT ((uintptr_t)1 << 2) /* _PY_CALLS_TO_DO_BIT */
#elif defined(CB_PY312)
extern int _PyEval_AddPendingCall(PyInterpreterState *interp, int (*func)(void *), void *arg,
                                  int mainthreadonly);
#endif

#define LABEL_MAX 128
/* A request not served this long after it was posted means the thread is
 * outside Python code (the hook runs within microseconds otherwise; 3.11
 * workers: once the watchdog got the GIL). Reported then, and every second. */
#define STUCK_AFTER_NS 1000000LL
#define STUCK_REPEAT_NS 1000000000LL

typedef struct cb_preempt {
    struct cb_preempt *next;
    cb_manager *mgr;
    PyThreadState *ts;
    unsigned long id;              /* what pending calls carry (slots may die) */
    int main_thread;
    /* arming */
    int mode;                      /* 0: not armed */
    int total, soft;
    long long limit_ns;
    long long armed_ns;
    /* watchdog's view */
    unsigned long long seen_sw;
    long long seen_ns, last_sample_ns;
    int requested;                 /* an interruption was asked for... */
    unsigned long long req_sw;     /* ...of the run that had this switch count */
    long long req_ns, last_post_ns, stuck_reported_ns;
    int hook_installed;            /* the trace hook waits on the thread */
    int posted;                    /* a pending call for it is queued */
    int report_due;                /* the GIL thread reports it stuck... */
    unsigned long long report_sw;  /* ...if still in this run */
    long long base_start, base_wall, base_cpu; /* CPU time at the first look at a run */
    clockid_t cpu_clock;           /* the thread's CPU-time clock */
    int has_cpu_clock;
    pid_t tid;                     /* the thread's kernel id, 0 if unknown */
    int atomic_deferred;           /* the hook found the tasklet atomic */
    int soft_fired;
    long long stuck_ns;            /* longest stuck-outside-Python time seen */
    /* a raise request (cb_preempt_interrupt) */
    PyObject *raise_type;          /* borrowed: a static exception class */
    /* the trace function the program had */
    Py_tracefunc prev_func;
    PyObject *prev_obj;
    PyObject *op_frame;            /* 3.11: frame whose opcode events we turned on */
    int op_prev;
    /* results (GIL) */
    cb_tasklet *victim;            /* TIMEOUT */
    cb_tasklet *hitch;             /* SLICE */
    long long hitch_ran_ns;
    unsigned hitch_count;
    /* timing */
    long long slowest_ns;
    char slowest_label[LABEL_MAX];
    /* The clock read by a hand-off's deadline check (cb_preempt_clock), for
     * the accounting of the switch that follows it: valid while `clock_from`
     * has not been switched to since (a hand-off that lets it run on). */
    long long clock_ns;
    cb_tasklet *clock_from;        /* not a reference: only compared */
    long clock_seq;                /* clock_from->times_switched_to then */
} cb_preempt;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    pthread_t gil_thread;          /* does what needs the GIL, so that the
                                      watchdog's timing never waits for it */
    pthread_cond_t gil_cond;
    int gil_wanted;
    int started, stopping, idle;
    int gil_work;                  /* 3.11: a worker needs the hook installed */
    cb_preempt *slots;
    unsigned long next_id;
    cb_preempt_stuck_fn stuck_fn;
    unsigned long main_ident;      /* threading.main_thread().ident, 0: unknown */
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
         .gil_cond = PTHREAD_COND_INITIALIZER};

static int preempt_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);
static void remove_hook(cb_preempt *s);

/* ---- labels ---------------------------------------------------------------------------- */

static void copy_str(char *buf, size_t size, PyObject *s)
{
    const char *u = NULL;
    Py_ssize_t n = 0;

    if (s && PyUnicode_Check(s))
        u = PyUnicode_AsUTF8AndSize(s, &n);
    if (!u) {
        PyErr_Clear();
        u = "?";
        n = 1;
    }
    if ((size_t)n >= size)
        n = (Py_ssize_t)size - 1;
    memcpy(buf, u, (size_t)n);
    buf[n] = 0;
}

void cb_tasklet_label(cb_tasklet *t, char *buf, size_t size)
{
    PyObject *fn;

    if (!size)
        return;
    if (t->name) {
        copy_str(buf, size, t->name);
        return;
    }
    if (t->is_main) {
        snprintf(buf, size, "<main tasklet>");
        return;
    }
    fn = t->qualname ? t->qualname : t->method_name;
    if (!fn) {
        snprintf(buf, size, "<unbound tasklet>");
        return;
    }
    if (t->module_name && PyUnicode_Check(t->module_name) &&
        PyUnicode_CompareWithASCIIString(t->module_name, "unknown_module") != 0) {
        size_t k;
        copy_str(buf, size, t->module_name);
        k = strlen(buf);
        if (k + 1 < size) {
            buf[k] = '.';
            copy_str(buf + k + 1, size - k - 1, fn);
        }
        return;
    }
    copy_str(buf, size, fn);
}

/* ---- the watchdog thread ------------------------------------------------------------------ */

static long long now_ns(void)
{
    return cb_monotonic_ns();
}

static void cond_wait_until(long long deadline)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(deadline / 1000000000LL);
    ts.tv_nsec = (long)(deadline % 1000000000LL);
    pthread_cond_timedwait(&reg.cond, &reg.lock, &ts);
}

static int pending_hook(void *arg);

/* Asks the slot's thread to run the hook. reg.lock held. */
static void post(cb_preempt *s, long long now)
{
    s->last_post_ns = now;
    s->posted = 1;
    if (s->main_thread) {
        Py_AddPendingCall(pending_hook, (void *)(uintptr_t)s->id);
#ifdef SET_EVAL_BREAKER
        SET_EVAL_BREAKER(s->ts);
#endif
        return;
    }
#if defined(CB_PY312) || defined(CB_PY313)
    _PyEval_AddPendingCall(s->ts->interp, pending_hook, (void *)(uintptr_t)s->id, 0);
#ifdef SET_EVAL_BREAKER
    SET_EVAL_BREAKER(s->ts);
#endif
#ifdef CB_PY313
    __atomic_fetch_or(&s->ts->eval_breaker, CB_CALLS_TO_DO_BIT, __ATOMIC_SEQ_CST);
#endif
#else
    reg.gil_work = 1;
#endif
}

/* The period at which a slot without exact timing is sampled. */
static long long sample_period(cb_preempt *s)
{
    long long p = s->limit_ns / 4;

    if (p > 500000)
        p = 500000;
    if (p < 50000)
        p = 50000;
    return p;
}

/* CPU time of the slot's thread, -1 if unknown. */
static long long thread_cpu(cb_preempt *s)
{
    struct timespec ts;

    if (!s->has_cpu_clock || clock_gettime(s->cpu_clock, &ts) != 0)
        return -1;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Whether the kernel has the slot's thread blocked (sleeping in a system
 * call: a C call, time.sleep, I/O, the GIL) rather than runnable and merely
 * not scheduled (a loaded machine): only the first is "stuck in C". */
static int thread_blocked(cb_preempt *s)
{
    char path[64], buf[256], *p;
    FILE *f;
    size_t n;

    if (!s->tid)
        return 1;
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)s->tid);
    f = fopen(path, "r");
    if (!f)
        return 1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')'); /* "tid (comm) S ..." */
    return !(p && p[1] == ' ' && p[2] == 'R');
}

static void mark_report(cb_preempt *s, unsigned long long sw, long long now, int *stuck)
{
    if (reg.stuck_fn && (s->stuck_reported_ns == 0 || now - s->stuck_reported_ns >= STUCK_REPEAT_NS)) {
        s->stuck_reported_ns = now;
        s->report_due = 1;
        s->report_sw = sw;
        *stuck = 1;
    }
}

/* One look at an armed slot; returns when it wants to be looked at again.
 * reg.lock held.
 *
 * A tasklet is interrupted once it has run past the limit *and* its thread
 * used CPU time for an eighth of it since the watchdog first saw the run
 * (a Python thread sharing the GIL with a busy one gets about half): a thread that was not running
 * Python code (blocked in a C call, waiting for the GIL, or not scheduled by
 * the OS) is not the tasklet's doing; past the limit it is reported as
 * stuck instead. */
static long long watch(cb_preempt *s, long long now, int *stuck)
{
    cb_manager *m = s->mgr;
    unsigned long long sw = __atomic_load_n(&m->switches, __ATOMIC_RELAXED);
    cb_tasklet *cur = __atomic_load_n(&m->current, __ATOMIC_RELAXED);
    long long start, expiry, next, used, cpu;

    if (s->raise_type) {
        if (!s->hook_installed && !s->posted && now - s->last_post_ns >= 1000000)
            post(s, now);
        return now + 1000000;
    }
    next = now + sample_period(s);
    if (m->timing) {
        start = __atomic_load_n(&m->slice_t0, __ATOMIC_RELAXED);
        s->seen_sw = sw;
    } else {
        if (sw != s->seen_sw) {
            /* It changed since the previous look, at most a period ago
             * (the watchdog itself may have been kept waiting). */
            s->seen_sw = sw;
            s->seen_ns = s->last_sample_ns > now - sample_period(s) ? s->last_sample_ns
                                                                     : now - sample_period(s);
        }
        start = s->seen_ns;
    }
    s->last_sample_ns = now;
    if (s->total)
        start = s->armed_ns;
    if (start < s->armed_ns)
        start = s->armed_ns;
    if (start != s->base_start) {
        /* First look at this run: CPU time is counted from here (nothing is
         * assumed before it: the process may not have been scheduled). */
        s->base_start = start;
        s->base_wall = now;
        s->base_cpu = thread_cpu(s);
        s->stuck_reported_ns = 0;
    }
    expiry = start + s->limit_ns;
    if (s->requested && sw != s->req_sw) {
        s->requested = 0; /* served, or the tasklet switched by itself */
        s->atomic_deferred = 0;
    }
    if (cur == m->main && !s->total)
        return next < now + 1000000 ? next : now + 1000000;
    if (!s->requested) {
        if (now < expiry)
            return expiry < next ? expiry : next;
        cpu = s->base_cpu >= 0 ? thread_cpu(s) : -1;
        used = cpu >= 0 ? cpu - s->base_cpu : now - start;
        if (used < s->limit_ns / 8 && !s->total) {
            /* Not running Python code. */
            long long idle = now - start - used;
            if (now - expiry >= STUCK_AFTER_NS && thread_blocked(s)) {
                if (idle > s->stuck_ns)
                    s->stuck_ns = idle;
                mark_report(s, sw, now, stuck);
            }
            return now + 1000000;
        }
        if (s->soft) {
            if (!s->soft_fired) {
                s->soft_fired = 1;
                __atomic_store_n(&m->stop_run, 1, __ATOMIC_RELAXED);
            }
            return now + 1000000;
        }
        s->requested = 1;
        s->req_sw = sw;
        s->req_ns = now;
        s->atomic_deferred = 0;
        post(s, now);
        return now + sample_period(s);
    }
    /* asked, not served yet: the thread left Python code meanwhile */
    if (s->atomic_deferred)
        return now + 1000000;
    if (!s->hook_installed && !s->posted && now - s->last_post_ns >= 1000000)
        post(s, now);
    if (now - s->req_ns >= STUCK_AFTER_NS) {
        if (now - s->req_ns > s->stuck_ns)
            s->stuck_ns = now - s->req_ns;
        mark_report(s, sw, now, stuck);
    }
    return now + 1000000;
}

static cb_preempt *find_slot(unsigned long id)
{
    for (cb_preempt *s = reg.slots; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

/* Installs the hook on ts (GIL held; ts is the caller's or, 3.11/3.12, any
 * thread state of the interpreter). */
static int install_hook(cb_preempt *s, PyThreadState *ts)
{
    if (ts->c_tracefunc == preempt_trace) {
        s->hook_installed = 1;
        return 0;
    }
    s->prev_func = ts->c_tracefunc;
    Py_XSETREF(s->prev_obj, Py_XNewRef(ts->c_traceobj));
    s->hook_installed = 1;
#ifdef CB_PY311
    /* 3.11 reports no line event for a loop that jumps to its own line
     * (`while True: pass`): opcode events of the running frame catch it. */
    if (!s->op_frame) {
        PyObject *f = (PyObject *)PyThreadState_GetFrame(ts);
        PyObject *old = f ? PyObject_GetAttrString(f, "f_trace_opcodes") : NULL;
        if (old && PyObject_SetAttrString(f, "f_trace_opcodes", Py_True) == 0) {
            s->op_prev = old == Py_True;
            s->op_frame = Py_NewRef(f);
        }
        PyErr_Clear();
        Py_XDECREF(old);
        Py_XDECREF(f);
    }
#endif
#ifdef CB_PY313
    if (ts != PyThreadState_Get())
        return -1;
    PyEval_SetTrace(preempt_trace, Py_None);
    return 0;
#else
    return _PyEval_SetTrace(ts, preempt_trace, Py_None);
#endif
}

/* With the GIL (3.11 workers, stuck reports). */
static void watchdog_gil_round(void)
{
    PyGILState_STATE g;
    long long now;

    if (cb_is_finalizing()) {
        pthread_mutex_lock(&reg.lock);
        reg.gil_work = 0;
        for (cb_preempt *s = reg.slots; s; s = s->next)
            s->report_due = 0;
        pthread_mutex_unlock(&reg.lock);
        return;
    }
    g = PyGILState_Ensure();
    pthread_mutex_lock(&reg.lock);
    if (reg.stopping) {
        pthread_mutex_unlock(&reg.lock);
        PyGILState_Release(g);
        return;
    }
    now = now_ns();
    reg.gil_work = 0;
#ifdef CB_PY311
    for (cb_preempt *s = reg.slots; s; s = s->next)
        if (!s->main_thread)
            s->posted = 0; /* served by this round */
#endif
    for (cb_preempt *s = reg.slots; s; s = s->next) {
        unsigned long long sw = __atomic_load_n(&s->mgr->switches, __ATOMIC_RELAXED);
#ifdef CB_PY311
        int asked = (s->requested && sw == s->req_sw) || s->raise_type;

        if (asked && !s->main_thread && !s->hook_installed && s->ts->c_tracefunc != preempt_trace) {
            pthread_mutex_unlock(&reg.lock);
            if (install_hook(s, s->ts) < 0)
                PyErr_Clear();
            pthread_mutex_lock(&reg.lock);
            if (reg.stopping)
                break;
            continue; /* the list may have changed: slots die only with the GIL, which we hold */
        }
#endif
        if (s->report_due && sw == s->report_sw) {
            cb_preempt_stuck_fn fn = reg.stuck_fn;
            cb_manager *m = s->mgr;
            long long ran;

            s->report_due = 0;
            ran = now - s->base_start;
            Py_INCREF(m);
            pthread_mutex_unlock(&reg.lock);
            if (m->current && !m->current->is_main)
                fn(m, m->current, ran);
            PyErr_Clear();
            Py_DECREF(m);
            pthread_mutex_lock(&reg.lock);
            if (reg.stopping)
                break;
        }
    }
    pthread_mutex_unlock(&reg.lock);
    PyGILState_Release(g);
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    /* Best effort: a watchdog that wakes late makes every tick late. Raising
     * the priority needs CAP_SYS_NICE; without it this does nothing. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), -10) != 0)
        errno = 0;
    pthread_mutex_lock(&reg.lock);
    while (!reg.stopping) {
        long long now = now_ns(), wake = LLONG_MAX;
        int armed = 0, stuck = 0;

        for (cb_preempt *s = reg.slots; s; s = s->next) {
            long long w;
            if (!s->mode && !s->raise_type)
                continue;
            armed = 1;
            w = watch(s, now, &stuck);
            if (w < wake)
                wake = w;
        }
        if (stuck || reg.gil_work) {
            reg.gil_wanted = 1;
            pthread_cond_signal(&reg.gil_cond);
        }
        if (!armed) {
            reg.idle = 1;
            pthread_cond_wait(&reg.cond, &reg.lock);
            reg.idle = 0;
            continue;
        }
        if (wake <= now)
            wake = now + 20000;
        cond_wait_until(wake);
    }
    pthread_mutex_unlock(&reg.lock);
    return NULL;
}

static void *gil_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&reg.lock);
    while (!reg.stopping) {
        if (!reg.gil_wanted) {
            pthread_cond_wait(&reg.gil_cond, &reg.lock);
            continue;
        }
        reg.gil_wanted = 0;
        pthread_mutex_unlock(&reg.lock);
        watchdog_gil_round();
        pthread_mutex_lock(&reg.lock);
    }
    pthread_mutex_unlock(&reg.lock);
    return NULL;
}

/* reg.lock held. */
static int ensure_started(void)
{
    pthread_condattr_t ca;
    pthread_attr_t attr;
    int rc;

    /* Stopped (the interpreter is exiting): slots still work, nothing is
     * preempted any more. */
    if (reg.started || reg.stopping)
        return 0;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&reg.cond);
    pthread_cond_init(&reg.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    rc = pthread_create(&reg.thread, &attr, watchdog_main, NULL);
    if (rc == 0 && (rc = pthread_create(&reg.gil_thread, &attr, gil_main, NULL)) != 0) {
        reg.stopping = 1;
        pthread_cond_broadcast(&reg.cond);
        pthread_mutex_unlock(&reg.lock);
        pthread_join(reg.thread, NULL);
        pthread_mutex_lock(&reg.lock);
    }
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return -1;
    reg.started = 1;
    return 0;
}

void cb_preempt_shutdown(void)
{
    int join;

    pthread_mutex_lock(&reg.lock);
    join = reg.started && !reg.stopping;
    reg.stopping = 1;
    pthread_cond_broadcast(&reg.cond);
    pthread_cond_broadcast(&reg.gil_cond);
    pthread_mutex_unlock(&reg.lock);
    if (join) {
        pthread_join(reg.thread, NULL);
        /* It may be waiting for the GIL (3.11 workers, stuck reports). */
        Py_BEGIN_ALLOW_THREADS
        pthread_join(reg.gil_thread, NULL);
        Py_END_ALLOW_THREADS
    }
}

void cb_preempt_set_stuck_reporter(cb_preempt_stuck_fn fn)
{
    pthread_mutex_lock(&reg.lock);
    reg.stuck_fn = fn;
    pthread_mutex_unlock(&reg.lock);
}

/* ---- slots ---------------------------------------------------------------------------------- */

static unsigned long main_thread_ident(void)
{
    PyObject *threading, *mt, *ident;
    unsigned long id = 0;

    if (reg.main_ident)
        return reg.main_ident;
    threading = PyImport_ImportModule("threading");
    mt = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    ident = mt ? PyObject_GetAttrString(mt, "ident") : NULL;
    if (ident)
        id = PyLong_AsUnsignedLong(ident);
    PyErr_Clear();
    Py_XDECREF(ident);
    Py_XDECREF(mt);
    Py_XDECREF(threading);
    if (id && id != (unsigned long)-1)
        reg.main_ident = id;
    return reg.main_ident;
}

/* A new slot for m (GIL held, any thread). */
static cb_preempt *slot_make(cb_manager *m)
{
    unsigned long main_id = main_thread_ident();
    cb_preempt *s = PyMem_RawCalloc(1, sizeof *s);

    if (!s) {
        PyErr_NoMemory();
        return NULL;
    }
    s->mgr = m;
    s->ts = m->tstate;
    s->main_thread = main_id != 0 && main_id == (unsigned long)m->thread_id;
    s->base_start = -1;
    pthread_mutex_lock(&reg.lock);
    if (ensure_started() < 0) {
        pthread_mutex_unlock(&reg.lock);
        PyMem_RawFree(s);
        PyErr_SetString(PyExc_RuntimeError, "cannot start the preemption watchdog thread");
        return NULL;
    }
    s->id = ++reg.next_id;
    s->next = reg.slots;
    reg.slots = s;
    pthread_mutex_unlock(&reg.lock);
    m->preempt = s;
    return s;
}

/* The manager's slot, created on first use (GIL, m's thread). */
static cb_preempt *slot_of(cb_manager *m)
{
    cb_preempt *s = m->preempt ? m->preempt : slot_make(m);

    if (s && !s->has_cpu_clock) { /* only the thread itself can name these */
        s->has_cpu_clock = pthread_getcpuclockid(pthread_self(), &s->cpu_clock) == 0;
        s->tid = (pid_t)syscall(SYS_gettid);
    }
    return s;
}

void cb_preempt_manager_gone(cb_manager *m)
{
    cb_preempt *s = m->preempt;

    if (!s)
        return;
    pthread_mutex_lock(&reg.lock);
    for (cb_preempt **p = &reg.slots; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    pthread_mutex_unlock(&reg.lock);
    m->preempt = NULL;
    m->timing = 0;
    Py_CLEAR(s->victim);
    Py_CLEAR(s->hitch);
    Py_CLEAR(s->prev_obj);
    Py_CLEAR(s->op_frame);
    PyMem_RawFree(s);
}

int cb_preempt_arm(cb_manager *m, int mode, long long limit_ns, int total, int soft, int timing)
{
    cb_preempt *s = slot_of(m);
    long long now = now_ns();

    if (!s)
        return -1;
    m->tick_stamp++;
    m->stop_run = 0;
    if (timing) {
        m->slice_t0 = now;
        s->slowest_ns = 0;
        s->slowest_label[0] = 0;
    }
    m->timing = timing;
    s->clock_from = NULL;
    Py_CLEAR(s->victim);
    Py_CLEAR(s->hitch);
    s->hitch_count = 0;
    s->hitch_ran_ns = 0;
    pthread_mutex_lock(&reg.lock);
    s->mode = mode;
    s->limit_ns = limit_ns > 0 ? limit_ns : 1;
    s->total = total;
    s->soft = soft;
    s->armed_ns = now;
    s->seen_sw = m->switches;
    s->seen_ns = now;
    s->last_sample_ns = now;
    s->requested = 0;
    s->report_due = 0;
    s->base_start = -1;
    s->soft_fired = 0;
    s->atomic_deferred = 0;
    s->stuck_reported_ns = 0;
    s->stuck_ns = 0;
    if (reg.idle)
        pthread_cond_signal(&reg.cond);
    pthread_mutex_unlock(&reg.lock);
    return 0;
}

void cb_preempt_disarm(cb_manager *m)
{
    cb_preempt *s = m->preempt;

    if (!s)
        return;
    if (m->timing && m->current != m->main)
        cb_preempt_account(m, m->current);
    m->timing = 0;
    s->clock_from = NULL;
    m->stop_run = 0;
    pthread_mutex_lock(&reg.lock);
    s->mode = 0;
    s->requested = 0;
    pthread_mutex_unlock(&reg.lock);
    /* A hook installed too late (the tasklet switched by itself meanwhile). */
    if (s->hook_installed && !s->raise_type && m->tstate == PyThreadState_Get() &&
        m->tstate->c_tracefunc == preempt_trace)
        remove_hook(s);
}

cb_tasklet *cb_preempt_take_victim(cb_manager *m)
{
    cb_tasklet *t = m->preempt ? m->preempt->victim : NULL;

    if (t)
        m->preempt->victim = NULL;
    return t;
}

void cb_preempt_take_hitch(cb_manager *m, cb_preempt_hitch *out)
{
    cb_preempt *s = m->preempt;

    memset(out, 0, sizeof *out);
    if (!s || !s->hitch)
        return;
    out->t = s->hitch;
    s->hitch = NULL;
    out->ran_ns = s->hitch_ran_ns;
    out->count = s->hitch_count;
    out->streak = out->t->preempt_streak;
}

long long cb_preempt_slowest(cb_manager *m, char *buf, size_t size)
{
    cb_preempt *s = m->preempt;

    if (size)
        buf[0] = 0;
    if (!s || !s->slowest_ns)
        return 0;
    snprintf(buf, size, "%s", s->slowest_label);
    return s->slowest_ns;
}

long long cb_preempt_stuck_ns(cb_manager *m)
{
    cb_preempt *s = m->preempt;
    long long v;

    if (!s)
        return 0;
    pthread_mutex_lock(&reg.lock);
    v = s->stuck_ns;
    pthread_mutex_unlock(&reg.lock);
    return v;
}

int cb_preempt_interrupt(cb_manager *m, PyObject *exc_type)
{
    cb_preempt *s = m->preempt;
    int rc = 0;

    /* The slot exists once the thread armed (a tick, a worker turn,
     * run(timeout)); else it is made here, which needs the GIL. */
    if (!s && PyGILState_Check()) {
        s = slot_make(m);
        if (!s) {
            PyErr_Clear();
            return -1;
        }
    }
    if (!s)
        return -1;
    pthread_mutex_lock(&reg.lock);
    if (ensure_started() < 0 || reg.stopping) {
        rc = -1;
    } else {
        s->raise_type = exc_type;
        s->hook_installed = 0;
        s->last_post_ns = 0;
        pthread_cond_signal(&reg.cond);
    }
    pthread_mutex_unlock(&reg.lock);
    return rc;
}

/* ---- on the interrupted thread ------------------------------------------------------------ */

/* A pending call: runs with the GIL on some thread of the interpreter. */
static int pending_hook(void *arg)
{
    unsigned long id = (unsigned long)(uintptr_t)arg;
    PyThreadState *me = PyThreadState_Get();
    PyThreadState *target = NULL;
    cb_preempt *s;

    pthread_mutex_lock(&reg.lock);
    s = find_slot(id);
    if (s)
        s->posted = 0;
    if (s && !s->hook_installed && (s->raise_type || (s->requested && s->mode))) {
#ifdef CB_PY313
        if (s->ts == me)
            target = me;
#else
        target = s->ts;
#endif
    }
    pthread_mutex_unlock(&reg.lock);
    /* Slots die only with the GIL held, which we hold: s stays valid. */
    if (target && install_hook(s, target) < 0) {
        s->hook_installed = 0;
        PyErr_Clear();
    }
    (void)me;
    return 0;
}

/* Removes the hook from the running thread, giving the program's trace
 * function back. */
static void remove_hook(cb_preempt *s)
{
    PyObject *obj = s->prev_obj;
    Py_tracefunc fn = s->prev_func;

    s->prev_obj = NULL;
    s->prev_func = NULL;
    PyEval_SetTrace(fn, obj);
    Py_XDECREF(obj);
    s->hook_installed = 0;
    if (s->op_frame) {
        PyObject *f = s->op_frame;
        s->op_frame = NULL;
        if (PyObject_SetAttrString(f, "f_trace_opcodes", s->op_prev ? Py_True : Py_False) < 0)
            PyErr_Clear();
        Py_DECREF(f);
    }
}

static int preempt_now(cb_manager *m, cb_preempt *s, cb_tasklet *cur, long long ran)
{
    if (s->mode == CB_PREEMPT_TIMEOUT) {
        Py_XSETREF(s->victim, (cb_tasklet *)Py_NewRef(cur));
        m->stop_run = 1;
        return cb_schedule(m, 1);
    }
    /* SLICE: a hitch, re-queued at the back. */
    if (cur->preempt_stamp + 1 == m->tick_stamp || cur->preempt_stamp == m->tick_stamp)
        cur->preempt_streak += cur->preempt_stamp == m->tick_stamp ? 0 : 1;
    else
        cur->preempt_streak = 1;
    cur->preempt_stamp = m->tick_stamp;
    s->hitch_count++;
    s->hitch_ran_ns = ran;
    Py_XSETREF(s->hitch, (cb_tasklet *)Py_NewRef(cur));
    return cb_schedule(m, 0);
}

static int preempt_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    cb_manager *m = cb_manager_peek();
    cb_preempt *s = m ? m->preempt : NULL;
    PyObject *raise_type = NULL;
    cb_tasklet *cur;
    int act = 0;
    long long ran = 0;

    (void)obj;
    (void)frame;
    (void)arg;
    if (!s) {
        PyEval_SetTrace(NULL, NULL);
        return 0;
    }
    if (what != PyTrace_LINE && what != PyTrace_OPCODE)
        return 0;
    remove_hook(s);
    cur = m->current;
    pthread_mutex_lock(&reg.lock);
    if (s->raise_type) {
        raise_type = s->raise_type;
        s->raise_type = NULL;
    } else if (s->mode && s->requested && m->switches == s->req_sw && !s->soft) {
        if (cur->is_main || m->switch_trap || m->runtime_trap || m->switching || cb_is_finalizing() ||
            cb_gc_in_tasklet(m))
            s->requested = 0; /* not here: look again later */
        else if (cur->atomic)
            s->atomic_deferred = 1;
        else
            act = 1;
        ran = now_ns() - (m->timing ? m->slice_t0 : s->seen_ns);
    }
    pthread_mutex_unlock(&reg.lock);
    if (raise_type) {
        PyErr_SetNone(raise_type);
        return -1;
    }
    if (!act)
        return 0;
    return preempt_now(m, s, cur, ran);
}

int cb_preempt_atomic_cleared(cb_manager *m)
{
    cb_preempt *s = m->preempt;
    cb_tasklet *cur = m->current;
    int act = 0;
    long long ran = 0;

    if (!s || !s->atomic_deferred)
        return 0;
    pthread_mutex_lock(&reg.lock);
    if (s->mode && s->requested && s->atomic_deferred && m->switches == s->req_sw &&
        !cur->is_main && !cur->atomic && !m->switch_trap && !m->runtime_trap &&
        !cb_gc_in_tasklet(m)) {
        act = 1;
        ran = now_ns() - (m->timing ? m->slice_t0 : s->seen_ns);
    }
    s->atomic_deferred = 0;
    pthread_mutex_unlock(&reg.lock);
    return act ? preempt_now(m, s, cur, ran) : 0;
}

/* ---- accounting ---------------------------------------------------------------------------- */

/* One clock reading per switch. In a deadline run (carbon_tick, a worker's
 * turn) the hand-off checks the deadline just before it switches, and the
 * switch accounts the time of the tasklet it leaves: the check's reading
 * serves both. It is kept for `from` only, and only until `from` is switched
 * to again: if the hand-off lets `from` run on (it was the next in the queue),
 * its next switch reads the clock anew. Measured on tick_bench's 10k-wakeup
 * frame: 1.1 fewer clock reads per wakeup (as many as an unarmed tick makes),
 * 17 ns (5%) less CPU time per wakeup (docs/performance.md). */
long long cb_preempt_clock(cb_manager *m, cb_tasklet *from)
{
    long long now = cb_monotonic_ns();
    cb_preempt *s = m->preempt;

    if (m->timing && s) {
        s->clock_ns = now;
        s->clock_from = from;
        s->clock_seq = from->times_switched_to;
    }
    return now;
}

void cb_preempt_account(cb_manager *m, cb_tasklet *from)
{
    cb_preempt *s = m->preempt;
    long long now, d;

    if (s && s->clock_from == from && s->clock_seq == from->times_switched_to)
        now = s->clock_ns;
    else
        now = cb_monotonic_ns();
    if (s)
        s->clock_from = NULL;
    d = now - m->slice_t0;
    __atomic_store_n(&m->slice_t0, now, __ATOMIC_RELAXED);
    if (from->is_main)
        return;
    if (from->tick_stamp != m->tick_stamp) {
        from->tick_stamp = m->tick_stamp;
        from->tick_ns = 0;
    }
    from->tick_ns += d;
    if (s && from->tick_ns > s->slowest_ns) {
        s->slowest_ns = from->tick_ns;
        cb_tasklet_label(from, s->slowest_label, sizeof s->slowest_label);
    }
}

long long cb_preempt_tick_ns(cb_tasklet *t)
{
    cb_manager *m = t->mgr;
    long long v;

    if (!m || t->tick_stamp != m->tick_stamp)
        return 0;
    v = t->tick_ns;
    if (m->timing && m->current == t)
        v += cb_monotonic_ns() - m->slice_t0;
    return v;
}

/* ---- _scheduler._interrupt (tests; the runtime's shutdown uses the C call) --------------- */

/* _interrupt(thread_ident): raises TaskletExit in the code running on that
 * thread at its next Python instruction (cb_preempt_interrupt). The thread
 * must have a schedule manager. Returns None; ValueError if none. */
PyObject *cb_preempt_py_interrupt(PyObject *mod, PyObject *arg)
{
    unsigned long ident = PyLong_AsUnsignedLong(arg);
    PyThreadState *ts;
    cb_manager *m = NULL;

    (void)mod;
    if (ident == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    for (ts = PyInterpreterState_ThreadHead(PyThreadState_Get()->interp); ts; ts = PyThreadState_Next(ts)) {
        if (ts->thread_id == ident && ts->dict) {
            PyObject *o = PyDict_GetItemString(ts->dict, "SCHEDULE_MANAGER"); /* borrowed */
            if (o && PyObject_TypeCheck(o, &cb_ManagerType))
                m = (cb_manager *)o;
            break;
        }
    }
    if (!m) {
        PyErr_Format(PyExc_ValueError, "thread %lu has no schedule manager", ident);
        return NULL;
    }
    if (cb_preempt_interrupt(m, cb_TaskletExit) < 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot start the preemption watchdog thread");
        return NULL;
    }
    Py_RETURN_NONE;
}
