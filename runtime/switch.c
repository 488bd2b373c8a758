/* Context creation for both switch backends, and the sanitizer-aware wrapper
 * cb_ctx_* used by the scheduler. */
#define _GNU_SOURCE
#include "switch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "sanitizer.h"

/* ---- hand-written x86-64 backend ---------------------------------------- */

#ifdef CB_HAVE_ASM_SWITCH
void cb_asm_trampoline(void);

void cb_asm_make(void **sp, void *lo, size_t size, cb_entry_fn fn)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    void **p = (void **)top;
    uint32_t fpu[2] = {0, 0};

    __asm__ volatile("stmxcsr %0" : "=m"(fpu[0]));
    __asm__ volatile("fnstcw %0" : "=m"(fpu[1]));
    /* Popped by cb_asm_swap in this order: fpu word, r15..r12, rbx, rbp, then
     * its ret takes the resume address. The trampoline is entered with
     * rsp = top (16-byte aligned), so its call gives the entry function the
     * ABI's alignment. */
    *--p = (void *)cb_asm_trampoline;
    *--p = NULL;        /* rbp */
    *--p = NULL;        /* rbx */
    *--p = (void *)fn;  /* r12: entry function */
    *--p = NULL;        /* r13 */
    *--p = NULL;        /* r14 */
    *--p = NULL;        /* r15 */
    --p;
    ((uint32_t *)p)[0] = fpu[0];
    ((uint32_t *)p)[1] = fpu[1] & 0xffff;
    *sp = p;
}
#endif

/* ---- ucontext backend ----------------------------------------------------- */

/* makecontext passes only ints: the entry function travels as two halves,
 * the first switch's arg through a thread-local slot. */
static _Thread_local void *uc_transfer;

static void uc_boot(unsigned int fn_lo, unsigned int fn_hi)
{
    cb_entry_fn fn = (cb_entry_fn)(((uintptr_t)fn_hi << 32) | (uintptr_t)fn_lo);
    fn(uc_transfer);
    abort(); /* entry functions never return */
}

int cb_uc_make(cb_uc_ctx *ctx, void *lo, size_t size, cb_entry_fn fn)
{
    uintptr_t bits = (uintptr_t)fn;

    if (getcontext(&ctx->uc) != 0)
        return -1;
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))uc_boot, 2,
                (unsigned int)(bits & 0xffffffffu), (unsigned int)(bits >> 32));
    return 0;
}

void *cb_uc_swap(cb_uc_ctx *save, cb_uc_ctx *target, void *arg)
{
    uc_transfer = arg;
    swapcontext(&save->uc, &target->uc);
    return uc_transfer;
}

/* ---- the wrapper used by the runtime -------------------------------------- */

const char *cb_ctx_backend(void)
{
#ifdef CB_SWITCH_UCONTEXT
    return "ucontext";
#else
    return "asm-x86_64";
#endif
}

#ifdef CB_SWITCH_UCONTEXT
char *cb_ctx_sp(const cb_ctx *ctx)
{
#if defined(__x86_64__)
    char *sp = (char *)ctx->uc.uc.uc_mcontext.gregs[REG_RSP] - 128;
#elif defined(__aarch64__)
    char *sp = (char *)ctx->uc.uc.uc_mcontext.sp;
#else
#error "ucontext backend: no stack pointer for this architecture"
#endif
    return sp < (const char *)ctx->stack_lo ? (char *)ctx->stack_lo : sp;
}
#endif

void cb_ctx_init_thread(cb_ctx *ctx)
{
    pthread_attr_t attr;
    void *lo = NULL;
    size_t size = 0;

    ctx->stack_lo = NULL;
    ctx->stack_size = 0;
    ctx->asan_fake_stack = NULL;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
            ctx->stack_lo = lo;
            ctx->stack_size = size;
        }
        pthread_attr_destroy(&attr);
    }
}

int cb_ctx_make(cb_ctx *ctx, void *lo, size_t size, cb_entry_fn fn)
{
    ctx->stack_lo = lo;
    ctx->stack_size = size;
    ctx->asan_fake_stack = NULL;
#ifdef CB_SWITCH_UCONTEXT
    return cb_uc_make(&ctx->uc, lo, size, fn);
#else
    cb_asm_make(&ctx->sp, lo, size, fn);
    return 0;
#endif
}

void cb_ctx_entered(void)
{
    CB_ASAN_FINISH_SWITCH(NULL);
}

static inline void *raw_swap(cb_ctx *from, cb_ctx *to, void *arg)
{
#ifdef CB_SWITCH_UCONTEXT
    return cb_uc_swap(&from->uc, &to->uc, arg);
#else
    return cb_asm_swap(&from->sp, to->sp, arg);
#endif
}

void *cb_ctx_switch(cb_ctx *from, cb_ctx *to, void *arg)
{
    void *ret;

    CB_ASAN_START_SWITCH(&from->asan_fake_stack, to->stack_lo, to->stack_size);
    ret = raw_swap(from, to, arg);
    CB_ASAN_FINISH_SWITCH(from->asan_fake_stack);
    return ret;
}

void cb_ctx_switch_final(cb_ctx *from, cb_ctx *to, void *arg)
{
    CB_ASAN_START_SWITCH(NULL, to->stack_lo, to->stack_size);
    raw_swap(from, to, arg);
    abort(); /* a finished context is never resumed */
}
