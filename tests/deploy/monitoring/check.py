"""Consistency checks of the monitoring files, for tests/deploy/test_monitoring.sh.

    check.py alerts RULES TESTS README     the alerting rules' shape and their unit tests' coverage
    check.py grafana ROOT COMPOSE [--datasource F] [--provider F] [--dashboard F]
                                           provisioning and dashboard, against compose
    check.py compose ROOT COMPOSE          compose.yaml against the repository
    check.py compose-env COMPOSE HELP      chapter13's variables against `chapter13 --help`
    check.py mutate KIND IN OUT [ARGS]     write a broken copy for the negative checks

Each check prints what is wrong, one line each, and exits 1 if anything is;
0 and nothing else otherwise. Bind paths in COMPOSE are resolved against
ROOT (the repository), not the file's own folder, so that a mutated copy in
a temporary folder is checked as if it were the real one.

Runs on Debian's /usr/bin/python3 with python3-yaml.
"""
import json
import os
import re
import shutil
import sys

import yaml

problems = []


def bad(msg):
    problems.append(msg)


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def dump_yaml(doc, path):
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


# ------------------------------------------------------------------ alerts

SEVERITIES = {"critical", "warning"}


def check_alerts(rules_path, tests_path, readme_path):
    doc = load_yaml(rules_path)
    readme = open(readme_path).read()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    names = []
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert")
            if not name:
                continue  # a recording rule: none today, but not this check's business
            names.append(name)
            if not rule.get("expr"):
                bad(f"{name}: no expr")
            if not rule.get("for"):
                bad(f"{name}: no `for:` (one bad evaluation would page)")
            sev = (rule.get("labels") or {}).get("severity")
            if sev not in SEVERITIES:
                bad(f"{name}: severity {sev!r}, not one of {sorted(SEVERITIES)}")
            ann = rule.get("annotations") or {}
            for key in ("summary", "description", "runbook"):
                if not ann.get(key):
                    bad(f"{name}: no {key} annotation")
            m = re.search(r"README\.md#([a-z0-9-]+)", ann.get("runbook", ""))
            if not m:
                bad(f"{name}: the runbook annotation names no README.md#anchor")
            elif m.group(1) not in anchors:
                bad(f"{name}: the runbook anchor #{m.group(1)} is no heading of {readme_path}")
    if not names:
        bad(f"{rules_path}: no alerts")
    for n in set(names):
        if names.count(n) > 1:
            bad(f"{n}: defined {names.count(n)} times")

    tests = load_yaml(tests_path)
    fires, quiet = set(), set()
    for t in tests.get("tests") or []:
        for case in t.get("alert_rule_test") or []:
            (fires if case.get("exp_alerts") else quiet).add(case.get("alertname"))
    for n in names:
        if n not in fires:
            bad(f"{n}: no unit test where it fires ({tests_path})")
        if n not in quiet:
            bad(f"{n}: no unit test where it must stay quiet ({tests_path})")
    for n in (fires | quiet) - set(names):
        bad(f"{tests_path} tests {n}, which {rules_path} does not define")


# ------------------------------------------------------------------ compose

# Ports the images of the other services listen on (their defaults).
IMAGE_PORTS = {
    "postgres": {5432},
    "redis": {6379},
    "rabbitmq": {5672, 15672},  # AMQP, and the management page of the -management tags
    "prom/prometheus": {9090},
    "grafana/grafana": {3000},
}
# The image contract: chapter13 listens on PORT, GRPC_PORT and METRICS_PORT,
# which the image sets to these.
CHAPTER13_IMAGE = "localhost/weave-chapter13"
CHAPTER13_PORT_VARS = {"PORT": 8000, "GRPC_PORT": 50051, "METRICS_PORT": 9100}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def image_repo(image):
    """docker.io/library/postgres:15 -> postgres, docker.io/prom/prometheus:v2 -> prom/prometheus"""
    name = image.split("@")[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {str(k): ("" if v is None else str(v)) for k, v in env.items()}


def runs_chapter13(svc):
    return image_repo(str(svc.get("image", ""))) == CHAPTER13_IMAGE


def listened_ports(name, svc):
    if runs_chapter13(svc):
        env = env_of(svc)
        ports = set()
        for var, default in CHAPTER13_PORT_VARS.items():
            try:
                ports.add(int(env.get(var, default)))
            except ValueError:
                bad(f"{name}: {var}={env[var]!r} is not a port")
        return ports
    repo = image_repo(str(svc.get("image", "")))
    if repo not in IMAGE_PORTS:
        bad(f"{name}: image {svc.get('image')!r} has no known ports (add it to IMAGE_PORTS)")
        return set()
    return IMAGE_PORTS[repo]


def parse_port(entry):
    """(host_ip, host_port or None, container_port) of a ports: entry."""
    if isinstance(entry, dict):
        published = entry.get("published")
        return entry.get("host_ip", ""), int(published) if published else None, int(entry["target"])
    s = str(entry).split("/")[0]
    parts = s.rsplit(":", 2) if s.count(":") >= 2 else s.split(":")
    if len(parts) == 1:
        return ("", None, int(parts[0]))
    if len(parts) == 2:
        return ("", int(parts[0]), int(parts[1]))
    return (parts[0], int(parts[1]), int(parts[2]))


def parse_volume(entry):
    """(source, target, read_only) of a volumes: entry; source None for an anonymous volume."""
    if isinstance(entry, dict):
        return entry.get("source"), entry["target"], bool(entry.get("read_only"))
    parts = str(entry).split(":")
    if len(parts) == 1:
        return None, parts[0], False
    return parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")


def is_bind(source):
    return source is not None and source.startswith((".", "/", "~"))


def host_path(root, source):
    return source if os.path.isabs(source) else os.path.normpath(os.path.join(root, source))


def mounted_host_path(root, svc, container_path):
    """The host path behind container_path through svc's bind mounts, or None."""
    best = None
    for v in svc.get("volumes") or []:
        src, dst, _ = parse_volume(v)
        if not is_bind(src):
            continue
        dst = dst.rstrip("/")
        if container_path == dst or container_path.startswith(dst + "/"):
            if best is None or len(dst) > len(best[1]):
                best = (src, dst)
    if best is None:
        return None
    rest = container_path[len(best[1]):].lstrip("/")
    return os.path.join(host_path(root, best[0]), rest) if rest else host_path(root, best[0])


def find_service(services, repo):
    for name, svc in services.items():
        if image_repo(str(svc.get("image", ""))) == repo:
            return name, svc
    return None, None


def check_compose(root, compose_path):
    doc = load_yaml(compose_path)
    services = doc.get("services") or {}
    if not services:
        bad("no services")
        return
    named_volumes = set((doc.get("volumes") or {}).keys())
    host_ports = {}
    listening = {name: listened_ports(name, svc) for name, svc in services.items()}
    for name, svc in services.items():
        svc = svc or {}
        # an image or a build
        image = svc.get("image")
        build = svc.get("build")
        if not image and not build:
            bad(f"{name}: neither image nor build")
        if image is not None and not str(image).strip():
            bad(f"{name}: an empty image name")
        if build is not None:
            ctx = build if isinstance(build, str) else (build or {}).get("context", ".")
            ctx_path = host_path(root, ctx)
            if not os.path.isdir(ctx_path):
                bad(f"{name}: build context {ctx} is not a folder of the repository")
            dockerfile = None if isinstance(build, str) else (build or {}).get("dockerfile")
            if dockerfile and not os.path.isfile(os.path.join(ctx_path, dockerfile)):
                bad(f"{name}: dockerfile {dockerfile} not found in {ctx}")
            if not runs_chapter13(svc):
                bad(f"{name}: built here but not named {CHAPTER13_IMAGE} (make image's name)")
        # depends_on
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            if dep not in services:
                bad(f"{name}: depends_on {dep}, which is no service")
                continue
            if dep == name:
                bad(f"{name}: depends on itself")
            cond = (spec or {}).get("condition", "service_started")
            if cond not in CONDITIONS:
                bad(f"{name}: depends_on {dep} with condition {cond!r}")
            if cond == "service_healthy":
                hc = services[dep].get("healthcheck")
                has_own = hc and not hc.get("disable")
                # the image contract gives chapter13's image a HEALTHCHECK
                from_image = runs_chapter13(services[dep]) and not (hc and hc.get("disable"))
                if not (has_own or from_image):
                    bad(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
        # ports
        for entry in svc.get("ports") or []:
            try:
                ip, hport, cport = parse_port(entry)
            except (ValueError, KeyError):
                bad(f"{name}: cannot read the port mapping {entry!r}")
                continue
            if cport not in listening[name]:
                bad(f"{name}: maps container port {cport}, which it does not listen on "
                    f"({sorted(listening[name])})")
            if hport is not None:
                if hport in host_ports:
                    bad(f"{name}: host port {hport} is already mapped by {host_ports[hport]}")
                else:
                    host_ports[hport] = name
        for entry in svc.get("expose") or []:
            if int(str(entry).split("/")[0]) not in listening[name]:
                bad(f"{name}: exposes {entry}, which it does not listen on")
        # volumes
        for entry in svc.get("volumes") or []:
            src, dst, _ = parse_volume(entry)
            if not dst.startswith("/"):
                bad(f"{name}: volume target {dst} is not an absolute path")
            if is_bind(src):
                if not os.path.exists(host_path(root, src)):
                    bad(f"{name}: bind mount {src} does not exist in the repository")
            elif src is not None and src not in named_volumes:
                bad(f"{name}: volume {src} is not declared under the top-level volumes:")
        # healthcheck
        hc = svc.get("healthcheck")
        if hc and not hc.get("disable"):
            test = hc.get("test")
            if not test or (isinstance(test, list) and test[0] not in ("CMD", "CMD-SHELL", "NONE")):
                bad(f"{name}: healthcheck test {test!r} starts with neither CMD nor CMD-SHELL")
    for name in named_volumes:
        mounts = [parse_volume(v)[0] for s in services.values() for v in (s or {}).get("volumes") or []]
        if name not in mounts:
            bad(f"volume {name} is declared but no service mounts it")
    check_dependency_cycles(services)
    check_prometheus_in_compose(root, services, listening)
    check_grafana_in_compose(root, services)


def check_dependency_cycles(services):
    def deps(n):
        d = services[n].get("depends_on") or {}
        return [x for x in d if x in services]
    state = {}

    def visit(n, path):
        if state.get(n) == 1:
            bad("depends_on cycle: " + " -> ".join(path + [n]))
            return
        if state.get(n) == 2:
            return
        state[n] = 1
        for d in deps(n):
            visit(d, path + [n])
        state[n] = 2
    for n in services:
        visit(n, [])


def check_prometheus_in_compose(root, services, listening):
    name, svc = find_service(services, "prom/prometheus")
    if not svc:
        bad("no prometheus service (prom/prometheus)")
        return
    args = svc.get("command") or []
    if isinstance(args, str):
        args = args.split()
    conf = [a.split("=", 1)[1] for a in args if str(a).startswith("--config.file=")]
    if not conf:
        bad(f"{name}: no --config.file= in its command")
        return
    path = mounted_host_path(root, svc, conf[0])
    if not path or not os.path.isfile(path):
        bad(f"{name}: its config {conf[0]} is not a file mounted from the repository")
        return
    cfg = load_yaml(path)
    rules = cfg.get("rule_files") or []
    for rf in rules:
        if not os.path.isfile(os.path.join(os.path.dirname(path), rf)):
            bad(f"{name}: rule file {rf} not beside {path}")
    if not any(os.path.basename(r) == "alerts.yml" for r in rules):
        bad(f"{name}: its config loads no alerts.yml")
    targets = 0
    for sc in cfg.get("scrape_configs") or []:
        for stc in sc.get("static_configs") or []:
            for t in stc.get("targets") or []:
                targets += 1
                host, _, port = str(t).rpartition(":")
                if host not in services:
                    bad(f"{name}: scrape target {t} names no compose service")
                elif not port.isdigit() or int(port) not in listening[host]:
                    bad(f"{name}: scrape target {t}: {host} does not listen on {port} "
                        f"({sorted(listening[host])})")
    if not targets:
        bad(f"{name}: its config scrapes nothing")


def check_grafana_in_compose(root, services):
    name, svc = find_service(services, "grafana/grafana")
    if not svc:
        bad("no grafana service (grafana/grafana)")
        return
    prov = mounted_host_path(root, svc, "/etc/grafana/provisioning")
    if not prov or not os.path.isdir(prov):
        bad(f"{name}: nothing from the repository mounted at /etc/grafana/provisioning")
        return
    for sub in ("datasources", "dashboards"):
        if not os.path.isdir(os.path.join(prov, sub)):
            bad(f"{name}: the mounted provisioning has no {sub}/ folder")


# ------------------------------------------------------------------ grafana

DS_VAR = "DS_PROMETHEUS"


def check_grafana(root, compose_path, ds_path, provider_path, dashboard_path):
    services = (load_yaml(compose_path) or {}).get("services") or {}
    gname, gsvc = find_service(services, "grafana/grafana")

    ds_doc = load_yaml(ds_path)
    if ds_doc.get("apiVersion") != 1:
        bad(f"{ds_path}: apiVersion {ds_doc.get('apiVersion')!r}, not 1")
    sources = [d for d in ds_doc.get("datasources") or [] if d.get("type") == "prometheus"]
    if len(sources) != 1:
        bad(f"{ds_path}: {len(sources)} Prometheus data sources, not 1")
        return
    ds = sources[0]
    for key in ("name", "uid", "url"):
        if not ds.get(key):
            bad(f"{ds_path}: the data source has no {key}")
    m = re.match(r"^https?://([^:/]+):(\d+)/?$", str(ds.get("url", "")))
    if not m:
        bad(f"{ds_path}: url {ds.get('url')!r} is not http://host:port")
    else:
        host, port = m.group(1), int(m.group(2))
        if host not in services:
            bad(f"{ds_path}: url host {host} is no compose service")
        elif port not in listened_ports(host, services[host]):
            bad(f"{ds_path}: {host} does not listen on {port}")

    dash = json.load(open(dashboard_path))
    if "__inputs" in dash:
        bad(f"{dashboard_path}: __inputs, which provisioning leaves unresolved")
    variables = (dash.get("templating") or {}).get("list") or []
    dsvar = [v for v in variables if v.get("name") == DS_VAR]
    if not dsvar:
        bad(f"{dashboard_path}: no {DS_VAR} variable")
    else:
        v = dsvar[0]
        if v.get("type") != "datasource" or v.get("query") != "prometheus":
            bad(f"{dashboard_path}: {DS_VAR} is not a variable of type datasource for prometheus")
        if variables.index(v) != 0:
            bad(f"{dashboard_path}: {DS_VAR} must come first: the other variables query through it")
        cur = v.get("current") or {}
        if cur.get("value") != ds.get("uid"):
            bad(f"{dashboard_path}: {DS_VAR} selects uid {cur.get('value')!r}, "
                f"the provisioned data source's is {ds.get('uid')!r}")
        if cur.get("text") != ds.get("name"):
            bad(f"{dashboard_path}: {DS_VAR}'s text {cur.get('text')!r} is not the provisioned "
                f"name {ds.get('name')!r} (the fallback match)")
    want = {"type": "prometheus", "uid": "${%s}" % DS_VAR}

    def check_ref(where, ref):
        if ref != want:
            bad(f"{dashboard_path}: {where} uses data source {ref!r}, not {want}")
    for v in variables:
        if v.get("type") == "query":
            check_ref(f"variable {v.get('name')}", v.get("datasource"))
    ids, cells = set(), {}
    for p in dash.get("panels") or []:
        pid = p.get("id")
        if pid in ids:
            bad(f"{dashboard_path}: panel id {pid} twice")
        ids.add(pid)
        g = p.get("gridPos") or {}
        mine = {(x, y) for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0))
                for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0))}
        if not mine:
            bad(f"{dashboard_path}: panel {pid} has no gridPos")
        for other in sorted({cells[c] for c in mine if c in cells}, key=str):
            bad(f"{dashboard_path}: panels {other} and {pid} overlap")
        cells.update((c, pid) for c in mine)
        if p.get("type") == "row":
            continue
        check_ref(f"panel {p.get('title')!r}", p.get("datasource"))
        if not p.get("targets"):
            bad(f"{dashboard_path}: panel {p.get('title')!r} has no query")
        for t in p.get("targets") or []:
            if "datasource" in t:
                check_ref(f"a query of {p.get('title')!r}", t["datasource"])
    leftovers = set(re.findall(r"\$\{(DS_[A-Z_]+)\}", json.dumps(dash))) - {DS_VAR}
    if leftovers:
        bad(f"{dashboard_path}: placeholders no variable defines: {sorted(leftovers)}")

    prov = load_yaml(provider_path)
    if prov.get("apiVersion") != 1:
        bad(f"{provider_path}: apiVersion {prov.get('apiVersion')!r}, not 1")
    providers = prov.get("providers") or []
    if not providers:
        bad(f"{provider_path}: no providers")
    for p in providers:
        if p.get("type", "file") != "file":
            continue
        path = (p.get("options") or {}).get("path")
        if not path or not path.startswith("/"):
            bad(f"{provider_path}: provider {p.get('name')} has no absolute options.path")
            continue
        if not gsvc:
            bad(f"{compose_path}: no grafana service to mount {path}")
            continue
        # what compose puts in that folder: a folder mounted there, or files in it
        found = []
        host = mounted_host_path(root, gsvc, path)
        if host and os.path.isdir(host):
            found += [os.path.join(host, f) for f in os.listdir(host) if f.endswith(".json")]
        for v in gsvc.get("volumes") or []:
            src, dst, _ = parse_volume(v)
            in_path = os.path.dirname(dst.rstrip("/")) == path.rstrip("/")
            if is_bind(src) and in_path and dst.endswith(".json") and os.path.isfile(host_path(root, src)):
                found.append(host_path(root, src))
        if not found:
            bad(f"{provider_path}: provider path {path} gets no dashboard from {compose_path}")
        else:
            ours = os.path.realpath(os.path.join(root, "deploy", "grafana", "weave-dashboard.json"))
            if ours not in {os.path.realpath(f) for f in found}:
                bad(f"{provider_path}: {path} does not get deploy/grafana/weave-dashboard.json")


# ------------------------------------------------------------------ env

def check_compose_env(compose_path, help_path):
    listed = set(re.findall(r"\[([A-Z][A-Z0-9_]*),", open(help_path).read()))
    if len(listed) < 5:
        bad(f"{help_path}: fewer than 5 variables found, not chapter13 --help's output?")
        return
    services = (load_yaml(compose_path) or {}).get("services") or {}
    seen = 0
    for name, svc in services.items():
        if not runs_chapter13(svc or {}):
            continue
        seen += 1
        for key in env_of(svc):
            if key not in listed:
                bad(f"{name}: {key} is no variable chapter13 --help lists")
    if not seen:
        bad(f"{compose_path}: no service runs {CHAPTER13_IMAGE}")


# ------------------------------------------------------------------ mutations

def mutate(kind, src, out, args):
    if kind == "replace":  # replace OLD NEW (text, every occurrence)
        text = open(src).read()
        old, new = args
        if old not in text:
            raise SystemExit(f"mutate: {old!r} not in {src}")
        open(out, "w").write(text.replace(old, new))
        return
    if kind == "expr":  # expr ALERT OLD NEW: in that alert's expression only
        doc = load_yaml(src)
        alert, old, new = args
        rules = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == alert]
        if not rules or old not in rules[0]["expr"]:
            raise SystemExit(f"mutate: {old!r} not in the expr of {alert} in {src}")
        rules[0]["expr"] = rules[0]["expr"].replace(old, new)
        dump_yaml(doc, out)
        return
    if kind == "drop-for":  # drop-for ALERT
        doc = load_yaml(src)
        hit = False
        for g in doc["groups"]:
            for r in g["rules"]:
                if r.get("alert") == args[0] and "for" in r:
                    del r["for"]
                    hit = True
        if not hit:
            raise SystemExit(f"mutate: no alert {args[0]} with a for: in {src}")
        dump_yaml(doc, out)
        return
    if kind == "drop-severity":  # drop-severity: the first alert loses its severity label
        doc = load_yaml(src)
        doc["groups"][0]["rules"][0]["labels"].pop("severity")
        dump_yaml(doc, out)
        return
    if kind == "expect-quiet-alert":
        # every case that expects silence expects its alert instead
        doc = load_yaml(src)
        n = 0
        for t in doc["tests"]:
            for case in t.get("alert_rule_test") or []:
                if not case.get("exp_alerts"):
                    case["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
                    n += 1
        if not n:
            raise SystemExit("mutate: no quiet case to turn")
        dump_yaml(doc, out)
        return
    doc = load_yaml(src)
    s = doc.get("services") if isinstance(doc, dict) else None
    if kind == "missing-dep":
        s["chapter13"].setdefault("depends_on", {})["nosuchservice"] = {
            "condition": "service_started"}
    elif kind == "dup-host-port":
        s["grafana"].setdefault("ports", []).append("127.0.0.1:8000:3000")
    elif kind == "wrong-container-port":
        s["chapter13"]["ports"] = ["127.0.0.1:8000:8080"]
    elif kind == "missing-bind":
        s["grafana"]["volumes"][0] = "./deploy/grafana/no-such-folder:/etc/grafana/provisioning:ro"
    elif kind == "healthy-without-check":
        s["grafana"]["depends_on"] = {"worker": {"condition": "service_healthy"}}
    elif kind == "bad-env":
        s["chapter13"]["environment"]["DATABASE_ULR"] = "postgres://x@y/z"
    elif kind == "bad-scrape-target":
        # a copy of deploy/prometheus whose target names a port chapter13 does not listen on
        root = args[0]
        d = os.path.join(os.path.dirname(os.path.abspath(out)), "prometheus-copy")
        shutil.copytree(os.path.join(root, "deploy", "prometheus"), d)
        conf = os.path.join(d, "prometheus-compose.yml")
        text = open(conf).read()
        if '"chapter13:9100"' not in text:
            raise SystemExit("mutate: no chapter13:9100 target")
        open(conf, "w").write(text.replace('"chapter13:9100"', '"chapter13:9999"'))
        vols = s["prometheus"]["volumes"]
        for i, v in enumerate(vols):
            if str(v).startswith("./deploy/prometheus:"):
                vols[i] = d + ":" + str(v).split(":", 1)[1]
                break
        else:
            raise SystemExit("mutate: prometheus mounts no ./deploy/prometheus")
    elif kind == "ds-uid":
        doc["datasources"][0]["uid"] = "some-other-uid"
    elif kind == "provider-path":
        doc["providers"][0]["options"]["path"] = "/var/lib/grafana/dashboards"
    elif kind == "panel-hardcoded-ds":
        with open(src) as f:
            dash = json.load(f)
        dash["panels"][1]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
        with open(out, "w") as f:
            json.dump(dash, f, indent=2)
        return
    else:
        raise SystemExit(f"mutate: unknown kind {kind}")
    dump_yaml(doc, out)


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, rest = argv[1], argv[2:]
    if cmd == "alerts":
        check_alerts(*rest)
    elif cmd == "grafana":
        root, compose = rest[0], rest[1]
        opts = dict(zip(rest[2::2], rest[3::2]))
        base = os.path.join(root, "deploy", "grafana")
        prov = os.path.join(base, "provisioning")
        check_grafana(root, compose,
                      opts.get("--datasource", os.path.join(prov, "datasources", "prometheus.yaml")),
                      opts.get("--provider", os.path.join(prov, "dashboards", "weave.yaml")),
                      opts.get("--dashboard", os.path.join(base, "weave-dashboard.json")))
    elif cmd == "compose":
        check_compose(*rest)
    elif cmd == "compose-env":
        check_compose_env(*rest)
    elif cmd == "mutate":
        mutate(rest[0], rest[1], rest[2], rest[3:])
        return 0
    else:
        raise SystemExit(__doc__)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
