/*
 * src/amqp/frame.h: the AMQP 0-9-1 frame reader and the field-table
 * scanner, private to the library; src/amqp/conn.c drives them.
 *
 * Sans-I/O like the WebSocket frame codec: bytes in, a frame (or a table
 * field) out, as slices of the caller's bytes. Nothing here allocates,
 * touches a socket or keeps state between calls, so the caller may feed a
 * frame one byte at a time (each shorter prefix says "need more") and the
 * fuzzer (fuzz/fuzz_amqp_frame.c) can check every answer.
 *
 * A frame on the wire: type (1 byte), channel (2), payload size (4, big
 * endian), the payload, then the end byte 0xCE. Its size with the 8 bytes
 * around the payload is bounded by the frame_max the connection negotiated.
 *
 * Method payloads are decoded by librabbitmq's generated codec
 * (amqp_decode_method) once a frame is whole; the field tables inside them
 * are first walked here, with a nesting limit, because that codec recurses
 * without one (a table nested thousands deep would run a fiber off its
 * stack).
 */
#ifndef WEAVE_AMQP_FRAME_H
#define WEAVE_AMQP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weave/amqp.h"

#pragma GCC visibility push(hidden)

enum {
    AMQP_FRAME_METHOD_TYPE = 1,
    AMQP_FRAME_HEADER_TYPE = 2,
    AMQP_FRAME_BODY_TYPE = 3,
    AMQP_FRAME_HEARTBEAT_TYPE = 8,
    AMQP_FRAME_END_BYTE = 0xCE,
    AMQP_FRAME_OVERHEAD = 8,   /* header (7) + end byte (1) */
    AMQP_FRAME_MIN_MAX = 4096, /* the smallest frame_max a peer may ask for */
    AMQP_TABLE_MAX_DEPTH = 16, /* tables and arrays inside each other, at most */
    AMQP_WHY = 160,            /* room for a reader's reason */
};

typedef struct amqp_frame {
    uint8_t type;           /* AMQP_FRAME_*_TYPE */
    uint16_t channel;       /* 0 for the connection */
    const uint8_t *payload; /* into the caller's bytes */
    uint32_t size;          /* payload bytes */
} amqp_frame;

/*
 * Read the frame at p[0..n). Returns its length on the wire (size + 8) with
 * *f set, 0 when more bytes are needed, or a negative errno with a reason in
 * why[0..AMQP_WHY):
 *
 *   -EMSGSIZE  the header announces a frame longer than frame_max
 *   -EPROTO    an unknown frame type, a wrong end byte, a heartbeat with a
 *              payload or off channel 0, a method frame shorter than its
 *              method id, a content header shorter than its fixed part, or
 *              "AMQP" where a frame should start (a broker that refuses our
 *              protocol version answers with its own header)
 *
 * Errors are reported as soon as the bytes that make them certain are
 * there, so every prefix of the input gives 0 or the same error.
 */
ssize_t amqp_frame_read(const uint8_t *p, size_t n, uint32_t frame_max, amqp_frame *f, char *why);

/* The method id (class << 16 | method) of a method frame's payload. */
uint32_t amqp_frame_method_id(const amqp_frame *f);

/*
 * Check the field table at p[0..n) (its 4-byte length first, as methods
 * and properties carry it): every field well-formed, nothing past the
 * table's length or n, tables and arrays nested at most
 * AMQP_TABLE_MAX_DEPTH deep. The table's length on the wire (4 + its
 * declared size), or -EPROTO with a reason in why.
 */
ssize_t amqp_table_check(const uint8_t *p, size_t n, char *why);

/*
 * The field table of a basic-class content header's properties (the
 * payload after class, weight and body size: the flags first), or an
 * empty slice when it has none. 0, or -EPROTO (a property that runs past
 * the payload, a malformed table) with a reason in why.
 */
int amqp_props_headers(const uint8_t *p, size_t n, wv_str *headers, char *why);

/* Read one field value of kind p[0] at p[0..n): its length, or -EPROTO
 * (also for nesting deeper than depth allows). The value goes to *f
 * (its name untouched). */
ssize_t amqp_field_read(const uint8_t *p, size_t n, int depth, wv_amqp_field *f);

#pragma GCC visibility pop

#endif
