import type { Knex } from 'knex';
import type { EventSource } from '../kafka/message';
import type { TriggerType } from '../triggers/types';
import { errorText, insertUnlessDuplicate } from './errors';
import { dbTime, parseJson } from './knex';
import { SLICED_TABLES } from './partitions';
import { chunksBySize, ROW_BASE_BYTES, STATEMENT_MAX_BYTES, textBytes } from './packets';

type Q = Knex | Knex.Transaction;

export type ExecutionStatus = 'pending' | 'published' | 'success' | 'failure';

/** Every execution status, in the column's ENUM order (the order of idx_events_trigger_status_fired). */
export const EXECUTION_STATUSES: readonly ExecutionStatus[] = ['pending', 'published', 'success', 'failure'];

export interface EventInsert {
  id: string;
  trigger_id: string | null;
  trigger_type: TriggerType;
  source: EventSource;
  is_test_run: boolean;
  payload: unknown;
  delivery_config?: unknown;
  replay_of?: string | null;
  scheduled_for: Date | null;
  fired_at: Date;
  /** Set when the event is already on Kafka as it is logged (the relay's direct fire path): no outbox row. */
  published_at?: Date | null;
  /** The event's W3C traceparent (tracing/traceparent.ts); null for events logged before tracing existed. */
  trace_parent?: string | null;
}

export interface EventRow extends EventInsert {
  published_at: Date | null;
  execution_status: ExecutionStatus;
  attempts: number;
  response_status: number | null;
  latency_ms: number | null;
  error_message: string | null;
  /** When the worker's next attempt is due (a retry or a deferral is waiting); null when none is. */
  next_attempt_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

function toDb(e: EventInsert, now: Date): Record<string, unknown> {
  return {
    id: e.id,
    trigger_id: e.trigger_id,
    trigger_type: e.trigger_type,
    source: e.source,
    is_test_run: e.is_test_run ? 1 : 0,
    payload: e.payload === undefined ? null : JSON.stringify(e.payload),
    delivery_config: e.delivery_config === undefined || e.delivery_config === null ? null : JSON.stringify(e.delivery_config),
    replay_of: e.replay_of ?? null,
    scheduled_for: e.scheduled_for,
    fired_at: e.fired_at,
    published_at: e.published_at ?? null,
    execution_status: e.published_at ? 'published' : 'pending',
    created_at: now,
    updated_at: now,
    trace_parent: e.trace_parent ?? null,
  };
}

/** toDb's columns, in the order eventValues gives their values. */
const EVENT_COLUMNS = [
  'id',
  'trigger_id',
  'trigger_type',
  'source',
  'is_test_run',
  'payload',
  'delivery_config',
  'replay_of',
  'scheduled_for',
  'fired_at',
  'published_at',
  'execution_status',
  'created_at',
  'updated_at',
  'trace_parent',
];
const EVENT_ROW = `(${EVENT_COLUMNS.map(() => '?').join(',')})`;

/**
 * The fast path's statements as text: the relay logs a batch of events per fire, and knex's builder cost
 * more CPU per row (an object per row, its keys sorted and compared, one binding object per value) than
 * the INSERT itself. Same columns and values as toDb; the dates as DATETIME(3) text in UTC (the session's
 * time zone, db/knex.ts), each distinct instant formatted once.
 *
 * The multi-row INSERTs of `rows` (the fast path of insertEvents; the relay's scripted fire sends them too):
 * one statement, or several where the rows' text would pass STATEMENT_MAX_BYTES (large payloads: see
 * db/packets.ts). Each says how many of `rows` it holds, in order, and its estimated size.
 */
export function insertEventsStatements(rows: EventInsert[], now: Date): EventsStatement[] {
  const times = new Map<number, string>();
  const at = (d: Date | null | undefined): string | null => {
    if (!d) return null;
    let text = times.get(d.getTime());
    if (text === undefined) times.set(d.getTime(), (text = dbTime(d)));
    return text;
  };
  const nowText = at(now);
  // Each row's JSON columns serialised once: their size decides the cuts, their text is the bound value.
  const serialised = rows.map((e) => {
    const payload = e.payload === undefined ? null : JSON.stringify(e.payload);
    const config = e.delivery_config === undefined || e.delivery_config === null ? null : JSON.stringify(e.delivery_config);
    return { e, payload, config, bytes: ROW_BASE_BYTES + textBytes(payload) + textBytes(config) };
  });
  return chunksBySize(serialised, (r) => r.bytes, STATEMENT_MAX_BYTES).map(({ items, bytes }) => {
    const values: Knex.RawBinding[] = [];
    for (const { e, payload, config } of items) {
      values.push(
        e.id,
        e.trigger_id,
        e.trigger_type,
        e.source,
        e.is_test_run ? 1 : 0,
        payload,
        config,
        e.replay_of ?? null,
        at(e.scheduled_for),
        at(e.fired_at),
        at(e.published_at),
        e.published_at ? 'published' : 'pending',
        nowText,
        nowText,
        e.trace_parent ?? null,
      );
    }
    return { sql: insertEventsSql(items.length), values, rows: items.length, bytes };
  });
}

/** One INSERT of insertEventsStatements: `rows` events, about `bytes` of text. */
export interface EventsStatement {
  sql: string;
  values: Knex.RawBinding[];
  rows: number;
  bytes: number;
}

/**
 * Whether a trigger of this type is counted per trigger in trigger_event_counts (and trigger_event_hours). A
 * one-shot trigger (time_scheduled) is not (migration 20261206000001_one_shot_counts.ts): it fires once, so its
 * events are a few index entries to count, and a rollup row per event cost more than it saved. Its stats and
 * its list's totals are counted from its rows; event_counts, the platform's totals, counts every event.
 */
export function countedPerTrigger(type: TriggerType): boolean {
  return type !== 'time_scheduled';
}

/**
 * insertEventsStatements with the rollups counted by the batch instead of row by row: the session tells the
 * event_logs insert trigger to stand aside (@etp_events_counted, migration 20261205000002), the INSERT
 * runs, one grouped upsert per rollup adds the batch's 'fired' counts, and the variable is cleared. The
 * rows are new (pending or published), so 'fired' is the only count they move. The statements belong in
 * one script of a transaction: if any fails, the rest do not run and the transaction is rolled back, and
 * ScriptTransaction's rollback clears the variable too.
 */
export function insertCountedEventsStatements(rows: EventInsert[], now: Date): Array<{ sql: string; values: unknown[] }> {
  if (rows.length === 0) return [];
  // Keyed by the minute's instant; each minute is formatted once (a batch fired at one `now` has one).
  const minutes = new Map<number, string>();
  const byMinute = new Map<string, number>();
  const byTrigger = new Map<string, { trigger: string; minute: string; source: EventSource; n: number }>();
  for (const e of rows) {
    const at = floorMinute(e.fired_at).getTime();
    let minute = minutes.get(at);
    if (minute === undefined) minutes.set(at, (minute = dbTime(new Date(at))));
    byMinute.set(minute, (byMinute.get(minute) ?? 0) + 1);
    if (e.trigger_id === null || !countedPerTrigger(e.trigger_type)) continue;
    const key = `${e.trigger_id} ${minute} ${e.source}`;
    const c = byTrigger.get(key);
    if (c) c.n++;
    else byTrigger.set(key, { trigger: e.trigger_id, minute, source: e.source, n: 1 });
  }
  const statements = [
    { sql: 'SET @etp_events_counted = 1', values: [] },
    ...insertEventsStatements(rows, now),
    {
      sql: `INSERT INTO event_counts (minute, kind, slot, n) VALUES ${[...byMinute].map(() => `(?, 'fired', ${SLOT}, ?)`).join(',')}
              ON DUPLICATE KEY UPDATE n = n + VALUES(n)`,
      values: [...byMinute].flat(),
    },
  ];
  if (byTrigger.size > 0) {
    // In key order, so that concurrent batches lock the rows they share in the same order.
    const counts = [...byTrigger].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, c]) => c);
    statements.push({
      sql: `INSERT INTO trigger_event_counts (trigger_id, minute, source, kind, slot, n)
              VALUES ${counts.map(() => `(?, ?, ?, 'fired', ${SLOT}, ?)`).join(',')}
              ON DUPLICATE KEY UPDATE n = n + VALUES(n)`,
      values: counts.flatMap((c) => [c.trigger, c.minute, c.source, c.n]),
    });
  }
  statements.push({ sql: EVENTS_COUNTED_BY_TRIGGER, values: [] });
  return statements;
}

/** Gives the counting of inserted events back to the event_logs insert trigger (the default of a session). */
export const EVENTS_COUNTED_BY_TRIGGER = 'SET @etp_events_counted = NULL';

/** A rollup row's slot, as the triggers compute it: concurrent writers mostly update different rows. */
const SLOT = 'CONNECTION_ID() % 4';

function insertEventsSql(n: number): string {
  return `INSERT INTO event_logs (${EVENT_COLUMNS.join(',')}) VALUES ${Array.from({ length: n }, () => EVENT_ROW).join(',')}`;
}

export function fromDb(r: Record<string, unknown>): EventRow {
  return {
    id: r.id as string,
    trigger_id: (r.trigger_id as string | null) ?? null,
    trigger_type: r.trigger_type as TriggerType,
    source: r.source as EventSource,
    is_test_run: Boolean(r.is_test_run),
    payload: parseJson(r.payload),
    delivery_config: parseJson(r.delivery_config),
    replay_of: (r.replay_of as string | null) ?? null,
    scheduled_for: (r.scheduled_for as Date | null) ?? null,
    fired_at: r.fired_at as Date,
    published_at: (r.published_at as Date | null) ?? null,
    execution_status: r.execution_status as ExecutionStatus,
    attempts: Number(r.attempts),
    response_status: r.response_status === null || r.response_status === undefined ? null : Number(r.response_status),
    latency_ms: r.latency_ms === null || r.latency_ms === undefined ? null : Number(r.latency_ms),
    error_message: (r.error_message as string | null) ?? null,
    next_attempt_at: (r.next_attempt_at as Date | null) ?? null,
    trace_parent: (r.trace_parent as string | null) ?? null,
    created_at: r.created_at as Date,
    updated_at: r.updated_at as Date,
  };
}

export type RetentionStatus = 'active' | 'archived';

/**
 * Retention follows from age alone: an event fired at or after `activeFrom` is active, one fired at or
 * after `keepFrom` (and before `activeFrom`) is archived, and an older one is gone, whether or not the
 * sweep has deleted its row yet. Nothing is rewritten when an event changes state.
 */
export interface RetentionWindow {
  activeFrom: Date;
  keepFrom: Date;
}

export function retentionWindow(now: Date, activeSeconds: number, keepSeconds: number): RetentionWindow {
  return { activeFrom: new Date(now.getTime() - activeSeconds * 1000), keepFrom: new Date(now.getTime() - keepSeconds * 1000) };
}

/** null: past the window (deleted, or about to be). */
export function retentionOf(firedAt: Date, w: RetentionWindow): RetentionStatus | null {
  if (firedAt >= w.activeFrom) return 'active';
  return firedAt >= w.keepFrom ? 'archived' : null;
}

/**
 * Inserts event logs and returns the ids actually inserted. The fast path is one multi-row INSERT (several
 * for large payloads); if an id already exists (an occurrence re-run after a crash that had in fact
 * committed), that statement falls back to INSERT IGNORE row by row, so an existing event log is never
 * doubled and its id is left out of the result.
 */
export async function insertEvents(trx: Knex.Transaction, rows: EventInsert[], now: Date): Promise<Set<string>> {
  const inserted = new Set<string>();
  let from = 0;
  for (const batch of insertEventsStatements(rows, now)) {
    const chunk = rows.slice(from, (from += batch.rows));
    if (await insertUnlessDuplicate(trx, () => trx.raw(batch.sql, batch.values))) {
      for (const r of chunk) inserted.add(r.id);
      continue;
    }
    for (const r of chunk) {
      const values = toDb(r, now);
      const cols = Object.keys(values);
      // Only "??" / "?" placeholders are put into the text; column names and values are bound.
      const sql = `INSERT IGNORE INTO event_logs (${cols.map(() => '??').join(',')}) VALUES (${cols.map(() => '?').join(',')})`;
      const [res] = (await trx.raw(sql, [...cols, ...Object.values(values)] as Knex.RawBinding[])) as [{ affectedRows: number }];
      if (res.affectedRows === 1) inserted.add(r.id);
    }
  }
  return inserted;
}

export async function getEvent(q: Q, id: string): Promise<EventRow | null> {
  const row = (await q('event_logs').where({ id }).first()) as Record<string, unknown> | undefined;
  return row ? fromDb(row) : null;
}

export interface EventFilter {
  trigger_id?: string;
  source?: EventSource;
  execution_status?: ExecutionStatus;
  retention: RetentionStatus;
  window: RetentionWindow;
  is_test_run?: boolean;
  from?: Date;
  to?: Date;
}

function applyFilter(b: Knex.QueryBuilder, f: EventFilter): void {
  if (f.retention === 'active') b.where('fired_at', '>=', f.window.activeFrom);
  else b.where('fired_at', '>=', f.window.keepFrom).andWhere('fired_at', '<', f.window.activeFrom);
  if (f.trigger_id) b.where('trigger_id', f.trigger_id);
  if (f.source) b.where('source', f.source);
  if (f.execution_status) b.where('execution_status', f.execution_status);
  if (f.is_test_run !== undefined) b.where('is_test_run', f.is_test_run ? 1 : 0);
  if (f.from) b.where('fired_at', '>=', f.from);
  if (f.to) b.where('fired_at', '<', f.to);
}

export interface Cursor {
  fired_at: Date;
  id: string;
}

/**
 * The list query names its index instead of leaving it to the optimizer: each candidate has the filter's
 * equality columns first and ends in (fired_at, id), so the read is one range, newest first, that stops
 * after the page (no sort, no scan of rows the filter drops). Left to itself the optimizer could take an
 * index that bounds the range a cursor gives and then walk back from the newest row discarding everything
 * above the cursor. A filter on source or is_test_run alone is checked on the rows of the range.
 * A trigger's events without a status filter have no index of their own (one per-trigger B-tree fewer to
 * write on every insert and to delete from on every retention batch; see docs/history.md): they are read
 * as one range of idx_events_trigger_status_fired per status, merged (see triggerRanges).
 */
export function listIndex(f: Pick<EventFilter, 'trigger_id' | 'execution_status'>): string {
  if (f.trigger_id) return 'idx_events_trigger_status_fired';
  return f.execution_status ? 'idx_events_status_fired' : 'idx_events_fired';
}

/**
 * The filters whose ranges, together, make up `f`'s: a trigger without a status becomes that trigger with
 * each status in turn (four ranges of idx_events_trigger_status_fired); anything else is one range.
 */
export function triggerRanges<F extends { trigger_id?: string; execution_status?: ExecutionStatus }>(f: F): F[] {
  return f.trigger_id && !f.execution_status ? EXECUTION_STATUSES.map((s) => ({ ...f, execution_status: s })) : [f];
}

/**
 * Several ranges read as one statement, `(part) UNION ALL (part) …`, merged on (fired_at, id) in `order`
 * and cut to `limit` rows after `offset`. Each part is ordered the same way and limited to offset + limit
 * rows by the caller, so the statement reads at most parts × (offset + limit) index entries and sorts as
 * many rows; one part is run as it is (with the outer limit and offset).
 */
export async function mergedRanges(
  q: Q,
  parts: Knex.QueryBuilder[],
  order: 'asc' | 'desc',
  limit: number,
  offset: number,
  timeoutMs: number | null,
): Promise<Record<string, unknown>[]> {
  if (parts.length === 1) {
    const one = parts[0]!.clone().limit(limit).offset(offset);
    return (await (timeoutMs === null ? one : one.timeout(timeoutMs, { cancel: true }))) as Record<string, unknown>[];
  }
  const union = unionAll(parts);
  const orderBy = order === 'asc' ? ' ORDER BY fired_at ASC, id ASC' : ' ORDER BY fired_at DESC, id DESC';
  // Knex-compiled parts with `?` placeholders and a fixed tail: every value is a binding.
  const sql = union.sql.slice(1, -1) + orderBy + ' LIMIT ? OFFSET ?';
  const raw = q.raw(sql, [...union.bindings, limit, offset]);
  const [rows] = (await (timeoutMs === null ? raw : raw.timeout(timeoutMs, { cancel: true }))) as [Record<string, unknown>[]];
  return rows;
}

/**
 * `((part) UNION ALL (part) …)`: the parts as knex compiled them, with `?` placeholders (their values stay
 * bindings, never text), wrapped in parentheses as a derived table needs them.
 */
function unionAll(parts: Knex.QueryBuilder[]): { sql: string; bindings: Knex.RawBinding[] } {
  const natives = parts.map((p) => p.toSQL().toNative());
  return {
    sql: '(' + natives.map((n) => '(' + n.sql + ')').join(' UNION ALL ') + ')',
    bindings: natives.flatMap((n) => n.bindings) as Knex.RawBinding[],
  };
}

/** Offset pages count their matches up to this many, and no further (a read of at most this many entries). */
export const COUNT_CAP = 10_000;

/** Newest first on (fired_at, id); a cursor continues strictly after the last row of the previous page. */
export async function listEvents(
  q: Q,
  f: EventFilter,
  limit: number,
  page: { offset: number } | { cursor: Cursor | null },
  timeoutMs: number,
): Promise<{ rows: EventRow[]; total: number | null }> {
  const index = listIndex(f);
  const range = (rf: EventFilter) => q(q.raw('?? FORCE INDEX (??)', ['event_logs', index])).modify((b) => applyFilter(b, rf));
  const newestFirst = [
    { column: 'fired_at', order: 'desc' },
    { column: 'id', order: 'desc' },
  ];
  if ('cursor' in page) {
    const c = page.cursor;
    const parts = triggerRanges(f).map((rf) => {
      const select = range(rf);
      if (c) {
        select.where((b) =>
          b.where('fired_at', '<', c.fired_at).orWhere((b2) => b2.where('fired_at', '=', c.fired_at).andWhere('id', '<', c.id)),
        );
      }
      return select.orderBy(newestFirst).limit(limit);
    });
    const rows = await mergedRanges(q, parts, 'desc', limit, 0, timeoutMs);
    return { rows: rows.map(fromDb), total: null };
  }
  const parts = triggerRanges(f).map((rf) =>
    range(rf)
      .orderBy(newestFirst)
      .limit(page.offset + limit),
  );
  // One statement after the other: on a bounded read's connection a statement killed for time must not
  // leave the next one queued behind it.
  const rows = (await mergedRanges(q, parts, 'desc', limit, page.offset, timeoutMs)).map(fromDb);
  const span = rollupSpan(f);
  if (span && (span.trigger_id === undefined || (await countedTrigger(q, span.trigger_id, rows, timeoutMs)))) {
    return { rows, total: await totalFromRollups(q, f, span, range, timeoutMs) };
  }
  // Any other filter: the same index ranges counted, stopping after COUNT_CAP + 1 entries (each).
  const counted = triggerRanges(f).map((rf) =>
    range(rf)
      .select(q.raw('1'))
      .limit(COUNT_CAP + 1),
  );
  return { rows, total: await cappedCount(q, counted, timeoutMs) };
}

/**
 * Whether a trigger's events are in the per-trigger rollups (countedPerTrigger of its type), from one of its
 * events: a trigger's type never changes, and the events of a deleted trigger keep it. The page just read holds
 * some when it is not empty; else the first entry of the trigger's range of idx_events_trigger_status_fired is
 * read. A trigger without events has nothing to count either way.
 */
async function countedTrigger(q: Q, triggerId: string, page: EventRow[], timeoutMs: number): Promise<boolean> {
  if (page.length > 0) return countedPerTrigger(page[0]!.trigger_type);
  const [row] = (await q(q.raw('?? FORCE INDEX (??)', ['event_logs', 'idx_events_trigger_status_fired']))
    .select('trigger_type')
    .where('trigger_id', triggerId)
    .limit(1)
    .timeout(timeoutMs, { cancel: true })) as Array<{ trigger_type: TriggerType }>;
  return row ? countedPerTrigger(row.trigger_type) : true;
}

/** COUNT(*) over the parts' rows (each part limited by the caller), at most COUNT_CAP + 1. */
async function cappedCount(q: Q, parts: Knex.QueryBuilder[], timeoutMs: number): Promise<number> {
  const [row] = await q
    .from(derivedUnion(q, parts, 'm'))
    .count<{ n: number }[]>({ n: '*' })
    .timeout(timeoutMs, { cancel: true });
  return Math.min(Number(row?.n ?? 0), COUNT_CAP + 1);
}

/** The parts as one derived table named `alias` for a FROM clause: one part as it is, several as their UNION ALL. */
function derivedUnion(q: Q, parts: Knex.QueryBuilder[], alias: string): Knex.QueryBuilder | Knex.Raw {
  if (parts.length === 1) return parts[0]!.as(alias);
  const union = unionAll(parts);
  const derived = union.sql + ' AS ??'; // knex-compiled parts, values bound (see unionAll); the alias an identifier
  return q.raw(derived, [...union.bindings, alias]);
}

/**
 * The part of a view the rollups count whole, for the filters they count: the retention view alone or of one
 * trigger (one source of it, too), with the success or failure status or none. event_counts and
 * event_hours count every event fired, and of those the ones that ended in success and in failure;
 * trigger_event_counts and trigger_event_hours the same per trigger and source; all in the transaction that
 * writes the event or its outcome. `from`: the view's start rounded up to a whole minute, or to a whole hour
 * where its hour has been folded into the hour tables (statsFrom: a folded hour counts whole or not at all);
 * `to`: the view's end rounded down to a whole minute (the archived view; the active view has no end). Null
 * for any other filter, or where the view is too short to hold a whole minute.
 */
export function rollupSpan(
  f: Pick<EventFilter, 'retention' | 'window' | 'execution_status' | 'trigger_id' | 'source' | 'is_test_run' | 'from' | 'to'>,
): RollupSpan | null {
  const kind = f.execution_status ?? 'fired';
  if (kind !== 'fired' && kind !== 'success' && kind !== 'failure') return null;
  if (f.is_test_run !== undefined || f.from || f.to) return null;
  if (f.source !== undefined && f.trigger_id === undefined) return null; // event_counts has no source
  const lo = f.retention === 'active' ? f.window.activeFrom : f.window.keepFrom;
  const hi = f.retention === 'active' ? null : f.window.activeFrom;
  const from = ceilMinute(statsFrom(lo, f.window));
  const to = hi && floorMinute(hi);
  if (to && to <= from) return null;
  return { kind, trigger_id: f.trigger_id, source: f.source, from, to };
}

export interface RollupSpan {
  kind: 'fired' | 'success' | 'failure';
  trigger_id?: string;
  source?: EventSource;
  from: Date;
  to: Date | null;
}

/**
 * The rollups' rows wholly inside the span, as one SELECT of their `n`: hour rows whose whole hour is in it,
 * minute rows from `from` (a whole hour where its hour is folded, so no minute row of a folded hour is
 * counted as well as its hour row, but a minute row written after the fold is) to `to`. The view's hours
 * and minutes: at most 48 hour rows and three hours of minute rows, 60 × 4 slots each, per kind (and
 * source, for a trigger).
 */
function rollupRowsOf(q: Q, span: RollupSpan): Knex.QueryBuilder[] {
  const [hours, minutes] = span.trigger_id ? ['trigger_event_hours', 'trigger_event_counts'] : ['event_hours', 'event_counts'];
  const keyed = (b: Knex.QueryBuilder) => {
    if (span.trigger_id) b.where('trigger_id', span.trigger_id);
    if (span.source) b.where('source', span.source);
    b.where('kind', span.kind);
  };
  const b = rollupBounds(span.from, span.to);
  const h = q(hours).select('n').modify(keyed).where('hour', '>=', b.hourFrom);
  const m = q(minutes).select('n').modify(keyed).where('minute', '>=', b.minuteFrom);
  if (b.hourTo && b.minuteTo) {
    h.where('hour', '<=', b.hourTo);
    m.where('minute', '<', b.minuteTo);
  }
  return [h, m];
}

/**
 * An offset page's total for a view rollupSpan covers, exact up to the cap, without reading the view's rows:
 * the rollups' rows wholly inside [from, to), plus the view's rows before `from` and after `to`, counted on
 * the list's index ranges (a part of a minute at each end; an hour at most at the archived view's start,
 * whose hour is folded). Where the rollups alone pass the cap, the ends are not read. The view's events are
 * never deleted (retention removes older ones, their rollup rows too), so nothing is counted that the view
 * does not hold. Assumes, as the trigger stats and the overview do, that the sweep folds no minute of the
 * active window's hour or the hour before it (relays' clocks within an hour of the API's).
 */
async function totalFromRollups(
  q: Q,
  f: EventFilter,
  span: RollupSpan,
  range: (rf: EventFilter) => Knex.QueryBuilder,
  timeoutMs: number,
): Promise<number> {
  const sum = q.from(derivedUnion(q, rollupRowsOf(q, span), 'c')).sum({ n: 'n' });
  const [row] = (await sum.timeout(timeoutMs, { cancel: true })) as Array<{ n: number | string | null }>;
  const whole = Number(row?.n ?? 0);
  if (whole > COUNT_CAP) return COUNT_CAP + 1;
  const { from, to } = span;
  const ends = triggerRanges(f).map((rf) =>
    range(rf)
      .where((b) => {
        b.where('fired_at', '<', from);
        if (to) b.orWhere('fired_at', '>=', to);
      })
      .select(q.raw('1'))
      .limit(COUNT_CAP + 1 - whole),
  );
  return Math.min(whole + (await cappedCount(q, ends, timeoutMs)), COUNT_CAP + 1);
}

export interface TriggerStats {
  /** The start of the counted span: `since`, or the next whole hour where `since` falls in folded hours (see statsFrom). */
  window_from: Date;
  total: number;
  by_execution_status: Record<string, number>;
  by_source: Record<string, number>;
  by_retention_status: Record<string, number>;
  last_fired_at: Date | null;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
export const floorMinute = (d: Date): Date => new Date(Math.floor(d.getTime() / MINUTE_MS) * MINUTE_MS);
const floorHour = (d: Date): Date => new Date(Math.floor(d.getTime() / HOUR_MS) * HOUR_MS);
const ceilHour = (d: Date): Date => new Date(Math.ceil(d.getTime() / HOUR_MS) * HOUR_MS);
const ceilMinute = (d: Date): Date => new Date(Math.ceil(d.getTime() / MINUTE_MS) * MINUTE_MS);

/**
 * The minute rows of trigger_event_counts before this instant are folded into trigger_event_hours by the
 * relay's sweep: whole hours that ended an hour or more before the active window's start. The margin keeps
 * the active/archived boundary (which the stats split exactly) in minute rows, also for a reader whose
 * clock is a little off. The API and the relays must share RETENTION_ACTIVE_SECONDS, as they do for every
 * retention rule.
 */
export function foldBefore(w: RetentionWindow): Date {
  return floorHour(new Date(w.activeFrom.getTime() - HOUR_MS));
}

/**
 * Where a trigger's stats from `since` start: `since` itself while its minute still has minute rows, else
 * the next whole hour, as a folded hour is counted whole or not at all. With the default 48 h the span is
 * 47–48 h; the API says which in window_from.
 */
export function statsFrom(since: Date, w: RetentionWindow): Date {
  return since < foldBefore(w) ? ceilHour(since) : since;
}

/** The minutes a count must read from rows: those that `since` and the active/archived boundary cut. */
function edgeMinutes(since: Date, w: RetentionWindow): Date[] {
  const cut = [since, w.activeFrom].filter((d) => d >= since && d.getTime() % MINUTE_MS !== 0).map((d) => floorMinute(d).getTime());
  return [...new Set(cut)].map((t) => new Date(t));
}

/**
 * A trigger's events fired since statsFrom(since), by status, source and retention state, read in three
 * bounded parts: whole hours from trigger_event_hours and whole minutes from trigger_event_counts (fired,
 * success, failure; the rollups the event_logs triggers, the fire batch and the sweep's fold keep); the
 * minutes the window's start and the active/archived boundary cut, from the trigger's own rows on
 * idx_events_trigger_status_fired (one range per status and minute); and the trigger's pending events
 * (not yet on Kafka: few) on the same index. Published is what is left. The figures are exact, and the read
 * grows with the window's hours and its last few hours' minutes, not with its events. A trigger the rollups do
 * not count (countedPerTrigger: a one-shot trigger) is counted from its rows alone.
 */
export async function triggerStats(
  q: Q,
  trigger: { id: string; type: TriggerType },
  since: Date,
  w: RetentionWindow,
  timeoutMs: number,
): Promise<TriggerStats> {
  const from = statsFrom(since, w);
  const parts = countedPerTrigger(trigger.type)
    ? await triggerStatsParts(q, trigger.id, from, w, timeoutMs)
    : { rollup: [], pending: [], exact: await rowCounts(q, trigger.id, from, w, timeoutMs) };
  return foldTriggerStats(from, parts, await lastFiredSince(q, trigger.id, from, timeoutMs));
}

/**
 * A trigger's events from `since` by retention state, source and status, counted from its rows on
 * idx_events_trigger_status_fired (one range per status): the stats of a trigger the rollups do not count (a
 * one-shot trigger: its occurrence, its test runs and its replays).
 */
function rowCounts(q: Q, triggerId: string, since: Date, w: RetentionWindow, timeoutMs: number): Promise<StatsParts['exact']> {
  return statusCounts(q, triggerId, w).andWhere('fired_at', '>=', since).timeout(timeoutMs, { cancel: true }) as unknown as Promise<
    StatsParts['exact']
  >;
}

/**
 * A trigger's rows counted by retention state, source and status, for the caller to bound by fired_at. Every
 * status is named, so the read is one range of idx_events_trigger_status_fired per (trigger, status, bound),
 * not the trigger's whole history.
 */
function statusCounts(q: Q, triggerId: string, w: RetentionWindow): Knex.QueryBuilder {
  return q(q.raw('?? FORCE INDEX (??)', ['event_logs', 'idx_events_trigger_status_fired']))
    .select(q.raw('fired_at >= ? AS active', [w.activeFrom]), 'source', 'execution_status')
    .count({ n: '*' })
    .where('trigger_id', triggerId)
    .whereIn('execution_status', EXECUTION_STATUSES)
    .groupBy('active', 'source', 'execution_status');
}

type StatsPart = { active: number; source: string; n: number };

interface StatsParts {
  /** Whole hours from trigger_event_hours and whole minutes from trigger_event_counts: fired, success and failure counts. */
  rollup: Array<StatsPart & { kind: 'fired' | 'success' | 'failure' }>;
  /** Pending events outside the cut minutes, from the rows. */
  pending: StatsPart[];
  /** The cut minutes, by status, from the rows. */
  exact: Array<StatsPart & { execution_status: ExecutionStatus }>;
}

/** The three counted parts of triggerStats, one statement after the other. */
async function triggerStatsParts(q: Q, triggerId: string, since: Date, w: RetentionWindow, timeoutMs: number): Promise<StatsParts> {
  const edges = edgeMinutes(since, w);
  const inEdge = (b: Knex.QueryBuilder) => {
    for (const m of edges) {
      b.orWhere((r) => r.where('fired_at', '>=', m < since ? since : m).andWhere('fired_at', '<', new Date(m.getTime() + MINUTE_MS)));
    }
  };
  const outsideEdges = (b: Knex.QueryBuilder) => {
    for (const m of edges) {
      b.whereNot((r) => r.where('fired_at', '>=', m).andWhere('fired_at', '<', new Date(m.getTime() + MINUTE_MS)));
    }
  };
  // Each part runs when called, one after the other (see listEvents).
  const rowsOf =
    <T>(b: Knex.QueryBuilder) =>
    () =>
      b.timeout(timeoutMs, { cancel: true }) as unknown as Promise<T[]>;
  // A rollup's counts from `since` on, split at the active boundary: the hour rows, then the minute rows
  // but the edge minutes (counted from the rows below).
  const rollupOf = (table: 'trigger_event_hours' | 'trigger_event_counts', at: 'hour' | 'minute', skip: Date[]) =>
    rowsOf<StatsParts['rollup'][number]>(
      q(table)
        .select(q.raw('?? >= ? AS active', [at, w.activeFrom]), 'source', 'kind')
        .sum({ n: 'n' })
        .where('trigger_id', triggerId)
        .andWhere(at, '>=', since)
        .modify((b) => {
          if (skip.length > 0) b.whereNotIn(at, skip);
        })
        .groupBy('active', 'source', 'kind'),
    );
  const hours = rollupOf('trigger_event_hours', 'hour', []);
  const minutes = rollupOf('trigger_event_counts', 'minute', edges);
  const pending = rowsOf<StatsPart>(
    q(q.raw('?? FORCE INDEX (??)', ['event_logs', 'idx_events_trigger_status_fired']))
      .select(q.raw('fired_at >= ? AS active', [w.activeFrom]), 'source')
      .count({ n: '*' })
      .where({ trigger_id: triggerId, execution_status: 'pending' })
      .andWhere('fired_at', '>=', since)
      .modify(outsideEdges)
      .groupBy('active', 'source'),
  );
  const exact =
    edges.length === 0 ? () => Promise.resolve([]) : rowsOf<StatsParts['exact'][number]>(statusCounts(q, triggerId, w).andWhere(inEdge));
  return { rollup: [...(await hours()), ...(await minutes())], pending: await pending(), exact: await exact() };
}

/** When the trigger last fired since `since`: the newest entry of each status's range, one dive each, the latest of them. */
async function lastFiredSince(q: Q, triggerId: string, since: Date, timeoutMs: number): Promise<Date | null> {
  const rows = (await mergedRanges(
    q,
    triggerRanges<{ trigger_id: string; execution_status?: ExecutionStatus }>({ trigger_id: triggerId }).map((r) =>
      q(q.raw('?? FORCE INDEX (??)', ['event_logs', 'idx_events_trigger_status_fired']))
        .select('fired_at', 'id')
        .where({ trigger_id: triggerId, execution_status: r.execution_status! })
        .andWhere('fired_at', '>=', since)
        .orderBy([
          { column: 'fired_at', order: 'desc' },
          { column: 'id', order: 'desc' },
        ])
        .limit(1),
    ),
    'desc',
    1,
    0,
    timeoutMs,
  )) as Array<{ fired_at: Date }>;
  return rows[0]?.fired_at ?? null;
}

/** The figures from the parts: published is what is left of the fired after the other statuses. */
function foldTriggerStats(from: Date, { rollup, pending, exact }: StatsParts, lastFiredAt: Date | null): TriggerStats {
  const stats: TriggerStats = {
    window_from: from,
    total: 0,
    by_execution_status: { pending: 0, published: 0, success: 0, failure: 0 },
    by_source: { webhook: 0, scheduler: 0, 'manual-test': 0, replay: 0 },
    by_retention_status: { active: 0, archived: 0 },
    last_fired_at: lastFiredAt,
  };
  const fired = (r: StatsPart, published: number) => {
    const n = Number(r.n);
    const retention = Number(r.active) === 1 ? 'active' : 'archived';
    stats.total += n;
    stats.by_source[r.source] = (stats.by_source[r.source] ?? 0) + n;
    stats.by_retention_status[retention] = (stats.by_retention_status[retention] ?? 0) + n;
    stats.by_execution_status.published! += published;
  };
  const status = (s: ExecutionStatus, n: number) => {
    stats.by_execution_status[s]! += n;
    stats.by_execution_status.published! -= n;
  };
  for (const r of rollup) {
    if (r.kind === 'fired') fired(r, Number(r.n));
    else status(r.kind, Number(r.n));
  }
  for (const r of pending) status('pending', Number(r.n));
  for (const r of exact) {
    fired(r, Number(r.n));
    if (r.execution_status !== 'published') status(r.execution_status, Number(r.n));
  }
  return stats;
}

/** The sliced event tables (db/partitions.ts), children first: deleteBefore's order. */
const EVENT_TABLES_CHILDREN_FIRST = [...SLICED_TABLES].sort((a, b) => Number(a.table === 'event_logs') - Number(b.table === 'event_logs'));

/** Deletes a table's rows (`??`: table, then its event id column as `t.<column>`) by a JSON array of event ids. */
const DELETE_BY_EVENT_IDS = `DELETE t FROM JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin PATH '$')) AS k
  JOIN ?? AS t ON ?? = k.id`;

/**
 * Retention of the rows no time slice retires (see db/partitions.ts): events fired before `before`, oldest
 * first, at most `limit`, with their attempts and replay rows (no foreign key cascades on partitioned
 * tables). A range of idx_events_fired finds them; each is then deleted by its primary key, the keys handed
 * over as one JSON list. Each batch is short statements of its own, so several relays can run it at once.
 */
export async function deleteBefore(q: Q, before: Date, limit: number): Promise<number> {
  const [rows] = (await q.raw('SELECT id FROM event_logs FORCE INDEX (idx_events_fired) WHERE fired_at < ? ORDER BY fired_at, id LIMIT ?', [
    before,
    limit,
  ])) as [Array<{ id: string }>];
  if (rows.length === 0) return 0;
  const keys = JSON.stringify(rows.map((r) => r.id));
  // The children first: a stop between the statements leaves events to delete next time, never orphans.
  let deleted = 0;
  for (const { table, column } of EVENT_TABLES_CHILDREN_FIRST) {
    const [res] = (await q.raw(DELETE_BY_EVENT_IDS, [keys, table, `t.${column}`])) as [{ affectedRows: number }];
    deleted = res.affectedRows;
  }
  return deleted; // the last statement's: event_logs rows
}

/** Retention of the rollups: minutes and hours wholly before `before`, oldest first, at most `limit` rows per table. */
export async function deleteCountsBefore(q: Q, before: Date, limit: number): Promise<number> {
  const m = floorMinute(before);
  const h = floorHour(before);
  const results = (await Promise.all([
    q.raw('DELETE FROM event_counts WHERE minute < ? ORDER BY minute LIMIT ?', [m, limit]),
    q.raw('DELETE FROM trigger_event_counts WHERE minute < ? ORDER BY minute LIMIT ?', [m, limit]),
    q.raw('DELETE FROM event_hours WHERE hour < ? ORDER BY hour LIMIT ?', [h, limit]),
    q.raw('DELETE FROM trigger_event_hours WHERE hour < ? ORDER BY hour LIMIT ?', [h, limit]),
  ])) as Array<[{ affectedRows: number }]>;
  return Math.max(...results.map(([r]) => r.affectedRows));
}

/**
 * A per-minute rollup and the hour table its old minutes are folded into: trigger_event_counts into
 * trigger_event_hours (a trigger's stats), event_counts into event_hours (the overview's 48 h counts, the
 * etp_event_logs gauge). Each statement is written out whole; a minute row and an hour row share the
 * `keys` columns, and the JSON the statements read is `[...keys, minute, slot]` (the rows to delete) and
 * `[...keys, hour, n]` (the sums to add).
 */
export interface Rollup {
  name: 'trigger_event_counts' | 'event_counts';
  keys: readonly string[];
  /** The locking read of the oldest minute rows before `?`, at most `?`. */
  read: string;
  /** Adds the hour sums (JSON) to the hour table. */
  add: string;
  /** Deletes exactly the minute rows read (JSON), each by its whole primary key. */
  remove: string;
}

export const TRIGGER_ROLLUP: Rollup = {
  name: 'trigger_event_counts',
  keys: ['trigger_id', 'source', 'kind'],
  read: `SELECT trigger_id, source, kind, minute, slot, n FROM trigger_event_counts FORCE INDEX (idx_trigger_counts_minute)
          WHERE minute < ? ORDER BY minute LIMIT ? FOR UPDATE NOWAIT`,
  add: `INSERT INTO trigger_event_hours (trigger_id, source, kind, hour, n)
          SELECT trigger_id, source, kind, hour, n FROM JSON_TABLE(?, '$[*]' COLUMNS (
            trigger_id CHAR(36) CHARACTER SET ascii PATH '$[0]', source VARCHAR(16) PATH '$[1]',
            kind VARCHAR(16) PATH '$[2]', hour DATETIME PATH '$[3]', n BIGINT PATH '$[4]')) AS s
          ON DUPLICATE KEY UPDATE n = trigger_event_hours.n + VALUES(n)`,
  remove: `DELETE c FROM JSON_TABLE(?, '$[*]' COLUMNS (
            trigger_id CHAR(36) CHARACTER SET ascii PATH '$[0]', source VARCHAR(16) PATH '$[1]',
            kind VARCHAR(16) PATH '$[2]', minute DATETIME PATH '$[3]', slot TINYINT UNSIGNED PATH '$[4]')) AS k
          JOIN trigger_event_counts AS c
            ON c.trigger_id = k.trigger_id AND c.minute = k.minute AND c.source = k.source AND c.kind = k.kind AND c.slot = k.slot`,
};

export const EVENT_ROLLUP: Rollup = {
  name: 'event_counts',
  keys: ['kind'],
  // The primary key (minute, kind, slot) is the range: oldest minutes first.
  read: `SELECT kind, minute, slot, n FROM event_counts FORCE INDEX (PRIMARY)
          WHERE minute < ? ORDER BY minute LIMIT ? FOR UPDATE NOWAIT`,
  add: `INSERT INTO event_hours (kind, hour, n)
          SELECT kind, hour, n FROM JSON_TABLE(?, '$[*]' COLUMNS (
            kind VARCHAR(16) PATH '$[0]', hour DATETIME PATH '$[1]', n BIGINT PATH '$[2]')) AS s
          ON DUPLICATE KEY UPDATE n = event_hours.n + VALUES(n)`,
  remove: `DELETE c FROM JSON_TABLE(?, '$[*]' COLUMNS (
            kind VARCHAR(16) PATH '$[0]', minute DATETIME PATH '$[1]', slot TINYINT UNSIGNED PATH '$[2]')) AS k
          JOIN event_counts AS c ON c.minute = k.minute AND c.kind = k.kind AND c.slot = k.slot`,
};

/**
 * The rows of event_hours and event_counts wholly inside [from, to) (no end where `to` is null), as the
 * derived table `c (at, kind, n)` for a FROM clause: an hour row where its whole hour is in the span, a
 * minute row where its whole minute is. Folded minutes are hour rows; a minute row written later in a
 * folded hour counts as a minute. The text is fixed; the bounds are bindings, in order.
 */
export function eventRollupRows(from: Date, to: Date | null): { sql: string; bindings: Date[] } {
  const b = rollupBounds(from, to);
  if (!b.hourTo || !b.minuteTo) return { sql: ROLLUP_ROWS_FROM, bindings: [b.hourFrom, b.minuteFrom] };
  return { sql: ROLLUP_ROWS_BETWEEN, bindings: [b.hourFrom, b.hourTo, b.minuteFrom, b.minuteTo] };
}

/**
 * Which rollup rows lie wholly inside [from, to) (no end where `to` is null): hour rows from `hourFrom` to
 * `hourTo` (their hour's start, both included), minute rows from `minuteFrom` and before `minuteTo`. The one
 * rule behind the overview's rows (eventRollupRows) and a page total's (rollupRowsOf).
 */
function rollupBounds(from: Date, to: Date | null): { hourFrom: Date; hourTo: Date | null; minuteFrom: Date; minuteTo: Date | null } {
  return {
    hourFrom: ceilHour(from),
    hourTo: to && new Date(to.getTime() - HOUR_MS),
    minuteFrom: ceilMinute(from),
    minuteTo: to && floorMinute(to),
  };
}

const ROLLUP_ROWS_FROM = `(SELECT hour AS at, kind, n FROM event_hours WHERE hour >= ?
   UNION ALL SELECT minute AS at, kind, n FROM event_counts WHERE minute >= ?) AS c`;
const ROLLUP_ROWS_BETWEEN = `(SELECT hour AS at, kind, n FROM event_hours WHERE hour >= ? AND hour <= ?
   UNION ALL SELECT minute AS at, kind, n FROM event_counts WHERE minute >= ? AND minute < ?) AS c`;

/** Both rollups, in the order the sweep folds them. */
export const ROLLUPS: readonly Rollup[] = [TRIGGER_ROLLUP, EVENT_ROLLUP];

/**
 * Folds the oldest minute rows of `rollup` before `before` (at most `limit`) into its hour table, in one
 * transaction: the rows are locked and read, their sums added to the hours' rows, and exactly those rows
 * deleted, by primary key. Returns the minute rows folded (`limit`: there may be more). A minute row
 * written meanwhile (a late delivery outcome's upsert of a minute the fold is taking) is a row the fold did
 * not read and does not delete: a later fold takes it. An upsert of a row the fold holds waits, and after
 * the commit writes it anew.
 *
 * The read locks with NOWAIT and the DELETE touches only the rows read (each found by its primary key), so a
 * fold never waits for a writer while it holds rows a writer may want: it cannot deadlock with one (where
 * the writer, holding fewer locks, would be the victim). Where a row is locked (another relay's fold, a
 * writer's upsert) the fold gives up at once and returns 0, as it does when it is chosen as a deadlock's
 * victim or, on Galera, loses a conflict at commit to another node's fold: the transaction rolled back
 * whole, and a later sweep folds the rows. The DELETE's row count is checked against the read all the
 * same; a difference rolls the fold back.
 */
export async function foldCountsBefore(db: Knex, rollup: Rollup, before: Date, limit: number): Promise<number> {
  return foldLocked(db, rollup, before, Math.min(limit, FOLD_MAX_ROWS)).catch((err: { errno?: number }) => {
    if (err.errno === ER_LOCK_WAIT_TIMEOUT || err.errno === ER_LOCK_DEADLOCK) return 0;
    throw err;
  });
}

/** The most minute rows one fold takes: its locks last one short transaction (5,000 rows: about 0.15 s on a cold table). */
export const FOLD_MAX_ROWS = 5000;

/** MariaDB's and MySQL's answer to a locking read with NOWAIT that meets a locked row; and a deadlock's victim (or a Galera conflict). */
const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;

type MinuteRow = Record<string, unknown> & { minute: Date; slot: number; n: number | string };

async function foldLocked(db: Knex, rollup: Rollup, before: Date, limit: number): Promise<number> {
  return db.transaction(async (trx) => {
    const [rows] = (await trx.raw(rollup.read, [before, limit])) as [MinuteRow[]];
    if (rows.length === 0) return 0;
    const hours = new Map<string, { keys: unknown[]; hour: Date; n: number }>();
    for (const r of rows) {
      const keys = rollup.keys.map((k) => r[k]);
      const hour = floorHour(r.minute);
      const key = JSON.stringify([...keys, hour.getTime()]);
      const h = hours.get(key);
      if (h) h.n += Number(r.n);
      else hours.set(key, { keys, hour, n: Number(r.n) });
    }
    // In key order, so that concurrent folds lock the hour rows they share in the same order.
    const sums = [...hours]
      .filter(([, h]) => h.n !== 0)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, h]) => [...h.keys, dbTime(h.hour), h.n]);
    if (sums.length > 0) await trx.raw(rollup.add, [JSON.stringify(sums)]);
    // Exactly the rows read, each found by its whole primary key (eq_ref): nothing else is read or locked,
    // however many rows (a WHERE of OR-ed keys is planned as a scan past a few thousand).
    const [res] = (await trx.raw(rollup.remove, [
      JSON.stringify(rows.map((r) => [...rollup.keys.map((k) => r[k]), dbTime(r.minute), r.slot])),
    ])) as [{ affectedRows: number }];
    if (res.affectedRows !== rows.length) {
      throw new Error(`fold of ${rollup.name} read ${rows.length} minute rows but would delete ${res.affectedRows}: rolled back`);
    }
    return rows.length;
  });
}

export async function updateDeliveryOutcome(
  q: Q,
  id: string,
  o: {
    attempts: number;
    execution_status: ExecutionStatus;
    response_status: number | null;
    latency_ms: number;
    error_message: string | null;
    next_attempt_at?: Date | null;
    now: Date;
  },
): Promise<void> {
  await q('event_logs')
    .where({ id })
    .update({
      attempts: o.attempts,
      execution_status: o.execution_status,
      response_status: o.response_status,
      latency_ms: o.latency_ms,
      error_message: o.error_message === null ? null : errorText(o.error_message),
      next_attempt_at: o.next_attempt_at ?? null,
      updated_at: o.now,
    });
}

export interface DeliveryOutcomeUpdate {
  id: string;
  attempts: number;
  execution_status: ExecutionStatus;
  response_status: number | null;
  latency_ms: number;
  error_message: string | null;
  /** The follow-up's available_at when a retry or deferral is scheduled; null otherwise. */
  next_attempt_at?: Date | null;
}

/**
 * updateDeliveryOutcome for many events in ONE statement: each column is a CASE over the primary key, and
 * the WHERE is a primary-key IN list (a range read; the literals are compared in the column's own ascii
 * collation, so the index is used — a join to a derived table of literals would compare in the
 * connection's utf8mb4 and could scan). Ids are sorted, so two workers lock shared rows in the same order.
 */
export async function updateDeliveryOutcomes(q: Q, rows: DeliveryOutcomeUpdate[], now: Date): Promise<void> {
  if (rows.length === 0) return;
  if (rows.length === 1) {
    const [r] = rows;
    return updateDeliveryOutcome(q, r!.id, { ...r!, now });
  }
  const sorted = [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const bindings: Knex.RawBinding[] = [];
  const column = (name: string, value: (r: DeliveryOutcomeUpdate) => Knex.RawBinding): string => {
    for (const r of sorted) bindings.push(r.id, value(r));
    return `${name} = CASE id ${sorted.map(() => 'WHEN ? THEN ?').join(' ')} END`;
  };
  // Only fixed column names and "?" placeholders go into the text; every value is bound.
  const sets = [
    column('attempts', (r) => r.attempts),
    column('execution_status', (r) => r.execution_status),
    column('response_status', (r) => r.response_status),
    column('latency_ms', (r) => Math.max(0, Math.round(r.latency_ms))),
    column('error_message', (r) => (r.error_message === null ? null : errorText(r.error_message))),
    column('next_attempt_at', (r) => r.next_attempt_at ?? null),
  ];
  bindings.push(now, ...sorted.map((r) => r.id));
  const sql = `UPDATE event_logs SET ${sets.join(', ')}, updated_at = ? WHERE id IN (${sorted.map(() => '?').join(',')})`;
  await q.raw(sql, bindings);
}

/** What the worker needs of an event, with the current version of its trigger (null: no trigger row). */
export interface EventForDelivery {
  id: string;
  trigger_id: string | null;
  payload: unknown;
  delivery_config: unknown;
  fired_at: Date;
  execution_status: ExecutionStatus;
  attempts: number;
  /** triggers.version now; null when the event has no trigger or its trigger was deleted. */
  trigger_version: number | null;
  /** The event's traceparent: the delivery continues its trace when the message carries none. */
  trace_parent: string | null;
}

/**
 * A Kafka batch's events in one statement: primary-key lookups of event_logs, each joined (eq_ref) to its
 * trigger's primary key for the version only — the worker's trigger cache reloads a config only when that
 * version moved, so an edit takes effect from the next batch on.
 */
export async function eventsForDelivery(q: Q, ids: string[]): Promise<Map<string, EventForDelivery>> {
  const out = new Map<string, EventForDelivery>();
  if (ids.length === 0) return out;
  // Only "?" placeholders are put into the text; the ids are bound.
  const sql = `SELECT e.id, e.trigger_id, e.payload, e.delivery_config, e.fired_at, e.execution_status, e.attempts,
                      e.trace_parent, t.version AS trigger_version
                 FROM event_logs e LEFT JOIN triggers t ON t.id = e.trigger_id
                WHERE e.id IN (${ids.map(() => '?').join(',')})`;
  const [rows] = (await q.raw(sql, ids)) as [Array<Record<string, unknown>>];
  for (const r of rows) {
    out.set(r.id as string, {
      id: r.id as string,
      trigger_id: (r.trigger_id as string | null) ?? null,
      payload: parseJson(r.payload),
      delivery_config: parseJson(r.delivery_config),
      fired_at: r.fired_at as Date,
      execution_status: r.execution_status as ExecutionStatus,
      attempts: Number(r.attempts),
      trigger_version: r.trigger_version === null || r.trigger_version === undefined ? null : Number(r.trigger_version),
      trace_parent: (r.trace_parent as string | null) ?? null,
    });
  }
  return out;
}

export interface ReplayFilter {
  /** The retention window's start: older events are gone, even before the sweep deletes their rows. */
  keepFrom: Date;
  trigger_id?: string;
  execution_status?: ExecutionStatus;
  from?: Date;
  to?: Date;
}

/**
 * One batch of a bulk replay: events of either retention state, oldest first on (fired_at, id), strictly
 * after `after` (keyset paging, so each batch is a short index range read) and fired before `before` (the
 * request's start, so the replays the request itself writes are never picked up). The list's index for
 * the same filter (see listIndex) serves the range and the order (a trigger without a status: one range per
 * status, merged).
 */
export async function eventsToReplay(q: Q, f: ReplayFilter, before: Date, after: Cursor | null, limit: number): Promise<EventRow[]> {
  const index = listIndex(f);
  const to = f.to && f.to.getTime() < before.getTime() ? f.to : before;
  const parts = triggerRanges(f).map((f) =>
    q(q.raw('?? FORCE INDEX (??)', ['event_logs', index]))
      .modify((b) => {
        if (f.trigger_id) b.where('trigger_id', f.trigger_id);
        if (f.execution_status) b.where('execution_status', f.execution_status);
        b.where('fired_at', '>=', f.from && f.from > f.keepFrom ? f.from : f.keepFrom);
        b.where('fired_at', '<', to);
        if (after)
          b.where((w) =>
            w
              .where('fired_at', '>', after.fired_at)
              .orWhere((w2) => w2.where('fired_at', '=', after.fired_at).andWhere('id', '>', after.id)),
          );
      })
      .orderBy([
        { column: 'fired_at', order: 'asc' },
        { column: 'id', order: 'asc' },
      ])
      .limit(limit),
  );
  const rows = await mergedRanges(q, parts, 'asc', limit, 0, null);
  return rows.map(fromDb);
}

/** An event's delivery state as the worker's outcome transaction sees it, with the row locked. */
export interface DeliveryState {
  execution_status: ExecutionStatus;
  attempts: number;
}

/**
 * Locks a batch's event rows (primary-key reads, ids sorted so two workers lock shared rows in the same
 * order) at the start of the worker's outcome transaction, and returns their state. The rows are updated
 * in that transaction anyway, so this takes the same locks a little earlier: an operator's cancel
 * (cancelDelivery) either committed before — and the worker sees the event final and writes nothing of
 * it — or waits for the outcome's commit and then finds what the worker wrote.
 */
export async function lockForOutcome(trx: Knex.Transaction, ids: string[]): Promise<Map<string, DeliveryState>> {
  const out = new Map<string, DeliveryState>();
  if (ids.length === 0) return out;
  const sorted = [...new Set(ids)].sort();
  const rows = (await trx('event_logs')
    .select('id', 'execution_status', 'attempts')
    .whereIn('id', sorted)
    .orderBy('id')
    .forUpdate()) as Array<{ id: string; execution_status: ExecutionStatus; attempts: number }>;
  for (const r of rows) out.set(r.id, { execution_status: r.execution_status, attempts: Number(r.attempts) });
  return out;
}

/**
 * An operator's cancel: the event ends `failure` with `reason`, and no attempt is waiting any more. A
 * compare-and-set on the status: only an event that has not ended (pending or published) changes, so a
 * cancel racing the worker's last outcome either wins (the worker then finds it final, see lockForOutcome)
 * or changes nothing. Returns whether it changed the row.
 */
export async function cancelDelivery(trx: Knex.Transaction, id: string, reason: string, now: Date): Promise<boolean> {
  const changed = await trx('event_logs')
    .where({ id })
    .whereIn('execution_status', ['pending', 'published'])
    .update({ execution_status: 'failure', error_message: errorText(reason), next_attempt_at: null, updated_at: now });
  return changed === 1;
}

/**
 * An operator's "retry now": the waiting attempt's due time moves to `now`. A compare-and-set on the due
 * time read before (`dueAt`): if the worker recorded anything since, the row no longer matches and nothing
 * changes. Returns whether it changed the row.
 */
export async function bringAttemptForward(trx: Knex.Transaction, id: string, dueAt: Date, now: Date): Promise<boolean> {
  const changed = await trx('event_logs')
    .where({ id, execution_status: 'published', next_attempt_at: dueAt })
    .update({ next_attempt_at: now, updated_at: now });
  return changed === 1;
}
