/*
 * Writing frames: methods through librabbitmq's generated encoder
 * (amqp_encode_method) inside our own 7-byte frame header and end byte,
 * whole messages (basic.publish, the content header with
 * amqp_encode_properties, body frames), and field tables from the public
 * wv_amqp_field form through amqp_encode_table. Also the small facts the
 * other files share: reply codes as errno values, which methods a broker
 * may send, how a returned message is matched to its publish.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "amqp/amqp_internal.h"

int amqp_reply_errno(uint16_t code)
{
    switch (code) {
    case AMQP_NOT_FOUND:
        return -ENOENT;
    case AMQP_ACCESS_REFUSED:
    case AMQP_NOT_ALLOWED:
        return -EACCES;
    case AMQP_RESOURCE_LOCKED:
        return -EBUSY;
    case AMQP_PRECONDITION_FAILED:
        return -EINVAL;
    default:
        return -EIO;
    }
}

amqp_bytes_t amqp_str(const char *s)
{
    return s ? amqp_cstring_bytes(s) : amqp_empty_bytes;
}

static void put_header(uint8_t *p, uint8_t type, uint16_t channel, uint32_t size)
{
    p[0] = type;
    p[1] = (uint8_t)(channel >> 8);
    p[2] = (uint8_t)channel;
    p[3] = (uint8_t)(size >> 24);
    p[4] = (uint8_t)(size >> 16);
    p[5] = (uint8_t)(size >> 8);
    p[6] = (uint8_t)size;
}

/* Encode with `encode` into a frame of `type` appended to b: reserve room
 * for the largest payload frame_max allows, encode in place, then write
 * the header and end byte around what it took. */
typedef int encode_fn(void *what, uint32_t id, amqp_bytes_t into);

static int put_encoded(wv_buf *b, uint32_t frame_max, uint8_t type, uint16_t channel, uint32_t id,
                       void *what, encode_fn *encode, const uint8_t *prefix, size_t prefix_len)
{
    size_t room = frame_max - AMQP_FRAME_OVERHEAD;
    if (wv_buf_reserve(b, room + AMQP_FRAME_OVERHEAD) < 0)
        return -ENOMEM;
    uint8_t *frame = (uint8_t *)b->p + b->n;
    memcpy(frame + 7, prefix, prefix_len);
    int len = encode(what, id, (amqp_bytes_t){room - prefix_len, frame + 7 + prefix_len});
    if (len < 0)
        return len == AMQP_STATUS_NO_MEMORY ? -ENOMEM : -EMSGSIZE;
    size_t size = prefix_len + (size_t)len;
    put_header(frame, type, channel, (uint32_t)size);
    frame[7 + size] = AMQP_FRAME_END_BYTE;
    b->n += size + AMQP_FRAME_OVERHEAD;
    return 0;
}

static int encode_method(void *what, uint32_t id, amqp_bytes_t into)
{
    return amqp_encode_method(id, what, into);
}

static int encode_props(void *what, uint32_t id, amqp_bytes_t into)
{
    return amqp_encode_properties((uint16_t)id, what, into);
}

int amqp_put_method(wv_buf *b, uint32_t frame_max, uint16_t channel, uint32_t id, void *method)
{
    uint8_t prefix[4] = {(uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    return put_encoded(b, frame_max, AMQP_FRAME_METHOD_TYPE, channel, id, method, encode_method,
                       prefix, sizeof prefix);
}

int amqp_put_heartbeat(wv_buf *b)
{
    static const uint8_t beat[8] = {AMQP_FRAME_HEARTBEAT_TYPE, 0, 0, 0, 0, 0, 0,
                                    AMQP_FRAME_END_BYTE};
    return wv_buf_append(b, beat, sizeof beat);
}

/* ------------------------------------------------------------- tables */

static int field_value(amqp_pool_t *pool, const wv_amqp_field *f, int depth, amqp_field_value_t *v);

/* fields[0..n) as a table (named entries) when table is set, else as an
 * array (values only). */
static int from_fields(amqp_pool_t *pool, const wv_amqp_field *fields, int n, int depth,
                       amqp_table_t *table, amqp_array_t *array)
{
    if (n < 0 || (n > 0 && !fields))
        return -EINVAL;
    size_t each = table ? sizeof *table->entries : sizeof *array->entries;
    void *entries = n ? amqp_pool_alloc(pool, each * (size_t)n) : NULL;
    if (n && !entries)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        amqp_field_value_t *v = &((amqp_field_value_t *)entries)[i];
        if (table) {
            const wv_str *name = &fields[i].name;
            if (name->n > 255 || (name->n && !name->p))
                return -EINVAL;
            amqp_table_entry_t *e = &((amqp_table_entry_t *)entries)[i];
            e->key = (amqp_bytes_t){name->n, (void *)name->p};
            v = &e->value;
        }
        int rc = field_value(pool, &fields[i], depth, v);
        if (rc < 0)
            return rc;
    }
    if (table) {
        table->num_entries = n;
        table->entries = entries;
    } else {
        array->num_entries = n;
        array->entries = entries;
    }
    return 0;
}

static int field_value(amqp_pool_t *pool, const wv_amqp_field *f, int depth, amqp_field_value_t *v)
{
    switch (f->type) {
    case WV_AMQP_FIELD_VOID:
        v->kind = AMQP_FIELD_KIND_VOID;
        return 0;
    case WV_AMQP_FIELD_BOOL:
        v->kind = AMQP_FIELD_KIND_BOOLEAN;
        v->value.boolean = f->b;
        return 0;
    case WV_AMQP_FIELD_INT:
        if (f->i >= INT32_MIN && f->i <= INT32_MAX) {
            v->kind = AMQP_FIELD_KIND_I32;
            v->value.i32 = (int32_t)f->i;
        } else {
            v->kind = AMQP_FIELD_KIND_I64;
            v->value.i64 = f->i;
        }
        return 0;
    case WV_AMQP_FIELD_DOUBLE:
        v->kind = AMQP_FIELD_KIND_F64;
        v->value.f64 = f->d;
        return 0;
    case WV_AMQP_FIELD_TIMESTAMP:
        v->kind = AMQP_FIELD_KIND_TIMESTAMP;
        v->value.u64 = (uint64_t)f->i;
        return 0;
    case WV_AMQP_FIELD_STRING:
    case WV_AMQP_FIELD_BYTES:
        if (f->s.n && !f->s.p)
            return -EINVAL;
        v->kind = f->type == WV_AMQP_FIELD_STRING ? AMQP_FIELD_KIND_UTF8 : AMQP_FIELD_KIND_BYTES;
        v->value.bytes = (amqp_bytes_t){f->s.n, (void *)f->s.p};
        return 0;
    case WV_AMQP_FIELD_TABLE:
        if (depth >= AMQP_TABLE_MAX_DEPTH)
            return -EINVAL;
        v->kind = AMQP_FIELD_KIND_TABLE;
        return from_fields(pool, f->fields, f->nfields, depth + 1, &v->value.table, NULL);
    case WV_AMQP_FIELD_ARRAY:
        if (depth >= AMQP_TABLE_MAX_DEPTH)
            return -EINVAL;
        v->kind = AMQP_FIELD_KIND_ARRAY;
        return from_fields(pool, f->fields, f->nfields, depth + 1, NULL, &v->value.array);
    }
    return -EINVAL;
}

int amqp_table_from_fields(amqp_pool_t *pool, const wv_amqp_field *fields, int n, amqp_table_t *out)
{
    return from_fields(pool, fields, n, 0, out, NULL);
}

int amqp_table_encode(wv_buf *b, amqp_pool_t *pool, const wv_amqp_field *fields, int n)
{
    amqp_table_t t;
    int rc = amqp_table_from_fields(pool, fields, n, &t);
    if (rc < 0)
        return rc;
    for (size_t room = 4096;; room *= 2) {
        if (room > 64 * 1024 * 1024)
            return -EMSGSIZE;
        if (wv_buf_reserve(b, room) < 0)
            return -ENOMEM;
        size_t off = 0;
        rc = amqp_encode_table((amqp_bytes_t){room, b->p + b->n}, &t, &off);
        if (rc == AMQP_STATUS_OK) {
            b->n += off;
            return 0;
        }
        if (rc != AMQP_STATUS_TABLE_TOO_BIG && rc != AMQP_STATUS_BAD_AMQP_DATA)
            return -EINVAL;
    }
}

int amqp_table_decode(amqp_pool_t *pool, const wv_buf *b, amqp_table_t *out)
{
    if (b->n == 0) {
        *out = amqp_empty_table;
        return 0;
    }
    size_t off = 0;
    return amqp_decode_table((amqp_bytes_t){b->n, b->p}, pool, out, &off) == AMQP_STATUS_OK
               ? 0
               : -EPROTO;
}

/* ------------------------------------------------------------ publish */

static void prop_str(amqp_basic_properties_t *p, amqp_flags_t flag, amqp_bytes_t *field,
                     const char *s)
{
    if (!s)
        return;
    p->_flags |= flag;
    *field = amqp_cstring_bytes(s);
}

int amqp_put_publish(wv_buf *b, amqp_pool_t *pool, uint32_t frame_max, uint16_t channel,
                     const char *exchange, const char *routing_key, wv_str body,
                     const wv_amqp_publish_opts *o)
{
    static const wv_amqp_publish_opts none = {0};
    if (!o)
        o = &none;
    if (strlen(exchange) > 255 || strlen(routing_key) > 255)
        return -EINVAL;
    amqp_basic_publish_t pub = {
        .exchange = amqp_cstring_bytes(exchange),
        .routing_key = amqp_cstring_bytes(routing_key),
        .mandatory = o->mandatory,
    };
    amqp_basic_properties_t p = {
        ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
        .delivery_mode = o->transient ? 1 : 2,
    };
    prop_str(&p, AMQP_BASIC_CONTENT_TYPE_FLAG, &p.content_type, o->content_type);
    prop_str(&p, AMQP_BASIC_CONTENT_ENCODING_FLAG, &p.content_encoding, o->content_encoding);
    prop_str(&p, AMQP_BASIC_CORRELATION_ID_FLAG, &p.correlation_id, o->correlation_id);
    prop_str(&p, AMQP_BASIC_REPLY_TO_FLAG, &p.reply_to, o->reply_to);
    prop_str(&p, AMQP_BASIC_EXPIRATION_FLAG, &p.expiration, o->expiration);
    prop_str(&p, AMQP_BASIC_MESSAGE_ID_FLAG, &p.message_id, o->message_id);
    prop_str(&p, AMQP_BASIC_TYPE_FLAG, &p.type, o->type);
    prop_str(&p, AMQP_BASIC_USER_ID_FLAG, &p.user_id, o->user_id);
    prop_str(&p, AMQP_BASIC_APP_ID_FLAG, &p.app_id, o->app_id);
    if (o->priority) {
        p._flags |= AMQP_BASIC_PRIORITY_FLAG;
        p.priority = o->priority;
    }
    if (o->timestamp) {
        p._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        p.timestamp = (uint64_t)o->timestamp;
    }
    if (o->nheaders) {
        int rc = amqp_table_from_fields(pool, o->headers, o->nheaders, &p.headers);
        if (rc < 0)
            return rc;
        p._flags |= AMQP_BASIC_HEADERS_FLAG;
    }
    size_t start = b->n;
    int rc = amqp_put_method(b, frame_max, channel, AMQP_BASIC_PUBLISH_METHOD, &pub);
    if (rc == 0) {
        uint64_t size = body.n;
        uint8_t prefix[12] = {0, AMQP_BASIC_CLASS, 0, 0};
        for (int i = 0; i < 8; i++)
            prefix[4 + i] = (uint8_t)(size >> (56 - 8 * i));
        rc = put_encoded(b, frame_max, AMQP_FRAME_HEADER_TYPE, channel, AMQP_BASIC_CLASS, &p,
                         encode_props, prefix, sizeof prefix);
    }
    size_t chunk = frame_max - AMQP_FRAME_OVERHEAD;
    for (size_t at = 0; rc == 0 && at < body.n; at += chunk) {
        size_t len = body.n - at < chunk ? body.n - at : chunk;
        rc = wv_buf_reserve(b, len + AMQP_FRAME_OVERHEAD);
        if (rc < 0)
            break;
        uint8_t *frame = (uint8_t *)b->p + b->n;
        put_header(frame, AMQP_FRAME_BODY_TYPE, channel, (uint32_t)len);
        memcpy(frame + 7, body.p + at, len);
        frame[7 + len] = AMQP_FRAME_END_BYTE;
        b->n += len + AMQP_FRAME_OVERHEAD;
    }
    if (rc < 0)
        b->n = start; /* all or nothing */
    return rc;
}

/* ------------------------------------------------------------ the rest */

bool amqp_server_method(uint32_t id)
{
    switch (id) {
    case AMQP_CONNECTION_START_METHOD:
    case AMQP_CONNECTION_SECURE_METHOD:
    case AMQP_CONNECTION_TUNE_METHOD:
    case AMQP_CONNECTION_OPEN_OK_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_OK_METHOD:
    case AMQP_CONNECTION_BLOCKED_METHOD:
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
    case AMQP_CHANNEL_OPEN_OK_METHOD:
    case AMQP_CHANNEL_FLOW_METHOD:
    case AMQP_CHANNEL_FLOW_OK_METHOD:
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CHANNEL_CLOSE_OK_METHOD:
    case AMQP_EXCHANGE_DECLARE_OK_METHOD:
    case AMQP_EXCHANGE_DELETE_OK_METHOD:
    case AMQP_EXCHANGE_BIND_OK_METHOD:
    case AMQP_EXCHANGE_UNBIND_OK_METHOD:
    case AMQP_QUEUE_DECLARE_OK_METHOD:
    case AMQP_QUEUE_BIND_OK_METHOD:
    case AMQP_QUEUE_PURGE_OK_METHOD:
    case AMQP_QUEUE_DELETE_OK_METHOD:
    case AMQP_QUEUE_UNBIND_OK_METHOD:
    case AMQP_BASIC_QOS_OK_METHOD:
    case AMQP_BASIC_CONSUME_OK_METHOD:
    case AMQP_BASIC_CANCEL_METHOD:
    case AMQP_BASIC_CANCEL_OK_METHOD:
    case AMQP_BASIC_RETURN_METHOD:
    case AMQP_BASIC_DELIVER_METHOD:
    case AMQP_BASIC_GET_OK_METHOD:
    case AMQP_BASIC_GET_EMPTY_METHOD:
    case AMQP_BASIC_ACK_METHOD:
    case AMQP_BASIC_NACK_METHOD:
    case AMQP_BASIC_RECOVER_OK_METHOD:
    case AMQP_CONFIRM_SELECT_OK_METHOD:
    case AMQP_TX_SELECT_OK_METHOD:
    case AMQP_TX_COMMIT_OK_METHOD:
    case AMQP_TX_ROLLBACK_OK_METHOD:
        return true;
    default:
        return false;
    }
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t amqp_publish_hash(const char *exchange, size_t elen, const char *rk, size_t rlen,
                           wv_str body)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv(h, exchange, elen);
    h = fnv(h, "", 1);
    h = fnv(h, rk, rlen);
    h = fnv(h, "", 1);
    return fnv(h, body.p, body.n);
}
