# aio_server.py: the grpc.aio anchor of bench/run_grpc.sh, the BenchService
# of bench.proto served as the book's server.py (examples/chapter13/grpc/
# server.py, §13.6.2) serves MyService: grpc.aio.server with the book's
# ThreadPoolExecutor(max_workers=10), async handlers, asyncio.run; SayHello
# without the book's `await asyncio.sleep(1)`. StreamHello is server
# streaming as grpc.aio's documentation writes it, an async generator.
#
#   GRPC_PORT=port PYTHONPATH=<dir of bench_pb2*.py> /usr/bin/python3 aio_server.py
#
# bench_pb2 and bench_pb2_grpc come from bench.proto (the suite generates
# them with grpc_tools.protoc).
from concurrent import futures
import asyncio
import os

import grpc
import bench_pb2
import bench_pb2_grpc


class BenchServicer(bench_pb2_grpc.BenchServiceServicer):
    async def SayHello(self, request, context):
        return bench_pb2.HelloResponse(message=f"Hello, {request.name}!")

    async def StreamHello(self, request, context):
        for i in range(request.count):
            yield bench_pb2.HelloResponse(message=f"Hello, {request.name}! {i}")


async def serve():
    server = grpc.aio.server(futures.ThreadPoolExecutor(max_workers=10))
    bench_pb2_grpc.add_BenchServiceServicer_to_server(BenchServicer(), server)
    port = server.add_insecure_port('127.0.0.1:%s' % os.environ.get("GRPC_PORT", "50051"))
    await server.start()
    print("listening on %d" % port, flush=True)
    await server.wait_for_termination()

if __name__ == "__main__":
    asyncio.run(serve())
