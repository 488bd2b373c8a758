/* Carbon runtime: the C API of the `scheduler` module, for extension modules.
 *
 * Obtain it with
 *     SchedulerCAPI *api = (SchedulerCAPI *)PyCapsule_Import("scheduler._C_API", 0);
 * Every function takes the GIL itself (PyGILState_Ensure), so it may be called
 * with or without it, from any thread with a Python thread state or none.
 * A tasklet or channel argument of the wrong type sets TypeError and gives
 * -1 / NULL / 0 (getters returning a plain value: 0, check PyErr_Occurred()).
 * "New" results are new references; "borrowed" are not.
 * The member order is the ABI shared with CCP's carbon-scheduler header.
 * Plain C; usable from C++.
 */
#ifndef CARBON_SCHEDULER_H
#define CARBON_SCHEDULER_H

#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SCHEDULER_CAPI_NAME "scheduler._C_API"

struct PyTaskletObject;
struct PyChannelObject;
typedef struct PyTaskletObject PyTaskletObject;
typedef struct PyChannelObject PyChannelObject;

/* The fast schedule hook: called after the Python schedule callback on every
 * change of a thread's current tasklet, with borrowed references. Its return
 * value is ignored. */
typedef int(schedule_hook_func)(struct PyTaskletObject *from, struct PyTaskletObject *to);

typedef struct SchedulerCAPI {
    /* type(*args): new reference or NULL. */
    struct PyTaskletObject *(*PyTasklet_New)(PyTypeObject *type, PyObject *args);
    /* t.setup(*args, **kwds): 0 or -1. */
    int (*PyTasklet_Setup)(struct PyTaskletObject *t, PyObject *args, PyObject *kwds);
    /* t.insert(): 0 or -1 with RuntimeError. */
    int (*PyTasklet_Insert)(struct PyTaskletObject *t);
    int (*PyTasklet_GetBlockTrap)(struct PyTaskletObject *t);
    void (*PyTasklet_SetBlockTrap)(struct PyTaskletObject *t, int value);
    int (*PyTasklet_IsMain)(struct PyTaskletObject *t);
    /* 1 if o is a tasklet (or subclass instance), else 0 (NULL gives 0). */
    int (*PyTasklet_Check)(PyObject *o);
    int (*PyTasklet_Alive)(struct PyTaskletObject *t);
    /* t.kill(): always returns 0; test PyErr_Occurred(). */
    int (*PyTasklet_Kill)(struct PyTaskletObject *t);
    /* type() (NULL: the channel type): new reference or NULL. */
    struct PyChannelObject *(*PyChannel_New)(PyTypeObject *type);
    /* c.send(value): 0 or -1. */
    int (*PyChannel_Send)(struct PyChannelObject *c, PyObject *value);
    /* c.receive(): new reference or NULL. */
    PyObject *(*PyChannel_Receive)(struct PyChannelObject *c);
    /* c.send_exception(klass, value); steals a reference to a non-NULL value. */
    int (*PyChannel_SendException)(struct PyChannelObject *c, PyObject *klass, PyObject *value);
    /* First waiting tasklet or None: new reference, never NULL on a channel. */
    PyObject *(*PyChannel_GetQueue)(struct PyChannelObject *c);
    int (*PyChannel_GetPreference)(struct PyChannelObject *c);
    /* Clamps value to -1..1. */
    void (*PyChannel_SetPreference)(struct PyChannelObject *c, int value);
    int (*PyChannel_GetBalance)(struct PyChannelObject *c);
    int (*PyChannel_Check)(PyObject *o);
    /* c.send_throw(exc, val, tb); NULLs are None; steals nothing. Deprecated. */
    int (*PyChannel_SendThrow)(struct PyChannelObject *c, PyObject *exc, PyObject *val, PyObject *tb);
    /* The calling thread's manager: borrowed. */
    PyObject *(*PyScheduler_GetScheduler)(void);
    /* remove == 0: schedule(); else schedule_remove(). New ref to None or NULL. */
    PyObject *(*PyScheduler_Schedule)(PyObject *retval, int remove);
    int (*PyScheduler_GetRunCount)(void);
    /* New reference. */
    PyObject *(*PyScheduler_GetCurrent)(void);
    /* run() limited in time (see docs/scheduler.md); new ref to None or NULL. */
    PyObject *(*PyScheduler_RunWithTimeout)(long long timeout_ns);
    /* run_n_tasklets(n), n <= 0 behaving as 1. */
    PyObject *(*PyScheduler_RunNTasklets)(int n);
    /* Steal cb; NULL removes; a non-callable gives -1 without an exception. */
    int (*PyScheduler_SetChannelCallback)(PyObject *callable);
    /* Borrowed, or NULL without an exception. */
    PyObject *(*PyScheduler_GetChannelCallback)(void);
    int (*PyScheduler_SetScheduleCallback)(PyObject *callable);
    void (*PyScheduler_SetScheduleFastCallback)(schedule_hook_func *func);
    int (*PyScheduler_GetNumberOfActiveScheduleManagers)(void);
    int (*PyScheduler_GetNumberOfActiveChannels)(void);
    int (*PyScheduler_GetAllTimeTaskletCount)(void);
    int (*PyScheduler_GetActiveTaskletCount)(void);
    /* Statistics of the most recent RunWithTimeout (process-wide). */
    int (*PyScheduler_GetTaskletsCompletedLastRunWithTimeout)(void);
    int (*PyScheduler_GetTaskletsSwitchedLastRunWithTimeout)(void);
    PyTypeObject *PyTaskletType;
    PyTypeObject *PyChannelType;
    PyObject **TaskletExit; /* address of the module's TaskletExit */
    long (*PyTasklet_GetTimesSwitchedTo)(struct PyTaskletObject *t);
    /* UTF-8 of t.context, owned by the tasklet: valid until the context is
     * changed or the tasklet dies. */
    const char *(*PyTasklet_GetContext)(struct PyTaskletObject *t);
} SchedulerCAPI;

#ifdef __cplusplus
}
#endif

#endif
