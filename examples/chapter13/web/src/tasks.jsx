// §13.8's task card: POST /tasks/add sends async_add (or add) to the task
// queue, then the card polls GET /tasks/{id} and lists each state the task
// passes through (PENDING → STARTED → SUCCESS) with the time it was first
// seen, and the result.
import { useEffect, useRef, useState } from 'react';
import { formatMs, request } from './api.js';
import { ErrorLine } from './panels.jsx';

const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);

export function TasksPanel({ route }) {
  const [x, setX] = useState('2');
  const [y, setY] = useState('3');
  const [task, setTask] = useState('async_add');
  const [run, setRun] = useState(null); // { id, name, steps: [{ state, ms }], result, error, done }
  const [error, setError] = useState(null);
  const timer = useRef(null);
  useEffect(() => () => clearInterval(timer.current), []);

  const watch = (id, started) => {
    clearInterval(timer.current);
    timer.current = setInterval(() => {
      request(`/tasks/${encodeURIComponent(id)}`, { timeoutMs: 5000 })
        .then(({ json }) =>
          setRun((r) => {
            if (!r || r.id !== id) return r;
            const last = r.steps[r.steps.length - 1];
            const steps = last?.state === json.state ? r.steps : [...r.steps, { state: json.state, ms: performance.now() - started }];
            const done = FINAL.has(json.state);
            if (done) clearInterval(timer.current);
            return { ...r, steps, done, result: json.result, error: json.error };
          }),
        )
        .catch((err) => {
          clearInterval(timer.current);
          setError(err.message);
        });
    }, 150);
  };

  const submit = (event) => {
    event.preventDefault();
    setError(null);
    const started = performance.now();
    const body = JSON.stringify({ x: Number(x), y: Number(y), task });
    request('/tasks/add', { method: 'POST', body, contentType: 'application/json' })
      .then(({ json }) => {
        setRun({ id: json.id, name: json.task, steps: [{ state: json.state, ms: performance.now() - started }], done: false });
        watch(json.id, started);
      })
      .catch((err) => {
        setRun(null);
        setError(err.message);
      });
  };

  return (
    <form className="panel" onSubmit={submit} data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">POST /tasks/add · GET /tasks/{'{id}'}</code>
      </div>
      <div className="panel-row wrap">
        <input className="input narrow" value={x} onChange={(e) => setX(e.target.value)} inputMode="decimal" aria-label="x" data-testid="task-x" />
        <span className="muted">+</span>
        <input className="input narrow" value={y} onChange={(e) => setY(e.target.value)} inputMode="decimal" aria-label="y" data-testid="task-y" />
        <select className="select" value={task} onChange={(e) => setTask(e.target.value)} aria-label="Task" data-testid="task-name">
          <option value="async_add">async_add (waits)</option>
          <option value="add">add</option>
        </select>
        <button type="submit" className="button small" data-testid="task-submit" disabled={run && !run.done}>
          Send
        </button>
      </div>
      {run && (
        <div className="result">
          <span className="meta wrap">
            <span>{run.name}</span>
            <code className="small task-id" data-testid="task-id">
              {run.id}
            </code>
          </span>
          <ol className="steps" data-testid="task-steps">
            {run.steps.map((s) => (
              <li key={s.state} data-state={s.state}>
                <span className={s.state === 'SUCCESS' ? 'status-ok' : ''}>{s.state}</span> <span className="muted small">{formatMs(s.ms)}</span>
              </li>
            ))}
          </ol>
          {run.done && run.result !== undefined && <pre data-testid="task-result">{JSON.stringify(run.result)}</pre>}
          {run.done && run.error && <ErrorLine error={run.error} />}
        </div>
      )}
      {error && <ErrorLine error={error} />}
    </form>
  );
}
