# client.py: the chapter's gRPC client (§13.6.2), as the book writes it,
# calling GRPC_TARGET (the book's localhost:50051 by default): weave's
# chapter13 --grpc-port 50051 answers it, or server.py. Generate
# service_pb2 and service_pb2_grpc first (see server.py).
import grpc
import service_pb2
import service_pb2_grpc
import asyncio
import os


async def run():
    async with grpc.aio.insecure_channel(os.environ.get("GRPC_TARGET", "localhost:50051")) as channel:
        stub = service_pb2_grpc.MyServiceStub(channel)
        response = await stub.SayHello(service_pb2.HelloRequest(name="Python"))
        print(f"Received message: {response.message}")

if __name__ == "__main__":
    asyncio.run(run())
