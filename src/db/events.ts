import type { Knex } from 'knex';
import type { EventSource } from '../kafka/message';
import type { TriggerType } from '../triggers/types';
import { parseJson } from './knex';

type Q = Knex | Knex.Transaction;

export type ExecutionStatus = 'pending' | 'published' | 'success' | 'failure';

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
}

export interface EventRow extends EventInsert {
  published_at: Date | null;
  execution_status: ExecutionStatus;
  attempts: number;
  response_status: number | null;
  latency_ms: number | null;
  error_message: string | null;
  retention_status: 'active' | 'archived';
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
  };
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
    retention_status: r.retention_status as 'active' | 'archived',
    created_at: r.created_at as Date,
    updated_at: r.updated_at as Date,
  };
}

const ER_DUP_ENTRY = 1062;

/**
 * Inserts event logs and returns the ids actually inserted. The fast path is one multi-row INSERT; if an
 * id already exists (an occurrence re-run after a crash that had in fact committed), it falls back to
 * INSERT IGNORE row by row, so an existing event log is never doubled and its id is left out of the result.
 */
export async function insertEvents(trx: Knex.Transaction, rows: EventInsert[], now: Date): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  try {
    await trx('event_logs').insert(rows.map((r) => toDb(r, now)));
    return new Set(rows.map((r) => r.id));
  } catch (e) {
    if ((e as { errno?: number }).errno !== ER_DUP_ENTRY) throw e;
  }
  const inserted = new Set<string>();
  for (const r of rows) {
    const values = toDb(r, now);
    const cols = Object.keys(values);
    // Only "??" / "?" placeholders are put into the text; column names and values are bound.
    const sql = `INSERT IGNORE INTO event_logs (${cols.map(() => '??').join(',')}) VALUES (${cols.map(() => '?').join(',')})`;
    const [res] = (await trx.raw(sql, [...cols, ...Object.values(values)] as Knex.RawBinding[])) as [{ affectedRows: number }];
    if (res.affectedRows === 1) inserted.add(r.id);
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
  retention_status: 'active' | 'archived';
  is_test_run?: boolean;
  from?: Date;
  to?: Date;
}

function applyFilter(b: Knex.QueryBuilder, f: EventFilter): void {
  b.where('retention_status', f.retention_status);
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
 * The list query names its index instead of leaving it to the optimizer. With a cursor deep in a large
 * table, MariaDB 10.11 prefers `ref` on the index's equality prefix (retention_status, or trigger_id) to
 * the range the cursor gives, and then walks back from the newest row discarding everything above the
 * cursor: a 20-row page 10k rows deep read 6.7k index entries, and 19 with the hint (see the EXPLAIN tests
 * in test/integration/events.test.ts). Both indexes end in (fired_at, id), so either one also serves the
 * ORDER BY without a sort.
 */
function listIndex(f: EventFilter): string {
  return f.trigger_id ? 'idx_events_trigger_fired' : 'idx_events_retention_fired';
}

/** Newest first on (fired_at, id); a cursor continues strictly after the last row of the previous page. */
export async function listEvents(
  q: Q,
  f: EventFilter,
  limit: number,
  page: { offset: number } | { cursor: Cursor | null },
): Promise<{ rows: EventRow[]; total: number | null }> {
  const select = q(q.raw('?? FORCE INDEX (??)', ['event_logs', listIndex(f)])).modify((b) => applyFilter(b, f));
  if ('cursor' in page) {
    const c = page.cursor;
    if (c) {
      select.where((b) =>
        b.where('fired_at', '<', c.fired_at).orWhere((b2) => b2.where('fired_at', '=', c.fired_at).andWhere('id', '<', c.id)),
      );
    }
    const rows = (await select
      .orderBy([
        { column: 'fired_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(limit)) as Record<string, unknown>[];
    return { rows: rows.map(fromDb), total: null };
  }
  const [rows, countRow] = await Promise.all([
    select
      .clone()
      .orderBy([
        { column: 'fired_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(limit)
      .offset(page.offset),
    q('event_logs')
      .modify((b) => applyFilter(b, f))
      .count<{ n: number }[]>({ n: '*' }),
  ]);
  return { rows: (rows as Record<string, unknown>[]).map(fromDb), total: Number(countRow[0]?.n ?? 0) };
}

export interface TriggerStats {
  total: number;
  by_execution_status: Record<string, number>;
  by_source: Record<string, number>;
  by_retention_status: Record<string, number>;
  last_fired_at: Date | null;
}

/** One grouped query over idx_events_trigger_fired (trigger_id, fired_at). */
export async function triggerStats(q: Q, triggerId: string, since: Date): Promise<TriggerStats> {
  const rows = (await q('event_logs')
    .select('execution_status', 'source', 'retention_status')
    .count({ n: '*' })
    .max({ last: 'fired_at' })
    .where('trigger_id', triggerId)
    .andWhere('fired_at', '>=', since)
    .groupBy('execution_status', 'source', 'retention_status')) as Array<{
    execution_status: string;
    source: string;
    retention_status: string;
    n: number;
    last: Date | null;
  }>;
  const stats: TriggerStats = {
    total: 0,
    by_execution_status: { pending: 0, published: 0, success: 0, failure: 0 },
    by_source: { webhook: 0, scheduler: 0, 'manual-test': 0, replay: 0 },
    by_retention_status: { active: 0, archived: 0 },
    last_fired_at: null,
  };
  for (const r of rows) {
    const n = Number(r.n);
    stats.total += n;
    stats.by_execution_status[r.execution_status] = (stats.by_execution_status[r.execution_status] ?? 0) + n;
    stats.by_source[r.source] = (stats.by_source[r.source] ?? 0) + n;
    stats.by_retention_status[r.retention_status] = (stats.by_retention_status[r.retention_status] ?? 0) + n;
    if (r.last && (!stats.last_fired_at || r.last > stats.last_fired_at)) stats.last_fired_at = r.last;
  }
  return stats;
}

/** Retention: active → archived by age, in a bounded batch (several relays may run it at once). */
export async function archiveBefore(q: Q, before: Date, limit: number, now: Date): Promise<number> {
  const [res] = (await q.raw(
    "UPDATE event_logs SET retention_status = 'archived', updated_at = ? WHERE retention_status = 'active' AND fired_at < ? ORDER BY fired_at LIMIT ?",
    [now, before, limit],
  )) as [{ affectedRows: number }];
  return res.affectedRows;
}

/** Retention: a real DELETE after the total window, bounded. */
export async function deleteBefore(q: Q, before: Date, limit: number): Promise<number> {
  const [res] = (await q.raw('DELETE FROM event_logs WHERE fired_at < ? ORDER BY fired_at LIMIT ?', [before, limit])) as [
    { affectedRows: number },
  ];
  return res.affectedRows;
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
      error_message: o.error_message === null ? null : o.error_message.slice(0, 2000),
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
    column('error_message', (r) => (r.error_message === null ? null : r.error_message.slice(0, 2000))),
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
                      t.version AS trigger_version
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
    });
  }
  return out;
}

export interface ReplayFilter {
  trigger_id?: string;
  execution_status?: ExecutionStatus;
  from?: Date;
  to?: Date;
}

/**
 * One batch of a bulk replay: events of either retention state, oldest first on (fired_at, id), strictly
 * after `after` (keyset paging, so each batch is a short index range read) and fired before `before` (the
 * request's start, so the replays the request itself writes are never picked up). With a trigger id,
 * idx_events_trigger_fired (trigger_id, fired_at, id) serves the range and the order; otherwise
 * idx_events_fired (fired_at, + the primary key id) does.
 */
export async function eventsToReplay(q: Q, f: ReplayFilter, before: Date, after: Cursor | null, limit: number): Promise<EventRow[]> {
  const index = f.trigger_id ? 'idx_events_trigger_fired' : 'idx_events_fired';
  const to = f.to && f.to.getTime() < before.getTime() ? f.to : before;
  const rows = (await q(q.raw('?? FORCE INDEX (??)', ['event_logs', index]))
    .modify((b) => {
      if (f.trigger_id) b.where('trigger_id', f.trigger_id);
      if (f.execution_status) b.where('execution_status', f.execution_status);
      if (f.from) b.where('fired_at', '>=', f.from);
      b.where('fired_at', '<', to);
      if (after)
        b.where((w) =>
          w.where('fired_at', '>', after.fired_at).orWhere((w2) => w2.where('fired_at', '=', after.fired_at).andWhere('id', '>', after.id)),
        );
    })
    .orderBy([
      { column: 'fired_at', order: 'asc' },
      { column: 'id', order: 'asc' },
    ])
    .limit(limit)) as Record<string, unknown>[];
  return rows.map(fromDb);
}
