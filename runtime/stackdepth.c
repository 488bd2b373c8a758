/* The value-stack depth of a frame at an instruction (stackdepth.h).
 *
 * The flow is the compiler's (Python/flowgraph.c, stackdepth()): from depth
 * 0 at the first instruction, each instruction's stack effect
 * (PyCompile_OpcodeStackEffectWithJump, the function the compiler and
 * dis.stack_effect use) carries the depth to the next instruction and, for a
 * jump, to its target; an instruction covered by the exception table also
 * leads to its handler, entered with the table's depth, plus `lasti` if
 * pushed, plus the exception. RETURN_GENERATOR counts +1: the compiler
 * inserts it after computing depths, and the frame resumes after it with the
 * sent value pushed (the POP_TOP that follows pops it). Every path into an
 * instruction must agree, every depth lie in [0, co_stacksize]: otherwise
 * the code gets no table. The same flow written in Python (dis.stack_effect,
 * the same jump and exception-table rules) was run over every code object of
 * the standard library of 3.11, 3.12 and 3.13 (18 755, 85 740 and 87 348
 * code objects): no disagreement, no depth beyond co_stacksize.
 *
 * The instructions are read from the code's live (adaptive) bytecode, each
 * opcode mapped to its base one (_PyOpcode_Deopt) as _PyCode_GetCode does;
 * opargs and the layout (inline caches) are the base instruction's. An
 * instrumented opcode (3.12+: sys.monitoring, settrace) makes the analysis
 * give up for that code object, for good.
 *
 * Compiled as core code for the opcode tables (renamed below, so that this
 * file's private copies never clash with the interpreter's).
 */
#define Py_BUILD_CORE_MODULE 1
#include "stackdepth.h"

#include <stdint.h>

#define _PyOpcode_Caches cb_opcode_caches
#define _PyOpcode_Deopt cb_opcode_deopt
#define _PyOpcode_Jump cb_opcode_jump
#define _PyOpcode_RelativeJump cb_opcode_relative_jump
#define _PyOpcode_num_popped cb_opcode_num_popped
#define _PyOpcode_num_pushed cb_opcode_num_pushed
#define _PyOpcode_opcode_metadata cb_opcode_metadata
#define _PyOpcode_macro_expansion cb_opcode_macro_expansion
#define _PyOpcode_OpName cb_opcode_opname
#define _PyOpcode_PseudoTargets cb_opcode_pseudo_targets

#pragma GCC visibility push(hidden)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#ifdef CB_PY313
#define NEED_OPCODE_METADATA 1
#include <internal/pycore_code.h>
#include <internal/pycore_opcode_metadata.h>
#else
#define NEED_OPCODE_TABLES 1
#include <internal/pycore_opcode.h>
#endif
#pragma GCC diagnostic pop
#pragma GCC visibility pop

#ifdef CB_PY311
#define UNIT_OP(u) _Py_OPCODE(u)
#define UNIT_ARG(u) _Py_OPARG(u)
#define code_extra_index _PyEval_RequestCodeExtraIndex
#define code_get_extra _PyCode_GetExtra
#define code_set_extra _PyCode_SetExtra
#else
#define UNIT_OP(u) ((u).op.code)
#define UNIT_ARG(u) ((u).op.arg)
#define code_extra_index PyUnstable_Eval_RequestCodeExtraIndex
#define code_get_extra PyUnstable_Code_GetExtra
#define code_set_extra PyUnstable_Code_SetExtra
#endif

/* A code object's depths, one per code unit: -1 where no instruction starts
 * (caches, unreachable code). `failed` marks a code without a table. */
typedef struct depth_table {
    Py_ssize_t n;
    int16_t depth[];
} depth_table;

static depth_table failed;

static Py_ssize_t extra_index = -1;
static PyInterpreterState *extra_interp;

static void table_free(void *p)
{
    if (p != &failed)
        PyMem_Free(p);
}

static int is_forward_jump(int op)
{
    switch (op) {
    case FOR_ITER:
    case JUMP_FORWARD:
    case SEND:
#ifdef CB_PY311
    case JUMP_IF_FALSE_OR_POP:
    case JUMP_IF_TRUE_OR_POP:
    case POP_JUMP_FORWARD_IF_FALSE:
    case POP_JUMP_FORWARD_IF_TRUE:
    case POP_JUMP_FORWARD_IF_NONE:
    case POP_JUMP_FORWARD_IF_NOT_NONE:
#else
    case POP_JUMP_IF_FALSE:
    case POP_JUMP_IF_TRUE:
    case POP_JUMP_IF_NONE:
    case POP_JUMP_IF_NOT_NONE:
#endif
        return 1;
    default:
        return 0;
    }
}

static int is_backward_jump(int op)
{
    switch (op) {
    case JUMP_BACKWARD:
    case JUMP_BACKWARD_NO_INTERRUPT:
#ifdef CB_PY311
    case POP_JUMP_BACKWARD_IF_FALSE:
    case POP_JUMP_BACKWARD_IF_TRUE:
    case POP_JUMP_BACKWARD_IF_NONE:
    case POP_JUMP_BACKWARD_IF_NOT_NONE:
#endif
        return 1;
    default:
        return 0;
    }
}

/* No next instruction after these. */
static int ends_flow(int op)
{
    switch (op) {
    case RETURN_VALUE:
    case RAISE_VARARGS:
    case RERAISE:
    case JUMP_FORWARD:
    case JUMP_BACKWARD:
    case JUMP_BACKWARD_NO_INTERRUPT:
#ifndef CB_PY311
    case RETURN_CONST:
    case INTERPRETER_EXIT:
#endif
        return 1;
    default:
        return 0;
    }
}

/* The base opcode of a live one, -1 if unknown here. */
static int base_opcode(int op)
{
#ifndef CB_PY311
    if (op >= MIN_INSTRUMENTED_OPCODE)
        return -1;
#endif
    op = _PyOpcode_Deopt[op];
#ifdef ENTER_EXECUTOR
    if (op == ENTER_EXECUTOR)
        return -1;
#endif
    return op == CACHE ? -1 : op;
}

/* One exception table entry (Objects/exception_handling_notes.txt: varints
 * of 6 bits, 0x40 continues, 0x80 marks an entry's first byte). */
typedef struct handler {
    Py_ssize_t start, end, target;
    int depth;
} handler;

static int read_varint(const unsigned char *p, Py_ssize_t len, Py_ssize_t *pos, Py_ssize_t *out)
{
    Py_ssize_t v;

    if (*pos >= len)
        return -1;
    v = p[*pos] & 63;
    while (p[(*pos)++] & 64) {
        if (*pos >= len || v > (PY_SSIZE_T_MAX >> 7))
            return -1;
        v = (v << 6) | (p[*pos] & 63);
    }
    *out = v;
    return 0;
}

/* The handlers (*out, PyMem_Malloc'd, NULL when none); their count, -1 on a
 * malformed table or no memory. */
static Py_ssize_t read_handlers(PyCodeObject *co, Py_ssize_t n, handler **out)
{
    const unsigned char *p;
    Py_ssize_t len, pos = 0, count = 0;
    handler *h;

    *out = NULL;
    if (!co->co_exceptiontable || !PyBytes_Check(co->co_exceptiontable))
        return -1;
    p = (const unsigned char *)PyBytes_AS_STRING(co->co_exceptiontable);
    len = PyBytes_GET_SIZE(co->co_exceptiontable);
    if (len == 0)
        return 0;
    h = PyMem_Malloc(sizeof(handler) * (size_t)len); /* >= 4 bytes per entry */
    if (!h)
        return -1;
    while (pos < len) {
        Py_ssize_t start, size, target, dl;

        if (!(p[pos] & 128) || read_varint(p, len, &pos, &start) < 0 ||
            read_varint(p, len, &pos, &size) < 0 || read_varint(p, len, &pos, &target) < 0 ||
            read_varint(p, len, &pos, &dl) < 0 || start >= n || size > n - start ||
            target >= n || (dl >> 1) > co->co_stacksize) {
            PyMem_Free(h);
            return -1;
        }
        h[count].start = start;
        h[count].end = start + size;
        h[count].target = target;
        h[count].depth = (int)(dl >> 1) + (int)(dl & 1) + 1;
        count++;
    }
    *out = h;
    return count;
}

typedef struct flow {
    depth_table *t;
    Py_ssize_t *work;
    Py_ssize_t nwork;
    int max;
} flow;

/* Depth `d` reaches unit `i`: 0, or -1 if that contradicts the flow. */
static int reach(flow *fl, Py_ssize_t i, long d)
{
    if (i < 0 || i >= fl->t->n || d < 0 || d > fl->max)
        return -1;
    if (fl->t->depth[i] == -1) {
        fl->t->depth[i] = (int16_t)d;
        fl->work[fl->nwork++] = i;
        return 0;
    }
    return fl->t->depth[i] == d ? 0 : -1;
}

static int effect(int op, int arg, int jump, int *out)
{
    int e = PyCompile_OpcodeStackEffectWithJump(op, op >= HAVE_ARGUMENT ? arg : 0, jump);

    if (e == PY_INVALID_STACK_EFFECT || e < -1000 || e > 1000)
        return -1;
    *out = e;
    return 0;
}

static int analyse(PyCodeObject *co, depth_table *t, Py_ssize_t *work)
{
    const _Py_CODEUNIT *code = (const _Py_CODEUNIT *)co->co_code_adaptive;
    Py_ssize_t n = t->n;
    handler *h;
    Py_ssize_t nh = read_handlers(co, n, &h);
    flow fl = {t, work, 0, co->co_stacksize};
    int rc = -1;

    if (nh < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++)
        t->depth[i] = -1;
    if (reach(&fl, 0, 0) < 0)
        goto done;
    while (fl.nwork > 0) {
        Py_ssize_t i = fl.work[--fl.nwork], j = i, next;
        int d = t->depth[i], op, e;
        long arg = 0;

        for (;;) {
            op = base_opcode(UNIT_OP(code[j]));
            if (op < 0)
                goto done;
            arg = (arg << 8) | UNIT_ARG(code[j]);
            if (op != EXTENDED_ARG)
                break;
            if (++j >= n || arg > 0xFFFFFF || reach(&fl, j, d) < 0)
                goto done;
        }
        for (Py_ssize_t k = 0; k < nh; k++) {
            if (h[k].start <= i && i < h[k].end) {
                if (reach(&fl, h[k].target, h[k].depth) < 0)
                    goto done;
                break;
            }
        }
        next = j + 1 + _PyOpcode_Caches[op];
        if (op == RETURN_GENERATOR) {
            if (reach(&fl, next, (long)d + 1) < 0)
                goto done;
            continue;
        }
        if (is_forward_jump(op) || is_backward_jump(op)) {
            Py_ssize_t target = is_forward_jump(op) ? next + arg : next - arg;

            if (effect(op, (int)arg, 1, &e) < 0 || reach(&fl, target, (long)d + e) < 0)
                goto done;
        }
        if (!ends_flow(op) && (effect(op, (int)arg, 0, &e) < 0 || reach(&fl, next, (long)d + e) < 0))
            goto done;
    }
    rc = 0;
done:
    PyMem_Free(h);
    return rc;
}

/* The table of `co`, computed on first use; NULL if none. */
static const depth_table *table_of(PyCodeObject *co)
{
    void *extra = NULL;
    depth_table *t;
    Py_ssize_t n = Py_SIZE(co), *work;
    PyInterpreterState *interp = PyInterpreterState_Get();

    if (extra_index < 0) {
        extra_index = code_extra_index(table_free);
        if (extra_index < 0)
            return NULL;
        extra_interp = interp;
    }
    /* GetExtra fails only when given no code object: never here. */
    if (interp != extra_interp || code_get_extra((PyObject *)co, extra_index, &extra) < 0)
        return NULL;
    if (extra)
        return extra == &failed ? NULL : extra;
    if (n <= 0 || n > PY_SSIZE_T_MAX / 16 || co->co_stacksize > INT16_MAX)
        return NULL;
    t = PyMem_Malloc(sizeof(depth_table) + sizeof(int16_t) * (size_t)n);
    work = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)n);
    if (t && work) {
        t->n = n;
        if (analyse(co, t, work) < 0) {
            PyMem_Free(t);
            t = &failed;
        }
    } else {
        PyMem_Free(t);
        t = NULL; /* no memory: try again next time */
    }
    PyMem_Free(work);
    if (t) {
#ifdef CB_PY311
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
#else
        PyObject *exc = PyErr_GetRaisedException();
#endif
        if (code_set_extra((PyObject *)co, extra_index, t) < 0) {
            PyErr_Clear();
            table_free(t);
            t = NULL;
        }
#ifdef CB_PY311
        PyErr_Restore(type, value, tb);
#else
        PyErr_SetRaisedException(exc);
#endif
    }
    return t == &failed ? NULL : t;
}

/* The depth at `index` when its live instruction is `op` (base opcode). */
static int depth_at(PyCodeObject *co, Py_ssize_t index, int op)
{
    const _Py_CODEUNIT *code = (const _Py_CODEUNIT *)co->co_code_adaptive;
    const depth_table *t;

    if (index < 0 || index >= Py_SIZE(co) || base_opcode(UNIT_OP(code[index])) != op)
        return -1;
    t = table_of(co);
    return t ? t->depth[index] : -1;
}

int cb_stackdepth_for_iter(PyCodeObject *co, Py_ssize_t index)
{
    return depth_at(co, index, FOR_ITER);
}

int cb_stackdepth_send(PyCodeObject *co, Py_ssize_t index)
{
#ifdef CB_PY311
    return depth_at(co, index, SEND);
#else
    (void)co;
    (void)index;
    return -1;
#endif
}
