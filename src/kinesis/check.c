/*
 * What the Kinesis client checks before it sends anything: stream names,
 * shard ids, sequence numbers, partition keys, explicit hash keys and
 * record sizes, by the service's rules (include/weave/kinesis.h). A bad
 * one is -EINVAL with the reason, and no request leaves: the service
 * would refuse it anyway, after a round trip, and a record that slipped
 * through would fail alone inside a PutRecords.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kinesis/kinesis_internal.h"

/* 2^128 - 1: the largest hash key */
static const char max_hash_key[] = "340282366920938463463374607431768211455";

static void kinesis_what(char *what, size_t cap, const char *op, const char *stream)
{
    snprintf(what, cap, "Kinesis %s%s%.*s", op, stream ? " " : "", KINESIS_MAX_NAME,
             stream ? stream : "");
}

int kinesis_begin(const wv_kinesis *k, const char *op, const char *stream, char *what, size_t cap)
{
    kinesis_what(what, cap, op, stream);
    int rc = kinesis_check_stream(stream, what);
    if (rc == 0 && !k)
        rc = wv_fail(-EINVAL, "%s: no client", what);
    return rc;
}

/* 1 to 128 of A-Z a-z 0-9 _ . - */
static bool name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n >= 1 && n <= KINESIS_MAX_NAME;
}

int kinesis_check_stream(const char *stream, const char *what)
{
    if (!stream || !name_ok(stream))
        return wv_fail(-EINVAL, "%s: a stream name is 1 to %d letters, digits, '_', '.' and '-'",
                       what, KINESIS_MAX_NAME);
    return 0;
}

int kinesis_check_shard_id(const char *shard_id, const char *what)
{
    if (!shard_id || !name_ok(shard_id))
        return wv_fail(-EINVAL, "%s: a shard id is 1 to %d letters, digits, '_', '.' and '-'", what,
                       KINESIS_MAX_NAME);
    return 0;
}

/* A decimal without leading zeros ("0" alone), 1 to max digits. */
static bool decimal_ok(const char *s, size_t max)
{
    size_t n = strspn(s, "0123456789");
    return n >= 1 && n <= max && s[n] == '\0' && (s[0] != '0' || n == 1);
}

int kinesis_check_sequence(const char *seq, const char *what)
{
    if (!seq || !decimal_ok(seq, WV_KINESIS_SEQUENCE_SIZE - 1))
        return wv_fail(-EINVAL, "%s: a sequence number is a decimal of 1 to %d digits", what,
                       WV_KINESIS_SEQUENCE_SIZE - 1);
    return 0;
}

/* Unicode characters in valid UTF-8 (no overlong forms, no surrogates,
 * nothing past U+10FFFF), or -1. */
static long utf8_chars(const unsigned char *p)
{
    long chars = 0;
    while (*p) {
        unsigned c = *p;
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (!len)
            return -1;
        unsigned cp = len == 1 ? c : c & (0x7Fu >> len);
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return -1;
            cp = cp << 6 | (p[i] & 0x3Fu);
        }
        static const unsigned least[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        p += len;
        chars++;
    }
    return chars;
}

int kinesis_check_entry(const wv_kinesis *k, const wv_kinesis_entry *e, long index,
                        const char *what)
{
    char which[40] = "";
    if (index >= 0)
        snprintf(which, sizeof which, " record %ld", index);
    if (!e)
        return wv_fail(-EINVAL, "%s:%s: no record", what, which);
    long chars = e->partition_key ? utf8_chars((const unsigned char *)e->partition_key) : -1;
    if (chars < 1 || chars > KINESIS_MAX_KEY_CHARS)
        return wv_fail(-EINVAL, "%s:%s: a partition key is 1 to %d characters of valid UTF-8", what,
                       which, KINESIS_MAX_KEY_CHARS);
    if (e->len && !e->data)
        return wv_fail(-EINVAL, "%s:%s: %zu bytes of data but no data", what, which, e->len);
    size_t key = strlen(e->partition_key);
    if (e->len > k->max_record || key > k->max_record - e->len)
        return wv_fail(-EINVAL,
                       "%s:%s: %zu bytes of data and %zu of partition key pass the record "
                       "limit of %zu",
                       what, which, e->len, key, k->max_record);
    const char *h = e->explicit_hash_key;
    if (h && (!decimal_ok(h, sizeof max_hash_key - 1) ||
              (strlen(h) == sizeof max_hash_key - 1 && strcmp(h, max_hash_key) > 0)))
        return wv_fail(-EINVAL, "%s:%s: an explicit hash key is a decimal from 0 to 2^128 - 1",
                       what, which);
    return 0;
}
