/*
 * src/ws/frame.h: the WebSocket frame codec (RFC 6455 sections 5 and 7),
 * private to the library; src/ws/ws.c drives it.
 *
 * Sans-I/O like the HTTP parser: it reads bytes the caller already has and
 * writes into buffers the caller owns. It never allocates, never touches a
 * socket and keeps no state of its own; what must survive between calls (the
 * UTF-8 validator's position inside a character) lives in a caller's word.
 *
 * It owns the rules that one frame, one close payload or one run of text can
 * break on its own. The rules that need the connection's history (a
 * continuation without a message to continue, a new data frame in the middle
 * of a fragmented message, RSV1 on a continuation or control frame with
 * permessage-deflate) belong to ws.c.
 *
 * Errors are negative WebSocket close codes, so the caller can close with
 * -rc: WS_E_PROTOCOL (-1002), WS_E_INVALID_DATA (-1007), WS_E_TOO_BIG (-1009).
 */
#ifndef WEAVE_WS_FRAME_H
#define WEAVE_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Negative returns: the close code to send is -value. */
enum {
    WS_E_PROTOCOL = -1002,     /* the frame breaks RFC 6455 */
    WS_E_INVALID_DATA = -1007, /* text (or a close reason) is not UTF-8 */
    WS_E_TOO_BIG = -1009,      /* the payload is longer than the caller's limit */
};

#define WS_HEADER_MAX  14  /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_CONTROL_MAX 125 /* the longest payload of a control frame */
#define WS_RSV1        4   /* ws_header.rsv bit of RSV1 (permessage-deflate) */

typedef struct ws_header {
    bool fin;
    uint8_t rsv; /* the three RSV bits as 0..7 (RSV1 = 4, RSV2 = 2, RSV3 = 1) */
    uint8_t opcode;
    bool masked;
    uint8_t mask[4]; /* zero when !masked */
    uint64_t len;    /* payload length, < 2^63 */
    size_t size;     /* header bytes: 2..14 (the payload starts at p + size) */
} ws_header;

/*
 * Parse a frame header at p[0..n). Returns the header's size (2..14, also in
 * h->size) when it is complete and valid, 0 when more bytes are needed, or a
 * negative close code:
 *
 *   WS_E_PROTOCOL (-1002): a reserved opcode (3-7, 0xB-0xF); an RSV bit that
 *       allowed_rsv does not have (pass WS_RSV1 when permessage-deflate was
 *       negotiated, 0 otherwise); a control frame (opcode >= 8) with fin = 0
 *       or a payload over 125 bytes; a length not in its shortest encoding
 *       (126 followed by a length < 126, 127 followed by one < 65536); a
 *       64-bit length with its top bit set; an unmasked frame when
 *       expect_masked (a server reading a client) or a masked one when not
 *       (a client reading a server).
 *   WS_E_TOO_BIG (-1009): a valid header whose payload is longer than
 *       max_len (0 means no limit).
 *
 * Errors are reported as soon as the bytes that make them certain have
 * arrived, and the checks run in byte order, so every prefix of a header
 * gives 0 or the same result as the whole. *h is written only on success.
 */
int ws_parse_header(const uint8_t *p, size_t n, bool expect_masked, uint8_t allowed_rsv,
                    uint64_t max_len, ws_header *h);

/*
 * XOR data[0..n) with the mask, in place (masking and unmasking are the same
 * operation). `offset` is the position of data[0] in the frame's payload, so
 * a payload can be unmasked in pieces as it arrives. 16 bytes at a time with
 * SSE2, 8 without; any alignment.
 */
void ws_unmask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset);

/*
 * Write the header of a frame into out and return its size (2..14), with the
 * length in its shortest encoding. mask is NULL for an unmasked frame (a
 * server's) or the 4-byte masking key (a client's; the caller then masks the
 * payload with ws_unmask). rsv is the RSV bits as 0..7, opcode 0..15; len
 * must be < 2^63.
 */
size_t ws_write_header(uint8_t out[WS_HEADER_MAX], bool fin, uint8_t rsv, uint8_t opcode,
                       uint64_t len, const uint8_t *mask);

/*
 * Incremental UTF-8 validation (RFC 3629: no overlong forms, no surrogates
 * U+D800-U+DFFF, nothing above U+10FFFF), so a text message is checked as its
 * fragments arrive and fails on the first byte that cannot be part of valid
 * UTF-8, not at the end of the message.
 *
 * *state is 0 (WS_UTF8_OK) at the start of a message; feed each piece in
 * order with the same state. Returns
 *   WS_UTF8_OK      valid so far and the input ends between characters;
 *   WS_UTF8_PARTIAL valid so far, but the input ends inside a character;
 *   WS_UTF8_BAD     not UTF-8; the state stays bad, later feeds return BAD.
 * A message is valid when the feed of its last piece returns WS_UTF8_OK
 * (equivalently, when *state is 0 afterwards). Runs of ASCII are skipped 16
 * (SSE2) or 8 bytes at a time.
 */
enum { WS_UTF8_OK = 0, WS_UTF8_PARTIAL = 1, WS_UTF8_BAD = 2 };
int ws_utf8_feed(uint32_t *state, const uint8_t *p, size_t n);

/*
 * Validate and parse a received close frame's payload p[0..n): empty, or a
 * 2-byte big-endian status code followed by a UTF-8 reason. Codes accepted:
 * 1000-1003, 1007-1014 and 3000-4999; everything else (below 1000, 1004-1006,
 * 1015-2999, 5000 and up) is an error. Returns 0 with *code (1005, "no status
 * code present", for an empty payload) and the reason as a slice of p
 * (*reason_len 0 when there is none), or
 *   WS_E_PROTOCOL (-1002): a 1-byte payload, or a code not accepted;
 *   WS_E_INVALID_DATA (-1007): the reason is not UTF-8.
 * The outputs are written only on success.
 */
int ws_parse_close(const uint8_t *p, size_t n, int *code, const char **reason, size_t *reason_len);

/*
 * The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key (RFC 6455
 * 4.2.2: base64 of the SHA-1 of the key followed by the protocol's GUID):
 * writes its 28 characters and a NUL into out. Returns 0, or -1 when the key
 * is not 24 base64 characters (standard alphabet, "==" padding) encoding
 * 16 bytes; out is then untouched.
 */
int ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Standard base64 of n bytes into out (4 * ((n + 2) / 3) chars + NUL):
 * the client's Sec-WebSocket-Key. */
void ws_base64(const uint8_t *in, size_t n, char *out);

#pragma GCC visibility pop

#endif /* WEAVE_WS_FRAME_H */
