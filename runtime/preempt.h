/* Preemption: a watchdog thread interrupts a tasklet that runs too long.
 *
 * Mechanism. A thread's manager is *armed* with a limit (run(timeout) or the
 * embedding layer's slice). A process-wide watchdog thread watches every
 * armed manager: the manager's switch counter tells it whether the running
 * tasklet changed; when the same tasklet has run past the limit it asks that
 * thread to stop at its next Python instruction. The request reaches the
 * thread through the interpreter's pending calls (main thread: all versions;
 * other threads: 3.12+) or, on 3.11 worker threads, by taking the GIL; it
 * installs a one-shot trace function on that thread, and the trace function,
 * called by the eval loop of the running tasklet, suspends the tasklet like
 * any other switch (its frames stay on its own C stack). Nothing runs on the
 * switch path when no limit is armed; armed, the only cost is the watchdog's
 * own thread. See docs/embedding.md ("Preemption").
 *
 * Policy (what an interrupted tasklet becomes) is the arming mode's:
 *   SLICE:   re-queued at the back (carbon_tick), reported as a hitch;
 *   TIMEOUT: removed from the queue (paused) and handed back by run().
 */
#ifndef CB_PREEMPT_H
#define CB_PREEMPT_H

#include "core.h"

enum { CB_PREEMPT_SLICE = 1, CB_PREEMPT_TIMEOUT = 2 };

/* A Stackless "tick": run(timeout) counts time, one tick being this many ns
 * (about one bytecode instruction of CPython 3.11-3.13, see docs/scheduler.md). */
#define CB_PREEMPT_TICK_NS 10LL

/* Arms m (GIL held, m's thread). The current tasklet is interrupted once it
 * has run limit_ns without a switch (total: once limit_ns have passed since
 * arming, whoever runs). soft: no interruption; the run stops at the next
 * switch instead (Stackless soft). timing: also account each tasklet's time
 * (cb_preempt_tick_ns) at every switch. 0, or -1 with an exception. */
int cb_preempt_arm(cb_manager *m, int mode, long long limit_ns, int total, int soft, int timing);
/* Disarms m. What was interrupted meanwhile stays available below. */
void cb_preempt_disarm(cb_manager *m);

/* TIMEOUT mode: the tasklet interrupted since arming (new reference), or NULL. */
cb_tasklet *cb_preempt_take_victim(cb_manager *m);

/* SLICE mode: the last tasklet interrupted since arming. */
typedef struct cb_preempt_hitch {
    cb_tasklet *t;          /* new reference, NULL if none */
    long long ran_ns;       /* how long it had run when interrupted */
    unsigned streak;        /* consecutive armed periods in which it was interrupted */
    unsigned count;         /* interruptions since arming */
} cb_preempt_hitch;
void cb_preempt_take_hitch(cb_manager *m, cb_preempt_hitch *out);

/* With timing armed: the slowest tasklet of the armed period so far (label
 * copied into buf) and its ns; 0 if none ran. */
long long cb_preempt_slowest(cb_manager *m, char *buf, size_t size);
/* Longest time, since arming, that the thread was seen stuck outside Python
 * code (C code, a blocking call) past the limit; 0 if never. */
long long cb_preempt_stuck_ns(cb_manager *m);

/* Raises `exc_type` (a static exception class, e.g. TaskletExit) in the code
 * running on m's thread at its next Python instruction, whatever tasklet runs
 * (the main one too), even if not armed. Callable from any thread: with the
 * GIL held always; without it only once m's thread has armed (it has a
 * slot: every thread that ran a tick or a worker turn has). m must stay alive
 * until its thread has seen it (the request is dropped if the manager dies
 * first). For carbon_shutdown: a worker busy in a CPU loop. 0, or -1 (no
 * slot and no GIL, or the watchdog cannot start or was stopped). */
int cb_preempt_interrupt(cb_manager *m, PyObject *exc_type);

/* _scheduler._interrupt(thread_ident): the same from Python (tests). */
PyObject *cb_preempt_py_interrupt(PyObject *mod, PyObject *arg);

/* Called by the watchdog, holding the GIL, when an armed thread has been
 * stuck outside Python code past its limit (after the limit, then every
 * second): `cur` is that thread's current tasklet (borrowed), `ns` how long
 * it has run. The reporter may read the tasklet's frame. */
typedef void (*cb_preempt_stuck_fn)(cb_manager *m, cb_tasklet *cur, long long ns);
void cb_preempt_set_stuck_reporter(cb_preempt_stuck_fn fn);

/* Per-switch accounting when timing is armed (transfer.c, each switch). */
void cb_preempt_account(cb_manager *m, cb_tasklet *from);
/* CLOCK_MONOTONIC now, for a check made on the switch path just before
 * `from` switches away (a hand-off's deadline): with timing armed, the
 * accounting of that switch uses this reading instead of its own. */
long long cb_preempt_clock(cb_manager *m, cb_tasklet *from);

/* tasklet.set_atomic(False) and the end of atomic(): performs a preemption
 * that was deferred by the atomic flag. 0 or -1 with an exception. */
int cb_preempt_atomic_cleared(cb_manager *m);

/* The tasklet's time in the thread's current (or last) armed period. */
long long cb_preempt_tick_ns(cb_tasklet *t);

/* A tasklet's label (its name, else module.qualname) as UTF-8 into buf; runs
 * no Python code. */
void cb_tasklet_label(cb_tasklet *t, char *buf, size_t size);

/* Manager teardown (manager.c); watchdog stop (atexit, carbon_shutdown:
 * before finalization, with the GIL held). */
void cb_preempt_manager_gone(cb_manager *m);
void cb_preempt_shutdown(void);

#endif
