// §13.4: the message queue card. Publish (POST /messages), watch the
// consumers process each message live (GET /messages/stream, Server-Sent
// Events), send the book's "exit" to stop them and start them again
// (POST /messages/consumer). The consumers' state and backlog come from
// GET /messages.
import { useCallback, useEffect, useRef, useState } from 'react';
import { formatMs, request } from './api.js';
import { ErrorLine } from './panels.jsx';

const SHOWN = 8;

export function MessagesPanel({ route }) {
  const [text, setText] = useState('Hello, RabbitMQ!');
  const [state, setState] = useState(null); // GET /messages without its list
  const [live, setLive] = useState([]); // newest first
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState(null);
  const source = useRef(null);

  const refresh = useCallback(() => {
    request('/messages')
      .then((res) => setState({ consumer: res.json.consumer, pending: res.json.pending, processed: res.json.processed }))
      .catch((err) => setError(err.message));
  }, []);

  useEffect(() => {
    refresh();
    const es = new EventSource('/messages/stream');
    source.current = es;
    es.onopen = () => setStreaming(true);
    es.onerror = () => setStreaming(false); // EventSource reconnects by itself
    es.addEventListener('message', (event) => {
      const m = JSON.parse(event.data);
      setLive((list) => [m, ...list.filter((x) => x.seq !== m.seq)].slice(0, SHOWN));
      refresh();
    });
    return () => es.close();
  }, [refresh]);

  const publish = (body) => {
    setError(null);
    return request('/messages', { method: 'POST', body, contentType: 'text/plain' })
      .then(() => setTimeout(refresh, 150))
      .catch((err) => setError(err.message));
  };
  const send = (event) => {
    event.preventDefault();
    publish(text);
  };
  const restart = () =>
    request('/messages/consumer', { method: 'POST' })
      .then(refresh)
      .catch((err) => setError(err.message));

  const stopped = state?.consumer === 'stopped';
  return (
    <form className="panel" onSubmit={send} data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">POST · GET /messages</code>
        {state && (
          <span className="muted small" data-testid="messages-state" data-consumer={state.consumer}>
            consumers {state.consumer} · {state.processed} processed ·{' '}
            {state.pending === null ? 'backlog kept by Kafka' : `${state.pending} waiting`}
          </span>
        )}
      </div>
      <div className="panel-row">
        <input
          className="input"
          value={text}
          onChange={(e) => setText(e.target.value)}
          aria-label="Message"
          data-testid="messages-text"
        />
        <button type="submit" className="button small" disabled={!text} data-testid="messages-send">
          Publish
        </button>
        <button type="button" className="button small secondary" onClick={() => publish('exit')} data-testid="messages-exit">
          Send “exit”
        </button>
        {stopped && (
          <button type="button" className="button small secondary" onClick={restart} data-testid="messages-restart">
            Start consumers
          </button>
        )}
      </div>
      <p className="muted small" data-testid="messages-live" data-streaming={streaming}>
        {streaming ? 'live: processed messages appear as the consumers ack them' : 'connecting to /messages/stream…'}
      </p>
      {live.length > 0 && (
        <ul className="files" data-testid="messages-list">
          {live.map((m) => (
            <li key={m.seq} data-testid="queue-message" data-text={m.text}>
              <span className="item-id">#{m.id}</span>
              <span className="message-text">{m.text}</span>
              <span className="muted small">
                shard {m.shard} · {formatMs(m.latency_ms)}
                {m.deliveries > 1 ? ` · delivery ${m.deliveries}` : ''}
              </span>
            </li>
          ))}
        </ul>
      )}
      {error && <ErrorLine error={error} />}
    </form>
  );
}
