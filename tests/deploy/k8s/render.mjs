// A small kustomize for the subset deploy/k8s uses, for machines without
// `kubectl kustomize` (Debian's kubernetes-client 1.20 bundles kustomize
// 2.0.3, which predates `labels:` and `patches:`). Where kubectl is
// installed, test_k8s.sh renders with both and requires the same objects, so
// this cannot drift from real kustomize unnoticed.
//
// Supported, and nothing else (any other kustomization key is an error, so a
// new feature in the manifests shows up here instead of being ignored):
//   resources   files (one or more YAML documents) and directories with a
//               kustomization.yaml, rendered first
//   namespace   set on every namespaced object
//   labels      pairs on metadata.labels, with includeTemplates on the pod
//               templates; includeSelectors must be false
//   images      name -> newName / newTag / digest, in every containers[] and
//               initContainers[] list
//   patches     JSON 6902 operations (add, remove, replace, test) with a
//               target of kind / name / group / version / namespace; and
//               a strategic-merge patch that is only `$patch: delete`
//
//   node render.mjs DIR     prints the rendered YAML
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const KNOWN_KEYS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'images', 'patches']);
// kinds with no namespace (those a kustomization here might hold)
const CLUSTER_SCOPED = new Set([
    'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume',
    'StorageClass', 'PriorityClass', 'IngressClass', 'RuntimeClass', 'ValidatingWebhookConfiguration',
    'MutatingWebhookConfiguration', 'APIService', 'Node',
]);
// the workload kinds whose pod template `includeTemplates` labels
const TEMPLATE_PATHS = {
    Deployment: [['spec', 'template']],
    ReplicaSet: [['spec', 'template']],
    StatefulSet: [['spec', 'template']],
    DaemonSet: [['spec', 'template']],
    Job: [['spec', 'template']],
    CronJob: [['spec', 'jobTemplate'], ['spec', 'jobTemplate', 'spec', 'template']],
};

export function parseYamlDocs(text, where) {
    const out = [];
    for (const doc of parseAllDocuments(text)) {
        if (doc.errors.length)
            throw new Error(`${where}: ${doc.errors[0].message}`);
        const obj = doc.toJS();
        if (obj !== null && obj !== undefined)
            out.push(obj);
    }
    return out;
}

function kustomizationFile(dir) {
    for (const name of KUSTOMIZATION_FILES) {
        const f = path.join(dir, name);
        if (existsSync(f))
            return f;
    }
    throw new Error(`${dir}: no kustomization.yaml`);
}

// ---------------------------------------------------------------- JSON patch

function pointer(p) {
    if (p === '')
        return [];
    if (!p.startsWith('/'))
        throw new Error(`JSON pointer ${p} does not start with /`);
    return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function applyOp(doc, op) {
    const parts = pointer(op.path);
    const last = parts.pop();
    let parent = doc;
    for (const part of parts) {
        parent = Array.isArray(parent) ? parent[Number(part)] : parent?.[part];
        if (parent === undefined || parent === null || typeof parent !== 'object')
            throw new Error(`${op.op} ${op.path}: the path does not exist`);
    }
    const isArray = Array.isArray(parent);
    const index = last === '-' ? parent.length : Number(last);
    const exists = isArray ? index >= 0 && index < parent.length : Object.prototype.hasOwnProperty.call(parent, last);
    const value = structuredClone(op.value);
    switch (op.op) {
        case 'add':
            if (isArray) {
                if (!(index >= 0 && index <= parent.length))
                    throw new Error(`add ${op.path}: index out of range`);
                parent.splice(index, 0, value);
            } else
                parent[last] = value;
            break;
        case 'replace':
            if (!exists)
                throw new Error(`replace ${op.path}: the path does not exist`);
            parent[isArray ? index : last] = value;
            break;
        case 'remove':
            if (!exists)
                throw new Error(`remove ${op.path}: the path does not exist`);
            if (isArray)
                parent.splice(index, 1);
            else
                delete parent[last];
            break;
        case 'test':
            if (JSON.stringify(parent[isArray ? index : last]) !== JSON.stringify(op.value))
                throw new Error(`test ${op.path}: the value differs`);
            break;
        default:
            throw new Error(`JSON patch op ${op.op} is not supported here`);
    }
}

function groupVersion(obj) {
    const av = obj.apiVersion ?? '';
    return av.includes('/') ? av.split('/') : ['', av];
}

function matchesTarget(obj, target) {
    const [group, version] = groupVersion(obj);
    for (const key of Object.keys(target))
        if (!['kind', 'name', 'namespace', 'group', 'version'].includes(key))
            throw new Error(`patch target key ${key} is not supported here`);
    // kustomize matches name, kind and namespace as anchored regular expressions
    const re = (pattern, value) => new RegExp(`^(?:${pattern})$`).test(value ?? '');
    return (target.kind === undefined || re(target.kind, obj.kind)) &&
        (target.name === undefined || re(target.name, obj.metadata?.name)) &&
        (target.namespace === undefined || re(target.namespace, obj.metadata?.namespace)) &&
        (target.group === undefined || target.group === group) &&
        (target.version === undefined || target.version === version);
}

function applyPatch(objects, patch, dir) {
    for (const key of Object.keys(patch))
        if (!['patch', 'path', 'target'].includes(key))
            throw new Error(`patches entry key ${key} is not supported here`);
    const text = patch.patch ?? readFileSync(path.join(dir, patch.path), 'utf8');
    const docs = parseYamlDocs(text, `${dir}: a patch`);
    if (docs.length === 1 && Array.isArray(docs[0])) {
        if (!patch.target)
            throw new Error(`${dir}: a JSON 6902 patch needs a target`);
        const hit = objects.filter((o) => matchesTarget(o, patch.target));
        if (hit.length === 0)
            throw new Error(`${dir}: no resource matches the patch target ${JSON.stringify(patch.target)}`);
        for (const obj of hit)
            for (const op of docs[0])
                applyOp(obj, op);
        return objects;
    }
    // a strategic-merge patch: only whole-object deletion
    if (docs.length !== 1 || docs[0]?.$patch !== 'delete' || patch.target)
        throw new Error(`${dir}: only JSON 6902 patches and "$patch: delete" are supported here`);
    const del = docs[0];
    const before = objects.length;
    objects = objects.filter((o) => !(o.apiVersion === del.apiVersion && o.kind === del.kind &&
        o.metadata?.name === del.metadata?.name &&
        (del.metadata?.namespace === undefined || del.metadata.namespace === o.metadata?.namespace)));
    if (objects.length === before)
        throw new Error(`${dir}: "$patch: delete" of ${del.kind} ${del.metadata?.name} matches nothing`);
    return objects;
}

// ---------------------------------------------------------------- transformers

function setLabels(obj, pairs, includeTemplates) {
    obj.metadata ??= {};
    obj.metadata.labels = { ...(obj.metadata.labels ?? {}), ...pairs };
    if (!includeTemplates)
        return;
    for (const p of TEMPLATE_PATHS[obj.kind] ?? []) {
        let node = obj;
        for (const part of p)
            node = node?.[part];
        if (node && typeof node === 'object') {
            node.metadata ??= {};
            node.metadata.labels = { ...(node.metadata.labels ?? {}), ...pairs };
        }
    }
}

function splitImage(image) {
    let name = image, tag = null, digest = null;
    const at = name.indexOf('@');
    if (at >= 0) {
        digest = name.slice(at + 1);
        name = name.slice(0, at);
    }
    const colon = name.lastIndexOf(':');
    if (colon > name.lastIndexOf('/')) {
        tag = name.slice(colon + 1);
        name = name.slice(0, colon);
    }
    return { name, tag, digest };
}

function setImages(node, images) {
    if (Array.isArray(node)) {
        node.forEach((n) => setImages(n, images));
        return;
    }
    if (!node || typeof node !== 'object')
        return;
    for (const [key, value] of Object.entries(node)) {
        if ((key === 'containers' || key === 'initContainers') && Array.isArray(value)) {
            for (const c of value) {
                if (typeof c?.image !== 'string')
                    continue;
                const cur = splitImage(c.image);
                const entry = images.find((i) => i.name === cur.name);
                if (!entry)
                    continue;
                const name = entry.newName ?? cur.name;
                if (entry.digest)
                    c.image = `${name}@${entry.digest}`;
                else if (entry.newTag)
                    c.image = `${name}:${entry.newTag}`;
                else
                    c.image = name + (cur.tag ? `:${cur.tag}` : '') + (cur.digest ? `@${cur.digest}` : '');
            }
        }
        setImages(value, images);
    }
}

// ---------------------------------------------------------------- render

export function render(dir, stack = []) {
    dir = path.resolve(dir);
    if (stack.includes(dir))
        throw new Error(`${dir}: a resource cycle`);
    const file = kustomizationFile(dir);
    const k = parseYamlDocs(readFileSync(file, 'utf8'), file)[0] ?? {};
    for (const key of Object.keys(k))
        if (!KNOWN_KEYS.has(key))
            throw new Error(`${file}: kustomization key "${key}" is not supported by this renderer`);

    let objects = [];
    for (const res of k.resources ?? []) {
        const p = path.join(dir, res);
        if (!existsSync(p))
            throw new Error(`${file}: resource ${res} does not exist`);
        if (statSync(p).isDirectory())
            objects.push(...render(p, [...stack, dir]));
        else
            objects.push(...parseYamlDocs(readFileSync(p, 'utf8'), p));
    }
    const ids = new Set();
    for (const o of objects) {
        const id = `${o.apiVersion} ${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
        if (ids.has(id))
            throw new Error(`${file}: ${id} is defined twice`);
        ids.add(id);
    }

    // kustomize's order: patches, then namespace, labels, images
    for (const patch of k.patches ?? [])
        objects = applyPatch(objects, patch, dir);
    if (k.namespace)
        for (const o of objects)
            if (!CLUSTER_SCOPED.has(o.kind)) {
                o.metadata ??= {};
                o.metadata.namespace = k.namespace;
            }
    for (const entry of k.labels ?? []) {
        for (const key of Object.keys(entry))
            if (!['pairs', 'includeSelectors', 'includeTemplates'].includes(key))
                throw new Error(`${file}: labels key ${key} is not supported by this renderer`);
        if (entry.includeSelectors)
            throw new Error(`${file}: labels with includeSelectors: true is not supported by this renderer`);
        for (const o of objects)
            setLabels(o, entry.pairs ?? {}, !!entry.includeTemplates);
    }
    if (k.images)
        for (const o of objects)
            setImages(o, k.images);
    return objects;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
    const objects = render(process.argv[2] ?? '.');
    process.stdout.write(objects.map((o) => stringify(o)).join('---\n'));
}
