/*
 * The chapter's service.proto (examples/chapter13/service.proto, §13.6.2)
 * compiled by protoc-c through weave_protobuf_c (cmake/WeaveProtobufC.cmake):
 * the generated messages pack to the bytes Python's protobuf produces and
 * unpack from them, the service descriptor names the method path grpcio
 * calls, and a packed message travels through gRPC framing and gzip.
 *
 * The expected bytes were produced with Debian's python3-protobuf 3.21.12
 * from the same .proto:
 *     /usr/bin/python3 -m grpc_tools.protoc -I examples/chapter13 \
 *         --python_out=. examples/chapter13/service.proto
 *     /usr/bin/python3 -c 'import service_pb2 as s; \
 *         print(s.HelloRequest(name="World").SerializeToString().hex())'
 * tests/integration/test_grpc_proto.py checks the same both ways with
 * Python running beside a C program.
 */
#include "harness.h"

#include <errno.h>

#include "grpc/grpc_internal.h"
#include "service.pb-c.h"

static uint8_t *hex_bytes(const char *hex, size_t *n)
{
    *n = strlen(hex) / 2;
    uint8_t *b = malloc(*n ? *n : 1);
    for (size_t i = 0; i < *n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        b[i] = (uint8_t)v;
    }
    return b;
}

static const struct {
    const char *name;
    const char *python_hex; /* HelloRequest(name=...).SerializeToString().hex() */
} requests[] = {
    {"World", "0a05576f726c64"},
    {"", ""}, /* proto3: an empty string is not sent */
    {"d\xc3\xa9j\xc3\xa0 vu \xe2\x9c\x93", "0a0d64c3a96ac3a020767520e29c93"},
};

static void test_hello_request_packs_to_the_bytes_python_produces(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(requests); i++) {
        HelloRequest req = HELLO_REQUEST__INIT;
        req.name = (char *)requests[i].name;
        size_t n = hello_request__get_packed_size(&req);
        uint8_t *buf = malloc(n ? n : 1);
        assert_int_equal(hello_request__pack(&req, buf), n);
        size_t want_n;
        uint8_t *want = hex_bytes(requests[i].python_hex, &want_n);
        assert_int_equal(n, want_n);
        if (n)
            assert_memory_equal(buf, want, n);
        free(want);
        free(buf);
    }
}

static void test_a_long_name_takes_a_two_byte_length(void **state)
{
    /* Python: HelloRequest(name="x" * 200) is 0a c8 01 then the 200 bytes */
    char name[201];
    memset(name, 'x', 200);
    name[200] = '\0';
    HelloRequest req = HELLO_REQUEST__INIT;
    req.name = name;
    uint8_t buf[256];
    assert_int_equal(hello_request__pack(&req, buf), 203);
    assert_memory_equal(buf, "\x0a\xc8\x01", 3);
    assert_memory_equal(buf + 3, name, 200);
}

static void test_hello_request_unpacks_from_the_bytes_python_produces(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(requests); i++) {
        size_t n;
        uint8_t *b = hex_bytes(requests[i].python_hex, &n);
        HelloRequest *req = hello_request__unpack(NULL, n, b);
        assert_non_null(req);
        assert_string_equal(req->name, requests[i].name);
        hello_request__free_unpacked(req, NULL);
        free(b);
    }
}

static void test_hello_response_round_trips_with_pythons_bytes(void **state)
{
    size_t n;
    uint8_t *b = hex_bytes("0a0d48656c6c6f2c20576f726c6421", &n); /* message="Hello, World!" */
    HelloResponse *res = hello_response__unpack(NULL, n, b);
    assert_non_null(res);
    assert_string_equal(res->message, "Hello, World!");
    uint8_t out[64];
    assert_int_equal(hello_response__pack(res, out), n);
    assert_memory_equal(out, b, n);
    hello_response__free_unpacked(res, NULL);
    free(b);
}

static void test_truncated_bytes_do_not_unpack(void **state)
{
    size_t n;
    uint8_t *b = hex_bytes("0a05576f726c64", &n);
    for (size_t k = 1; k < n; k++)
        assert_null(hello_request__unpack(NULL, k, b));
    free(b);
}

static void test_service_descriptor_gives_the_method_path_grpcio_calls(void **state)
{
    const ProtobufCServiceDescriptor *d = &my_service__descriptor;
    assert_string_equal(d->name, "MyService");
    assert_string_equal(d->package, "");
    assert_int_equal(d->n_methods, 1);
    assert_string_equal(d->methods[0].name, "SayHello");
    assert_ptr_equal(d->methods[0].input, &hello_request__descriptor);
    assert_ptr_equal(d->methods[0].output, &hello_response__descriptor);
    char path[64];
    snprintf(path, sizeof path, "/%s/%s", d->name, d->methods[0].name);
    assert_string_equal(path, "/MyService/SayHello"); /* grpcio's stub: service_pb2_grpc.py */
}

static void test_a_packed_request_travels_through_framing_and_gzip(void **state)
{
    HelloRequest req = HELLO_REQUEST__INIT;
    char name[1000];
    memset(name, 'w', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    req.name = name;
    size_t n = hello_request__get_packed_size(&req);
    uint8_t *packed = malloc(n);
    hello_request__pack(&req, packed);
    uint8_t *wire;
    size_t wlen;
    assert_int_equal(grpc_message_encode(packed, n, GRPC_ENCODING_GZIP, &wire, &wlen), 0);
    assert_int_equal(wire[0], 1); /* 999 'w's compress */

    grpc_reader r;
    grpc_reader_init(&r, 0);
    size_t used;
    grpc_message m;
    assert_int_equal(grpc_reader_feed(&r, wire, 3, &used, &m), 0);
    assert_int_equal(grpc_reader_feed(&r, wire + 3, wlen - 3, &used, &m), 1);
    grpc_payload pl;
    assert_int_equal(grpc_message_decode(&m, GRPC_ENCODING_GZIP, 0, &pl), 0);
    HelloRequest *back = hello_request__unpack(NULL, pl.len, pl.data);
    assert_non_null(back);
    assert_string_equal(back->name, name);
    hello_request__free_unpacked(back, NULL);
    grpc_payload_free(&pl);
    grpc_reader_free(&r);
    free(wire);
    free(packed);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_request_packs_to_the_bytes_python_produces),
        cmocka_unit_test(test_a_long_name_takes_a_two_byte_length),
        cmocka_unit_test(test_hello_request_unpacks_from_the_bytes_python_produces),
        cmocka_unit_test(test_hello_response_round_trips_with_pythons_bytes),
        cmocka_unit_test(test_truncated_bytes_do_not_unpack),
        cmocka_unit_test(test_service_descriptor_gives_the_method_path_grpcio_calls),
        cmocka_unit_test(test_a_packed_request_travels_through_framing_and_gzip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
