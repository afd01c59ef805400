// Small fetch and WebSocket helpers shared by every card. All URLs are relative
// (WebSocket ones are built from location): the page is served by the same
// weave service that answers the API.

const DEFAULT_TIMEOUT_MS = 15000;

// Sends one request and measures it. Resolves to
//   { status, contentType, text, json, ms }
// (json is null when the body is not JSON). Rejects with an Error whose
// message says what went wrong (network, timeout, or a non-2xx status).
export async function request(path, { method = 'GET', body, contentType, signal, timeoutMs } = {}) {
  const controller = new AbortController();
  const abort = () => controller.abort();
  if (signal) {
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs ?? DEFAULT_TIMEOUT_MS);

  const started = performance.now();
  try {
    let response;
    try {
      response = await fetch(path, {
        method,
        body,
        headers: contentType ? { 'Content-Type': contentType } : undefined,
        signal: controller.signal,
        cache: 'no-store',
      });
    } catch (err) {
      if (timedOut) throw new Error(`${method} ${path} timed out after ${timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`);
      if (err.name === 'AbortError') throw err;
      throw new Error(`${method} ${path}: the service did not answer (${err.message})`);
    }
    const text = await response.text();
    const ms = performance.now() - started;
    const type = response.headers.get('Content-Type') || '';
    let json = null;
    if (type.includes('json')) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (!response.ok) {
      let detail = json && (json.error || json.detail || json.message);
      // FastAPI's validation errors: [{loc: ['body', 'name'], msg: ...}]
      if (Array.isArray(detail)) {
        detail = detail
          .map((d) => `${(d.loc || []).slice(1).join('.') || 'body'}: ${d.msg}`)
          .join('; ');
      }
      throw new Error(`${method} ${path} answered ${response.status}${detail ? `: ${detail}` : ''}`);
    }
    return { status: response.status, contentType: type, text, json, ms };
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', abort);
  }
}

export function formatMs(ms) {
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms).toLocaleString('en-US')} ms`;
}

export function prettyJson(value) {
  return JSON.stringify(value, null, 2);
}

// The ws:// (or wss:// behind TLS) URL of a WebSocket route on this origin.
export function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${path}`;
}

// What a WebSocket close code means (RFC 6455 §7.4.1), for the closed states.
const CLOSE_CODES = {
  1000: 'normal closure',
  1001: 'going away',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status code',
  1006: 'connection lost',
  1007: 'invalid payload',
  1008: 'policy violation',
  1009: 'message too big',
  1011: 'server error',
  1012: 'service restart',
  1013: 'try again later',
};

export function describeClose(code, reason) {
  const meaning = reason || CLOSE_CODES[code];
  return meaning ? `${code} · ${meaning}` : String(code);
}

export function clockTime(date = new Date()) {
  return date.toLocaleTimeString('en-GB', { hour12: false });
}
