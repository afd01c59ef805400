// §13.5.2: the chapter's React component. The book's version:
//
//   useEffect(() => {
//     fetch('http://localhost:8000/async-endpoint')
//       .then(response => response.json())
//       .then(data => setMessage(data.message))
//       .catch(error => console.error('Error:', error));
//   }, []);
//   return <div><h1>{message}</h1></div>;
//
// Same request (relative URL: the page and the API share an origin), same <h1>,
// plus what a finished page needs: a loading state while the service's
// non-blocking delay runs, an error state with a retry, and the time it took.
import { useEffect, useState } from 'react';
import { formatMs, request } from './api.js';

export default function AsyncMessage() {
  const [attempt, setAttempt] = useState(0);
  const [state, setState] = useState({ phase: 'loading' });

  useEffect(() => {
    const controller = new AbortController();
    setState({ phase: 'loading' });
    request('/async-endpoint', { signal: controller.signal })
      .then((res) => {
        if (!res.json || typeof res.json.message !== 'string') {
          throw new Error('GET /async-endpoint answered without a "message" field');
        }
        setState({ phase: 'done', message: res.json.message, ms: res.ms });
      })
      .catch((err) => {
        if (err.name !== 'AbortError') setState({ phase: 'error', error: err.message });
      });
    return () => controller.abort();
  }, [attempt]);

  const again = () => setAttempt((n) => n + 1);

  return (
    <section className="hero card" aria-live="polite" data-testid="hero" data-phase={state.phase}>
      <div className="hero-top">
        <span className="eyebrow">§13.5.2 · the chapter’s React component</span>
        <code className="route">GET /async-endpoint</code>
      </div>

      {state.phase === 'loading' && (
        <div className="hero-body" data-testid="loading">
          <span className="spinner" aria-hidden="true" />
          <div>
            <p className="skeleton-title">Waiting for /async-endpoint…</p>
            <p className="muted">The service sleeps without blocking, then answers.</p>
          </div>
        </div>
      )}

      {state.phase === 'done' && (
        <div className="hero-body">
          <div>
            <h1 className="message" data-testid="message">
              {state.message}
            </h1>
            <p className="muted">
              Answered in{' '}
              <strong data-testid="latency" data-ms={Math.round(state.ms)}>
                {formatMs(state.ms)}
              </strong>
              , the delay spent in a non-blocking sleep on the server’s event loop.
            </p>
          </div>
          <button type="button" className="button secondary" onClick={again} data-testid="refetch">
            Fetch again
          </button>
        </div>
      )}

      {state.phase === 'error' && (
        <div className="hero-body error-box" role="alert" data-testid="error">
          <div>
            <p className="error-title">Could not load the message</p>
            <p className="muted">{state.error}</p>
          </div>
          <button type="button" className="button" onClick={again} data-testid="retry">
            Retry
          </button>
        </div>
      )}
    </section>
  );
}
