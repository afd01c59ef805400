// Unknown fields: the check the JSON schemas cannot make. Kubernetes'
// OpenAPI schemas (and so kubernetes-models' validators) allow any extra
// property, so a misspelt `readinesProbe` validates and the API server
// drops it (with at most a warning). The models' TypeScript declarations,
// generated from the same schemas, list every field of every type; this
// walks an object against them and reports each field that no declaration
// names, as `kubectl apply --validate=strict` does against a live cluster.
//
// Only the shapes the generator writes are parsed: interfaces, type aliases,
// object literals with quoted names and string index signatures, Array<T>,
// unions and literal types.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The .d.ts file of a module specifier, relative to the file that imports it.
function declarationFile(spec, fromFile) {
    let js;
    if (spec.startsWith('.'))
        js = path.resolve(path.dirname(fromFile), spec);
    else {
        // "@scope/pkg/sub/path" or "pkg/sub/path": the package's directory,
        // then the path inside it (these packages have no "exports" map)
        const parts = spec.split('/');
        const n = spec.startsWith('@') ? 2 : 1;
        const pkg = parts.slice(0, n).join('/');
        let pkgDir = null;
        for (let dir = path.dirname(fromFile); ; dir = path.dirname(dir)) {
            if (existsSync(path.join(dir, 'node_modules', pkg, 'package.json'))) {
                pkgDir = path.join(dir, 'node_modules', pkg);
                break;
            }
            if (path.dirname(dir) === dir)
                throw new Error(`package ${pkg} not found from ${fromFile}`);
        }
        js = path.join(pkgDir, ...parts.slice(n));
    }
    return js.replace(/\.js$/, '') + '.d.ts';
}

// ---------------------------------------------------------------- parsing

function tokenize(src) {
    src = src.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');
    const tokens = [];
    const re = /\s+|("(?:[^"\\]|\\.)*")|('(?:[^'\\]|\\.)*')|([A-Za-z_$][\w$]*)|(-?\d+(?:\.\d+)?)|(=>|[{}[\]()<>:;,|&?.=])/gy;
    let m;
    while (re.lastIndex < src.length) {
        const at = re.lastIndex;
        m = re.exec(src);
        if (!m || m.index !== at)
            throw new Error(`cannot tokenize near: ${src.slice(at, at + 40)}`);
        if (m[1] || m[2])
            tokens.push({ t: 'str', v: JSON.parse(m[1] || `"${m[2].slice(1, -1).replace(/"/g, '\\"')}"`) });
        else if (m[3])
            tokens.push({ t: 'id', v: m[3] });
        else if (m[4])
            tokens.push({ t: 'num', v: Number(m[4]) });
        else if (m[5])
            tokens.push({ t: 'p', v: m[5] });
    }
    return tokens;
}

class Parser {
    constructor(tokens) {
        this.toks = tokens;
        this.i = 0;
    }
    peek(v) {
        const t = this.toks[this.i];
        return t && (v === undefined || t.v === v) ? t : null;
    }
    take(v) {
        const t = this.toks[this.i];
        if (!t || (v !== undefined && t.v !== v))
            throw new Error(`expected ${v ?? 'a token'}, found ${t ? JSON.stringify(t.v) : 'the end'}`);
        this.i++;
        return t;
    }
    type() {
        this.peek('|') && this.take('|');
        const of = [this.postfix()];
        while (this.peek('|')) {
            this.take('|');
            of.push(this.postfix());
        }
        return of.length === 1 ? of[0] : { k: 'union', of };
    }
    postfix() {
        let t = this.primary();
        while (this.peek('[') && this.toks[this.i + 1]?.v === ']') {
            this.take('[');
            this.take(']');
            t = { k: 'array', of: t };
        }
        return t;
    }
    primary() {
        const t = this.take();
        if (t.v === '{' && t.t === 'p')
            return this.objectBody();
        if (t.v === '(' && t.t === 'p') {
            const inner = this.type();
            this.take(')');
            return inner;
        }
        if (t.t === 'str' || t.t === 'num')
            return { k: 'literal', v: t.v };
        if (t.t !== 'id')
            throw new Error(`unexpected ${JSON.stringify(t.v)} in a type`);
        if (['string', 'number', 'boolean', 'any', 'unknown', 'null', 'undefined', 'object', 'true', 'false'].includes(t.v))
            return { k: 'prim', name: t.v };
        if (t.v === 'Array' || t.v === 'ReadonlyArray') {
            this.take('<');
            const of = this.type();
            this.take('>');
            return { k: 'array', of };
        }
        if (t.v === 'Record') {
            this.take('<');
            this.type();
            this.take(',');
            const value = this.type();
            this.take('>');
            return { k: 'object', props: new Map(), index: value };
        }
        if (this.peek('<'))
            throw new Error(`generic type ${t.v}<...> is not understood`);
        return { k: 'ref', name: t.v };
    }
    // after '{': members up to the matching '}'
    objectBody() {
        const props = new Map();
        let index = null;
        while (!this.peek('}')) {
            if (this.peek('[')) {
                this.take('[');
                this.take(); // the key's name
                this.take(':');
                this.type(); // string
                this.take(']');
                this.take(':');
                index = this.type();
            } else {
                const name = this.take();
                if (name.t !== 'str' && name.t !== 'id')
                    throw new Error(`unexpected ${JSON.stringify(name.v)} as a field name`);
                if (this.peek('?'))
                    this.take('?');
                this.take(':');
                props.set(name.v, this.type());
            }
            if (this.peek(';') || this.peek(','))
                this.take();
        }
        this.take('}');
        return { k: 'object', props, index };
    }
}

// One .d.ts file: its imports (local name -> file), its interfaces and type
// aliases (name -> parsed type) and its exported aliases (alias -> name).
const files = new Map();

function loadFile(file) {
    if (files.has(file))
        return files.get(file);
    const src = readFileSync(file, 'utf8');
    const info = { file, imports: new Map(), types: new Map(), aliases: new Map() };
    files.set(file, info);
    for (const m of src.matchAll(/^import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*"([^"]+)"/gm))
        for (const item of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
            const [orig, local] = item.split(/\s+as\s+/);
            info.imports.set((local ?? orig).trim(), { spec: m[2], name: orig.trim() });
        }
    for (const m of src.matchAll(/^export\s+type\s*\{([^}]*)\}/gm))
        for (const item of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
            const [orig, alias] = item.split(/\s+as\s+/);
            if (alias)
                info.aliases.set(alias.trim(), orig.trim());
        }
    // interfaces: the body is the balanced braces after the header
    const toks = tokenize(src);
    for (let i = 0; i < toks.length; i++) {
        const isExport = toks[i].v === 'export' && toks[i + 1];
        if (!isExport)
            continue;
        if (toks[i + 1].v === 'interface') {
            const name = toks[i + 2].v;
            let j = i + 3;
            const bases = [];
            if (toks[j].v === 'extends') {
                j++;
                while (toks[j].v !== '{') {
                    if (toks[j].t === 'id')
                        bases.push(toks[j].v);
                    j++;
                }
            }
            const p = new Parser(toks);
            p.i = j + 1;
            const body = p.objectBody();
            info.types.set(name, { ...body, bases });
            i = p.i - 1;
        } else if (toks[i + 1].v === 'type' && toks[i + 2]?.t === 'id' && toks[i + 3]?.v === '=') {
            const p = new Parser(toks);
            p.i = i + 4;
            info.types.set(toks[i + 2].v, p.type());
            i = p.i - 1;
        }
    }
    return info;
}

// The parsed type that `name` means in `info`: its own, an alias of its own,
// or an import. TypeMeta (apiVersion, kind) comes from @kubernetes-models/base.
function resolveName(info, name, seen = new Set()) {
    if (name === 'TypeMeta')
        return {
            type: { k: 'object', props: new Map([['apiVersion', { k: 'prim', name: 'string' }], ['kind', { k: 'prim', name: 'string' }]]), index: null },
            info,
        };
    const key = `${info.file}#${name}`;
    if (seen.has(key))
        throw new Error(`circular alias ${name} in ${info.file}`);
    seen.add(key);
    if (info.types.has(name))
        return withBases(info, info.types.get(name), seen);
    if (info.aliases.has(name))
        return resolveName(info, info.aliases.get(name), seen);
    if (info.imports.has(name)) {
        const imp = info.imports.get(name);
        return resolveName(loadFile(declarationFile(imp.spec, info.file)), imp.name, seen);
    }
    throw new Error(`type ${name} not found in ${info.file}`);
}

function withBases(info, type, seen) {
    if (!type.bases || type.bases.length === 0)
        return { type, info };
    const props = new Map(type.props);
    for (const base of type.bases) {
        const r = resolveName(info, base, new Set(seen));
        const t = r.type.k === 'object' ? r.type : null;
        if (!t)
            throw new Error(`interface base ${base} is not an object type`);
        for (const [k, v] of t.props)
            if (!props.has(k))
                props.set(k, { ...v, info: r.info });
    }
    return { type: { k: 'object', props, index: type.index }, info };
}

// ---------------------------------------------------------------- checking

// The unknown fields in value as typed by `type` (declared in `info`), as
// JSON-pointer-like paths. For a union, an object value is checked against
// each object branch and the one with the fewest unknown fields wins.
function unknownFields(value, type, info, where) {
    if (value === null || value === undefined)
        return [];
    switch (type.k) {
        case 'ref': {
            const r = resolveName(type.info ?? info, type.name);
            return unknownFields(value, r.type, r.info, where);
        }
        case 'array':
            return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, type.of, type.info ?? info, `${where}/${i}`)) : [];
        case 'union': {
            let best = null;
            for (const branch of type.of) {
                const found = unknownFields(value, branch, type.info ?? info, where);
                if (best === null || found.length < best.length)
                    best = found;
                if (found.length === 0)
                    break;
            }
            return best ?? [];
        }
        case 'object': {
            if (typeof value !== 'object' || Array.isArray(value))
                return [];
            const out = [];
            for (const [k, v] of Object.entries(value)) {
                const field = type.props.get(k);
                if (field)
                    out.push(...unknownFields(v, field, field.info ?? info, `${where}/${k}`));
                else if (type.index)
                    out.push(...unknownFields(v, type.index, type.index.info ?? info, `${where}/${k}`));
                else
                    out.push(`${where}/${k}`);
            }
            return out;
        }
        default:
            return []; // prim, literal: the schema validator checks values
    }
}

// The unknown fields of obj, whose model class lives in module `spec`
// (e.g. 'kubernetes-models/apps/v1/Deployment'), its interface named I<Kind>.
export function strictCheck(obj, spec) {
    const file = declarationFile(spec, fileURLToPath(import.meta.url));
    const info = loadFile(file);
    const r = resolveName(info, `I${obj.kind}`);
    return unknownFields(obj, r.type, r.info, '');
}
