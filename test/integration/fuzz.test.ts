/**
 * Property-based fuzzing of the HTTP API from openapi.yaml (fast-check).
 *
 * Every operation under /api/v1 and the health checks is walked from the spec, so a route added there is
 * fuzzed without touching this file. Requests are built from the declared parameter and body schemas and
 * then bent: wrong types, missing and extra fields, huge and raw-text numbers (1e400), unicode and lone
 * surrogates, deeply nested JSON, very long strings, invalid cron patterns / time zones / dates / URLs,
 * pathological JSON Schemas, wrong content types and charsets, truncated bodies, bad signatures and API keys.
 *
 * Properties checked on every case:
 * - never a 5xx, never an uncaught exception or unhandled rejection;
 * - the status is one the spec declares for the operation (testApp also validates JSON bodies against the
 *   spec, so an off-spec 2xx body shows up as a 500); a problem document says the same status and a
 *   catalogued code;
 * - the database is unchanged (CHECKSUM TABLE of every table) by any rejected (4xx) request and by any GET;
 * - the webhook secret and the API key never appear in a response.
 * After an accepted write the database is reset to the fixture snapshot, so every case starts the same.
 *
 * FUZZ_SEED (default fixed) picks the cases; FUZZ_RUNS sets the runs per operation (default 300, ~6,500
 * cases in all). FUZZ_VERBOSE=1 prints the status counts and where the time went; FUZZ_TRACE=<operationId>
 * prints every request of that operation with its answer.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import http from 'node:http';
import net from 'node:net';
import { createHmac, randomUUID } from 'node:crypto';
import request from 'supertest';
import { ERRORS } from '../../src/api/errors';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { SPEC, apiOperations, resolveRef, templateRegExp, type SpecNode, type SpecOperation } from '../helpers/openapi';

const SEED = Number(process.env.FUZZ_SEED ?? 20260501);
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const API_KEY = 'fuzz-api-key-6f1d2c3b';
const SECRET = 'fuzz-webhook-secret-9a8b7c6d5e';
const MAX_BODY = 65_536;

// ------------------------------------------------------------------------------------------------------
// Values
// ------------------------------------------------------------------------------------------------------

/**
 * Raw JSON text spliced into a body where a value would go (JSON.stringify cannot write 1e400 or a
 * 20,000-deep array). Marked strings are swapped for their text after serialising.
 */
const RAW_OPEN = '\u0001RAW:';
const RAW_CLOSE = '\u0001';
const raw = (text: string) => `${RAW_OPEN}${text}${RAW_CLOSE}`;
const RAW_IN_JSON = /"\\u0001RAW:(.*?)\\u0001"/g;
const RAW_IN_TEXT = new RegExp(`${RAW_OPEN}(.*?)${RAW_CLOSE}`, 'g');

function toJsonText(v: unknown): string {
  return (JSON.stringify(v) ?? 'null').replace(RAW_IN_JSON, (_m, escaped: string) => JSON.parse(`"${escaped}"`) as string);
}
function toPlainText(v: unknown): string {
  if (typeof v === 'string') return v.replace(RAW_IN_TEXT, (_m, text: string) => text);
  return toJsonText(v);
}

/** A URL cannot carry a lone surrogate: encodeURIComponent throws on one. */
const wellFormed = (s: string) => s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');

const deepArray = (d: number) => raw('['.repeat(d) + ']'.repeat(d));
const deepObject = (d: number) => raw('{"a":'.repeat(d) + '1' + '}'.repeat(d));

const hostileScalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    -0.000001,
    Number.MAX_SAFE_INTEGER,
    2 ** 53 + 2,
    2 ** 31,
    -(2 ** 63),
    1e308,
    -1e308,
    5e-324,
    '',
    ' ',
    '0',
    '-1',
    '1e3',
    'null',
    'true',
    '[]',
    '{}',
    '\u0000',
    '\u202e\u200b',
    '\ud800',
    '\udfff\ud800',
    'é',
    '𝕏'.repeat(300),
    '中文'.repeat(200),
    "' OR 1=1 -- ",
    '"; DROP TABLE triggers; --',
    '\\',
    '?',
    '${jndi:ldap://x}',
    '<script>alert(1)</script>',
    '../../../../etc/passwd',
    '%00',
    '%ZZ',
    '__proto__',
    'constructor',
  ),
  fc.constantFrom(
    raw('1e400'),
    raw('-1e400'),
    raw('123456789012345678901234567890'),
    raw('1.0'),
    raw('1E2'),
    raw('-0'),
    raw('0.1e-400'),
    raw('"\\ud800"'),
    raw('"\\u0000"'),
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.integer({ min: 300, max: 70_000 }).map((n) => 'x'.repeat(n)),
  fc.integer({ min: 100, max: 4000 }).map((n) => '😀'.repeat(n)),
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: hostileScalar },
  { weight: 2, arbitrary: fc.integer({ min: 40, max: 30_000 }).map(deepArray) },
  { weight: 2, arbitrary: fc.integer({ min: 40, max: 10_000 }).map(deepObject) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(hostileScalar, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), hostileScalar, { maxKeys: 4 }) },
  { weight: 1, arbitrary: fc.constant(Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, i]))) },
);

const futureIso = fc.date({ min: new Date('2031-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true });

/** Values for properties known by name: mostly plausible, often subtly wrong. */
const DOMAIN: Record<string, fc.Arbitrary<unknown>> = {
  cron: fc.oneof(
    fc.constantFrom(
      '*/5 * * * *',
      '0 9 * * 1-5',
      '*/10 * * * * *',
      '0 0 29 2 *',
      '0 0 30 2 *',
      '0 0 31 4 *',
      '61 * * * *',
      '* * * *',
      '* * * * * * *',
      '@daily',
      '@reboot',
      'a b c d e',
      '*/0 * * * *',
      '5-1 * * * *',
      '0 0 L * *',
      '0 0 * * 5#3',
      '0 0 ? * MON',
      '99999999999999999999 * * * *',
      '',
      '\t* * *\n* *',
      '0 0 1 1 * 2099',
    ),
    fc
      .array(
        fc.constantFrom('*', '*/5', '0', '59', '60', '1-5', 'MON', 'JAN', 'L', '#', '?', 'W', '1,2,3', '5-1', '*/0', '-1', '1/1', 'x'),
        {
          minLength: 1,
          maxLength: 8,
        },
      )
      .map((a) => a.join(' ')),
  ),
  timezone: fc.constantFrom(
    'UTC',
    'Europe/Berlin',
    'America/New_York',
    'Asia/Kolkata',
    'europe/berlin',
    'Etc/GMT+14',
    'Etc/GMT-14',
    '+05:00',
    'EST',
    'Mars/Olympus_Mons',
    '',
    ' UTC',
    'Europe/../../etc/passwd',
    'A'.repeat(1000),
    '\u0000',
    'Asia/Calcutta',
    'Z',
    'GMT+25',
  ),
  run_at: fc.oneof(
    futureIso.map((d) => d.toISOString()),
    futureIso.map((d) => d.toISOString().slice(0, 19)),
    fc.constantFrom(
      '2031-02-30T00:00:00',
      '2031-13-01T00:00:00Z',
      '2031-01-01T24:00:00Z',
      '2031-01-01T23:59:60Z',
      '2031-01-01T00:00:00+25:00',
      '9999-12-31T23:59:59Z',
      '+275760-09-13T00:00:00Z',
      '0000-01-01T00:00:00Z',
      '2031-03-30T02:30:00',
      '2001-01-01T00:00:00Z',
      'yesterday',
      'now',
      '1e10',
      '2031-01-01',
      '2031-01-01T00:00:00.123456789Z',
    ),
  ),
  endpoint: fc.constantFrom(
    'https://example.com/hooks/x',
    'http://127.0.0.1:9/x',
    'http://[::1]:9/x',
    'http://0x7f000001/',
    'http://user:pass@example.com/',
    'ftp://example.com/x',
    'javascript:alert(1)',
    'file:///etc/passwd',
    'http://',
    'https://exa mple.com',
    'https://例え.jp/パス',
    `https://example.com/${'a'.repeat(3000)}`,
    `https://example.com/${'a'.repeat(2020)}`,
    'example.com/x',
    '',
  ),
  http_method: fc.constantFrom('POST', 'PUT', 'PATCH', 'GET', 'DELETE', 'TRACE', 'CONNECT', 'get', ''),
  headers: fc.oneof(
    fc.dictionary(
      fc.constantFrom('X-A', 'X-Trace', 'Authorization', 'Content-Length', 'Host', 'a b', 'x\r\ny', '', 'é'),
      fc.oneof(fc.string({ maxLength: 20 }), hostileScalar),
      {
        maxKeys: 4,
      },
    ),
    fc.constant(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`X-H${i}`, 'v']))),
    fc.constant({ 'X-A': 'a\r\nInjected: 1' }),
    fc.constant({ 'X-A': 'v'.repeat(5000) }),
  ),
  secret: fc.oneof(
    fc.integer({ min: 0, max: 300 }).map((n) => 's'.repeat(n)),
    fc.constantFrom('short', 'é'.repeat(20), '\u0000'.repeat(20)),
  ),
  name: fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.integer({ min: 250, max: 300 }).map((n) => 'n'.repeat(n)),
    fc.constant('😀'.repeat(255)),
  ),
  misfire_policy: fc.constantFrom('fire_once', 'skip', 'fire_all', 'FIRE_ONCE', ''),
  payload: fc.oneof(fc.jsonValue({ maxDepth: 4 }), hostileValue, fc.constant({ order_id: 'A-1', amount: 3 })),
  schema: fc.oneof(
    fc.constantFrom<unknown>(
      {},
      true,
      false,
      { type: 'object', required: ['a'], properties: { a: { type: 'string', pattern: '^[a-z]+$' } } },
      { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'array', prefixItems: [{ type: 'integer' }] },
      { $schema: 'http://json-schema.org/draft-04/schema#', type: 'object' },
      { type: 'string', pattern: '(a+)+$' },
      { type: 'string', pattern: '[' },
      { type: 'string', pattern: '(?<=a)b' },
      { patternProperties: { '(x|xx)+': {} } },
      { $ref: '#' },
      { $defs: { a: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' },
      { definitions: { a: { $ref: '#/definitions/b' }, b: { $ref: '#/definitions/a' } }, $ref: '#/definitions/a' },
      { $ref: 'http://127.0.0.1:9/schema.json' },
      { $async: true, type: 'object' },
      { type: 'nope' },
      { format: 'no-such-format' },
      { $id: 'http://example.com/fixed', type: 'object' },
      { properties: { __proto__: { type: 'string' } }, required: ['constructor'] },
      { type: 'array', uniqueItems: true },
      { enum: Array.from({ length: 3000 }, (_, i) => ({ v: i })) },
    ),
    fc.integer({ min: 30, max: 40 }).map((d) => {
      let s: Record<string, unknown> = {};
      for (let i = 0; i < d; i++) s = { not: s };
      return s;
    }),
    fc.constant({ description: 'x'.repeat(70_000) }),
    hostileValue,
  ),
  timeout_ms: fc.constantFrom(100, 99, 60_000, 60_001, 0, -1, 1.5, '1000', 1e308, raw('1e400')),
  interval_seconds: fc.constantFrom(1, 0, -5, 31_536_000, 31_536_001, 2 ** 53, 0.5, '60', raw('1e400')),
  delay_seconds: fc.constantFrom(0, 1, 10, -1, 31_536_000, 31_536_001, 2 ** 53, 0.1, '10', raw('123456789012345678901234567890')),
  max_backfill: fc.constantFrom(1, 0, 1000, 1001, -1, 1.5, '5'),
  max_attempts: fc.constantFrom(1, 0, 20, 21, -1, 1.5),
  backoff_ms: fc.constantFrom(10, 9, 3_600_000, 3_600_001, -1),
  events: fc.oneof(
    fc.array(fc.oneof(fc.constant({ order_id: 'A-1' }), fc.jsonValue({ maxDepth: 2 }), hostileScalar), { minLength: 0, maxLength: 8 }),
    fc.constant(Array.from({ length: 501 }, () => ({}))),
    fc.constant(Array.from({ length: 500 }, (_, i) => ({ order_id: `A-${i}` }))),
  ),
};

/** Valid values for the same names, so a case that bends one field gets past all the others. */
const VALID: Record<string, fc.Arbitrary<unknown>> = {
  cron: fc.constantFrom('*/5 * * * *', '0 9 * * 1-5', '*/10 * * * * *', '0 0 1 1 *', '30 2 * * SUN'),
  timezone: fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe'),
  run_at: futureIso.map((d) => d.toISOString()),
  endpoint: fc.constantFrom('https://example.com/hooks/x', 'http://127.0.0.1:9/x', 'https://example.com:8443/a?b=c'),
  http_method: fc.constantFrom('POST', 'PUT', 'PATCH', 'GET', 'DELETE'),
  headers: fc.dictionary(
    fc.constantFrom('X-A', 'X-Trace', 'Authorization'),
    fc.string({ maxLength: 20 }).map((v) => v.replace(/[\r\n\0]/g, '')),
    { maxKeys: 3 },
  ),
  secret: fc.constantFrom('0123456789abcdef', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'),
  name: fc.string({ minLength: 1, maxLength: 30 }),
  misfire_policy: fc.constantFrom('fire_once', 'skip', 'fire_all'),
  payload: fc.jsonValue({ maxDepth: 3 }),
  schema: fc.constantFrom<unknown>(
    {},
    true,
    { type: 'object', required: ['a'], properties: { a: { type: 'string', pattern: '^[a-z]+$' } } },
    { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'array', prefixItems: [{ type: 'integer' }] },
  ),
  timeout_ms: fc.integer({ min: 100, max: 60_000 }),
  interval_seconds: fc.integer({ min: 1, max: 31_536_000 }),
  delay_seconds: fc.integer({ min: 0, max: 31_536_000 }),
  max_backfill: fc.integer({ min: 1, max: 1000 }),
  max_attempts: fc.integer({ min: 1, max: 20 }),
  backoff_ms: fc.integer({ min: 10, max: 3_600_000 }),
  events: fc.array(fc.oneof(fc.constant({ order_id: 'A-1' }), fc.jsonValue({ maxDepth: 2 })), { minLength: 1, maxLength: 8 }),
};

/**
 * How hostile one case is: 0 builds a request that conforms to the spec (with valid domain values), and
 * each level up makes every bendable part (each value, field set, header, content type, query, path
 * parameter) likelier to be bent. Most cases bend a little, so they reach the deep checks.
 */
type Level = 0 | 1 | 2 | 3;

function mix<T>(level: Level, clean: fc.Arbitrary<T>, bent: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return level === 0 ? clean : fc.oneof({ weight: 9 - 2 * level, arbitrary: clean }, { weight: level, arbitrary: bent });
}

function named(name: string, level: Level): fc.Arbitrary<unknown> | undefined {
  const valid = VALID[name === 'start_at' ? 'run_at' : name];
  const bent = DOMAIN[name === 'start_at' ? 'run_at' : name];
  if (!valid || !bent) return undefined;
  return mix(level, valid, fc.oneof({ weight: 3, arbitrary: bent }, { weight: 1, arbitrary: hostileValue }));
}

const TYPES = ['webhook', 'time_scheduled', 'cron_scheduled', 'interval_scheduled'] as const;
const TYPE_KEYS: Record<(typeof TYPES)[number], string[]> = {
  webhook: ['schema', 'secret'],
  time_scheduled: ['run_at', 'delay_seconds', 'timezone', 'payload'],
  cron_scheduled: ['cron', 'timezone', 'payload', 'misfire_policy', 'max_backfill'],
  interval_scheduled: ['interval_seconds', 'start_at', 'timezone', 'payload', 'misfire_policy', 'max_backfill'],
};
const COMMON_KEYS = ['http_method', 'headers', 'timeout_ms', 'retry'];

/** A trigger config shaped for its type, so cases get past the shape checks into the domain rules. */
function typedConfig(type: (typeof TYPES)[number], level: Level): fc.Arbitrary<Record<string, unknown>> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const k of ['endpoint', ...TYPE_KEYS[type], ...COMMON_KEYS]) {
    model[k] =
      k === 'retry'
        ? mix(
            level,
            fc.record({ max_attempts: named('max_attempts', level)!, backoff_ms: named('backoff_ms', level)! }, { requiredKeys: [] }),
            hostileValue,
          )
        : (named(k, level) ?? hostileValue);
  }
  // time_scheduled needs exactly one of run_at / delay_seconds: a clean case picks one.
  const required =
    type === 'webhook'
      ? ['endpoint', 'schema']
      : type === 'cron_scheduled'
        ? ['endpoint', 'cron']
        : type === 'interval_scheduled'
          ? ['endpoint', 'interval_seconds']
          : ['endpoint'];
  const record = fc.record(model, { requiredKeys: required }).map((cfg) => {
    if (type === 'time_scheduled' && level === 0) {
      const { run_at, delay_seconds, ...rest } = cfg;
      return run_at !== undefined ? { ...rest, run_at } : { ...rest, delay_seconds: delay_seconds ?? 60 };
    }
    return cfg;
  });
  return record.chain((cfg) => mutateObject(cfg, level));
}

/** Drops a key, adds an unknown one, or sets one to a hostile value (or, mostly, none of these). */
function mutateObject(obj: Record<string, unknown>, level: Level): fc.Arbitrary<Record<string, unknown>> {
  if (level === 0) return fc.constant(obj);
  const keys = Object.keys(obj);
  return fc.oneof(
    { weight: 12 - 3 * level, arbitrary: fc.constant(obj) },
    {
      weight: 1,
      arbitrary: keys.length
        ? fc.constantFrom(...keys).map((k) => Object.fromEntries(Object.entries(obj).filter(([x]) => x !== k)))
        : fc.constant(obj),
    },
    { weight: 1, arbitrary: fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), hostileValue).map(([k, v]) => ({ ...obj, [k]: v })) },
    {
      weight: 1,
      arbitrary: keys.length ? fc.tuple(fc.constantFrom(...keys), hostileValue).map(([k, v]) => ({ ...obj, [k]: v })) : fc.constant(obj),
    },
  );
}

/** A value for a schema of the spec: conforming at level 0, bent more often the higher the level. */
function fromSchema(node: SpecNode, name: string | undefined, depth: number, level: Level): fc.Arbitrary<unknown> {
  const byName = name ? named(name, level) : undefined;
  if (byName) return byName;
  return mix(level, conforming(resolveRef(node) ?? {}, depth, level), hostileValue);
}

function conforming(s: SpecNode, depth: number, level: Level): fc.Arbitrary<unknown> {
  if (depth > 4) return fc.jsonValue({ maxDepth: 1 });
  if (Array.isArray(s.enum)) return fc.constantFrom(...(s.enum as unknown[]));
  if (Array.isArray(s.allOf) && s.allOf.length > 0) return conforming(resolveRef(s.allOf[0]), depth, level);
  const alts = (s.oneOf ?? s.anyOf) as SpecNode[] | undefined;
  if (Array.isArray(alts) && alts.length > 0) return fc.oneof(...alts.map((a) => conforming(resolveRef(a), depth, level)));
  const types: string[] = Array.isArray(s.type) ? s.type : s.type ? [s.type] : s.properties ? ['object'] : [];
  if (types.length === 0) return fc.jsonValue({ maxDepth: 3 });
  return fc.oneof(...types.map((t) => conformingOfType(s, t, depth, level)));
}

function conformingOfType(s: SpecNode, type: string, depth: number, level: Level): fc.Arbitrary<unknown> {
  switch (type) {
    case 'string':
      if (s.format === 'uuid') return fc.uuid();
      if (s.format === 'date-time') return futureIso.map((d) => d.toISOString());
      if (typeof s.pattern === 'string') return fc.stringMatching(new RegExp(s.pattern), { maxLength: Math.min(s.maxLength ?? 40, 40) });
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 40) });
    case 'integer':
      return fc.integer({ min: s.minimum ?? -1_000_000, max: s.maximum ?? 1_000_000 });
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(fromSchema(s.items ?? {}, undefined, depth + 1, level), {
        minLength: s.minItems ?? 0,
        maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 4, 4)),
      });
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, SpecNode>;
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) model[k] = fromSchema(v, k, depth + 1, level);
      const required = ((s.required ?? []) as string[]).filter((k) => k in model);
      return fc.record(model, { requiredKeys: required }).chain((o) => mutateObject(o as Record<string, unknown>, level));
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

// ------------------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------------------

interface FuzzRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  /** Raw body bytes, if any; `sign` asks for a valid webhook signature over them. */
  body?: Buffer;
  sign?: 'x-signature' | 'standard';
  /** Only the status classes are checked (the request may leave the operation's declared shape). */
  offSpec?: boolean;
}

interface Fixtures {
  triggers: Record<'webhook' | 'webhookSecret' | 'webhookOpen' | 'webhookInactive' | 'cron' | 'time' | 'interval', string>;
  events: string[];
}

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8'];
const OTHER_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/merge-patch+json',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'application/xml',
  'a/b/c',
  ';;;',
  'application/JSON',
];

function pathValue(fx: Fixtures, param: { name: string }, level: Level): fc.Arbitrary<string> {
  // A webhook id mostly names a trigger that accepts anything, so hostile payloads get all the way in.
  const t = fx.triggers;
  const known =
    param.name === 'trigger_id'
      ? [...Array<string>(6).fill(t.webhookOpen), t.webhook, t.webhook, t.webhookSecret, t.webhookSecret, t.webhookInactive, t.cron]
      : [...Object.values(t), ...fx.events];
  const garbage = fc.oneof(
    fc.constantFrom(
      'test',
      '0',
      'null',
      '..',
      '%2e%2e',
      'ÿ',
      randomUUID().toUpperCase(),
      '00000000-0000-0000-0000-000000000000',
      '%E0%A4%A',
      '%',
      '%00',
    ),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).map((s) => encodeURIComponent(wellFormed(s))),
    fc.integer({ min: 100, max: 3000 }).map((n) => 'a'.repeat(n)),
  );
  return mix(level, fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: fc.uuid() }), garbage);
}

function queryString(op: SpecOperation, level: Level): fc.Arbitrary<string> {
  const params = op.params.filter((p) => p.in === 'query');
  const pairs = params.map((p) =>
    fc.option(
      mix(
        level,
        fromSchema(p.schema, p.name, 0, level).map((v) => [
          `${encodeURIComponent(p.name)}=${encodeURIComponent(wellFormed(toPlainText(v)))}`,
        ]),
        fc.constantFrom<string[]>(
          [`${p.name}=1`, `${p.name}=2`],
          [`${p.name}[]=1`],
          [`${p.name}[a][b]=1`],
          [`${p.name}`],
          [`${p.name}=`],
          [`${p.name}=%ZZ`],
        ),
      ),
      { freq: 2 },
    ),
  );
  const extra = mix(
    level,
    fc.constant([] as string[]),
    fc.constantFrom(
      ['unknown=1'],
      ['a[b][c][d][e][f][g]=1'],
      ['__proto__[x]=1'],
      Array.from({ length: 1100 }, (_, i) => `p${i}=1`),
      ['x='.padEnd(6000, 'x')],
    ),
  );
  return fc.tuple(fc.tuple(...pairs), extra).map(([ps, ex]) => {
    const parts = [...ps.flatMap((p) => p ?? []), ...ex];
    return parts.length ? `?${parts.join('&')}` : '';
  });
}

/** Printable latin-1 (what an HTTP client can put in a header value). */
const headerText = fc.string({
  unit: fc
    .integer({ min: 0x20, max: 0xff })
    .filter((c) => c < 0x7f || c >= 0xa0)
    .map((c) => String.fromCharCode(c)),
  maxLength: 300,
});

const authHeaders = (level: Level): fc.Arbitrary<Record<string, string>> =>
  mix(
    level,
    fc.constantFrom({ authorization: `Bearer ${API_KEY}` }, { 'x-api-key': API_KEY }, { authorization: `bearer   ${API_KEY}` }),
    fc.oneof(
      fc.constant({}),
      fc.constant({ authorization: `Basic ${Buffer.from(`u:${API_KEY}`).toString('base64')}` }),
      fc.constant({ authorization: `Bearer ${API_KEY}x` }),
      fc.constant({ authorization: 'Bearer' }),
      headerText.map((v) => ({ authorization: v })),
      headerText.map((v) => ({ 'x-api-key': v })),
    ),
  );

const extraHeaders = (level: Level): fc.Arbitrary<Record<string, string>> =>
  mix(
    level,
    fc.record<Record<string, string>>(
      { 'x-request-id': fc.constantFrom('req-1', randomUUID()), 'idempotency-key': fc.uuid() },
      { requiredKeys: [] },
    ),
    fc.record(
      {
        'x-request-id': headerText,
        'idempotency-key': fc.oneof(fc.uuid(), headerText, fc.constant('k'.repeat(256))),
        'x-signature': fc.oneof(fc.constant(`sha256=${'0'.repeat(64)}`), headerText),
        'webhook-id': headerText,
        'webhook-timestamp': fc.oneof(
          fc.constant(String(Math.floor(Date.now() / 1000))),
          fc.constantFrom('0', '-1', '99999999999999999999', '1e9'),
          headerText,
        ),
        'webhook-signature': fc.oneof(fc.constant(`v1,${'A'.repeat(44)}`), headerText),
        'content-encoding': fc.constantFrom('gzip', 'br', 'deflate', 'identity', 'x-unknown'),
        origin: fc.constant('https://evil.example'),
      },
      { requiredKeys: [] },
    ),
  );

function bodyFor(op: SpecOperation, level: Level): fc.Arbitrary<{ body?: Buffer; contentType?: string; sign?: FuzzRequest['sign'] }> {
  if (!op.body) return fc.constant({});
  const schemaNode = resolveRef(op.body.schema);
  const isTriggerDefinition = schemaNode && schemaNode.properties && 'config' in schemaNode.properties && 'type' in schemaNode.properties;
  const required = ((schemaNode?.required ?? []) as string[]).filter((k) => k !== 'config');
  const typed = () =>
    fc
      .oneof(
        ...TYPES.map((type) =>
          fc.record<Record<string, unknown>>(
            {
              name: named('name', level)!,
              type: fc.constant(type),
              config: typedConfig(type, level),
              ...('payload' in schemaNode.properties ? { payload: named('payload', level)! } : {}),
            },
            { requiredKeys: [...new Set([...required, 'config'])] },
          ),
        ),
      )
      .chain((o) => mutateObject(o, level));
  const value = isTriggerDefinition
    ? fc.oneof({ weight: 3, arbitrary: typed() }, { weight: 1, arbitrary: fromSchema(op.body.schema, undefined, 0, level) })
    : op.template.includes('/webhook/') && !op.template.endsWith('/batch')
      ? fc.oneof(named('payload', level)!, hostileValue, fc.record({ order_id: fc.constantFrom('A-1', 'A-22', 'b') }))
      : fromSchema(op.body.schema, undefined, 0, level);
  const text = value.map(toJsonText);
  const shaped = mix(
    level,
    text.map((t) => Buffer.from(t)),
    fc.oneof(
      fc.tuple(text, fc.nat()).map(([t, n]) => Buffer.from(t.slice(0, t.length > 1 ? n % t.length : 0))),
      fc.constantFrom(
        Buffer.alloc(0),
        Buffer.from('{'),
        Buffer.from('{"name": "x", '),
        Buffer.from('\ufeff{"a":1}'),
        Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
        Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]),
        Buffer.from('{"a":1}{"b":2}'),
        Buffer.from('NaN'),
        Buffer.from('{"a":1,"a":2}'),
        Buffer.from(`{"x":"${'y'.repeat(MAX_BODY)}"}`),
      ),
    ),
  );
  const contentType = mix(level, fc.constantFrom<string | undefined>(...JSON_TYPES), fc.constantFrom(...OTHER_TYPES, undefined));
  const sign = fc.constantFrom<FuzzRequest['sign']>('x-signature', 'standard', undefined);
  const present = fc.record({ body: shaped, contentType, sign });
  return op.body.required
    ? mix(level, present, fc.constant({}))
    : fc.oneof({ weight: 3, arbitrary: present }, { weight: 1, arbitrary: fc.constant({}) });
}

function requestFor(op: SpecOperation, fx: Fixtures): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.params.filter((p) => p.in === 'path');
  // Arbitraries are built once per level (building them per case, in a chain, costs more than the request).
  const build = (level: Level) => {
    const path = fc.tuple(...pathParams.map((p) => pathValue(fx, p, level))).map((values) => {
      let out = op.template;
      pathParams.forEach((p, i) => (out = out.replace(`{${p.name}}`, values[i]!)));
      return out;
    });
    return fc
      .record({ path, query: queryString(op, level), auth: authHeaders(level), extra: extraHeaders(level), body: bodyFor(op, level) })
      .map(({ path: p, query, auth, extra, body }) => {
        const headers: Record<string, string> = { ...extra, ...auth };
        if (body.body === undefined) delete headers['content-encoding'];
        if (body.contentType) headers['content-type'] = body.contentType;
        return { method: op.method, path: p, query, headers, body: body.body, sign: body.sign };
      });
  };
  return fc.oneof(
    { weight: 3, arbitrary: build(0) },
    { weight: 4, arbitrary: build(1) },
    { weight: 2, arbitrary: build(2) },
    { weight: 1, arbitrary: build(3) },
  );
}

// ------------------------------------------------------------------------------------------------------
// The run
// ------------------------------------------------------------------------------------------------------

interface Finding {
  operation: string;
  problem: string;
  request: string;
  response: string;
}

describe('fuzzing the API from openapi.yaml (fast-check)', function () {
  this.timeout(120_000);
  let t: TestEnv;
  let server: http.Server;
  let fx: Fixtures;
  let tables: string[];
  let snapshot: Map<string, Record<string, unknown>[]>;
  let baseline: string;
  const findings: Finding[] = [];
  const crashes: string[] = [];
  let cases = 0;
  let resets = 0;
  const timing = { send: 0, reset: 0, checksum: 0 };
  const statusCounts = new Map<string, number>();
  const onUncaught = (e: unknown) => crashes.push(`uncaught: ${String((e as Error)?.stack ?? e)}`);
  const onUnhandled = (e: unknown) => crashes.push(`unhandled rejection: ${String((e as Error)?.stack ?? e)}`);
  const ops = apiOperations();

  async function checksum(): Promise<string> {
    const [rows] = (await t.db.raw(`CHECKSUM TABLE ${tables.map(() => '??').join(', ')}`, tables)) as [
      Array<{ Table: string; Checksum: number }>,
    ];
    return rows.map((r) => `${r.Table}=${r.Checksum}`).join(';');
  }

  /** Puts every table back to the fixture snapshot (after an accepted write). */
  async function reset(): Promise<void> {
    resets++;
    await t.db.transaction(async (trx) => {
      await trx.raw('SET FOREIGN_KEY_CHECKS = 0');
      // The rollups last: re-inserting event_logs and triggers counts their rows again (their triggers), and
      // the snapshot of the rollups has them counted already.
      const rollups = ['event_counts', 'trigger_event_counts', 'trigger_counts'];
      for (const table of [...tables.filter((x) => !rollups.includes(x)), ...rollups]) {
        await trx(table).del();
        const rows = snapshot.get(table)!;
        if (rows.length) await trx(table).insert(rows);
      }
      await trx.raw('SET FOREIGN_KEY_CHECKS = 1');
    });
  }

  function describeRequest(r: FuzzRequest): string {
    const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…(${s.length})` : s);
    const body = r.body ? r.body.toString('utf8') : '';
    return `${r.method.toUpperCase()} ${cut(r.path, 120)}${cut(r.query, 120)} ${cut(JSON.stringify(r.headers), 400)} body(${r.body?.length ?? 0})=${cut(body, 400)}`;
  }

  function signed(r: FuzzRequest): Record<string, string> {
    if (!r.sign || !r.body) return r.headers;
    if (r.sign === 'x-signature')
      return { ...r.headers, 'x-signature': `sha256=${createHmac('sha256', SECRET).update(r.body).digest('hex')}` };
    const id = `msg_${randomUUID()}`;
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = createHmac('sha256', SECRET).update(`${id}.${ts}.`).update(r.body).digest('base64');
    return { ...r.headers, 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': `v1,${sig}` };
  }

  async function send(r: FuzzRequest): Promise<request.Response> {
    const agent = request(server);
    let test = (agent as unknown as Record<string, (url: string) => request.Test>)[r.method]!(`${r.path}${r.query}`);
    for (const [k, v] of Object.entries(signed(r))) test = test.set(k, v);
    // The bytes as they are: superagent would otherwise JSON-encode a Buffer ({"type":"Buffer",…}).
    if (r.body !== undefined) test = test.serialize((b: unknown) => b as string).send(r.body);
    return test;
  }

  /** Statuses the spec declares for the operations that this concrete path and method reach. */
  function declared(r: FuzzRequest): Map<string, string[]> | null {
    const out = new Map<string, string[]>();
    for (const op of ops) {
      if (op.method !== r.method || !templateRegExp(op.template).test(r.path)) continue;
      for (const [s, types] of Object.entries(op.responses)) out.set(s, [...(out.get(s) ?? []), ...types]);
    }
    // A concrete path can also match a literal sibling (PUT /triggers/test): there the method may be 405.
    for (const [template, item] of Object.entries(SPEC.paths as Record<string, SpecNode>)) {
      if (templateRegExp(template).test(r.path) && !item[r.method] && !out.has('405')) out.set('405', ['application/problem+json']);
    }
    return out.size ? out : null;
  }

  async function check(op: SpecOperation, r: FuzzRequest): Promise<void> {
    cases++;
    const before = baseline;
    let res: request.Response;
    const started = Date.now();
    try {
      res = await send(r);
    } catch (e) {
      findings.push({
        operation: op.operationId,
        problem: `request failed: ${(e as Error).message}`,
        request: describeRequest(r),
        response: '',
      });
      return;
    }
    const key = `${op.operationId} ${res.status}`;
    if (process.env.FUZZ_TRACE && op.operationId === process.env.FUZZ_TRACE)
      console.log(res.status, describeRequest(r).slice(0, 600), '=>', (res.text ?? '').slice(0, 300));
    statusCounts.set(key, (statusCounts.get(key) ?? 0) + 1);
    const text = res.text ?? '';
    const problems: string[] = [];
    if (res.status >= 500) problems.push(`answered ${res.status}`);
    if (text.includes(SECRET)) problems.push('the webhook secret appears in the response');
    if (text.includes(API_KEY)) problems.push('the API key appears in the response');
    const contentType = String(res.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    if (!r.offSpec && res.status !== 431) {
      const d = declared(r);
      const types = d?.get(String(res.status)) ?? d?.get('default');
      if (d && !types) problems.push(`status ${res.status} is not declared for this operation`);
      else if (types && types.length > 0 && text.length > 0 && !types.includes(contentType)) {
        problems.push(`content-type ${contentType} is not declared for ${res.status} (${types.join(', ')})`);
      }
    }
    if (contentType === 'application/problem+json' && text.length > 0) {
      const p = JSON.parse(text) as { status?: number; code?: string };
      const entry = p.code ? (ERRORS as Record<string, { status: number }>)[p.code] : undefined;
      if (p.status !== res.status) problems.push(`problem.status ${p.status} differs from the HTTP status`);
      if (!entry || entry.status !== res.status) problems.push(`problem.code ${p.code} is not catalogued with status ${res.status}`);
    }
    const isWrite = r.method !== 'get';
    const t1 = Date.now();
    timing.send += t1 - started;
    if (res.status >= 200 && res.status < 300 && isWrite) {
      await reset();
      timing.reset += Date.now() - t1;
    } else {
      const after = await checksum();
      timing.checksum += Date.now() - t1;
      if (after !== before) {
        problems.push(`the database changed (${before} -> ${after})`);
        await reset();
      }
    }
    for (const problem of problems) {
      findings.push({ operation: op.operationId, problem, request: describeRequest(r), response: `${res.status} ${text.slice(0, 300)}` });
    }
  }

  before(async () => {
    t = await createTestEnv('fuzz', {
      API_KEYS: API_KEY,
      WEBHOOK_MAX_BODY_BYTES: String(MAX_BODY),
      RATE_LIMIT_PER_KEY: '0',
      RATE_LIMIT_PER_WEBHOOK: '0',
    });
    const app = testApp(t);
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUnhandled);

    const auth = { authorization: `Bearer ${API_KEY}` };
    const create = async (body: Record<string, unknown>) => {
      const res = await request(server).post('/api/v1/triggers').set(auth).send(body);
      expect(res.status, res.text).to.equal(201);
      return (res.body as { id: string }).id;
    };
    const orderSchema = { type: 'object', required: ['order_id'], properties: { order_id: { type: 'string', pattern: '^A-\\d+$' } } };
    const ep = 'https://example.com/hooks';
    fx = {
      triggers: {
        webhook: await create({ name: 'fx-webhook', type: 'webhook', config: { endpoint: ep, schema: orderSchema } }),
        webhookSecret: await create({ name: 'fx-secret', type: 'webhook', config: { endpoint: ep, schema: true, secret: SECRET } }),
        webhookOpen: await create({ name: 'fx-open', type: 'webhook', config: { endpoint: ep, schema: {} } }),
        webhookInactive: await create({ name: 'fx-off', type: 'webhook', status: 'inactive', config: { endpoint: ep, schema: {} } }),
        cron: await create({
          name: 'fx-cron',
          type: 'cron_scheduled',
          config: { endpoint: ep, cron: '0 9 * * *', timezone: 'Europe/Berlin' },
        }),
        time: await create({ name: 'fx-time', type: 'time_scheduled', config: { endpoint: ep, delay_seconds: 3600, payload: { a: 1 } } }),
        interval: await create({ name: 'fx-interval', type: 'interval_scheduled', config: { endpoint: ep, interval_seconds: 60 } }),
      },
      events: [],
    };
    for (let i = 0; i < 3; i++) {
      const res = await request(server)
        .post(`/api/v1/webhook/${fx.triggers.webhook}`)
        .send({ order_id: `A-${i}` });
      expect(res.status).to.equal(202);
      fx.events.push((res.body as { event_id: string }).event_id);
    }
    const [rows] = (await t.db.raw(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ? AND table_name NOT LIKE 'knex\\_%'",
      [t.dbName],
    )) as [Array<{ name: string }>];
    // webhook_rejections is the log of rejected webhook calls: a rejection is meant to write it
    // (a moment after its answer), so it is left out of "a rejection changes nothing".
    tables = rows
      .map((r) => r.name)
      .filter((name) => name !== 'webhook_rejections')
      .sort();
    snapshot = new Map();
    for (const table of tables) snapshot.set(table, (await t.db(table).select()) as Record<string, unknown>[]);
    baseline = await checksum();
  });

  after(async () => {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUnhandled);
    if (server) await new Promise((resolve) => server.close(resolve));
    await t?.cleanup();
    const summary = [...statusCounts.entries()].map(([k, n]) => `${k}: ${n}`).join(', ');
    if (process.env.FUZZ_VERBOSE) console.log(JSON.stringify(timing));
    if (process.env.FUZZ_VERBOSE) console.log(`fuzz: ${cases} cases, ${resets} resets, seed ${SEED}; ${summary}`);
  });

  it('finds every operation of openapi.yaml to fuzz', () => {
    expect(ops.map((o) => o.operationId)).to.include.members(['createTrigger', 'listTriggers', 'fireWebhook', 'listEvents', 'getHealth']);
  });

  ops.forEach((op, index) => {
    it(`${op.method.toUpperCase()} ${op.template}: no 5xx, only declared statuses, no change on rejection`, async () => {
      await fc.assert(
        fc.asyncProperty(requestFor(op, fx), async (r) => {
          await check(op, r);
        }),
        { seed: SEED + index, numRuns: RUNS },
      );
      const mine = findings.filter((f) => f.operation === op.operationId);
      const distinct = new Map(mine.map((f) => [f.problem.replace(/\(.*\)$/, ''), f]));
      expect(
        [...distinct.values()].map((f) => `${f.problem}\n    request: ${f.request}\n    response: ${f.response}`),
        `findings (FUZZ_SEED=${SEED})`,
      ).to.deep.equal([]);
    });
  });

  it('survives hostile methods and paths (405/404, never 5xx)', async () => {
    const pathArb = fc.oneof(
      fc.constantFrom(...ops.map((o) => o.template.replace(/\{[^}]+\}/g, fx.triggers.webhook))),
      fc.constantFrom(
        '/api/v1',
        '/api/v1/',
        '/api/v1/triggers/',
        '/api/v1//triggers',
        '/api/v2/triggers',
        '/api/v1/webhook/',
        '/%',
        '/api/v1/%E0%A4%A',
        `/${'a'.repeat(5000)}`,
      ),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('get', 'post', 'put', 'patch', 'delete', 'options', 'head'),
        pathArb,
        fc.oneof(authHeaders(0), authHeaders(3)),
        fc.option(fc.constantFrom('{}', '{', 'null', '[]'), { nil: undefined }),
        async (method, path, auth, body) => {
          await check(
            { operationId: 'any', method: 'get', template: path, params: [], responses: {}, public: true },
            {
              method,
              path,
              query: '',
              headers: { ...auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
              body: body !== undefined ? Buffer.from(body) : undefined,
              offSpec: true,
            },
          );
        },
      ),
      { seed: SEED - 1, numRuns: Math.max(50, Math.round(RUNS / 2)) },
    );
    const mine = findings.filter((f) => f.operation === 'any');
    expect(mine.map((f) => `${f.problem}: ${f.request} -> ${f.response}`)).to.deep.equal([]);
  });

  it('survives malformed HTTP on the socket (truncated bodies, bad chunking, header floods) and keeps serving', async () => {
    const { port } = server.address() as net.AddressInfo;
    const webhook = `/api/v1/webhook/${fx.triggers.webhookOpen}`;
    const rawRequests = [
      // Content-Length promises more than is sent, then the client goes away.
      `POST ${webhook} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":`,
      // Chunked body cut in the middle of a chunk.
      `POST ${webhook} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"a":1`,
      // Invalid chunk size.
      `POST ${webhook} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n`,
      // Both Content-Length and chunked (request smuggling shape).
      `POST ${webhook} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
      // 2,000 headers and a 40 kB header.
      `GET /health HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 2000 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`,
      `GET /api/v1/triggers HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
      // Not HTTP at all.
      '\u0000\u0001\u0002 garbage\r\n\r\n',
    ];
    for (const text of rawRequests) {
      const answer = await new Promise<string>((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        let got = '';
        socket.setTimeout(2000, () => socket.destroy());
        socket.on('data', (d) => (got += d.toString('latin1')));
        socket.on('close', () => resolve(got));
        socket.on('error', () => resolve(got));
        socket.write(text, () => socket.end());
      });
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
      expect(status < 500, `${JSON.stringify(text.slice(0, 80))} -> ${answer.slice(0, 200)}`).to.equal(true);
    }
    expect(await checksum()).to.equal(baseline);
    const health = await request(server).get('/health');
    expect(health.status).to.equal(200);
    expect(crashes).to.deep.equal([]);
  });

  it('ran several thousand cases without a crash', () => {
    expect(crashes).to.deep.equal([]);
    expect(cases).to.be.greaterThan(Math.min(2000, RUNS * ops.length));
  });
});
