import type { Knex } from 'knex';

type Q = Knex | Knex.Transaction;

/**
 * Inserts one pending occurrence. The unique key (trigger_id, fire_at) makes computing the same
 * occurrence twice a no-op; a row cancelled by an earlier edit is revived, a completed one never is
 * (so an occurrence can never fire twice).
 */
export async function insertOccurrences(q: Q, rows: Array<{ trigger_id: string; fire_at: Date }>, now: Date): Promise<void> {
  if (rows.length === 0) return;
  const placeholders = rows.map(() => "(?, ?, 'pending', ?, ?)").join(',');
  const bindings = rows.flatMap((r) => [r.trigger_id, r.fire_at, now, now]);
  // Only "(?, ?, ...)" placeholder groups are put into the text; every value is bound.
  const sql = `INSERT INTO trigger_schedules (trigger_id, fire_at, status, created_at, updated_at) VALUES ${placeholders}
     ON DUPLICATE KEY UPDATE status = IF(status = 'cancelled', 'pending', status), updated_at = VALUES(updated_at)`;
  await q.raw(sql, bindings);
}

export async function cancelPending(q: Q, triggerId: string, now: Date): Promise<number> {
  return q('trigger_schedules').where({ trigger_id: triggerId, status: 'pending' }).update({ status: 'cancelled', updated_at: now });
}

/** The next pending occurrence of each trigger, in one query (no N+1 in list responses). */
export async function nextRuns(q: Q, triggerIds: string[]): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  if (triggerIds.length === 0) return out;
  const rows = (await q('trigger_schedules')
    .select('trigger_id')
    .min({ next: 'fire_at' })
    .whereIn('trigger_id', triggerIds)
    .andWhere('status', 'pending')
    .groupBy('trigger_id')) as Array<{ trigger_id: string; next: Date }>;
  for (const r of rows) out.set(r.trigger_id, r.next);
  return out;
}

export interface DueRow {
  id: number;
  trigger_id: string;
  fire_at: Date;
}

/**
 * The relay's claim. Shape matters:
 *  - WHERE status='pending' AND fire_at <= now ORDER BY fire_at walks idx_schedules_claim (status, fire_at)
 *    in order, so there is no filesort and InnoDB locks only the rows it returns;
 *  - SKIP LOCKED (after LIMIT, as MariaDB wants it) lets any number of relays claim disjoint batches with
 *    no leader; a killed relay's locks vanish with its connection and another relay takes the rows.
 * Runs inside a READ COMMITTED transaction (set per connection in db/knex.ts).
 */
export async function claimDue(trx: Knex.Transaction, limit: number): Promise<DueRow[]> {
  const [rows] = (await trx.raw(
    `SELECT id, trigger_id, fire_at FROM trigger_schedules
      WHERE status = 'pending' AND fire_at <= UTC_TIMESTAMP(3)
      ORDER BY fire_at
      LIMIT ? FOR UPDATE SKIP LOCKED`,
    [limit],
  )) as [DueRow[]];
  return rows;
}

export async function markDone(trx: Knex.Transaction, ids: number[], status: 'completed' | 'cancelled', now: Date): Promise<void> {
  if (ids.length === 0) return;
  await trx('trigger_schedules')
    .whereIn('id', ids)
    .update({ status, updated_at: now, last_attempt_at: now, attempt_count: trx.raw('attempt_count + 1') });
}

/** The earliest pending fire_at, so an idle relay sleeps exactly until it (bounded by the poll ceiling). */
export async function earliestPending(q: Q): Promise<Date | null> {
  const [rows] = (await q.raw("SELECT fire_at FROM trigger_schedules WHERE status = 'pending' ORDER BY fire_at LIMIT 1")) as [
    Array<{ fire_at: Date }>,
  ];
  return rows[0]?.fire_at ?? null;
}

/** Completed and cancelled rows are history only; drop them after the retention window, in small batches. */
export async function deleteFinishedBefore(q: Q, before: Date, limit: number): Promise<number> {
  const [res] = (await q.raw(
    // (status, fire_at) index: two range scans, no full table scan.
    "DELETE FROM trigger_schedules WHERE status IN ('completed','cancelled') AND fire_at < ? LIMIT ?",
    [before, limit],
  )) as [{ affectedRows: number }];
  return res.affectedRows;
}
