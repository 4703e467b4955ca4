/**
 * Compiling a webhook trigger's JSON Schema, which comes from an untrusted user.
 *
 * Dialect: `$schema` naming 2020-12 selects Ajv2020, 2019-09 selects Ajv2019, anything else (or none) the
 * draft-07 Ajv. All with `allErrors: true`, `strict: false`, ajv-formats, and no logger.
 *
 * Guards, checked before ajv sees the schema:
 * - its JSON must be at most 64 KiB and nest at most 32 levels of objects/arrays (the root is level 1);
 * - `$async` schemas are refused (validation must stay synchronous);
 * - every `pattern` string and every `patternProperties` key must look safe from catastrophic
 *   backtracking. The check is a heuristic (see `catastrophicRegexReason`), not a proof: it rejects a
 *   repeated group (`*`, `+`, `{n,}`, `{n,m}` with m > 1) that contains a variable-length quantifier
 *   (`(a+)+`, `(.*)*`, `([a-z]+\.)*`), and a repeated group whose alternatives overlap — one is a prefix of
 *   another (`(a|aa)+`), one is empty, or two start with character classes that share a character
 *   (`(\w|\d)+`). Patterns longer than 1024 characters are refused too. It does not catch polynomial
 *   cases such as `\d+\d+\d+x`. Users can usually rewrite a rejected pattern, or use `format`.
 *   The walk looks at every object in the schema except the data under `const`, `enum`, `default` and
 *   `examples`.
 * - remote `$ref`s are never fetched: ajv has no `loadSchema`, so compiling one fails with ajv's
 *   "can't resolve reference" message.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import Ajv2019 from 'ajv/dist/2019';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

export const MAX_SCHEMA_BYTES = 64 * 1024;
export const MAX_SCHEMA_DEPTH = 32;
export const MAX_PATTERN_LENGTH = 1024;

export interface SchemaError {
  pointer: string;
  message: string;
}

export type SchemaValidate = (data: unknown) => { valid: true } | { valid: false; errors: SchemaError[] };

export type CompiledSchema = { ok: true; validate: SchemaValidate } | { ok: false; message: string };

type AjvLike = Pick<Ajv, 'compile' | 'removeSchema'>;

const ajvOptions = { allErrors: true, strict: false, logger: false as const };
let instances: { draft07: AjvLike; draft2019: AjvLike; draft2020: AjvLike } | undefined;

function ajvFor(schema: unknown): AjvLike {
  if (!instances) {
    const draft07 = new Ajv(ajvOptions);
    const draft2019 = new Ajv2019(ajvOptions);
    const draft2020 = new Ajv2020(ajvOptions);
    addFormats(draft07);
    addFormats(draft2019);
    addFormats(draft2020);
    instances = { draft07, draft2019, draft2020 };
  }
  const dialect = isPlainObject(schema) && typeof schema.$schema === 'string' ? schema.$schema : '';
  if (dialect.includes('2020-12')) return instances.draft2020;
  if (dialect.includes('2019-09')) return instances.draft2019;
  return instances.draft07;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Compile a webhook schema (object or boolean), or say why it cannot be used. */
export function compileWebhookSchema(schema: unknown): CompiledSchema {
  if (typeof schema !== 'boolean' && !isPlainObject(schema)) {
    return { ok: false, message: 'must be a JSON Schema (an object or a boolean)' };
  }
  let json: string;
  try {
    json = JSON.stringify(schema);
  } catch {
    return { ok: false, message: 'must be JSON' };
  }
  if (Buffer.byteLength(json, 'utf8') > MAX_SCHEMA_BYTES) {
    return { ok: false, message: `schema is larger than ${MAX_SCHEMA_BYTES} bytes` };
  }
  if (depthOf(schema) > MAX_SCHEMA_DEPTH) {
    return { ok: false, message: `schema nests deeper than ${MAX_SCHEMA_DEPTH} levels` };
  }
  if (isPlainObject(schema) && schema.$async === true) {
    return { ok: false, message: 'async schemas ($async) are not supported' };
  }
  const unsafe = findUnsafePattern(schema);
  if (unsafe) return { ok: false, message: unsafe };

  const ajv = ajvFor(schema);
  let fn: ValidateFunction;
  try {
    fn = ajv.compile(schema as object | boolean);
  } catch (e) {
    return { ok: false, message: e instanceof Error ? e.message : String(e) };
  } finally {
    // One shared Ajv per dialect: drop the schema from its cache so trigger schemas neither pile up in
    // memory nor collide on a shared $id.
    try {
      if (typeof schema !== 'boolean') ajv.removeSchema(schema);
    } catch {
      /* nothing cached */
    }
  }
  const validate: SchemaValidate = (data) => {
    if (fn(data)) return { valid: true };
    return { valid: false, errors: (fn.errors ?? []).map(toSchemaError) };
  };
  return { ok: true, validate };
}

function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** ajv error -> JSON pointer of the offending value ('' -> '/'), naming the property for property errors. */
function toSchemaError(e: ErrorObject): SchemaError {
  const params = e.params as Record<string, unknown>;
  let pointer = e.instancePath;
  const prop =
    e.keyword === 'required' || e.keyword === 'dependentRequired' || e.keyword === 'dependencies'
      ? params.missingProperty
      : e.keyword === 'additionalProperties'
        ? params.additionalProperty
        : e.keyword === 'unevaluatedProperties'
          ? params.unevaluatedProperty
          : undefined;
  if (typeof prop === 'string') pointer += '/' + escapePointerToken(prop);
  return { pointer: pointer === '' ? '/' : pointer, message: e.message ?? e.keyword };
}

/** Nesting depth of objects/arrays; a scalar is 0, `{}` is 1. Iterative, so a hostile value cannot blow the stack. */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) max = d;
    if (max > MAX_SCHEMA_DEPTH) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples']);

function findUnsafePattern(schema: unknown): string | null {
  const stack: unknown[] = [schema];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      stack.push(...v);
      continue;
    }
    if (!isPlainObject(v)) continue;
    for (const [key, child] of Object.entries(v)) {
      if (DATA_KEYWORDS.has(key)) continue;
      if (key === 'pattern' && typeof child === 'string') {
        const why = catastrophicRegexReason(child);
        if (why) return `pattern ${JSON.stringify(child)} rejected: ${why}`;
      }
      if (key === 'patternProperties' && isPlainObject(child)) {
        for (const p of Object.keys(child)) {
          const why = catastrophicRegexReason(p);
          if (why) return `patternProperties key ${JSON.stringify(p)} rejected: ${why}`;
        }
      }
      stack.push(child);
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Catastrophic-backtracking heuristic
// ---------------------------------------------------------------------------------------------------------

interface Quantifier {
  min: number;
  max: number;
  length: number;
}

/** Read a quantifier at src[i], if any (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, each optionally lazy). */
function readQuantifier(src: string, i: number): Quantifier | null {
  const c = src[i];
  let q: Quantifier | null = null;
  if (c === '*') q = { min: 0, max: Infinity, length: 1 };
  else if (c === '+') q = { min: 1, max: Infinity, length: 1 };
  else if (c === '?') q = { min: 0, max: 1, length: 1 };
  else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i));
    if (m) {
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      q = { min, max, length: m[0].length };
    }
  }
  if (q && src[i + q.length] === '?') q.length += 1;
  return q;
}

/** A quantifier that lets its atom match a variable number of times, more than once. */
function isVariable(q: Quantifier | null): boolean {
  return q !== null && q.max > 1 && q.max > q.min;
}

/** A quantifier that repeats its atom. */
function repeats(q: Quantifier | null): boolean {
  return q !== null && q.max > 1;
}

const SAMPLE_CHARS: string[] = (() => {
  const out: string[] = [];
  for (let c = 0; c < 128; c++) out.push(String.fromCharCode(c));
  out.push('\u00a0', 'é', 'ß', 'Ж', '中', '😀', '\u2028');
  return out;
})();

const ALL_SAMPLES = new Set(SAMPLE_CHARS.map((_, i) => i));

/** Which sample characters a single-character atom (literal, escape, class, dot) can match. */
function firstSet(atom: string): Set<number> {
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${atom})$`, 'u');
  } catch {
    try {
      re = new RegExp(`^(?:${atom})$`);
    } catch {
      return ALL_SAMPLES;
    }
  }
  const set = new Set<number>();
  SAMPLE_CHARS.forEach((ch, i) => {
    if (re.test(ch)) set.add(i);
  });
  return set;
}

interface Alternative {
  text: string;
  first: Set<number> | null; // null: empty alternative
  broad: boolean; // starts with a class, class escape or dot
}

interface Frame {
  open: number; // index of the '(' (0 for the whole pattern)
  alternatives: Alternative[];
  current: { start: number; first: Set<number> | null; broad: boolean };
  hasVariable: boolean;
}

function newFrame(open: number, start: number): Frame {
  return { open, alternatives: [], current: { start, first: null, broad: false }, hasVariable: false };
}

function closeAlternative(frame: Frame, src: string, end: number): void {
  frame.alternatives.push({
    text: src.slice(frame.current.start, end),
    first: frame.current.first,
    broad: frame.current.broad,
  });
}

function overlapping(alts: Alternative[]): boolean {
  if (alts.length < 2) return false;
  for (let i = 0; i < alts.length; i++) {
    for (let j = i + 1; j < alts.length; j++) {
      const a = alts[i]!;
      const b = alts[j]!;
      if (a.first === null || b.first === null) return true; // an empty alternative
      if (a.text.startsWith(b.text) || b.text.startsWith(a.text)) return true;
      if ((a.broad || b.broad) && [...a.first].some((c) => b.first!.has(c))) return true;
    }
  }
  return false;
}

/**
 * Why `src` looks prone to catastrophic backtracking, or null if it looks fine. Heuristic (see the file
 * comment). A pattern that is not a valid regex is left to ajv, which reports it.
 */
export function catastrophicRegexReason(src: string): string | null {
  if (src.length > MAX_PATTERN_LENGTH) return `longer than ${MAX_PATTERN_LENGTH} characters`;
  const stack: Frame[] = [newFrame(0, 0)];
  const top = (): Frame => stack[stack.length - 1]!;
  let i = 0;

  // Record an atom that starts the current alternative of the innermost group.
  const noteAtom = (first: Set<number>, broad: boolean, atomStart: number): void => {
    const f = top();
    if (f.current.first === null && f.current.start === atomStart) {
      f.current.first = first;
      f.current.broad = broad;
    }
  };

  while (i < src.length) {
    const c = src[i]!;
    const atomStart = i;
    if (c === '(') {
      let j = i + 1;
      if (src[j] === '?') {
        // (?:  (?=  (?!  (?<=  (?<!  (?<name>
        if (src[j + 1] === '<' && src[j + 2] !== '=' && src[j + 2] !== '!') {
          const close = src.indexOf('>', j);
          j = close === -1 ? src.length : close + 1;
        } else {
          j += src[j + 1] === '<' ? 3 : 2;
        }
      }
      stack.push(newFrame(i, j));
      i = j;
      continue;
    }
    if (c === '|') {
      const f = top();
      closeAlternative(f, src, i);
      f.current = { start: i + 1, first: null, broad: false };
      i += 1;
      continue;
    }
    if (c === ')' && stack.length > 1) {
      const f = stack.pop()!;
      closeAlternative(f, src, i);
      const open = f.open;
      const q = readQuantifier(src, i + 1);
      if (repeats(q)) {
        if (f.hasVariable) return `nested quantifier in ${src.slice(open, i + 1 + q!.length)}`;
        if (overlapping(f.alternatives)) {
          return `repeated alternation with overlapping alternatives in ${src.slice(open, i + 1 + q!.length)}`;
        }
      }
      const parent = top();
      if (f.hasVariable || isVariable(q)) parent.hasVariable = true;
      // The group's first characters: the union of its alternatives' firsts.
      const union = new Set<number>();
      let broad = false;
      for (const a of f.alternatives) {
        for (const x of a.first ?? ALL_SAMPLES) union.add(x);
        broad ||= a.broad || a.first === null;
      }
      noteAtom(union, broad, open);
      i += 1 + (q ? q.length : 0);
      continue;
    }
    // A single-character atom: escape, class, dot or literal; or an anchor.
    let end = i + 1;
    let broad = false;
    let isAnchor = false;
    if (c === '\\') {
      const n = src[i + 1] ?? '';
      if (/[dDwWsS]/.test(n)) {
        broad = true;
        end = i + 2;
      } else if ((n === 'p' || n === 'P') && src[i + 2] === '{') {
        broad = true;
        const close = src.indexOf('}', i);
        end = close === -1 ? src.length : close + 1;
      } else if (n === 'u' && src[i + 2] === '{') {
        const close = src.indexOf('}', i);
        end = close === -1 ? src.length : close + 1;
      } else if (n === 'u') end = i + 6;
      else if (n === 'x') end = i + 4;
      else if (n === 'c') end = i + 3;
      else if (n === 'b' || n === 'B') {
        isAnchor = true;
        end = i + 2;
      } else end = i + 2;
    } else if (c === '[') {
      broad = true;
      let j = i + 1;
      if (src[j] === '^') j++;
      if (src[j] === ']') j++;
      while (j < src.length && src[j] !== ']') j += src[j] === '\\' ? 2 : 1;
      end = Math.min(j + 1, src.length);
    } else if (c === '.') {
      broad = true;
    } else if (c === '^' || c === '$') {
      isAnchor = true;
    }
    const q = readQuantifier(src, end);
    if (!isAnchor) {
      if (isVariable(q)) top().hasVariable = true;
      noteAtom(firstSet(src.slice(atomStart, end)), broad, atomStart);
    } else if (top().current.start === atomStart) {
      // An anchor does not consume: the alternative's first atom is the one after it.
      top().current.start = end;
    }
    i = end + (q ? q.length : 0);
  }
  return null;
}
