/*
 * The C side of tests/integration/test_grpc_proto.py: the chapter's
 * HelloRequest (examples/chapter13/service.proto, compiled by protoc-c)
 * packed and framed as gRPC messages, or read back, so Python's protobuf
 * and weave's generated code and framing are checked against each other.
 *
 *   grpc_proto_peer pack [gzip]     one name per stdin line (hex), each
 *                                   packed and framed, all to stdout as one
 *                                   stream (gzip: grpc-encoding gzip)
 *   grpc_proto_peer unpack [gzip]   a stream of framed HelloRequests on
 *                                   stdin, fed to the reader in 7-byte
 *                                   pieces; each name printed as hex, one
 *                                   a line
 *
 * Exits 1 with a message on stderr when anything does not decode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc_internal.h"
#include "service.pb-c.h"

static void die(const char *what)
{
    fprintf(stderr, "grpc_proto_peer: %s\n", what);
    exit(1);
}

static int pack(grpc_encoding enc)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        size_t hex_len = (size_t)got;
        while (hex_len && (line[hex_len - 1] == '\n' || line[hex_len - 1] == '\r'))
            hex_len--;
        char *name = malloc(hex_len / 2 + 1);
        for (size_t i = 0; i < hex_len / 2; i++) {
            unsigned v;
            if (sscanf(line + 2 * i, "%2x", &v) != 1)
                die("bad hex on stdin");
            name[i] = (char)v;
        }
        name[hex_len / 2] = '\0';
        HelloRequest req = HELLO_REQUEST__INIT;
        req.name = name;
        size_t n = hello_request__get_packed_size(&req);
        uint8_t *packed = malloc(n ? n : 1);
        hello_request__pack(&req, packed);
        uint8_t *wire;
        size_t wlen;
        if (grpc_message_encode(packed, n, enc, &wire, &wlen) < 0)
            die("grpc_message_encode failed");
        fwrite(wire, 1, wlen, stdout);
        free(wire);
        free(packed);
        free(name);
    }
    free(line);
    return fflush(stdout) == 0 ? 0 : 1;
}

static void print_name(const grpc_message *m, grpc_encoding enc)
{
    grpc_payload pl;
    if (grpc_message_decode(m, enc, 0, &pl) < 0)
        die("grpc_message_decode failed");
    HelloRequest *req = hello_request__unpack(NULL, pl.len, pl.data);
    if (!req)
        die("hello_request__unpack failed");
    for (const char *p = req->name; *p; p++)
        printf("%02x", (unsigned char)*p);
    printf("\n");
    hello_request__free_unpacked(req, NULL);
    grpc_payload_free(&pl);
}

static int unpack(grpc_encoding enc)
{
    grpc_reader r;
    grpc_reader_init(&r, 0);
    uint8_t piece[7];
    size_t n;
    while ((n = fread(piece, 1, sizeof piece, stdin)) > 0) {
        size_t off = 0, used;
        grpc_message m;
        int rc;
        while ((rc = grpc_reader_feed(&r, piece + off, n - off, &used, &m)) == 1) {
            off += used;
            print_name(&m, enc);
        }
        if (rc < 0)
            die("the reader refused the stream");
    }
    if (!grpc_reader_idle(&r))
        die("the stream ended inside a message");
    grpc_reader_free(&r);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "gzip") != 0))
        die("usage: grpc_proto_peer pack|unpack [gzip]");
    grpc_encoding enc = argc == 3 ? GRPC_ENCODING_GZIP : GRPC_ENCODING_IDENTITY;
    if (strcmp(argv[1], "pack") == 0)
        return pack(enc);
    if (strcmp(argv[1], "unpack") == 0)
        return unpack(enc);
    die("usage: grpc_proto_peer pack|unpack [gzip]");
    return 1;
}
