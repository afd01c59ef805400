// The consistency checks: what a schema cannot see. Each check takes the
// rendered objects of one kustomization (and the context: the image's facts,
// the --help variables, which overlay) and returns a list of problems, empty
// when it holds. check.mjs runs each on the real renderings and on broken
// copies, which must produce a problem.

export const SERVER = 'chapter13'; // the HTTP Deployment, its container, its Service
export const CONTRACT = { uid: 10001, gid: 10001, port: 8000, grpcPort: 50051, metricsPort: 9100 };
const WRITABLE = ['/var/lib/weave', '/tmp'];

// ---------------------------------------------------------------- helpers

const byKind = (objs, kind) => objs.filter((o) => o.kind === kind);
const named = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata?.name === name);
const id = (o) => `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;
const workloads = (objs) => byKind(objs, 'Deployment');
const podSpec = (o) => o.spec?.template?.spec ?? {};
const containers = (o) => podSpec(o).containers ?? [];

export function selects(selector, labels) {
    if (!selector)
        return false;
    labels ??= {};
    for (const [k, v] of Object.entries(selector.matchLabels ?? {}))
        if (labels[k] !== v)
            return false;
    for (const e of selector.matchExpressions ?? []) {
        const has = Object.prototype.hasOwnProperty.call(labels, e.key);
        const ok = { In: has && e.values.includes(labels[e.key]), NotIn: !has || !e.values.includes(labels[e.key]), Exists: has, DoesNotExist: !has }[e.operator];
        if (!ok)
            return false;
    }
    return Object.keys(selector.matchLabels ?? {}).length + (selector.matchExpressions ?? []).length > 0;
}

// the Deployments whose pods a plain map selector (a Service's) picks
const podsOf = (objs, mapSelector) => workloads(objs).filter((d) => selects({ matchLabels: mapSelector }, d.spec?.template?.metadata?.labels));

// A container's environment as far as the repository knows it: the image's
// ENV, then the ConfigMaps of envFrom in order, then env (the Secret's values
// are not known here, and change no variable these checks read).
export function effectiveEnv(objs, container, image) {
    const env = new Map(image ? image.env : []);
    for (const ef of container.envFrom ?? [])
        if (ef.configMapRef) {
            const cm = named(objs, 'ConfigMap', ef.configMapRef.name);
            for (const [k, v] of Object.entries(cm?.data ?? {}))
                env.set((ef.prefix ?? '') + k, String(v));
        }
    for (const e of container.env ?? [])
        if (e.value !== undefined)
            env.set(e.name, String(e.value));
    return env;
}

// a variable's value: the container's, else --help's default, else undefined
function setting(objs, container, ctx, name) {
    return effectiveEnv(objs, container, ctx.image).get(name) ?? ctx.help?.get(name)?.default;
}

function containerPort(container, port) {
    return (container.ports ?? []).find((p) => (typeof port === 'string' ? p.name === port : p.containerPort === port));
}

export function cpu(q) {
    const s = String(q);
    return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

export function bytes(q) {
    const m = String(q).match(/^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/);
    if (!m)
        return NaN;
    const mult = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]] ?? 1;
    return Number(m[1]) * mult;
}

function preStopSeconds(container) {
    const h = container.lifecycle?.preStop;
    if (!h)
        return null;
    if (h.sleep)
        return Number(h.sleep.seconds);
    const cmd = h.exec?.command ?? [];
    if (cmd.length === 2 && /(^|\/)sleep$/.test(cmd[0]) && /^\d+(\.\d+)?$/.test(cmd[1]))
        return Number(cmd[1]);
    return NaN; // a handler whose duration is unknown
}

// ---------------------------------------------------------------- checks

export const checks = {
    'selectors match the pod templates they are for'(objs) {
        const out = [];
        for (const d of workloads(objs)) {
            const labels = d.spec?.template?.metadata?.labels;
            if (!selects(d.spec?.selector, labels))
                out.push(`${id(d)}: its selector does not match its pod template's labels`);
            for (const t of podSpec(d).topologySpreadConstraints ?? [])
                if (!selects(t.labelSelector, labels))
                    out.push(`${id(d)}: the topology spread on ${t.topologyKey} selects other pods than its own`);
            for (const other of workloads(objs))
                if (other !== d && selects(d.spec?.selector, other.spec?.template?.metadata?.labels))
                    out.push(`${id(d)}: its selector also matches the pods of ${id(other)}`);
        }
        for (const s of byKind(objs, 'Service')) {
            const hit = podsOf(objs, s.spec?.selector ?? {});
            if (hit.length !== 1)
                out.push(`${id(s)}: its selector picks the pods of ${hit.length} Deployments (${hit.map(id).join(', ') || 'none'}), not one`);
        }
        for (const p of byKind(objs, 'PodDisruptionBudget'))
            if (!workloads(objs).some((d) => selects(p.spec?.selector, d.spec?.template?.metadata?.labels)))
                out.push(`${id(p)}: its selector matches no Deployment's pods`);
        for (const m of byKind(objs, 'ServiceMonitor'))
            if (!byKind(objs, 'Service').some((s) => selects(m.spec?.selector, s.metadata?.labels)))
                out.push(`${id(m)}: its selector matches no Service's labels`);
        for (const h of byKind(objs, 'HorizontalPodAutoscaler')) {
            const ref = h.spec?.scaleTargetRef ?? {};
            if (!objs.some((o) => o.kind === ref.kind && o.apiVersion === ref.apiVersion && o.metadata?.name === ref.name))
                out.push(`${id(h)}: its scaleTargetRef ${ref.apiVersion} ${ref.kind} ${ref.name} is not in the rendering`);
        }
        return out;
    },

    "the Service's targetPorts name container ports that exist"(objs) {
        const out = [];
        for (const s of byKind(objs, 'Service'))
            for (const d of podsOf(objs, s.spec?.selector ?? {}))
                for (const p of s.spec?.ports ?? []) {
                    const target = p.targetPort ?? p.port;
                    if (!containers(d).some((c) => containerPort(c, target)))
                        out.push(`${id(s)} port ${p.name}: targetPort ${JSON.stringify(target)} is no container port of ${id(d)}`);
                }
        return out;
    },

    "the ServiceMonitor scrapes /metrics on the container's METRICS_PORT"(objs, ctx) {
        const out = [];
        for (const m of byKind(objs, 'ServiceMonitor')) {
            const services = byKind(objs, 'Service').filter((s) => selects(m.spec?.selector, s.metadata?.labels));
            for (const ep of m.spec?.endpoints ?? []) {
                if ((ep.path ?? '/metrics') !== '/metrics')
                    out.push(`${id(m)}: scrapes ${ep.path}, the service serves /metrics`);
                for (const s of services) {
                    const sp = (s.spec?.ports ?? []).find((p) => p.name === ep.port);
                    if (!sp) {
                        out.push(`${id(m)}: port ${JSON.stringify(ep.port)} is no port name of ${id(s)}`);
                        continue;
                    }
                    for (const d of podsOf(objs, s.spec?.selector ?? {}))
                        for (const c of containers(d)) {
                            const cp = containerPort(c, sp.targetPort ?? sp.port);
                            if (!cp)
                                continue;
                            const want = setting(objs, c, ctx, 'METRICS_PORT');
                            if (want === undefined)
                                out.push(`${id(d)} container ${c.name}: METRICS_PORT is set nowhere (container, ConfigMap, image)`);
                            else if (String(cp.containerPort) !== String(want))
                                out.push(`${id(m)} port ${ep.port} reaches containerPort ${cp.containerPort} of ${id(d)}, but its METRICS_PORT is ${want}`);
                        }
                }
            }
        }
        return out;
    },

    "the probes are /healthz and /readyz on the container's PORT"(objs, ctx) {
        const out = [];
        const d = named(objs, 'Deployment', SERVER);
        if (!d)
            return [`no Deployment ${SERVER}`];
        const c = containers(d).find((x) => x.name === SERVER);
        if (!c)
            return [`${id(d)}: no container ${SERVER}`];
        const port = setting(objs, c, ctx, 'PORT');
        const want = { livenessProbe: ['/healthz'], readinessProbe: ['/readyz'], startupProbe: ['/healthz', '/readyz'] };
        for (const [probe, paths] of Object.entries(want)) {
            const g = c[probe]?.httpGet;
            if (!g) {
                out.push(`${id(d)}: no ${probe} with httpGet`);
                continue;
            }
            if (!paths.includes(g.path))
                out.push(`${id(d)}: ${probe} path ${g.path}, expected ${paths.join(' or ')}`);
            const cp = containerPort(c, g.port);
            if (!cp)
                out.push(`${id(d)}: ${probe} port ${JSON.stringify(g.port)} is no container port`);
            else if (port === undefined)
                out.push(`${id(d)}: PORT is set nowhere (container, ConfigMap, image)`);
            else if (String(cp.containerPort) !== String(port))
                out.push(`${id(d)}: ${probe} port ${JSON.stringify(g.port)} is ${cp.containerPort}, but the service listens on PORT ${port}`);
        }
        return out;
    },

    'terminationGracePeriodSeconds exceeds preStop + DRAIN_TIMEOUT_MS'(objs, ctx) {
        const out = [];
        const d = named(objs, 'Deployment', SERVER);
        if (!d)
            return [`no Deployment ${SERVER}`];
        const grace = podSpec(d).terminationGracePeriodSeconds ?? 30;
        for (const c of containers(d)) {
            const sleep = preStopSeconds(c);
            if (sleep === null)
                out.push(`${id(d)} container ${c.name}: no preStop (endpoints are removed only after SIGTERM)`);
            else if (Number.isNaN(sleep))
                out.push(`${id(d)} container ${c.name}: a preStop whose duration cannot be read`);
            const drain = setting(objs, c, ctx, 'DRAIN_TIMEOUT_MS');
            if (drain === undefined || !/^\d+$/.test(drain)) {
                out.push(`${id(d)} container ${c.name}: DRAIN_TIMEOUT_MS is ${drain === undefined ? 'set nowhere' : JSON.stringify(drain)}`);
                continue;
            }
            const need = (sleep || 0) + Number(drain) / 1000;
            if (!(grace > need))
                out.push(`${id(d)}: terminationGracePeriodSeconds ${grace} <= preStop ${sleep || 0} s + DRAIN_TIMEOUT_MS ${drain}`);
        }
        return out;
    },

    "the pods meet the restricted Pod Security profile as uid 10001"(objs) {
        const out = [];
        for (const d of workloads(objs)) {
            const ps = podSpec(d);
            const sc = ps.securityContext ?? {};
            if (sc.runAsNonRoot !== true)
                out.push(`${id(d)}: runAsNonRoot is not true`);
            for (const [k, v] of [['runAsUser', CONTRACT.uid], ['runAsGroup', CONTRACT.gid], ['fsGroup', CONTRACT.gid]])
                if (sc[k] !== v)
                    out.push(`${id(d)}: ${k} ${sc[k]}, expected ${v}`);
            if (sc.seccompProfile?.type !== 'RuntimeDefault')
                out.push(`${id(d)}: seccompProfile ${sc.seccompProfile?.type}, expected RuntimeDefault`);
            for (const k of ['hostNetwork', 'hostPID', 'hostIPC'])
                if (ps[k])
                    out.push(`${id(d)}: ${k}`);
            if (ps.automountServiceAccountToken !== false)
                out.push(`${id(d)}: automountServiceAccountToken is not false (the service calls no Kubernetes API)`);
            for (const v of ps.volumes ?? [])
                if (v.hostPath)
                    out.push(`${id(d)}: hostPath volume ${v.name}`);
            for (const c of [...(ps.initContainers ?? []), ...(ps.containers ?? [])]) {
                const cs = c.securityContext ?? {};
                const where = `${id(d)} container ${c.name}`;
                if (cs.allowPrivilegeEscalation !== false)
                    out.push(`${where}: allowPrivilegeEscalation is not false`);
                if (cs.readOnlyRootFilesystem !== true)
                    out.push(`${where}: readOnlyRootFilesystem is not true`);
                if (cs.privileged)
                    out.push(`${where}: privileged`);
                if (!(cs.capabilities?.drop ?? []).includes('ALL'))
                    out.push(`${where}: capabilities do not drop ALL`);
                if ((cs.capabilities?.add ?? []).length)
                    out.push(`${where}: adds capabilities ${cs.capabilities.add.join(', ')}`);
                if (cs.runAsUser !== undefined && cs.runAsUser !== CONTRACT.uid)
                    out.push(`${where}: runAsUser ${cs.runAsUser}, expected ${CONTRACT.uid}`);
                if (cs.runAsNonRoot === false)
                    out.push(`${where}: runAsNonRoot false`);
            }
        }
        return out;
    },

    'the writable directories are volumes'(objs) {
        const out = [];
        for (const d of workloads(objs)) {
            const vols = new Map((podSpec(d).volumes ?? []).map((v) => [v.name, v]));
            for (const c of containers(d)) {
                const where = `${id(d)} container ${c.name}`;
                for (const m of c.volumeMounts ?? [])
                    if (!vols.has(m.name))
                        out.push(`${where}: mounts volume ${m.name}, which the pod does not have`);
                for (const dir of WRITABLE) {
                    const m = (c.volumeMounts ?? []).find((x) => x.mountPath === dir);
                    if (!m)
                        out.push(`${where}: nothing mounted at ${dir} (the root filesystem is read-only)`);
                    else if (m.readOnly)
                        out.push(`${where}: ${dir} is mounted read-only`);
                    else if (!vols.get(m.name)?.emptyDir && !vols.get(m.name)?.persistentVolumeClaim && !vols.get(m.name)?.ephemeral)
                        out.push(`${where}: ${dir} is not an emptyDir or a claim`);
                }
            }
        }
        return out;
    },

    'every container has CPU and memory requests and limits, whole CPUs'(objs) {
        const out = [];
        for (const d of workloads(objs))
            for (const c of containers(d)) {
                const r = c.resources ?? {};
                const where = `${id(d)} container ${c.name}`;
                for (const kind of ['requests', 'limits'])
                    for (const res of ['cpu', 'memory'])
                        if (r[kind]?.[res] === undefined)
                            out.push(`${where}: no ${kind}.${res}`);
                if (r.requests?.cpu !== undefined && r.limits?.cpu !== undefined && cpu(r.requests.cpu) > cpu(r.limits.cpu))
                    out.push(`${where}: requests.cpu ${r.requests.cpu} > limits.cpu ${r.limits.cpu}`);
                if (r.requests?.memory !== undefined && r.limits?.memory !== undefined && !(bytes(r.requests.memory) <= bytes(r.limits.memory)))
                    out.push(`${where}: requests.memory ${r.requests.memory} > limits.memory ${r.limits.memory}`);
                // one shard per CPU of the quota, rounded up: 1500m would run
                // 2 event loops on 1.5 CPUs, each throttled in turn
                if (r.limits?.cpu !== undefined && !Number.isInteger(cpu(r.limits.cpu)))
                    out.push(`${where}: limits.cpu ${r.limits.cpu} is not a whole number of CPUs`);
            }
        return out;
    },

    'the ConfigMap and Secret references resolve; no Secret is rendered'(objs) {
        const out = [];
        for (const s of byKind(objs, 'Secret'))
            out.push(`${id(s)}: a Secret in the rendering (its values would be in the repository)`);
        for (const d of workloads(objs))
            for (const c of containers(d))
                for (const ef of c.envFrom ?? []) {
                    const where = `${id(d)} container ${c.name}`;
                    if (ef.configMapRef && !named(objs, 'ConfigMap', ef.configMapRef.name) && !ef.configMapRef.optional)
                        out.push(`${where}: ConfigMap ${ef.configMapRef.name} is not in the rendering`);
                    if (ef.secretRef) {
                        if (ef.secretRef.name !== 'chapter13-secrets')
                            out.push(`${where}: Secret ${ef.secretRef.name}, expected chapter13-secrets`);
                        if (ef.secretRef.optional !== true)
                            out.push(`${where}: Secret ${ef.secretRef.name} is not optional`);
                    }
                }
        return out;
    },

    'the containers run the weave-chapter13 image'(objs, ctx) {
        const out = [];
        const d = named(objs, 'Deployment', SERVER);
        if (!d || !containers(d).some((c) => c.name === SERVER))
            out.push(`no container ${SERVER} in Deployment ${SERVER} (the pipelines' kubectl set image names it)`);
        for (const w of workloads(objs))
            for (const c of containers(w)) {
                const ref = String(c.image ?? '');
                const name = ref.replace(/@.*$/, '').replace(/:[^:/]*$/, '');
                if (!/(^|\/)weave-chapter13$/.test(name))
                    out.push(`${id(w)} container ${c.name}: image ${ref} is not weave-chapter13`);
                if (ctx.overlay === 'prod' && !/^[^/]+\/.*weave-chapter13:[\w][\w.-]*$/.test(ref))
                    out.push(`${id(w)} container ${c.name}: image ${ref} has no registry and tag`);
            }
        return out;
    },
};

// What each overlay is for, beyond the base.
export function overlayExpectations(objs, overlay, baseObjs = null) {
    const out = [];
    const ns = { base: undefined, dev: 'weave-dev', prod: 'weave' }[overlay];
    const d = named(objs, 'Deployment', SERVER);
    const labels = { 'app.kubernetes.io/name': 'chapter13', 'app.kubernetes.io/part-of': 'weave' };
    for (const o of objs) {
        if (o.kind === 'Namespace')
            continue;
        if (o.metadata?.namespace !== ns)
            out.push(`${id(o)}: namespace ${o.metadata?.namespace}, expected ${ns ?? 'none'}`);
        for (const [k, v] of Object.entries(labels))
            if (o.metadata?.labels?.[k] !== v)
                out.push(`${id(o)}: label ${k} is not ${v}`);
    }
    if (ns && !objs.some((o) => o.kind === 'Namespace' && o.metadata?.name === ns))
        out.push(`no Namespace ${ns}`);
    const has = (kind) => byKind(objs, kind).length > 0;
    if (overlay === 'dev') {
        if (d?.spec?.replicas !== 1)
            out.push(`Deployment ${SERVER}: replicas ${d?.spec?.replicas}, expected 1`);
        for (const kind of ['HorizontalPodAutoscaler', 'PodDisruptionBudget'])
            if (has(kind))
                out.push(`a ${kind} in dev (one pod: it would fight the replica count or block drains)`);
        if (named(objs, 'ConfigMap', 'chapter13-config')?.data?.LOG_LEVEL !== 'debug')
            out.push('LOG_LEVEL is not debug');
        const baseD = baseObjs && named(baseObjs, 'Deployment', SERVER);
        const lim = (x) => containers(x ?? {}).find((c) => c.name === SERVER)?.resources?.limits ?? {};
        if (baseD && !(cpu(lim(d).cpu) < cpu(lim(baseD).cpu) && bytes(lim(d).memory) < bytes(lim(baseD).memory)))
            out.push(`Deployment ${SERVER}: limits ${lim(d).cpu} CPU ${lim(d).memory} are not below the base's ${lim(baseD).cpu} CPU ${lim(baseD).memory}`);
    } else {
        if (d?.spec?.replicas !== 2)
            out.push(`Deployment ${SERVER}: replicas ${d?.spec?.replicas}, expected 2`);
        for (const kind of ['HorizontalPodAutoscaler', 'PodDisruptionBudget', 'ServiceMonitor', 'Service'])
            if (!has(kind))
                out.push(`no ${kind}`);
        const h = byKind(objs, 'HorizontalPodAutoscaler')[0];
        if (h) {
            if (h.spec.minReplicas !== 2 || h.spec.maxReplicas !== 10)
                out.push(`${id(h)}: ${h.spec.minReplicas} to ${h.spec.maxReplicas} replicas, expected 2 to 10`);
            if (!(h.spec.metrics ?? []).some((m) => m.type === 'Resource' && m.resource?.name === 'cpu' && m.resource?.target?.type === 'Utilization'))
                out.push(`${id(h)}: no CPU utilisation target`);
            const target = named(objs, 'Deployment', h.spec.scaleTargetRef?.name);
            if (target && !containers(target).every((c) => c.resources?.requests?.cpu))
                out.push(`${id(h)}: a container of its target has no CPU request to measure utilisation against`);
        }
        const p = byKind(objs, 'PodDisruptionBudget')[0];
        if (p && p.spec.minAvailable !== 1)
            out.push(`${id(p)}: minAvailable ${p.spec.minAvailable}, expected 1`);
        if (!named(objs, 'Deployment', 'chapter13-worker'))
            out.push('no Deployment chapter13-worker');
        else if (JSON.stringify(containers(named(objs, 'Deployment', 'chapter13-worker'))[0]?.args) !== '["worker"]')
            out.push('Deployment chapter13-worker does not run `chapter13 worker`');
    }
    return out;
}

// ---------------------------------------------------------------- the image

// The manifests against the image's facts ({user, env, exposed, healthcheck,
// workdir}, from the Dockerfile or `podman image inspect`).
export const imageChecks = {
    "the probes' port is the image's PORT, exposed"(objs, image) {
        const d = named(objs, 'Deployment', SERVER);
        const c = d && containers(d).find((x) => x.name === SERVER);
        if (!c)
            return [`no container ${SERVER}`];
        const out = [];
        const port = image.env.get('PORT');
        if (port === undefined)
            out.push('the image sets no PORT');
        for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
            const cp = c[probe]?.httpGet && containerPort(c, c[probe].httpGet.port);
            if (!cp)
                out.push(`${probe}: no container port`);
            else {
                if (port !== undefined && String(cp.containerPort) !== port)
                    out.push(`${probe}: containerPort ${cp.containerPort}, the image's PORT is ${port}`);
                if (!image.exposed.has(`${cp.containerPort}/tcp`))
                    out.push(`${probe}: containerPort ${cp.containerPort} is not EXPOSEd by the image (${[...image.exposed].join(' ')})`);
            }
        }
        return out;
    },

    "the metrics and gRPC ports are the image's METRICS_PORT and GRPC_PORT, exposed"(objs, image) {
        const d = named(objs, 'Deployment', SERVER);
        const c = d && containers(d).find((x) => x.name === SERVER);
        if (!c)
            return [`no container ${SERVER}`];
        const out = [];
        for (const [name, variable] of [['metrics', 'METRICS_PORT'], ['grpc', 'GRPC_PORT']]) {
            const cp = containerPort(c, name);
            const v = image.env.get(variable);
            if (!cp)
                out.push(`no container port ${name}`);
            else if (v === undefined)
                out.push(`the image sets no ${variable}`);
            else {
                if (String(cp.containerPort) !== v)
                    out.push(`container port ${name} is ${cp.containerPort}, the image's ${variable} is ${v}`);
                if (!image.exposed.has(`${cp.containerPort}/tcp`))
                    out.push(`container port ${name} (${cp.containerPort}) is not EXPOSEd by the image`);
            }
        }
        return out;
    },

    "runAsUser and runAsGroup are the image's USER"(objs, image) {
        const out = [];
        if (!image.user)
            return ['the image sets no USER (it would run as root)'];
        if (image.user.uid === null)
            return [`the image's USER ${image.user.raw} is a name: runAsNonRoot needs a numeric uid`];
        for (const d of workloads(objs)) {
            const sc = podSpec(d).securityContext ?? {};
            for (const c of containers(d)) {
                const uid = c.securityContext?.runAsUser ?? sc.runAsUser;
                const gid = c.securityContext?.runAsGroup ?? sc.runAsGroup;
                if (uid !== image.user.uid)
                    out.push(`${id(d)} container ${c.name}: runAsUser ${uid}, the image's uid is ${image.user.uid}`);
                if (image.user.gid !== null && gid !== image.user.gid)
                    out.push(`${id(d)} container ${c.name}: runAsGroup ${gid}, the image's gid is ${image.user.gid}`);
            }
        }
        return out;
    },

    "the image's HEALTHCHECK calls /healthz"(objs, image) {
        if (!image.healthcheck)
            return ['the image has no HEALTHCHECK'];
        return /\/healthz\b/.test(image.healthcheck) ? [] : [`the HEALTHCHECK does not call /healthz: ${image.healthcheck}`];
    },

    // With a read-only root, everything the service writes must land on a
    // volume: its working directory (relative defaults), the SQLite file of
    // the fallback DATABASE_URL and FILES_DIR.
    "the image's writable paths are on the pod's volumes"(objs, image, ctx) {
        const out = [];
        for (const d of workloads(objs))
            for (const c of containers(d)) {
                const mounts = (c.volumeMounts ?? []).filter((m) => !m.readOnly).map((m) => m.mountPath.replace(/\/$/, ''));
                const under = (p) => mounts.some((m) => p === m || p.startsWith(`${m}/`));
                const abs = (p) => (p.startsWith('/') ? p : `${image.workdir.replace(/\/$/, '')}/${p}`);
                const env = effectiveEnv(objs, c, image);
                const get = (k) => env.get(k) ?? ctx.help?.get(k)?.default;
                const paths = [['WORKDIR', image.workdir]];
                const db = get('DATABASE_URL');
                const m = db && db.match(/^sqlite:\/\/(?!:memory:)(.+)$/);
                if (m)
                    paths.push(['the SQLite file of DATABASE_URL', abs(m[1]).replace(/\/[^/]*$/, '')]);
                const files = get('FILES_DIR');
                if (files)
                    paths.push(['FILES_DIR', abs(files)]);
                for (const [what, p] of paths)
                    if (!under(p))
                        out.push(`${id(d)} container ${c.name}: ${what} ${p} is on the read-only root`);
            }
        return out;
    },
};

// ---------------------------------------------------------------- --help

// Every variable the manifests set is one `chapter13 --help` lists, with a
// value of its kind (N: an integer, a flag: true or false).
export function helpCheck(objs, help, extra = []) {
    const out = [];
    const seen = [...extra];
    for (const cm of byKind(objs, 'ConfigMap'))
        for (const [k, v] of Object.entries(cm.data ?? {}))
            seen.push([`${id(cm)}`, k, String(v)]);
    for (const d of workloads(objs))
        for (const c of containers(d))
            for (const e of c.env ?? [])
                seen.push([`${id(d)} container ${c.name}`, e.name, e.value]);
    for (const [where, k, v] of seen) {
        const opt = help.get(k);
        if (!opt)
            out.push(`${where}: ${k} is not a variable \`chapter13 --help\` lists`);
        else if (v !== undefined && opt.value === 'N' && !/^-?\d+$/.test(v))
            out.push(`${where}: ${k}=${v}, --${opt.flag} takes an integer`);
        else if (v !== undefined && opt.value === 'flag' && !['true', 'false', '1', '0'].includes(v))
            out.push(`${where}: ${k}=${v}, --${opt.flag} is a flag (true or false)`);
    }
    return out;
}
