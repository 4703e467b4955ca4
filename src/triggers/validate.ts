/**
 * Validation and normalisation of a trigger's `config`. Pure (the caller passes `now`).
 *
 * Collects every problem rather than stopping at the first, each with the dotted path of the offending
 * field ('config.retry.max_attempts'), so the API can answer with one problem+json naming them all.
 * On success the config comes back normalised: every default filled in, cron patterns single-spaced, and
 * absent optional fields left out. `undefined` and `null` both count as "absent" for every field (so a
 * client may send `"delay_seconds": null` next to `run_at`, and a generated client that writes every field
 * of its model may send `"payload": null`); an absent payload is stored as null. A webhook's `has_secret`
 * (the read-only marker GET shows) is ignored, so a config read from GET can be sent back.
 */
import { payloadTooLarge } from '../kafka/message';
import { compileWebhookSchema } from './json-schema';
import { compileCron, firstOccurrence, isValidTimeZone, parseLocalDateTime } from './schedule';
import {
  HTTP_METHODS,
  MISFIRE_POLICIES,
  TRIGGER_TYPES,
  isTriggerType,
  type CommonConfig,
  type CronConfig,
  type FieldError,
  type HttpMethod,
  type IntervalConfig,
  type MisfirePolicy,
  type RecurringOptions,
  type RetryConfig,
  type TimeConfig,
  type TriggerConfig,
  type TriggerType,
  type WebhookConfig,
} from './types';

export type ValidationResult = { ok: true; config: TriggerConfig } | { ok: false; errors: FieldError[] };

/** Limits, in one place. */
export const LIMITS = {
  endpointMaxLength: 2048,
  maxHeaders: 50,
  headerValueMaxLength: 4096,
  timeoutMs: { min: 100, max: 60_000, default: 10_000 },
  maxAttempts: { min: 1, max: 20, default: 5 },
  backoffMs: { min: 10, max: 3_600_000, default: 1000 },
  secretLength: { min: 16, max: 256 },
  delaySeconds: { min: 0, max: 31_536_000 },
  intervalSeconds: { min: 1, max: 31_536_000 },
  maxBackfill: { min: 1, max: 1000, default: 100 },
  jitterSeconds: { min: 0, max: 3600 },
  maxAgeSeconds: { min: 1, max: 31_536_000 },
  deliveryRatePerSecond: { min: 1, max: 10_000 },
  deliveryMaxConcurrency: { min: 1, max: 1000 },
  /** How far in the past a `run_at` may be and still be accepted (it then fires at once). */
  runAtPastToleranceMs: 60_000,
} as const;

const COMMON_KEYS = [
  'endpoint',
  'http_method',
  'headers',
  'timeout_ms',
  'retry',
  'delivery_rate_per_second',
  'delivery_max_concurrency',
  'ordered_delivery',
] as const;
const TYPE_KEYS: Record<TriggerType, readonly string[]> = {
  webhook: ['schema', 'secret'],
  time_scheduled: ['run_at', 'delay_seconds', 'timezone', 'payload'],
  cron_scheduled: ['cron', 'timezone', 'payload', 'misfire_policy', 'max_backfill', 'start_at', 'end_at', 'jitter_seconds'],
  interval_scheduled: ['interval_seconds', 'start_at', 'timezone', 'payload', 'misfire_policy', 'max_backfill', 'end_at', 'jitter_seconds'],
};
const RETRY_KEYS = ['max_attempts', 'backoff_ms', 'max_age_seconds'];

/** RFC 9110 token: the characters a header name may use. */
const HTTP_TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

type Obj = Record<string, unknown>;

function isPlainObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function absent(v: unknown): v is undefined | null {
  return v === undefined || v === null;
}

class Errors {
  readonly list: FieldError[] = [];
  add(field: string, message: string): void {
    this.list.push({ field, message });
  }
}

/** Keys of `obj` outside `allowed` (null-valued ones count as absent); a key of another trigger type says so. */
function unknownKeys(obj: Obj, allowed: readonly string[], prefix: string, errors: Errors, type?: TriggerType): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key) || obj[key] === null) continue;
    const owners = type === undefined ? [] : TRIGGER_TYPES.filter((t) => TYPE_KEYS[t].includes(key));
    errors.add(
      `${prefix}.${key}`,
      owners.length > 0 ? `only ${owners.join(', ')} triggers have this property, not ${type}` : 'unknown property',
    );
  }
}

/** An integer in [min, max]; `fallback` when absent (undefined: required). Returns undefined on error. */
function integer(
  obj: Obj,
  key: string,
  field: string,
  range: { min: number; max: number },
  fallback: number | undefined,
  errors: Errors,
): number | undefined {
  const v = obj[key];
  if (absent(v)) {
    if (fallback === undefined) errors.add(field, 'is required');
    return fallback;
  }
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    errors.add(field, 'must be an integer');
    return undefined;
  }
  if (v < range.min || v > range.max) {
    errors.add(field, `must be between ${range.min} and ${range.max}`);
    return undefined;
  }
  return v;
}

function oneOf<T extends string>(obj: Obj, key: string, field: string, values: readonly T[], fallback: T, errors: Errors): T {
  const v = obj[key];
  if (absent(v)) return fallback;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    errors.add(field, `must be one of ${values.join(', ')}`);
  }
  return v as T;
}

function endpoint(obj: Obj, errors: Errors): string {
  const v = obj.endpoint;
  if (absent(v)) {
    errors.add('config.endpoint', 'is required');
  } else if (typeof v !== 'string') {
    errors.add('config.endpoint', 'must be a string');
  } else if (v.length > LIMITS.endpointMaxLength) {
    errors.add('config.endpoint', `must be at most ${LIMITS.endpointMaxLength} characters`);
  } else {
    let url: URL | undefined;
    try {
      url = new URL(v);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
      errors.add('config.endpoint', 'must be an absolute http or https URL');
    }
  }
  return v as string;
}

function headers(obj: Obj, errors: Errors): Record<string, string> {
  const v = obj.headers;
  if (absent(v)) return {};
  if (!isPlainObject(v)) {
    errors.add('config.headers', 'must be an object of header names to string values');
    return {};
  }
  const names = Object.keys(v);
  if (names.length > LIMITS.maxHeaders) errors.add('config.headers', `must have at most ${LIMITS.maxHeaders} headers`);
  const seen = new Set<string>();
  const out: Record<string, string> = {};
  for (const name of names) {
    const field = `config.headers.${name}`;
    const value = v[name];
    if (!HTTP_TOKEN_RE.test(name)) errors.add(field, 'is not a valid HTTP header name');
    else if (seen.has(name.toLowerCase())) errors.add(field, 'duplicates another header (names are case-insensitive)');
    seen.add(name.toLowerCase());
    if (typeof value !== 'string') errors.add(field, 'must be a string');
    else if (value.length > LIMITS.headerValueMaxLength) {
      errors.add(field, `must be at most ${LIMITS.headerValueMaxLength} characters`);
    } else if (/[\r\n\0]/.test(value)) errors.add(field, 'must not contain CR, LF or NUL');
    else out[name] = value;
  }
  return out;
}

function retry(obj: Obj, errors: Errors): RetryConfig {
  const v = obj.retry;
  const r: Obj = absent(v) ? {} : isPlainObject(v) ? v : {};
  if (!absent(v) && !isPlainObject(v)) errors.add('config.retry', 'must be an object');
  unknownKeys(r, RETRY_KEYS, 'config.retry', errors);
  const out: RetryConfig = {
    max_attempts: integer(r, 'max_attempts', 'config.retry.max_attempts', LIMITS.maxAttempts, LIMITS.maxAttempts.default, errors)!,
    backoff_ms: integer(r, 'backoff_ms', 'config.retry.backoff_ms', LIMITS.backoffMs, LIMITS.backoffMs.default, errors)!,
  };
  if (!absent(r.max_age_seconds)) {
    const maxAge = integer(r, 'max_age_seconds', 'config.retry.max_age_seconds', LIMITS.maxAgeSeconds, undefined, errors);
    if (maxAge !== undefined) out.max_age_seconds = maxAge;
  }
  return out;
}

/** The optional flow-control fields: limits only when given, `ordered_delivery` only when true. */
function flow(obj: Obj, config: CommonConfig, errors: Errors): void {
  if (!absent(obj.delivery_rate_per_second)) {
    const field = 'config.delivery_rate_per_second';
    const rate = integer(obj, 'delivery_rate_per_second', field, LIMITS.deliveryRatePerSecond, undefined, errors);
    if (rate !== undefined) config.delivery_rate_per_second = rate;
  }
  if (!absent(obj.delivery_max_concurrency)) {
    const field = 'config.delivery_max_concurrency';
    const max = integer(obj, 'delivery_max_concurrency', field, LIMITS.deliveryMaxConcurrency, undefined, errors);
    if (max !== undefined) config.delivery_max_concurrency = max;
  }
  const ordered = obj.ordered_delivery;
  if (!absent(ordered) && typeof ordered !== 'boolean') errors.add('config.ordered_delivery', 'must be a boolean');
  else if (ordered === true) config.ordered_delivery = true;
}

function common(obj: Obj, errors: Errors): CommonConfig {
  const config: CommonConfig = {
    endpoint: endpoint(obj, errors),
    http_method: oneOf<HttpMethod>(obj, 'http_method', 'config.http_method', HTTP_METHODS, 'POST', errors),
    headers: headers(obj, errors),
    timeout_ms: integer(obj, 'timeout_ms', 'config.timeout_ms', LIMITS.timeoutMs, LIMITS.timeoutMs.default, errors)!,
    retry: retry(obj, errors),
  };
  flow(obj, config, errors);
  return config;
}

/** The zone, or UTC by default. Returns `valid: false` (and records the error) for an unknown zone. */
function timezone(obj: Obj, errors: Errors): { tz: string; valid: boolean } {
  const v = obj.timezone;
  if (absent(v)) return { tz: 'UTC', valid: true };
  if (!isValidTimeZone(v)) {
    errors.add('config.timezone', 'must be an IANA time zone name, such as Europe/Berlin');
    return { tz: typeof v === 'string' ? v : 'UTC', valid: false };
  }
  // Store the canonical spelling of a differently-cased name ('europe/berlin'), but not ICU's renames
  // (it would turn Asia/Kolkata into Asia/Calcutta).
  const resolved = new Intl.DateTimeFormat('en-US', { timeZone: v }).resolvedOptions().timeZone;
  return { tz: resolved.toLowerCase() === v.toLowerCase() ? resolved : v, valid: true };
}

function isJsonValue(v: unknown, depth = 0): boolean {
  if (depth > 256) return false;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (Array.isArray(v)) return v.every((x) => isJsonValue(x, depth + 1));
  if (isPlainObject(v)) return Object.values(v).every((x) => isJsonValue(x, depth + 1));
  return false;
}

function payload(obj: Obj, errors: Errors): unknown {
  const v = obj.payload;
  if (v === undefined || v === null) return null;
  if (!isJsonValue(v)) {
    errors.add('config.payload', 'must be a JSON value');
    return v;
  }
  const tooLarge = payloadTooLarge(v);
  if (tooLarge !== null) errors.add('config.payload', tooLarge);
  return v;
}

/** An ISO 8601 date-time, read in `tz` when it has no offset. Returns the instant, or undefined. */
function dateTime(obj: Obj, key: string, tz: { tz: string; valid: boolean }, errors: Errors): Date | undefined {
  const v = obj[key];
  const field = `config.${key}`;
  if (typeof v !== 'string') {
    errors.add(field, 'must be an ISO 8601 date-time string');
    return undefined;
  }
  // With an unknown zone (already reported) only the format can be checked.
  const d = parseLocalDateTime(v, tz.valid ? tz.tz : 'UTC');
  if (!d) {
    errors.add(field, 'must be an ISO 8601 date-time, such as 2030-01-31T09:00:00 or 2030-01-31T09:00:00Z');
    return undefined;
  }
  return tz.valid || /(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$/.test(v.trim()) ? d : undefined;
}

function misfire(obj: Obj, errors: Errors): { misfire_policy: MisfirePolicy; max_backfill: number } {
  return {
    misfire_policy: oneOf<MisfirePolicy>(obj, 'misfire_policy', 'config.misfire_policy', MISFIRE_POLICIES, 'fire_once', errors),
    max_backfill: integer(obj, 'max_backfill', 'config.max_backfill', LIMITS.maxBackfill, LIMITS.maxBackfill.default, errors)!,
  };
}

/** `start_at`, `end_at` (not before start_at) and `jitter_seconds` of a recurring trigger, when given. */
function recurring(obj: Obj, tz: { tz: string; valid: boolean }, config: RecurringOptions, errors: Errors): void {
  let start: Date | undefined;
  if (!absent(obj.start_at)) {
    start = dateTime(obj, 'start_at', tz, errors);
    if (typeof obj.start_at === 'string') config.start_at = obj.start_at.trim();
  }
  if (!absent(obj.end_at)) {
    const end = dateTime(obj, 'end_at', tz, errors);
    if (typeof obj.end_at === 'string') config.end_at = obj.end_at.trim();
    if (end && start && end.getTime() < start.getTime()) errors.add('config.end_at', 'must not be before start_at');
  }
  if (!absent(obj.jitter_seconds)) {
    const jitter = integer(obj, 'jitter_seconds', 'config.jitter_seconds', LIMITS.jitterSeconds, undefined, errors);
    if (jitter !== undefined) config.jitter_seconds = jitter;
  }
}

function webhook(obj: Obj, base: CommonConfig, errors: Errors): WebhookConfig {
  const config: WebhookConfig = { ...base, schema: obj.schema as WebhookConfig['schema'] };
  if (absent(obj.schema)) {
    errors.add('config.schema', 'is required');
  } else {
    const compiled = compileWebhookSchema(obj.schema);
    if (!compiled.ok) errors.add('config.schema', compiled.message);
  }
  if (!absent(obj.secret)) {
    const s = obj.secret;
    if (typeof s !== 'string') errors.add('config.secret', 'must be a string');
    else if (s.length < LIMITS.secretLength.min || s.length > LIMITS.secretLength.max) {
      errors.add('config.secret', `must be ${LIMITS.secretLength.min} to ${LIMITS.secretLength.max} characters`);
    } else config.secret = s;
  }
  return config;
}

function time(obj: Obj, base: CommonConfig, now: Date, errors: Errors): TimeConfig {
  const tz = timezone(obj, errors);
  const config: TimeConfig = { ...base, timezone: tz.tz, payload: payload(obj, errors) };
  const hasRunAt = !absent(obj.run_at);
  const hasDelay = !absent(obj.delay_seconds);
  if (hasRunAt && hasDelay) {
    errors.add('config.run_at', 'give either run_at or delay_seconds, not both');
  } else if (!hasRunAt && !hasDelay) {
    errors.add('config.run_at', 'run_at or delay_seconds is required');
  } else if (hasRunAt) {
    const at = dateTime(obj, 'run_at', tz, errors);
    if (at && at.getTime() < now.getTime() - LIMITS.runAtPastToleranceMs) {
      errors.add('config.run_at', 'run_at is in the past');
    }
    if (typeof obj.run_at === 'string') config.run_at = obj.run_at.trim();
  } else {
    const delay = integer(obj, 'delay_seconds', 'config.delay_seconds', LIMITS.delaySeconds, undefined, errors);
    if (delay !== undefined) config.delay_seconds = delay;
  }
  return config;
}

function cron(obj: Obj, base: CommonConfig, now: Date, errors: Errors): CronConfig {
  const tz = timezone(obj, errors);
  const v = obj.cron;
  let pattern = '';
  if (absent(v)) {
    errors.add('config.cron', 'is required');
  } else if (typeof v !== 'string') {
    errors.add('config.cron', 'must be a string');
  } else {
    pattern = v.trim().split(/\s+/).join(' ');
    const compiled = compileCron(v, tz.valid ? tz.tz : 'UTC');
    if (!compiled.ok) errors.add('config.cron', compiled.message);
    else if (compiled.cron.nextRun(now) === null) errors.add('config.cron', 'never fires (no matching date)');
  }
  const config: CronConfig = { ...base, cron: pattern, timezone: tz.tz, payload: payload(obj, errors), ...misfire(obj, errors) };
  recurring(obj, tz, config, errors);
  return config;
}

function interval(obj: Obj, base: CommonConfig, errors: Errors): IntervalConfig {
  const tz = timezone(obj, errors);
  const seconds = integer(obj, 'interval_seconds', 'config.interval_seconds', LIMITS.intervalSeconds, undefined, errors);
  const config: IntervalConfig = {
    ...base,
    interval_seconds: seconds as number,
    timezone: tz.tz,
    payload: payload(obj, errors),
    ...misfire(obj, errors),
  };
  recurring(obj, tz, config, errors);
  return config;
}

/**
 * Validate `input` as the config of a trigger of `type`, as of `now` (which decides whether a `run_at` is
 * in the past and whether a cron pattern still has an occurrence). See LIMITS for the numbers.
 */
export function validateTriggerConfig(type: TriggerType, input: unknown, now: Date): ValidationResult {
  if (!isTriggerType(type)) {
    return { ok: false, errors: [{ field: 'type', message: `must be one of ${TRIGGER_TYPES.join(', ')}` }] };
  }
  if (!isPlainObject(input)) return { ok: false, errors: [{ field: 'config', message: 'must be an object' }] };

  const errors = new Errors();
  const { has_secret: _readOnly, ...rest } = input;
  const obj: Obj = type === 'webhook' ? rest : input;
  unknownKeys(obj, [...COMMON_KEYS, ...TYPE_KEYS[type]], 'config', errors, type);
  const base = common(obj, errors);
  let config: TriggerConfig;
  switch (type) {
    case 'webhook':
      config = webhook(obj, base, errors);
      break;
    case 'time_scheduled':
      config = time(obj, base, now, errors);
      break;
    case 'cron_scheduled':
      config = cron(obj, base, now, errors);
      break;
    case 'interval_scheduled':
      config = interval(obj, base, errors);
      break;
  }
  if (errors.list.length === 0 && (config as RecurringOptions).end_at !== undefined && firstOccurrence(type, config, now) === null) {
    errors.add('config.end_at', 'the schedule has no occurrence between now (or start_at) and end_at');
  }
  return errors.list.length > 0 ? { ok: false, errors: errors.list } : { ok: true, config };
}
