/*
 * The AMQP 0-9-1 frame reader and the field-table scanner (see frame.h),
 * and the public table readers built on the scanner (wv_amqp_table_next,
 * wv_amqp_array_next, wv_amqp_table_get).
 *
 * Field kinds are the ones librabbitmq 0.11 reads (amqp_field_value_kind_t),
 * which is also what RabbitMQ writes: t b B s u I i l L f d D S x A T F V.
 * The scanner is stricter than that codec in two ways, both on purpose: a
 * nested table or array must end inside its parent, and nesting stops at
 * AMQP_TABLE_MAX_DEPTH.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "amqp/frame.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static ssize_t fail(char *why, int rc, const char *text)
{
    if (why)
        snprintf(why, AMQP_WHY, "%s", text);
    return rc;
}

/* ------------------------------------------------------------- frames */

ssize_t amqp_frame_read(const uint8_t *p, size_t n, uint32_t frame_max, amqp_frame *f, char *why)
{
    if (n < 1)
        return 0;
    uint8_t type = p[0];
    if (type == 'A')
        return fail(why, -EPROTO,
                    "a protocol header where a frame should start: the broker refused AMQP 0-9-1");
    if (type != AMQP_FRAME_METHOD_TYPE && type != AMQP_FRAME_HEADER_TYPE &&
        type != AMQP_FRAME_BODY_TYPE && type != AMQP_FRAME_HEARTBEAT_TYPE) {
        if (why)
            snprintf(why, AMQP_WHY, "a frame of unknown type %u", type);
        return -EPROTO;
    }
    if (n < 3)
        return 0;
    uint16_t channel = be16(p + 1);
    if (type == AMQP_FRAME_HEARTBEAT_TYPE && channel != 0)
        return fail(why, -EPROTO, "a heartbeat frame off channel 0");
    if (n < 7)
        return 0;
    uint32_t size = be32(p + 3);
    if (frame_max >= AMQP_FRAME_OVERHEAD && size > frame_max - AMQP_FRAME_OVERHEAD) {
        if (why)
            snprintf(why, AMQP_WHY, "a frame of %llu bytes, over the frame_max of %u",
                     (unsigned long long)size + AMQP_FRAME_OVERHEAD, frame_max);
        return -EMSGSIZE;
    }
    if (type == AMQP_FRAME_HEARTBEAT_TYPE && size != 0)
        return fail(why, -EPROTO, "a heartbeat frame with a payload");
    if (type == AMQP_FRAME_METHOD_TYPE && size < 4)
        return fail(why, -EPROTO, "a method frame shorter than a method id");
    if (type == AMQP_FRAME_HEADER_TYPE && size < 14)
        return fail(why, -EPROTO, "a content header frame shorter than its fixed fields");
    if (n - 7 < (size_t)size + 1)
        return 0;
    if (p[7 + (size_t)size] != AMQP_FRAME_END_BYTE)
        return fail(why, -EPROTO, "a frame whose end byte is not 0xCE");
    f->type = type;
    f->channel = channel;
    f->payload = p + 7;
    f->size = size;
    return (ssize_t)size + AMQP_FRAME_OVERHEAD;
}

uint32_t amqp_frame_method_id(const amqp_frame *f)
{
    return be32(f->payload);
}

/* ------------------------------------------------------------- tables */

static ssize_t table_body_check(const uint8_t *p, size_t n, int depth);
static ssize_t array_body_check(const uint8_t *p, size_t n, int depth);

/* A 4-byte length and that many bytes, inside p[0..n): the total, or -1. */
static ssize_t long_bytes(const uint8_t *p, size_t n)
{
    if (n < 4)
        return -1;
    uint32_t len = be32(p);
    if (len > n - 4)
        return -1;
    return (ssize_t)len + 4;
}

ssize_t amqp_field_read(const uint8_t *p, size_t n, int depth, wv_amqp_field *f)
{
    if (n < 1)
        return -EPROTO;
    uint8_t kind = p[0];
    const uint8_t *v = p + 1;
    size_t room = n - 1;
    size_t need;
    memset(&f->b, 0, sizeof *f - offsetof(wv_amqp_field, b));
    switch (kind) {
    case 't':
    case 'b':
    case 'B':
        need = 1;
        break;
    case 's':
    case 'u':
        need = 2;
        break;
    case 'I':
    case 'i':
    case 'f':
        need = 4;
        break;
    case 'l':
    case 'L':
    case 'd':
    case 'T':
        need = 8;
        break;
    case 'D':
        need = 5;
        break;
    case 'V':
        need = 0;
        break;
    case 'S':
    case 'x':
    case 'F':
    case 'A': {
        ssize_t len = long_bytes(v, room);
        if (len < 0)
            return -EPROTO;
        need = (size_t)len;
        break;
    }
    default:
        return -EPROTO;
    }
    if (need > room)
        return -EPROTO;
    switch (kind) {
    case 't':
        f->type = WV_AMQP_FIELD_BOOL;
        f->b = v[0] != 0;
        break;
    case 'b':
        f->type = WV_AMQP_FIELD_INT;
        f->i = (int8_t)v[0];
        break;
    case 'B':
        f->type = WV_AMQP_FIELD_INT;
        f->i = v[0];
        break;
    case 's':
        f->type = WV_AMQP_FIELD_INT;
        f->i = (int16_t)be16(v);
        break;
    case 'u':
        f->type = WV_AMQP_FIELD_INT;
        f->i = be16(v);
        break;
    case 'I':
        f->type = WV_AMQP_FIELD_INT;
        f->i = (int32_t)be32(v);
        break;
    case 'i':
        f->type = WV_AMQP_FIELD_INT;
        f->i = be32(v);
        break;
    case 'l':
        f->type = WV_AMQP_FIELD_INT;
        f->i = (int64_t)be64(v);
        break;
    case 'L': {
        uint64_t u = be64(v);
        if (u <= INT64_MAX) {
            f->type = WV_AMQP_FIELD_INT;
            f->i = (int64_t)u;
        } else {
            f->type = WV_AMQP_FIELD_DOUBLE;
            f->d = (double)u;
        }
        break;
    }
    case 'f': {
        uint32_t bits = be32(v);
        float x;
        memcpy(&x, &bits, sizeof x);
        f->type = WV_AMQP_FIELD_DOUBLE;
        f->d = x;
        break;
    }
    case 'd': {
        uint64_t bits = be64(v);
        memcpy(&f->d, &bits, sizeof f->d);
        f->type = WV_AMQP_FIELD_DOUBLE;
        break;
    }
    case 'D':
        f->type = WV_AMQP_FIELD_DOUBLE;
        f->d = (int32_t)be32(v + 1) / pow(10, v[0]);
        break;
    case 'T':
        f->type = WV_AMQP_FIELD_TIMESTAMP;
        f->i = (int64_t)be64(v);
        break;
    case 'V':
        f->type = WV_AMQP_FIELD_VOID;
        break;
    case 'S':
    case 'x':
        f->type = kind == 'S' ? WV_AMQP_FIELD_STRING : WV_AMQP_FIELD_BYTES;
        f->s = (wv_str){(const char *)v + 4, need - 4};
        break;
    case 'F':
    case 'A': {
        if (depth >= AMQP_TABLE_MAX_DEPTH)
            return -EPROTO;
        ssize_t inner = kind == 'F' ? table_body_check(v + 4, need - 4, depth + 1)
                                    : array_body_check(v + 4, need - 4, depth + 1);
        if (inner < 0)
            return inner;
        f->type = kind == 'F' ? WV_AMQP_FIELD_TABLE : WV_AMQP_FIELD_ARRAY;
        f->s = (wv_str){(const char *)v + 4, need - 4};
        break;
    }
    }
    return (ssize_t)(1 + need);
}

/* One table entry at p[0..n): its name, then its value. */
static ssize_t entry_read(const uint8_t *p, size_t n, int depth, wv_amqp_field *f)
{
    if (n < 1 || p[0] > n - 1)
        return -EPROTO;
    size_t name_len = p[0];
    ssize_t len = amqp_field_read(p + 1 + name_len, n - 1 - name_len, depth, f);
    if (len < 0)
        return len;
    f->name = (wv_str){(const char *)p + 1, name_len};
    return (ssize_t)(1 + name_len) + len;
}

/* The entries of a table (its contents, after the length): n, or -EPROTO. */
static ssize_t table_body_check(const uint8_t *p, size_t n, int depth)
{
    wv_amqp_field f;
    for (size_t at = 0; at < n;) {
        ssize_t len = entry_read(p + at, n - at, depth, &f);
        if (len < 0)
            return len;
        at += (size_t)len;
    }
    return (ssize_t)n;
}

static ssize_t array_body_check(const uint8_t *p, size_t n, int depth)
{
    wv_amqp_field f;
    for (size_t at = 0; at < n;) {
        ssize_t len = amqp_field_read(p + at, n - at, depth, &f);
        if (len < 0)
            return len;
        at += (size_t)len;
    }
    return (ssize_t)n;
}

ssize_t amqp_table_check(const uint8_t *p, size_t n, char *why)
{
    ssize_t len = long_bytes(p, n);
    if (len < 0)
        return fail(why, -EPROTO, "a field table longer than what holds it");
    if (table_body_check(p + 4, (size_t)len - 4, 0) < 0)
        return fail(why, -EPROTO, "a malformed field table (or one nested too deep)");
    return len;
}

int amqp_props_headers(const uint8_t *p, size_t n, wv_str *headers, char *why)
{
    *headers = (wv_str){"", 0};
    size_t at = 0;
    uint32_t flags = 0;
    int words = 0;
    uint16_t word;
    do {
        if (n - at < 2)
            return (int)fail(why, -EPROTO, "content properties cut short");
        word = be16(p + at);
        at += 2;
        if (words++ == 0)
            flags = word;
    } while (word & 1);
    /* content-type, content-encoding: short strings before the headers */
    for (int bit = 15; bit >= 14; bit--) {
        if (!(flags & (1u << bit)))
            continue;
        if (n - at < 1 || p[at] > n - at - 1)
            return (int)fail(why, -EPROTO, "content properties cut short");
        at += 1 + (size_t)p[at];
    }
    if (!(flags & (1u << 13)))
        return 0;
    ssize_t len = amqp_table_check(p + at, n - at, why);
    if (len < 0)
        return (int)len;
    *headers = (wv_str){(const char *)p + at + 4, (size_t)len - 4};
    return 0;
}

/* ----------------------------------------------------- public readers */

int wv_amqp_table_next(wv_str table, size_t *pos, wv_amqp_field *f)
{
    if (*pos >= table.n)
        return 0;
    ssize_t len = entry_read((const uint8_t *)table.p + *pos, table.n - *pos, 0, f);
    if (len < 0)
        return wv_fail(-EPROTO, "AMQP: a malformed field table at byte %zu", *pos);
    *pos += (size_t)len;
    return 1;
}

int wv_amqp_array_next(wv_str array, size_t *pos, wv_amqp_field *f)
{
    if (*pos >= array.n)
        return 0;
    ssize_t len = amqp_field_read((const uint8_t *)array.p + *pos, array.n - *pos, 0, f);
    if (len < 0)
        return wv_fail(-EPROTO, "AMQP: a malformed field array at byte %zu", *pos);
    f->name = (wv_str){"", 0};
    *pos += (size_t)len;
    return 1;
}

int wv_amqp_table_get(wv_str table, const char *name, wv_amqp_field *f)
{
    size_t pos = 0;
    int rc;
    while ((rc = wv_amqp_table_next(table, &pos, f)) == 1)
        if (wv_str_eq_cstr(f->name, name))
            return 1;
    return rc;
}
