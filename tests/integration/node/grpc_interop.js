// gRPC's interop test peer on @grpc/grpc-js (pinned in package.json here),
// the service and messages loaded by @grpc/proto-loader from
// tests/integration/grpc/test.proto. As gRPC's
// doc/interop-test-descriptions.md describes them:
//
//   node grpc_interop.js server --port PORT [--host 127.0.0.1]
//     grpc.testing.TestService: EmptyCall, UnaryCall, StreamingOutputCall,
//     StreamingInputCall, FullDuplexCall, HalfDuplexCall, with Echo Status
//     (response_status ends the call with that code and message) and Echo
//     Metadata (x-grpc-test-echo-initial back in the initial metadata,
//     x-grpc-test-echo-trailing-bin in the trailing metadata) and
//     interval_us; UnimplementedCall and UnimplementedService are not
//     implemented. No compression. Prints "listening on PORT" once it serves
//     (--port 0 takes a free port); SIGTERM or SIGINT stops it, exit 0.
//
//   node grpc_interop.js client --server_port PORT --test_case NAME
//                               [--server_host 127.0.0.1]
//     One case; "PASS NAME" on stdout and exit 0 when it passes, "FAIL NAME:
//     why" on stderr and exit 1 when not, exit 2 on bad arguments.
//     `node grpc_interop.js client --list` prints the case names.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = path.join(__dirname, '..', 'grpc');
const TIMEOUT_MS = 30000; // every call but timeout_on_sleeping_server's
const ECHO_INITIAL = 'x-grpc-test-echo-initial';
const ECHO_TRAILING = 'x-grpc-test-echo-trailing-bin';
const INITIAL_VALUE = 'test_initial_metadata_value';
const TRAILING_VALUE = Buffer.from([0xab, 0xab, 0xab]);
const S = grpc.status;

function load() {
  const def = protoLoader.loadSync('test.proto', {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def).grpc.testing;
}

function usage(msg) {
  process.stderr.write(`grpc_interop.js: ${msg}\n` +
    'usage: node grpc_interop.js server --port PORT [--host HOST]\n' +
    '       node grpc_interop.js client --server_port PORT --test_case NAME ' +
    '[--server_host HOST]\n' +
    '       node grpc_interop.js client --list\n');
  process.exit(2);
}

// --name value and --name=value; a flag with no value is "true".
function parseArgs(argv, known) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z_]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !known.includes(m[1])) usage(`unknown argument ${argv[i]}`);
    if (m[2] !== undefined) {
      out[m[1]] = m[2];
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      out[m[1]] = argv[++i];
    } else {
      out[m[1]] = 'true';
    }
  }
  return out;
}

function zeros(n) {
  return {body: Buffer.alloc(n)};
}

// ------------------------------------------------------------------ server

function echoMetadata(call) {
  const initial = new grpc.Metadata();
  const trailing = new grpc.Metadata();
  for (const v of call.metadata.get(ECHO_INITIAL)) initial.add(ECHO_INITIAL, v);
  for (const v of call.metadata.get(ECHO_TRAILING)) trailing.add(ECHO_TRAILING, v);
  if (initial.get(ECHO_INITIAL).length > 0) call.sendMetadata(initial);
  return trailing;
}

function asksStatus(req) {
  return req.response_status && req.response_status.code !== 0;
}

function statusError(req, trailing) {
  return {code: req.response_status.code, details: req.response_status.message,
    metadata: trailing};
}

const sleep = (us) => new Promise((resolve) => setTimeout(resolve, us / 1000));

// Writes the responses one StreamingOutputCallRequest asks for, each after
// its interval.
async function respond(call, req) {
  for (const p of req.response_parameters) {
    if (p.interval_us > 0) await sleep(p.interval_us);
    if (call.cancelled) return;
    call.write({payload: {type: 'COMPRESSABLE', body: Buffer.alloc(p.size)}});
  }
}

// The requests of a streaming call, answered in order; `buffered` holds them
// all until the half-close (HalfDuplexCall).
function serveStream(call, buffered) {
  const trailing = echoMetadata(call);
  let chain = Promise.resolve();
  let ended = false;
  const handle = (req) => {
    chain = chain.then(async () => {
      if (ended) return;
      if (asksStatus(req)) {
        ended = true;
        call.emit('error', statusError(req, trailing));
        return;
      }
      await respond(call, req);
    });
  };
  const held = [];
  call.on('data', (req) => (buffered ? held.push(req) : handle(req)));
  call.on('end', () => {
    held.forEach(handle);
    chain = chain.then(() => {
      if (!ended) {
        ended = true;
        call.end(trailing);
      }
    });
  });
  call.on('error', () => {}); // a cancelled call: nothing left to do
}

const handlers = {
  EmptyCall(call, callback) {
    callback(null, {}, echoMetadata(call));
  },
  UnaryCall(call, callback) {
    const trailing = echoMetadata(call);
    if (asksStatus(call.request)) return callback(statusError(call.request, trailing));
    callback(null, {payload: {type: 'COMPRESSABLE', body: Buffer.alloc(call.request.response_size)}},
      trailing);
  },
  StreamingOutputCall(call) {
    const trailing = echoMetadata(call);
    if (asksStatus(call.request)) return call.emit('error', statusError(call.request, trailing));
    respond(call, call.request).then(() => call.end(trailing));
  },
  StreamingInputCall(call, callback) {
    const trailing = echoMetadata(call);
    let total = 0;
    call.on('data', (req) => { total += req.payload ? req.payload.body.length : 0; });
    call.on('end', () => callback(null, {aggregated_payload_size: total}, trailing));
    call.on('error', () => {});
  },
  FullDuplexCall(call) {
    serveStream(call, false);
  },
  HalfDuplexCall(call) {
    serveStream(call, true);
  },
  // UnimplementedCall left out: grpc-js answers UNIMPLEMENTED.
};

function server(args) {
  const a = parseArgs(args, ['port', 'host']);
  if (a.port === undefined) usage('server needs --port');
  const testing = load();
  const srv = new grpc.Server();
  srv.addService(testing.TestService.service, handlers);
  const address = `${a.host || '127.0.0.1'}:${a.port}`;
  srv.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      process.stderr.write(`grpc_interop.js: cannot listen on ${address}: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`listening on ${port}\n`);
  });
  const stop = () => {
    const force = setTimeout(() => { srv.forceShutdown(); process.exit(0); }, 1000);
    srv.tryShutdown(() => { clearTimeout(force); process.exit(0); });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// ------------------------------------------------------------------ client

class Failure extends Error {}

function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

function checkPayload(payload, size, what) {
  const body = payload ? payload.body : Buffer.alloc(0);
  check(body.length === size, `${what}: payload body of ${body.length} bytes, expected ${size}`);
  check(body.equals(Buffer.alloc(size)), `${what}: payload body is not all zeros`);
}

function codeName(code) {
  return Object.keys(S).find((k) => S[k] === code) || String(code);
}

function checkCode(got, want, what, details) {
  check(got === want, `${what}: status ${codeName(got)}${details ? ` (${details})` : ''}, ` +
    `expected ${codeName(want)}`);
}

const deadline = () => ({deadline: Date.now() + TIMEOUT_MS});

// A unary or client-streaming call as a promise of {err, resp, initial,
// status}: settles once both its callback and its 'status' have come.
function unary(start) {
  return new Promise((resolve) => {
    const out = {initial: null};
    let pending = 2;
    const done = () => { if (--pending === 0) resolve(out); };
    const call = start((err, resp) => { out.err = err; out.resp = resp; done(); });
    call.on('metadata', (md) => { out.initial = md; });
    call.on('status', (st) => { out.status = st; done(); });
    out.call = call;
  });
}

// Reads a server stream one message at a time: next() gives the next
// message, or null once the stream is over; finished() gives {messages
// still unread, status, initial metadata}.
class Reader {
  constructor(call) {
    this.call = call;
    this.queue = [];
    this.waiting = null;
    this.over = false;
    this.initial = null;
    this.status = null;
    this.endOrError = false;
    call.on('metadata', (md) => { this.initial = md; });
    call.on('data', (m) => { this.queue.push(m); this.wake(); });
    call.on('end', () => { this.endOrError = true; this.wake(); });
    call.on('error', () => { this.endOrError = true; this.wake(); });
    call.on('status', (st) => { this.status = st; this.wake(); });
  }

  wake() {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w();
    }
  }

  done() {
    return this.status !== null && (this.endOrError || this.status.code !== S.OK);
  }

  async next() {
    while (this.queue.length === 0 && !this.done()) {
      await new Promise((resolve) => { this.waiting = resolve; });
    }
    return this.queue.length > 0 ? this.queue.shift() : null;
  }

  async finished() {
    while (!this.done()) {
      await new Promise((resolve) => { this.waiting = resolve; });
    }
    const rest = this.queue;
    this.queue = [];
    return {rest, status: this.status, initial: this.initial};
  }
}

function echoMetadataRequest() {
  const md = new grpc.Metadata();
  md.set(ECHO_INITIAL, INITIAL_VALUE);
  md.set(ECHO_TRAILING, TRAILING_VALUE);
  return md;
}

function checkEchoed(initial, trailing, what) {
  const i = initial ? initial.get(ECHO_INITIAL) : [];
  check(i.length === 1 && i[0] === INITIAL_VALUE,
    `${what}: initial metadata ${ECHO_INITIAL} = ${JSON.stringify(i)}, expected "${INITIAL_VALUE}"`);
  const t = trailing ? trailing.get(ECHO_TRAILING) : [];
  check(t.length === 1 && Buffer.isBuffer(t[0]) && t[0].equals(TRAILING_VALUE),
    `${what}: trailing metadata ${ECHO_TRAILING} = ${t.map((v) => v.toString('hex'))}, ` +
    'expected ababab');
}

const cases = {
  async empty_unary(c) {
    const r = await unary((cb) => c.test.EmptyCall({}, deadline(), cb));
    checkCode(r.status.code, S.OK, 'EmptyCall', r.status.details);
    check(r.resp !== null && r.resp !== undefined, 'EmptyCall: no response');
  },

  async large_unary(c) {
    const r = await unary((cb) => c.test.UnaryCall(
      {response_size: 314159, payload: zeros(271828)}, deadline(), cb));
    checkCode(r.status.code, S.OK, 'UnaryCall', r.status.details);
    checkPayload(r.resp.payload, 314159, 'UnaryCall response');
  },

  async client_streaming(c) {
    const r = await unary((cb) => {
      const call = c.test.StreamingInputCall(deadline(), cb);
      for (const n of [27182, 8, 1828, 45904]) call.write({payload: zeros(n)});
      call.end();
      return call;
    });
    checkCode(r.status.code, S.OK, 'StreamingInputCall', r.status.details);
    check(r.resp.aggregated_payload_size === 74922,
      `aggregated_payload_size ${r.resp.aggregated_payload_size}, expected 74922`);
  },

  async server_streaming(c) {
    const sizes = [31415, 9, 2653, 58979];
    const call = c.test.StreamingOutputCall(
      {response_parameters: sizes.map((size) => ({size}))}, deadline());
    const f = await new Reader(call).finished();
    checkCode(f.status.code, S.OK, 'StreamingOutputCall', f.status.details);
    check(f.rest.length === 4, `${f.rest.length} responses, expected 4`);
    f.rest.forEach((m, i) => checkPayload(m.payload, sizes[i], `response ${i}`));
  },

  async ping_pong(c) {
    const call = c.test.FullDuplexCall(deadline());
    const reader = new Reader(call);
    const steps = [[31415, 27182], [9, 8], [2653, 1828], [58979, 45904]];
    for (let i = 0; i < steps.length; i++) {
      call.write({response_parameters: [{size: steps[i][0]}], payload: zeros(steps[i][1])});
      const m = await reader.next();
      if (m === null) {
        call.cancel();
        throw new Failure(`the stream ended after ${i} responses (status ` +
          `${codeName(reader.status.code)}: ${reader.status.details}), expected 4`);
      }
      checkPayload(m.payload, steps[i][0], `response ${i}`);
    }
    call.end();
    const f = await reader.finished();
    checkCode(f.status.code, S.OK, 'FullDuplexCall', f.status.details);
    check(f.rest.length === 0, `${f.rest.length} responses after the fourth, expected none`);
  },

  async empty_stream(c) {
    const call = c.test.FullDuplexCall(deadline());
    const reader = new Reader(call);
    call.end();
    const f = await reader.finished();
    checkCode(f.status.code, S.OK, 'FullDuplexCall', f.status.details);
    check(f.rest.length === 0, `${f.rest.length} responses, expected none`);
  },

  async timeout_on_sleeping_server(c) {
    const call = c.test.FullDuplexCall({deadline: Date.now() + 1});
    const reader = new Reader(call);
    call.write({payload: zeros(27182)});
    const f = await reader.finished();
    checkCode(f.status.code, S.DEADLINE_EXCEEDED, 'FullDuplexCall', f.status.details);
    check(f.rest.length === 0, `${f.rest.length} responses, expected none`);
  },

  // Cancelled 100 ms after the start, once the HEADERS are out, not at
  // once: grpc-js 1.14.7 ends a call cancelled at once as CANCELLED for the
  // caller but still opens its stream afterwards, never reset, so the
  // server sees it only at its deadline (and this process waits for it).
  async cancel_after_begin(c) {
    const r = await unary((cb) => {
      const call = c.test.StreamingInputCall(deadline(), cb);
      setTimeout(() => call.cancel(), 100);
      return call;
    });
    checkCode(r.err ? r.err.code : S.OK, S.CANCELLED, 'StreamingInputCall');
    checkCode(r.status.code, S.CANCELLED, 'StreamingInputCall status');
  },

  async cancel_after_first_response(c) {
    const call = c.test.FullDuplexCall(deadline());
    const reader = new Reader(call);
    call.write({response_parameters: [{size: 31415}], payload: zeros(27182)});
    const m = await reader.next();
    check(m !== null, 'the stream ended with no response');
    checkPayload(m.payload, 31415, 'the first response');
    call.cancel();
    const f = await reader.finished();
    checkCode(f.status.code, S.CANCELLED, 'FullDuplexCall', f.status.details);
  },

  async status_code_and_message(c) {
    const status = {code: 2, message: 'test status message'};
    const r = await unary((cb) => c.test.UnaryCall({response_status: status}, deadline(), cb));
    checkCode(r.status.code, S.UNKNOWN, 'UnaryCall', r.status.details);
    check(r.status.details === status.message,
      `UnaryCall: status message ${JSON.stringify(r.status.details)}, ` +
      `expected ${JSON.stringify(status.message)}`);

    const call = c.test.FullDuplexCall(deadline());
    const reader = new Reader(call);
    call.write({response_status: status});
    call.end();
    const f = await reader.finished();
    checkCode(f.status.code, S.UNKNOWN, 'FullDuplexCall', f.status.details);
    check(f.status.details === status.message,
      `FullDuplexCall: status message ${JSON.stringify(f.status.details)}, ` +
      `expected ${JSON.stringify(status.message)}`);
  },

  async custom_metadata(c) {
    const r = await unary((cb) => c.test.UnaryCall(
      {response_size: 314159, payload: zeros(271828)}, echoMetadataRequest(), deadline(), cb));
    checkCode(r.status.code, S.OK, 'UnaryCall', r.status.details);
    checkPayload(r.resp.payload, 314159, 'UnaryCall response');
    checkEchoed(r.initial, r.status.metadata, 'UnaryCall');

    const call = c.test.FullDuplexCall(echoMetadataRequest(), deadline());
    const reader = new Reader(call);
    call.write({response_parameters: [{size: 314159}], payload: zeros(271828)});
    call.end();
    const f = await reader.finished();
    checkCode(f.status.code, S.OK, 'FullDuplexCall', f.status.details);
    check(f.rest.length === 1, `FullDuplexCall: ${f.rest.length} responses, expected 1`);
    checkPayload(f.rest[0].payload, 314159, 'FullDuplexCall response');
    checkEchoed(f.initial, f.status.metadata, 'FullDuplexCall');
  },

  async unimplemented_method(c) {
    const r = await unary((cb) => c.test.UnimplementedCall({}, deadline(), cb));
    checkCode(r.status.code, S.UNIMPLEMENTED, 'TestService/UnimplementedCall', r.status.details);
  },

  async unimplemented_service(c) {
    const r = await unary((cb) => c.other.UnimplementedCall({}, deadline(), cb));
    checkCode(r.status.code, S.UNIMPLEMENTED, 'UnimplementedService/UnimplementedCall',
      r.status.details);
  },
};

async function client(args) {
  const a = parseArgs(args, ['server_host', 'server_port', 'test_case', 'use_tls', 'list']);
  if (a.list) {
    process.stdout.write(Object.keys(cases).join('\n') + '\n');
    return;
  }
  if (a.server_port === undefined || a.test_case === undefined) {
    usage('client needs --server_port and --test_case');
  }
  if (!Object.prototype.hasOwnProperty.call(cases, a.test_case)) {
    usage(`unknown test case ${a.test_case}; one of ${Object.keys(cases).join(', ')}`);
  }
  if (a.use_tls !== undefined && a.use_tls !== 'false') usage('--use_tls is not supported here');
  const testing = load();
  const target = `${a.server_host || '127.0.0.1'}:${a.server_port}`;
  const creds = grpc.credentials.createInsecure();
  const c = {test: new testing.TestService(target, creds)};
  c.other = new testing.UnimplementedService(target, creds, {channelOverride: c.test.getChannel()});
  const name = a.test_case;
  let code = 0;
  try {
    // connected first, so that timeout_on_sleeping_server's 1 ms go to the
    // call, not to the connection
    await new Promise((resolve, reject) => c.test.waitForReady(Date.now() + TIMEOUT_MS,
      (err) => (err ? reject(new Failure(`no connection to ${target}: ${err.message}`)) :
        resolve())));
    await cases[name](c);
    process.stdout.write(`PASS ${name}\n`);
  } catch (e) {
    process.stderr.write(`FAIL ${name}: ${e instanceof Failure ? e.message : e.stack}\n`);
    code = 1;
  }
  c.test.close();
  process.exitCode = code;
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'server') {
  server(rest);
} else if (mode === 'client') {
  client(rest);
} else {
  usage('the first argument is server or client');
}
