/*
 * What every libFuzzer target here shares: the entry point's prototype, a
 * CHECK that aborts (libFuzzer records the input as a crash), and copying
 * an input to a heap block of exactly its size, so AddressSanitizer sees a
 * read one byte past the end.
 */
#ifndef WEAVE_FUZZ_UTIL_H
#define WEAVE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* A malloc'ed copy of p[0..n), exactly n bytes long (1 for n = 0). */
static inline void *copy_exact(const void *p, size_t n)
{
    void *b = malloc(n ? n : 1);
    CHECK(b);
    if (n)
        memcpy(b, p, n);
    return b;
}

#endif
