/* The value-stack depth of an interpreter frame at an instruction, by static
 * analysis of its code object (stackdepth.c; docs/design.md, "Collecting
 * suspended tasklets").
 *
 * CPython 3.11-3.13 record a frame's stack depth only while it waits in a
 * Python-to-Python call; while it executes a call into C the depth lives in
 * a C local of the eval loop. The depth at the start of each instruction is a
 * property of the code (the compiler's own flow, the one co_stacksize comes
 * from): it is computed once per code object, on first use, and kept with the
 * code (co_extra) until the code is freed.
 */
#ifndef CB_STACKDEPTH_H
#define CB_STACKDEPTH_H

#include "pystate.h"

/* When the instruction whose opcode unit is `index` in `co` (a code unit
 * index, where frame->prev_instr / instr_ptr point) is a FOR_ITER as the
 * eval loop runs it (specialized or not; not instrumented): its stack depth
 * (slots above co_nlocalsplus, the iterator included: it is the top one).
 * Else -1, and -1 whenever the analysis is unsure: an unknown or
 * instrumented opcode, an inconsistent flow, no memory, the index out of the
 * code or not an instruction, a code of another interpreter than the first
 * that asked. Called by the collector: runs no Python code and leaves no
 * exception set; the first query of a code object allocates with
 * PyMem_Malloc. */
int cb_stackdepth_for_iter(PyCodeObject *co, Py_ssize_t index);

/* The same for a SEND (`yield from`, `await`) on 3.11, where it calls into
 * C (PyIter_Send) with the receiver below the value it sends; -1 on 3.12+,
 * where a generator receiver runs as a Python-to-Python call. */
int cb_stackdepth_send(PyCodeObject *co, Py_ssize_t index);

#endif
