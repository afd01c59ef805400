// Bundles the chapter 13 page into dist/: index.html, app.js, app.css (minified),
// and the API's docs page into dist/docs/: Swagger UI's bundle and stylesheet
// from the swagger-ui-dist package, as published, and src/docs/weave-docs.js,
// which starts it (the service writes the HTML: wv_openapi_serve).
// Called by scripts/build_web.sh (which decides whether a build is needed) or
// `npm run build`. Builds into .dist-tmp/ and swaps it in at the end, so a
// running service never serves a half-written dist/. Exits non-zero on any error.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.dirname(fileURLToPath(import.meta.url));
const tmp = path.join(root, '.dist-tmp');
const dist = path.join(root, 'dist');

fs.rmSync(tmp, { recursive: true, force: true });

try {
  await esbuild.build({
    entryPoints: { app: path.join(root, 'src', 'main.jsx') },
    outdir: tmp,
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2020',
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'warning', // esbuild prints its own errors and warnings
  });
} catch {
  fs.rmSync(tmp, { recursive: true, force: true });
  console.error('build_web: esbuild failed (errors above)');
  process.exit(1);
}

// /docs: no CDN, no inline script (weave-docs.js reads the description's URL
// from the page's data-openapi-url).
const swagger = path.join(root, 'node_modules', 'swagger-ui-dist');
fs.mkdirSync(path.join(tmp, 'docs'));
for (const file of ['swagger-ui-bundle.js', 'swagger-ui.css', 'favicon-32x32.png', 'LICENSE', 'NOTICE']) {
  fs.copyFileSync(path.join(swagger, file), path.join(tmp, 'docs', file));
}
fs.copyFileSync(path.join(root, 'src', 'docs', 'weave-docs.js'), path.join(tmp, 'docs', 'weave-docs.js'));

// index.html is written last: its mtime is the build's (build_web.sh compares
// sources against it). The ?v= hashes make browsers refetch changed assets.
const hash = (file) =>
  createHash('sha256').update(fs.readFileSync(path.join(tmp, file))).digest('hex').slice(0, 10);
const html = fs
  .readFileSync(path.join(root, 'src', 'index.html'), 'utf8')
  .replace('href="app.css"', `href="app.css?v=${hash('app.css')}"`)
  .replace('src="app.js"', `src="app.js?v=${hash('app.js')}"`);
if (!html.includes('app.js?v=') || !html.includes('app.css?v=')) {
  throw new Error('src/index.html must reference app.js and app.css');
}
fs.writeFileSync(path.join(tmp, 'index.html'), html);

fs.rmSync(dist, { recursive: true, force: true });
fs.renameSync(tmp, dist);

const kib = (file) => (fs.statSync(path.join(dist, file)).size / 1024).toFixed(1);
console.log(
  `build_web: built ${path.relative(process.cwd(), dist) || 'dist'}/ ` +
    `(app.js ${kib('app.js')} KiB, app.css ${kib('app.css')} KiB)`,
);
