// §13.7: the file store card. Choose a file, upload it (POST /files?name=,
// the file itself as the body, streamed by the browser and passed on to S3,
// GCS or the local directory as it arrives), see the list (GET /files),
// download (GET /files/{name}, an attachment) or delete one.
import { useCallback, useEffect, useRef, useState } from 'react';
import { formatMs, request } from './api.js';
import { ErrorLine } from './panels.jsx';

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const filePath = (name) => `/files/${encodeURIComponent(name)}`;

export function FilesPanel({ route }) {
  const [list, setList] = useState({ phase: 'loading' });
  const [chosen, setChosen] = useState(null);
  const [busy, setBusy] = useState(false);
  const [uploaded, setUploaded] = useState(null); // { name, size, ms }
  const [error, setError] = useState(null);
  const input = useRef(null);

  const load = useCallback(() => {
    request('/files')
      .then((res) => setList({ phase: 'done', storage: res.json?.storage, files: res.json?.files || [] }))
      .catch((err) => setList({ phase: 'error', error: err.message }));
  }, []);
  useEffect(load, [load]);

  const upload = (event) => {
    event.preventDefault();
    if (!chosen) return;
    setBusy(true);
    setError(null);
    request(`/files?name=${encodeURIComponent(chosen.name)}`, {
      method: 'POST',
      body: chosen,
      contentType: chosen.type || 'application/octet-stream',
      timeoutMs: 10 * 60 * 1000,
    })
      .then((res) => {
        setUploaded({ name: res.json.name, size: res.json.size, ms: res.ms });
        setChosen(null);
        if (input.current) input.current.value = '';
        load();
      })
      .catch((err) => setError(err.message))
      .finally(() => setBusy(false));
  };
  const remove = (name) => {
    setError(null);
    request(filePath(name), { method: 'DELETE' })
      .then(load)
      .catch((err) => setError(err.message));
  };

  const files = list.phase === 'done' ? list.files : [];
  return (
    <form className="panel" onSubmit={upload} data-testid="route-panel" data-route={route}>
      <div className="panel-row">
        <code className="route">POST · GET · DELETE /files</code>
        {list.storage && (
          <span className="muted small" data-testid="files-storage">
            in {list.storage}
          </span>
        )}
      </div>
      <div className="panel-row">
        <input
          ref={input}
          type="file"
          className="input"
          onChange={(e) => setChosen(e.target.files[0] || null)}
          aria-label="File to upload"
          data-testid="files-input"
        />
        <button type="submit" className="button small" disabled={!chosen || busy} data-testid="files-upload">
          {busy ? 'Uploading…' : 'Upload'}
        </button>
      </div>
      {uploaded && !error && (
        <p className="small" data-testid="files-uploaded">
          uploaded {uploaded.name} · {formatBytes(uploaded.size)} · {formatMs(uploaded.ms)}
        </p>
      )}
      {list.phase === 'error' && <ErrorLine error={list.error} />}
      {list.phase === 'done' && files.length === 0 && (
        <p className="muted small" data-testid="files-empty">
          no files yet
        </p>
      )}
      {files.length > 0 && (
        <ul className="files" data-testid="files-list">
          {files.map((f) => (
            <li key={f.name} data-testid="file" data-name={f.name}>
              <a href={filePath(f.name)} download={f.name} data-testid="file-download">
                {f.name}
              </a>
              <span className="muted small">{formatBytes(f.size)}</span>
              <button
                type="button"
                className="button small secondary"
                onClick={() => remove(f.name)}
                data-testid="file-delete"
                aria-label={`Delete ${f.name}`}
              >
                Delete
              </button>
            </li>
          ))}
        </ul>
      )}
      {error && <ErrorLine error={error} />}
    </form>
  );
}
