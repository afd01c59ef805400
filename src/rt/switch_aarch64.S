/*
 * Fiber context switch for aarch64 (AAPCS64).
 *
 * Saves the callee-saved registers x19-x28, the frame pointer x29, the link
 * register x30 and the low halves d8-d15 of v8-v15; the switch is an
 * ordinary call for the compiler, so nothing else is live. FPCR is shared by
 * the fibers of a thread.
 */
#if defined(__aarch64__)
        .text

/* void wv__switch(void **save, void *next) */
        .globl  wv__switch
        .hidden wv__switch
        .type   wv__switch, %function
        .p2align 4
wv__switch:
        sub     sp, sp, #160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x2, sp
        str     x2, [x0]
        mov     sp, x1
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        ret
        .size   wv__switch, .-wv__switch

/* First code run on a new stack: wv__context_init left the fiber in x19. */
        .globl  wv__fiber_start
        .hidden wv__fiber_start
        .type   wv__fiber_start, %function
        .p2align 4
wv__fiber_start:
        mov     x29, #0
        mov     x0, x19
        bl      wv__fiber_main
        brk     #0
        .size   wv__fiber_start, .-wv__fiber_start

/* void *wv__context_init(void *top, wv_fiber *fiber): a 160-byte frame as
 * wv__switch stores it, all zero but x19 = fiber and x30 = wv__fiber_start. */
        .globl  wv__context_init
        .hidden wv__context_init
        .type   wv__context_init, %function
        .p2align 4
wv__context_init:
        and     x0, x0, #~15
        sub     x0, x0, #160
        mov     x2, x0
        add     x3, x0, #160
1:      str     xzr, [x2], #8
        cmp     x2, x3
        b.lo    1b
        str     x1, [x0, #0]              /* x19 */
        adr     x2, wv__fiber_start
        str     x2, [x0, #88]             /* x30 */
        ret
        .size   wv__context_init, .-wv__context_init
#endif
        .section .note.GNU-stack,"",@progbits
