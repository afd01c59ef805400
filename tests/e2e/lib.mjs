// What the chapter 13 browser tests share (chapter13.test.mjs over plain
// HTTP, chapter13-h2.test.mjs over TLS and HTTP/2): the Chromium flags, the
// check() counter and its summary line, the page watcher, and the checks that
// run against any base URL: the page renders, the async call shows its
// result, the sections grid is there, and the WebSocket cards work (ws:// or
// wss://, from the page's own origin).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

// The flags Debian's Chromium needs to run headless, offline and as root
// (no sandbox, no GPU, no network of its own: no QUIC, no background
// fetches, no updates, no sync); playwright adds --headless and its own
// automation flags.
export const CHROMIUM_ARGS = [
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
export async function check(name, fn) {
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
export function assert(cond, message) {
  if (!cond) throw new Error(message);
}
// The last line run.sh reads; the exit status follows it.
export function finish() {
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

// Chromium with a fresh profile of its own (extra flags after the common
// ones); on failure, one FAIL line, the summary, and exit 1.
export async function launchPage(chromiumPath, extraArgs = []) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'weave-e2e-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
      timeout: 30000,
    });
  } catch (err) {
    console.log(`FAIL - launch ${chromiumPath}: ${String(err.message).split('\n')[0]}`);
    fs.rmSync(userDataDir, { recursive: true, force: true });
    failed++;
    finish();
  }
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(5000);
  const close = async () => {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, page, close };
}

// Anything that goes wrong on a page: console errors, uncaught exceptions,
// failed requests, HTTP errors.
export const problems = [];
// Problems a check provokes on purpose, each forgiven once (a substring).
export const provoked = [];
function note(problem) {
  const i = provoked.findIndex((part) => problem.includes(part));
  if (i >= 0) provoked.splice(i, 1);
  else problems.push(problem);
}
export function watch(p, prefix = '') {
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
export async function checkNoProblems() {
  await check('no console error, uncaught exception, failed request or HTTP error on the page', async () => {
    assert(problems.length === 0, `${problems.length}: ${problems.join('; ')}`);
  });
}

// Records, from the first byte of the page on, when the loading state and the
// message first appeared in the DOM (an init script: add it before goto).
export function recordAppearances() {
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

export const panel = (page, route) => page.locator(`[data-testid=route-panel][data-route="${route}"]`);

// The page at baseUrl renders: GET / answers 200 with the page, the
// /async-endpoint call shows its message after the loading state and no
// sooner than the service's delay, and the sections grid shows every section
// of /api/sections (`sections`, as the service answers it), live ones first.
// The page must carry recordAppearances as an init script.
export async function checkPageRenders(page, baseUrl, sections, delayMs) {
  const live = sections.sections.filter((s) => s.status === 'live');
  const card = (id) => page.locator(`[data-testid=section-card][data-section="${id}"]`);

  await check('GET / serves the page', async () => {
    const res = await page.goto(new URL('/', baseUrl).href, { waitUntil: 'domcontentloaded' });
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

  await check(`the page shows how long the request took (>= ASYNC_DELAY_MS=${delayMs})`, async () => {
    const ms = Number(await page.locator('[data-testid=latency]').getAttribute('data-ms'));
    assert(ms >= delayMs * 0.95, `latency ${ms} ms is under the service's delay of ${delayMs} ms`);
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
}

// POST /echo through its card: the text typed comes back, as text/plain.
export async function checkEchoCard(page) {
  await check('POST /echo: Send echoes the typed text back', async () => {
    const text = `Hello from headless Chromium (run ${Math.random().toString(16).slice(2, 6)})`;
    const echo = panel(page, 'POST /echo');
    await echo.locator('[data-testid=echo-input]').fill(text);
    await echo.locator('[data-testid=echo-send]').click();
    const result = echo.locator('[data-testid=echo-result]');
    await result.waitFor();
    assert((await result.textContent()) === text, `echoed "${await result.textContent()}"`);
    const meta = await echo.locator('[data-testid=result-meta]').textContent();
    assert(meta.includes('text/plain'), `content type not shown as text/plain: "${meta}"`);
  });
}

export const chat = (p) => p.locator('[data-testid=route-panel][data-route="WS /ws/chat"]');
export async function chatMe(p) {
  const me = chat(p).locator('[data-testid=chat-me]:not([data-me=""])');
  await me.waitFor();
  return me.getAttribute('data-me');
}
const chatMessage = (p, text) =>
  chat(p)
    .locator('[data-testid=chat-entry][data-kind=message]')
    .filter({ has: p.locator('[data-testid=chat-text]', { hasText: text }) });

// §13.5.1 through the page (already at baseUrl): the echo boxes on /ws and
// /ws/echo, then the chat room on /ws/chat with a second page in another
// browser, launched with the same flags plus `extraArgs`. `beforeLeave` runs
// while both pages are in the room (the plain test's screenshot).
export async function checkWebSockets(page, baseUrl, { chromiumPath, extraArgs = [], delayMs, beforeLeave }) {
  const scheme = new URL(baseUrl).protocol === 'https:' ? 'wss' : 'ws';
  for (const [route, sent, want, fast] of [
    ['WS /ws', 'hello ws', 'Echo: hello ws', false],
    ['WS /ws/echo', 'hello exact echo', 'hello exact echo', true],
  ]) {
    await check(`${route} (${scheme}): the echo box connects, and Send "${sent}" shows "${want}"`, async () => {
      const box = panel(page, route);
      await box.locator('[data-testid=ws-status][data-state=open]').waitFor();
      await box.locator('[data-testid=ws-input]').fill(sent);
      await box.locator('[data-testid=ws-send]').click();
      const reply = box.locator('[data-testid=ws-reply]').first();
      await box.locator('[data-testid=ws-reply][data-state=done]').first().waitFor({ timeout: 5000 + delayMs });
      const text = await reply.locator('[data-testid=ws-reply-text]').textContent();
      assert(text === want, `the newest reply is "${text}"`);
      const ms = Number(await reply.getAttribute('data-ms'));
      if (fast) assert(ms < delayMs, `round trip ${ms} ms: not at once`);
      else assert(ms >= delayMs * 0.95, `round trip ${ms} ms is under the service's delay of ${delayMs} ms`);
      return `round trip ${ms} ms`;
    });
  }

  let me1 = null;
  let me2 = null;
  let browser2 = null;
  let page2 = null;

  await check(`WS /ws/chat (${scheme}): the page joins the room and shows its own join as "you"`, async () => {
    await chat(page).locator('[data-testid=ws-status][data-state=open]').waitFor();
    me1 = await chatMe(page);
    assert(/^[\d.:[\]a-f]+:\d+$/.test(me1), `its own address is "${me1}"`);
    const own = chat(page).locator(`[data-testid=chat-entry][data-kind=join][data-from="${me1}"]`);
    assert((await own.getAttribute('data-mine')) === 'true', 'its own join is not marked as its own');
    return `joined as ${me1}`;
  });

  await check('WS /ws/chat: a second page, in another browser, joins; the first page logs its join', async () => {
    browser2 = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      timeout: 30000,
    });
    const context2 = await browser2.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    page2 = await context2.newPage();
    page2.setDefaultTimeout(5000);
    watch(page2, 'page 2: ');
    await page2.goto(new URL('/', baseUrl).href, { waitUntil: 'domcontentloaded' });
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

  if (beforeLeave) await beforeLeave();

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
}
