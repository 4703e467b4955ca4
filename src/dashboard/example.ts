/**
 * A payload to start a test run from, read off a webhook trigger's JSON Schema: the schema's own
 * `examples[0]` when it has one, else an object of the properties that have an example, a default, a const
 * or an enum, plus a typed blank for each required property that has none (the operator fills it in).
 */
const MAX_DEPTH = 8;

type Schema = Record<string, unknown>;

const isSchema = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeOf(s: Schema): string | undefined {
  const t = Array.isArray(s.type) ? (s.type.find((x) => x !== 'null') ?? s.type[0]) : s.type;
  if (typeof t === 'string') return t;
  if (isSchema(s.properties)) return 'object';
  if (s.items !== undefined) return 'array';
  return undefined;
}

/** A value the schema itself offers, or undefined. */
function offered(s: Schema, depth: number): unknown {
  if (Array.isArray(s.examples) && s.examples.length > 0) return s.examples[0];
  if ('default' in s) return s.default;
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  const t = typeOf(s);
  if (t === 'object') {
    const props = isSchema(s.properties) ? s.properties : {};
    const required = Array.isArray(s.required) ? s.required.filter((k): k is string => typeof k === 'string') : [];
    const out: Record<string, unknown> = {};
    for (const [k, sub] of Object.entries(props)) {
      if (!isSchema(sub)) continue;
      const v = depth < MAX_DEPTH ? offered(sub, depth + 1) : undefined;
      if (v !== undefined) out[k] = v;
      else if (required.includes(k)) out[k] = blank(sub, depth + 1);
    }
    for (const k of required) if (!(k in out)) out[k] = null;
    return Object.keys(out).length > 0 || required.length > 0 || depth === 0 ? out : undefined;
  }
  return undefined;
}

/** A typed blank for a required property with nothing offered. */
function blank(s: Schema, depth: number): unknown {
  switch (typeOf(s)) {
    case 'string':
      return '';
    case 'integer':
    case 'number':
      return typeof s.minimum === 'number' ? s.minimum : 0;
    case 'boolean':
      return false;
    case 'array':
      return [];
    case 'object':
      return depth < MAX_DEPTH ? (offered(s, depth) ?? {}) : {};
    default:
      return null;
  }
}

/** The starting payload for a test run of a trigger with this schema (`true`/`{}`: an empty object). */
export function exampleFromSchema(schema: unknown): unknown {
  if (!isSchema(schema)) return {};
  const v = offered(schema, 0);
  return v === undefined ? {} : v;
}
