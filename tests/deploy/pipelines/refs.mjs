// Keeps the pipelines honest against the repository: every `make TARGET`
// their shell steps call is a target of the root Makefile, and every
// repository path they name (in shell steps, cache keys, hashFiles(),
// working directories, the Dockerfile input) exists; a glob must match at
// least one file. Build outputs (artifacts, uploads) are not looked at.
//
// Two things land in parallel with the pipelines and may be missing from
// the tree under test: the root Dockerfile and deploy/k8s/ (and `make
// image`, a target the lead adds to the Makefile). For those a SKIP line is
// printed instead of a failure; everything else missing is a failure.
//
//   node refs.mjs ROOT FILE     prints "checked: ...", SKIP lines and one
//                               line per problem; exit 1 if any problem
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const asList = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

const LATE_PATHS = [/^Dockerfile$/, /^deploy\/k8s(\/|$)/];
const LATE_TARGETS = new Set(["image"]);
// Paths are recognised by where they start: a top-level file or folder of
// the repository.
const PATH_RE = /(?<![\w./$-])((?:\.ci|scripts|deploy|examples|tests|src|include|cmake|docs|bench|fuzz)\/[\w.*/-]*[\w*]|Dockerfile|Makefile|CMakeLists\.txt)(?![\w-])/g;
const MAKE_RE = /(?:^|[\s;&|(])make((?:[ \t]+[^\s;&|)]+)*)/gm;
const MAKE_OPTS_WITH_ARG = new Set(["-C", "-f", "-j", "-l", "-o", "-W", "-I"]);

// Targets of a Makefile: `name:` rules (not `:=` assignments) and .PHONY.
function makeTargets(file) {
  const text = fs.readFileSync(file, "utf8").replace(/\\\n/g, " ");
  const targets = new Set();
  for (const line of text.split("\n")) {
    if (/^\s/.test(line) || line.startsWith("#")) continue;
    const m = line.match(/^([^:=#]+?)\s*::?(?!=)/);
    if (!m) continue;
    for (const t of m[1].trim().split(/\s+/)) if (t === ".PHONY") continue; else targets.add(t);
    if (m[1].trim() === ".PHONY") for (const t of line.slice(line.indexOf(":") + 1).trim().split(/\s+/)) if (t) targets.add(t);
  }
  return targets;
}

const targetKnown = (targets, t) =>
  targets.has(t) || [...targets].some((p) => p.includes("%") && new RegExp(`^${p.replace(/[.]/g, "\\.").replace("%", ".+")}$`).test(t));

// A glob with * and ** against the tree under root.
function globExists(root, pattern) {
  const parts = pattern.split("/");
  function walk(dir, i) {
    if (i === parts.length) return true;
    const part = parts[i];
    if (!part.includes("*")) return fs.existsSync(path.join(dir, part)) && (i === parts.length - 1 || fs.statSync(path.join(dir, part)).isDirectory()) && walk(path.join(dir, part), i + 1);
    let entries;
    try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return false; }
    if (part === "**") return walk(dir, i + 1) || entries.some((e) => e.isDirectory() && e.name !== "node_modules" && walk(path.join(dir, e.name), i));
    const re = new RegExp(`^${part.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*")}$`);
    return entries.some((e) => e.name !== "node_modules" && re.test(e.name) && walk(path.join(dir, e.name), i + 1));
  }
  return walk(root, 0);
}

// The shell text and the other path-bearing strings of a pipeline file.
function collect(doc) {
  const shell = [];
  const strings = [];
  const isGitHub = isMap(doc.jobs);
  if (isGitHub) {
    for (const job of Object.values(doc.jobs)) {
      if (typeof job.if === "string") strings.push(job.if);
      for (const step of asList(job.steps)) {
        if (typeof step.run === "string") shell.push(step.run);
        if (step["working-directory"]) strings.push(step["working-directory"]);
        const uses = String(step.uses ?? "");
        // Uploads and downloads name outputs, which need not exist yet.
        if (/^actions\/(upload|download)-artifact@/.test(uses)) continue;
        for (const v of Object.values(step.with ?? {})) if (typeof v === "string") strings.push(v);
      }
    }
  } else {
    const scriptKeys = ["before_script", "script", "after_script"];
    for (const [name, body] of Object.entries(doc)) {
      if (!isMap(body)) continue;
      for (const k of scriptKeys) shell.push(...asList(body[k]).flat().map(String));
      for (const c of asList(body.cache)) if (isMap(c?.key)) strings.push(...asList(c.key.files).map(String));
      if (name === "variables") strings.push(...Object.values(body).map(String));
    }
  }
  return { shell, strings };
}

function main() {
  const [root, file] = process.argv.slice(2);
  if (!root || !file) { console.error("usage: node refs.mjs ROOT FILE"); process.exit(2); }
  const doc = YAML.parse(fs.readFileSync(file, "utf8"));
  const { shell, strings } = collect(doc);
  const problems = [];
  const targets = makeTargets(path.join(root, "Makefile"));

  const called = new Set();
  for (const text of shell)
    for (const m of text.matchAll(MAKE_RE)) {
      const words = m[1].trim().split(/\s+/).filter(Boolean);
      for (let i = 0; i < words.length; i++) {
        const w = words[i];
        if (MAKE_OPTS_WITH_ARG.has(w)) { i++; continue; }
        if (w.startsWith("-") || w.includes("=") || w.startsWith('"') || w.startsWith("$")) continue;
        called.add(w);
      }
    }
  for (const t of called) {
    if (targetKnown(targets, t)) continue;
    if (LATE_TARGETS.has(t)) console.log(`SKIP - make ${t}: not in the Makefile yet (expected from the lead)`);
    else problems.push(`make ${t}: no such target in the root Makefile`);
  }

  // hashFiles('a', 'b') arguments are paths too; the regex finds them in
  // the expression text.
  const paths = new Set();
  for (const text of [...shell, ...strings]) for (const m of text.matchAll(PATH_RE)) paths.add(m[1].replace(/\/+$/, ""));
  for (const p of paths) {
    const ok = p.includes("*") ? globExists(root, p) : fs.existsSync(path.join(root, p));
    if (ok) continue;
    if (LATE_PATHS.some((re) => re.test(p))) console.log(`SKIP - ${p}: not in this tree yet (it lands in parallel; the lead re-runs with it)`);
    else problems.push(`${p}: named by the pipeline, missing from the repository`);
  }

  console.log(`checked: make ${[...called].sort().join(", ") || "(none)"}; paths ${[...paths].sort().join(", ") || "(none)"}`);
  for (const p of problems) console.log(`${file}: ${p}`);
  process.exit(problems.length ? 1 : 0);
}

main();
