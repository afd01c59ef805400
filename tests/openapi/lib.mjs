// Helpers of the OpenAPI tests: validating a description (the official
// OpenAPI 3.1 schemas through @seriousme/openapi-schema-validator, plus the
// rules a JSON Schema cannot say), making valid and invalid values from a
// JSON Schema, and checking a response body against one (Ajv, 2020-12).
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020 from 'ajv/dist/2020.js';

// Errors of doc as a list of strings (empty: valid).
export async function describeErrors(doc) {
  const errors = [];
  const v = new Validator();
  const res = await v.validate(structuredClone(doc));
  if (!res.valid) {
    errors.push(...(Array.isArray(res.errors) ? res.errors.map((e) => JSON.stringify(e)) : [String(res.errors)]));
    return errors;
  }
  if (v.version !== '3.1') errors.push(`version ${v.version}, not 3.1`);
  // OpenAPI's own rules past the schema: every template parameter declared
  // as a required path parameter by each operation, no path parameter that
  // the template lacks, unique operationIds.
  const ids = new Set();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const [method, op] of Object.entries(item)) {
      if (typeof op !== 'object' || !op.responses) continue;
      const params = [...(item.parameters || []), ...(op.parameters || [])];
      const inPath = params.filter((p) => p.in === 'path');
      for (const n of names) {
        const p = inPath.find((q) => q.name === n);
        if (!p) errors.push(`${method} ${path}: path parameter ${n} is not declared`);
        else if (p.required !== true) errors.push(`${method} ${path}: path parameter ${n} is not required`);
      }
      for (const p of inPath) {
        if (!names.includes(p.name)) errors.push(`${method} ${path}: path parameter ${p.name} is not in the path`);
      }
      if (op.operationId) {
        if (ids.has(op.operationId)) errors.push(`operationId ${op.operationId} is used twice`);
        ids.add(op.operationId);
      }
    }
  }
  return errors;
}

// ------------------------------------------------------------ schemas

export function resolve(doc, schema) {
  let s = schema;
  for (let i = 0; s && s.$ref && i < 32; i++) {
    const name = s.$ref.replace('#/components/schemas/', '');
    s = doc.components.schemas[name];
    if (!s) throw new Error(`dangling ${schema.$ref}`);
  }
  return s;
}

// A valid value of schema: required fields only, bounds respected, enums
// and examples used (a pattern needs an example: a regex is not inverted).
export function example(doc, schema) {
  const s = resolve(doc, schema);
  if (!s || Object.keys(s).length === 0) return {};
  if (s.examples && s.examples.length) return s.examples[0];
  if (s.enum) return s.enum[0];
  if (s.const !== undefined) return s.const;
  if (s.anyOf) return example(doc, s.anyOf.find((x) => x.type !== 'null') || s.anyOf[0]);
  switch (s.type) {
    case 'integer':
    case 'number': {
      let v = 1;
      if (s.minimum !== undefined) v = s.minimum;
      else if (s.exclusiveMinimum !== undefined) v = Math.floor(s.exclusiveMinimum) + 1;
      if (s.maximum !== undefined && v > s.maximum) v = s.maximum;
      return v;
    }
    case 'boolean':
      return true;
    case 'string': {
      if (s.pattern) throw new Error(`a pattern (${s.pattern}) with no example to use`);
      if (s.format === 'date-time') return '2024-01-02T03:04:05Z';
      const n = Math.max(s.minLength || 1, 1);
      return 'a'.repeat(s.maxLength !== undefined ? Math.min(n, s.maxLength) : n);
    }
    case 'array':
      return Array.from({ length: s.minItems || 0 }, () => example(doc, s.items || {}));
    case 'object':
    default: {
      const out = {};
      for (const [k, p] of Object.entries(s.properties || {})) {
        if ((s.required || []).includes(k)) out[k] = example(doc, p);
      }
      return out;
    }
  }
}

// A value just outside schema's bounds, or undefined when it has none.
export function outOfRange(doc, schema) {
  const s = resolve(doc, schema);
  if (!s) return undefined;
  if (s.type === 'integer' || s.type === 'number') {
    if (s.maximum !== undefined) return s.maximum + 1;
    if (s.exclusiveMaximum !== undefined) return s.exclusiveMaximum;
    if (s.minimum !== undefined) return s.minimum - 1;
    if (s.exclusiveMinimum !== undefined) return s.exclusiveMinimum;
  }
  if (s.type === 'string') {
    if (s.enum) return `${s.enum[0]}-not-one-of-them`;
    if (s.maxLength !== undefined) return 'a'.repeat(s.maxLength + 1);
  }
  return undefined;
}

// A checker of JSON bodies against the document's schemas ("#/components/
// schemas/X" rewritten to "#/$defs/X" so each schema compiles on its own).
export function bodyChecker(doc) {
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  const rewrite = (v) =>
    JSON.parse(JSON.stringify(v).replaceAll('"#/components/schemas/', '"#/$defs/'));
  const defs = rewrite((doc.components && doc.components.schemas) || {});
  return (schema, body) => {
    const validate = ajv.compile({ $defs: defs, allOf: [rewrite(schema)] });
    return validate(body) ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`);
  };
}
