/**
 * The statements behind per-trigger delivery flow control (worker/flow-gate.ts says how they fit together;
 * docs/delivery-flow.md why). Times are the database's own clock, as for the relay's leases, so workers on
 * hosts whose clocks differ share one limiter.
 */
import type { Knex } from 'knex';

type Q = Knex | Knex.Transaction;

export interface FlowState {
  tatUs: number;
  /** Requests in flight: slots whose lease has not expired. */
  inFlight: number;
}

/**
 * Locks the flow rows of `triggerIds` (sorted, so two workers lock shared rows in one order), creating
 * missing ones, and returns their state with the database's clock in microseconds. The slot count is a
 * plain read: slots are only taken under the trigger's row lock, so it cannot miss one; a release committed
 * meanwhile only makes it count high, never low.
 */
export async function lockFlow(trx: Knex.Transaction, triggerIds: string[]): Promise<{ nowUs: number; rows: Map<string, FlowState> }> {
  const ids = [...new Set(triggerIds)].sort();
  let read = await selectFlowForUpdate(trx, ids);
  if (read.rows.size < ids.length) {
    // First limited delivery of a trigger: its row is created once (another worker may race; IGNORE).
    const missing = ids.filter((id) => !read.rows.has(id));
    const sql = `INSERT IGNORE INTO delivery_flow (trigger_id, tat_us) VALUES ${missing.map(() => '(?, 0)').join(',')}`;
    await trx.raw(sql, missing);
    read = await selectFlowForUpdate(trx, ids);
  }
  return read;
}

async function selectFlowForUpdate(trx: Knex.Transaction, ids: string[]): Promise<{ nowUs: number; rows: Map<string, FlowState> }> {
  const [rows] = (await trx.raw(
    `SELECT f.trigger_id, f.tat_us, FLOOR(UNIX_TIMESTAMP(NOW(6)) * 1000000) AS now_us,
            (SELECT COUNT(*) FROM delivery_slots s WHERE s.trigger_id = f.trigger_id AND s.expires_at > UTC_TIMESTAMP(3)) AS in_flight
       FROM delivery_flow f WHERE f.trigger_id IN (?) ORDER BY f.trigger_id FOR UPDATE`,
    [ids],
  )) as [Array<{ trigger_id: string; tat_us: number | string; now_us: number | string; in_flight: number | string }>];
  const out = new Map<string, FlowState>();
  let nowUs = Date.now() * 1000;
  for (const r of rows) {
    nowUs = Number(r.now_us);
    out.set(r.trigger_id, { tatUs: Number(r.tat_us), inFlight: Number(r.in_flight) });
  }
  return { nowUs, rows: out };
}

/** Stores the rate limiters' new theoretical arrival times (rows locked by lockFlow). */
export async function saveRates(trx: Knex.Transaction, rows: Array<{ triggerId: string; tatUs: number }>): Promise<void> {
  if (rows.length === 0) return;
  // Only placeholder groups go into the text; every value is bound.
  const sql = `INSERT INTO delivery_flow (trigger_id, tat_us) VALUES ${rows.map(() => '(?, ?)').join(',')}
                 ON DUPLICATE KEY UPDATE tat_us = VALUES(tat_us)`;
  await trx.raw(
    sql,
    rows.flatMap((r) => [r.triggerId, Math.round(r.tatUs)]),
  );
}

export interface Slot {
  triggerId: string;
  eventId: string;
}

/** Takes a slot per admitted request, leased for `leaseMs` (its timeout plus a margin) from now. */
export async function takeSlots(trx: Knex.Transaction, slots: Array<Slot & { leaseMs: number }>): Promise<void> {
  if (slots.length === 0) return;
  const sql = `INSERT INTO delivery_slots (trigger_id, event_id, expires_at)
                 VALUES ${slots.map(() => '(?, ?, UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND)').join(',')}
                 ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)`;
  await trx.raw(
    sql,
    slots.flatMap((s) => [s.triggerId, s.eventId, s.leaseMs * 1000]),
  );
}

/** Gives the batch's slots back, and drops expired ones of the same triggers (a killed worker's). */
export async function releaseSlots(q: Q, slots: Slot[]): Promise<void> {
  if (slots.length === 0) return;
  await q.raw('DELETE FROM delivery_slots WHERE trigger_id IN (?) AND (event_id IN (?) OR expires_at <= UTC_TIMESTAMP(3))', [
    [...new Set(slots.map((s) => s.triggerId))],
    slots.map((s) => s.eventId),
  ]);
}

/** An event of an ordered trigger that has not ended, in firing order. */
export interface Unended {
  id: string;
  nextAttemptAt: Date | null;
}

/**
 * Per trigger, its `limit` oldest events that have not ended (pending or published), in firing order
 * (fired_at, id). One statement for the batch: two ranges of idx_events_trigger_status_fired per trigger
 * (one per status, each stopping after `limit` entries), merged here.
 */
export async function oldestUnended(q: Q, limits: Map<string, number>): Promise<Map<string, Unended[]>> {
  const out = new Map<string, Unended[]>();
  if (limits.size === 0) return out;
  const parts: string[] = [];
  const bindings: Knex.RawBinding[] = [];
  for (const [triggerId, limit] of limits) {
    for (const status of ['pending', 'published']) {
      parts.push(
        '(SELECT trigger_id, id, fired_at, next_attempt_at FROM event_logs FORCE INDEX (idx_events_trigger_status_fired) WHERE trigger_id = ? AND execution_status = ? ORDER BY fired_at, id LIMIT ?)',
      );
      bindings.push(triggerId, status, limit);
    }
  }
  const [rows] = (await q.raw(parts.join(' UNION ALL '), bindings)) as [
    Array<{ trigger_id: string; id: string; fired_at: Date; next_attempt_at: Date | null }>,
  ];
  rows.sort((a, b) => a.fired_at.getTime() - b.fired_at.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const r of rows) {
    const list = out.get(r.trigger_id) ?? [];
    if (list.length < limits.get(r.trigger_id)!) list.push({ id: r.id, nextAttemptAt: r.next_attempt_at });
    out.set(r.trigger_id, list);
  }
  return out;
}
