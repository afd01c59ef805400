// Node's `ws` as an independent WebSocket peer for weave's tests.
//   node ws_peer.js client URL   -> drives weave's /ws/echo: text, binary, 1 MB,
//                                   fragments, ping; prints "N passed, M failed"
//   node ws_peer.js server       -> an echo server on a free port; prints
//                                   "listening PORT" and runs until killed
'use strict';
const WebSocket = require('ws');

async function client(url) {
  let passed = 0, failed = 0;
  const check = (ok, what) => { if (ok) { passed++; console.log('ok - ' + what); } else { failed++; console.log('FAIL - ' + what); } };
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20 });
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  const next = () => new Promise((res) => ws.once('message', (data, isBinary) => res({ data, isBinary })));
  let r;
  ws.send('hello from node ✓'); r = await next();
  check(!r.isBinary && r.data.toString() === 'hello from node ✓', 'text echoed as text');
  const bin = Buffer.from([0, 1, 2, 250, 255]);
  ws.send(bin); r = await next();
  check(r.isBinary && Buffer.compare(r.data, bin) === 0, 'binary echoed as binary');
  const big = Buffer.alloc(1 << 20, 'z');
  ws.send(big.toString()); r = await next();
  check(r.data.length === big.length, '1 MB echoed whole');
  ws.send('frag', { fin: false }); ws.send('ment', { fin: false }); ws.send('ed', { fin: true });
  r = await next();
  check(r.data.toString() === 'fragmented', 'fragments joined into one message');
  const pong = new Promise((res) => ws.once('pong', (d) => res(d.toString())));
  ws.ping('node ping');
  check((await pong) === 'node ping', 'ping answered with the same payload');
  const closed = new Promise((res) => ws.once('close', (code) => res(code)));
  ws.close(4001, 'bye');
  check((await closed) === 4001, 'close handshake echoes the code');
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

function server() {
  const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  wss.on('listening', () => console.log('listening ' + wss.address().port));
}

if (process.argv[2] === 'client') client(process.argv[3]).catch((e) => { console.log('FAIL - ' + e); console.log('0 passed, 1 failed'); process.exit(1); });
else server();
