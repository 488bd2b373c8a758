/* Internal interface of the embedding layer (embed/).
 *
 * Threading model. Everything here runs with the GIL held, except the poll in
 * cb_embed_loop_step() (and thread joins), which release it. The GIL is also
 * what serialises the few structures shared between threads: the worker
 * registry, a worker's joiners, the loop pointers that cross-thread wakeups
 * use. A thread's loop, waiter heaps and frame counter are touched only by
 * that thread.
 */
#ifndef CB_EMBED_INTERNAL_H
#define CB_EMBED_INTERNAL_H

#include "core.h"

#include "carbon/carbon.h"

#include <stdatomic.h>
#include <uv.h>

typedef struct cb_embed_loop cb_embed_loop;

/* carbon_config.slice_ns by default (hitch.c). */
#define CB_EMBED_DEFAULT_SLICE_NS (4LL * 1000 * 1000)

/* ---- carbon.c: process state ---------------------------------------------------- */

/* The active configuration: carbon_init's, or the defaults in a host that
 * only imports the `carbon` module (tools/carbon_main.c). */
const carbon_config *cb_embed_config(void);
/* 1 between carbon_init and the start of carbon_shutdown, or in a host
 * without carbon_init that has not started to exit. */
int cb_embed_accepting_workers(void);
void cb_embed_stop_accepting_workers(void);

/* Host-thread calls: checks (state, thread, re-entry) and takes the GIL;
 * leave() parks it again and returns rc. */
int cb_embed_host_enter(const char *fn);
int cb_embed_host_leave(int rc);
/* The checks alone (CARBON_OK or an error code with carbon_last_error set). */
int cb_embed_host_checked(const char *fn);

/* carbon_last_error() text for the calling thread; returns `code`. */
int cb_embed_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the raised Python exception into carbon_last_error(); returns
 * CARBON_EPYTHON. */
int cb_embed_fail_python(void);

/* ---- locate.c: the Python packages' directory ------------------------------------- */

/* Finds the directory holding the `scheduler` and `carbon` packages relative
 * to the library (or statically linked program) and writes it to `out`;
 * returns 0, or -1 with the directory that was searched from in `out`. */
int cb_embed_package_dir_find(char *out, size_t size);

/* ---- report.c: exceptions of game code and runtime messages -------------------------- */

/* Formats the raised exception (which it clears) as a traceback; new string
 * from PyMem_Malloc, never NULL unless out of memory. */
char *cb_embed_format_exception(void);
/* Reports the raised exception (cleared) to the error callback, naming the
 * tasklet `t` (may be NULL) or else `what`. TaskletExit is not reported.
 * Returns 1 if something was reported. */
int cb_embed_report(cb_tasklet *t, const char *what);
void cb_embed_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- timer.c: tasklets waiting for a time or a frame ------------------------------- */

typedef struct cb_embed_waiter cb_embed_waiter;

/* A min-heap of waiters ordered by (key, arrival). */
typedef struct cb_embed_heap {
    cb_embed_waiter **v;
    size_t n, cap;
    size_t main_waiting; /* entries that belong to a main tasklet */
} cb_embed_heap;

void cb_embed_heap_free(cb_embed_heap *h);
/* Wakes every waiter whose key <= `limit`, in order; returns how many. */
size_t cb_embed_heap_wake(cb_embed_heap *h, long long limit);
/* Smallest key, or LLONG_MAX if empty. */
long long cb_embed_heap_min(const cb_embed_heap *h);
/* Forgets every waiter without waking it (loop teardown). */
void cb_embed_heap_detach_all(cb_embed_heap *h);

/* Block the current tasklet until the monotonic deadline / frame number.
 * -1 with an exception (killed, thrown at, deadlock, trapped). */
int cb_embed_sleep_until(cb_embed_loop *loop, long long deadline_ns);
int cb_embed_wait_frame(cb_embed_loop *loop, unsigned long long frame);
/* Blocks the current tasklet until *flag is set (by whoever wakes it with
 * cb_embed_wake(t, flag)) or, if deadline_ns >= 0, that monotonic deadline
 * passes (the waiter counts as a sleeper meanwhile). Returns 1 if woken through
 * the flag, 0 if the deadline passed first, -1 with an exception. */
int cb_embed_wait_flag(cb_embed_loop *loop, unsigned *flag, long long deadline_ns, const char *what);

/* Sets `*flag` and makes `t` runnable, waking its thread if it is another
 * (a main tasklet only needs its flag and its loop woken). */
void cb_embed_wake(cb_tasklet *t, unsigned *flag);

/* ---- loop.c: a thread's libuv loop, frame counter and scheduler hooks ----------------- */

struct cb_embed_loop {
    uv_loop_t uv;
    uv_async_t async;           /* cross-thread wakeup; unreferenced */
    int async_sent;             /* a wakeup is pending (set and read under the GIL) */
    cb_manager *mgr;            /* strong reference; its idle/wakeup hooks point here */
    PyThreadState *tstate;      /* the thread's, for releasing the GIL */
    uv_thread_t thread;
    cb_embed_heap sleepers;     /* keyed by monotonic deadline (ns) */
    cb_embed_heap frame_waiters;/* keyed by frame number */
    struct cb_net_handle *net_handles; /* carbon.net's open handles (embed/net.c) */
    unsigned long long seq;     /* arrival order of waiters */
    unsigned long long frame;   /* frames done (ticks, or frame periods) */
    long long next_frame_ns;    /* when not ticked: the next frame boundary */
    struct carbon_worker *worker; /* the worker this thread runs, or NULL */
    int main_woken;             /* a callback of this turn woke the main tasklet */
};

/* The calling thread's loop, created on first use (NULL + exception). */
cb_embed_loop *cb_embed_loop_get(void);
/* The calling thread's loop if it exists. */
cb_embed_loop *cb_embed_loop_peek(void);
/* Kills the thread's tasklets (from its main tasklet) and closes its loop;
 * errors are reported. No-op without a loop. */
void cb_embed_loop_close(void);

/* How a turn of the loop counts frames: a host tick is one frame; a thread
 * that is not ticked (a worker, a main tasklet blocked in its loop) counts
 * one per frame period of the clock (carbon_config.frame_period_ns). */
enum { CB_EMBED_TURN_TICK, CB_EMBED_TURN_WAIT, CB_EMBED_TURN_POLL };

/* One turn of the loop. WAIT first waits (GIL released) for an event, the
 * next sleeper's deadline or frame boundary, or a wakeup; POLL and TICK do
 * not wait. Then it runs the loop's ready callbacks, advances the frame
 * counter and wakes the expired sleepers and the frame waiters due. */
int cb_embed_loop_step(cb_embed_loop *loop, int mode);
/* Whether something could still make a tasklet of this thread runnable: a
 * waiter, a live libuv handle, or another thread. */
int cb_embed_loop_can_wake(cb_embed_loop *loop);
/* Whether the thread has alive tasklets besides its main one. */
int cb_embed_has_tasklets(cb_manager *mgr);

/* ---- tick.c ---------------------------------------------------------------------------- */

typedef struct cb_embed_run_result {
    unsigned long long errors;
    int failed; /* the queue could not be run (switch trap, finalizing): reported */
    /* hitch.c */
    unsigned long long preempted;
    long long stuck_ns, slowest_ns;
    char slowest[64];
} cb_embed_run_result;

/* Runs the thread's queue from its main tasklet until it is empty or
 * `budget_ns` since `start_ns` is spent (checked before each tasklet; at least
 * one runs). Exceptions escaping tasklets are reported. */
void cb_embed_run_budget(cb_embed_loop *loop, long long start_ns, long long budget_ns,
                         cb_embed_run_result *res);

/* ---- hitch.c: the slice around a budgeted run, hitch and watchdog reports ------------- */

/* Registers the watchdog's stuck-thread report (module init). */
void cb_embed_hitch_install(void);
/* Arms the thread's slice (carbon_config.slice_ns) and per-tasklet timing;
 * 1 if armed. */
int cb_embed_slice_arm(cb_embed_loop *loop);
/* Disarms; reports the run's hitch and fills res's hitch fields. */
void cb_embed_slice_disarm(cb_embed_loop *loop, cb_embed_run_result *res);

/* ---- worker.c -------------------------------------------------------------------------- */

typedef struct carbon_worker carbon_worker;

/* Starts a worker calling fn(*args) (new references taken), its handle owned
 * by a Python Worker (py_owned) or the C host; NULL + exception. */
carbon_worker *cb_embed_worker_spawn(PyObject *fn, PyObject *args, const char *name, int py_owned);
int cb_embed_worker_request_stop(carbon_worker *w);
/* Blocks the calling tasklet until the worker ended, then joins its thread.
 * Returns the function's result (new reference; None if it raised) or NULL +
 * exception. */
PyObject *cb_embed_worker_join_tasklet(carbon_worker *w);
int cb_embed_worker_alive(carbon_worker *w);
/* The Python handle is gone: frees the worker once it is joined. */
void cb_embed_worker_release_py(carbon_worker *w);
/* Stops and joins every worker (GIL released while joining). */
void cb_embed_workers_shutdown(void);
/* After finalization: frees what is left of the registry. */
void cb_embed_workers_free_all(void);
/* Workers started and not yet ended. */
long cb_embed_workers_running(void);
/* Whether the worker running on this loop was asked to stop. */
int cb_embed_worker_stopping(cb_embed_loop *loop);
/* The stopping worker's main tasklet is about to get TaskletExit (again):
 * returns 0 while it has had fewer than CB_WORKER_STOP_RETRIES; past that
 * the worker is abandoned (reported, its thread parked for ever without the
 * GIL, never joined) and this does not return. */
#define CB_WORKER_STOP_RETRIES 100
int cb_embed_worker_stop_retry(cb_embed_loop *loop);

/* ---- poll.c, resolve.c, timeout.c, patchmod.c: carbon.patch() and timeouts ---------- */

/* 1 (*loop set) if a blocking call here should block only the current
 * tasklet; 0 if it should block the thread (a thread's main tasklet with no
 * loop and no other tasklet); -1 with an exception. */
int cb_embed_cooperative(cb_embed_loop **loop);
/* Waits until one of fds[i] is ready for events[i] (UV_READABLE|UV_WRITABLE)
 * or the monotonic deadline passes (< 0: none); revents[i] gets what is
 * ready. 1 ready, 0 deadline, -1 with an exception. */
int cb_embed_wait_fds(int n, const int *fds, const int *events, int *revents, long long deadline_ns);
/* fd is about to be closed: this thread's waiters get EBADF, its poll goes. */
void cb_embed_forget_fd(int fd);
/* Loop teardown: closes the thread's poll handles. */
void cb_embed_poll_close(cb_embed_loop *loop);
/* None -> -1; seconds -> a monotonic deadline (negative seconds: now). */
int cb_embed_parse_deadline(PyObject *timeout, long long *deadline_ns);
PyObject *cb_embed_py_wait_fd(PyObject *mod, PyObject *args, PyObject *kwds);
PyObject *cb_embed_py_wait_fds(PyObject *mod, PyObject *args, PyObject *kwds);
PyObject *cb_embed_py_forget_fd(PyObject *mod, PyObject *arg);
PyObject *cb_embed_py_cooperative(PyObject *mod, PyObject *unused);

struct addrinfo;
/* getaddrinfo on the loop's thread pool, blocking only the current tasklet.
 * 0: *status is 0 (*res to free with uv_freeaddrinfo) or a libuv error;
 * -1 with an exception (killed, thrown at). */
int cb_embed_getaddrinfo(cb_embed_loop *loop, const char *node, const char *service,
                         const struct addrinfo *hints, struct addrinfo **res, int *status);
PyObject *cb_embed_py_getaddrinfo(PyObject *mod, PyObject *args, PyObject *kwds);

int cb_embed_timeout_add_type(PyObject *mod);
/* Loop teardown: closes the thread's spare timers. */
void cb_embed_timeout_close(cb_embed_loop *loop);
/* Adds the functions above, READ, WRITE and Timeout to _carbon. */
int cb_embed_patch_add(PyObject *mod);

/* ---- module.c ------------------------------------------------------------------------ */

PyMODINIT_FUNC PyInit__carbon(void);
PyMODINIT_FUNC PyInit__scheduler(void); /* runtime/module.c */

/* ---- net.c ----------------------------------------------------------------------------- */

PyMODINIT_FUNC PyInit__carbon_net(void);
/* Closes carbon.net's handles of a loop that is being destroyed. */
void cb_net_loop_closing(cb_embed_loop *loop);

#endif
