/*
 * weave's RabbitMQ client (AMQP 0-9-1). This first part holds AMQP field
 * tables: how queue and exchange arguments and message headers are written
 * (wv_amqp_field, WV_AMQP_INT("x-message-ttl", 60000), ...) and read.
 *
 * Errors are negative errno values with the detail in wv_errmsg().
 */
#ifndef WEAVE_AMQP_H
#define WEAVE_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weave/net.h"
#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================ field tables */

/*
 * A field of an AMQP table (queue arguments, message headers) or an
 * element of an array. To send one, fill name, type and the value member
 * (the macros below do); a table or array is fields[0..nfields). When
 * read from a message (wv_amqp_table_next) every slice points into the
 * message, and a nested table or array comes as its encoded bytes in s,
 * to read with wv_amqp_table_next / wv_amqp_array_next in turn.
 */
typedef enum wv_amqp_type {
    WV_AMQP_FIELD_VOID,      /* no value */
    WV_AMQP_FIELD_BOOL,      /* b */
    WV_AMQP_FIELD_INT,       /* i: every integer kind (sent as 32 bits when it fits, else 64) */
    WV_AMQP_FIELD_DOUBLE,    /* d: float, double and decimal kinds */
    WV_AMQP_FIELD_STRING,    /* s: a long string (text) */
    WV_AMQP_FIELD_BYTES,     /* s: a byte array */
    WV_AMQP_FIELD_TIMESTAMP, /* i: seconds since the epoch */
    WV_AMQP_FIELD_TABLE,     /* fields[0..nfields) to send; s (encoded) when read */
    WV_AMQP_FIELD_ARRAY,     /* fields[0..nfields) to send (names ignored); s when read */
} wv_amqp_type;

typedef struct wv_amqp_field {
    wv_str name;
    wv_amqp_type type;
    bool b;
    int64_t i;
    double d;
    wv_str s;
    const struct wv_amqp_field *fields;
    int nfields;
} wv_amqp_field;

#define WV_AMQP_NAME_(n) ((wv_str){(n), strlen(n)})
#define WV_AMQP_INT(n, v)                                                                          \
    ((wv_amqp_field){.name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_INT, .i = (v)})
#define WV_AMQP_BOOL(n, v)                                                                         \
    ((wv_amqp_field){.name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_BOOL, .b = (v)})
#define WV_AMQP_DOUBLE(n, v)                                                                       \
    ((wv_amqp_field){.name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_DOUBLE, .d = (v)})
#define WV_AMQP_STR(n, v)                                                                          \
    ((wv_amqp_field){.name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_STRING, .s = WV_AMQP_NAME_(v)})
#define WV_AMQP_TABLE(n, f, count)                                                                 \
    ((wv_amqp_field){                                                                              \
        .name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_TABLE, .fields = (f), .nfields = (count)})

/*
 * Read the field at *pos (start at 0) of an encoded table (a message's
 * headers) and move *pos past it: 1 with *f set, 0 at the end, -EPROTO for
 * bytes that are not a table (wv_errmsg says where).
 */
int wv_amqp_table_next(wv_str table, size_t *pos, wv_amqp_field *f);

/* The same for the elements of an encoded array (f->name is empty). */
int wv_amqp_array_next(wv_str array, size_t *pos, wv_amqp_field *f);

/* The field called name: 1 with *f set, 0 when there is none, -EPROTO. */
int wv_amqp_table_get(wv_str table, const char *name, wv_amqp_field *f);

/* ================================================= message properties */

/* The properties a message is published with (wv_amqp_publish, with the
 * client, takes them); by default a message is persistent. */
typedef struct wv_amqp_publish_opts {
    bool mandatory;    /* return it (-EHOSTUNREACH) when no queue takes it */
    bool transient;    /* delivery mode 1; by default messages are persistent (2) */
    uint8_t priority;  /* 0 = not sent */
    int64_t timestamp; /* seconds since the epoch; 0 = not sent */
    const char *content_type, *content_encoding;
    const char *correlation_id, *reply_to, *message_id, *type, *user_id, *app_id;
    const char *expiration; /* per-message TTL in milliseconds, as text ("60000") */
    const wv_amqp_field *headers;
    int nheaders;
} wv_amqp_publish_opts;

#ifdef __cplusplus
}
#endif

#endif
