/* Hand-written context switch for x86-64 SysV (see switch.h).
 *
 * A suspended context's stack holds, from its saved stack pointer upwards:
 *   [MXCSR (4 bytes), x87 control word (2 bytes), padding][r15][r14][r13][r12]
 *   [rbx][rbp][resume address]
 * Resuming pops them and returns to the resume address. That one `ret`
 * mispredicts, but it pops the return-stack entry of our own `call`, so the
 * returns up the resumed tasklet's chain stay predicted (resuming with `jmp`
 * leaves every one of them a level off: measured slower in the Python
 * workloads of tools/bench). The signal mask is left alone: it belongs to the
 * thread, not to a tasklet.
 */
#if defined(__x86_64__)

    .text

/* void *cb_asm_swap(void **save_sp, void *target_sp, void *arg) */
    .globl  cb_asm_swap
    .hidden cb_asm_swap
    .type   cb_asm_swap, @function
    .p2align 4
cb_asm_swap:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)

    movq    %rsp, (%rdi)
    movq    %rsi, %rsp

    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    popq    %r14
    .cfi_adjust_cfa_offset -8
    popq    %r13
    .cfi_adjust_cfa_offset -8
    popq    %r12
    .cfi_adjust_cfa_offset -8
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    movq    %rdx, %rax
    ret
    .cfi_endproc
    .size   cb_asm_swap, .-cb_asm_swap

/* First code run by a new context: calls entry(arg) with the entry function
 * in r12 and arg (the value handed over by the first switch) in rax. The
 * undefined return address ends unwinding here (gdb, perf, and the forced
 * unwind of pthread_exit never walk into whatever lies above the stack). */
    .globl  cb_asm_trampoline
    .hidden cb_asm_trampoline
    .type   cb_asm_trampoline, @function
    .p2align 4
cb_asm_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %rax, %rdi
    callq   *%r12
    ud2
    .cfi_endproc
    .size   cb_asm_trampoline, .-cb_asm_trampoline

#endif

    .section .note.GNU-stack,"",@progbits
