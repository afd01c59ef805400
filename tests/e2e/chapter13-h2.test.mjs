// The chapter 13 page over HTTPS in Chromium: the document, its script and
// stylesheet and the API calls come over HTTP/2 (ALPN "h2"), on one
// connection; the page works as over plain HTTP (lib.mjs's checks); its
// WebSockets (wss://) go over HTTP/1.1 upgrades on connections of their own,
// since the service does not offer RFC 8441. Started by tests/e2e/run.sh,
// which makes a test CA and a localhost certificate (tests/make_certs.sh) and
// starts the service with them:
//   BASE_URL         https://localhost:PORT (required)
//   TLS_CERT         the service's certificate (required): Chromium is told
//                    to trust its public key (SPKI pin), see below
//   CA_FILE          the test CA that signed it (required)
//   CHROMIUM         the browser binary (/usr/bin/chromium)
//   ASYNC_DELAY_MS   the delay the service was started with (300)
// Node's own fetches trust the CA through NODE_EXTRA_CA_CERTS (run.sh sets it).
// Prints one line per check, then "browser: N passed, M failed".
//
// How Chromium trusts the certificate: Chromium on Linux takes extra trust
// anchors only from the NSS database in $HOME/.pki/nssdb, which needs
// certutil (libnss3-tools, not among the test's packages) to write. Instead
// the test pins the certificate's public key with
// --ignore-certificate-errors-spki-list=BASE64(SHA-256(SPKI)): Chromium
// accepts a chain it cannot verify only if it carries that very key; any
// other certificate is still refused (the first check shows Chromium refuses
// this one without the pin). playwright's ignoreHTTPSErrors, which accepts
// any certificate, is not used.
import crypto from 'node:crypto';
import fs from 'node:fs';
import {
  assert,
  check,
  checkEchoCard,
  checkNoProblems,
  checkPageRenders,
  checkWebSockets,
  CHROMIUM_ARGS,
  finish,
  launchPage,
  recordAppearances,
  watch,
} from './lib.mjs';
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL;
const TLS_CERT = process.env.TLS_CERT;
const CA_FILE = process.env.CA_FILE;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DELAY_MS = Number(process.env.ASYNC_DELAY_MS ?? 300);
if (!BASE_URL || !TLS_CERT || !CA_FILE) {
  console.error('chapter13-h2.test.mjs: set BASE_URL, TLS_CERT and CA_FILE (tests/e2e/run.sh does)');
  process.exit(2);
}
const origin = new URL(BASE_URL).origin;

const cert = new crypto.X509Certificate(fs.readFileSync(TLS_CERT));
const ca = new crypto.X509Certificate(fs.readFileSync(CA_FILE));
const spki = crypto.createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
const PIN = [`--ignore-certificate-errors-spki-list=${spki}`];

await check(`the service's certificate is the test CA's, for ${new URL(BASE_URL).hostname}; its SPKI is pinned`, async () => {
  assert(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${TLS_CERT} is not signed by ${CA_FILE}`);
  assert(cert.checkHost(new URL(BASE_URL).hostname), `${TLS_CERT} does not name ${new URL(BASE_URL).hostname}`);
  return `sha256/${spki}`;
});

await check('without the pin, Chromium refuses the certificate', async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
  try {
    const p = await browser.newPage();
    const err = await p.goto(BASE_URL, { timeout: 10000 }).then(
      () => null,
      (e) => e,
    );
    assert(err && /ERR_CERT_AUTHORITY_INVALID/.test(err.message), err ? err.message.split('\n')[0] : 'the page loaded');
    return 'net::ERR_CERT_AUTHORITY_INVALID';
  } finally {
    await browser.close();
  }
});

const { context, page, close } = await launchPage(CHROMIUM, PIN);
watch(page);
await page.addInitScript(recordAppearances);

// What Chromium's network stack saw (DevTools protocol): the protocol and the
// connection of every response, and the handshake status of every WebSocket.
const cdp = await context.newCDPSession(page);
await cdp.send('Network.enable');
const responses = [];
const sockets = new Map(); // requestId -> { url, status }
cdp.on('Network.responseReceived', (e) =>
  responses.push({ url: e.response.url, protocol: e.response.protocol, connectionId: e.response.connectionId }),
);
cdp.on('Network.webSocketCreated', (e) => sockets.set(e.requestId, { url: e.url, status: null }));
cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
  const s = sockets.get(e.requestId);
  if (s) s.status = e.response.status;
});

const sections = await fetch(new URL('/api/sections', BASE_URL)).then((r) => r.json());
await checkPageRenders(page, BASE_URL, sections, DELAY_MS);
await checkEchoCard(page);

await check('Performance API: the document, app.js, app.css and the API calls came over "h2"', async () => {
  const { nav, resources } = await page.evaluate(() => ({
    nav: performance.getEntriesByType('navigation')[0].nextHopProtocol,
    resources: performance
      .getEntriesByType('resource')
      .map((e) => ({ path: new URL(e.name).pathname, origin: new URL(e.name).origin, type: e.initiatorType, protocol: e.nextHopProtocol })),
  }));
  assert(nav === 'h2', `the document came over "${nav}"`);
  const want = [
    ['/app.js', 'script'],
    ['/app.css', 'link'],
    ['/api/sections', 'fetch'],
    ['/async-endpoint', 'fetch'],
    ['/echo', 'fetch'],
  ];
  for (const [p, type] of want) {
    const e = resources.find((r) => r.path === p && r.type === type);
    assert(e, `no ${type} entry for ${p} (entries: ${resources.map((r) => r.path).join(' ')})`);
    assert(e.protocol === 'h2', `${p} came over "${e.protocol}"`);
  }
  const other = resources.filter((r) => r.origin === origin && r.protocol !== 'h2');
  assert(other.length === 0, `not over h2: ${other.map((r) => `${r.path} (${r.protocol})`).join(', ')}`);
  return `document and ${resources.length} resources: ${[...new Set(resources.map((r) => r.path))].join(' ')}`;
});

await check("one HTTP/2 connection carried every response of the page (DevTools' connectionId)", async () => {
  const mine = responses.filter((r) => r.url.startsWith(origin));
  assert(mine.length >= 5, `only ${mine.length} responses seen`);
  const notH2 = mine.filter((r) => r.protocol !== 'h2');
  assert(notH2.length === 0, `not h2: ${notH2.map((r) => `${r.url} (${r.protocol})`).join(', ')}`);
  const ids = new Set(mine.map((r) => r.connectionId));
  assert(ids.size === 1, `${ids.size} connections: ${[...ids].join(' ')}`);
  return `${mine.length} responses on connection ${[...ids][0]}`;
});

await checkWebSockets(page, BASE_URL, { chromiumPath: CHROMIUM, extraArgs: PIN, delayMs: DELAY_MS });

await check('the WebSockets were HTTP/1.1 upgrades (101), not RFC 8441 streams on the h2 connection', async () => {
  const seen = [...sockets.values()];
  for (const p of ['/ws', '/ws/echo', '/ws/chat']) {
    const s = seen.find((w) => new URL(w.url).pathname === p);
    assert(s, `no WebSocket to ${p} (seen: ${seen.map((w) => w.url).join(' ')})`);
    assert(new URL(s.url).protocol === 'wss:', `${p} opened as ${s.url}`);
    assert(s.status === 101, `${p}'s handshake answered ${s.status}`);
  }
  return seen.map((w) => `${new URL(w.url).pathname} ${w.status}`).join(', ');
});

await checkNoProblems();

await cdp.detach();
await close();
finish();
