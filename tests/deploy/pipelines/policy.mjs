// What the pipelines promise, checked by playing them offline: a schema
// says a file is well formed, not that it never pushes an image from a pull
// request or deploys from a feature branch. For a few kinds of event (a
// pull request or merge request, a push to main, to another branch, a v*
// tag) this evaluates the conditions (`if:` of GitHub, `rules:` of GitLab)
// with small evaluators of their expression languages, and runs the shell
// steps that compute image tags with a fake `docker` that records its
// calls. It then checks:
//   - tests run `make test`, as .ci/run does, and keep build/test-logs/;
//   - pull/merge requests build the image and never log in nor push;
//     main pushes :<sha> and :latest; a tag pushes :<tag> and :<sha>;
//   - deploy runs only for a push to main (the default branch), in
//     environment production, setting the image with kustomize in
//     deploy/k8s/overlays/prod, applying it and waiting for the rollout;
//   - (GitHub) actions are pinned to a major version, permissions are
//     read-only but for the release job, superseded runs are cancelled;
//   - (GitLab) in every pipeline, each job's `needs` are in that pipeline.
//
//   node policy.mjs github-ci FILE | github-release FILE | gitlab FILE
// prints one line per broken promise; exit 1 if any.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import YAML from "yaml";
import { resolveJobs } from "./gitlab.mjs";

const problems = [];
const say = (msg) => problems.push(msg);
const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const asList = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
const SHA = "0123456789abcdef0123456789abcdef01234567";
const REGISTRY = "registry.example.com/team";

// ---------------------------------------------------------------- shells

// A directory with a `docker` that appends its arguments to a log.
function fakeDocker() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pipelines-docker-"));
  fs.writeFileSync(path.join(dir, "docker"), '#!/bin/sh\nprintf "%s\\n" "$*" >>"$DOCKER_LOG"\n', { mode: 0o755 });
  return dir;
}

// Run a script with `shell` in a clean environment plus env; returns
// { status, docker: [calls], out }.
function runShell(shell, script, env) {
  const bin = fakeDocker();
  const log = path.join(bin, "calls");
  fs.writeFileSync(log, "");
  const r = spawnSync(shell, ["-e", "-c", script], {
    env: { PATH: `${bin}:/usr/bin:/bin`, HOME: bin, DOCKER_LOG: log, ...env },
    encoding: "utf8",
    cwd: bin,
    timeout: 10000,
  });
  const docker = fs.readFileSync(log, "utf8").split("\n").filter(Boolean);
  fs.rmSync(bin, { recursive: true, force: true });
  return { status: r.status, docker, out: (r.stdout || "") + (r.stderr || "") };
}

// ------------------------------------------------- GitHub's expressions

// Tokens: 'strings', numbers, true/false/null, names with dots, operators.
function ghTokens(src) {
  const re = /\s*(?:('(?:[^']|'')*')|(\d+(?:\.\d+)?)|(==|!=|&&|\|\||<=|>=|[!<>()[\],])|([A-Za-z_][\w-]*(?:\.[\w-]+|\.\*)*))/y;
  const out = [];
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < src.length && (m = re.exec(src))) {
    if (m[1] !== undefined) out.push({ t: "v", v: m[1].slice(1, -1).replace(/''/g, "'") });
    else if (m[2] !== undefined) out.push({ t: "v", v: Number(m[2]) });
    else if (m[3] !== undefined) out.push({ t: m[3] });
    else out.push({ t: "id", v: m[4] });
    if (/^\s*$/.test(src.slice(re.lastIndex))) break;
  }
  if (re.lastIndex < src.length && !/^\s*$/.test(src.slice(re.lastIndex))) throw new Error(`cannot read expression: ${src}`);
  return out;
}

// Evaluates a GitHub expression against ctx (github, vars, env, steps,
// secrets, ...) and funcs (status functions such as failure()).
function ghEval(src, ctx, funcs = {}) {
  const toks = ghTokens(src);
  let i = 0;
  const peek = () => toks[i]?.t;
  const truthy = (v) => !(v === false || v === null || v === undefined || v === 0 || v === "");
  const loose = (a, b) => (typeof a === "string" && typeof b === "string" ? a.toLowerCase() === b.toLowerCase() : (a ?? null) === (b ?? null));
  function primary() {
    const tok = toks[i++];
    if (!tok) throw new Error(`unexpected end: ${src}`);
    if (tok.t === "v") return tok.v;
    if (tok.t === "(") { const v = or(); i++; return v; }
    if (tok.t === "!") return !truthy(primary());
    if (tok.t === "id") {
      if (tok.v === "true") return true;
      if (tok.v === "false") return false;
      if (tok.v === "null") return null;
      if (peek() === "(") {
        i++;
        const args = [];
        while (peek() !== ")") { args.push(or()); if (peek() === ",") i++; }
        i++;
        if (!(tok.v in funcs)) throw new Error(`function ${tok.v}() not modelled`);
        return funcs[tok.v](...args);
      }
      return tok.v.split(".").reduce((o, k) => (o == null ? undefined : o[k]), ctx) ?? null;
    }
    throw new Error(`unexpected '${tok.t}' in ${src}`);
  }
  function cmp() {
    let v = primary();
    while (peek() === "==" || peek() === "!=") {
      const op = toks[i++].t;
      const w = primary();
      v = op === "==" ? loose(v, w) : !loose(v, w);
    }
    return v;
  }
  function and() { let v = cmp(); while (peek() === "&&") { i++; const w = cmp(); v = truthy(v) ? w : v; } return v; }
  function or() { let v = and(); while (peek() === "||") { i++; const w = and(); v = truthy(v) ? v : w; } return v; }
  const v = or();
  if (i !== toks.length) throw new Error(`trailing tokens in ${src}`);
  return v;
}

// A value that may hold ${{ }}: the value of a lone expression, or the
// string with each expression replaced.
function ghValue(v, ctx) {
  if (typeof v !== "string") return v;
  const lone = v.match(/^\s*\$\{\{(.*)\}\}\s*$/s);
  if (lone) return ghEval(lone[1], ctx);
  return v.replace(/\$\{\{(.*?)\}\}/gs, (_, e) => String(ghEval(e, ctx) ?? ""));
}

// `if:` of a job or step; an expression without ${{ }} is one all the same.
function ghIf(cond, ctx, funcs) {
  if (cond === undefined) return true;
  if (typeof cond === "boolean") return cond;
  const src = String(cond).replace(/^\s*\$\{\{(.*)\}\}\s*$/s, "$1");
  const v = ghEval(src, ctx, { success: () => true, failure: () => false, always: () => true, cancelled: () => false, ...funcs });
  return !(v === false || v === null || v === undefined || v === 0 || v === "");
}

const GH_EVENTS = {
  "pull request": { event_name: "pull_request", ref: "refs/pull/7/merge", ref_name: "7/merge" },
  "push to main": { event_name: "push", ref: "refs/heads/main", ref_name: "main" },
  "push to a branch": { event_name: "push", ref: "refs/heads/feature", ref_name: "feature" },
  "tag v1.2.3": { event_name: "push", ref: "refs/tags/v1.2.3", ref_name: "v1.2.3" },
};

function ghContext(ev, env = {}) {
  return {
    github: { ...ev, sha: SHA, repository: "team/weave", workspace: "/w", token: "t" },
    vars: { REGISTRY },
    secrets: { REGISTRY_USER: "u", REGISTRY_PASSWORD: "p", KUBE_CONFIG: "k" },
    runner: { os: "Linux", temp: "/tmp" },
    env,
    steps: {},
    needs: {},
    job: { status: "success" },
  };
}

function runsOf(job) {
  return asList(job.steps).filter((s) => typeof s.run === "string").map((s) => s.run);
}

function allRuns(job) {
  return runsOf(job).join("\n");
}

// Common to every workflow: pinned actions, read-only permissions,
// a concurrency group.
function ghCommon(wf, file) {
  const perms = wf.permissions;
  if (perms === undefined) say(`no top-level permissions (the token would get the repository's default)`);
  else if (typeof perms === "string" ? perms !== "read-all" && perms !== "{}" : Object.values(perms).some((v) => v === "write"))
    say(`top-level permissions grant more than read`);
  if (!isMap(wf.concurrency) || !wf.concurrency.group) say(`no concurrency group`);
  for (const [name, job] of Object.entries(wf.jobs ?? {})) {
    if (isMap(job.permissions))
      for (const [scope, level] of Object.entries(job.permissions))
        if (level === "write" && !(scope === "contents" && /gh release create/.test(allRuns(job))))
          say(`job ${name} asks ${scope}: write without a need this checker knows`);
    for (const step of asList(job.steps)) {
      if (typeof step.uses !== "string") continue;
      if (step.uses.startsWith("./") || step.uses.startsWith("docker://")) continue;
      if (!/^[\w.-]+\/[\w./-]+@(v\d+|[0-9a-f]{40})$/.test(step.uses))
        say(`job ${name}: '${step.uses}' is not pinned to a major version (@vN) or a commit`);
    }
  }
}

// The step of a job that uses an action (by name without @version).
const usesStep = (job, action) => asList(job?.steps).find((s) => typeof s.uses === "string" && s.uses.split("@")[0] === action);

// Plays the image job for one event: the tags step (bash, with the env the
// job and the step give it), then the login and build-push steps' inputs.
// Returns { pushed: bool, login: bool, tags: [..] }.
function ghImageJob(job, ev) {
  const ctx = ghContext(ev);
  const env = {};
  for (const [k, v] of Object.entries(job.env ?? {})) env[k] = String(ghValue(v, ctx) ?? "");
  ctx.env = env;
  for (const step of asList(job.steps)) {
    if (typeof step.run !== "string" || !step.id) continue;
    if (!ghIf(step.if, ctx)) continue;
    const stepEnv = { ...env };
    for (const [k, v] of Object.entries(step.env ?? {})) stepEnv[k] = String(ghValue(v, ctx) ?? "");
    const outFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pipelines-out-")), "out");
    fs.writeFileSync(outFile, "");
    const r = runShell("bash", ghValue(step.run, ctx), {
      ...stepEnv,
      GITHUB_SHA: SHA, GITHUB_REF: ev.ref, GITHUB_REF_NAME: ev.ref_name, GITHUB_OUTPUT: outFile,
    });
    if (r.status !== 0) throw new Error(`step ${step.id} failed: ${r.out.trim()}`);
    const outputs = {};
    for (const line of fs.readFileSync(outFile, "utf8").split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) outputs[line.slice(0, eq)] = line.slice(eq + 1);
    }
    fs.rmSync(path.dirname(outFile), { recursive: true, force: true });
    ctx.steps[step.id] = { outputs };
  }
  const login = usesStep(job, "docker/login-action");
  const build = usesStep(job, "docker/build-push-action");
  if (!build) throw new Error("no docker/build-push-action step");
  const w = build.with ?? {};
  const pushed = ghValue(w.push, ctx) === true || ghValue(w.push, ctx) === "true";
  const tags = String(ghValue(w.tags, ctx) ?? "").split(/[,\n]/).map((t) => t.trim()).filter(Boolean);
  if ((w.file ?? "Dockerfile") !== "Dockerfile") say(`image: builds '${w.file}', not the root Dockerfile`);
  return { pushed, login: !!login && ghIf(login.if, ctx), tags };
}

function githubCi(file) {
  const wf = YAML.parse(fs.readFileSync(file, "utf8"));
  ghCommon(wf, file);
  const on = wf.on ?? wf[true];
  if (!isMap(on) || !("push" in on) || !("pull_request" in on)) say(`must run on push and pull_request`);
  const jobs = wf.jobs ?? {};
  const { test, image, deploy } = jobs;
  if (!test || !image || !deploy) return say(`jobs test, image and deploy expected, got ${Object.keys(jobs)}`);

  // test: make test, as .ci/run, in Debian bookworm, logs kept on failure.
  const cimage = isMap(test.container) ? test.container.image : test.container;
  const viaSudo = /\bsudo\b/.test(allRuns(test));
  if (cimage !== "debian:bookworm" && !viaSudo) say("test: neither a debian:bookworm container nor sudo");
  if (!runsOf(test).some((r) => /^\s*(sudo\s+)?make test\s*$/m.test(r))) say("test: no step runs `make test` (what .ci/run runs)");
  const upload = usesStep(test, "actions/upload-artifact");
  if (!upload || !/build\/test-logs/.test(String(upload.with?.path)) || !/failure\(\)|always\(\)/.test(String(upload.if)))
    say("test: build/test-logs/ is not uploaded when the tests fail");
  for (const key of ["scripts/deps.sh", "package-lock.json"])
    if (!asList(test.steps).some((s) => String(s.uses).startsWith("actions/cache@") && String(s.with?.key).includes(key)))
      say(`test: no actions/cache keyed on ${key}`);

  // image: after test; pushes :sha (and :latest from main), never from a PR.
  if (!asList(image.needs).includes("test")) say("image: does not need test");
  const want = {
    "pull request": null,
    "push to main": [`${REGISTRY}/weave-chapter13:${SHA}`, `${REGISTRY}/weave-chapter13:latest`],
    "push to a branch": [`${REGISTRY}/weave-chapter13:${SHA}`],
  };
  for (const [evName, tags] of Object.entries(want)) {
    const ev = GH_EVENTS[evName];
    if (!ghIf(image.if, ghContext(ev))) { say(`image: does not run on a ${evName}`); continue; }
    let r;
    try { r = ghImageJob(image, ev); } catch (e) { say(`image, ${evName}: ${e.message}`); continue; }
    if (tags === null) {
      if (r.pushed || r.login) say(`image: a ${evName} ${r.pushed ? "pushes" : "logs in"} (it must only build)`);
    } else {
      if (!r.pushed) say(`image: a ${evName} does not push`);
      if (!r.login) say(`image: a ${evName} pushes without logging in`);
      if (r.tags.sort().join(" ") !== [...tags].sort().join(" ")) say(`image: a ${evName} tags ${r.tags.join(" ")}; expected ${tags.join(" ")}`);
    }
  }

  // deploy: after image, a push to main only, environment production.
  if (!asList(deploy.needs).includes("image")) say("deploy: does not need image");
  for (const [evName, ev] of Object.entries(GH_EVENTS)) {
    let runs;
    try { runs = ghIf(deploy.if, ghContext(ev)); } catch (e) { say(`deploy: ${e.message}`); continue; }
    if (runs !== (evName === "push to main")) say(`deploy: ${runs ? "runs" : "does not run"} on a ${evName}`);
  }
  const envName = isMap(deploy.environment) ? deploy.environment.name : deploy.environment;
  if (envName !== "production") say("deploy: environment is not production");
  checkDeployScript("deploy", asList(deploy.steps).filter((s) => typeof s.run === "string")
    .map((s) => (s["working-directory"] ? `cd ${s["working-directory"]}\n` : "") + s.run).join("\n"), "$REGISTRY/weave-chapter13:$SHA");
  if (!/secrets\.KUBE_CONFIG/.test(JSON.stringify(deploy))) say("deploy: the kubeconfig does not come from secrets.KUBE_CONFIG");
  const cic = wf.concurrency?.["cancel-in-progress"];
  if (cic === undefined || cic === false) say(`superseded runs are not cancelled`);
}

// The deploy commands, in order: set the image, apply the overlay, wait.
function checkDeployScript(where, text, imageRef) {
  const steps = [
    [new RegExp(`cd deploy/k8s/overlays/prod[\\s\\S]*kustomize edit set image "?weave-chapter13=${imageRef.replace(/[$.]/g, "\\$&")}"?`), "kustomize edit set image in deploy/k8s/overlays/prod"],
    [/kubectl apply -k deploy\/k8s\/overlays\/prod\b/, "kubectl apply -k deploy/k8s/overlays/prod"],
    [/kubectl rollout status deployment\/chapter13 -n weave --timeout=\d+[smh]?\b/, "kubectl rollout status deployment/chapter13 -n weave --timeout=..."],
  ];
  let from = 0;
  for (const [re, what] of steps) {
    const m = re.exec(text.slice(from));
    if (!m) { say(`${where}: does not run ${what} (after the step before it)`); return; }
    from += m.index + m[0].length;
  }
}

function githubRelease(file) {
  const wf = YAML.parse(fs.readFileSync(file, "utf8"));
  ghCommon(wf, file);
  const on = wf.on ?? wf[true];
  if (!isMap(on) || !isMap(on.push) || !asList(on.push.tags).includes("v*")) say(`must run on pushed tags v*`);
  if (isMap(on) && ("pull_request" in on || "pull_request_target" in on)) say(`runs on pull requests`);
  const jobs = Object.entries(wf.jobs ?? {});
  const imageJob = jobs.find(([, j]) => usesStep(j, "docker/build-push-action"));
  if (!imageJob) say(`no job builds the image`);
  else {
    try {
      const r = ghImageJob(imageJob[1], GH_EVENTS["tag v1.2.3"]);
      const want = [`${REGISTRY}/weave-chapter13:v1.2.3`, `${REGISTRY}/weave-chapter13:${SHA}`];
      if (!r.pushed || !r.login) say(`a tag does not log in and push`);
      if (r.tags.sort().join(" ") !== want.sort().join(" ")) say(`a tag pushes ${r.tags.join(" ")}; expected ${want.join(" ")}`);
    } catch (e) { say(`image job: ${e.message}`); }
  }
  if (!jobs.some(([, j]) => /gh release create "?\$GITHUB_REF_NAME"?/.test(allRuns(j)) || usesStep(j, "softprops/action-gh-release")))
    say(`no job creates the GitHub release`);
}

// ------------------------------------------------- GitLab's expressions

// rules:if: $VAR, "str", 'str', /re/, null, == != =~ !~ && || ( ).
function glEval(src, vars) {
  const re = /\s*(?:(\$\{?\w+\}?)|"([^"]*)"|'([^']*)'|\/((?:[^/\\]|\\.)*)\/([a-z]*)|(==|!=|=~|!~|&&|\|\||[()])|(null))/y;
  const toks = [];
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < src.length) {
    if (/^\s*$/.test(src.slice(re.lastIndex))) break;
    if (!(m = re.exec(src))) throw new Error(`cannot read rule: ${src}`);
    if (m[1]) toks.push({ t: "v", v: vars[m[1].replace(/[${}]/g, "")] ?? null });
    else if (m[2] !== undefined || m[3] !== undefined) toks.push({ t: "v", v: m[2] ?? m[3] });
    else if (m[4] !== undefined) toks.push({ t: "re", v: new RegExp(m[4], m[5]) });
    else if (m[6]) toks.push({ t: m[6] });
    else toks.push({ t: "v", v: null });
  }
  let i = 0;
  const peek = () => toks[i]?.t;
  const truthy = (v) => v !== null && v !== undefined && v !== "" && v !== false;
  function primary() {
    const tok = toks[i++];
    if (!tok) throw new Error(`unexpected end: ${src}`);
    if (tok.t === "(") { const v = or(); i++; return v; }
    if (tok.t === "v" || tok.t === "re") return tok.v;
    throw new Error(`unexpected '${tok.t}' in ${src}`);
  }
  function cmp() {
    let v = primary();
    if (["==", "!=", "=~", "!~"].includes(peek())) {
      const op = toks[i++].t;
      const w = primary();
      if (op === "==") v = (v ?? null) === (w ?? null);
      else if (op === "!=") v = (v ?? null) !== (w ?? null);
      else { const hit = w instanceof RegExp && v !== null && w.test(String(v)); v = op === "=~" ? hit : !hit; }
    }
    return truthy(v);
  }
  function and() { let v = cmp(); while (peek() === "&&") { i++; v = cmp() && v; } return v; }
  function or() { let v = and(); while (peek() === "||") { i++; v = and() || v; } return v; }
  const v = or();
  if (i !== toks.length) throw new Error(`trailing tokens in ${src}`);
  return v;
}

// $VAR and ${VAR} from vars, a few passes deep (variables name variables).
function glExpand(s, vars) {
  let out = String(s ?? "");
  for (let n = 0; n < 5; n++) out = out.replace(/\$\{?(\w+)\}?/g, (all, k) => (k in vars ? String(vars[k]) : ""));
  return out;
}

// The first matching rule, or null when none matches (no rules: {}).
function glFirstRule(rules, vars) {
  if (rules === undefined) return {};
  for (const r of rules) if (r.if === undefined || glEval(r.if, vars)) return r;
  return null;
}

const GL_EVENTS = {
  "merge request": { CI_PIPELINE_SOURCE: "merge_request_event", CI_MERGE_REQUEST_IID: "7", CI_COMMIT_REF_NAME: "feature" },
  "push to main": { CI_PIPELINE_SOURCE: "push", CI_COMMIT_BRANCH: "main", CI_COMMIT_REF_NAME: "main" },
  "push to a branch": { CI_PIPELINE_SOURCE: "push", CI_COMMIT_BRANCH: "feature", CI_COMMIT_REF_NAME: "feature" },
  "tag v1.2.3": { CI_PIPELINE_SOURCE: "push", CI_COMMIT_TAG: "v1.2.3", CI_COMMIT_REF_NAME: "v1.2.3" },
};
const GL_IMAGE = "registry.example.com/team/weave";

function gitlab(file) {
  const doc = YAML.parse(fs.readFileSync(file, "utf8"));
  const jobs = resolveJobs(doc);
  const stageOf = (j) => j.stage ?? "test";
  const byStage = (s) => [...jobs].filter(([, j]) => stageOf(j) === s);
  const scriptOf = (j) => [...asList(j.before_script ?? doc.default?.before_script), ...asList(j.script)].flat().join("\n");

  // The test job: make test, as .ci/run; its logs kept with an expiry.
  const testJobs = [...jobs].filter(([, j]) => asList(j.script).flat().some((l) => /^\s*make test\s*$/.test(l)));
  if (testJobs.length === 0) say("no job runs `make test` (what .ci/run runs)");
  for (const [name, j] of testJobs) {
    const a = j.artifacts ?? {};
    if (!asList(a.paths).some((p) => /^build\/test-logs\/?$/.test(p)) || !["on_failure", "always"].includes(a.when) || !a.expire_in)
      say(`${name}: does not keep build/test-logs/ (when on_failure or always, with expire_in)`);
    const caches = asList(j.cache ?? doc.default?.cache);
    const keyed = (f) => caches.some((c) => asList(c.key?.files).some((k) => String(k).includes(f)));
    if (!keyed("scripts/deps.sh")) say(`${name}: no cache keyed on scripts/deps.sh (apt archives)`);
    if (!keyed("package-lock.json")) say(`${name}: no cache keyed on a package-lock.json (npm)`);
  }
  const imageJobs = byStage("image");
  const deployJobs = byStage("deploy");
  if (imageJobs.length !== 1) say(`one job of stage image expected, got ${imageJobs.length}`);
  if (deployJobs.length !== 1) say(`one job of stage deploy expected, got ${deployJobs.length}`);

  const expected = {
    "merge request": { pipeline: true, push: [], deploy: false },
    "push to main": { pipeline: true, push: [SHA, "latest"], deploy: true },
    "push to a branch": { pipeline: false },
    "tag v1.2.3": { pipeline: true, push: ["v1.2.3", SHA], deploy: false },
  };
  for (const [evName, ev] of Object.entries(GL_EVENTS)) {
    const want = expected[evName];
    const vars = {
      CI_DEFAULT_BRANCH: "main", CI_COMMIT_SHA: SHA, CI_COMMIT_SHORT_SHA: SHA.slice(0, 8), CI_PROJECT_DIR: "/builds/team/weave",
      CI_REGISTRY: "registry.example.com", CI_REGISTRY_IMAGE: GL_IMAGE, CI_REGISTRY_USER: "gitlab-ci-token", CI_REGISTRY_PASSWORD: "p",
      ...ev,
    };
    let wfRule;
    try { wfRule = glFirstRule(doc.workflow?.rules, vars); } catch (e) { say(`workflow: ${e.message}`); continue; }
    const created = wfRule !== null && wfRule.when !== "never";
    if (created !== want.pipeline) { say(`a ${evName} ${created ? "creates" : "does not create"} a pipeline`); continue; }
    if (!created) continue;
    for (const [k, v] of Object.entries(doc.variables ?? {})) vars[k] = glExpand(isMap(v) ? v.value : v, vars);

    // Which jobs this pipeline has, and the rule that put each there.
    const present = new Map();
    for (const [name, j] of jobs) {
      let r;
      try { r = glFirstRule(j.rules, vars); } catch (e) { say(`${name}: ${e.message}`); continue; }
      if (r !== null && r.when !== "never" && (j.when !== "never")) present.set(name, r);
    }
    for (const name of present.keys())
      for (const n of asList(jobs.get(name).needs)) {
        const target = typeof n === "string" ? n : n?.job;
        if (target && !present.has(target) && !(isMap(n) && n.optional))
          say(`a ${evName}: ${name} needs ${target}, which this pipeline does not have`);
      }
    for (const [name] of testJobs) if (!present.has(name)) say(`a ${evName} does not run ${name} (make test)`);

    const [deployName, deployJob] = deployJobs[0] ?? [];
    if (deployName && present.has(deployName) !== want.deploy) say(`${deployName}: ${want.deploy ? "does not run" : "runs"} on a ${evName}`);
    if (deployName && want.deploy) {
      const env = deployJob.environment;
      if ((isMap(env) ? env.name : env) !== "production") say(`${deployName}: environment is not production`);
      checkDeployScript(deployName, scriptOf(deployJob).replace(/\(cd /g, "cd "), "$IMAGE_NAME:$CI_COMMIT_SHA");
      if (!/\$KUBE_CONFIG\b/.test(scriptOf(deployJob))) say(`${deployName}: the kubeconfig does not come from KUBE_CONFIG`);
      if (vars.IMAGE_NAME !== `${GL_IMAGE}/weave-chapter13`) say(`IMAGE_NAME is '${vars.IMAGE_NAME}', not $CI_REGISTRY_IMAGE/weave-chapter13`);
    }

    const [imageName, imageJob] = imageJobs[0] ?? [];
    if (!imageName) continue;
    if (!present.has(imageName)) { say(`${imageName}: does not run on a ${evName}`); continue; }
    // Play the image job's script with its variables and its rule's.
    const env = { ...vars };
    for (const [k, v] of Object.entries(imageJob.variables ?? {})) env[k] = glExpand(isMap(v) ? v.value : v, env);
    for (const [k, v] of Object.entries(present.get(imageName).variables ?? {})) env[k] = glExpand(v, env);
    const r = runShell("sh", scriptOf(imageJob), env);
    if (r.status !== 0) { say(`${imageName}: its script fails on a ${evName}: ${r.out.trim()}`); continue; }
    if (!r.docker.some((c) => /^build\b.*-f Dockerfile\b/.test(c))) say(`${imageName}: a ${evName} does not build from the root Dockerfile`);
    const pushed = r.docker.filter((c) => c.startsWith("push ")).map((c) => c.slice(5).trim());
    const logins = r.docker.filter((c) => c.startsWith("login"));
    const wantPush = want.push.map((t) => `${GL_IMAGE}/weave-chapter13:${t}`);
    if (pushed.sort().join(" ") !== wantPush.sort().join(" "))
      say(`${imageName}: a ${evName} pushes [${pushed.join(" ")}]; expected [${wantPush.join(" ")}]`);
    if (want.push.length === 0 && logins.length) say(`${imageName}: a ${evName} logs in to the registry`);
  }
}

const [mode, file] = process.argv.slice(2);
const modes = { "github-ci": githubCi, "github-release": githubRelease, gitlab };
if (!modes[mode] || !file) {
  console.error("usage: node policy.mjs github-ci|github-release|gitlab FILE");
  process.exit(2);
}
try {
  modes[mode](file);
} catch (e) {
  say(`cannot check: ${e.message}`);
}
for (const p of problems) console.log(`${file}: ${p}`);
process.exit(problems.length ? 1 : 0);
