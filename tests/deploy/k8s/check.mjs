// The checks of deploy/k8s, run by tests/deploy/test_k8s.sh (see its header
// for the environment variables). Prints PASS / FAIL / SKIP lines and ends
// with "N passed, M failed"; exits 1 when anything failed.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import { checks, CONTRACT, helpCheck, imageChecks, overlayExpectations } from './checks.mjs';
import { parseDockerfile, parseHelp, parseInspect, runHelp } from './image.mjs';
import { parseYamlDocs, render } from './render.mjs';
import { strictCheck } from './strict.mjs';

const root = path.resolve(process.argv[2] ?? '.');
const K8S = path.join(root, 'deploy/k8s');
const TARGETS = { base: 'base', dev: 'overlays/dev', prod: 'overlays/prod' };

let passed = 0, failed = 0;
// a bug here, or a manifest too broken for a check to walk, still ends with
// the summary line
for (const event of ['uncaughtException', 'unhandledRejection'])
    process.on(event, (e) => {
        console.log(`FAIL - tests/deploy/k8s/check.mjs broke: ${String(e?.stack ?? e).split('\n').slice(0, 3).join(' ')}`);
        console.log(`${passed} passed, ${failed + 1} failed`);
        process.exit(1);
    });
const pass = (what) => {
    passed++;
    console.log(`PASS - ${what}`);
};
const fail = (what, why) => {
    failed++;
    console.log(`FAIL - ${what}: ${why}`);
};
const skip = (what, why) => console.log(`SKIP - ${what}: ${why}`);
const clone = (x) => structuredClone(x);
const brief = (problems) => problems.slice(0, 4).join('; ') + (problems.length > 4 ? `; and ${problems.length - 4} more` : '');
const errText = (e) => String(e?.message ?? e).split('\n').slice(0, 3).join(' ').slice(0, 400);

// ---------------------------------------------------------------- validators

// kubernetes-models for the built-in API groups, the prometheus-operator
// models for monitoring.coreos.com; any other group is a kind with no
// validator, which fails.
function modelModule(obj) {
    const av = String(obj.apiVersion ?? '');
    const kind = String(obj.kind ?? '');
    if (!/^[A-Za-z0-9.\/-]+$/.test(av) || !/^[A-Za-z0-9]+$/.test(kind))
        return null;
    const group = av.includes('/') ? av.split('/')[0] : '';
    if (group === 'monitoring.coreos.com')
        return `@kubernetes-models/prometheus-operator/${av}/${kind}`;
    if (group === '' || group.endsWith('.k8s.io') || ['apps', 'autoscaling', 'batch', 'policy'].includes(group))
        return `kubernetes-models/${av}/${kind}`;
    return null;
}

const modelCache = new Map();
async function modelClass(obj) {
    const mod = modelModule(obj);
    if (!mod)
        return { error: `no validator for ${obj.apiVersion} ${obj.kind}` };
    if (!modelCache.has(mod)) {
        try {
            const m = await import(mod);
            modelCache.set(mod, { cls: m[obj.kind], mod });
        } catch {
            modelCache.set(mod, { error: `no validator for ${obj.apiVersion} ${obj.kind}` });
        }
    }
    const hit = modelCache.get(mod);
    return hit.cls ? hit : { error: hit.error ?? `no validator for ${obj.apiVersion} ${obj.kind}` };
}

// The schema's verdict and the unknown fields: [] when the object is valid.
async function validate(obj) {
    const m = await modelClass(obj);
    if (m.error)
        return [m.error];
    const out = [];
    try {
        new m.cls(obj).validate();
    } catch (e) {
        out.push(`schema: ${errText(e)}`);
    }
    try {
        for (const f of strictCheck(obj, m.mod))
            out.push(`unknown field ${f}`);
    } catch (e) {
        out.push(`unknown-field check broke: ${errText(e)}`);
    }
    return out;
}

const objName = (o) => `${o.apiVersion} ${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;

// ---------------------------------------------------------------- rendering

function kubectlKustomize() {
    const kubectl = process.env.KUBECTL ?? 'kubectl';
    let version;
    try {
        version = execFileSync(kubectl, ['version', '--client'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 });
    } catch {
        return { why: `${kubectl} is not installed` };
    }
    // labels: with includeTemplates needs kustomize 5; kubectl 1.20
    // (Debian's kubernetes-client) bundles 2.0.3 and prints no version of it
    const m = version.match(/Kustomize Version:\s*v?(\d+)\.(\d+)/);
    if (!m || Number(m[1]) < 5)
        return { why: `${kubectl}'s kustomize is ${m ? `v${m[1]}.${m[2]}` : 'too old to say its version'}; these kustomizations need v5` };
    return { kubectl, version: `kustomize v${m[1]}.${m[2]}` };
}

const keyOf = (o) => `${o.apiVersion} ${o.kind} ${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

function compareRenders(a, b) {
    const ma = new Map(a.map((o) => [keyOf(o), o])), mb = new Map(b.map((o) => [keyOf(o), o]));
    const out = [];
    for (const k of new Set([...ma.keys(), ...mb.keys()])) {
        if (!ma.has(k))
            out.push(`only kubectl has ${k}`);
        else if (!mb.has(k))
            out.push(`only the built-in renderer has ${k}`);
        else if (!isDeepStrictEqual(ma.get(k), mb.get(k)))
            out.push(`${k} differs`);
    }
    return out;
}

const kube = kubectlKustomize();
if (kube.why)
    skip('kubectl kustomize', `${kube.why}: rendering with the built-in renderer (tests/deploy/k8s/render.mjs) alone`);
const renders = {};
for (const [name, dir] of Object.entries(TARGETS)) {
    const full = path.join(K8S, dir);
    let mine = null, theirs = null;
    try {
        mine = render(full);
        pass(`${name}: deploy/k8s/${dir} rendered by the built-in renderer (${mine.length} objects)`);
    } catch (e) {
        fail(`${name}: deploy/k8s/${dir} rendered by the built-in renderer`, errText(e));
    }
    if (kube.kubectl) {
        try {
            const text = execFileSync(kube.kubectl, ['kustomize', full], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 });
            theirs = parseYamlDocs(text, `kubectl kustomize ${dir}`);
            pass(`${name}: deploy/k8s/${dir} rendered by kubectl kustomize (${kube.version}, ${theirs.length} objects)`);
        } catch (e) {
            fail(`${name}: deploy/k8s/${dir} rendered by kubectl kustomize`, errText(e.stderr || e));
        }
        if (mine && theirs) {
            const diff = compareRenders(theirs, mine);
            diff.length ? fail(`${name}: kubectl kustomize and the built-in renderer agree`, brief(diff))
                : pass(`${name}: kubectl kustomize and the built-in renderer render the same objects`);
        }
    }
    renders[name] = theirs ?? mine;
}

// ---------------------------------------------------------------- schemas

for (const [name, objs] of Object.entries(renders)) {
    if (!objs)
        continue;
    for (const o of objs) {
        const problems = await validate(o);
        problems.length ? fail(`${name}: ${objName(o)} is valid`, brief(problems))
            : pass(`${name}: ${objName(o)} is valid (schema, no unknown fields)`);
    }
}

// The Secret example: a valid Secret, kept out of the kustomization, holding
// placeholders only.
const exampleFile = path.join(K8S, 'base/secret.example.yaml');
let secretKeys = [];
if (!existsSync(exampleFile))
    fail('base/secret.example.yaml', 'missing');
else {
    const [secret] = parseYamlDocs(readFileSync(exampleFile, 'utf8'), exampleFile);
    const problems = await validate(secret);
    const listed = parseYamlDocs(readFileSync(path.join(K8S, 'base/kustomization.yaml'), 'utf8'), 'base')[0].resources ?? [];
    if (listed.includes('secret.example.yaml'))
        problems.push('base/kustomization.yaml lists it');
    if (secret?.kind !== 'Secret' || secret?.metadata?.name !== 'chapter13-secrets')
        problems.push('not the Secret chapter13-secrets');
    if (secret?.data)
        problems.push('has data: (base64 values); placeholders go in stringData');
    for (const [k, v] of Object.entries(secret?.stringData ?? {})) {
        secretKeys.push(['base/secret.example.yaml', k, undefined]);
        // a URL whose every part after the scheme is an upper-case placeholder
        if (!/^[A-Z0-9_:@\/.-]*$/.test(String(v).replace(/^[a-z][a-z0-9+.-]*:\/\//, '')))
            problems.push(`${k} looks like a real value, not a placeholder`);
    }
    problems.length ? fail('base/secret.example.yaml: an unlisted Secret of placeholders', brief(problems))
        : pass(`base/secret.example.yaml: a valid Secret of placeholders (${secretKeys.length} keys), not in the kustomization`);
}

// The validators must reject broken objects, or the checks above prove
// nothing. Each broken copy is made from the prod rendering.
const prod = renders.prod ?? renders.base;
async function mustReject(what, mutate, expect) {
    if (!prod)
        return fail(what, 'no rendering to break');
    let problems;
    try {
        problems = await validate(mutate(clone(prod)));
    } catch (e) {
        return fail(`rejected: ${what}`, `could not make the broken copy: ${errText(e)}`);
    }
    const hit = problems.filter((p) => expect.test(p));
    hit.length ? pass(`rejected: ${what} (${hit[0]})`) : fail(`rejected: ${what}`, problems.length ? `other problems only: ${brief(problems)}` : 'accepted');
}
const find = (objs, kind, name) => objs.find((o) => o.kind === kind && (!name || o.metadata.name === name));
const server = (objs) => find(objs, 'Deployment', 'chapter13');
const serverC = (objs) => server(objs).spec.template.spec.containers[0];

await mustReject('a Deployment whose containerPort is the string "8000"', (objs) => {
    serverC(objs).ports[0].containerPort = '8000';
    return server(objs);
}, /^schema: .*containerPort.*integer/);
await mustReject('a Deployment without its selector', (objs) => {
    delete server(objs).spec.selector;
    return server(objs);
}, /^schema: .*selector/);
{
    // the schema alone accepts a misspelt field (Kubernetes' schemas allow
    // extra properties): say so, then require the unknown-field check to
    // reject it
    const objs = clone(prod);
    const c = serverC(objs);
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    const { cls } = await modelClass(server(objs));
    let schemaAccepts = true;
    try {
        new cls(server(objs)).validate();
    } catch {
        schemaAccepts = false;
    }
    console.log(`NOTE - the kubernetes-models schema alone ${schemaAccepts ? 'accepts' : 'rejects'} a misspelt readinesProbe`);
}
await mustReject('a container with a misspelt readinesProbe', (objs) => {
    const c = serverC(objs);
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    return server(objs);
}, /unknown field .*readinesProbe/);
await mustReject('a ServiceMonitor endpoint with a misspelt pth', (objs) => {
    const m = find(objs, 'ServiceMonitor');
    m.spec.endpoints[0].pth = m.spec.endpoints[0].path;
    return m;
}, /unknown field .*pth/);
await mustReject('a ServiceMonitor endpoint whose port is the number 9100', (objs) => {
    const m = find(objs, 'ServiceMonitor');
    m.spec.endpoints[0].port = 9100;
    return m;
}, /^schema: .*port/);
await mustReject('an HPA without maxReplicas', (objs) => {
    const h = find(objs, 'HorizontalPodAutoscaler');
    delete h.spec.maxReplicas;
    return h;
}, /^schema: .*maxReplicas/);
await mustReject('a kind with no validator (apps/v1 Deploymnet)', (objs) => {
    const d = server(objs);
    d.kind = 'Deploymnet';
    return d;
}, /no validator/);

// ---------------------------------------------------------------- consistency

// the service's variables: CHAPTER13_BIN, else the release build if present
let help = null;
const bin = process.env.CHAPTER13_BIN || path.join(root, 'build/release/chapter13');
if (existsSync(bin)) {
    try {
        help = parseHelp(runHelp(bin));
        if (help.size === 0)
            throw new Error('no "[VARIABLE, default]" lines in its output');
        pass(`\`${path.relative(root, bin) || bin} --help\` lists ${help.size} variables`);
    } catch (e) {
        fail(`\`${bin} --help\``, errText(e));
        help = null;
    }
} else
    skip('chapter13 --help', `no binary at ${bin} (set CHAPTER13_BIN, or \`make build\`): the variable names and the defaults of --help are not checked`);

for (const [name, objs] of Object.entries(renders)) {
    if (!objs)
        continue;
    const ctx = { overlay: name, help, image: null };
    for (const [what, fn] of Object.entries(checks)) {
        // a check about a kind the rendering leaves out proves nothing there
        const about = { "the ServiceMonitor scrapes /metrics on the container's METRICS_PORT": 'ServiceMonitor' }[what];
        if (about && !objs.some((o) => o.kind === about)) {
            skip(`${name}: ${what}`, `no ${about} in ${name}`);
            continue;
        }
        const problems = fn(objs, ctx);
        problems.length ? fail(`${name}: ${what}`, brief(problems)) : pass(`${name}: ${what}`);
    }
    const problems = overlayExpectations(objs, name, renders.base);
    const own = `${name}: the ${name === 'base' ? 'base' : `${name} overlay`}'s own settings`;
    problems.length ? fail(own, brief(problems))
        : pass(`${own} (namespace, labels, replicas, ${name === 'dev' ? 'smaller limits, no HPA or PDB, debug logs' : 'HPA 2-10, PDB, ServiceMonitor, worker'})`);
    if (help) {
        const p = helpCheck(objs, help, name === 'base' ? secretKeys : []);
        p.length ? fail(`${name}: every variable set is one \`chapter13 --help\` lists`, brief(p))
            : pass(`${name}: every variable set (ConfigMap, container env${name === 'base' ? ', the Secret example' : ''}) is one \`chapter13 --help\` lists, with a value of its kind`);
    }
}

// Each consistency check must catch its own kind of mistake.
function mustCatch(what, check, mutate, ctx = {}) {
    if (!prod)
        return fail(what, 'no rendering to break');
    let problems;
    try {
        const objs = clone(prod);
        mutate(objs);
        problems = checks[check](objs, { overlay: 'prod', help, image: null, ...ctx });
    } catch (e) {
        return fail(`caught: ${what}`, `could not make the broken copy: ${errText(e)}`);
    }
    problems.length ? pass(`caught: ${what} (${problems[0]})`) : fail(`caught: ${what}`, `"${check}" found nothing`);
}
const cm = (objs) => find(objs, 'ConfigMap', 'chapter13-config');
mustCatch('a readiness probe on the port name "htp"', "the probes are /healthz and /readyz on the container's PORT",
    (o) => { serverC(o).readinessProbe.httpGet.port = 'htp'; });
mustCatch('a readiness probe on /ready', "the probes are /healthz and /readyz on the container's PORT",
    (o) => { serverC(o).readinessProbe.httpGet.path = '/ready'; });
mustCatch('PORT=8080 with the http containerPort 8000', "the probes are /healthz and /readyz on the container's PORT",
    (o) => { serverC(o).env.find((e) => e.name === 'PORT').value = '8080'; });
mustCatch('terminationGracePeriodSeconds 12 (< 5 s preStop + 10 s drain)', 'terminationGracePeriodSeconds exceeds preStop + DRAIN_TIMEOUT_MS',
    (o) => { server(o).spec.template.spec.terminationGracePeriodSeconds = 12; });
mustCatch('DRAIN_TIMEOUT_MS 30000 in the ConfigMap (30 s grace)', 'terminationGracePeriodSeconds exceeds preStop + DRAIN_TIMEOUT_MS',
    (o) => { cm(o).data.DRAIN_TIMEOUT_MS = '30000'; });
mustCatch('no preStop', 'terminationGracePeriodSeconds exceeds preStop + DRAIN_TIMEOUT_MS',
    (o) => { delete serverC(o).lifecycle; });
mustCatch('runAsUser 0', 'the pods meet the restricted Pod Security profile as uid 10001',
    (o) => { server(o).spec.template.spec.securityContext.runAsUser = 0; });
mustCatch('allowPrivilegeEscalation true', 'the pods meet the restricted Pod Security profile as uid 10001',
    (o) => { serverC(o).securityContext.allowPrivilegeEscalation = true; });
mustCatch("a ServiceMonitor on the port name \"metric\"", "the ServiceMonitor scrapes /metrics on the container's METRICS_PORT",
    (o) => { find(o, 'ServiceMonitor').spec.endpoints[0].port = 'metric'; });
mustCatch('METRICS_PORT=9200 with the metrics containerPort 9100', "the ServiceMonitor scrapes /metrics on the container's METRICS_PORT",
    (o) => { serverC(o).env.find((e) => e.name === 'METRICS_PORT').value = '9200'; });
mustCatch("a Service targetPort \"htp\"", "the Service's targetPorts name container ports that exist",
    (o) => { find(o, 'Service').spec.ports[0].targetPort = 'htp'; });
mustCatch('a pod template label that the selector no longer matches', 'selectors match the pod templates they are for',
    (o) => { server(o).spec.template.metadata.labels['app.kubernetes.io/component'] = 'web'; });
mustCatch('a Service selecting the worker pods too', 'selectors match the pod templates they are for',
    (o) => { delete find(o, 'Service').spec.selector['app.kubernetes.io/component']; });
mustCatch('a ServiceMonitor selecting no Service', 'selectors match the pod templates they are for',
    (o) => { find(o, 'ServiceMonitor').spec.selector.matchLabels['app.kubernetes.io/component'] = 'metrics'; });
mustCatch('no volume at /tmp', 'the writable directories are volumes',
    (o) => { serverC(o).volumeMounts = serverC(o).volumeMounts.filter((m) => m.mountPath !== '/tmp'); });
mustCatch('limits.cpu 1500m', 'every container has CPU and memory requests and limits, whole CPUs',
    (o) => { serverC(o).resources.limits.cpu = '1500m'; });
mustCatch('envFrom naming ConfigMap chapter13-conf', 'the ConfigMap and Secret references resolve; no Secret is rendered',
    (o) => { serverC(o).envFrom[0].configMapRef.name = 'chapter13-conf'; });
mustCatch('a required (not optional) Secret', 'the ConfigMap and Secret references resolve; no Secret is rendered',
    (o) => { delete serverC(o).envFrom[1].secretRef.optional; });
mustCatch('the image busybox', 'the containers run the weave-chapter13 image',
    (o) => { serverC(o).image = 'busybox:1.36'; });
{
    const objs = clone(prod);
    find(objs, 'HorizontalPodAutoscaler').spec.maxReplicas = 3;
    const p = overlayExpectations(objs, 'prod');
    p.length ? pass(`caught: an HPA of 2 to 3 replicas in prod (${p[0]})`) : fail('caught: an HPA of 2 to 3 replicas in prod', 'found nothing');
}
if (renders.dev && renders.base) {
    const objs = clone(renders.dev);
    find(objs, 'Deployment', 'chapter13').spec.template.spec.containers[0].resources.limits.cpu = '2';
    const p = overlayExpectations(objs, 'dev', renders.base);
    p.length ? pass(`caught: dev limits as large as the base's (${p[0]})`) : fail("caught: dev limits as large as the base's", 'found nothing');
}
if (help) {
    for (const [what, mutate] of [
        ['LOGLEVEL in the ConfigMap', (o) => { cm(o).data.LOGLEVEL = 'debug'; }],
        ['DRAIN_TIMEOUT_MS=10s in the ConfigMap', (o) => { cm(o).data.DRAIN_TIMEOUT_MS = '10s'; }],
    ]) {
        const objs = clone(prod);
        mutate(objs);
        const p = helpCheck(objs, help);
        p.length ? pass(`caught: ${what} (${p[0]})`) : fail(`caught: ${what}`, 'found nothing');
    }
}

// ---------------------------------------------------------------- the image

// The image contract as a Dockerfile: the image checks must pass on it and
// fail on each variant that breaks one promise. This proves the checks bite
// whether or not the repository's Dockerfile exists yet.
const CONTRACT_DOCKERFILE = `FROM debian:bookworm-slim AS build
ENV PORT=1
FROM debian:bookworm-slim
ENV PORT=${CONTRACT.port} \\
    GRPC_PORT=${CONTRACT.grpcPort} \\
    # a comment inside a continuation
    METRICS_PORT=${CONTRACT.metricsPort} \\
    DATABASE_URL=sqlite:///var/lib/weave/chapter13.db FILES_DIR=/var/lib/weave/files
USER ${CONTRACT.uid}:${CONTRACT.gid}
WORKDIR /var/lib/weave
EXPOSE ${CONTRACT.port} ${CONTRACT.grpcPort}/tcp ${CONTRACT.metricsPort}
HEALTHCHECK --interval=10s CMD ["/bin/bash", "-c", "curl -fsS http://127.0.0.1:\${PORT}/healthz"]
ENTRYPOINT ["/usr/local/bin/chapter13"]
`;
function runImageChecks(label, image, objsByName, { quiet = false } = {}) {
    const all = [];
    for (const [name, objs] of Object.entries(objsByName)) {
        if (!objs)
            continue;
        for (const [what, fn] of Object.entries(imageChecks)) {
            const problems = fn(objs, image, { help });
            all.push(...problems.map((p) => `${what}: ${p}`));
            if (!quiet)
                problems.length ? fail(`${name}: ${what} (${label})`, brief(problems)) : pass(`${name}: ${what} (${label})`);
        }
    }
    return all;
}
{
    const p = runImageChecks('contract', parseDockerfile(CONTRACT_DOCKERFILE), { prod }, { quiet: true });
    p.length ? fail("the image contract's Dockerfile passes the image checks", brief(p)) : pass("the image contract's Dockerfile passes the image checks");
    const variants = [
        ['USER 0', (t) => t.replace(/^USER .*$/m, 'USER 0')],
        ['USER weave (a name)', (t) => t.replace(/^USER .*$/m, 'USER weave')],
        ['ENV PORT=8080', (t) => t.replace(`PORT=${CONTRACT.port} `, 'PORT=8080 ')],
        ['EXPOSE without the metrics port', (t) => t.replace(/^EXPOSE .*$/m, `EXPOSE ${CONTRACT.port} ${CONTRACT.grpcPort}`)],
        ['HEALTHCHECK on /status', (t) => t.replace('/healthz', '/status')],
        ['no HEALTHCHECK', (t) => t.replace(/^HEALTHCHECK .*$/m, '')],
        ['WORKDIR /srv', (t) => t.replace('WORKDIR /var/lib/weave', 'WORKDIR /srv')],
        ['FILES_DIR=/data/files', (t) => t.replace('FILES_DIR=/var/lib/weave/files', 'FILES_DIR=/data/files')],
    ];
    for (const [what, edit] of variants) {
        const q = runImageChecks('variant', parseDockerfile(edit(CONTRACT_DOCKERFILE)), { prod }, { quiet: true });
        q.length ? pass(`caught: a Dockerfile with ${what} (${q[0]})`) : fail(`caught: a Dockerfile with ${what}`, 'the image checks found nothing');
    }
    // the same facts as `podman image inspect` prints them
    const inspect = JSON.stringify([{
        Config: {
            User: `${CONTRACT.uid}:${CONTRACT.gid}`,
            ExposedPorts: { [`${CONTRACT.port}/tcp`]: {}, [`${CONTRACT.grpcPort}/tcp`]: {}, [`${CONTRACT.metricsPort}/tcp`]: {} },
            Env: ['PATH=/usr/bin', `PORT=${CONTRACT.port}`, `GRPC_PORT=${CONTRACT.grpcPort}`, `METRICS_PORT=${CONTRACT.metricsPort}`],
            WorkingDir: '/var/lib/weave',
        },
        Healthcheck: { Test: ['CMD', '/bin/bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/8000 && printf "GET /healthz HTTP/1.1\\r\\n\\r\\n" >&3'] },
    }]);
    const r = runImageChecks('inspect', parseInspect(inspect, 'contract'), { prod }, { quiet: true });
    r.length ? fail("the image contract as `podman image inspect` output passes the image checks", brief(r))
        : pass("the image contract as `podman image inspect` output passes the image checks");
    const bad = JSON.parse(inspect);
    bad[0].Config.User = '0';
    const s = runImageChecks('inspect', parseInspect(JSON.stringify(bad), 'variant'), { prod }, { quiet: true });
    s.length ? pass(`caught: \`podman image inspect\` output with User 0 (${s[0]})`) : fail('caught: `podman image inspect` output with User 0', 'found nothing');
}

// The real image: the repository's Dockerfile, and IMAGE_INSPECT_JSON if set.
const dockerfile = path.join(root, 'Dockerfile');
if (existsSync(dockerfile)) {
    try {
        const image = parseDockerfile(readFileSync(dockerfile, 'utf8'));
        runImageChecks('Dockerfile', image, renders);
    } catch (e) {
        fail('the Dockerfile parses', errText(e));
    }
} else
    skip('the Dockerfile checks', `no ${dockerfile} yet: the probes' port, the exposed ports, the user and the HEALTHCHECK are checked against the image contract only`);
if (process.env.IMAGE_INSPECT_JSON) {
    try {
        const image = parseInspect(readFileSync(process.env.IMAGE_INSPECT_JSON, 'utf8'), process.env.IMAGE_INSPECT_JSON);
        runImageChecks('image inspect', image, renders);
    } catch (e) {
        fail(`IMAGE_INSPECT_JSON=${process.env.IMAGE_INSPECT_JSON} parses`, errText(e));
    }
} else
    skip('the built image', 'IMAGE_INSPECT_JSON not set (e.g. `podman image inspect weave-chapter13 > FILE`)');

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
