#!/usr/bin/python3
"""gRPC's interop test client on grpcio: runs one case of gRPC's
doc/interop-test-descriptions.md against a grpc.testing.TestService server
and asserts what the description asserts.

Usage: interop_client.py --server_port PORT --test_case NAME
           [--server_host 127.0.0.1] [--server_host_override NAME]
           [--use_tls[=true|false] [--ca_file PEM]]
Exit 0 and "PASS NAME" on stdout when the case passes; exit 1 and
"FAIL NAME: why" on stderr when it does not; exit 2 on bad arguments.
--list prints the case names.
"""
import argparse
import queue
import sys
import time

import grpc

import interop_protos

pb = interop_protos.load()
M = pb.messages

TIMEOUT = 30  # seconds, for every call but timeout_on_sleeping_server's
ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")


class Failure(Exception):
    pass


def check(cond, msg, *args):
    if not cond:
        raise Failure(msg % args if args else msg)


def zeros(n):
    return M.Payload(body=bytes(n))


def check_payload(payload, size, what):
    check(len(payload.body) == size, "%s: payload body of %d bytes, expected %d",
          what, len(payload.body), size)
    check(payload.body == bytes(size), "%s: payload body is not all zeros", what)


def expect_error(call, code, what):
    """Runs call(); it must raise grpc.RpcError with `code`. Returns the
    error."""
    try:
        result = call()
    except grpc.RpcError as e:
        check(e.code() == code, "%s: status %s (%s), expected %s", what, e.code(),
              e.details(), code)
        return e
    raise Failure("%s: succeeded (%r), expected status %s" % (what, result, code))


class Pipe:
    """A request iterator the test feeds one message at a time; close() is
    the half-close."""
    _END = object()

    def __init__(self):
        self._q = queue.Queue()

    def add(self, request):
        self._q.put(request)

    def close(self):
        self._q.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is self._END:
            raise StopIteration
        return item


def metadata_value(md, key):
    values = [v for k, v in (md or ()) if k == key]
    return values[0] if len(values) == 1 else values


# ------------------------------------------------------------------ cases

def empty_unary(stub, channel):
    resp = stub.EmptyCall(pb.empty.Empty(), timeout=TIMEOUT)
    check(isinstance(resp, pb.empty.Empty), "EmptyCall returned %r", resp)


def large_unary(stub, channel):
    resp = stub.UnaryCall(M.SimpleRequest(response_size=314159, payload=zeros(271828)),
                          timeout=TIMEOUT)
    check_payload(resp.payload, 314159, "UnaryCall response")


def client_streaming(stub, channel):
    sizes = [27182, 8, 1828, 45904]
    resp = stub.StreamingInputCall(
        iter([M.StreamingInputCallRequest(payload=zeros(n)) for n in sizes]), timeout=TIMEOUT)
    check(resp.aggregated_payload_size == 74922, "aggregated_payload_size %d, expected 74922",
          resp.aggregated_payload_size)


def server_streaming(stub, channel):
    sizes = [31415, 9, 2653, 58979]
    req = M.StreamingOutputCallRequest(
        response_parameters=[M.ResponseParameters(size=n) for n in sizes])
    call = stub.StreamingOutputCall(req, timeout=TIMEOUT)
    got = list(call)
    check(len(got) == 4, "%d responses, expected 4", len(got))
    for i, (resp, n) in enumerate(zip(got, sizes)):
        check_payload(resp.payload, n, "response %d" % i)
    check(call.code() == grpc.StatusCode.OK, "status %s, expected OK", call.code())


def ping_pong(stub, channel):
    pipe = Pipe()
    call = stub.FullDuplexCall(pipe, timeout=TIMEOUT)
    try:
        for i, (out, inp) in enumerate([(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]):
            pipe.add(M.StreamingOutputCallRequest(
                response_parameters=[M.ResponseParameters(size=out)], payload=zeros(inp)))
            resp = next(call, None)
            check(resp is not None, "the stream ended after %d responses, expected 4", i)
            check_payload(resp.payload, out, "response %d" % i)
    finally:
        pipe.close()
    rest = list(call)
    check(not rest, "%d responses after the fourth, expected none", len(rest))
    check(call.code() == grpc.StatusCode.OK, "status %s, expected OK", call.code())


def empty_stream(stub, channel):
    call = stub.FullDuplexCall(iter([]), timeout=TIMEOUT)
    got = list(call)
    check(not got, "%d responses, expected none", len(got))
    check(call.code() == grpc.StatusCode.OK, "status %s, expected OK", call.code())


def timeout_on_sleeping_server(stub, channel):
    pipe = Pipe()
    call = stub.FullDuplexCall(pipe, timeout=0.001)
    pipe.add(M.StreamingOutputCallRequest(payload=zeros(27182)))
    try:
        expect_error(lambda: next(call), grpc.StatusCode.DEADLINE_EXCEEDED, "FullDuplexCall")
    finally:
        pipe.close()


def cancel_after_begin(stub, channel):
    # cancelled 100 ms after the start, when the HEADERS are surely out, so
    # that the server sees the cancellation (RST_STREAM) of a call it began
    pipe = Pipe()
    future = stub.StreamingInputCall.future(pipe, timeout=TIMEOUT)
    time.sleep(0.1)
    future.cancel()
    pipe.close()
    check(future.cancelled(), "the call is not cancelled")
    check(future.code() == grpc.StatusCode.CANCELLED, "status %s, expected CANCELLED",
          future.code())


def cancel_after_first_response(stub, channel):
    pipe = Pipe()
    call = stub.FullDuplexCall(pipe, timeout=TIMEOUT)
    try:
        pipe.add(M.StreamingOutputCallRequest(
            response_parameters=[M.ResponseParameters(size=31415)], payload=zeros(27182)))
        resp = next(call, None)
        check(resp is not None, "the stream ended with no response")
        check_payload(resp.payload, 31415, "the first response")
        call.cancel()
        expect_error(lambda: next(call), grpc.StatusCode.CANCELLED, "the next read")
    finally:
        pipe.close()
    check(call.code() == grpc.StatusCode.CANCELLED, "status %s, expected CANCELLED", call.code())


def status_code_and_message(stub, channel):
    status = M.EchoStatus(code=2, message="test status message")
    e = expect_error(lambda: stub.UnaryCall(M.SimpleRequest(response_status=status),
                                            timeout=TIMEOUT),
                     grpc.StatusCode.UNKNOWN, "UnaryCall")
    check(e.details() == status.message, "UnaryCall: status message %r, expected %r",
          e.details(), status.message)
    pipe = Pipe()
    pipe.add(M.StreamingOutputCallRequest(response_status=status))
    pipe.close()
    call = stub.FullDuplexCall(pipe, timeout=TIMEOUT)
    e = expect_error(lambda: list(call), grpc.StatusCode.UNKNOWN, "FullDuplexCall")
    check(e.details() == status.message, "FullDuplexCall: status message %r, expected %r",
          e.details(), status.message)


def check_echoed(initial, trailing, what):
    got = metadata_value(initial, ECHO_INITIAL[0])
    check(got == ECHO_INITIAL[1], "%s: initial metadata %s = %r, expected %r (all: %r)", what,
          ECHO_INITIAL[0], got, ECHO_INITIAL[1], initial)
    got = metadata_value(trailing, ECHO_TRAILING[0])
    check(got == ECHO_TRAILING[1], "%s: trailing metadata %s = %r, expected %r (all: %r)", what,
          ECHO_TRAILING[0], got, ECHO_TRAILING[1], trailing)


def custom_metadata(stub, channel):
    md = [ECHO_INITIAL, ECHO_TRAILING]
    resp, call = stub.UnaryCall.with_call(
        M.SimpleRequest(response_size=314159, payload=zeros(271828)), metadata=md,
        timeout=TIMEOUT)
    check_payload(resp.payload, 314159, "UnaryCall response")
    check_echoed(call.initial_metadata(), call.trailing_metadata(), "UnaryCall")

    pipe = Pipe()
    pipe.add(M.StreamingOutputCallRequest(
        response_parameters=[M.ResponseParameters(size=314159)], payload=zeros(271828)))
    pipe.close()
    call = stub.FullDuplexCall(pipe, metadata=md, timeout=TIMEOUT)
    got = list(call)
    check(len(got) == 1, "FullDuplexCall: %d responses, expected 1", len(got))
    check_payload(got[0].payload, 314159, "FullDuplexCall response")
    check(call.code() == grpc.StatusCode.OK, "FullDuplexCall: status %s, expected OK",
          call.code())
    check_echoed(call.initial_metadata(), call.trailing_metadata(), "FullDuplexCall")


def unimplemented_method(stub, channel):
    expect_error(lambda: stub.UnimplementedCall(pb.empty.Empty(), timeout=TIMEOUT),
                 grpc.StatusCode.UNIMPLEMENTED, "TestService/UnimplementedCall")


def unimplemented_service(stub, channel):
    other = pb.grpc.UnimplementedServiceStub(channel)
    expect_error(lambda: other.UnimplementedCall(pb.empty.Empty(), timeout=TIMEOUT),
                 grpc.StatusCode.UNIMPLEMENTED, "UnimplementedService/UnimplementedCall")


CASES = {f.__name__: f for f in [
    empty_unary, large_unary, client_streaming, server_streaming, ping_pong, empty_stream,
    timeout_on_sleeping_server, cancel_after_begin, cancel_after_first_response,
    status_code_and_message, custom_metadata, unimplemented_method, unimplemented_service]}


def parse_bool(text):
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError("not a boolean: %r" % text)


def main():
    ap = argparse.ArgumentParser(description="grpcio interop client (grpc.testing.TestService)")
    ap.add_argument("--server_host", default="127.0.0.1")
    ap.add_argument("--server_port", type=int)
    ap.add_argument("--server_host_override", help="the TLS name and :authority to claim")
    ap.add_argument("--test_case", choices=sorted(CASES), metavar="NAME")
    ap.add_argument("--use_tls", type=parse_bool, nargs="?", const=True, default=False)
    ap.add_argument("--ca_file", help="PEM root certificates for --use_tls "
                                      "(default: the system's)")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    args = ap.parse_args()
    if args.list:
        print("\n".join(CASES))
        return 0
    if args.server_port is None or args.test_case is None:
        ap.error("--server_port and --test_case are required")

    target = "%s:%d" % (args.server_host, args.server_port)
    if args.use_tls:
        roots = None
        if args.ca_file:
            with open(args.ca_file, "rb") as f:
                roots = f.read()
        options = []
        if args.server_host_override:
            options.append(("grpc.ssl_target_name_override", args.server_host_override))
            options.append(("grpc.default_authority", args.server_host_override))
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options)
    else:
        options = []
        if args.server_host_override:
            options.append(("grpc.default_authority", args.server_host_override))
        channel = grpc.insecure_channel(target, options)

    name = args.test_case
    try:
        with channel:
            # connected first, so that timeout_on_sleeping_server's 1 ms go
            # to the call, not to the connection
            try:
                grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
            except grpc.FutureTimeoutError:
                raise Failure("no connection to %s within %d s" % (target, TIMEOUT))
            CASES[name](pb.grpc.TestServiceStub(channel), channel)
    except Failure as e:
        print("FAIL %s: %s" % (name, e), file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print("FAIL %s: unexpected status %s: %s" % (name, e.code(), e.details()), file=sys.stderr)
        return 1
    print("PASS %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
