// §13.5.1's WebSocket routes, live from the page: WsEchoPanel (WS /ws, the
// chapter's "Echo: <text>" after the service's delay, and WS /ws/echo, the exact
// echo at once) and ChatPanel (WS /ws/chat, the room on the broadcast hub).
// Each panel keeps one connection open while it is shown and says what state it
// is in; a closed one shows its close code and a Reconnect button.
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { clockTime, describeClose, formatMs, wsUrl } from './api.js';
import { ErrorLine } from './panels.jsx';

// One WebSocket to `path` for the lifetime of the component (or until
// reconnect()). onMessage(data, receivedAt) gets every message. Returns
//   conn: { phase: 'connecting' | 'open' | 'closed', code, reason, error, attempt,
//           wasOpen (closed: whether it had opened) }
//   send(text) -> true if it was sent
//   reconnect()
function useWebSocket(path, onMessage) {
  const [attempt, setAttempt] = useState(0);
  const [conn, setConn] = useState({ phase: 'connecting', attempt: 0 });
  const socket = useRef(null);
  const handler = useRef(onMessage);
  useEffect(() => {
    handler.current = onMessage;
  });

  useEffect(() => {
    setConn({ phase: 'connecting', attempt });
    let ws;
    try {
      ws = new WebSocket(wsUrl(path));
    } catch (err) {
      setConn({ phase: 'closed', attempt, error: `could not open ${path}: ${err.message}` });
      return undefined;
    }
    socket.current = ws;
    let failed = false;
    ws.onopen = () => setConn({ phase: 'open', attempt });
    ws.onmessage = (event) => handler.current?.(event.data, performance.now());
    ws.onerror = () => {
      failed = true;
    };
    ws.onclose = (event) => {
      if (socket.current === ws) socket.current = null;
      setConn((prev) => ({
        phase: 'closed',
        attempt,
        wasOpen: prev.phase === 'open',
        code: event.code,
        reason: event.reason,
        error:
          prev.phase === 'connecting'
            ? `could not connect to ${path}${failed ? ': the service refused or did not answer' : ''}`
            : failed || event.code !== 1000
              ? `the connection closed: ${describeClose(event.code, event.reason)}`
              : null,
      }));
    };
    return () => {
      ws.onmessage = null;
      ws.onerror = null;
      ws.onclose = null;
      if (socket.current === ws) socket.current = null;
      // Closing a socket that is still connecting makes the browser log an
      // error: let it open first.
      if (ws.readyState === WebSocket.CONNECTING) ws.onopen = () => ws.close(1000);
      else {
        ws.onopen = null;
        ws.close(1000);
      }
    };
  }, [path, attempt]);

  const send = useCallback((text) => {
    const ws = socket.current;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(text);
    return true;
  }, []);
  const reconnect = useCallback(() => setAttempt((n) => n + 1), []);
  return [conn, send, reconnect];
}

const PHASE_LABEL = { connecting: 'connecting…', open: 'open' };

// The connection's dot and word; a Reconnect button once it is closed.
function WsStatus({ conn, onReconnect }) {
  const label = conn.phase === 'closed' ? (conn.code ? `closed · ${conn.code}` : 'closed') : PHASE_LABEL[conn.phase];
  return (
    <span className="ws-status-row">
      <span
        className={`ws-status ${conn.phase}`}
        data-testid="ws-status"
        data-state={conn.phase}
        data-code={conn.code ?? ''}
        title={conn.phase === 'closed' && conn.code ? describeClose(conn.code, conn.reason) : undefined}
      >
        <span className="dot" aria-hidden="true" />
        {label}
      </span>
      {conn.phase === 'closed' && (
        <button type="button" className="button small secondary" onClick={onReconnect} data-testid="ws-reconnect">
          Reconnect
        </button>
      )}
    </span>
  );
}

const ECHO_KEEP = 5;
const ECHO_HINTS = {
  '/ws': 'Replies come back as “Echo: …” after the service’s simulated processing delay.',
  '/ws/echo': 'Every message comes back unchanged, at once.',
};

// An echo box: Send puts a text message on the socket; replies are matched to
// what was sent in order (both routes answer in order) and shown newest first
// with their round-trip time.
export function WsEchoPanel({ route, path }) {
  const [entries, setEntries] = useState([]);
  const [text, setText] = useState('Hello over a WebSocket');
  const pending = useRef([]);
  const nextId = useRef(1);
  const [sent, setSent] = useState(0);
  const [answered, setAnswered] = useState(0);

  const onMessage = useCallback((data, at) => {
    const reply = typeof data === 'string' ? data : '(binary message)';
    const waiting = pending.current.shift();
    setAnswered((n) => n + 1);
    if (waiting) {
      setEntries((list) =>
        list.map((e) => (e.id === waiting.id ? { ...e, state: 'done', reply, ms: at - waiting.at } : e)),
      );
    } else {
      const id = nextId.current++;
      setEntries((list) => [{ id, state: 'done', reply, sent: null }, ...list].slice(0, ECHO_KEEP));
    }
  }, []);
  const [conn, send, reconnect] = useWebSocket(path, onMessage);

  // Whatever was waiting when the connection closed will not be answered.
  useEffect(() => {
    if (conn.phase !== 'closed' || pending.current.length === 0) return;
    const lost = new Set(pending.current.map((p) => p.id));
    pending.current = [];
    setEntries((list) => list.map((e) => (lost.has(e.id) ? { ...e, state: 'lost' } : e)));
  }, [conn.phase]);

  const submit = (event) => {
    event.preventDefault();
    if (!text) return;
    const id = nextId.current++;
    const at = performance.now();
    if (!send(text)) return;
    pending.current.push({ id, at });
    setSent((n) => n + 1);
    setEntries((list) => [{ id, state: 'pending', sent: text }, ...list].slice(0, ECHO_KEEP));
  };

  const open = conn.phase === 'open';
  return (
    <form className="panel ws-panel" onSubmit={submit} data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">{route}</code>
        <WsStatus conn={conn} onReconnect={reconnect} />
      </div>
      <div className="ws-compose">
        <input
          className="input"
          value={text}
          onChange={(e) => setText(e.target.value)}
          aria-label={`Message for ${path}`}
          data-testid="ws-input"
        />
        <button type="submit" className="button small" disabled={!open || !text} data-testid="ws-send">
          Send
        </button>
      </div>
      {entries.length === 0 ? (
        <p className="muted small" data-testid="ws-empty">
          {conn.phase === 'connecting' ? `Connecting to ${path}…` : ECHO_HINTS[path] || 'No messages yet.'}
        </p>
      ) : (
        <div className="result">
          <span className="meta ws-meta" data-testid="ws-counts">
            <span>
              {sent} sent · {answered} answered
            </span>
            <span>round trip</span>
          </span>
          <ul className="ws-replies" data-testid="ws-replies">
            {entries.map((e) => (
              <li key={e.id} className={e.state} data-testid="ws-reply" data-state={e.state} data-ms={e.ms != null ? Math.round(e.ms) : ''}>
                {e.state === 'done' && (
                  <>
                    <span className="ws-text" data-testid="ws-reply-text">
                      {e.reply}
                    </span>
                    <span className="ws-ms" title="round trip: sent → reply received">
                      {e.ms != null ? formatMs(e.ms) : '—'}
                    </span>
                  </>
                )}
                {e.state === 'pending' && (
                  <>
                    <span className="ws-text sent">{e.sent}</span>
                    <span className="ws-ms">
                      <span className="spinner micro" aria-hidden="true" /> waiting
                    </span>
                  </>
                )}
                {e.state === 'lost' && (
                  <>
                    <span className="ws-text sent">{e.sent}</span>
                    <span className="ws-ms lost">no reply</span>
                  </>
                )}
              </li>
            ))}
          </ul>
        </div>
      )}
      {conn.phase === 'closed' && conn.error && <ErrorLine error={conn.error} />}
    </form>
  );
}

const CHAT_KEEP = 200;

// Parses one frame of /ws/chat: {"event":"join"|"leave","from":...} or
// {"from":...,"text":...}.
function parseChat(data) {
  if (typeof data !== 'string') return { kind: 'system', text: 'a binary message (not shown)' };
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return { kind: 'system', text: `not JSON: ${data.slice(0, 80)}` };
  }
  if (msg && (msg.event === 'join' || msg.event === 'leave') && typeof msg.from === 'string') {
    return { kind: msg.event, from: msg.from };
  }
  if (msg && typeof msg.from === 'string' && typeof msg.text === 'string') {
    return { kind: 'message', from: msg.from, text: msg.text };
  }
  return { kind: 'system', text: `unexpected: ${data.slice(0, 80)}` };
}

function ChatEntry({ entry }) {
  const who = entry.mine ? 'you' : entry.from;
  const common = {
    'data-testid': 'chat-entry',
    'data-kind': entry.kind,
    'data-from': entry.from ?? '',
    'data-mine': entry.mine ? 'true' : 'false',
  };
  if (entry.kind === 'message') {
    return (
      <li className={`chat-message${entry.mine ? ' mine' : ''}`} {...common}>
        <span className="chat-head">
          <span className="chat-who" data-testid="chat-who">
            {who}
          </span>
          <time>{entry.time}</time>
        </span>
        <span className="chat-text" data-testid="chat-text">
          {entry.text}
        </span>
      </li>
    );
  }
  const line =
    entry.kind === 'join'
      ? entry.mine
        ? `you joined as ${entry.from}`
        : `${entry.from} joined`
      : entry.kind === 'leave'
        ? `${entry.from} left`
        : entry.text;
  return (
    <li className={`chat-event ${entry.kind}`} {...common}>
      <span>{line}</span>
      <time>{entry.time}</time>
    </li>
  );
}

// The chat room: everyone connected to /ws/chat gets every message, their own
// included, and the joins and leaves. The first join after connecting is this
// page's own, which tells which messages are "you".
export function ChatPanel({ route, path }) {
  const [log, setLog] = useState([]);
  const [me, setMe] = useState(null);
  const [members, setMembers] = useState(() => new Set());
  const [text, setText] = useState('');
  const meRef = useRef(null);
  const nextId = useRef(1);
  const logRef = useRef(null);

  const add = useCallback((entry) => {
    const id = nextId.current++;
    setLog((list) => [...list, { id, time: clockTime(), ...entry }].slice(-CHAT_KEEP));
  }, []);

  const onMessage = useCallback(
    (data) => {
      const entry = parseChat(data);
      if (entry.kind === 'join' && meRef.current === null) {
        meRef.current = entry.from;
        setMe(entry.from);
      }
      if (entry.from) {
        setMembers((set) => {
          const next = new Set(set);
          if (entry.kind === 'leave') next.delete(entry.from);
          else next.add(entry.from);
          return next;
        });
      }
      add({ ...entry, mine: entry.from != null && entry.from === meRef.current });
    },
    [add],
  );
  const [conn, send, reconnect] = useWebSocket(path, onMessage);

  // A new connection is a new member: forget who we were and who was here.
  useEffect(() => {
    if (conn.phase !== 'connecting') return;
    meRef.current = null;
    setMe(null);
    setMembers(new Set());
  }, [conn.phase, conn.attempt]);
  // Losing the room leaves a line in the log (a failed connect only shows the
  // error line under the panel).
  useEffect(() => {
    if (conn.phase === 'closed' && conn.wasOpen) {
      add({ kind: 'system', text: `disconnected (${describeClose(conn.code, conn.reason)})` });
    }
  }, [conn.phase, conn.wasOpen, conn.code, conn.reason, add]);

  // Keep the newest entry in view.
  useLayoutEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [log]);

  const submit = (event) => {
    event.preventDefault();
    const message = text.trim();
    if (!message) return;
    if (send(message)) setText('');
  };

  const open = conn.phase === 'open';
  const last = [...log].reverse().find((e) => e.kind !== 'system');
  const lastLine = !last
    ? conn.phase === 'open'
      ? 'waiting for the room to announce you…'
      : null
    : last.kind === 'message'
      ? `last: ${last.mine ? 'you' : last.from} wrote at ${last.time}`
      : `last: ${last.mine ? 'you' : last.from} ${last.kind === 'join' ? 'joined' : 'left'} at ${last.time}`;

  return (
    <form className="panel ws-panel chat-panel" onSubmit={submit} data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">{route}</code>
        <WsStatus conn={conn} onReconnect={reconnect} />
      </div>
      <div className="chat-info">
        <span data-testid="chat-me" data-me={open && me ? me : ''}>
          {open && me ? (
            <>
              you are <code>{me}</code>
            </>
          ) : conn.phase === 'closed' ? (
            'not in the room'
          ) : (
            'joining the room…'
          )}
        </span>
        {open && (
          <span
            className="chat-count"
            data-testid="chat-members"
            data-count={members.size}
            title="Members seen since this page joined (the room announces joins and leaves, not who was already there)"
          >
            {members.size} {members.size === 1 ? 'member' : 'members'} seen
          </span>
        )}
      </div>
      <ol className="chat-log" ref={logRef} data-testid="chat-log" aria-live="polite">
        {log.length === 0 && (
          <li className="chat-empty muted small">
            {conn.phase === 'connecting' ? `Joining ${path}…` : 'Nothing yet: messages and joins show up here.'}
          </li>
        )}
        {log.map((entry) => (
          <ChatEntry key={entry.id} entry={entry} />
        ))}
      </ol>
      <div className="ws-compose">
        <input
          className="input"
          value={text}
          onChange={(e) => setText(e.target.value)}
          placeholder={open ? 'Say something to the room' : 'Not connected'}
          aria-label="Chat message"
          maxLength={4000}
          data-testid="chat-input"
        />
        <button type="submit" className="button small" disabled={!open || !text.trim()} data-testid="chat-send">
          Send
        </button>
      </div>
      {lastLine && (
        <p className="chat-last muted small" data-testid="chat-last-event">
          {lastLine}
        </p>
      )}
      {conn.phase === 'closed' && conn.error && <ErrorLine error={conn.error} />}
    </form>
  );
}
