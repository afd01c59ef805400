// The served API descriptions, checked from outside (run by
// tests/integration/test_openapi.py, which starts the servers):
//  - each /openapi.json is a valid OpenAPI 3.1 document (the official
//    schemas, offline, and the rules they cannot say), and broken copies of
//    it are refused: the validator bites;
//  - a contract test driven by the document: for every documented operation
//    a valid request (values made from its schemas) and invalid ones (a
//    missing required field, a value out of range), each answered with a
//    status the document lists and, for JSON, a body its schema accepts.
// OPENAPI_SERVERS: JSON [{name, base, contract, minDocumented, docs, bearer, apiKey}].
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bodyChecker, describeErrors, example, outOfRange, resolve } from './lib.mjs';

const servers = JSON.parse(process.env.OPENAPI_SERVERS || '[]');
if (!servers.length) throw new Error('OPENAPI_SERVERS names no server');

async function getDoc(base) {
  const r = await fetch(`${base}/openapi.json`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  return r.json();
}

for (const srv of servers) {
  test(`${srv.name}: /openapi.json is valid OpenAPI 3.1`, async () => {
    const doc = await getDoc(srv.base);
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(await describeErrors(doc), []);
    assert.ok(Object.keys(doc.paths).length > 0);
    assert.equal(doc.paths['/openapi.json'], undefined, 'its own route is hidden');
    // the same bytes twice
    const a = await (await fetch(`${srv.base}/openapi.json`)).text();
    const b = await (await fetch(`${srv.base}/openapi.json`)).text();
    assert.equal(a, b);
  });

  test(`${srv.name}: the validator refuses broken copies`, async () => {
    const doc = await getDoc(srv.base);
    const [path, item] = Object.entries(doc.paths).find(([, it]) => it.get);
    const op = item.get;
    const status = Object.keys(op.responses)[0];

    const dangling = structuredClone(doc);
    dangling.paths[path].get.responses[status] = {
      description: 'x',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/NoSuchModel' } } },
    };
    const e1 = await describeErrors(dangling);
    assert.ok(e1.some((e) => e.includes('NoSuchModel')), JSON.stringify(e1));

    const undeclared = structuredClone(doc);
    undeclared.paths[`${path.replace(/\/$/, '')}/{nope}`] = undeclared.paths[path];
    delete undeclared.paths[path];
    const e2 = await describeErrors(undeclared);
    assert.ok(e2.some((e) => e.includes('nope')), JSON.stringify(e2));

    const badIn = structuredClone(doc);
    badIn.paths[path].get.parameters = [{ name: 'x', in: 'body', schema: { type: 'string' } }];
    assert.notDeepEqual(await describeErrors(badIn), []);

    const noDescription = structuredClone(doc);
    delete noDescription.paths[path].get.responses[status].description;
    assert.notDeepEqual(await describeErrors(noDescription), []);

    const wrongVersion = structuredClone(doc);
    wrongVersion.openapi = '3.1';
    assert.notDeepEqual(await describeErrors(wrongVersion), []);
  });

  if (srv.docs) {
    test(`${srv.name}: /docs is Swagger UI with no inline script`, async () => {
      const r = await fetch(`${srv.base}/docs`);
      assert.equal(r.status, 200);
      const html = await r.text();
      assert.match(html, /data-openapi-url="\/openapi.json"/);
      for (const m of html.matchAll(/<script[^>]*>/g)) assert.match(m[0], /src=/);
      for (const src of ['/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css', '/docs/weave-docs.js']) {
        const a = await fetch(`${srv.base}${src}`);
        assert.equal(a.status, 200, src);
        assert.ok((await a.arrayBuffer()).byteLength > 100, src);
      }
    });
  }

  if (srv.contract) {
    test(`${srv.name}: every documented operation answers as described`, async () => {
      const doc = await getDoc(srv.base);
      const check = bodyChecker(doc);
      let calls = 0;
      const documented = [];
      for (const [path, item] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(item)) {
          if (op.summary || op.requestBody || op.description) documented.push({ path, method, op });
        }
      }
      assert.ok(documented.length >= (srv.minDocumented ?? 3), `${documented.length} documented operations`);

      async function call(what, path, method, op, { params = {}, body, auth = true } = {}) {
        let url = path;
        const headers = {};
        const query = new URLSearchParams();
        for (const p of op.parameters || []) {
          if (!(p.name in params)) continue;
          const v = String(params[p.name]);
          if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(v));
          else if (p.in === 'query') query.set(p.name, v);
          else if (p.in === 'header') headers[p.name] = v;
        }
        if (auth && op.security) {
          const names = Object.keys(op.security[0]);
          if (names.includes('HTTPBearer') && srv.bearer) headers.Authorization = `Bearer ${srv.bearer}`;
          const key = names.find((n) => n.startsWith('APIKeyHeader'));
          if (key && srv.apiKey) headers[doc.components.securitySchemes[key].name] = srv.apiKey;
        }
        if (body !== undefined) headers['Content-Type'] = 'application/json';
        const qs = query.toString();
        const r = await fetch(`${srv.base}${url}${qs ? `?${qs}` : ''}`, {
          method: method.toUpperCase(),
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        calls++;
        const text = await r.text();
        const listed = op.responses[String(r.status)] || op.responses.default;
        assert.ok(listed, `${what}: ${method.toUpperCase()} ${url} answered ${r.status}, not listed ` +
          `(${Object.keys(op.responses)}): ${text}`);
        const schema = listed.content && listed.content['application/json'] &&
          listed.content['application/json'].schema;
        if (schema && (r.headers.get('content-type') || '').startsWith('application/json')) {
          const errs = check(schema, JSON.parse(text));
          assert.deepEqual(errs, [], `${what}: ${method.toUpperCase()} ${url} ${r.status} body ${text}`);
        }
        return r.status;
      }

      for (const { path, method, op } of documented) {
        const params = {};
        for (const p of op.parameters || []) {
          if (p.required || p.in === 'path') params[p.name] = example(doc, p.schema);
        }
        const bodySchema = op.requestBody && op.requestBody.content['application/json'].schema;
        const body = bodySchema ? example(doc, bodySchema) : undefined;
        // valid: a 2xx when the caller holds the credentials it needs
        const st = await call('valid', path, method, op, { params, body });
        if (!op.security || srv.bearer || srv.apiKey) {
          assert.ok(st < 300 || st === 429, `valid ${method} ${path} answered ${st}`);
        }
        // secured: without credentials, a listed 401
        if (op.security) {
          assert.equal(await call('no credentials', path, method, op, { params, body, auth: false }), 401);
        }
        // a body missing a required field: 422
        if (bodySchema) {
          const s = resolve(doc, bodySchema);
          for (const k of s.required || []) {
            const missing = structuredClone(body);
            delete missing[k];
            assert.equal(await call(`body without ${k}`, path, method, op, { params, body: missing }), 422);
          }
          for (const [k, p] of Object.entries(s.properties || {})) {
            const bad = outOfRange(doc, p);
            if (bad === undefined) continue;
            assert.equal(await call(`body ${k}=${bad}`, path, method, op,
              { params, body: { ...body, [k]: bad } }), 422);
          }
        }
        // each parameter out of its range: 422
        for (const p of op.parameters || []) {
          const bad = outOfRange(doc, p.schema);
          if (bad === undefined) continue;
          assert.equal(await call(`${p.in} ${p.name}=${bad}`, path, method, op,
            { params: { ...params, [p.name]: bad } }), 422);
        }
        // rate limited: calls past the burst are a listed 429
        if (op.responses['429']) {
          let limited = false;
          for (let i = 0; i < 10 && !limited; i++) {
            limited = (await call('burst', path, method, op, { params, body })) === 429;
          }
          assert.ok(limited, `${method} ${path}: no 429 in 10 calls`);
        }
      }
      assert.ok(calls >= 2 * documented.length, `only ${calls} calls`);
    });
  }
}
