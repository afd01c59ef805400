// Structural checker for a .gitlab-ci.yml, offline (GitLab has no offline
// validator; its own lint needs a GitLab server). It checks what GitLab
// itself refuses when it creates a pipeline, as far as one file can tell:
//   - the YAML parses; `stages` is a list of names;
//   - the global keywords have the shapes GitLab accepts (so a job cannot
//     be named after one: `image:` holding a script is an error);
//   - every job (a top-level key that is neither a keyword nor a hidden
//     `.template`) uses only job keywords, has a `stage` listed in `stages`
//     (or none, meaning `test`, only when `test` is listed) and a `script`
//     (or a `trigger`), directly or through `extends`;
//   - `extends` names existing keys; `needs` names jobs of the same or an
//     earlier stage; `dependencies` names jobs of an earlier stage;
//   - `rules` entries use only known keys and legal `when` values; job,
//     artifacts and cache `when` values are legal;
//   - `environment` has a name, and every job of a `deploy` stage has one;
//   - `artifacts.expire_in` is a duration GitLab parses (or `never`);
//   - cache keys name at most two files, and cache paths stay inside the
//     project directory (GitLab keeps nothing outside it).
//
//   node gitlab.mjs FILE      prints one line per problem; exit 1 if any
import fs from "node:fs";
import { pathToFileURL } from "node:url";
import YAML from "yaml";

const RESERVED = new Set([
  "default", "include", "stages", "variables", "workflow",
  "image", "services", "cache", "before_script", "after_script",
]);

const JOB_KEYS = new Set([
  "after_script", "allow_failure", "artifacts", "before_script", "cache",
  "coverage", "dast_configuration", "dependencies", "environment", "except",
  "extends", "hooks", "id_tokens", "identity", "image", "inherit",
  "interruptible", "manual_confirmation", "needs", "only", "pages",
  "parallel", "release", "resource_group", "retry", "rules", "run",
  "script", "secrets", "services", "stage", "start_in", "tags", "timeout",
  "trigger", "variables", "when",
]);

// What `default:` may hold, and so what a job inherits from it.
const DEFAULT_KEYS = new Set([
  "after_script", "artifacts", "before_script", "cache", "hooks",
  "id_tokens", "image", "interruptible", "retry", "services", "tags",
  "timeout",
]);

const RULE_KEYS = new Set(["if", "changes", "exists", "when", "allow_failure", "variables", "needs"]);
const WORKFLOW_RULE_KEYS = new Set(["if", "changes", "exists", "when", "variables", "auto_cancel"]);
const JOB_WHEN = new Set(["on_success", "on_failure", "always", "manual", "delayed"]);
const RULE_WHEN = new Set(["on_success", "on_failure", "always", "manual", "delayed", "never"]);
const WORKFLOW_WHEN = new Set(["always", "never"]);
const ARTIFACT_WHEN = new Set(["on_success", "on_failure", "always"]);
const CACHE_KEYS = new Set(["key", "paths", "untracked", "unprotect", "when", "policy", "fallback_keys"]);
const CACHE_POLICY = new Set(["pull", "push", "pull-push"]);
const ARTIFACT_KEYS = new Set([
  "paths", "exclude", "expire_in", "expose_as", "name", "public", "access",
  "reports", "untracked", "when",
]);
const IMAGE_KEYS = new Set(["name", "entrypoint", "docker", "pull_policy", "kubernetes"]);
const SERVICE_KEYS = new Set(["name", "alias", "entrypoint", "command", "variables", "pull_policy", "docker", "kubernetes"]);
const ENV_KEYS = new Set(["name", "url", "on_stop", "action", "auto_stop_in", "kubernetes", "deployment_tier"]);
const ENV_ACTIONS = new Set(["start", "prepare", "stop", "verify", "access"]);
const WORKFLOW_KEYS = new Set(["rules", "name", "auto_cancel"]);

// ChronicDuration, as GitLab reads expire_in: numbers with units, e.g.
// "1 week", "2 hrs 20 min", "3d", "42" (seconds), or "never".
const UNIT = "(?:s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?|mos?|months?|y|yrs?|years?)";
const DURATION = new RegExp(`^\\s*\\d+(?:\\.\\d+)?\\s*${UNIT}?(?:\\s*(?:,|and)?\\s*\\d+(?:\\.\\d+)?\\s*${UNIT})*\\s*$`, "i");

const problems = [];
const say = (msg) => problems.push(msg);
const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const asList = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);
const isScriptish = (v) => typeof v === "string" || (Array.isArray(v) && v.length > 0);

function unknownKeys(where, obj, allowed) {
  for (const k of Object.keys(obj)) if (!allowed.has(k)) say(`${where}: unknown key '${k}'`);
}

function checkImage(where, v) {
  if (typeof v === "string") return;
  if (!isMap(v)) return say(`${where}: image must be a name or a mapping`);
  unknownKeys(`${where}: image`, v, IMAGE_KEYS);
  if (typeof v.name !== "string") say(`${where}: image has no name`);
}

function checkServices(where, v) {
  if (!Array.isArray(v)) return say(`${where}: services must be a list`);
  for (const s of v) {
    if (typeof s === "string") continue;
    if (!isMap(s)) { say(`${where}: a service must be a name or a mapping`); continue; }
    unknownKeys(`${where}: service`, s, SERVICE_KEYS);
    if (typeof s.name !== "string") say(`${where}: a service has no name`);
  }
}

function checkScript(where, v) {
  if (!(typeof v === "string" || (Array.isArray(v) && v.every((l) => typeof l === "string" || Array.isArray(l)))))
    say(`${where}: must be a string or a list of strings`);
}

function checkCache(where, v) {
  const caches = Array.isArray(v) ? v : [v];
  if (caches.length > 4) say(`${where}: at most 4 caches per job`);
  for (const c of caches) {
    if (!isMap(c)) { say(`${where}: a cache must be a mapping`); continue; }
    unknownKeys(`${where}: cache`, c, CACHE_KEYS);
    if (c.when !== undefined && !ARTIFACT_WHEN.has(c.when)) say(`${where}: cache when '${c.when}' is not one of ${[...ARTIFACT_WHEN]}`);
    if (c.policy !== undefined && !CACHE_POLICY.has(c.policy) && !String(c.policy).includes("$"))
      say(`${where}: cache policy '${c.policy}' is not one of ${[...CACHE_POLICY]}`);
    if (isMap(c.key)) {
      unknownKeys(`${where}: cache key`, c.key, new Set(["files", "prefix"]));
      const files = asList(c.key.files);
      if (files.length === 0) say(`${where}: cache key mapping needs files`);
      if (files.length > 2) say(`${where}: cache key files: GitLab takes at most two files, got ${files.length}`);
    }
    for (const p of asList(c.paths)) {
      const s = String(p);
      if (s.startsWith("/") || s.split("/").includes("..")) say(`${where}: cache path '${s}' is outside the project directory`);
    }
    if (c.paths === undefined && !c.untracked) say(`${where}: cache has neither paths nor untracked`);
  }
}

function checkArtifacts(where, a) {
  if (!isMap(a)) return say(`${where}: artifacts must be a mapping`);
  unknownKeys(`${where}: artifacts`, a, ARTIFACT_KEYS);
  if (a.when !== undefined && !ARTIFACT_WHEN.has(a.when)) say(`${where}: artifacts when '${a.when}' is not one of ${[...ARTIFACT_WHEN]}`);
  if (a.expire_in !== undefined) {
    const e = String(a.expire_in);
    if (e !== "never" && !DURATION.test(e)) say(`${where}: artifacts expire_in '${e}' is not a duration GitLab reads`);
  }
  if (a.paths === undefined && a.reports === undefined && !a.untracked) say(`${where}: artifacts has no paths, reports or untracked`);
}

function checkRules(where, rules, keys, whens) {
  if (!Array.isArray(rules)) return say(`${where}: rules must be a list`);
  for (const r of rules) {
    if (!isMap(r)) { say(`${where}: a rule must be a mapping`); continue; }
    unknownKeys(`${where}: rule`, r, keys);
    if (r.when !== undefined && !whens.has(r.when)) say(`${where}: rule when '${r.when}' is not one of ${[...whens]}`);
    if (r.variables !== undefined && !isMap(r.variables)) say(`${where}: rule variables must be a mapping`);
  }
}

function checkVariables(where, v) {
  if (!isMap(v)) return say(`${where}: variables must be a mapping`);
  for (const [k, val] of Object.entries(v)) {
    if (val === null || ["string", "number", "boolean"].includes(typeof val)) continue;
    if (isMap(val)) { unknownKeys(`${where}: variable ${k}`, val, new Set(["value", "description", "options", "expand"])); continue; }
    say(`${where}: variable ${k} must be a scalar or a mapping with value`);
  }
}

// Deep merge as GitLab's `extends` does: mappings merge, anything else
// (lists included) is replaced by the extending side.
function merge(base, over) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isMap(v) && isMap(out[k]) ? merge(out[k], v) : v;
  return out;
}

// The jobs of a parsed file, name -> job with its `extends` applied (hidden
// templates and keywords are not jobs). Problems go to say().
export function resolveJobs(doc, say = () => {}) {
  // Resolve `extends` for every job and template.
  const resolved = new Map();
  const resolving = new Set();
  function resolve(name) {
    if (resolved.has(name)) return resolved.get(name);
    if (resolving.has(name)) { say(`${name}: extends loops back to itself`); return {}; }
    resolving.add(name);
    const own = doc[name];
    let out = {};
    for (const parent of asList(own.extends)) {
      if (!(parent in doc) || RESERVED.has(parent) || !isMap(doc[parent])) { say(`${name}: extends '${parent}', which is not defined`); continue; }
      const { extends: _drop, ...p } = resolve(parent);
      out = merge(out, p);
    }
    out = merge(out, own);
    resolving.delete(name);
    resolved.set(name, out);
    return out;
  }

  const jobs = new Map();
  for (const [name, body] of Object.entries(doc)) {
    if (RESERVED.has(name)) continue;
    // Hidden keys may hold anything (YAML anchors' targets); what a job
    // takes from one through `extends` is checked as part of that job.
    if (name.startsWith(".")) continue;
    if (!isMap(body)) { say(`${name}: a job must be a mapping`); continue; }
    jobs.set(name, null);
  }
  for (const name of jobs.keys()) jobs.set(name, resolve(name));

  return jobs;
}

function main() {
  const file = process.argv[2];
  if (!file) { console.error("usage: node gitlab.mjs FILE"); process.exit(2); }
  let doc;
  try {
    const parsed = YAML.parseDocument(fs.readFileSync(file, "utf8"), { uniqueKeys: true });
    if (parsed.errors.length) throw new Error(parsed.errors.map((e) => e.message).join("; "));
    doc = parsed.toJS({ maxAliasCount: 100 });
  } catch (e) {
    console.log(`${file}: does not parse: ${e.message}`);
    process.exit(1);
  }
  if (!isMap(doc)) { console.log(`${file}: top level is not a mapping`); process.exit(1); }

  // Global keywords: each in the shape GitLab accepts.
  const stages = doc.stages;
  if (!Array.isArray(stages) || stages.length === 0 || !stages.every((s) => typeof s === "string"))
    say("stages: missing, or not a list of names");
  const stageList = [".pre", ...(Array.isArray(stages) ? stages : []), ".post"];
  const stageIndex = new Map(stageList.map((s, i) => [s, i]));

  if (doc.image !== undefined) checkImage("image (global)", doc.image);
  if (doc.services !== undefined) checkServices("services (global)", doc.services);
  if (doc.cache !== undefined) checkCache("cache (global)", doc.cache);
  for (const k of ["before_script", "after_script"]) if (doc[k] !== undefined) checkScript(`${k} (global)`, doc[k]);
  if (doc.variables !== undefined) checkVariables("variables (global)", doc.variables);
  if (doc.include !== undefined && !(typeof doc.include === "string" || Array.isArray(doc.include) || isMap(doc.include)))
    say("include: must be a string, a list or a mapping");
  if (doc.workflow !== undefined) {
    if (!isMap(doc.workflow)) say("workflow: must be a mapping");
    else {
      unknownKeys("workflow", doc.workflow, WORKFLOW_KEYS);
      if (doc.workflow.rules !== undefined) checkRules("workflow", doc.workflow.rules, WORKFLOW_RULE_KEYS, WORKFLOW_WHEN);
    }
  }
  const dflt = doc.default ?? {};
  if (!isMap(dflt)) say("default: must be a mapping");
  else {
    unknownKeys("default", dflt, DEFAULT_KEYS);
    if (dflt.image !== undefined) checkImage("default", dflt.image);
    if (dflt.services !== undefined) checkServices("default", dflt.services);
    if (dflt.cache !== undefined) checkCache("default", dflt.cache);
    if (dflt.artifacts !== undefined) checkArtifacts("default", dflt.artifacts);
  }

  const jobs = resolveJobs(doc, say);

  for (const [name, job] of jobs) {
    unknownKeys(name, job, JOB_KEYS);

    const stage = job.stage ?? "test";
    if (!stageIndex.has(stage))
      say(`${name}: stage '${stage}'${job.stage === undefined ? " (the default)" : ""} is not in stages`);

    const hasTrigger = job.trigger !== undefined;
    if (!hasTrigger && !isScriptish(job.script)) say(`${name}: no script (nor trigger)`);
    if (job.script !== undefined) checkScript(`${name}: script`, job.script);
    for (const k of ["before_script", "after_script"]) if (job[k] !== undefined) checkScript(`${name}: ${k}`, job[k]);
    if (job.image !== undefined) checkImage(name, job.image);
    if (job.services !== undefined) checkServices(name, job.services);
    if (job.cache !== undefined) checkCache(name, job.cache);
    if (job.artifacts !== undefined) checkArtifacts(name, job.artifacts);
    if (job.variables !== undefined) checkVariables(name, job.variables);
    if (job.when !== undefined && !JOB_WHEN.has(job.when)) say(`${name}: when '${job.when}' is not one of ${[...JOB_WHEN]}`);
    if (job.rules !== undefined) {
      checkRules(name, job.rules, RULE_KEYS, RULE_WHEN);
      if (job.only !== undefined || job.except !== undefined) say(`${name}: rules cannot be used with only/except`);
    }

    for (const n of asList(job.needs)) {
      const target = typeof n === "string" ? n : isMap(n) ? n.job : undefined;
      if (isMap(n) && (n.pipeline !== undefined || n.project !== undefined)) continue; // another pipeline's job
      if (typeof target !== "string") { say(`${name}: a needs entry names no job`); continue; }
      if (!jobs.has(target)) { say(`${name}: needs '${target}', which is not a job`); continue; }
      const ts = jobs.get(target)?.stage ?? "test";
      if (stageIndex.has(ts) && stageIndex.has(stage) && stageIndex.get(ts) > stageIndex.get(stage))
        say(`${name}: needs '${target}' of the later stage '${ts}'`);
    }
    for (const d of asList(job.dependencies)) {
      if (!jobs.has(d)) { say(`${name}: dependencies names '${d}', which is not a job`); continue; }
      const ds = jobs.get(d)?.stage ?? "test";
      if (stageIndex.get(ds) >= stageIndex.get(stage)) say(`${name}: dependencies names '${d}', not of an earlier stage`);
    }

    if (job.environment !== undefined) {
      const env = job.environment;
      const envName = typeof env === "string" ? env : isMap(env) ? env.name : undefined;
      if (typeof envName !== "string" || envName === "") say(`${name}: environment has no name`);
      if (isMap(env)) {
        unknownKeys(`${name}: environment`, env, ENV_KEYS);
        if (env.action !== undefined && !ENV_ACTIONS.has(env.action)) say(`${name}: environment action '${env.action}' is not one of ${[...ENV_ACTIONS]}`);
      }
    } else if (stage === "deploy") say(`${name}: a deploy job without an environment`);
  }
  if (jobs.size === 0) say("no jobs");

  for (const p of problems) console.log(`${file}: ${p}`);
  process.exit(problems.length ? 1 : 0);
}

// Run as a program, not when policy.mjs imports resolveJobs.
if (import.meta.url === pathToFileURL(process.argv[1]).href) main();
