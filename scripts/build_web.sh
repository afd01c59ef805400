#!/usr/bin/env bash
# Build the chapter 13 page (examples/chapter13/web) into its dist/ folder:
# index.html, app.js, app.css, bundled and minified by esbuild (web/build.mjs),
# and docs/ (Swagger UI from swagger-ui-dist, for the service's /docs page).
#   - installs web/node_modules with `npm ci` when it is missing or older than
#     package-lock.json (needs the npm registry once);
#   - rebuilds only when a source (src/, build.mjs, package*.json) is newer than
#     dist/index.html; prints nothing when dist/ is up to date.
# FORCE=1 rebuilds anyway. Exits non-zero, saying why, on any failure.
set -euo pipefail

cd "$(dirname "$0")/.."
WEB=examples/chapter13/web

fail()
{
    echo "build_web: $*" >&2
    exit 1
}

command -v node >/dev/null 2>&1 || fail "node not found; \`make deps\` installs Debian's nodejs and npm"
command -v npm >/dev/null 2>&1 || fail "npm not found; \`make deps\` installs Debian's nodejs and npm"

# npm ci records what it installed in node_modules/.package-lock.json.
installed=$WEB/node_modules/.package-lock.json
if [ ! -f "$installed" ] || [ "$WEB/package-lock.json" -nt "$installed" ] || [ "$WEB/package.json" -nt "$installed" ]; then
    echo "build_web: npm ci in $WEB"
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed in $WEB"
    touch "$installed"
fi

dist=$WEB/dist
sources=("$WEB/src" "$WEB/build.mjs" "$WEB/package.json" "$WEB/package-lock.json")
if [ "${FORCE:-0}" != 1 ] && [ -f "$dist/index.html" ] && [ -f "$dist/app.js" ] && [ -f "$dist/app.css" ] && [ -f "$dist/docs/swagger-ui-bundle.js" ] &&
    [ -z "$(find "${sources[@]}" -newer "$dist/index.html" -print -quit)" ]; then
    exit 0
fi

node "$WEB/build.mjs" || fail "the build failed in $WEB"
