// bench/ws/ws_server.js: the Node `ws` anchor of bench/run_ws.sh.
//
//   node ws_server.js PORT
//
// One process, permessage-deflate off. /echo echoes every message as it came
// (text as text, binary as binary); /chat is a broadcast room like weave's
// /ws/chat: every text a member sends is relayed to every member as
// {"from":"<peer>","text":"..."}. The relay is written the fastest way a Node
// user would: the JSON encoded once per message and turned into one Buffer of
// UTF-8 once, then that same Buffer sent to every member as a text frame
// (send(buf, { binary: false }): ws writes a Buffer as it is, without
// encoding a string to UTF-8 again for each of the members), as weave's hub
// encodes once. No join/leave events: only the relay of one message is timed.
'use strict';
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2]);
const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok\n');
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 16 << 20 });
const room = new Set();

wss.on('connection', (ws, req) => {
    if (req.url === '/echo') {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    } else if (req.url === '/chat') {
        const from = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
        room.add(ws);
        ws.on('message', (data, isBinary) => {
            if (isBinary)
                return;
            const out = Buffer.from(JSON.stringify({ from, text: data.toString() }));
            for (const m of room)
                if (m.readyState === WebSocket.OPEN)
                    m.send(out, { binary: false });
        });
        ws.on('close', () => room.delete(ws));
    } else {
        ws.close(1008, 'no such path');
    }
});
server.listen(port, '127.0.0.1', () => console.log(`listening on ws://127.0.0.1:${port}`));
process.on('SIGTERM', () => process.exit(0));
