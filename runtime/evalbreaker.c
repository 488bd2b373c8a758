/* Sets an interpreter's eval-breaker word (3.11, 3.12), so that the thread
 * running Python code looks at its pending calls at its next check.
 *
 * Py_AddPendingCall and _PyEval_AddPendingCall recompute the eval breaker on
 * the calling thread and only set it if *that* thread could handle the call;
 * from the watchdog thread (preempt.c) the running thread is never told. The
 * word lives in the internal interpreter struct, hence this file of its own,
 * compiled as core code (3.13 has a public per-thread word: not needed). */
#define Py_BUILD_CORE_MODULE 1
#include <Python.h>

#if PY_VERSION_HEX < 0x030D0000
#include <internal/pycore_interp.h>
#endif

void cb_eval_breaker_set(PyInterpreterState *interp);

void cb_eval_breaker_set(PyInterpreterState *interp)
{
#if PY_VERSION_HEX < 0x030D0000
    _Py_atomic_store_relaxed(&interp->ceval.eval_breaker, 1);
#else
    (void)interp;
#endif
}
