// The interactive parts of the live section cards, one per kind of route:
// CallPanel (a GET that answers JSON), DataPanel (GET /data's items) and
// EchoPanel (POST /echo). Each shows the response and how long it took.
import { useCallback, useEffect, useRef, useState } from 'react';
import { formatMs, prettyJson, request } from './api.js';

// Runs requests for a panel; aborts the one in flight when the panel unmounts.
function useRequest() {
  const [state, setState] = useState({ phase: 'idle' });
  const controller = useRef(null);
  useEffect(() => () => controller.current?.abort(), []);
  const run = useCallback((path, options) => {
    controller.current?.abort();
    const c = new AbortController();
    controller.current = c;
    setState((s) => ({ ...s, phase: 'loading' }));
    request(path, { ...options, signal: c.signal })
      .then((res) => setState({ phase: 'done', res }))
      .catch((err) => {
        if (err.name !== 'AbortError') setState({ phase: 'error', error: err.message });
      });
  }, []);
  return [state, run];
}

function Meta({ res }) {
  return (
    <span className="meta" data-testid="result-meta">
      <span className="status-ok">{res.status}</span>
      <span>{res.contentType.split(';')[0] || 'no content type'}</span>
      <span data-testid="result-ms">{formatMs(res.ms)}</span>
    </span>
  );
}

export function ErrorLine({ error }) {
  return (
    <p className="panel-error" role="alert" data-testid="panel-error">
      {error}
    </p>
  );
}

export function CallPanel({ route, path }) {
  const [state, run] = useRequest();
  return (
    <div className="panel" data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">{route}</code>
        <button
          type="button"
          className="button small"
          onClick={() => run(path)}
          disabled={state.phase === 'loading'}
          data-testid="call-button"
        >
          {state.phase === 'loading' ? (
            <>
              <span className="spinner tiny" aria-hidden="true" /> Calling…
            </>
          ) : (
            'Call'
          )}
        </button>
      </div>
      {state.phase === 'done' && (
        <div className="result">
          <Meta res={state.res} />
          <pre data-testid="call-result">{state.res.json ? prettyJson(state.res.json) : state.res.text}</pre>
        </div>
      )}
      {state.phase === 'error' && <ErrorLine error={state.error} />}
    </div>
  );
}

export function DataPanel({ route, path }) {
  const [state, run] = useRequest();
  const load = useCallback(() => run(path), [run, path]);
  useEffect(load, [load]);
  const items = state.res?.json?.items;
  return (
    <div className="panel" data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">{route}</code>
        <button
          type="button"
          className="button small secondary"
          onClick={load}
          disabled={state.phase === 'loading'}
          data-testid="call-button"
        >
          Reload
        </button>
      </div>
      {state.phase === 'loading' && !state.res && <p className="muted small">Loading…</p>}
      {state.res && (
        <div className="result">
          <Meta res={state.res} />
          {Array.isArray(items) ? (
            <ul className="items" data-testid="data-items">
              {items.map((item) => (
                <li key={item.id ?? item.name}>
                  <span className="item-id">#{item.id}</span> {item.name}
                </li>
              ))}
            </ul>
          ) : (
            <pre data-testid="call-result">{state.res.text}</pre>
          )}
        </div>
      )}
      {state.phase === 'error' && <ErrorLine error={state.error} />}
    </div>
  );
}

const ECHO_TYPES = ['text/plain', 'application/json'];
const ECHO_SAMPLES = {
  'text/plain': 'Hello from the browser, through weave and back.',
  'application/json': '{"from": "the browser", "chapter": 13}',
};

export function EchoPanel({ route, path }) {
  const [state, run] = useRequest();
  const [type, setType] = useState(ECHO_TYPES[0]);
  const [body, setBody] = useState(ECHO_SAMPLES[ECHO_TYPES[0]]);
  const changeType = (next) => {
    if (body === ECHO_SAMPLES[type]) setBody(ECHO_SAMPLES[next]);
    setType(next);
  };
  const send = (event) => {
    event.preventDefault();
    run(path, { method: 'POST', body, contentType: type });
  };
  return (
    <form className="panel" onSubmit={send} data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">{route}</code>
        <select
          className="select"
          value={type}
          onChange={(e) => changeType(e.target.value)}
          aria-label="Content-Type"
          data-testid="echo-type"
        >
          {ECHO_TYPES.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </div>
      <textarea
        className="textarea"
        rows={3}
        value={body}
        onChange={(e) => setBody(e.target.value)}
        aria-label="Request body"
        data-testid="echo-input"
      />
      <div className="panel-row end">
        <button type="submit" className="button small" disabled={state.phase === 'loading'} data-testid="echo-send">
          Send
        </button>
      </div>
      {state.phase === 'done' && (
        <div className="result">
          <Meta res={state.res} />
          <pre data-testid="echo-result">{state.res.text}</pre>
        </div>
      )}
      {state.phase === 'error' && <ErrorLine error={state.error} />}
    </form>
  );
}

// Sums every http_requests_total sample of a Prometheus text exposition.
export function totalRequests(text) {
  let total = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith('http_requests_total{') && !line.startsWith('http_requests_total ')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) {
      total += value;
      seen = true;
    }
  }
  return seen ? total : null;
}

const RATE_EVERY_MS = 2000;

// GET /metrics: the service's request rate, live (http_requests_total summed
// over every label set, differenced between two scrapes), and the raw text.
export function MetricsPanel({ route, path }) {
  const [state, setState] = useState({ phase: 'loading' });
  const last = useRef(null);
  useEffect(() => {
    let stopped = false;
    const controller = new AbortController();
    const scrape = () =>
      request(path, { signal: controller.signal, timeoutMs: 5000 })
        .then((res) => {
          if (stopped) return;
          const total = totalRequests(res.text);
          if (total === null) {
            setState({ phase: 'error', error: `${path} has no http_requests_total` });
            return;
          }
          const now = performance.now();
          const prev = last.current;
          last.current = { total, now };
          setState({
            phase: 'done',
            total,
            // this panel's own scrapes are requests too: they are counted
            rate: prev ? ((total - prev.total) * 1000) / (now - prev.now) : null,
            lines: res.text.split('\n').length,
          });
        })
        .catch((err) => {
          if (!stopped && err.name !== 'AbortError') setState({ phase: 'error', error: err.message });
        });
    scrape();
    const timer = setInterval(scrape, RATE_EVERY_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
      controller.abort();
    };
  }, [path]);
  return (
    <div className="panel" data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">{route}</code>
        <a className="small" href={path} target="_blank" rel="noreferrer">
          raw text
        </a>
      </div>
      {state.phase === 'done' && (
        <p className="metrics-live" data-testid="metrics-live">
          <span className="metrics-rate" data-testid="req-rate">
            {state.rate === null ? '…' : state.rate.toFixed(1)}
          </span>{' '}
          requests/s ·{' '}
          <span data-testid="req-total">{state.total}</span> served since start
        </p>
      )}
      {state.phase === 'loading' && <p className="muted small">reading {path}…</p>}
      {state.phase === 'error' && <ErrorLine error={state.error} />}
    </div>
  );
}

// §13.3: GET /users lists the users (asyncpg's conn.fetch), and a name typed
// here is POSTed (Tortoise's User.create); a refused name shows the 422's
// words. The list reloads after every creation.
export function UsersPanel({ route, path }) {
  const [list, setList] = useState({ phase: 'loading' });
  const [name, setName] = useState('');
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const controller = useRef(null);
  const load = useCallback(() => {
    controller.current?.abort();
    const c = new AbortController();
    controller.current = c;
    request(path, { signal: c.signal })
      .then((res) => setList({ phase: 'done', users: Array.isArray(res.json) ? res.json : [], ms: res.ms }))
      .catch((err) => {
        if (err.name !== 'AbortError') setList({ phase: 'error', error: err.message });
      });
  }, [path]);
  useEffect(() => {
    load();
    return () => controller.current?.abort();
  }, [load]);
  const create = (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    request(path, { method: 'POST', body: JSON.stringify({ name }), contentType: 'application/json' })
      .then((res) => {
        setCreated(res.json);
        setName('');
        load();
      })
      .catch((err) => setError(err.message))
      .finally(() => setBusy(false));
  };
  const users = list.phase === 'done' ? list.users : [];
  return (
    <div className="panel" data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">{route}</code>
        <button type="button" className="button small secondary" onClick={load} data-testid="users-reload">
          Reload
        </button>
      </div>
      {list.phase === 'error' && <ErrorLine error={list.error} />}
      {list.phase === 'done' && (
        <p className="muted small" data-testid="users-count">
          {users.length === 0 ? 'no users yet' : `${users.length} user${users.length === 1 ? '' : 's'}`}
        </p>
      )}
      {users.length > 0 && (
        <ul className="users" data-testid="users-list">
          {users.slice(-20).map((u) => (
            <li key={u.id} data-testid="user" data-id={u.id}>
              <span className="user-id">#{u.id}</span> {u.name}
            </li>
          ))}
        </ul>
      )}
      <form className="panel-row" onSubmit={create}>
        <input
          className="input"
          value={name}
          onChange={(e) => setName(e.target.value)}
          placeholder="a name, like Alice"
          aria-label="New user's name"
          data-testid="user-name"
        />
        <button type="submit" className="button small" disabled={busy} data-testid="user-create">
          POST /users
        </button>
      </form>
      {created && !error && (
        <p className="small" data-testid="user-created">
          created <span className="user-id">#{created.id}</span> {created.name}
        </p>
      )}
      {error && <ErrorLine error={error} />}
    </div>
  );
}

// §13.3.2: GET /users/{id}, the model's get by primary key: an id typed here
// is fetched; an unknown one shows the 404's words.
export function UserLookupPanel({ route }) {
  const [state, run] = useRequest();
  const [id, setId] = useState('1');
  const lookup = (event) => {
    event.preventDefault();
    run(`/users/${encodeURIComponent(id.trim())}`);
  };
  return (
    <form className="panel" onSubmit={lookup} data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">{route}</code>
      </div>
      <div className="panel-row">
        <input
          className="input"
          value={id}
          onChange={(e) => setId(e.target.value)}
          inputMode="numeric"
          aria-label="User id"
          data-testid="user-id"
        />
        <button type="submit" className="button small" disabled={state.phase === 'loading'} data-testid="user-get">
          Get
        </button>
      </div>
      {state.phase === 'done' && (
        <div className="result">
          <Meta res={state.res} />
          <pre data-testid="user-result">{prettyJson(state.res.json)}</pre>
        </div>
      )}
      {state.phase === 'error' && <ErrorLine error={state.error} />}
    </form>
  );
}

// §13.9: the cache. Set a key (PUT /cache/{key}, with a TTL), read it back
// (GET), delete it; after a set with a TTL the panel reads the key every
// second and shows the countdown until the cache answers 404: the value
// expired. The backend (memory://, redis://, memcached://) comes from
// /readyz.
export function CachePanel({ route }) {
  const [key, setKey] = useState('my-key');
  const [value, setValue] = useState('value');
  const [ttl, setTtl] = useState('5');
  const [backend, setBackend] = useState(null);
  const [result, setResult] = useState(null); // { kind, text, ms, status }
  const [error, setError] = useState(null);
  const [watch, setWatch] = useState(null); // { key, until, left, expired }
  const watchTimer = useRef(null);

  useEffect(() => {
    request('/readyz', { timeoutMs: 5000 })
      .then((res) => setBackend(res.json?.backends?.cache || null))
      .catch(() => setBackend(null));
    return () => clearInterval(watchTimer.current);
  }, []);

  const path = (k) => `/cache/${encodeURIComponent(k)}`;
  const show = (kind, res) => {
    setError(null);
    setResult({ kind, text: res.json ? prettyJson(res.json) : res.text, ms: res.ms, status: res.status });
  };

  const startWatch = (k, seconds) => {
    clearInterval(watchTimer.current);
    const until = Date.now() + seconds * 1000;
    setWatch({ key: k, until, left: seconds, expired: false });
    watchTimer.current = setInterval(() => {
      request(path(k), { timeoutMs: 5000 })
        .then(() => setWatch((w) => w && { ...w, left: Math.max(0, Math.ceil((until - Date.now()) / 1000)) }))
        .catch((err) => {
          if (String(err.message).includes('answered 404')) {
            clearInterval(watchTimer.current);
            setWatch((w) => w && { ...w, left: 0, expired: true });
          }
        });
    }, 1000);
  };

  const set = (event) => {
    event.preventDefault();
    const seconds = Number(ttl) || 0;
    request(`${path(key)}?ttl=${seconds}`, { method: 'PUT', body: value, contentType: 'application/octet-stream' })
      .then((res) => {
        show('PUT', res);
        if (seconds > 0) startWatch(key, seconds);
        else {
          clearInterval(watchTimer.current);
          setWatch(null);
        }
      })
      .catch((err) => setError(err.message));
  };
  const get = () =>
    request(path(key))
      .then((res) => show('GET', res))
      .catch((err) => {
        setResult(null);
        setError(err.message);
      });
  const del = () =>
    request(path(key), { method: 'DELETE' })
      .then((res) => {
        show('DELETE', { ...res, text: 'deleted' });
        clearInterval(watchTimer.current);
        setWatch(null);
      })
      .catch((err) => setError(err.message));

  return (
    <form className="panel" onSubmit={set} data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">PUT · GET · DELETE /cache/{'{key}'}</code>
        {backend && (
          <span className="muted small" data-testid="cache-backend">
            on {backend}
          </span>
        )}
      </div>
      <div className="panel-row">
        <input className="input" value={key} onChange={(e) => setKey(e.target.value)} aria-label="Key" data-testid="cache-key" />
        <input
          className="input"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          aria-label="Value"
          data-testid="cache-value"
        />
        <input
          className="input narrow"
          value={ttl}
          onChange={(e) => setTtl(e.target.value)}
          inputMode="numeric"
          aria-label="TTL in seconds (0: none)"
          title="TTL in seconds (0: none)"
          data-testid="cache-ttl"
        />
      </div>
      <div className="panel-row">
        <button type="submit" className="button small" data-testid="cache-set">
          Set
        </button>
        <button type="button" className="button small secondary" onClick={get} data-testid="cache-get">
          Get
        </button>
        <button type="button" className="button small secondary" onClick={del} data-testid="cache-delete">
          Delete
        </button>
      </div>
      {result && (
        <div className="result">
          <span className="meta">
            <span className="status-ok">{result.status}</span>
            <span>{result.kind}</span>
            <span>{formatMs(result.ms)}</span>
          </span>
          <pre data-testid="cache-result">{result.text}</pre>
        </div>
      )}
      {watch && (
        <p className="small" data-testid="cache-watch">
          {watch.expired ? (
            <span data-testid="cache-expired">“{watch.key}” expired: the cache answers 404</span>
          ) : (
            <span>
              “{watch.key}” expires in about {watch.left} s
            </span>
          )}
        </p>
      )}
      {error && <ErrorLine error={error} />}
    </form>
  );
}
