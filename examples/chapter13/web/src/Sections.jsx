// The chapter's table of contents, from GET /api/sections: a card per section,
// live ones with their routes callable from the page, planned ones muted.
import { useEffect, useState } from 'react';
import { request } from './api.js';
import { CachePanel, CallPanel, DataPanel, EchoPanel, MetricsPanel, UserLookupPanel, UsersPanel } from './panels.jsx';
import { FilesPanel } from './files.jsx';
import { MessagesPanel } from './messages.jsx';
import { TasksPanel } from './tasks.jsx';
import { ChatPanel, WsEchoPanel } from './realtime.jsx';

// "GET /hello" -> { method: 'GET', path: '/hello' }
function parseRoute(route) {
  const [method, ...rest] = String(route).trim().split(/\s+/);
  return { method: (method || '').toUpperCase(), path: rest.join(' ') };
}

function RouteView({ route }) {
  const { method, path } = parseRoute(route);
  if (method === 'POST' && path === '/echo') return <EchoPanel route={route} path={path} />;
  if (method === 'GET' && path === '/data') return <DataPanel route={route} path={path} />;
  if (method === 'GET' && path === '/metrics') return <MetricsPanel route={route} path={path} />;
  if (method === 'GET' && path === '/users') return <UsersPanel route={route} path={path} />;
  if (method === 'GET' && path === '/users/{id}') return <UserLookupPanel route={route} />;
  if (method === 'PUT' && path === '/cache/{key}') return <CachePanel route={route} />;
  if ((method === 'GET' || method === 'DELETE') && path === '/cache/{key}') return null; // in the PUT panel
  if (method === 'POST' && path === '/tasks/add') return <TasksPanel route={route} />;
  if (method === 'GET' && path === '/tasks/{id}') return null; // in the POST panel
  if (method === 'POST' && path === '/messages') return <MessagesPanel route={route} />;
  if (path === '/messages' || path.startsWith('/messages/')) return null; // in the POST panel
  if (method === 'POST' && path === '/files') return <FilesPanel route={route} />;
  if ((method === 'GET' && path === '/files') || path === '/files/{name}') return null; // in the POST panel
  if (method === 'WS' && (path === '/ws' || path === '/ws/echo')) return <WsEchoPanel route={route} path={path} />;
  if (method === 'WS' && path === '/ws/chat') return <ChatPanel route={route} path={path} />;
  if (method === 'GET' && path === '/') {
    return (
      <div className="panel" data-testid="route-panel" data-route={route}>
        <div className="panel-row">
          <code className="route">{route}</code>
          <span className="muted small">this page</span>
        </div>
      </div>
    );
  }
  if (method === 'GET' && path.startsWith('/') && !/[:{*]/.test(path)) {
    return <CallPanel route={route} path={path} />;
  }
  return (
    <div className="panel" data-testid="route-panel" data-route={route}>
      <code className="route">{route}</code>
    </div>
  );
}

function Badge({ section }) {
  if (section.status === 'live') {
    return (
      <span className="badge live" data-testid="badge">
        <span className="dot" aria-hidden="true" />
        live
      </span>
    );
  }
  return (
    <span className="badge planned" data-testid="badge">
      {section.status || 'planned'}
    </span>
  );
}

function SectionCard({ section }) {
  const live = section.status === 'live';
  const routes = Array.isArray(section.routes) ? section.routes : [];
  const wide = live && routes.length > 1;
  return (
    <article
      className={`card section-card ${live ? 'is-live' : 'is-planned'}${wide ? ' wide' : ''}`}
      data-testid="section-card"
      data-section={section.id}
      data-status={section.status}
    >
      <header className="section-head">
        <span className="section-id">§{section.id}</span>
        <Badge section={section} />
      </header>
      <h3 className="section-title">{section.title}</h3>
      {routes.length > 0 &&
        (live ? (
          <div className="panels">
            {routes.map((route) => (
              <RouteView key={route} route={route} />
            ))}
          </div>
        ) : (
          <div className="chips">
            {routes.map((route) => (
              <code key={route} className="route">
                {route}
              </code>
            ))}
          </div>
        ))}
      {section.file && (
        <p className="file" title="The C file that ports this section">
          <svg viewBox="0 0 16 16" aria-hidden="true">
            <path d="M4 1.5h5l3.5 3.5v9.5h-8.5z M9 1.5v3.5h3.5" fill="none" stroke="currentColor" strokeWidth="1.2" />
          </svg>
          <code>{section.file}</code>
        </p>
      )}
    </article>
  );
}

export default function Sections() {
  const [attempt, setAttempt] = useState(0);
  const [state, setState] = useState({ phase: 'loading' });

  useEffect(() => {
    const controller = new AbortController();
    setState({ phase: 'loading' });
    request('/api/sections', { signal: controller.signal })
      .then((res) => {
        const sections = res.json && res.json.sections;
        if (!Array.isArray(sections)) throw new Error('GET /api/sections answered without a "sections" list');
        setState({ phase: 'done', sections });
      })
      .catch((err) => {
        if (err.name !== 'AbortError') setState({ phase: 'error', error: err.message });
      });
    return () => controller.abort();
  }, [attempt]);

  const sections = state.sections || [];
  const live = sections.filter((s) => s.status === 'live');
  const planned = sections.filter((s) => s.status !== 'live');

  return (
    <section className="sections" aria-labelledby="sections-title">
      <div className="sections-head">
        <h2 id="sections-title">The chapter, section by section</h2>
        <p className="muted">
          {state.phase !== 'done'
            ? 'Every section of chapter 13 and the weave code that ports it.'
            : planned.length === 0
              ? `All ${sections.length} sections of chapter 13 are ported: the routes run in this service, the deployment files are in the repository.`
              : `${live.length} of ${sections.length} sections of chapter 13 run in this service; the others are planned.`}
        </p>
      </div>

      {state.phase === 'loading' && (
        <div className="grid live-grid" data-testid="sections-loading" aria-busy="true">
          {[0, 1, 2].map((i) => (
            <div key={i} className="card skeleton-card">
              <span className="skeleton short" />
              <span className="skeleton" />
              <span className="skeleton medium" />
            </div>
          ))}
        </div>
      )}

      {state.phase === 'error' && (
        <div className="card error-box" role="alert" data-testid="sections-error">
          <div>
            <p className="error-title">Could not load the sections</p>
            <p className="muted">{state.error}</p>
          </div>
          <button type="button" className="button" onClick={() => setAttempt((n) => n + 1)}>
            Retry
          </button>
        </div>
      )}

      {state.phase === 'done' && (
        <div data-testid="sections">
          {live.length > 0 && (
            <>
              <h3 className="group-title">
                Live in this service <span className="count">{live.length}</span>
              </h3>
              <div className="grid live-grid" data-testid="sections-live">
                {live.map((section) => (
                  <SectionCard key={section.id} section={section} />
                ))}
              </div>
            </>
          )}
          {planned.length > 0 && (
            <>
              <h3 className="group-title">
                Planned <span className="count">{planned.length}</span>
              </h3>
              <div className="grid planned-grid" data-testid="sections-planned">
                {planned.map((section) => (
                  <SectionCard key={section.id} section={section} />
                ))}
              </div>
            </>
          )}
        </div>
      )}
    </section>
  );
}
