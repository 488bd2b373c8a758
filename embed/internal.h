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
#include "offstack.h"

#include "carbon/carbon.h"

#include <stdatomic.h>
#include <uv.h>

typedef struct cb_embed_loop cb_embed_loop;

/* Nothing that anyone else reads or writes while a tasklet waits lives on
 * its C stack (docs/design.md, "Nothing points into a suspended tasklet's C
 * stack": the invariant that lets suspended stacks be copied out and share
 * a region, issue 8). Such records are heap blocks that
 * live exactly as long as the scope that declares them (freed on every way
 * out of it): CB_OFFSTACK(type, name) declares `type *name`, zeroed, NULL if
 * out of memory. Where such a record is linked, cb_offstack_check()
 * (runtime/offstack.h) makes sure it is not on the stack. */
void *cb_offstack_alloc(size_t size); /* calloc(1, size) */
void cb_offstack_free(void *p);      /* free(*(void **)p) */
#define CB_OFFSTACK(type, name) \
    type *name __attribute__((cleanup(cb_offstack_free))) = cb_offstack_alloc(sizeof(type))
/* The same only if `cond` holds (NULL otherwise, not an error then). */
#define CB_OFFSTACK_IF(cond, type, name) \
    type *name __attribute__((cleanup(cb_offstack_free))) = \
        (cond) ? cb_offstack_alloc(sizeof(type)) : NULL

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

/* Defaults of carbon_config (docs/embedding.md explains the numbers). */
#define CB_EMBED_DEFAULT_SWITCH_INTERVAL_NS 500000LL      /* 0.5 ms */
#define CB_EMBED_DEFAULT_GRACE_NS 250000000LL             /* 250 ms */
#define CB_EMBED_DEFAULT_SHUTDOWN_TIMEOUT_NS 5000000000LL /* 5 s */
/* After the interrupt hook ran for overdue workers, how long shutdown waits more. */
#define CB_EMBED_INTERRUPT_WAIT_NS 200000000LL            /* 200 ms */

/* Host-thread calls: checks (state, thread, re-entry) and takes the GIL;
 * leave() parks it again and returns rc. */
int cb_embed_host_enter(const char *fn);
int cb_embed_host_leave(int rc);
/* The checks alone (CARBON_OK or an error code with carbon_last_error set). */
int cb_embed_host_checked(const char *fn);

/* The host thread's main tasklet runs a host call (carbon_run_file,
 * carbon_run_string, carbon_call*): its name, else NULL. The main tasklet has
 * block_trap set meanwhile. */
const char *cb_embed_host_call(void);
/* RuntimeError for a blocking call the current tasklet refuses (block_trap),
 * worded for a host call's top level when that is the case; returns NULL. */
PyObject *cb_embed_refuse_block(const char *what);
/* 1 if this thread is the host thread (the one that called carbon_init). */
int cb_embed_is_host_thread(void);

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
    int ending;                 /* cb_embed_end_tasklets runs: a worker's stop request
                                   does not cut its loop's waits short */
    long long wait_until_ns;    /* 0, or no WAIT turn sleeps past this time */
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
/* Stops and joins every worker (GIL released while joining); timeout_ns < 0:
 * no limit. On expiry calls cb_embed_worker_overdue() for each worker left,
 * waits CB_EMBED_INTERRUPT_WAIT_NS more, and returns -1 if one is still
 * running (nothing is freed then; call again). */
int cb_embed_workers_shutdown(long long timeout_ns);
/* A worker asked to stop has not ended in time (`why` completes the log
 * line): logs it and calls cb_embed_worker_interrupt_hook if set. */
void cb_embed_worker_overdue(carbon_worker *w, const char *why);
/* PREEMPTION HOOK (filled by the preemption work, embed/ preempt side):
 * interrupts a worker busy in Python code (e.g. a CPU-bound loop) so that it
 * reaches its stop. Called with the GIL held, on the host thread (or the
 * thread running the join); NULL: nothing is done beyond the log line. */
extern void (*cb_embed_worker_interrupt_hook)(carbon_worker *w);
/* The worker's loop while its thread runs it (NULL before and after). */
cb_embed_loop *cb_embed_worker_loop(carbon_worker *w);
const char *cb_embed_worker_name(carbon_worker *w);
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
/* cb_embed_wait_fds for one descriptor of a patched socket: its poll stays
 * armed between waits (poll.c). The socket must call cb_embed_forget_fd
 * before its descriptor is closed; `token` is the socket's own (never
 * reused: another socket's wait on the same number registers it afresh). */
int cb_embed_wait_sock(int fd, int events, long long deadline_ns, unsigned long long token);
/* The thread's scratch buffer (*cap bytes), freed with its loop: for data
 * copied out before anything can switch. NULL on a thread without a loop. */
char *cb_embed_scratch(size_t *cap);
/* Loop teardown: closes the thread's poll handles. */
void cb_embed_poll_close(cb_embed_loop *loop);
/* None -> -1; seconds -> a monotonic deadline (negative seconds: now). */
int cb_embed_parse_deadline(PyObject *timeout, long long *deadline_ns);
PyObject *cb_embed_py_wait_fd(PyObject *mod, PyObject *args, PyObject *kwds);
PyObject *cb_embed_py_wait_fds(PyObject *mod, PyObject *args, PyObject *kwds);
PyObject *cb_embed_py_forget_fd(PyObject *mod, PyObject *arg);
PyObject *cb_embed_py_cooperative(PyObject *mod, PyObject *unused);
PyObject *cb_embed_py_poll_state(PyObject *mod, PyObject *arg);
/* sockio.c: the hot calls of patched sockets (recv, recv_into, send, sendall). */
int cb_embed_sockio_add(PyObject *mod);
/* offstack.c: the off-stack check's test hooks (_offstack_checks...). */
int cb_embed_offstack_add(PyObject *mod);

struct addrinfo;
/* getaddrinfo on the loop's thread pool, blocking only the current tasklet.
 * 0: *status is 0 (*res to free with uv_freeaddrinfo) or a libuv error
 * (UV_ETIMEDOUT: the monotonic deadline passed; < 0: none); -1 with an
 * exception (killed, thrown at). */
int cb_embed_getaddrinfo(cb_embed_loop *loop, const char *node, const char *service,
                         const struct addrinfo *hints, struct addrinfo **res, int *status,
                         long long deadline_ns);
PyObject *cb_embed_py_getaddrinfo(PyObject *mod, PyObject *args, PyObject *kwds);

int cb_embed_timeout_add_type(PyObject *mod);
/* Loop teardown: closes the thread's spare timers. */
void cb_embed_timeout_close(cb_embed_loop *loop);
/* Adds the functions above, READ, WRITE and Timeout to _carbon. */
int cb_embed_patch_add(PyObject *mod);

/* ---- shutdown.c: ending a thread's tasklets ------------------------------------------ */

/* How many more times a tasklet still alive when the grace period is over
 * gets TaskletExit (run alone each time) before it is abandoned: with the
 * first one, a tasklet that swallows TaskletExit is hit 1 + this many times.
 * docs/embedding.md states this number. */
#define CB_EMBED_EXIT_RETRIES 2

/* From the thread's main tasklet: TaskletExit into every tasklet of the
 * thread; for up to grace_ns (<= 0: none) the loop keeps turning and the
 * queue running, so finally blocks may sleep, wait frames and use channels;
 * then the retry rule above; what is still alive is logged and abandoned
 * (its stack kept for the life of the process). Safe to call more than once. */
void cb_embed_end_tasklets(cb_embed_loop *loop, long long grace_ns);
/* The grace period from the configuration (0 if none). */
long long cb_embed_grace_ns(void);

/* ---- post.c: values posted from C to carbon.queue(name) ------------------------------- */

/* Delivers every posted value to its queue (host thread, main tasklet, GIL
 * held); errors are reported. Cheap when nothing was posted. */
void cb_embed_post_deliver(void);
/* Drops what is still waiting and refuses new posts (shutdown; GIL held). */
void cb_embed_post_clear(void);
/* Accept posts (carbon_init) or not. */
void cb_embed_post_open(int open);
/* _carbon._queue_put / _queue_receive (carbon.HostQueue's two halves). */
PyObject *cb_embed_queue_put(PyObject *mod, PyObject *args);
PyObject *cb_embed_queue_receive(PyObject *mod, PyObject *args);

/* ---- tasklets.c: listing every tasklet ------------------------------------------------- */

/* A tasklet's label: tasklet.name if it exists and is a non-empty str, else
 * the callable's qualified name ("main" for a main tasklet). New reference. */
PyObject *cb_embed_tasklet_label(cb_tasklet *t);
/* The tasklet's Python stack as traceback text, most recent call last
 * (PyMem_Malloc; NULL if it has no frames). Never leaves an exception. */
char *cb_embed_tasklet_stack(cb_tasklet *t);
/* PREEMPTION HOOK: the time `t` ran in its thread's current tick, in ns, or
 * -1 if not measured (NULL hook). */
extern long long (*cb_embed_tasklet_time_hook)(cb_tasklet *t);

/* ---- module.c ------------------------------------------------------------------------ */

PyMODINIT_FUNC PyInit__carbon(void);
PyMODINIT_FUNC PyInit__scheduler(void); /* runtime/module.c */

/* ---- net.c ----------------------------------------------------------------------------- */

PyMODINIT_FUNC PyInit__carbon_net(void);
/* Closes carbon.net's handles of a loop that is being destroyed. */
void cb_net_loop_closing(cb_embed_loop *loop);

#endif
