/**
 * The queries behind GET /api/v1/overview (the dashboard's first page). Each reads one index range; none
 * locks anything (plain reads under READ COMMITTED).
 */
import type { Knex } from 'knex';
import type { TriggerType } from '../triggers/types';
import { eventRollupRows, type ExecutionStatus } from './events';
import { OutboxState } from './outbox';
import type { TriggerStatus } from './triggers';

type Q = Knex | Knex.Transaction;

/**
 * Triggers per (type, status), from the trigger_counts rollup (kept by triggers on `triggers`): at most 32
 * rows, however many triggers there are.
 */
export async function triggerCounts(q: Q): Promise<Array<{ type: TriggerType; status: TriggerStatus; n: number }>> {
  const [rows] = (await q.raw('SELECT type, status, SUM(n) AS n FROM trigger_counts GROUP BY type, status HAVING n <> 0')) as [
    Array<{ type: TriggerType; status: TriggerStatus; n: number }>,
  ];
  return rows.map((r) => ({ type: r.type, status: r.status, n: Number(r.n) }));
}

/**
 * Events fired since `from`, split at `activeFrom`, from the rollups (the etp_event_logs gauge): whole hours
 * of event_hours and whole minutes of event_counts, a read of the window's hours and last minutes, not of
 * its events. `from` is a whole minute, and a whole hour where it falls in folded hours (statsFrom).
 */
export async function firedByRetention(q: Q, activeFrom: Date, from: Date): Promise<{ active: number; archived: number }> {
  const rows = eventRollupRows(from, null);
  const sql = 'SELECT at >= ? AS active, SUM(n) AS n FROM ' + rows.sql + " WHERE kind = 'fired' GROUP BY active"; // fixed text
  const [counted] = (await q.raw(sql, [activeFrom, ...rows.bindings])) as [Array<{ active: number; n: number }>];
  const of = (active: number) => Number(counted.find((r) => Number(r.active) === active)?.n ?? 0);
  return { active: of(1), archived: of(0) };
}

/**
 * Events fired in [from, to) (whole minutes) per minute after `from` and execution status: fired, success
 * and failure from the event_counts rollup (a primary-key range of at most minutes × 3 × slots rows,
 * however many events the window holds), pending from idx_events_status_fired (the events not yet on
 * Kafka: few), published the rest. TIMESTAMPDIFF counts minutes from the bound `from`, so the session time
 * zone plays no part.
 */
export async function eventsPerMinute(
  q: Q,
  from: Date,
  to: Date,
  timeoutMs: number,
): Promise<Array<{ minute: number; status: ExecutionStatus; n: number }>> {
  const [[counts], [pending]] = (await Promise.all([
    q
      .raw(
        `SELECT TIMESTAMPDIFF(MINUTE, ?, minute) AS minute, kind, SUM(n) AS n
           FROM event_counts
          WHERE minute >= ? AND minute < ?
          GROUP BY minute, kind`,
        [from, from, to],
      )
      .timeout(timeoutMs, { cancel: true }),
    q
      .raw(
        `SELECT TIMESTAMPDIFF(MINUTE, ?, fired_at) AS minute, COUNT(*) AS n
           FROM event_logs FORCE INDEX (idx_events_status_fired)
          WHERE execution_status = 'pending' AND fired_at >= ? AND fired_at < ?
          GROUP BY minute`,
        [from, from, to],
      )
      .timeout(timeoutMs, { cancel: true }),
  ])) as [[Array<{ minute: number; kind: 'fired' | 'success' | 'failure'; n: number }>], [Array<{ minute: number; n: number }>]];
  const byMinute = new Map<number, Record<ExecutionStatus, number>>();
  const at = (m: number) => {
    let b = byMinute.get(m);
    if (!b) byMinute.set(m, (b = { pending: 0, published: 0, success: 0, failure: 0 }));
    return b;
  };
  for (const r of counts) {
    const n = Number(r.n);
    if (r.kind === 'fired') at(Number(r.minute)).published += n;
    else {
      at(Number(r.minute))[r.kind] += n;
      at(Number(r.minute)).published -= n;
    }
  }
  for (const r of pending) {
    at(Number(r.minute)).pending += Number(r.n);
    at(Number(r.minute)).published -= Number(r.n);
  }
  return [...byMinute].flatMap(([minute, b]) =>
    (Object.keys(b) as ExecutionStatus[]).filter((s) => b[s] !== 0).map((status) => ({ minute, status, n: b[status] })),
  );
}

/**
 * The outbox: rows ready to publish (Ready, what etp_outbox_backlog counts), rows waiting for a
 * later available_at (Waiting), and the creation time of the oldest ready row — all from
 * idx_outbox_claim (published, id): two counts of an index range, and the first row of one.
 */
export async function outboxState(q: Q): Promise<{ backlog: number; waiting: number; oldestCreatedAt: Date | null }> {
  const [[counts], oldest] = (await Promise.all([
    q.raw('SELECT published, COUNT(*) AS n FROM outbox WHERE published IN (?, ?) GROUP BY published', [
      OutboxState.Ready,
      OutboxState.Waiting,
    ]),
    q('outbox').select('created_at').where('published', OutboxState.Ready).orderBy('id').first(),
  ])) as [[Array<{ published: number; n: number }>], { created_at: Date } | undefined];
  const n = (p: number) => Number(counts.find((c) => Number(c.published) === p)?.n ?? 0);
  return { backlog: n(OutboxState.Ready), waiting: n(OutboxState.Waiting), oldestCreatedAt: oldest?.created_at ?? null };
}

/**
 * Events fired from `from` on, and of those the ones ended in success and in failure: whole hours of
 * event_hours and whole minutes of event_counts. `from` is a whole minute, and a whole hour where it falls
 * in folded hours (statsFrom): about 48 hour rows and three hours of minute rows per kind for 48 h.
 */
export async function outcomesSince(q: Q, from: Date, timeoutMs: number): Promise<{ fired: number; success: number; failure: number }> {
  const counted = eventRollupRows(from, null);
  const sql = 'SELECT kind, SUM(n) AS n FROM ' + counted.sql + ' GROUP BY kind'; // fixed text, values bound
  const [rows] = (await q.raw(sql, counted.bindings).timeout(timeoutMs, { cancel: true })) as [
    Array<{ kind: 'fired' | 'success' | 'failure'; n: number }>,
  ];
  const out = { fired: 0, success: 0, failure: 0 };
  for (const r of rows) out[r.kind] = Number(r.n);
  return out;
}

/**
 * Failed events fired at or after `activeFrom` (the active view): whole minutes from the rollup, and the
 * minute `activeFrom` falls in from idx_events_status_fired (failure, fired_at), one minute of failures.
 */
export async function activeFailures(q: Q, activeFrom: Date, timeoutMs: number): Promise<number> {
  const nextMinute = new Date(Math.ceil(activeFrom.getTime() / 60_000) * 60_000);
  const [[[rolled]], [[edge]]] = (await Promise.all([
    q.raw("SELECT SUM(n) AS n FROM event_counts WHERE minute >= ? AND kind = 'failure'", [nextMinute]).timeout(timeoutMs, { cancel: true }),
    q
      .raw(
        "SELECT COUNT(*) AS n FROM event_logs FORCE INDEX (idx_events_status_fired) WHERE execution_status = 'failure' AND fired_at >= ? AND fired_at < ?",
        [activeFrom, nextMinute],
      )
      .timeout(timeoutMs, { cancel: true }),
  ])) as [[[{ n: number | null }]], [[{ n: number }]]];
  return Number(rolled?.n ?? 0) + Number(edge?.n ?? 0);
}
