// What the manifests are checked against: the image (its Dockerfile read
// statically, or `podman image inspect` output) and the service's own
// `chapter13 --help`.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

// ---------------------------------------------------------------- Dockerfile

// The instructions of a Dockerfile: continuation lines joined, comment lines
// dropped (also inside a continuation, as Docker does), [KEYWORD, rest].
function instructions(text) {
    const out = [];
    let cur = null;
    for (const raw of text.split(/\r?\n/)) {
        const line = raw.replace(/^\s+/, '');
        if (line.startsWith('#') || (cur === null && line === ''))
            continue;
        const cont = /\\\s*$/.test(line);
        const body = cont ? line.replace(/\\\s*$/, '') : line;
        cur = cur === null ? body : `${cur} ${body}`;
        if (!cont) {
            const m = cur.match(/^(\S+)\s*([\s\S]*)$/);
            if (m)
                out.push([m[1].toUpperCase(), m[2].trim()]);
            cur = null;
        }
    }
    if (cur !== null && cur.trim()) {
        const m = cur.match(/^(\S+)\s*([\s\S]*)$/);
        out.push([m[1].toUpperCase(), m[2].trim()]);
    }
    return out;
}

// Shell-like words: "..." and '...' quoting, backslash escapes.
function words(s) {
    const out = [];
    let cur = '', inWord = false, quote = null;
    for (let i = 0; i < s.length; i++) {
        const c = s[i];
        if (quote) {
            if (c === quote)
                quote = null;
            else if (c === '\\' && quote === '"' && i + 1 < s.length)
                cur += s[++i];
            else
                cur += c;
        } else if (c === '"' || c === "'") {
            quote = c;
            inWord = true;
        } else if (c === '\\' && i + 1 < s.length) {
            cur += s[++i];
            inWord = true;
        } else if (/\s/.test(c)) {
            if (inWord)
                out.push(cur);
            cur = '';
            inWord = false;
        } else {
            cur += c;
            inWord = true;
        }
    }
    if (inWord)
        out.push(cur);
    return out;
}

function expand(value, env) {
    return value.replace(/\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)/g, (_, a, dflt, b) => env.get(a ?? b) ?? dflt ?? '');
}

function parseUser(user) {
    const [u, g] = user.split(':');
    return { raw: user, uid: /^\d+$/.test(u) ? Number(u) : null, gid: g !== undefined && /^\d+$/.test(g) ? Number(g) : null };
}

// The final stage's facts: { user, env (Map), exposed (Set of "N/tcp"),
// healthcheck (its command as text, or null), workdir }. A stage built FROM
// an earlier stage inherits that stage's facts.
export function parseDockerfile(text) {
    const stages = new Map();
    let st = null;
    const fresh = () => ({ user: null, env: new Map(), exposed: new Set(), healthcheck: null, workdir: '/' });
    for (const [kw, rest] of instructions(text)) {
        if (kw === 'FROM') {
            const w = words(rest).filter((x) => !x.startsWith('--'));
            const from = w[0];
            const alias = w[1]?.toUpperCase() === 'AS' ? w[2] : null;
            const parent = stages.get(from);
            st = parent ? { ...parent, env: new Map(parent.env), exposed: new Set(parent.exposed) } : fresh();
            if (alias)
                stages.set(alias, st);
            continue;
        }
        if (st === null)
            continue; // ARG before FROM
        switch (kw) {
            case 'ENV': {
                const w = words(rest);
                if (w.length >= 1 && !w[0].includes('=')) {
                    // legacy form: ENV KEY the rest of the line
                    st.env.set(w[0], expand(rest.slice(rest.indexOf(w[0]) + w[0].length).trim(), st.env));
                } else
                    for (const kv of w) {
                        const i = kv.indexOf('=');
                        st.env.set(kv.slice(0, i), expand(kv.slice(i + 1), st.env));
                    }
                break;
            }
            case 'USER':
                st.user = parseUser(expand(rest.trim(), st.env));
                break;
            case 'EXPOSE':
                for (const p of words(rest)) {
                    const [port, proto] = expand(p, st.env).split('/');
                    st.exposed.add(`${port}/${(proto ?? 'tcp').toLowerCase()}`);
                }
                break;
            case 'HEALTHCHECK': {
                const m = rest.match(/(?:^|\s)CMD\s+([\s\S]*)$/);
                st.healthcheck = /^NONE\b/i.test(rest) ? null : m ? m[1] : rest;
                break;
            }
            case 'WORKDIR': {
                const dir = expand(rest.trim(), st.env);
                st.workdir = dir.startsWith('/') ? dir : `${st.workdir.replace(/\/$/, '')}/${dir}`;
                break;
            }
        }
    }
    if (st === null)
        throw new Error('no FROM instruction');
    return { ...st, source: 'Dockerfile' };
}

// ---------------------------------------------------------------- image inspect

// `podman image inspect` (or `docker image inspect`) output: an array of one
// image. podman puts Healthcheck beside Config, docker inside it.
export function parseInspect(text, source) {
    let data = JSON.parse(text);
    if (Array.isArray(data))
        data = data[0];
    if (!data || typeof data !== 'object' || !data.Config)
        throw new Error('no Config in the inspect output');
    const c = data.Config;
    const env = new Map();
    for (const kv of c.Env ?? []) {
        const i = kv.indexOf('=');
        env.set(kv.slice(0, i), kv.slice(i + 1));
    }
    const exposed = new Set(Object.keys(c.ExposedPorts ?? {}).map((p) => (p.includes('/') ? p : `${p}/tcp`).toLowerCase()));
    const hc = data.Healthcheck ?? data.HealthCheck ?? c.Healthcheck ?? null;
    let healthcheck = null;
    if (hc?.Test && hc.Test[0] !== 'NONE')
        healthcheck = hc.Test.slice(1).join(' ');
    const user = c.User || data.User; // podman repeats it beside Config
    return { user: user ? parseUser(user) : null, env, exposed, healthcheck, workdir: c.WorkingDir || '/', source };
}

// ---------------------------------------------------------------- --help

// `chapter13 --help`: each option's variable, default and kind of value
// (N: an integer, TEXT: a string, none: a boolean flag).
export function parseHelp(text) {
    const vars = new Map();
    const lines = text.split('\n');
    let pending = null;
    for (const line of lines) {
        const opt = line.match(/^\s+--([a-z0-9-]+)(?:\s+([A-Z]+))?\s{2,}/);
        if (opt) {
            pending = { flag: opt[1], value: opt[2] ?? 'flag' };
            continue;
        }
        const v = line.match(/^\s+\[([A-Z][A-Z0-9_]*), (.*)\]\s*$/);
        if (v && pending) {
            vars.set(v[1], { ...pending, default: v[2] });
            pending = null;
        }
    }
    return vars;
}

export function runHelp(bin) {
    return execFileSync(bin, ['--help'], { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function readFile(p) {
    return readFileSync(p, 'utf8');
}
