/*
 * Private declarations of the AMQP client shared by the files of
 * src/amqp/: the frame writers of codec.c (librabbitmq's generated method
 * codec inside our own framing) and the facts they share.
 */
#ifndef WEAVE_AMQP_INTERNAL_H
#define WEAVE_AMQP_INTERNAL_H

#include <amqp.h>
#include <amqp_framing.h>
#include <stdbool.h>
#include <stdint.h>

#include "amqp/frame.h"
#include "weave/amqp.h"
#include "weave/buf.h"

#pragma GCC visibility push(hidden)

/* ------------------------------------------------------------ codec.c */

/* Reply code to errno: 404 -ENOENT, 403/530 -EACCES, 405 -EBUSY, 406
 * -EINVAL, others -EIO. */
int amqp_reply_errno(uint16_t code);

/* Append a method frame on `channel`: 0, -EMSGSIZE when it does not fit
 * in frame_max, -ENOMEM. */
int amqp_put_method(wv_buf *b, uint32_t frame_max, uint16_t channel, uint32_t id, void *method);

/* Append a heartbeat frame. */
int amqp_put_heartbeat(wv_buf *b);

/* Append a whole message: basic.publish, its content header, its body in
 * frames of at most frame_max. pool holds the headers table meanwhile. */
int amqp_put_publish(wv_buf *b, amqp_pool_t *pool, uint32_t frame_max, uint16_t channel,
                     const char *exchange, const char *routing_key, wv_str body,
                     const wv_amqp_publish_opts *opts);

/* Build fields[0..n) as an amqp_table_t in pool (-EINVAL: a field of
 * unknown type, nesting too deep, a name over 255 bytes). */
int amqp_table_from_fields(amqp_pool_t *pool, const wv_amqp_field *fields, int n,
                           amqp_table_t *out);

/* Encode fields[0..n) as a table (length first) into b. */
int amqp_table_encode(wv_buf *b, amqp_pool_t *pool, const wv_amqp_field *fields, int n);

/* Decode an encoded table (length first, as amqp_table_encode wrote it). */
int amqp_table_decode(amqp_pool_t *pool, const wv_buf *b, amqp_table_t *out);

/* amqp_bytes_t of a C string (NULL: empty). */
amqp_bytes_t amqp_str(const char *s);

/* Is `id` a method a broker may send a client? */
bool amqp_server_method(uint32_t id);

/* FNV-1a over exchange, routing key and body: how a return finds its publish. */
uint64_t amqp_publish_hash(const char *exchange, size_t elen, const char *rk, size_t rlen,
                           wv_str body);

#pragma GCC visibility pop

#endif
