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
 * - `uniqueItems: true` is refused unless `items` has only scalar types (ajv then checks with a hash, in
 *   linear time) or `maxItems` is at most MAX_UNIQUE_ITEMS: otherwise ajv compares items pairwise, and a
 *   1 MiB body of distinct objects costs minutes of CPU (20,000 items took 4.5 s).
 *
 * Matching is bounded too, whatever the pattern: `pattern`, `patternProperties` and `propertyNames`
 * patterns run on RE2 (re2js, a pure-JS port of RE2) through ajv's `code.regExp` option, so a payload
 * string is matched in time linear in its length. The heuristic above only catches exponential cases;
 * polynomial ones like `\d+\d+\d+x` are just as fatal on a 1 MiB string with a backtracking engine.
 * Native `re2` needs a native build; cutting strings short before matching would change what a pattern
 * means. The price: RE2 has no lookaround or backreferences, so such a pattern is refused when the
 * trigger is saved (with RE2's message), and `\s` means ASCII space characters only. The heuristic stays
 * as well, so saved patterns remain safe for receivers that re-validate with a backtracking engine.
 * No static rule bounds the rest: nested in-place applicators (`anyOf`/`$ref` within each other) make
 * the work exponential in the schema's nesting or the payload's depth, and `allErrors` keeps every failed
 * branch's errors. So compiling, and validating with a schema that uses such keywords, run under a
 * wall-clock bound (COMPILE_TIMEOUT_MS, VALIDATE_TIMEOUT_MS; see `bounded`): a schema too costly for a
 * payload rejects that payload with an error saying so. At most MAX_REPORTED_ERRORS errors are reported.
 */
import vm from 'node:vm';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import Ajv2019 from 'ajv/dist/2019';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { RegExpEngine } from 'ajv/dist/types';
import { RE2JS } from 're2js';

export const MAX_SCHEMA_BYTES = 64 * 1024;
export const MAX_SCHEMA_DEPTH = 32;
export const MAX_PATTERN_LENGTH = 1024;
export const MAX_UNIQUE_ITEMS = 100;
/** Wall-clock bounds on compiling a schema and on validating one payload (see `bounded`). */
export const COMPILE_TIMEOUT_MS = 1000;
export const VALIDATE_TIMEOUT_MS = 500;
/** A payload failing everywhere would otherwise answer with one error per value (a 1 MiB body, 300k errors). */
export const MAX_REPORTED_ERRORS = 100;

export interface SchemaError {
  pointer: string;
  message: string;
}

export type SchemaValidate = (data: unknown) => { valid: true } | { valid: false; errors: SchemaError[] };

export type CompiledSchema = { ok: true; validate: SchemaValidate } | { ok: false; message: string };

type AjvLike = Pick<Ajv, 'compile' | 'removeSchema'>;

/** ajv's regex engine: RE2, linear-time (see the file comment). JS syntax errors keep JS's message. */
const re2Engine: RegExpEngine = Object.assign(
  (pattern: string, u: string) => {
    new RegExp(pattern, u); // throws "Invalid regular expression: …" for what is not a regex at all
    let re: RE2JS;
    try {
      re = RE2JS.compile(RE2JS.translateRegExp(pattern));
    } catch (e) {
      throw new Error(
        `pattern ${JSON.stringify(pattern)} is not supported (${e instanceof Error ? e.message : String(e)}); patterns are matched with RE2: no lookaround or backreferences`,
        { cause: e },
      );
    }
    // ajv caches compiled patterns by their toString(): it must tell patterns apart.
    return { test: (s: string) => re.test(s), toString: () => `re2:${pattern}` };
  },
  { code: 're2Engine' },
);

const ajvOptions = { allErrors: true, strict: false, logger: false as const, code: { regExp: re2Engine } };
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
    const compiled = bounded(() => ajv.compile(schema as object | boolean), COMPILE_TIMEOUT_MS);
    if (!compiled.ok) return { ok: false, message: `schema is too costly to compile (${compiled.why}); simplify it` };
    fn = compiled.value;
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
  const guarded = usesCostlyKeywords(schema);
  const validate: SchemaValidate = (data) => {
    const run = guarded ? bounded(() => fn(data), VALIDATE_TIMEOUT_MS) : { ok: true as const, value: fn(data) };
    if (!run.ok) {
      return {
        valid: false,
        errors: [{ pointer: '/', message: `the trigger's schema is too costly for this payload (${run.why}); validation was stopped` }],
      };
    }
    if (run.value) return { valid: true };
    return { valid: false, errors: (fn.errors ?? []).slice(0, MAX_REPORTED_ERRORS).map(toSchemaError) };
  };
  return { ok: true, validate };
}

/**
 * Keywords that make validation cost more than one pass over the payload: in-place applicators (each
 * `$ref`/`anyOf` inside another multiplies the work on the same value, so a 1.7 kB schema of 22 nested
 * `anyOf: [{$ref}, {$ref}]` costs 4M evaluations and 2 GB per request), pairwise comparisons and scans.
 */
const COSTLY_KEYWORDS = new Set([
  '$ref',
  '$dynamicRef',
  '$recursiveRef',
  'allOf',
  'anyOf',
  'oneOf',
  'not',
  'if',
  'dependentSchemas',
  'dependencies',
  'contains',
  'uniqueItems',
  'enum',
  'unevaluatedProperties',
  'unevaluatedItems',
]);

function usesCostlyKeywords(schema: unknown): boolean {
  const stack: unknown[] = [schema];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) stack.push(...v);
    else if (isPlainObject(v)) {
      for (const [key, child] of Object.entries(v)) {
        if (COSTLY_KEYWORDS.has(key)) return true;
        if (!DATA_KEYWORDS.has(key)) stack.push(child);
      }
    }
  }
  return false;
}

/**
 * Calls `fn` under a wall-clock bound. vm's `timeout` makes V8 terminate whatever JavaScript runs when
 * time is up — here, ajv's generated code — so a costly schema costs at most `timeoutMs` of one core per
 * request, and the memory it can allocate in that time, instead of hanging or crashing the process. A
 * stack overflow (a schema that recurses on the same value, such as `{"$ref": "#"}`) is stopped the same
 * way. The bound costs ~0.1 ms per call (a watchdog thread), so schemas without costly keywords skip it.
 */
const sandbox = vm.createContext({ fn: null as unknown });
const callFn = new vm.Script('fn()');

function bounded<T>(fn: () => T, timeoutMs: number): { ok: true; value: T } | { ok: false; why: string } {
  sandbox.fn = fn;
  try {
    return { ok: true, value: callFn.runInContext(sandbox, { timeout: timeoutMs }) as T };
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return { ok: false, why: `over ${timeoutMs} ms` };
    if (e instanceof RangeError) return { ok: false, why: 'unbounded recursion' };
    throw e;
  } finally {
    sandbox.fn = null;
  }
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
    if (v.uniqueItems === true && !scalarItems(v.items) && !(typeof v.maxItems === 'number' && v.maxItems <= MAX_UNIQUE_ITEMS)) {
      return `uniqueItems needs "items" of scalar types (string, number, integer, boolean, null) or "maxItems" of at most ${MAX_UNIQUE_ITEMS}`;
    }
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

const SCALAR_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null']);

/** `items` declares only scalar types, so ajv can check uniqueness with a hash. */
function scalarItems(items: unknown): boolean {
  if (!isPlainObject(items)) return false;
  const t = items.type;
  const types = Array.isArray(t) ? t : [t];
  return types.length > 0 && types.every((x) => typeof x === 'string' && SCALAR_TYPES.has(x));
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
 * comment). A pattern that is not a valid regex is left to ajv, which reports it. One scanner over the
 * pattern's characters: split up, its states (group depth, quantified groups) would have to be passed around.
 */
// eslint-disable-next-line max-lines-per-function -- one scanner with its states, as said above
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
