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
// any check failed. The checks any base URL gets (the page renders, the
// WebSocket cards) are in lib.mjs; chapter13-h2.test.mjs runs them over
// HTTPS and HTTP/2.
import fs from 'node:fs';
import path from 'node:path';
import {
  assert,
  chat,
  chatMe,
  check,
  checkNoProblems,
  checkPageRenders,
  checkEchoCard,
  checkWebSockets,
  finish,
  launchPage,
  panel as panelOn,
  provoked,
  recordAppearances,
  watch,
} from './lib.mjs';

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

const { context, page, close } = await launchPage(CHROMIUM);
watch(page);
await page.addInitScript(recordAppearances);

const sections = await fetch(new URL('/api/sections', BASE_URL)).then((r) => r.json());
const panel = (route) => panelOn(page, route);

await checkPageRenders(page, BASE_URL, sections, DELAY_MS);

await check('GET /data lists its items', async () => {
  const items = panel('GET /data').locator('[data-testid=data-items] li');
  await items.first().waitFor();
  const text = (await items.allTextContents()).join(' ');
  for (const name of ['alpha', 'beta', 'gamma']) assert(text.includes(name), `no "${name}" in "${text}"`);
  return `${await items.count()} items`;
});

await checkEchoCard(page);

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

await check('POST /tasks/add: the task card sends async_add and shows it go PENDING → STARTED → SUCCESS with 5', async () => {
  const p = panel('POST /tasks/add');
  await p.locator('[data-testid=task-x]').fill('2');
  await p.locator('[data-testid=task-y]').fill('3');
  await p.locator('[data-testid=task-submit]').click();
  const result = p.locator('[data-testid=task-result]');
  await result.waitFor({ timeout: 5000 + DELAY_MS });
  assert((await result.textContent()) === '5', `result: "${await result.textContent()}"`);
  const states = await p.locator('[data-testid=task-steps] li').evaluateAll((lis) => lis.map((li) => li.dataset.state));
  assert(states[0] === 'PENDING' && states[states.length - 1] === 'SUCCESS', `states: ${states.join(' → ')}`);
  if (DELAY_MS >= 200) assert(states.includes('STARTED'), `the wait was long enough to see STARTED: ${states.join(' → ')}`);
  // the service reads it back for any client
  const id = await p.locator('[data-testid=task-id]').textContent();
  const direct = await fetch(new URL(`/tasks/${id}`, BASE_URL)).then((r) => r.json());
  assert(direct.state === 'SUCCESS' && direct.result === 5, `GET /tasks/${id}: ${JSON.stringify(direct)}`);
  // add, at once, with floats
  await p.locator('[data-testid=task-x]').fill('2.5');
  await p.locator('[data-testid=task-name]').selectOption('add');
  await p.locator('[data-testid=task-submit]').click();
  await p.locator('[data-testid=task-result]', { hasText: '5.5' }).waitFor({ timeout: 5000 });
  // not a number: FastAPI's 422 words on the card
  provoked.push('HTTP 422: POST', 'status of 422');
  await p.locator('[data-testid=task-x]').fill('two');
  await p.locator('[data-testid=task-submit]').click();
  const err = p.locator('[data-testid=panel-error]');
  await err.waitFor();
  assert((await err.textContent()).includes('422'), `bad x: "${await err.textContent()}"`);
  return states.join(' → ');
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

const shot = path.join(SHOT_DIR, 'chapter13.png');
await checkWebSockets(page, BASE_URL, {
  chromiumPath: CHROMIUM,
  delayMs: DELAY_MS,
  beforeLeave: () =>
    check(`full-page screenshot saved to ${shot}`, async () => {
      fs.mkdirSync(SHOT_DIR, { recursive: true });
      await page.evaluate(() => document.activeElement?.blur());
      await page.mouse.move(0, 0);
      await page.screenshot({ path: shot, fullPage: true, animations: 'disabled' });
      const size = fs.statSync(shot).size;
      assert(size > 10000, `only ${size} bytes`);
      return `${Math.round(size / 1024)} KiB`;
    }),
});

await check('at 390 px wide (a phone) nothing overflows sideways', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  await page.screenshot({ path: path.join(SHOT_DIR, 'chapter13-narrow.png'), fullPage: true, animations: 'disabled' });
  await page.setViewportSize({ width: 1280, height: 900 });
  assert(widths[0] <= widths[1], `the page is ${widths[0]} px wide in a ${widths[1]} px window`);
});

// GET /docs: Swagger UI, built from npm into dist/docs (no CDN), renders the
// service's /openapi.json: its title and the operations.
await check('GET /docs renders the API description in Swagger UI', async () => {
  const p3 = await context.newPage();
  watch(p3, '/docs: ');
  try {
    await p3.goto(new URL('/docs', BASE_URL).href);
    await p3.locator('.swagger-ui .info .title').waitFor({ timeout: 15000 });
    const title = await p3.locator('.swagger-ui .info .title').textContent();
    assert(title.includes('weave chapter 13'), `the title is "${title}"`);
    const ops = p3.locator('.opblock-summary-path');
    await ops.first().waitFor({ timeout: 10000 });
    const paths = await ops.allTextContents();
    assert(paths.some((t) => t.includes('/async-endpoint')), `no /async-endpoint in ${paths.length} operations`);
    fs.mkdirSync(SHOT_DIR, { recursive: true });
    await p3.screenshot({ path: path.join(SHOT_DIR, 'docs.png'), fullPage: false, animations: 'disabled' });
    return `${paths.length} operations`;
  } finally {
    await p3.close();
  }
});

await checkNoProblems();

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

await close();
finish();
