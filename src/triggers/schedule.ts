/**
 * Schedule maths for time, cron and interval triggers. Pure: no I/O, no clock reads (callers pass `now`).
 *
 * Every instant is a JS Date (an absolute UTC instant); wall-clock reasoning happens in the trigger's IANA
 * timezone. Every instant this module *computes* (first, next, due, runs) is a whole second, so a
 * schedule row round-trips through a DATETIME column without changing, and the name-based event id derived
 * from it stays the same. (`parseLocalDateTime` is a parser and keeps milliseconds.)
 *
 * Cron semantics (croner 11, options set explicitly in `cronOptions` below):
 * - 5 fields, or 6 with leading seconds. Nicknames (@daily) and 7-field (year) patterns are rejected.
 * - Day-of-month and day-of-week are ORed when both are restricted (Vixie cron): `0 12 1 * MON` fires on the
 *   1st and on every Monday. croner's `+` modifier (`0 12 1 * +MON`) still asks for AND explicitly.
 * - DST, as Vixie cron: a "fixed-time" job (no `*`, `?` or step in its second/minute/hour fields, so
 *   `30 2 * * *` and `30 2,14 * * *`) whose wall time falls in a spring-forward gap fires once at the first
 *   valid instant after the gap (02:30 -> 03:00 new time), and a wall time that occurs twice (fall back)
 *   fires once, at its first occurrence. "Wild" jobs (`*\/15 * * * *`, `0 * * * *`) follow real time: times
 *   inside a gap do not exist and are skipped, and the repeated hour fires on both passes.
 *   This is croner's own behaviour with `fixedTimeRule: 'no-wildcard'`; no wrapper is needed.
 */
import { createHash } from 'node:crypto';
import { Cron, type CronOptions } from 'croner';
import type { CronConfig, IntervalConfig, MisfirePolicy, RecurringOptions, TimeConfig, TriggerConfig, TriggerType } from './types';

const SECOND_MS = 1000;
const DAY_MS = 86_400_000;

/** Upper bound on `runsFrom(..., count)`, so a query parameter cannot ask for millions of dates. */
export const MAX_UPCOMING = 1000;

/**
 * How many cron occurrences `planDue` may walk forward one by one when croner's backwards search gives an
 * answer that does not agree with its forwards search (it should not happen; this is a safety net).
 * One croner step costs ~40 µs, so the cap bounds a pathological claim at ~0.4 s. If the cap is reached the
 * walk stops there: the occurrences found so far are treated as the due ones, and the schedule resumes
 * from the last of them (the relay will claim it again at once and continue).
 */
export const CRON_FORWARD_STEP_CAP = 10_000;

// ---------------------------------------------------------------------------------------------------------
// Time zones and ISO 8601 parsing
// ---------------------------------------------------------------------------------------------------------

const formatterCache = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatterCache.get(timeZone);
  if (!f) {
    // Zone names are case-insensitive, so the keys are not bounded by the zone list: keep the cache small.
    if (formatterCache.size >= 1000) formatterCache.clear();
    // Throws RangeError for an unknown zone; callers check with isValidTimeZone first.
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatterCache.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is a zone name the runtime's ICU knows (IANA names, plus aliases such as 'UTC'). */
export function isValidTimeZone(timeZone: unknown): timeZone is string {
  if (typeof timeZone !== 'string' || timeZone.length === 0 || timeZone.length > 64) return false;
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** A wall-clock reading taken as if it were UTC, in ms. Handles years 0-99, which Date.UTC maps to 19xx. */
function wallMs(y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number): number {
  const dt = new Date(0);
  dt.setUTCFullYear(y, mo - 1, d);
  dt.setUTCHours(h, mi, s, ms);
  return dt.getTime();
}

/** UTC offset (wall minus UTC, ms) of `timeZone` at instant `t`. */
function offsetAt(timeZone: string, t: number): number {
  const parts = formatterFor(timeZone).formatToParts(new Date(t));
  const get = (type: Intl.DateTimeFormatPartTypes): number => {
    const p = parts.find((x) => x.type === type);
    return p ? Number(p.value) : 0;
  };
  let year = get('year');
  const era = parts.find((x) => x.type === 'era')?.value;
  if (era === 'BC' || era === 'B') year = 1 - year;
  const wall = wallMs(year, get('month'), get('day'), get('hour'), get('minute'), get('second'), 0);
  const wholeSecond = t - (((t % SECOND_MS) + SECOND_MS) % SECOND_MS);
  return wall - wholeSecond;
}

/**
 * The instant at which the wall clock of `timeZone` reads `wall` (a wall time written as UTC ms).
 * Ambiguous (fall back): the earlier instant. Non-existent (spring forward gap): the first instant after
 * the gap, i.e. the transition itself (02:30 in a 02:00->03:00 gap gives 03:00 new time).
 */
function wallToInstant(wall: number, timeZone: string): number {
  // A transition within a day of `wall` shows up as two different offsets among these probes.
  const offsets = [...new Set([offsetAt(timeZone, wall - DAY_MS), offsetAt(timeZone, wall), offsetAt(timeZone, wall + DAY_MS)])];
  const valid = offsets.map((o) => wall - o).filter((t) => offsetAt(timeZone, t) === wall - t);
  if (valid.length > 0) return Math.min(...valid);

  // In a gap: before the transition the offset is the smaller one. Binary-search the transition instant
  // (to the second) between the instant the wall time would have with each offset.
  const oBefore = Math.min(...offsets);
  let lo = wall - Math.max(...offsets); // offset here is still oBefore
  let hi = wall - oBefore; // offset here is already the later one
  lo = Math.floor(lo / SECOND_MS);
  hi = Math.ceil(hi / SECOND_MS);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(timeZone, mid * SECOND_MS) === oBefore) lo = mid;
    else hi = mid;
  }
  return hi * SECOND_MS;
}

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?$/;

function daysInMonth(y: number, m: number): number {
  return new Date(wallMs(y, m + 1, 0, 0, 0, 0, 0)).getUTCDate();
}

/**
 * Parse an ISO 8601 date-time. With `Z` or an offset it is taken as is; without, it is a wall time in
 * `timeZone` (a wall time inside a DST gap maps to the first valid instant after the gap, an ambiguous one
 * to the earlier instant). Accepts `YYYY-MM-DDTHH:MM[:SS[.fffffffff]][Z|±HH[:MM]|±HHMM]`, `T` or a space.
 * Returns null when the text is not such a date-time, names an impossible date (2025-02-30), or the zone
 * is unknown and needed.
 */
export function parseLocalDateTime(iso: string, timeZone: string): Date | null {
  if (typeof iso !== 'string') return null;
  const m = ISO_RE.exec(iso.trim());
  if (!m) return null;
  const [, ys, mos, ds, hs, mis, ss, frac, z, sign, ohs, oms] = m;
  const y = Number(ys);
  const mo = Number(mos);
  const d = Number(ds);
  const h = Number(hs);
  const mi = Number(mis);
  const s = ss === undefined ? 0 : Number(ss);
  const ms = frac === undefined ? 0 : Number(frac.padEnd(3, '0').slice(0, 3));
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return null;
  if (h > 23 || mi > 59 || s > 59) return null;
  const wall = wallMs(y, mo, d, h, mi, s, ms);

  if (z !== undefined) return new Date(wall);
  if (sign !== undefined) {
    const oh = Number(ohs);
    const om = oms === undefined ? 0 : Number(oms);
    if (oh > 23 || om > 59) return null;
    const offset = (sign === '-' ? -1 : 1) * (oh * 3_600_000 + om * 60_000);
    return new Date(wall - offset);
  }
  if (!isValidTimeZone(timeZone)) return null;
  return new Date(wallToInstant(wall, timeZone));
}

// ---------------------------------------------------------------------------------------------------------
// Cron
// ---------------------------------------------------------------------------------------------------------

/** croner options, all set explicitly so an upgrade that changes a default cannot change our semantics. */
function cronOptions(timezone: string): CronOptions {
  return {
    timezone,
    paused: true,
    mode: '5-or-6-parts', // 5 fields, or 6 with leading seconds; 7 (year) rejected
    domAndDow: false, // OR when both day fields are restricted, as Vixie cron
    fixedTimeRule: 'no-wildcard', // Vixie-style DST: lists and ranges are fixed-time too
    alternativeWeekdays: false, // 0 and 7 = Sunday
    sloppyRanges: false,
  };
}

const cronCache = new Map<string, Cron>();
const CRON_CACHE_MAX = 2000;

export type CompiledCron = { ok: true; cron: Cron } | { ok: false; message: string };

/**
 * Parse a cron pattern for `timezone`. Rejects anything but 5 or 6 whitespace-separated fields (so no
 * nicknames), and anything croner rejects, with croner's reason. Parsed patterns are memoised (bounded).
 */
export function compileCron(pattern: string, timezone: string): CompiledCron {
  if (typeof pattern !== 'string') return { ok: false, message: 'must be a string' };
  const fields = pattern
    .trim()
    .split(/\s+/)
    .filter((f) => f.length > 0);
  if (pattern.length > 256) return { ok: false, message: 'must be at most 256 characters' };
  if (fields.length !== 5 && fields.length !== 6) {
    return {
      ok: false,
      message: `must have 5 fields (minute hour day-of-month month day-of-week), or 6 with leading seconds; got ${fields.length}`,
    };
  }
  const normalized = fields.join(' ');
  const key = `${timezone}\u0000${normalized}`;
  const hit = cronCache.get(key);
  if (hit) {
    cronCache.delete(key); // LRU: move to the back
    cronCache.set(key, hit);
    return { ok: true, cron: hit };
  }
  try {
    const cron = new Cron(normalized, cronOptions(timezone));
    if (cronCache.size >= CRON_CACHE_MAX) {
      const oldest = cronCache.keys().next().value;
      if (oldest !== undefined) cronCache.delete(oldest);
    }
    cronCache.set(key, cron);
    return { ok: true, cron };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return { ok: false, message: message.replace(/^CronPattern:\s*/, '') };
  }
}

function cronOf(config: CronConfig): Cron | null {
  const c = compileCron(config.cron, config.timezone ?? 'UTC');
  return c.ok ? c.cron : null;
}

/** First cron occurrence strictly after `after` (croner works in whole seconds). */
function cronNext(cron: Cron, after: Date): Date | null {
  return cron.nextRun(after);
}

// ---------------------------------------------------------------------------------------------------------
// Occurrences
// ---------------------------------------------------------------------------------------------------------

function ceilToSecond(t: number): number {
  return Math.ceil(t / SECOND_MS) * SECOND_MS;
}

function intervalMs(config: IntervalConfig): number {
  const s = config.interval_seconds;
  return typeof s === 'number' && Number.isFinite(s) && s >= 1 ? Math.floor(s) * SECOND_MS : NaN;
}

/** The grid anchor of an interval trigger with `start_at` (rounded up to a whole second), else null. */
function intervalAnchor(config: IntervalConfig): number | null {
  if (config.start_at === undefined) return null;
  const d = parseLocalDateTime(config.start_at, config.timezone ?? 'UTC');
  return d ? ceilToSecond(d.getTime()) : null;
}

/**
 * The window of a recurring trigger in ms: nothing fires before `start` or after `end` (null: open).
 * For intervals `start_at` is the grid anchor too (see intervalAnchor); for cron it only bounds it.
 */
function windowOf(type: TriggerType, config: TriggerConfig): { start: number | null; end: number | null } {
  if (type !== 'cron_scheduled' && type !== 'interval_scheduled') return { start: null, end: null };
  const c = config as RecurringOptions & { timezone?: string };
  const read = (v: string | undefined) => {
    if (v === undefined) return null;
    const d = parseLocalDateTime(v, c.timezone ?? 'UTC');
    return d ? d.getTime() : null;
  };
  return { start: read(c.start_at), end: read(c.end_at) };
}

/** `d`, or null when it is past the window's end. */
function inWindow(d: Date | null, end: number | null): Date | null {
  return d !== null && end !== null && d.getTime() > end ? null : d;
}

function timeOccurrence(config: TimeConfig, now: Date): Date | null {
  if (config.run_at !== undefined) {
    const d = parseLocalDateTime(config.run_at, config.timezone ?? 'UTC');
    return d ? new Date(ceilToSecond(d.getTime())) : null;
  }
  if (typeof config.delay_seconds === 'number') {
    return new Date(ceilToSecond(now.getTime() + config.delay_seconds * SECOND_MS));
  }
  return null;
}

/**
 * When a newly created (or updated) trigger first fires.
 * - webhook: null (fired by requests, not by time).
 * - time_scheduled: `run_at` (parsed in its timezone), or `now + delay_seconds`; rounded up to a whole
 *   second. A `run_at` slightly in the past (validation allows 60 s) is returned as is, so it fires at once.
 * - cron_scheduled: the first occurrence strictly after `now`.
 * - interval_scheduled: with `start_at` in the future (or exactly now), `start_at`; with `start_at` in the
 *   past, the first grid point `start_at + k * interval` that is >= now; without `start_at`, the grid is
 *   anchored at `now` rounded up to a whole second and the first occurrence is one interval later.
 */
export function firstOccurrence(type: TriggerType, config: TriggerConfig, now: Date): Date | null {
  switch (type) {
    case 'webhook':
      return null;
    case 'time_scheduled':
      return timeOccurrence(config as TimeConfig, now);
    case 'cron_scheduled': {
      const cron = cronOf(config as CronConfig);
      const { start, end } = windowOf(type, config);
      // croner steps whole seconds from the floor of its argument, so start - 1 ms lets start itself count.
      const after = start !== null && start - 1 > now.getTime() ? new Date(start - 1) : now;
      return cron ? inWindow(cronNext(cron, after), end) : null;
    }
    case 'interval_scheduled': {
      const cfg = config as IntervalConfig;
      const step = intervalMs(cfg);
      if (Number.isNaN(step)) return null;
      const anchor = intervalAnchor(cfg);
      const t = now.getTime();
      const { end } = windowOf(type, config);
      if (anchor === null) {
        if (cfg.start_at !== undefined) return null; // unparseable start_at
        return inWindow(new Date(ceilToSecond(t) + step), end);
      }
      if (anchor >= t) return inWindow(new Date(anchor), end);
      return inWindow(new Date(anchor + Math.ceil((t - anchor) / step) * step), end);
    }
    default:
      return null;
  }
}

/**
 * The occurrence after a *scheduled* one (not after "now", so a late relay never makes the grid drift).
 * time_scheduled and webhook: null. cron: croner's next run strictly after `previousScheduled`, in the
 * trigger's timezone. interval: `previousScheduled + interval_seconds`. Null past the window's `end_at`.
 */
export function nextOccurrence(type: TriggerType, config: TriggerConfig, previousScheduled: Date): Date | null {
  const { end } = windowOf(type, config);
  switch (type) {
    case 'cron_scheduled': {
      const cron = cronOf(config as CronConfig);
      return cron ? inWindow(cronNext(cron, previousScheduled), end) : null;
    }
    case 'interval_scheduled': {
      const step = intervalMs(config as IntervalConfig);
      return Number.isNaN(step) ? null : inWindow(new Date(previousScheduled.getTime() + step), end);
    }
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Misfires
// ---------------------------------------------------------------------------------------------------------

export interface DuePlan {
  /** Occurrences to fire now, ascending. Their scheduled times become the events' `scheduled_for`. */
  fire: Date[];
  /** The next occurrence to schedule (always > now for recurring triggers), or null when none. */
  next: Date | null;
}

/**
 * What a relay does when it claims the occurrence scheduled at `dueAt`, at time `now`.
 *
 * The due occurrences are `dueAt` and every later occurrence <= now. (If `now` < `dueAt`, e.g. clock skew
 * between the database and this process, `now` is taken as `dueAt`.)
 * - time_scheduled: fire [dueAt], next null. webhook: nothing.
 * - Only `dueAt` is due: fire [dueAt], next = nextOccurrence(dueAt) — for every policy except `skip`,
 *   which fires it only if it is at most `graceMs` late (see below).
 * - Several are due (the relays were down):
 *   - fire_once: fire the latest due occurrence; next = the one after it.
 *   - skip: fire the latest due occurrence only if now - latest <= graceMs; next = first occurrence > now.
 *   - fire_all: fire the most recent min(count, max_backfill) due occurrences, ascending; next = first > now.
 *
 * Windows: an occurrence after `end_at` is never due (a relay back after the window's end fires at most the
 * occurrences inside it, by the policy), and `next` is null past `end_at`.
 *
 * `skip` applies its grace to a single late occurrence too: a daily job missed by five hours is as missed
 * as an hourly job missed five times. So `graceMs` must cover normal relay latency (poll interval + claim
 * time), or an on-time-but-polled-late occurrence would be skipped.
 *
 * Cost: intervals are pure arithmetic (a pause of millions of occurrences costs O(max_backfill)). Cron uses
 * croner's backwards search from `now` for the latest due occurrence(s), O(max_backfill) croner steps, and
 * checks it against the forwards search; on disagreement it walks forward from `dueAt`, at most
 * CRON_FORWARD_STEP_CAP steps.
 */
export function planDue(type: TriggerType, config: TriggerConfig, dueAt: Date, now: Date, graceMs: number): DuePlan {
  if (type === 'webhook') return { fire: [], next: null };
  if (type === 'time_scheduled') return { fire: [dueAt], next: null };

  const cfg = config as CronConfig | IntervalConfig;
  const policy: MisfirePolicy = cfg.misfire_policy ?? 'fire_once';
  const backfill = Math.max(1, Math.floor(cfg.max_backfill ?? 100));
  const nowMs = Math.max(now.getTime(), dueAt.getTime());
  const grace = Number.isFinite(graceMs) ? Math.max(0, graceMs) : 0;
  const want = policy === 'fire_all' ? backfill : 1;
  // Past `end_at` nothing is due: occurrences are looked for up to the window's end only.
  const { end } = windowOf(type, config);
  if (end !== null && dueAt.getTime() > end) return { fire: [], next: null };
  const horizon = end !== null ? Math.min(nowMs, end) : nowMs;

  let due: number[]; // ascending, the most recent `want` due occurrences
  let next: Date | null;

  if (type === 'interval_scheduled') {
    const step = intervalMs(cfg as IntervalConfig);
    if (Number.isNaN(step)) return { fire: [dueAt], next: null };
    const d0 = dueAt.getTime();
    const last = Math.floor((horizon - d0) / step); // index of the latest due occurrence
    due = [];
    for (let k = Math.max(0, last - want + 1); k <= last; k++) due.push(d0 + k * step);
    next = new Date(d0 + (last + 1) * step);
  } else if (type === 'cron_scheduled') {
    const cron = cronOf(cfg as CronConfig);
    if (!cron) return { fire: [dueAt], next: null };
    const after = cronNext(cron, dueAt);
    if (after === null || after.getTime() > horizon) {
      due = [dueAt.getTime()];
      next = after;
    } else {
      ({ due, next } = cronLatestDue(cron, dueAt.getTime(), horizon, want));
    }
  } else {
    return { fire: [], next: null };
  }

  const latest = due[due.length - 1]!;
  let fire: number[];
  if (policy === 'skip') fire = nowMs - latest <= grace ? [latest] : [];
  else if (policy === 'fire_all') fire = due;
  else fire = [latest];
  return { fire: fire.map((t) => new Date(t)), next: inWindow(next, end) };
}

/**
 * The most recent `want` occurrences in [dueAt, now] (dueAt itself always counts, even if the pattern
 * has changed since it was scheduled), ascending, and the first occurrence after now.
 */
function cronLatestDue(cron: Cron, dueAt: number, nowMs: number, want: number): { due: number[]; next: Date | null } {
  // previousRuns(n, ref) returns runs strictly before ref, newest first; +1 ms makes `now` itself count.
  const back = cron
    .previousRuns(want, new Date(nowMs + 1))
    .map((d) => d.getTime())
    .filter((t) => t > dueAt && t <= nowMs)
    .reverse();
  if (back.length > 0) {
    const next = cronNext(cron, new Date(back[back.length - 1]!));
    if (next === null || next.getTime() > nowMs) {
      const due = back.length < want ? [dueAt, ...back] : back;
      return { due, next };
    }
  }
  return cronWalkForward(cron, dueAt, nowMs, want);
}

/** Safety net for cronLatestDue: step forward from dueAt, keeping the last `want`, at most the cap. */
function cronWalkForward(cron: Cron, dueAt: number, nowMs: number, want: number): { due: number[]; next: Date | null } {
  const due: number[] = [dueAt];
  let cursor = new Date(dueAt);
  for (let i = 0; i < CRON_FORWARD_STEP_CAP; i++) {
    const n = cronNext(cron, cursor);
    if (n === null || n.getTime() > nowMs) return { due, next: n };
    due.push(n.getTime());
    if (due.length > want) due.shift();
    cursor = n;
  }
  // Cap reached: resume from the last occurrence found; the relay claims it again immediately.
  return { due, next: cronNext(cron, cursor) };
}

// ---------------------------------------------------------------------------------------------------------
// Jitter, runs and local times
// ---------------------------------------------------------------------------------------------------------

/** One occurrence: its nominal time (the event's `scheduled_for`, and its id's name) and when it fires. */
export interface Occurrence {
  scheduled_for: Date;
  fire_at: Date;
}

/** A uniform number in [0, 1) from (trigger id, nominal instant): the same inputs always give the same number. */
function jitterFraction(triggerId: string, nominal: Date): number {
  const h = createHash('sha256').update(`${triggerId}|${nominal.toISOString()}`).digest();
  return h.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * When the occurrence nominally at `nominal` fires: `nominal` plus a whole number of seconds in
 * [0, jitter_seconds], derived from (trigger id, nominal time) alone, so the relay, the upcoming view and a
 * recomputation after a crash all get the same instant, and thousands of `0 * * * *` triggers spread evenly
 * over the window. The window is narrowed so that an occurrence always fires before the next occurrence's
 * nominal time (occurrences keep their order, and two of one trigger never share a fire_at) and never after
 * `end_at`. Without jitter, for other types, or without a trigger id (an unsaved preview): `nominal`.
 */
export function jitteredFireAt(triggerId: string | null, type: TriggerType, config: TriggerConfig, nominal: Date): Date {
  const jitter = (config as RecurringOptions).jitter_seconds ?? 0;
  if (triggerId === null || !(jitter > 0) || (type !== 'cron_scheduled' && type !== 'interval_scheduled')) return nominal;
  const t = nominal.getTime();
  let maxSeconds = Math.floor(jitter);
  const next = nextOccurrence(type, config, nominal);
  if (next !== null) maxSeconds = Math.min(maxSeconds, Math.ceil((next.getTime() - t) / SECOND_MS) - 1);
  const { end } = windowOf(type, config);
  if (end !== null) maxSeconds = Math.min(maxSeconds, Math.floor((end - t) / SECOND_MS));
  if (maxSeconds <= 0) return nominal;
  return new Date(t + Math.floor(jitterFraction(triggerId, nominal) * (maxSeconds + 1)) * SECOND_MS);
}

/** The occurrence nominally at `nominal`, with its (jittered) fire_at. */
export function occurrenceAt(triggerId: string | null, type: TriggerType, config: TriggerConfig, nominal: Date): Occurrence {
  return { scheduled_for: nominal, fire_at: jitteredFireAt(triggerId, type, config, nominal) };
}

/**
 * planDue for a claimed schedule row, which may be jittered. Lateness is counted from the row's fire_at (its
 * planned instant), not from its nominal time: a row jittered by 40 minutes and claimed on time is on time,
 * so the misfire rules see `now - (fire_at - nominal)`. The occurrences to fire carry their nominal times
 * (the events' scheduled_for and ids come from them) and their planned instants (for the lag metric); the
 * next occurrence comes with its own jittered fire_at.
 */
export function planOccurrence(
  triggerId: string,
  type: TriggerType,
  config: TriggerConfig,
  row: { fire_at: Date; scheduled_for?: Date | null },
  now: Date,
  graceMs: number,
): { fire: Occurrence[]; next: Occurrence | null } {
  const nominal = row.scheduled_for ?? row.fire_at;
  const shiftMs = Math.max(0, row.fire_at.getTime() - nominal.getTime());
  const plan = planDue(type, config, nominal, new Date(now.getTime() - shiftMs), graceMs);
  return {
    fire: plan.fire.map((at) =>
      at.getTime() === nominal.getTime() ? { scheduled_for: at, fire_at: row.fire_at } : occurrenceAt(triggerId, type, config, at),
    ),
    next: plan.next ? occurrenceAt(triggerId, type, config, plan.next) : null,
  };
}

/**
 * Up to `count` runs (clamped to MAX_UPCOMING) starting with `first`, followed as a relay firing on time
 * follows them: each next occurrence from the previous nominal one (nextOccurrence: the grid and the window),
 * each with its jittered fire_at. The upcoming view and the schedule preview are this function.
 */
export function runsFrom(
  triggerId: string | null,
  type: TriggerType,
  config: TriggerConfig,
  first: Occurrence | null,
  count: number,
): Occurrence[] {
  const n = Math.max(0, Math.min(MAX_UPCOMING, Math.floor(Number.isFinite(count) ? count : 0)));
  const out: Occurrence[] = [];
  let cur = first;
  while (cur !== null && out.length < n) {
    out.push(cur);
    const next = nextOccurrence(type, config, cur.scheduled_for);
    cur = next ? occurrenceAt(triggerId, type, config, next) : null;
  }
  return out;
}

/**
 * `at` as an ISO 8601 wall time in `timeZone` with that zone's UTC offset at that instant, such as
 * 2027-03-15T09:00:00-04:00 (milliseconds only when not zero). An unknown zone is read as UTC.
 */
export function formatInZone(at: Date, timeZone: string): string {
  const t = at.getTime();
  const offset = isValidTimeZone(timeZone) ? offsetAt(timeZone, t) : 0;
  const wall = new Date(t + offset).toISOString();
  const text = t % SECOND_MS === 0 ? wall.slice(0, 19) : wall.slice(0, 23);
  const minutes = Math.round(Math.abs(offset) / 60_000);
  const hh = String(Math.floor(minutes / 60)).padStart(2, '0');
  const mm = String(minutes % 60).padStart(2, '0');
  return `${text}${offset < 0 ? '-' : '+'}${hh}:${mm}`;
}
