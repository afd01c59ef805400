# server.py: the chapter's gRPC server (§13.6.2), as the book writes it,
# with its address taken from GRPC_PORT (the book's 50051 by default) so
# tests can run it beside other servers. Generate service_pb2 and
# service_pb2_grpc first, from examples/chapter13/service.proto:
#     python3 -m grpc_tools.protoc -I.. --python_out=. --grpc_python_out=. ../service.proto
# weave's GET /grpc/hello calls it when the service is started with
# --grpc-target localhost:50051.
from concurrent import futures
import grpc
import service_pb2
import service_pb2_grpc
import asyncio
import os


class MyServiceServicer(service_pb2_grpc.MyServiceServicer):
    async def SayHello(self, request, context):
        await asyncio.sleep(1)  # Simulate an asynchronous operation
        return service_pb2.HelloResponse(message=f"Hello, {request.name}!")


async def serve():
    server = grpc.aio.server(futures.ThreadPoolExecutor(max_workers=10))
    service_pb2_grpc.add_MyServiceServicer_to_server(MyServiceServicer(), server)
    port = server.add_insecure_port('[::]:%s' % os.environ.get("GRPC_PORT", "50051"))
    await server.start()
    print("listening on %d" % port, flush=True)
    await server.wait_for_termination()

if __name__ == "__main__":
    asyncio.run(serve())
