/*
 * Private helpers shared by the JSON writer (json.c) and reader (parse.c):
 * finding the next byte of a string that needs attention, 8 bytes at a
 * time, checking one UTF-8 sequence, and the "C" locale for number text.
 */
#ifndef WEAVE_JSON_INTERNAL_H
#define WEAVE_JSON_INTERNAL_H

#include <locale.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "weave/json.h"

#pragma GCC visibility push(hidden)

/* 1 for bytes that end a run of plain ASCII: controls, '"', '\\' and every
 * byte >= 0x80 (UTF-8 is checked sequence by sequence). */
#define JSON_SPECIAL(c) ((c) < 0x20 || (c) == '"' || (c) == '\\' || (c) >= 0x80)
#define JSON_SPECIAL4(c)                                                                           \
    JSON_SPECIAL(c), JSON_SPECIAL((c) + 1), JSON_SPECIAL((c) + 2), JSON_SPECIAL((c) + 3)
#define JSON_SPECIAL16(c)                                                                          \
    JSON_SPECIAL4(c), JSON_SPECIAL4((c) + 4), JSON_SPECIAL4((c) + 8), JSON_SPECIAL4((c) + 12)
static const unsigned char json_special[256] = {
    JSON_SPECIAL16(0x00), JSON_SPECIAL16(0x10), JSON_SPECIAL16(0x20), JSON_SPECIAL16(0x30),
    JSON_SPECIAL16(0x40), JSON_SPECIAL16(0x50), JSON_SPECIAL16(0x60), JSON_SPECIAL16(0x70),
    JSON_SPECIAL16(0x80), JSON_SPECIAL16(0x90), JSON_SPECIAL16(0xa0), JSON_SPECIAL16(0xb0),
    JSON_SPECIAL16(0xc0), JSON_SPECIAL16(0xd0), JSON_SPECIAL16(0xe0), JSON_SPECIAL16(0xf0),
};

#define JSON_ONES  UINT64_C(0x0101010101010101)
#define JSON_HIGHS UINT64_C(0x8080808080808080)

/* Whether any of the 8 bytes in x is special. Exact as a yes/no (a borrow
 * can only mark bytes above a byte that really matched). */
static inline bool json_word_has_special(uint64_t x)
{
    uint64_t control = (x - JSON_ONES * 0x20) & ~x;
    uint64_t q = x ^ (JSON_ONES * '"');
    uint64_t quote = (q - JSON_ONES) & ~q;
    uint64_t s = x ^ (JSON_ONES * '\\');
    uint64_t backslash = (s - JSON_ONES) & ~s;
    return ((control | quote | backslash | x) & JSON_HIGHS) != 0;
}

/* The first special byte in [p, end), or end. */
static inline const unsigned char *json_skip_plain(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        if (json_word_has_special(x))
            break;
        p += 8;
    }
    while (p < end && !json_special[*p])
        p++;
    return p;
}

/* The length of the valid UTF-8 sequence at p (2..4), or minus the length
 * of its maximal invalid subpart (-1..-3): the bytes one U+FFFD replaces
 * (Unicode's "substitution of maximal subparts", as browsers do). p[0] is
 * >= 0x80. */
static inline int json_utf8_sequence(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    int need;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* past U+10FFFF */
    } else {
        return -1; /* continuation byte, C0, C1, F5..FF */
    }
    for (int i = 1; i < need; i++) {
        if (p + i >= end || p[i] < lo || p[i] > hi)
            return -i;
        lo = 0x80;
        hi = 0xbf;
    }
    return need;
}

/* The "C" locale, made once (NULL if that failed): JSON numbers use '.'
 * whatever LC_NUMERIC the program set. Defined in parse.c. */
locale_t json_c_locale(void);

#pragma GCC visibility pop

#endif
