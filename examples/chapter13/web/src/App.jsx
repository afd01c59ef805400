// The page: a header, the chapter's component (§13.5.2) and the sections grid.
import { useEffect, useState } from 'react';
import { request } from './api.js';
import AsyncMessage from './AsyncMessage.jsx';
import Sections from './Sections.jsx';

function Logo() {
  return (
    <svg className="logo" viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="7" />
      <path d="M7 10l4.5 12L16 12l4.5 10L25 10" />
    </svg>
  );
}

// A pill with the service's readiness (GET /readyz), refreshed every 10 s.
function Health() {
  const [state, setState] = useState({ phase: 'loading' });
  useEffect(() => {
    let stopped = false;
    const check = () =>
      request('/readyz', { timeoutMs: 5000 })
        .then((res) => !stopped && setState({ phase: res.json?.status === 'ready' ? 'ready' : 'degraded' }))
        .catch(() => !stopped && setState({ phase: 'down' }));
    check();
    const timer = setInterval(check, 10000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  const label = { loading: 'checking…', ready: 'service ready', degraded: 'degraded', down: 'unreachable' }[state.phase];
  return (
    <a className={`health ${state.phase}`} href="/readyz" data-testid="health" title="GET /readyz">
      <span className="dot" aria-hidden="true" />
      {label}
    </a>
  );
}

export default function App() {
  return (
    <div className="page">
      <header className="topbar">
        <div className="brand">
          <Logo />
          <div>
            <p className="name">weave</p>
            <p className="tagline">A C framework for async services: chapter 13’s Python examples, ported to C.</p>
          </div>
        </div>
        <Health />
      </header>

      <main>
        <AsyncMessage />
        <Sections />
      </main>

      <footer className="footer">
        <span>Served by weave’s static handler · React 18, bundled with esbuild</span>
        <span className="links">
          <a href="/healthz">/healthz</a>
          <a href="/readyz">/readyz</a>
          <a href="/api/sections">/api/sections</a>
        </span>
      </footer>
    </div>
  );
}
