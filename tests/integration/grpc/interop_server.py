#!/usr/bin/python3
"""gRPC's interop TestService (grpc.testing, test.proto beside this file) on
grpcio, as gRPC's doc/interop-test-descriptions.md describes the server:

- EmptyCall: the empty message.
- UnaryCall: a payload of response_size zero bytes.
- StreamingOutputCall: one response per ResponseParameters, of its size,
  after its interval_us; then OK.
- StreamingInputCall: at half-close, the sum of the payload sizes received.
- FullDuplexCall: each request answered at once as StreamingOutputCall
  answers its one; OK after the client half-closes.
- HalfDuplexCall: the requests buffered until half-close, then answered.
- UnimplementedCall and UnimplementedService: not implemented (grpcio
  answers UNIMPLEMENTED).
- Echo Status: a request with response_status (code != 0) ends the call with
  that code and message, and nothing after it is processed.
- Echo Metadata: x-grpc-test-echo-initial comes back in the initial metadata,
  x-grpc-test-echo-trailing-bin in the trailing metadata.
- CompressedResponse: response_compressed on UnaryCall, and compressed on
  StreamingOutputCall's parameters, gzip the responses (grpcio cannot tell
  whether a request came compressed, so expect_compressed is not checked).

Usage: interop_server.py --port PORT [--host 127.0.0.1]
                         [--use_tls[=true|false] --cert_file F --key_file F]
It prints "listening on PORT" once it serves (--port 0 takes a free port) and
stops on SIGTERM or SIGINT, exiting 0.
"""
import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

import interop_protos

pb = interop_protos.load()
M = pb.messages

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
CODES = {s.value[0]: s for s in grpc.StatusCode}


def echo_metadata(context):
    md = context.invocation_metadata()
    initial = [(k, v) for k, v in md if k == ECHO_INITIAL]
    trailing = [(k, v) for k, v in md if k == ECHO_TRAILING]
    if initial:
        context.send_initial_metadata(initial)
    if trailing:
        context.set_trailing_metadata(trailing)


def asks_status(request):
    return request.HasField("response_status") and request.response_status.code != 0


def end_with_status(context, status):
    """Ends the call with the status the client asked for (abort raises)."""
    context.abort(CODES.get(status.code, grpc.StatusCode.UNKNOWN), status.message)


def payload(size):
    return M.Payload(type=M.COMPRESSABLE, body=bytes(size))


def respond(request, context):
    """The responses one StreamingOutputCallRequest asks for, each after its
    interval."""
    for p in request.response_parameters:
        if p.interval_us > 0:
            time.sleep(p.interval_us / 1e6)
        if not p.compressed.value:
            context.disable_next_message_compression()
        yield M.StreamingOutputCallResponse(payload=payload(p.size))


class TestService(pb.grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        echo_metadata(context)
        return pb.empty.Empty()

    def UnaryCall(self, request, context):
        echo_metadata(context)
        if asks_status(request):
            end_with_status(context, request.response_status)
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        return M.SimpleResponse(payload=payload(request.response_size))

    def StreamingOutputCall(self, request, context):
        echo_metadata(context)
        if asks_status(request):
            end_with_status(context, request.response_status)
        if any(p.compressed.value for p in request.response_parameters):
            context.set_compression(grpc.Compression.Gzip)
        yield from respond(request, context)

    def StreamingInputCall(self, request_iterator, context):
        echo_metadata(context)
        total = 0
        for request in request_iterator:
            total += len(request.payload.body)
        return M.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        for request in request_iterator:
            if asks_status(request):
                end_with_status(context, request.response_status)
            yield from respond(request, context)

    def HalfDuplexCall(self, request_iterator, context):
        echo_metadata(context)
        requests = list(request_iterator)
        for request in requests:
            if asks_status(request):
                end_with_status(context, request.response_status)
            yield from respond(request, context)

    # UnimplementedCall is left to the generated base class: UNIMPLEMENTED.


def parse_bool(text):
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError("not a boolean: %r" % text)


def main():
    ap = argparse.ArgumentParser(description="grpcio interop server (grpc.testing.TestService)")
    ap.add_argument("--port", type=int, required=True, help="port to listen on, 0 for any free one")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--use_tls", type=parse_bool, nargs="?", const=True, default=False)
    ap.add_argument("--cert_file", help="PEM certificate chain, with --use_tls")
    ap.add_argument("--key_file", help="PEM private key, with --use_tls")
    args = ap.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    pb.grpc.add_TestServiceServicer_to_server(TestService(), server)
    address = "%s:%d" % (args.host, args.port)
    if args.use_tls:
        if not (args.cert_file and args.key_file):
            ap.error("--use_tls needs --cert_file and --key_file")
        with open(args.cert_file, "rb") as f:
            cert = f.read()
        with open(args.key_file, "rb") as f:
            key = f.read()
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        print("interop_server.py: cannot listen on %s" % address, file=sys.stderr)
        return 1
    server.start()
    print("listening on %d" % port, flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
