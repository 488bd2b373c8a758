/* Internal interface of the scheduler core: the tasklet, channel and schedule
 * manager objects and the operations shared by runtime/ and embed/.
 *
 * Ownership summary (strong references):
 *   thread-state dict -> manager -> main tasklet
 *   manager run queue -> each queued tasklet
 *   channel           -> each tasklet waiting on it
 *   manager->current  -> the running tasklet (so it outlives its own frames)
 *   tasklet           -> callable, args, kwargs, parent, values in transit
 * Tasklets point at their manager without a reference: the manager unlinks
 * (or kills) them when it dies.
 */
#ifndef CB_CORE_H
#define CB_CORE_H

#include "pystate.h"
#include "region.h"
#include "rootchunk.h"
#include "stack.h"
#include "switch.h"

#include <stdint.h>

typedef struct cb_manager cb_manager;
typedef struct cb_tasklet cb_tasklet;
typedef struct cb_channel cb_channel;

/* ---- run queue nodes -------------------------------------------------------
 * The queue is a circular list headed by the main tasklet's node. Besides
 * tasklets it can hold markers that a nested run loop places to remember its
 * position (CURSOR) and its end (END); they live on the heap, never on that
 * loop's C stack (offstack.h). */
enum { CB_NODE_TASKLET = 0, CB_NODE_CURSOR = 1, CB_NODE_END = 2 };

typedef struct cb_node {
    struct cb_node *prev, *next; /* NULL when not linked */
    int kind;
} cb_node;

/* ---- tasklet ---------------------------------------------------------------- */

/* What only a started tasklet needs: its saved registers and interpreter
 * state. A heap block (transfer.c) that also holds the root chunk of the
 * tasklet's frame data stack; a main tasklet's is in its manager. Nothing
 * in it lies on a C stack. */
typedef struct cb_runstate {
    cb_ctx ctx;
    cb_pystate st;
    _PyErr_StackItem exc_state;    /* bottom of its handled-exception chain */
    cb_gc_call gc_call;            /* a channel send/receive in progress (gcframes.c) */
    cb_slice slice;                /* its region, and its C stack while not in it */
} cb_runstate;

struct cb_tasklet {
    PyObject_HEAD
    /* What a switch, a run loop and a channel transfer touch comes first, so
     * that resuming a tasklet reads few cache lines. */
    unsigned initialised : 1;      /* base __init__ ran */
    unsigned is_main : 1;
    unsigned alive : 1;            /* bound with arguments and not finished */
    unsigned started : 1;          /* has a stack with its frames on it */
    unsigned blocked : 1;
    unsigned paused : 1;
    unsigned block_trap : 1;
    unsigned dont_raise : 1;
    unsigned highlighted : 1;
    unsigned in_loop : 1;          /* suspended in a run loop, waiting for a child */
    unsigned xfer_done : 1;        /* its blocked channel operation completed */
    unsigned tempval_is_exc : 1;   /* tempval is an exception to raise */
    unsigned leaked : 1;           /* could not be unwound: its stack is kept */
    unsigned args_bound : 1;       /* was ever bound with arguments (dont_raise is fixed) */
    unsigned kill_deferred : 1;    /* queued on its manager for a deferred kill */
    int chan_dir;                  /* +1 sending, -1 receiving */
    int busy;                      /* inside a blocking operation: Python code must
                                      not run in it (transfer.h) */
    cb_node node;                  /* run-queue link */
    cb_manager *mgr;               /* owner; NULL once the manager is gone */
    cb_tasklet *parent;            /* who ran it last: control returns there */
    PyObject *tempval;             /* value in transit over a channel */
    PyObject *pending_exc;         /* raised in this tasklet when it resumes */
    PyObject *child_exc;           /* raised here: escaped from a child */
    cb_channel *chan;              /* channel whose list holds us, or NULL */
    cb_tasklet *chan_prev, *chan_next;
    long times_switched_to;
    cb_stack *stack;               /* its region's C stack (NULL: the thread's) */
    cb_runstate *run;                   /* NULL unless started (main: in its manager) */

    /* the rest */
    PyObject *weakreflist;
    cb_tasklet *mgr_prev, *mgr_next; /* every tasklet of the manager */
    long thread_id;                /* owner's threading.get_ident(); -1 after its end */
    uint64_t home_tstate_id;       /* main tasklet: its thread state's id */
    PyObject *callable, *args, *kwargs;
    cb_tasklet *kill_next;         /* deferred-kill list link */
    PyObject *method_name, *module_name, *file_name; /* tracing (Python attributes) */
    int line_number;
    int gc_mark;                   /* gcmark.c: 1 + its index, 0 none */
    PyObject *context_text, *parent_callsite;
    long long start_time, end_time;
    double run_time;
    PyObject *exception_handler, *context_manager_getter;
    /* preempt.c: label, atomic flag, time in the current armed period */
    PyObject *name;                /* tasklet.name when set, else NULL */
    PyObject *qualname;            /* the callable's __qualname__ (default label) */
    unsigned char atomic;          /* never preempted */
    unsigned preempt_streak;       /* consecutive armed periods it was preempted in */
    unsigned long long preempt_stamp, tick_stamp; /* armed periods of those */
    long long tick_ns;             /* time run in armed period tick_stamp */
};

/* ---- channel ---------------------------------------------------------------- */

struct cb_channel {
    PyObject_HEAD
    PyObject *weakreflist;
    cb_tasklet *head, *tail;       /* waiting tasklets, in arrival order */
    int balance;                   /* senders waiting (>0) or -receivers (<0) */
    int preference;                /* -1 receiver, 0 neither, 1 sender */
    unsigned initialised : 1;
    unsigned closing : 1;
    unsigned closed : 1;
    unsigned schedule_all : 1;     /* every transfer re-queues both sides at the back */
    cb_channel *all_prev, *all_next; /* every live channel of the process */
};

/* ---- schedule manager ------------------------------------------------------- */

typedef void (*cb_wakeup_fn)(cb_manager *mgr, void *arg);
/* Called when the main tasklet would block with nothing runnable. Returns 1
 * after waiting for outside events (the queue may have grown), 0 if nothing
 * can ever come (deadlock), -1 with an exception set. */
typedef int (*cb_idle_fn)(cb_manager *mgr, void *arg);

struct cb_manager {
    PyObject_HEAD
    long thread_id;
    uint64_t tstate_id;
    PyThreadState *tstate;
    cb_tasklet *main;              /* owned */
    cb_tasklet *current;           /* owned while it runs */
    Py_ssize_t queued;             /* tasklets in the queue, main excluded */
    int switch_trap;               /* the level scheduler.switch_trap() sets */
    int runtime_trap;              /* raised by the runtime around callbacks; Python
                                      code cannot lower it */
    int switching;                 /* a switch is in progress */
    unsigned dying : 1;
    cb_tasklet *all;               /* every tasklet of the thread */
    cb_stack_pool pool;            /* C stacks of the regions */
    cb_region_set regions;         /* where tasklets run (region.h) */
    cb_rootchunk rootchunk;        /* new tasklets' root frame chunk size (rootchunk.h) */
    void *bounce;                  /* transfer.c: the stack-copy context */
    cb_tasklet *gc_owner;          /* borrowed: the non-main tasklet a running
                                      collection started in (module.c), or NULL */
    PyObject **later;              /* owned: released at the next safe point
                                      (transfer.h) */
    size_t nlater, later_cap;
    cb_runstate main_run;               /* the main tasklet's saved state */
    int main_plain_loop;           /* main waits in an unlimited run of its queue */
    int (*run_done)(void *);       /* ...that also ends once this says so (NULL: none) */
    void *run_done_arg;
    long long deadline_ns;         /* ...or in one that stops at this time (0: none) */
    cb_tasklet *last_failed;       /* owned: in a deadline run, the last tasklet an
                                      exception escaped from */
    cb_tasklet *deferred_kills;    /* last reference dropped on another thread */
    /* statistics */
    unsigned long long switches;
    unsigned long long completed;
    /* embedding hooks */
    cb_wakeup_fn wakeup;
    cb_idle_fn idle;
    void *hook_arg;
    cb_manager *all_prev, *all_next; /* every manager of the process (cb_g.all_managers) */
    /* preempt.c */
    int stop_run;                  /* the running top-level run returns at its next switch */
    int timing;                    /* account tasklet time at each switch */
    long long slice_t0;            /* when the current tasklet got control (timing) */
    unsigned long long tick_stamp; /* armed periods so far */
    struct cb_preempt *preempt;    /* the watchdog's slot, or NULL */
};

/* ---- process-wide state ----------------------------------------------------- */

typedef int (*cb_fast_callback)(cb_tasklet *from, cb_tasklet *to);

typedef struct cb_globals {
    int use_nested;
    PyObject *schedule_callback;
    PyObject *channel_callback;
    cb_fast_callback fast_callback;
    size_t stack_size;
    long managers;
    long manager_threads;          /* threads with a manager that have not ended */
    long channels;
    long tasklets;
    long tasklets_all_time;
    long rwt_completed, rwt_switched;
    cb_channel *all_channels;
    cb_manager *all_managers;
} cb_globals;

extern cb_globals cb_g;
extern PyTypeObject cb_TaskletType;
extern PyTypeObject cb_ChannelType;
extern PyTypeObject cb_ManagerType;
extern PyTypeObject cb_CallableWrapperType;
extern PyObject *cb_TaskletExit;

#define CB_Tasklet_Check(o) PyObject_TypeCheck((o), &cb_TaskletType)
#define CB_Channel_Check(o) PyObject_TypeCheck((o), &cb_ChannelType)

/* ---- manager.c: threads, queue, switching, run loops ------------------------ */

/* The calling thread's manager, created on first use (NULL + exception). */
cb_manager *cb_manager_get(void);
/* The calling thread's manager if it exists (no exception). */
cb_manager *cb_manager_peek(void);
/* The manager of another thread's state, if it has one (no exception). */
cb_manager *cb_manager_of(PyThreadState *ts);
cb_tasklet *cb_current(void);
/* 1 if m's tasklets can be unwound now: on its own thread, from its main
 * tasklet, while the interpreter can still run their finally blocks. */
int cb_can_unwind_here(cb_manager *mgr);

void cb_queue_append(cb_manager *mgr, cb_tasklet *t);       /* takes a reference */
void cb_queue_insert_next(cb_manager *mgr, cb_tasklet *t);  /* right behind current */
/* Unlinks t; the queue's reference passes to the caller (who drops it, or
 * hands it on). */
void cb_queue_unlink(cb_manager *mgr, cb_tasklet *t);
/* Unlinks t if queued and releases the queue's reference; the caller must
 * hold its own reference if it uses t afterwards. */
void cb_queue_remove(cb_manager *mgr, cb_tasklet *t);
cb_tasklet *cb_queue_first(cb_manager *mgr);
cb_tasklet *cb_queue_next_of(cb_manager *mgr, cb_tasklet *t);
cb_tasklet *cb_queue_prev_of(cb_manager *mgr, cb_tasklet *t);
/* Makes a tasklet runnable on its own thread, waking that thread if it is
 * another; `next` puts it right behind that thread's current tasklet. For a
 * main tasklet (always queued) it only wakes its thread. */
void cb_make_runnable(cb_tasklet *t, int next);
/* The same, called from the thread whose manager is `here` (may be NULL). */
void cb_make_runnable_from(cb_manager *here, cb_tasklet *t, int next);

int cb_check_switch_allowed(cb_manager *mgr);
/* Raises a deferred exception of the current tasklet, if any (-1). */
int cb_raise_deferred(cb_tasklet *cur);

/* The current tasklet yields: it has already been re-queued or unlinked.
 * From the main tasklet this runs the queue until it is empty. */
int cb_yield(cb_manager *mgr);
/* schedule() / schedule_remove() */
int cb_schedule(cb_manager *mgr, int remove);
/* Runs t as tasklet.run() does (both modes). */
int cb_run_tasklet(cb_manager *mgr, cb_tasklet *t);
/* tasklet.switch() */
int cb_switch_tasklet(cb_manager *mgr, cb_tasklet *t);
/* scheduler.run() / run_n_tasklets() / the C run-with-timeout. */
int cb_run(cb_manager *mgr, long long max_switches, long long timeout_ns);
/* From the main tasklet: runs the queue until it is empty or, checked before
 * each tasklet but the first, CLOCK_MONOTONIC reaches deadline_ns. An
 * exception escaping a tasklet stops the run (-1); mgr->last_failed says
 * which tasklet it came from. */
int cb_run_deadline(cb_manager *mgr, long long deadline_ns);
/* Main tasklet waiting: runs the queue until `done(arg)` or it is empty.
 * `done` runs no Python code: a tasklet that gives control back asks it to
 * decide whether to hand off to the next one instead of waking main. */
int cb_run_until(cb_manager *mgr, int (*done)(void *), void *arg);

/* Blocks the current tasklet until cb_make_runnable() (timers, frames). The
 * main tasklet runs its queue and idle hook meanwhile. Returns -1 with an
 * exception (kill, throw, deadlock). */
int cb_block_current(cb_manager *mgr, unsigned *flag);

/* Suspends the current (non-main) tasklet without any check; control goes
 * to its parent. */
void cb_suspend(cb_manager *mgr);
/* 1 if switching is trapped, by the user or by the runtime. */
static inline int cb_switch_trapped(cb_manager *mgr)
{
    return mgr->switch_trap != 0 || mgr->runtime_trap != 0;
}
/* 1 while the garbage collector runs on a tasklet's stack (not a main
 * tasklet's): the collector keeps its lists' heads there, and what it runs
 * (finalizers, weakref callbacks) must not switch away, since the stack could
 * then be copied out of its region (docs/design.md, "Stacks"). */
static inline int cb_gc_in_tasklet(cb_manager *mgr)
{
    return mgr->gc_owner != NULL && mgr->gc_owner == mgr->current;
}
/* A started tasklet's life on its own stack: runs its callable, then finishes
 * it (never returns). Called by transfer.c. */
void cb_tasklet_body(cb_manager *mgr, cb_tasklet *t);

/* throw / kill */
int cb_throw(cb_tasklet *t, PyObject *exc, int pending);
int cb_kill(cb_tasklet *t, int pending);
/* From a libuv callback of t's thread: t raises exc (stolen) when it next
 * resumes (a waiting main tasklet: when its wait checks). 1: t already had
 * an exception to raise, or is dead; exc is dropped. */
int cb_throw_async(cb_tasklet *t, PyObject *exc);
/* Clears exc if it is still t's exception to raise (pending or deferred). */
int cb_forget_exception(cb_tasklet *t, PyObject *exc);
int cb_kill_all(cb_manager *mgr);
/* Kills t by running it alone (finalizers, teardown). */
int cb_kill_alone(cb_manager *mgr, cb_tasklet *t);
/* Gives up on unwinding t (it survived every TaskletExit at teardown): it is
 * skipped by later kills and never freed, its stack kept with its frames. */
void cb_tasklet_abandon(cb_tasklet *t);
/* A tasklet of another thread: pending TaskletExit there. */
int cb_kill_remote(cb_tasklet *t);
void cb_process_deferred_kills(cb_manager *mgr);

/* tasklet.frame */
PyObject *cb_tasklet_frame(cb_tasklet *t);

/* ---- tasklet.c ---------------------------------------------------------------- */
int cb_tasklet_valid(cb_tasklet *t);
int cb_tasklet_owned(cb_tasklet *t, const char *verb);
cb_tasklet *cb_tasklet_new_main(cb_manager *mgr);
void cb_forget_orphan_main(cb_tasklet *t);
int cb_tasklet_needs_unwind(cb_tasklet *t);
/* After a kill: one that survived TaskletExit and that nothing but the
 * caller's `refs` references hold is leaked for good (reported). */
void cb_tasklet_leak_if_unowned(cb_tasklet *t, Py_ssize_t refs);
PyObject *cb_tasklet_repr_state(cb_tasklet *t);

/* ---- channel.c ---------------------------------------------------------------- */
int cb_channel_valid(cb_channel *ch);
int cb_channel_send(cb_channel *ch, PyObject *value, int is_exc);
PyObject *cb_channel_receive(cb_channel *ch);
/* Takes t off its channel; the channel's reference passes to the caller. */
void cb_channel_unlink(cb_tasklet *t);
/* The same, releasing the channel's reference. */
void cb_channel_remove(cb_tasklet *t);
int cb_channel_clear(cb_channel *ch);
int cb_channel_send_exception(cb_channel *ch, PyObject *klass, PyObject *value);
int cb_channel_send_throw(cb_channel *ch, PyObject *exc, PyObject *val, PyObject *tb);

/* ---- compat.c: the rest of the Stackless API ---------------------------------- */
PyObject *cb_tasklet_get_tempval(PyObject *self, void *c);
int cb_tasklet_set_tempval(PyObject *self, PyObject *v, void *c);
PyObject *cb_tasklet_get_recursion_depth(PyObject *self, void *c);
PyObject *cb_tasklet_get_nesting_level(PyObject *self, void *c);
PyObject *cb_tasklet_get_restorable(PyObject *self, void *c);
PyObject *cb_tasklet_reduce(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *cb_channel_reduce(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *cb_channel_send_sequence(PyObject *self, PyObject *seq);
PyObject *cb_channel_get_schedule_all(PyObject *self, void *c);
int cb_channel_set_schedule_all(PyObject *self, PyObject *v, void *c);
PyObject *cb_mod_schedule(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames);
PyObject *cb_mod_schedule_remove(PyObject *mod, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames);
PyObject *cb_mod_get_thread_info(PyObject *mod, PyObject *args);
PyObject *cb_mod_thread_ids(PyObject *mod, PyObject *unused);

/* ---- callbacks.c -------------------------------------------------------------- */
void cb_call_schedule_callback(cb_manager *mgr, cb_tasklet *from, cb_tasklet *to);
void cb_call_channel_callback(cb_channel *ch, cb_tasklet *t, int sending, int will_block);

/* ---- misc ----------------------------------------------------------------------- */
long long cb_monotonic_ns(void);
/* The raised exception as one object (new reference, NULL if none) and back. */
PyObject *cb_err_fetch(void);
void cb_err_restore(PyObject *exc);
PyObject *cb_make_exception(PyObject *type, PyObject *args);
/* A class deriving from BaseException. */
int cb_is_exception_class(PyObject *o);
/* What throw() and the C API accept: an exception class or an instance of
 * Exception (NULL: no). */
int cb_is_throwable(PyObject *o);

#endif
