// amqplib (pinned in package.json) as the Node peer of weave's AMQP client
// (tests/integration/test_amqp_peers.py).
//
//   node amqp_peer.js publish URL QUEUE COUNT FROM
//       publish COUNT messages "FROM-i" with confirms: text/plain, message
//       id "FROM-i", correlation id "corr-i", priority 5, persistent,
//       headers {from: FROM, n: i, ok: true, nested: {k: "v"}}
//   node amqp_peer.js consume URL QUEUE COUNT
//       consume COUNT messages (manual acks) and print each as one JSON line
'use strict';
const amqp = require('amqplib');

async function main() {
    const [mode, url, queue, countText, from] = process.argv.slice(2);
    const count = Number(countText);
    const conn = await amqp.connect(url);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, {durable: true});
    if (mode === 'publish') {
        for (let i = 0; i < count; i++) {
            ch.sendToQueue(queue, Buffer.from(`${from}-${i}`), {
                contentType: 'text/plain',
                messageId: `${from}-${i}`,
                correlationId: `corr-${i}`,
                priority: 5,
                persistent: true,
                headers: {from, n: i, ok: true, nested: {k: 'v'}},
            });
        }
        await ch.waitForConfirms();
        console.log(`published ${count}`);
    } else if (mode === 'consume') {
        await ch.prefetch(10);
        let seen = 0;
        await new Promise((resolve) => {
            ch.consume(queue, (m) => {
                const p = m.properties;
                console.log(JSON.stringify({
                    body: m.content.toString(),
                    contentType: p.contentType,
                    messageId: p.messageId,
                    correlationId: p.correlationId,
                    priority: p.priority,
                    deliveryMode: p.deliveryMode,
                    headers: p.headers,
                }));
                ch.ack(m);
                if (++seen === count)
                    resolve();
            });
        });
    } else {
        throw new Error(`unknown mode ${mode}`);
    }
    await ch.close();
    await conn.close();
}

main().catch((e) => {
    console.error(e.stack || String(e));
    process.exit(1);
});
