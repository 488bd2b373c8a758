/* Carbon runtime: the embedding API.
 *
 * A C host (a game engine) starts the runtime once, loads its Python game
 * code, and calls carbon_tick() once per frame within a time budget. Game code
 * runs as tasklets (microthreads on their own C stacks) of the `scheduler`
 * module; the `carbon` module adds sleep, frame waits and worker threads.
 *
 *     carbon_config cfg;
 *     carbon_config_init(&cfg);
 *     if (carbon_init(&cfg) != CARBON_OK) { puts(carbon_last_error()); ... }
 *     carbon_run_file("game.py");
 *     for (;;) { carbon_tick(2000000, &stats); ...render... }
 *     carbon_shutdown();
 *
 * Rules shared by every function:
 *   - it returns CARBON_OK (0) or a negative CARBON_E* code, never aborts the
 *     host, and never lets a Python exception escape; carbon_last_error()
 *     then says what failed (per thread);
 *   - except carbon_config_init, carbon_strerror, carbon_last_error,
 *     carbon_free, carbon_post and carbon_post_object (any thread, never
 *     blocking), it must be called from the thread that called carbon_init (the host
 *     thread), and not from inside another carbon call on that thread (e.g.
 *     from the error callback): else CARBON_ETHREAD / CARBON_EBUSY;
 *   - between calls the host thread does not hold the Python GIL, so worker
 *     threads run while the host renders.
 *
 * See docs/embedding.md for the full reference.
 */
#ifndef CARBON_CARBON_H
#define CARBON_CARBON_H

#include <stddef.h>
#include <stdint.h>

/* ---- version ------------------------------------------------------------------ */

#define CARBON_VERSION_MAJOR 0
#define CARBON_VERSION_MINOR 2
#define CARBON_VERSION_PATCH 0
#define CARBON_VERSION_STRING "0.2.0"
/* major * 10000 + minor * 100 + patch, for #if comparisons. */
#define CARBON_VERSION_NUMBER (CARBON_VERSION_MAJOR * 10000 + CARBON_VERSION_MINOR * 100 + CARBON_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* Every function declared here is exported from libcarbon.so; the rest of
 * the library is hidden. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* The library's version, which may differ from the header's
 * (CARBON_VERSION_STRING) when a program runs against a newer libcarbon.so,
 * and the CPython it was built for: "0.2.0 (Python 3.11)". Static text;
 * callable at any time from any thread. Fills *number (may be NULL) with the
 * library's CARBON_VERSION_NUMBER. */
const char *carbon_version(int *number);

/* ---- status codes ----------------------------------------------------------- */

#define CARBON_OK 0
#define CARBON_EINVAL (-1)   /* bad argument (NULL pointer, malformed spec, ...) */
#define CARBON_ESTATE (-2)   /* not initialised, already initialised, shutting down */
#define CARBON_ETHREAD (-3)  /* called from a thread other than the host thread */
#define CARBON_EBUSY (-4)    /* re-entered from inside another carbon call */
#define CARBON_EPYTHON (-5)  /* a Python exception; its traceback is in carbon_last_error() */
#define CARBON_ENOMEM (-6)   /* out of memory */
#define CARBON_EUV (-7)      /* a libuv call failed */
#define CARBON_EREINIT (-8)  /* the interpreter cannot be started again in this process */
#define CARBON_ETIMEDOUT (-9) /* a join or shutdown did not finish within its timeout */
#define CARBON_EFULL (-10)    /* carbon_post: too many values waiting for the next tick */

/* Static text for a status code ("unknown error" for unknown codes). */
const char *carbon_strerror(int code);

/* Text of the last failure of a carbon call on the calling thread ("" if
 * none). Valid until the next carbon call on this thread. */
const char *carbon_last_error(void);

/* ---- configuration ---------------------------------------------------------- */

enum { CARBON_LOG_DEBUG = 0, CARBON_LOG_INFO = 1, CARBON_LOG_WARNING = 2, CARBON_LOG_ERROR = 3 };

/* Runtime messages (not game-code exceptions). Called with the GIL held, on
 * any carbon thread (the host thread or a worker). */
typedef void (*carbon_log_fn)(void *userdata, int level, const char *message);

/* An exception escaped game code: `tasklet` names the tasklet's callable (or
 * the worker's function), `traceback` is the formatted Python traceback.
 * Called with the GIL held, on the thread where it happened; the strings are
 * valid only during the call. Carbon calls made from inside return
 * CARBON_EBUSY (except carbon_last_error/carbon_strerror). */
typedef void (*carbon_error_fn)(void *userdata, const char *tasklet, const char *traceback);

/* A hitch: a tasklet ran longer than carbon_config.slice_ns within one tick
 * (or one worker turn) and was preempted (stuck_in_c == 0), or the watchdog
 * found a thread stuck outside Python code (a C call, time.sleep) past the
 * slice (stuck_in_c == 1: not preempted; reported after the slice, then
 * every second while it lasts). Called with the GIL held: preemptions on the
 * thread of the tick, stuck reports on the watchdog thread. The strings are
 * valid only during the call. */
typedef struct carbon_hitch {
    const char *tasklet;     /* the tasklet's label (tasklet.name) */
    const char *stack;       /* its Python stack where it was interrupted or is stuck */
    int64_t ran_ns;          /* how long it had run without switching */
    unsigned in_a_row;       /* consecutive ticks in which it was preempted (1: first) */
    int stuck_in_c;          /* see above */
    int host_thread;         /* 1: the host thread; 0: a worker */
} carbon_hitch;
typedef void (*carbon_hitch_fn)(void *userdata, const carbon_hitch *hitch);

typedef struct carbon_config {
    const char *program_name;        /* sys.executable name; NULL: "carbon" */
    const char *const *module_paths; /* NULL-terminated, put in front of sys.path; may be NULL */
    const char *package_dir;         /* directory holding the `scheduler` and `carbon`
                                        packages; NULL (default): found from where the
                                        library (or the program linking it statically)
                                        is, see docs/deployment.md; carbon_init fails if
                                        they cannot be imported */
    size_t stack_size;               /* tasklet C stack bytes; 0: default (a thread's:
                                        the soft RLIMIT_STACK, 8 MiB usually), which is
                                        also the minimum: a tasklet nests as deep as its
                                        thread's main tasklet */
    unsigned stack_pool_size;        /* free stacks cached per thread; 0: default */
    int nested;                      /* run order: 1 nested (default), 0 flat */
    int isolated;                    /* 1: ignore PYTHON* environment variables */
    int64_t worker_budget_ns;        /* how long a worker runs its queue between two
                                        turns of its loop (default 10 ms) */
    int64_t frame_period_ns;         /* frame length of threads the host does not tick
                                        (workers, a main tasklet blocked in its loop):
                                        carbon.wait_frames() there waits for this clock
                                        (default 1/60 s) */
    int64_t switch_interval_ns;      /* the interpreter's GIL switch interval
                                        (sys.setswitchinterval); 0: default 500 us */
    int64_t shutdown_grace_ns;       /* carbon_shutdown (and a worker's end): how long
                                        tasklets that got TaskletExit may still sleep, wait
                                        frames and use channels in their finally blocks
                                        (0: default 250 ms; negative: none) */
    int64_t shutdown_timeout_ns;     /* carbon_shutdown: how long to wait for workers to
                                        end (0: default 5 s; negative: forever) */
    int allow_blocking_host_calls;   /* 1: the host's main tasklet may block in
                                        carbon_run_file/run_string/call* (the host then
                                        waits, running the thread's loop and tasklets);
                                        0 (default): such a block is a RuntimeError */
    int print_to_log;                /* 1: sys.stdout and sys.stderr write lines to `log`
                                        (CARBON_LOG_INFO / CARBON_LOG_WARNING); needs `log` */
    carbon_log_fn log;               /* NULL: warnings and errors to stderr */
    carbon_error_fn error;           /* NULL: traceback with the tasklet name to sys.stderr */
    int64_t slice_ns;                /* a tasklet running longer than this without switching
                                        is preempted (re-queued at the back) and reported to
                                        on_hitch; 0: default (4 ms); negative: never */
    carbon_hitch_fn on_hitch;        /* NULL: hitches go to the log callback (warning) */
    void *userdata;                  /* passed to log and error */
} carbon_config;

/* Fills `cfg` with the defaults. */
int carbon_config_init(carbon_config *cfg);

/* ---- lifetime ------------------------------------------------------------------ */

/* Starts the interpreter with `_scheduler`, `scheduler` and `carbon`
 * available, on the calling thread, which becomes the host thread. The
 * configuration is copied. Once per process: after carbon_shutdown a second
 * carbon_init returns CARBON_EREINIT (CPython cannot reliably re-initialise
 * extension types). */
int carbon_init(const carbon_config *cfg);

/* Stops and joins every worker (their tasklets get TaskletExit on their own
 * thread), raises TaskletExit in every tasklet of the host thread (their
 * finally blocks run, and may block during shutdown_grace_ns), closes the
 * loops, finalizes the interpreter. Worker handles are invalid afterwards.
 * Blocks at most shutdown_timeout_ns for the workers plus the grace period
 * (twice: once on the workers, once on the host thread) plus what finally
 * blocks spend in Python code. If a worker has not ended within
 * shutdown_timeout_ns it returns CARBON_ETIMEDOUT and the runtime keeps
 * running (new workers refused): tick on, and call it again. */
int carbon_shutdown(void);

/* ---- running code (in the host thread's main tasklet) -------------------------- */

/* Runs a Python source file as __main__ (like `python path`). */
int carbon_run_file(const char *path);
/* Runs Python source in __main__'s namespace. */
int carbon_run_string(const char *source);
/* Calls module.function() with no arguments; the result is discarded. */
int carbon_call(const char *module, const char *function);
/* Calls module.function(*args) where args is built by Py_BuildValue(format,
 * ...) (a format that does not build a tuple gives one argument; NULL or ""
 * none). If `result` is not NULL, *result receives a new string (free it with
 * carbon_free): str() of the returned value, or NULL for None. */
int carbon_call_fmt(const char *module, const char *function, char **result, const char *format, ...);
/* For hosts that use the CPython API: module.function(*args) with a tuple
 * (NULL: no arguments; `args` is borrowed); *result (may be NULL) receives a
 * new reference to the returned object. Like every carbon call it is made
 * without holding the GIL (it is taken inside); building `args` and using or
 * releasing the result need the GIL (PyGILState_Ensure). */
struct _object;
int carbon_call_object(const char *module, const char *function, struct _object *args,
                       struct _object **result);

/* These three never block on a tasklet operation: the script runs in the
 * host thread's main tasklet, which refuses to wait (channel operations,
 * carbon.sleep, wait_frames, Worker.join raise RuntimeError there, the
 * function returns CARBON_EPYTHON). They take as long as the Python code
 * runs, plus taking the GIL (up to switch_interval_ns when a worker is busy). */

/* Frees a string returned by carbon (carbon_call_fmt, worker results). */
void carbon_free(void *p);

/* ---- posting values to scripts -------------------------------------------------- */

/* Queues a value for the scripts' carbon.queue(name) (a channel-like object:
 * receive(), iteration). Never blocks the caller and never takes the GIL: a
 * short mutex only. Any thread, any time between carbon_init and
 * carbon_shutdown, also from inside a carbon call. The value is built at the
 * next carbon_tick (which delivers, in posting order, before any tasklet runs)
 * from `format`, a flat subset of Py_BuildValue's: i I l k L K n (integers; n
 * is a ptrdiff_t), d f (float), p (bool), s z (UTF-8 string copied now; z:
 * NULL gives None), y# (bytes copied now; the length is a ptrdiff_t). One
 * code: that value; more: a tuple; "(...)": always a tuple; "" posts None.
 * Errors: CARBON_EINVAL (bad name or format), CARBON_ESTATE, CARBON_EFULL
 * (65536 values already wait), CARBON_ENOMEM. */
int carbon_post(const char *name, const char *format, ...);
/* The same with an object (the caller holds the GIL; a new reference is
 * taken). */
int carbon_post_object(const char *name, struct _object *value);
/* ---- the frame ------------------------------------------------------------------ */

typedef struct carbon_stats {
    uint64_t frame;          /* this tick's frame number (carbon.frame()); 1 for the first */
    uint64_t tasklets_run;   /* tasklets switched to and returned from (nested ones too) */
    uint64_t switches;       /* changes of the current tasklet */
    uint64_t runnable;       /* still queued at the end: they run next tick */
    uint64_t blocked;        /* alive tasklets neither runnable nor waiting for time or
                                frames (channels, joins, removed) */
    uint64_t sleeping;       /* in carbon.sleep() */
    uint64_t waiting_frames; /* in carbon.wait_frames() */
    uint64_t errors;         /* exceptions reported to the error callback */
    int64_t elapsed_ns;      /* wall time of the tick */
    uint64_t preempted;      /* tasklets preempted for running past slice_ns */
    int64_t stuck_ns;        /* longest time the thread was stuck outside Python code
                                past the slice (a C call); 0 if never */
    int64_t slowest_ns;      /* the tasklet that ran longest in this tick: its time... */
    char slowest[64];        /* ...and its label ("" if no tasklet ran) */
} carbon_stats;

/* One frame of the host thread: takes in events without blocking (timers,
 * wakeups from workers), wakes the tasklets whose sleep has expired and those
 * waiting for this frame, then runs tasklets until none is runnable or
 * `budget_ns` is spent; the check is made before each tasklet and at least
 * one runs; a tasklet running past carbon_config.slice_ns is preempted, so a
 * tick lasts at most the budget plus one slice (plus time stuck in C code,
 * which cannot be interrupted and is reported, see carbon_hitch).
 * Exceptions escaping tasklets go to the error callback and the tick goes on.
 * `stats` may be NULL (counting blocked tasklets walks them all). */
int carbon_tick(int64_t budget_ns, carbon_stats *stats);

/* ---- worker threads ------------------------------------------------------------- */

typedef struct carbon_worker carbon_worker;

/* Starts a worker thread running `spec` ("package.module:function", imported
 * now, on the host thread) in its main tasklet, with its own scheduler and
 * loop; after the function returns the worker keeps running its tasklets and
 * ends when none is left alive (or when stopped). */
int carbon_worker_start(const char *spec, carbon_worker **out);
/* Asks the worker to end: its blocked main tasklet gets TaskletExit, then its
 * other tasklets; a worker busy in Python code ends at its next blocking
 * point. Does not wait. */
int carbon_worker_stop(carbon_worker *w);
/* Waits for the worker to end and frees the handle (invalid afterwards). The
 * host thread's tasklets do not run meanwhile: stop first unless the worker
 * ends by itself. */
int carbon_worker_join(carbon_worker *w);

/* How a worker ended. */
typedef struct carbon_worker_result {
    int raised;      /* 1: its function raised (a TaskletExit from a stop is not counted) */
    char *traceback; /* the formatted traceback if it raised, else NULL; carbon_free it */
} carbon_worker_result;

/* carbon_worker_join with a timeout (negative: none) and the worker's
 * outcome (`result` may be NULL). On expiry returns CARBON_ETIMEDOUT and the
 * handle stays valid (join again later); if the worker was asked to stop, the
 * runtime also tries to interrupt it. */
int carbon_worker_join_ex(carbon_worker *w, int64_t timeout_ns, carbon_worker_result *result);

/* ---- introspection ---------------------------------------------------------------- */

/* One tasklet, for debug overlays and crash reports. */
typedef struct carbon_tasklet_info {
    char *label;        /* tasklet.name if it has one, else the callable's qualified name;
                           "main" for a thread's main tasklet */
    const char *state;  /* static text: "running" (its thread's current tasklet), "runnable",
                           "blocked" (on a channel), "waiting" (sleep, frames, join, removed
                           from the queue, a main tasklet not running) */
    uint64_t thread_id; /* threading.get_ident() of its thread */
    int is_main;
    int is_host_thread; /* 1 for the thread that called carbon_init */
    int64_t time_ns;    /* time it ran in its thread's current tick, -1 if not measured */
    int64_t age_ns;     /* since its callable was entered, -1 if not started */
    char *stack;        /* its Python stack, most recent call last (traceback text) */
} carbon_tasklet_info;

/* Every alive tasklet of every thread (main tasklets included). Host thread
 * only; takes the GIL, so it waits for a busy worker's switch interval.
 * Free the array with carbon_tasklets_free. */
int carbon_list_tasklets(carbon_tasklet_info **out, size_t *count);
void carbon_tasklets_free(carbon_tasklet_info *list, size_t count);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
