/* Switching between C stacks.
 *
 * Two backends implement the same primitive, "save my registers, load the
 * target's, and hand it one pointer":
 *   - cb_asm_*: a hand-written x86-64 SysV switch (callee-saved registers,
 *     MXCSR and the x87 control word; resumes with jmp, no syscall);
 *   - cb_uc_*:  makecontext/swapcontext (portable; one sigprocmask syscall per
 *     switch, and it switches the signal mask too).
 * cb_ctx_* wraps the backend chosen at build time (CB_SWITCH_UCONTEXT) with the
 * AddressSanitizer fiber annotations and valgrind stack registration.
 */
#ifndef CB_SWITCH_H
#define CB_SWITCH_H

#include <stddef.h>
#include <ucontext.h>

/* Entry point of a new context. It receives the pointer passed by the first
 * switch into the context, and must never return: a finished context switches
 * away for the last time with cb_ctx_switch_final(). */
typedef void (*cb_entry_fn)(void *arg);

#if defined(__x86_64__)
#define CB_HAVE_ASM_SWITCH 1
/* Prepares a stack [lo, lo+size) so that switching to *sp enters fn(arg). */
void cb_asm_make(void **sp, void *lo, size_t size, cb_entry_fn fn);
/* Saves the caller in *save_sp, resumes target_sp and returns, in the target,
 * the arg given by whoever switches back. */
void *cb_asm_swap(void **save_sp, void *target_sp, void *arg);
#endif

typedef struct cb_uc_ctx {
    ucontext_t uc;
} cb_uc_ctx;
int cb_uc_make(cb_uc_ctx *ctx, void *lo, size_t size, cb_entry_fn fn);
void *cb_uc_swap(cb_uc_ctx *save, cb_uc_ctx *target, void *arg);

#if !defined(CB_HAVE_ASM_SWITCH) && !defined(CB_SWITCH_UCONTEXT)
#define CB_SWITCH_UCONTEXT 1
#endif

typedef struct cb_ctx {
#ifdef CB_SWITCH_UCONTEXT
    cb_uc_ctx uc;
#else
    void *sp;
#endif
    const void *stack_lo; /* C stack bounds, for the sanitizer (NULL: thread stack) */
    size_t stack_size;
    void *asan_fake_stack;
} cb_ctx;

/* The context the thread is running on, before any switch. */
void cb_ctx_init_thread(cb_ctx *ctx);
/* A new context on the stack [lo, lo+size) that will run fn. */
int cb_ctx_make(cb_ctx *ctx, void *lo, size_t size, cb_entry_fn fn);
/* Must be the first call of every entry function. */
void cb_ctx_entered(void);
/* Switches from `from` (the running context) to `to`. */
void *cb_ctx_switch(cb_ctx *from, cb_ctx *to, void *arg);
/* Last switch out of a finished context: it is never resumed. */
__attribute__((noreturn)) void cb_ctx_switch_final(cb_ctx *from, cb_ctx *to, void *arg);

/* The lowest byte a suspended context's stack still uses: its saved stack
 * pointer (ucontext: the one in its machine context, less the 128-byte red
 * zone, which a switch never needs but costs nothing to keep). */
#ifdef CB_SWITCH_UCONTEXT
char *cb_ctx_sp(const cb_ctx *ctx);
#else
static inline char *cb_ctx_sp(const cb_ctx *ctx)
{
    return ctx->sp;
}
#endif

/* Name of the backend in use ("asm-x86_64" or "ucontext"). */
const char *cb_ctx_backend(void);

#endif
