"""weave's gRPC server (src/grpc/server.c) called by grpcio, the chapter's
gRPC library: grpc_echo_server serves grpc_echo/echo.proto's Echo service
and Python's stubs, generated from the same file by grpc_tools.protoc,
call every kind of method on it (unary, server, client and bidirectional
streaming, a true ping-pong), with metadata both ways, statuses with
non-ASCII messages, deadlines the handler sees as its fiber's, cancellation,
message size limits, gzip, many calls at once on one connection, TLS by
ALPN, what a non-gRPC request gets, grpc.health.v1 (Check, Watch,
NOT_SERVING at the stop), and server reflection, used as grpcurl does: the
services listed, their .proto files fetched, and a call made with message
classes built from those files alone. The server must exit 0 and
sanitizer-clean after each test (httptest.Server)."""
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httptest  # noqa: E402
from httptest import HOST, Server, check, eq, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
httptest.BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "grpc_echo_server")
PROTO_DIR = os.path.join(ROOT, "tests", "integration", "grpc_echo")
GEN = tempfile.mkdtemp(prefix="weave-grpc-echo-")
HEALTH_DIR = os.path.join(ROOT, "src", "grpc")
for d, f in ((PROTO_DIR, "echo.proto"), (HEALTH_DIR, "health.proto"),
             (HEALTH_DIR, "reflection.proto")):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", d, "--python_out=" + GEN,
                    "--grpc_python_out=" + GEN, os.path.join(d, f)], check=True)
sys.path.insert(0, GEN)
import echo_pb2 as pb  # noqa: E402
import echo_pb2_grpc as pbg  # noqa: E402
import health_pb2  # noqa: E402 - grpc.health.v1, from src/grpc/health.proto
import health_pb2_grpc  # noqa: E402
import reflection_pb2  # noqa: E402 - grpc.reflection.v1alpha, from src/grpc/reflection.proto
import reflection_pb2_grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402


def stub(srv, **opts):
    ch = grpc.insecure_channel("%s:%d" % (HOST, srv.port), **opts)
    return ch, pbg.EchoStub(ch)


def status_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, None


def feeder():
    """A queue, and the request iterator that sends what is put on it (until
    None), for streams whose next request waits on the last answer."""
    q = queue.Queue()

    def requests():
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    return q, requests


def stats(s):
    text = s.Stats(pb.EchoRequest(), timeout=5).text
    return dict(kv.split("=") for kv in text.split())


def test_unary_call_answers_and_echoes_metadata_both_ways():
    with Server() as srv:
        ch, s = stub(srv)
        binary = bytes(range(256))
        reply, call = s.Unary.with_call(
            pb.EchoRequest(text="héllo", payload=b"\x00\x01"),
            metadata=[("x-echo-initial", "first"), ("x-echo-trailing-bin", binary)], timeout=5)
        eq(reply.text, "héllo")
        eq(reply.payload, b"\x00\x01")
        initial = dict(call.initial_metadata())
        eq(initial.get("x-echo-initial"), "first", "initial metadata")
        trailing = dict(call.trailing_metadata())
        eq(trailing.get("x-echo-trailing-bin"), binary, "binary trailing metadata")
        eq(call.code(), grpc.StatusCode.OK)
        ch.close()


def test_grpc_timeout_reaches_the_handler_as_metadata_and_deadline():
    with Server() as srv:
        ch, s = stub(srv)
        _, call = s.Unary.with_call(pb.EchoRequest(text="t"), timeout=30)
        seen = dict(call.initial_metadata()).get("x-seen-timeout")
        check(seen is not None, "the server saw no grpc-timeout")
        before = stats(s)
        t0 = time.monotonic()
        code, _ = status_of(lambda: s.Unary(pb.EchoRequest(sleep_ms=3000), timeout=0.3))
        eq(code, grpc.StatusCode.DEADLINE_EXCEEDED)
        check(time.monotonic() - t0 < 2.5, "the deadline did not end the call early")
        # the handler's wait ended (by its deadline, or by the client's reset)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            after = stats(s)
            if (int(after["deadline"]) + int(after["cancelled"]) >
                    int(before["deadline"]) + int(before["cancelled"])):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the sleeping handler never ended: %r" % after)
        ch.close()


def test_server_streaming_sends_every_message_in_order():
    with Server() as srv:
        ch, s = stub(srv)
        got = [(r.index, r.text) for r in s.ServerStream(pb.EchoRequest(text="s", count=200),
                                                          timeout=10)]
        eq(got, [(i, "s") for i in range(200)])
        eq(list(s.ServerStream(pb.EchoRequest(count=0), timeout=5)), [], "an empty stream")
        ch.close()


def test_client_streaming_reads_until_half_close():
    with Server() as srv:
        ch, s = stub(srv)
        texts = ["m%d" % i for i in range(300)]
        reply = s.ClientStream(iter(pb.EchoRequest(text=t) for t in texts), timeout=10)
        eq(reply.index, 300)
        eq(reply.text, ",".join(texts))
        reply = s.ClientStream(iter([]), timeout=5)
        eq((reply.index, reply.text), (0, ""), "no messages at all")
        ch.close()


def test_bidirectional_ping_pong_interleaves():
    """Each request is sent only after the previous reply came back: the
    server must answer each message as it arrives, not at the end."""
    with Server() as srv:
        ch, s = stub(srv)
        q, requests = feeder()
        q.put(pb.EchoRequest(text="ping0"))
        replies = s.Bidi(requests(), timeout=10)
        for i in range(50):
            r = next(replies)
            eq((r.index, r.text), (i, "ping%d" % i))
            q.put(pb.EchoRequest(text="ping%d" % (i + 1)) if i < 49 else None)
        check(next(replies, None) is None, "a reply after the half-close")
        eq(replies.code(), grpc.StatusCode.OK)
        ch.close()


def test_status_codes_and_messages_reach_the_client():
    with Server() as srv:
        ch, s = stub(srv)
        msg = "no user ✓ 100% \n\t ünïcode"
        code, details = status_of(lambda: s.Unary(pb.EchoRequest(status=5, message=msg),
                                                  timeout=5))
        eq(code, grpc.StatusCode.NOT_FOUND)
        eq(details, msg, "grpc-message")
        # after messages: the status rides in the trailers
        replies = s.ServerStream(pb.EchoRequest(count=3, status=9, message="later"), timeout=5)
        got = []
        code, details = status_of(lambda: got.extend(replies))
        eq(len(got), 3, "messages before the status")
        eq((code, details), (grpc.StatusCode.FAILED_PRECONDITION, "later"))
        for c in (1, 2, 3, 4, 6, 7, 8, 10, 11, 13, 14, 15, 16):
            code, _ = status_of(lambda: s.Unary(pb.EchoRequest(status=c, message="x"), timeout=5))
            eq(code.value[0], c, "status %d" % c)
        ch.close()


def test_unimplemented_methods_and_services():
    with Server() as srv:
        ch, s = stub(srv)
        code, details = status_of(lambda: s.Missing(pb.EchoRequest(), timeout=5))
        eq(code, grpc.StatusCode.UNIMPLEMENTED)
        check("Missing" in details, "details name the method: %r", details)
        other = ch.unary_unary("/weave.test.Nope/Unary",
                               request_serializer=pb.EchoRequest.SerializeToString,
                               response_deserializer=pb.EchoReply.FromString)
        code, _ = status_of(lambda: other(pb.EchoRequest(), timeout=5))
        eq(code, grpc.StatusCode.UNIMPLEMENTED, "an unknown service")
        ch.close()


def test_cancelling_a_stream_cancels_the_handler():
    with Server() as srv:
        ch, s = stub(srv)
        before = int(stats(s)["cancelled"])
        replies = s.ServerStream(pb.EchoRequest(count=1000, sleep_ms=50), timeout=30)
        next(replies)
        next(replies)
        replies.cancel()
        deadline = time.monotonic() + 5
        while int(stats(s)["cancelled"]) == before:
            check(time.monotonic() < deadline, "the handler was never cancelled")
            time.sleep(0.05)
        eq(replies.code(), grpc.StatusCode.CANCELLED)
        ch.close()


def test_message_size_limits():
    with Server(MAX_RECV=1 << 20) as srv:
        ch, s = stub(srv, options=[("grpc.max_receive_message_length", 8 << 20)])
        eq(len(s.Unary(pb.EchoRequest(reply_size=4 * 1024 * 1024 - 64), timeout=10).payload),
           4 * 1024 * 1024 - 64, "a reply just under 4 MiB")
        code, _ = status_of(lambda: s.Unary(pb.EchoRequest(reply_size=5 << 20), timeout=10))
        eq(code, grpc.StatusCode.RESOURCE_EXHAUSTED, "a reply over the server's send limit")
        eq(s.Unary(pb.EchoRequest(payload=b"p" * ((1 << 20) - 64)), timeout=10).payload[:1],
           b"p", "a request under MAX_RECV")
        code, _ = status_of(lambda: s.Unary(pb.EchoRequest(payload=b"p" * (2 << 20)),
                                            timeout=10))
        eq(code, grpc.StatusCode.RESOURCE_EXHAUSTED, "a request over MAX_RECV")
        eq(s.Unary(pb.EchoRequest(text="after"), timeout=5).text, "after",
           "the connection still serves")
        ch.close()


def test_gzip_both_ways():
    with Server(COMPRESS="1") as srv:
        ch, s = stub(srv, compression=grpc.Compression.Gzip)
        big = b"z" * 200000
        eq(s.Unary(pb.EchoRequest(payload=big), timeout=10).payload, big)
        got = [r.payload for r in s.Bidi(iter(pb.EchoRequest(payload=big) for _ in range(5)),
                                         timeout=10)]
        eq(got, [big] * 5)
        ch.close()


def test_many_concurrent_calls_share_one_connection():
    with Server() as srv:
        ch, s = stub(srv)
        futures = [s.Unary.future(pb.EchoRequest(text="c%d" % i, sleep_ms=200), timeout=20)
                   for i in range(300)]
        eq([f.result().text for f in futures], ["c%d" % i for i in range(300)])
        ch.close()


def test_a_failing_stream_leaves_others_on_the_connection_alone():
    with Server() as srv:
        ch, s = stub(srv)
        replies = s.ServerStream(pb.EchoRequest(text="keep", count=20, sleep_ms=20), timeout=20)
        code, _ = status_of(lambda: s.Unary(pb.EchoRequest(status=13, message="boom"),
                                            timeout=5))
        eq(code, grpc.StatusCode.INTERNAL)
        eq(len(list(replies)), 20, "the stream beside it finished")
        ch.close()


def test_tls_by_alpn():
    certs = tempfile.mkdtemp(prefix="weave-grpc-tls-")
    subprocess.run(["bash", os.path.join(ROOT, "tests", "make_certs.sh"), certs], check=True)
    with Server(TLS_CERT=os.path.join(certs, "server.pem"),
                TLS_KEY=os.path.join(certs, "server.key")) as srv:
        with open(os.path.join(certs, "ca.pem"), "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        ch = grpc.secure_channel("localhost:%d" % srv.port, creds)
        eq(pbg.EchoStub(ch).Unary(pb.EchoRequest(text="tls"), timeout=10).text, "tls")
        ch.close()


def test_requests_that_are_not_grpc():
    with Server() as srv:
        url = "http://%s:%d/weave.test.Echo/Unary" % (HOST, srv.port)
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "-X", "POST", "--data-binary", "x", url],
                             capture_output=True, text=True, timeout=10).stdout
        eq(out, "505", "gRPC over HTTP/1.1")
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "--http2-prior-knowledge", "-H", "content-type: text/plain",
                              "-X", "POST", "--data-binary", "x", url],
                             capture_output=True, text=True, timeout=10).stdout
        eq(out, "415", "HTTP/2 without application/grpc")
        # a body that is not a message: INTERNAL, and the server keeps going
        bad = os.path.join(GEN, "bad.bin")
        with open(bad, "wb") as f:
            f.write(b"\x00\x00\x00\x00\x05\xff\xff\xff\xff\xff")
        out = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null",
                              "--http2-prior-knowledge", "-H", "content-type: application/grpc",
                              "-H", "te: trailers", "-X", "POST", "--data-binary", "@" + bad, url],
                             capture_output=True, text=True, timeout=10).stdout
        check("grpc-status: 13" in out, "a message that does not parse: %r", out)
        ch, s = stub(srv)
        eq(s.Unary(pb.EchoRequest(text="still"), timeout=5).text, "still")
        ch.close()


def test_health_check_and_watch():
    H = health_pb2.HealthCheckResponse
    with Server() as srv:
        ch, s = stub(srv)
        health = health_pb2_grpc.HealthStub(ch)
        check_ = lambda name: health.Check(health_pb2.HealthCheckRequest(service=name),
                                           timeout=5).status  # noqa: E731
        eq(check_(""), H.SERVING, "the server as a whole")
        eq(check_("weave.test.Echo"), H.SERVING, "a registered service")
        eq(check_("grpc.health.v1.Health"), H.SERVING, "the health service itself")
        code, _ = status_of(lambda: check_("no.Such"))
        eq(code, grpc.StatusCode.NOT_FOUND, "an unknown service")

        watch = health.Watch(health_pb2.HealthCheckRequest(service="weave.test.Echo"), timeout=30)
        eq(next(watch).status, H.SERVING, "Watch starts with the status")
        s.SetHealth(pb.EchoRequest(text="weave.test.Echo", status=H.NOT_SERVING), timeout=5)
        eq(next(watch).status, H.NOT_SERVING, "Watch sees the change")
        eq(check_("weave.test.Echo"), H.NOT_SERVING, "and so does Check")
        s.SetHealth(pb.EchoRequest(text="weave.test.Echo", status=H.SERVING), timeout=5)
        eq(next(watch).status, H.SERVING, "and the change back")
        watch.cancel()

        unknown = health.Watch(health_pb2.HealthCheckRequest(service="later.Service"), timeout=30)
        eq(next(unknown).status, H.SERVICE_UNKNOWN, "Watch on a service nobody serves yet")
        s.SetHealth(pb.EchoRequest(text="later.Service", status=H.SERVING), timeout=5)
        eq(next(unknown).status, H.SERVING, "...until it is set")

        # the stop: NOT_SERVING, then the stream ends, and the server exits 0
        srv.signal()
        eq(next(unknown).status, H.NOT_SERVING, "a stopping server is not serving")
        check(next(unknown, None) is None, "the stream ends at the stop")
        eq(unknown.code(), grpc.StatusCode.OK)
        ch.close()
        eq(srv.wait(15), 0, "exit status after the stop")


def test_server_reflection_describes_and_calls_a_service():
    with Server() as srv:
        ch, _ = stub(srv)
        q, requests = feeder()
        answers = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(requests(),
                                                                                    timeout=20)

        def ask(**kw):
            q.put(reflection_pb2.ServerReflectionRequest(host="h", **kw))
            return next(answers)

        listed = {s.name for s in ask(list_services="").list_services_response.service}
        check({"weave.test.Echo", "grpc.health.v1.Health",
               "grpc.reflection.v1alpha.ServerReflection"} <= listed, "services: %r", listed)

        r = ask(file_containing_symbol="weave.test.Echo")
        eq(r.valid_host, "h")
        eq(r.original_request.file_containing_symbol, "weave.test.Echo")
        files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                 for b in r.file_descriptor_response.file_descriptor_proto]
        eq(files[0].name, "echo.proto")
        eq([m.name for m in files[0].service[0].method][:4],
           ["Unary", "ServerStream", "ClientStream", "Bidi"])
        check(files[0].service[0].method[1].server_streaming, "streaming is described")
        for sym in ("weave.test.Echo.Unary", "weave.test.EchoRequest", ".weave.test.EchoReply"):
            eq(ask(file_containing_symbol=sym).file_descriptor_response.file_descriptor_proto[0],
               r.file_descriptor_response.file_descriptor_proto[0], sym)
        health = ask(file_by_filename="health.proto").file_descriptor_response
        eq(descriptor_pb2.FileDescriptorProto.FromString(health.file_descriptor_proto[0]).package,
           "grpc.health.v1")
        nested = ask(file_containing_symbol="grpc.health.v1.HealthCheckResponse.ServingStatus")
        eq(len(nested.file_descriptor_response.file_descriptor_proto), 1, "a nested enum")

        # what is not there: an error on the stream, which goes on
        for kw in ({"file_containing_symbol": "no.Such"}, {"file_by_filename": "nope.proto"},
                   {"all_extension_numbers_of_type": "no.Such"}):
            eq(ask(**kw).error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0], kw)
        eq(ask(all_extension_numbers_of_type="weave.test.EchoRequest")
           .all_extension_numbers_response.base_type_name, "weave.test.EchoRequest")
        q.put(None)
        check(next(answers, None) is None, "the stream ends with the requests")

        # a call made from the reflected files alone, as grpcurl does
        pool = descriptor_pool.DescriptorPool()
        for f in reversed(files):
            pool.Add(f)
        factory = message_factory.MessageFactory(pool)
        req_cls = factory.GetPrototype(pool.FindMessageTypeByName("weave.test.EchoRequest"))
        rep_cls = factory.GetPrototype(pool.FindMessageTypeByName("weave.test.EchoReply"))
        call = ch.unary_unary("/weave.test.Echo/Unary",
                              request_serializer=req_cls.SerializeToString,
                              response_deserializer=rep_cls.FromString)
        eq(call(req_cls(text="reflected"), timeout=5).text, "reflected")
        ch.close()


if __name__ == "__main__":
    run(globals())
