# check.py: calls a BenchService with grpcio's own client (the reference
# client, C-core) and checks its answers: SayHello once, StreamHello with
# COUNT messages. bench/run_grpc.sh runs it on each server before and after
# its runs (readiness, and proof the load left the server answering right).
#
#   PYTHONPATH=<dir of bench_pb2*.py> /usr/bin/python3 check.py PORT COUNT
#
# Exits 0, or 1 with why on stderr.
import sys

import grpc
import bench_pb2
import bench_pb2_grpc


def main():
    port, count = sys.argv[1], int(sys.argv[2])
    with grpc.insecure_channel("127.0.0.1:%s" % port) as ch:
        stub = bench_pb2_grpc.BenchServiceStub(ch)
        r = stub.SayHello(bench_pb2.HelloRequest(name="check"), timeout=5)
        if r.message != "Hello, check!":
            sys.exit("SayHello answered %r" % r.message)
        got = [m.message for m in
               stub.StreamHello(bench_pb2.StreamRequest(name="check", count=count), timeout=5)]
        want = ["Hello, check! %d" % i for i in range(count)]
        if got != want:
            sys.exit("StreamHello answered %d messages, first %r; expected %d"
                     % (len(got), got[:1], count))


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        sys.exit("%s: %s" % (e.code(), e.details()))
