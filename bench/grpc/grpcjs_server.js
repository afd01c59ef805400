// grpcjs_server.js: the @grpc/grpc-js anchor of bench/run_grpc.sh, the
// BenchService of bench.proto as grpc-js's own examples serve a service:
// @grpc/proto-loader reads the .proto at start, handlers are callbacks,
// StreamHello writes each message with call.write and ends with call.end.
// One Node process (one JavaScript thread), h2c on 127.0.0.1.
//
//   GRPC_PORT=port node grpcjs_server.js
//
// @grpc/grpc-js and @grpc/proto-loader as package-lock.json pins them (the
// suite runs `npm ci` here on first use).
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const def = protoLoader.loadSync(path.join(__dirname, 'bench.proto'), {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const bench = grpc.loadPackageDefinition(def).bench;

function sayHello(call, callback) {
  callback(null, { message: `Hello, ${call.request.name}!` });
}

function streamHello(call) {
  const { name, count } = call.request;
  for (let i = 0; i < count; i++) call.write({ message: `Hello, ${name}! ${i}` });
  call.end();
}

const server = new grpc.Server();
server.addService(bench.BenchService.service, { SayHello: sayHello, StreamHello: streamHello });
const port = process.env.GRPC_PORT || '50051';
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    console.error(`grpcjs_server: ${err.message}`);
    process.exit(1);
  }
  console.log(`listening on ${bound}`);
});
