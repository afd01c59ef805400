// The chapter 13 page in a real browser: Debian's Chromium, driven by
// playwright-core. Started by tests/e2e/run.sh, which builds the page, starts
// the service and passes its address:
//   BASE_URL         http://127.0.0.1:PORT (required)
//   CHROMIUM         the browser binary (/usr/bin/chromium)
//   ASYNC_DELAY_MS   the delay the service was started with (300)
//   SCREENSHOT_DIR   where the screenshots go (build/e2e)
//   S3_ENDPOINT      the s3rver the service stores its files in, and
//   S3_BUCKET        its bucket (the file card's check reads s3rver directly)
// Prints one line per check, then "browser: N passed, M failed"; exits 1 if
// any check failed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE_URL = process.env.BASE_URL;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const DELAY_MS = Number(process.env.ASYNC_DELAY_MS ?? 300);
const SHOT_DIR = process.env.SCREENSHOT_DIR || 'build/e2e';
const S3_ENDPOINT = process.env.S3_ENDPOINT;
const S3_BUCKET = process.env.S3_BUCKET;
if (!BASE_URL) {
  console.error('chapter13.test.mjs: set BASE_URL (tests/e2e/run.sh does)');
  process.exit(2);
}

// The flags Debian's Chromium needs to run headless, offline and as root
// (no sandbox, no GPU, no network of its own: no QUIC, no background
// fetches, no updates, no sync); playwright adds --headless and its own
// automation flags.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    const detail = await fn();
    passed++;
    console.log(`ok - ${name}${detail ? ` (${detail})` : ''} [${Date.now() - started} ms]`);
    return true;
  } catch (err) {
    failed++;
    console.log(`FAIL - ${name}: ${String(err.message || err).split('\n')[0]}`);
    return false;
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// Records, from the first byte of the page on, when the loading state and the
// message first appeared in the DOM.
function recordAppearances() {
  window.__e2e = { loadingAt: null, messageAt: null };
  const scan = () => {
    const now = performance.now();
    if (window.__e2e.loadingAt === null && document.querySelector('[data-testid=loading]')) {
      window.__e2e.loadingAt = now;
    }
    if (window.__e2e.messageAt === null && document.querySelector('[data-testid=message]')) {
      window.__e2e.messageAt = now;
    }
  };
  new MutationObserver(scan).observe(document, { childList: true, subtree: true });
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weave-e2e-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    timeout: 30000,
  });
} catch (err) {
  console.log(`FAIL - launch ${CHROMIUM}: ${String(err.message).split('\n')[0]}`);
  console.log('browser: 0 passed, 1 failed');
  fs.rmSync(userDataDir, { recursive: true, force: true });
  process.exit(1);
}

const page = context.pages()[0] || (await context.newPage());
page.setDefaultTimeout(5000);

// Anything that goes wrong on a page: console errors, uncaught exceptions,
// failed requests, HTTP errors.
const problems = [];
// Problems a check provokes on purpose, each forgiven once (a substring).
const provoked = [];
function note(problem) {
  const i = provoked.findIndex((part) => problem.includes(part));
  if (i >= 0) provoked.splice(i, 1);
  else problems.push(problem);
}
function watch(p, prefix = '') {
  p.on('console', (msg) => {
    if (msg.type() === 'error') note(`${prefix}console error: ${msg.text()}`);
  });
  p.on('pageerror', (err) => note(`${prefix}uncaught: ${err.message}`));
  p.on('requestfailed', (req) =>
    note(`${prefix}request failed: ${req.method()} ${req.url()} (${req.failure()?.errorText})`),
  );
  p.on('response', (res) => {
    if (res.status() >= 400) note(`${prefix}HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
}
watch(page);
await page.addInitScript(recordAppearances);

const sections = await fetch(new URL('/api/sections', BASE_URL)).then((r) => r.json());
const live = sections.sections.filter((s) => s.status === 'live');
const card = (id) => page.locator(`[data-testid=section-card][data-section="${id}"]`);
const panel = (route) => page.locator(`[data-testid=route-panel][data-route="${route}"]`);

await check('GET / serves the page', async () => {
  const res = await page.goto(new URL('/', BASE_URL).href, { waitUntil: 'domcontentloaded' });
  assert(res && res.status() === 200, `status ${res && res.status()}`);
  assert((await page.title()).includes('weave'), `title "${await page.title()}"`);
  return `title "${await page.title()}"`;
});

await check('h1[data-testid=message] shows "Asynchronous Response" from /async-endpoint', async () => {
  try {
    await page.waitForFunction(
      () => document.querySelector('[data-testid=message]')?.textContent.trim() === 'Asynchronous Response',
      null,
      { timeout: 10000 },
    );
  } catch (err) {
    const shown = await page.evaluate(() => {
      const el = document.querySelector('[data-testid=message], [data-testid=error], [data-testid=loading]');
      return el ? `${el.dataset.testid}: "${el.textContent.trim()}"` : 'nothing';
    });
    throw new Error(`not within 10 s; the page shows ${shown}`);
  }
  const tag = await page.locator('[data-testid=message]').evaluate((el) => el.tagName);
  assert(tag === 'H1', `the message is in a <${tag.toLowerCase()}>, not an <h1>`);
});

await check('the loading state ("Waiting for /async-endpoint…") showed before the message', async () => {
  const seen = await page.evaluate(() => window.__e2e);
  assert(seen && seen.loadingAt !== null, 'no [data-testid=loading] element ever appeared');
  assert(seen.messageAt !== null && seen.loadingAt < seen.messageAt, 'the message appeared before the loading state');
  return `loading for ${Math.round(seen.messageAt - seen.loadingAt)} ms`;
});

await check(`the page shows how long the request took (>= ASYNC_DELAY_MS=${DELAY_MS})`, async () => {
  const ms = Number(await page.locator('[data-testid=latency]').getAttribute('data-ms'));
  assert(ms >= DELAY_MS * 0.95, `latency ${ms} ms is under the service's delay of ${DELAY_MS} ms`);
  return `${ms} ms`;
});

await check(`the sections grid shows all ${sections.sections.length} sections, ${live.length} live`, async () => {
  await page.locator('[data-testid=sections]').waitFor();
  assert(live.length > 0, '/api/sections lists no live section');
  for (const s of sections.sections) {
    const c = card(s.id);
    assert((await c.count()) === 1, `no card for §${s.id}`);
    assert((await c.getAttribute('data-status')) === s.status, `§${s.id} is not shown as ${s.status}`);
    const badge = (await c.locator('[data-testid=badge]').textContent()).trim();
    const want = s.status === 'live' ? 'live' : 'planned';
    assert(badge === want, `§${s.id}'s badge says "${badge}", not "${want}"`);
    if (s.file) assert((await c.textContent()).includes(s.file), `§${s.id}'s card does not name ${s.file}`);
  }
  return live.map((s) => `§${s.id}`).join(' ');
});

await check('live sections are grouped first, planned ones after them', async () => {
  const ids = async (testid) =>
    page.locator(`[data-testid=${testid}] [data-testid=section-card]`).evaluateAll((els) => els.map((e) => e.dataset.section));
  const shownLive = await ids('sections-live');
  const shownPlanned = await ids('sections-planned');
  const want = (list) => list.map((s) => s.id).join(' ');
  assert(shownLive.join(' ') === want(live), `live group: ${shownLive.join(' ')}`);
  const planned = sections.sections.filter((s) => s.status !== 'live');
  assert(shownPlanned.join(' ') === want(planned), `planned group: ${shownPlanned.join(' ')}`);
  return `${shownLive.length} + ${shownPlanned.length}`;
});

await check('GET /data lists its items', async () => {
  const items = panel('GET /data').locator('[data-testid=data-items] li');
  await items.first().waitFor();
  const text = (await items.allTextContents()).join(' ');
  for (const name of ['alpha', 'beta', 'gamma']) assert(text.includes(name), `no "${name}" in "${text}"`);
  return `${await items.count()} items`;
});

await check('POST /echo: Send echoes the typed text back', async () => {
  const text = `Hello from headless Chromium (run ${Math.random().toString(16).slice(2, 6)})`;
  const echo = panel('POST /echo');
  await echo.locator('[data-testid=echo-input]').fill(text);
  await echo.locator('[data-testid=echo-send]').click();
  const result = echo.locator('[data-testid=echo-result]');
  await result.waitFor();
  assert((await result.textContent()) === text, `echoed "${await result.textContent()}"`);
  const meta = await echo.locator('[data-testid=result-meta]').textContent();
  assert(meta.includes('text/plain'), `content type not shown as text/plain: "${meta}"`);
});

for (const [route, message] of [
  ['GET /hello', 'Hello, Prometheus!'],
  ['GET /async-view/', 'Asynchronous Response'],
]) {
  await check(`${route}: Call shows "${message}"`, async () => {
    const p = panel(route);
    await p.locator('[data-testid=call-button]').click();
    const result = p.locator('[data-testid=call-result]');
    await result.waitFor({ timeout: 5000 + DELAY_MS });
    const body = JSON.parse(await result.textContent());
    assert(body.message === message, `answered ${JSON.stringify(body)}`);
    return await p.locator('[data-testid=result-ms]').textContent();
  });
}

await check('GET /proxy/data: Call shows the items the service fetched from its own /data over HTTP', async () => {
  const p = panel('GET /proxy/data');
  await p.locator('[data-testid=call-button]').click();
  const result = p.locator('[data-testid=call-result]');
  await result.waitFor({ timeout: 5000 });
  const body = JSON.parse(await result.textContent());
  const names = (body.items || []).map((item) => item.name).join(', ');
  assert(body.service === 'data' && names === 'alpha, beta, gamma', `answered ${JSON.stringify(body)}`);
  return await p.locator('[data-testid=result-ms]').textContent();
});

await check('GET /users: the page lists the users and adds one (POST /users), a bad name shows the 422', async () => {
  const p = panel('GET /users');
  await p.locator('[data-testid=users-count]').waitFor();
  const before = await p.locator('[data-testid=user]').count();
  const name = `Alice ${Math.random().toString(16).slice(2, 6)}`;
  await p.locator('[data-testid=user-name]').fill(name);
  await p.locator('[data-testid=user-create]').click();
  const created = p.locator('[data-testid=user-created]');
  await created.waitFor();
  assert((await created.textContent()).includes(name), `created line: "${await created.textContent()}"`);
  const row = p.locator('[data-testid=user]').filter({ hasText: name });
  await row.waitFor();
  assert((await p.locator('[data-testid=user]').count()) === before + 1, 'the list did not grow by one');
  // the service has it too
  const id = await row.getAttribute('data-id');
  const got = await fetch(new URL(`/users/${id}`, BASE_URL)).then((r) => r.json());
  assert(got.name === name, `GET /users/${id} answered ${JSON.stringify(got)}`);
  // a name of 51 characters: the 422's words, and nothing added (the 422
  // and the browser's console line about it are provoked here)
  provoked.push('HTTP 422: POST', 'status of 422');
  await p.locator('[data-testid=user-name]').fill('x'.repeat(51));
  await p.locator('[data-testid=user-create]').click();
  const err = p.locator('[data-testid=panel-error]');
  await err.waitFor();
  const text = await err.textContent();
  assert(text.includes('422') && text.includes('name: String should have at most 50 characters'), `error: "${text}"`);
  assert((await p.locator('[data-testid=user]').count()) === before + 1, 'a refused name was added');
  // §13.3.2's panel reads it back by id, and an unknown id is a 404
  const look = panel('GET /users/{id}');
  await look.locator('[data-testid=user-id]').fill(id);
  await look.locator('[data-testid=user-get]').click();
  const res = look.locator('[data-testid=user-result]');
  await res.waitFor();
  const body = JSON.parse(await res.textContent());
  assert(body.name === name && String(body.id) === id, `GET /users/${id} on the page: ${JSON.stringify(body)}`);
  provoked.push('HTTP 404: GET', 'status of 404');
  await look.locator('[data-testid=user-id]').fill('999999');
  await look.locator('[data-testid=user-get]').click();
  const missing = look.locator('[data-testid=panel-error]');
  await missing.waitFor();
  assert((await missing.textContent()).includes('404'), `unknown id: "${await missing.textContent()}"`);
  return `user #${id}`;
});

await check('PUT /cache/{key}: the cache card sets a key, reads it back and shows it expire', async () => {
  const p = panel('PUT /cache/{key}');
  const backend = p.locator('[data-testid=cache-backend]');
  await backend.waitFor();
  assert((await backend.textContent()).includes('memory://'), `backend: "${await backend.textContent()}"`);
  const key = `page-${Math.random().toString(16).slice(2, 8)}`;
  const value = `cached at ${Date.now()}`;
  await p.locator('[data-testid=cache-key]').fill(key);
  await p.locator('[data-testid=cache-value]').fill(value);
  await p.locator('[data-testid=cache-ttl]').fill('2');
  await p.locator('[data-testid=cache-set]').click();
  const result = p.locator('[data-testid=cache-result]');
  await result.waitFor();
  const put = JSON.parse(await result.textContent());
  assert(put.key === key && put.ttl === 2 && put.bytes === value.length, `PUT answered ${JSON.stringify(put)}`);
  await p.locator('[data-testid=cache-get]').click();
  await p.locator('[data-testid=cache-result]', { hasText: value }).waitFor({ timeout: 1500 });
  // the service has it too, for any client
  const direct = await fetch(new URL(`/cache/${key}`, BASE_URL)).then((r) => r.text());
  assert(direct === value, `GET /cache/${key} answered "${direct}"`);
  // the card watches the key until the cache answers 404 (its console line is provoked)
  provoked.push('HTTP 404: GET', 'status of 404');
  const expired = p.locator('[data-testid=cache-expired]');
  await expired.waitFor({ timeout: 6000 });
  const gone = await fetch(new URL(`/cache/${key}`, BASE_URL));
  assert(gone.status === 404, `after the TTL, GET /cache/${key} answered ${gone.status}`);
  // a key with a space is the 422's words
  provoked.push('HTTP 422: PUT', 'status of 422');
  await p.locator('[data-testid=cache-key]').fill('has space');
  await p.locator('[data-testid=cache-set]').click();
  const err = p.locator('[data-testid=panel-error]');
  await err.waitFor();
  assert((await err.textContent()).includes('422'), `bad key: "${await err.textContent()}"`);
  return `key ${key} expired`;
});

await check('POST /messages: the queue card publishes, shows each message live as the consumers ack it, and "exit" stops them until restarted', async () => {
  const p = panel('POST /messages');
  await p.locator('[data-testid=messages-live][data-streaming=true]').waitFor();
  const text = `hello queue ${Math.random().toString(16).slice(2, 8)}`;
  await p.locator('[data-testid=messages-text]').fill(text);
  await p.locator('[data-testid=messages-send]').click();
  await p.locator(`[data-testid=queue-message][data-text="${text}"]`).waitFor({ timeout: 3000 });
  await p.locator('[data-testid=messages-exit]').click();
  await p.locator('[data-testid=messages-state][data-consumer=stopped]').waitFor({ timeout: 3000 });
  const waiting = `waits for the restart ${Date.now()}`;
  await p.locator('[data-testid=messages-text]').fill(waiting);
  await p.locator('[data-testid=messages-send]').click();
  await page.waitForTimeout(300);
  assert((await p.locator(`[data-testid=queue-message][data-text="${waiting}"]`).count()) === 0, 'processed while stopped');
  const state = await fetch(new URL('/messages', BASE_URL)).then((r) => r.json());
  assert(state.consumer === 'stopped' && state.pending === 1, `GET /messages: ${JSON.stringify(state).slice(0, 120)}`);
  await p.locator('[data-testid=messages-restart]').click();
  await p.locator(`[data-testid=queue-message][data-text="${waiting}"]`).waitFor({ timeout: 3000 });
  await p.locator('[data-testid=messages-state][data-consumer=running]').waitFor({ timeout: 3000 });
  return `"${text}" live, "exit" stopped, restart processed the waiting one`;
});

await check('POST /files: the file card uploads a chosen file to S3, lists it, downloads it and deletes it', async () => {
  assert(S3_ENDPOINT && S3_BUCKET, 'S3_ENDPOINT and S3_BUCKET are not set (tests/e2e/run.sh sets them)');
  const p = panel('POST /files');
  const storage = p.locator('[data-testid=files-storage]');
  await storage.waitFor();
  const where = `s3://${S3_BUCKET}/uploads/`;
  assert((await storage.textContent()).includes(where), `storage: "${await storage.textContent()}"`);
  const name = `notes ü ${Math.random().toString(16).slice(2, 8)}.txt`;
  const content = Buffer.from(`uploaded from the page at ${Date.now()}\n`.repeat(2000));
  await p.locator('[data-testid=files-input]').setInputFiles({ name, mimeType: 'text/plain', buffer: content });
  await p.locator('[data-testid=files-upload]').click();
  const uploaded = p.locator('[data-testid=files-uploaded]');
  await uploaded.waitFor();
  assert((await uploaded.textContent()).includes(name), `upload said "${await uploaded.textContent()}"`);
  const row = p.locator(`[data-testid=file][data-name="${name}"]`);
  await row.waitFor();
  // in s3rver itself, at the chapter's uploads/ key (s3rver serves reads without a signature)
  const objectUrl = `${S3_ENDPOINT}/${S3_BUCKET}/uploads/${encodeURIComponent(name)}`;
  const stored = await fetch(objectUrl, { headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
  const storedBody = Buffer.from(await stored.arrayBuffer());
  assert(stored.status === 200 && storedBody.equals(content), `s3rver has ${stored.status}, ${storedBody.length} bytes`);
  // the link downloads it, as an attachment with its name
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.locator('[data-testid=file-download]').click(),
  ]);
  assert(download.suggestedFilename() === name, `downloaded as "${download.suggestedFilename()}"`);
  const got = fs.readFileSync(await download.path());
  assert(got.equals(content), `downloaded ${got.length} bytes, uploaded ${content.length}`);
  await row.locator('[data-testid=file-delete]').click();
  await row.waitFor({ state: 'detached' });
  const gone = await fetch(objectUrl, { headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
  assert(gone.status === 404, `after Delete, s3rver answers ${gone.status}`);
  return `${content.length} bytes through ${where}`;
});

await check('GET /metrics: the page shows a live request rate that follows the traffic', async () => {
  const p = panel('GET /metrics');
  const rate = p.locator('[data-testid=req-rate]');
  await p.locator('[data-testid=req-total]').waitFor();
  const total0 = Number(await p.locator('[data-testid=req-total]').textContent());
  assert(total0 > 0, `served since start: ${total0}`);
  // 200 requests from the page's origin, then the next two scrapes must show them
  await page.evaluate(async () => {
    for (let i = 0; i < 20; i++) await Promise.all(Array.from({ length: 10 }, () => fetch('/healthz')));
  });
  await page.waitForFunction(
    (want) => Number(document.querySelector('[data-route="GET /metrics"] [data-testid=req-total]')?.textContent) >= want,
    total0 + 200,
    { timeout: 10000 },
  );
  let shown = 0;
  const until = Date.now() + 10000;
  while (Date.now() < until) {
    shown = Number(await rate.textContent());
    if (shown > 10) break;
    await page.waitForTimeout(200);
  }
  assert(Number.isFinite(shown) && shown > 10, `the rate shown is "${await rate.textContent()}" after 200 requests`);
  return `${shown} requests/s`;
});

// §13.5.1 through the page: the echo boxes on /ws and /ws/echo, then the chat
// room on /ws/chat with a second page in another browser.
for (const [route, sent, want, fast] of [
  ['WS /ws', 'hello ws', 'Echo: hello ws', false],
  ['WS /ws/echo', 'hello exact echo', 'hello exact echo', true],
]) {
  await check(`${route}: the echo box connects, and Send "${sent}" shows "${want}"`, async () => {
    const box = panel(route);
    await box.locator('[data-testid=ws-status][data-state=open]').waitFor();
    await box.locator('[data-testid=ws-input]').fill(sent);
    await box.locator('[data-testid=ws-send]').click();
    const reply = box.locator('[data-testid=ws-reply]').first();
    await box.locator('[data-testid=ws-reply][data-state=done]').first().waitFor({ timeout: 5000 + DELAY_MS });
    const text = await reply.locator('[data-testid=ws-reply-text]').textContent();
    assert(text === want, `the newest reply is "${text}"`);
    const ms = Number(await reply.getAttribute('data-ms'));
    if (fast) assert(ms < DELAY_MS, `round trip ${ms} ms: not at once`);
    else assert(ms >= DELAY_MS * 0.95, `round trip ${ms} ms is under the service's delay of ${DELAY_MS} ms`);
    return `round trip ${ms} ms`;
  });
}

const chat = (p) => p.locator('[data-testid=route-panel][data-route="WS /ws/chat"]');
const chatMe = async (p) => {
  const me = chat(p).locator('[data-testid=chat-me]:not([data-me=""])');
  await me.waitFor();
  return me.getAttribute('data-me');
};
const chatMessage = (p, text) =>
  chat(p)
    .locator('[data-testid=chat-entry][data-kind=message]')
    .filter({ has: p.locator('[data-testid=chat-text]', { hasText: text }) });
let me1 = null;
let me2 = null;
let browser2 = null;
let page2 = null;

await check('WS /ws/chat: the page joins the room and shows its own join as "you"', async () => {
  await chat(page).locator('[data-testid=ws-status][data-state=open]').waitFor();
  me1 = await chatMe(page);
  assert(/^[\d.:[\]a-f]+:\d+$/.test(me1), `its own address is "${me1}"`);
  const own = chat(page).locator(`[data-testid=chat-entry][data-kind=join][data-from="${me1}"]`);
  assert((await own.getAttribute('data-mine')) === 'true', 'its own join is not marked as its own');
  return `joined as ${me1}`;
});

await check('WS /ws/chat: a second page, in another browser, joins; the first page logs its join', async () => {
  browser2 = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
  const context2 = await browser2.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  page2 = await context2.newPage();
  page2.setDefaultTimeout(5000);
  watch(page2, 'page 2: ');
  await page2.goto(new URL('/', BASE_URL).href, { waitUntil: 'domcontentloaded' });
  await chat(page2).locator('[data-testid=ws-status][data-state=open]').waitFor({ timeout: 10000 });
  me2 = await chatMe(page2);
  assert(me2 !== me1, `both pages joined as ${me1}`);
  const join = chat(page).locator(`[data-testid=chat-entry][data-kind=join][data-from="${me2}"]`);
  await join.waitFor();
  assert((await join.getAttribute('data-mine')) === 'false', "page 2's join is marked as page 1's own");
  const count = await chat(page).locator('[data-testid=chat-members]').getAttribute('data-count');
  assert(count === '2', `page 1 counts ${count} members`);
  return `page 2 is ${me2}`;
});

await check('WS /ws/chat: a message from page 1 reaches page 2, marked "you" on page 1 only', async () => {
  assert(page2, 'no second page');
  const text = `hello from page 1 (run ${Math.random().toString(16).slice(2, 6)})`;
  await chat(page).locator('[data-testid=chat-input]').fill(text);
  await chat(page).locator('[data-testid=chat-send]').click();
  const there = chatMessage(page2, text);
  await there.waitFor();
  assert((await there.getAttribute('data-from')) === me1, `page 2 shows it from ${await there.getAttribute('data-from')}`);
  assert((await there.getAttribute('data-mine')) === 'false', 'page 2 marks it as its own');
  const here = chatMessage(page, text);
  await here.waitFor();
  assert((await here.getAttribute('data-mine')) === 'true', 'page 1 does not mark it as its own');
  const who = (await here.locator('[data-testid=chat-who]').textContent()).trim();
  assert(who === 'you', `page 1 shows it from "${who}"`);
  assert((await chat(page).locator('[data-testid=chat-input]').inputValue()) === '', 'the input was not cleared');

  const answer = 'hi page 1, page 2 here';
  await chat(page2).locator('[data-testid=chat-input]').fill(answer);
  await chat(page2).locator('[data-testid=chat-send]').click();
  const back = chatMessage(page, answer);
  await back.waitFor();
  assert((await back.getAttribute('data-from')) === me2, `page 1 shows the answer from ${await back.getAttribute('data-from')}`);
  return 'and page 2’s answer back';
});

const shot = path.join(SHOT_DIR, 'chapter13.png');
await check(`full-page screenshot saved to ${shot}`, async () => {
  fs.mkdirSync(SHOT_DIR, { recursive: true });
  await page.evaluate(() => document.activeElement?.blur());
  await page.mouse.move(0, 0);
  await page.screenshot({ path: shot, fullPage: true, animations: 'disabled' });
  const size = fs.statSync(shot).size;
  assert(size > 10000, `only ${size} bytes`);
  return `${Math.round(size / 1024)} KiB`;
});

await check('WS /ws/chat: when page 2 goes away, page 1 logs its leave', async () => {
  assert(browser2 && me2, 'no second page');
  await browser2.close();
  browser2 = null;
  const leave = chat(page).locator(`[data-testid=chat-entry][data-kind=leave][data-from="${me2}"]`);
  await leave.waitFor();
  const count = await chat(page).locator('[data-testid=chat-members]').getAttribute('data-count');
  assert(count === '1', `page 1 still counts ${count} members`);
});
if (browser2) await browser2.close();

await check('at 390 px wide (a phone) nothing overflows sideways', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  await page.screenshot({ path: path.join(SHOT_DIR, 'chapter13-narrow.png'), fullPage: true, animations: 'disabled' });
  await page.setViewportSize({ width: 1280, height: 900 });
  assert(widths[0] <= widths[1], `the page is ${widths[0]} px wide in a ${widths[1]} px window`);
});

await check('no console error, uncaught exception, failed request or HTTP error on the page', async () => {
  assert(problems.length === 0, `${problems.length}: ${problems.join('; ')}`);
});

// A second page whose /async-endpoint fails: the error state and its retry.
// (Its own console errors are expected and not collected.)
await check('when /async-endpoint fails: an error with a Retry button, and Retry recovers', async () => {
  const p2 = await context.newPage();
  try {
    await p2.route('**/async-endpoint', (route) => route.abort('connectionrefused'));
    await p2.goto(new URL('/', BASE_URL).href);
    const error = p2.locator('[data-testid=error]');
    await error.waitFor({ timeout: 10000 });
    assert((await p2.locator('[data-testid=message]').count()) === 0, 'a message is shown next to the error');
    await p2.unroute('**/async-endpoint');
    await p2.locator('[data-testid=retry]').click();
    await p2.locator('[data-testid=message]').waitFor({ timeout: 10000 });
    const text = (await p2.locator('[data-testid=message]').textContent()).trim();
    assert(text === 'Asynchronous Response', `after Retry: "${text}"`);
  } finally {
    await p2.close();
  }
});

// A third page whose first /ws/chat connection is closed by the "service"
// (playwright's WebSocket routing) with 1013: the closed state with its code,
// then Reconnect goes through to the real room.
await check('when /ws/chat closes: the panel shows the close code, and Reconnect joins the room again', async () => {
  const p3 = await context.newPage();
  try {
    let connections = 0;
    await p3.routeWebSocket(/\/ws\/chat$/, (ws) => {
      connections++;
      if (connections > 1) return void ws.connectToServer();
      ws.send(JSON.stringify({ event: 'join', from: '192.0.2.1:4242' }));
      setTimeout(() => ws.close({ code: 1013, reason: 'try again later' }), 100);
    });
    await p3.goto(new URL('/', BASE_URL).href);
    const room = chat(p3);
    await room.locator('[data-testid=ws-status][data-state=closed][data-code="1013"]').waitFor({ timeout: 10000 });
    const error = (await room.locator('[data-testid=panel-error]').textContent()).trim();
    assert(error.includes('1013'), `the error says "${error}"`);
    const lost = room.locator('[data-testid=chat-entry][data-kind=system]').last();
    assert((await lost.textContent()).includes('1013'), `the log says "${await lost.textContent()}"`);
    assert(await room.locator('[data-testid=chat-send]').isDisabled(), 'Send is enabled while closed');
    await room.locator('[data-testid=ws-reconnect]').click();
    await room.locator('[data-testid=ws-status][data-state=open]').waitFor();
    const me = await chatMe(p3);
    assert(me !== '192.0.2.1:4242', 'still the first connection');
    assert((await room.locator('[data-testid=panel-error]').count()) === 0, 'the error is still shown after Reconnect');
    return `"${error}", then joined as ${me}`;
  } finally {
    await p3.close();
  }
});

await context.close();
fs.rmSync(userDataDir, { recursive: true, force: true });
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
