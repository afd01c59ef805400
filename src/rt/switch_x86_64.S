/*
 * Fiber context switch for x86-64 (System V ABI).
 *
 * Only the callee-saved registers need saving: the switch is an ordinary
 * function call for the compiler, so everything else is already dead or
 * saved by the caller. The floating-point control words (MXCSR, x87 CW) are
 * shared by all fibers of a thread and not switched: changing the rounding
 * mode inside a fiber is not supported.
 */
#if defined(__x86_64__)
        .text

/* void wv__switch(void **save, void *next) */
        .globl  wv__switch
        .hidden wv__switch
        .type   wv__switch, @function
        .p2align 4
wv__switch:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   wv__switch, .-wv__switch

/* First code run on a new stack: wv__context_init left the fiber in %r12. */
        .globl  wv__fiber_start
        .hidden wv__fiber_start
        .type   wv__fiber_start, @function
        .p2align 4
wv__fiber_start:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r12, %rdi
        call    wv__fiber_main
        ud2
        .cfi_endproc
        .size   wv__fiber_start, .-wv__fiber_start

/* void *wv__context_init(void *top, wv_fiber *fiber)
 * Lays out the frame wv__switch pops: r15 r14 r13 r12(fiber) rbx rbp, then
 * the return address wv__fiber_start, so that after the `ret` the stack is
 * 16-byte aligned for its `call`. */
        .globl  wv__context_init
        .hidden wv__context_init
        .type   wv__context_init, @function
        .p2align 4
wv__context_init:
        .cfi_startproc
        movq    %rdi, %rax
        andq    $-16, %rax                /* after the ret, %rsp = this */
        leaq    wv__fiber_start(%rip), %rcx
        movq    %rcx, -8(%rax)            /* return address */
        movq    $0, -16(%rax)             /* rbp */
        movq    $0, -24(%rax)             /* rbx */
        movq    %rsi, -32(%rax)           /* r12 = fiber */
        movq    $0, -40(%rax)             /* r13 */
        movq    $0, -48(%rax)             /* r14 */
        movq    $0, -56(%rax)             /* r15 */
        subq    $56, %rax
        ret
        .cfi_endproc
        .size   wv__context_init, .-wv__context_init
#endif
        .section .note.GNU-stack,"",@progbits
