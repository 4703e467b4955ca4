import type { Knex } from 'knex';
import { statementOn, type RawQuery, type RunStatement } from './multi';
import { fireTriggerOf, type FireTrigger } from './triggers';
import { rowsByKeys } from './knex';

type Q = Knex | Knex.Transaction;

/**
 * Inserts pending occurrences. The unique key (trigger_id, fire_at) makes computing the same
 * occurrence twice a no-op; a row cancelled by an earlier edit is revived, a completed one never is
 * (so an occurrence can never fire twice). `scheduled_for` is the nominal time of a jittered occurrence
 * (null: the same as fire_at).
 */
export async function insertOccurrences(
  q: Q,
  rows: Array<{ trigger_id: string; fire_at: Date; scheduled_for?: Date | null }>,
  now: Date,
): Promise<void> {
  if (rows.length === 0) return;
  const { sql, values } = insertOccurrencesStatement(rows, now);
  await q.raw(sql, values);
}

/** The upsert of insertOccurrences (the relay's scripted fire sends it too). */
export function insertOccurrencesStatement(
  rows: Array<{ trigger_id: string; fire_at: Date; scheduled_for?: Date | null }>,
  now: Date,
): { sql: string; values: Knex.RawBinding[] } {
  const placeholders = rows.map(() => "(?, ?, ?, 'pending', ?, ?)").join(',');
  const bindings = rows.flatMap((r) => [
    r.trigger_id,
    r.fire_at,
    r.scheduled_for && r.scheduled_for.getTime() !== r.fire_at.getTime() ? r.scheduled_for : null,
    now,
    now,
  ]);
  // Only "(?, ?, ...)" placeholder groups are put into the text; every value is bound. The assignments run
  // left to right, so scheduled_for is taken over before status flips a cancelled row back to pending.
  const sql = `INSERT INTO trigger_schedules (trigger_id, fire_at, scheduled_for, status, created_at, updated_at) VALUES ${placeholders}
     ON DUPLICATE KEY UPDATE scheduled_for = IF(status = 'cancelled', VALUES(scheduled_for), scheduled_for),
       status = IF(status = 'cancelled', 'pending', status), updated_at = VALUES(updated_at)`;
  return { sql, values: bindings };
}

export async function cancelPending(q: Q, triggerId: string, now: Date): Promise<number> {
  return q('trigger_schedules').where({ trigger_id: triggerId, status: 'pending' }).update({ status: 'cancelled', updated_at: now });
}

/** cancelPending for many triggers (bulk pause/resume), in statements of at most 1,000 trigger ids. */
export async function cancelPendingMany(q: Q, triggerIds: string[], now: Date): Promise<number> {
  let n = 0;
  for (let i = 0; i < triggerIds.length; i += 1000) {
    n += await q('trigger_schedules')
      .whereIn('trigger_id', triggerIds.slice(i, i + 1000))
      .andWhere('status', 'pending')
      .update({ status: 'cancelled', updated_at: now });
  }
  return n;
}

/** A trigger's earliest pending occurrence (what the relay fires next), or null. */
export async function pendingOccurrence(q: Q, triggerId: string): Promise<{ fire_at: Date; scheduled_for: Date } | null> {
  const row = (await q('trigger_schedules')
    .select('fire_at', 'scheduled_for')
    .where({ trigger_id: triggerId, status: 'pending' })
    .orderBy('fire_at')
    .first()) as { fire_at: Date; scheduled_for: Date | null } | undefined;
  return row ? { fire_at: row.fire_at, scheduled_for: row.scheduled_for ?? row.fire_at } : null;
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
  /** The nominal time of a jittered occurrence; null when it is fire_at itself. */
  scheduled_for: Date | null;
}

/**
 * The relay's claim, with what firing needs of each claimed row's trigger. Shape matters:
 *  - the claim is a derived table: WHERE status='pending' AND fire_at <= now ORDER BY fire_at, id walks
 *    idx_schedules_claim (status, fire_at, and the primary key every secondary index ends with) in order, so
 *    there is no filesort and InnoDB locks only the rows it returns; a fire lane's claims start past its own
 *    earlier ones (CLAIM_DUE_AFTER_SQL, relay/claim-cursor.ts), this statement is the claim from the head;
 *  - SKIP LOCKED (after LIMIT, as MariaDB wants it) lets any number of relays claim disjoint batches with
 *    no leader; a killed relay's locks vanish with its connection and another relay takes the rows;
 *  - the triggers are joined outside it, by primary key, and the outer query has no locking clause, so
 *    their rows are a plain (non-locking) read: locking them would make every API edit of a trigger wait on
 *    the relays' fire transactions (relay.test.ts checks that an edit does not wait). Joining them here,
 *    not in a statement of their own, spares the fire transaction a round trip to the database.
 * A row whose trigger is gone has NULL trigger columns. Rows come in no particular order (nothing in a
 * batch depends on it). Runs inside a READ COMMITTED transaction (set per connection in db/knex.ts).
 */
export async function claimDue(trx: Knex.Transaction, limit: number, maxChars = Infinity): Promise<Claimed> {
  const [rows] = (await trx.raw(CLAIM_DUE_SQL, [limit])) as [Array<Record<string, unknown>>];
  return readLargeConfigs(claimedOf(rows), maxChars, statementOn(trx));
}

/**
 * The largest trigger config the claim reads with its rows (bytes as stored). A larger one (a scheduled
 * trigger's payload can be up to about 1 MB) stays on the server: the claim says only how large it is, and
 * the fire batch reads those it fires afterwards (`largeConfigsToRead`), within its payload bound. So a claim
 * of `limit` rows brings at most `limit` × 16 KiB of configs into the relay, whatever the payloads.
 */
export const CLAIM_CONFIG_MAX_BYTES = 16_384;

/**
 * claimDue's statement; its one binding is the batch size. `config` is NULL for a config over
 * CLAIM_CONFIG_MAX_BYTES, whose size `config_bytes` gives.
 */
export const CLAIM_DUE_SQL = claimSql('trigger_schedules', '');

/**
 * The text of a claim of due rows from `source` (the table, with or without an index hint), those also
 * matching `where` (a condition and its AND, or nothing), in the claim index's order, with their triggers.
 */
function claimSql(source: string, where: string): string {
  return `SELECT c.id, c.trigger_id, c.fire_at, c.scheduled_for, t.type, t.status, t.version,
        IF(LENGTH(t.config) <= ${CLAIM_CONFIG_MAX_BYTES}, t.config, NULL) AS config, LENGTH(t.config) AS config_bytes
      FROM (SELECT id, trigger_id, fire_at, scheduled_for FROM ${source}
        WHERE status = 'pending' AND ${where}fire_at <= UTC_TIMESTAMP(3)
        ORDER BY fire_at, id
        LIMIT ? FOR UPDATE SKIP LOCKED) c
      LEFT JOIN triggers t ON t.id = c.trigger_id`;
}

/** Pending rows past a claim point, in the claim index's order; its bindings are the point's fire_at twice and id. */
const PAST_POINT = '(fire_at > ? OR (fire_at = ? AND id > ?))';

/**
 * Where a claim ended, in the claim index's order: idx_schedules_claim is (status, fire_at) and, as every
 * InnoDB secondary index, ends with the primary key, so its pending entries are in (fire_at, id) order.
 */
export interface ClaimPoint {
  fire_at: Date;
  id: number;
}

/**
 * The claim past a point (the end of an earlier claim of the fire lane: relay/claim-cursor.ts), CLAIM_DUE_SQL's
 * rows from there on. Its bindings: the point's fire_at twice and id, then the batch size.
 *
 * Why: a fired row is deleted, but its entry in idx_schedules_claim stays, delete-marked, until InnoDB's
 * purge removes it, and those entries lie at the head of the pending range, where every claim from the head
 * starts, and a locking read visits each one it passes (0.7–1.4 µs of server CPU each, measured with the
 * purge held). At a steady 2,000 fires/s that was about 0.5 ms on top of a claim's own 0.8–1 ms; while a long
 * transaction's read view holds the purge up (a backup, a report) the entries pile up and every claim from
 * the head walks all of them: 36–68 ms for a claim of 50 behind 50,000 of them (docs/performance-cpu.md).
 * Starting past the lane's earlier claims skips them. The range is forced: with a select list the index does
 * not cover, the optimizer otherwise takes the index as a ref on status alone, which starts at the head again.
 */
export const CLAIM_DUE_AFTER_SQL = claimSql('trigger_schedules FORCE INDEX (idx_schedules_claim)', `${PAST_POINT} AND `);

/** The claim of up to `limit` due rows: from the head of the pending rows, or past `after`. */
export function claimDueStatement(limit: number, after: ClaimPoint | null): { sql: string; values: Knex.RawBinding[] } {
  return after
    ? { sql: CLAIM_DUE_AFTER_SQL, values: [after.fire_at, after.fire_at, after.id, limit] }
    : { sql: CLAIM_DUE_SQL, values: [limit] };
}

/** The last of `rows` in the claim index's order (fire_at, then id); null when there are none. */
export function claimEnd(rows: readonly ClaimPoint[]): ClaimPoint | null {
  let end: ClaimPoint | null = null;
  for (const r of rows) {
    if (!end || r.fire_at.getTime() > end.fire_at.getTime() || (r.fire_at.getTime() === end.fire_at.getTime() && r.id > end.id))
      end = { fire_at: r.fire_at, id: r.id };
  }
  return end;
}

/**
 * A claim: the due rows, and their triggers by id (a trigger that is gone is in neither map). A trigger
 * whose config was too large to come with the claim is in `unread` (its status, and its config's size in
 * bytes) until `withLargeConfigs` moves it to `triggers`.
 */
export interface Claimed {
  due: DueRow[];
  triggers: Map<string, FireTrigger>;
  unread?: Map<string, { status: FireTrigger['status']; bytes: number }>;
}

/** claimDue's answer from the rows of CLAIM_DUE_SQL (the scripted fire reads them too). */
export function claimedOf(rows: Array<Record<string, unknown>>): Claimed {
  const due: DueRow[] = [];
  const triggers = new Map<string, FireTrigger>();
  const unread = new Map<string, { status: FireTrigger['status']; bytes: number }>();
  for (const r of rows) {
    const triggerId = r.trigger_id as string;
    due.push({ id: r.id as number, trigger_id: triggerId, fire_at: r.fire_at as Date, scheduled_for: r.scheduled_for as Date | null });
    if (r.type === null || triggers.has(triggerId)) continue;
    if (r.config === null && r.config_bytes !== null)
      unread.set(triggerId, { status: r.status as FireTrigger['status'], bytes: Number(r.config_bytes) });
    else triggers.set(triggerId, fireTriggerOf(triggerId, r));
  }
  return { due, triggers, unread };
}

/**
 * The unread triggers of a claim to read before firing (pure): the active ones, in the claim's order,
 * while the batch's config text stays within `maxChars` (the first row's trigger always). What is not
 * read is not fired by this batch: its row stays pending (planFiring counts it as left).
 */
export function largeConfigsToRead({ due, triggers, unread }: Claimed, maxChars: number): string[] {
  if (!unread || unread.size === 0) return [];
  const ids: string[] = [];
  let chars = 0;
  for (const row of due) {
    const t = triggers.get(row.trigger_id);
    if (t) {
      if (t.status === 'active') chars += t.configChars;
      continue;
    }
    const u = unread.get(row.trigger_id);
    if (!u || u.status !== 'active') continue;
    if (chars > 0 && chars + u.bytes > maxChars) break;
    chars += u.bytes;
    ids.push(row.trigger_id);
  }
  return ids;
}

/**
 * The statement that reads the large configs of `ids` (their whole rows as the claim reads them, a plain
 * read: the claim's own read of them was plain too). At most FIRE_BATCH_MAX_CHARS / CLAIM_CONFIG_MAX_BYTES ids.
 */
export function readLargeConfigsStatement(ids: string[]): { sql: string; values: Knex.RawBinding[] } {
  return { sql: `SELECT id, type, status, config, version FROM triggers WHERE id IN (${ids.map(() => '?').join(',')})`, values: ids };
}

/**
 * The claim with the large configs it fires read (largeConfigsToRead), over any transport (`run` sends one
 * statement in the claim's transaction and returns its rows): the claim itself when there are none.
 */
export async function readLargeConfigs(claim: Claimed, maxChars: number, run: RunStatement): Promise<Claimed> {
  const ids = largeConfigsToRead(claim, maxChars);
  return ids.length === 0 ? claim : withLargeConfigs(claim, (await run(readLargeConfigsStatement(ids))) as Array<Record<string, unknown>>);
}

/** The claim with the rows of readLargeConfigsStatement moved from `unread` to `triggers` (a new object). */
export function withLargeConfigs(claim: Claimed, rows: Array<Record<string, unknown>>): Claimed {
  const triggers = new Map(claim.triggers);
  const unread = new Map(claim.unread);
  for (const r of rows) {
    const id = r.id as string;
    triggers.set(id, fireTriggerOf(id, r));
    unread.delete(id);
  }
  return { due: claim.due, triggers, unread };
}

export async function markCancelled(trx: Knex.Transaction, ids: number[], now: Date): Promise<void> {
  if (ids.length === 0) return;
  const { sql, values } = markCancelledStatement(ids, now);
  await trx.raw(sql, values);
}

/**
 * markCancelled's statement: claimed rows of inactive triggers (by primary key) cancelled, an attempt
 * counted. A cancelled row stays: reactivating the trigger may schedule the same instant again, which the
 * occurrence upsert turns back to pending.
 */
export function markCancelledStatement(ids: number[], now: Date): { sql: string; values: Knex.RawBinding[] } {
  return { sql: MARK_CANCELLED_SQL, values: [JSON.stringify(ids), now, now] };
}

export async function deleteFired(trx: Knex.Transaction, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  const { sql, values } = deleteFiredStatement(ids);
  await trx.raw(sql, values);
}

/**
 * deleteFired's statement: the claimed rows whose occurrence fired (or was skipped as a misfire), deleted
 * by primary key in the fire transaction. What they held lives on elsewhere: the event (its id is the
 * trigger and the nominal instant, so the instant can never log twice, and rescheduling checks it: see
 * notYetFired), and the batch's fire lags (fire_lags). Deleting costs the server less than half of
 * marking the row completed (an entry of idx_schedules_claim moved and the row rewritten) and spares the
 * sweep a second write of it later.
 */
export function deleteFiredStatement(ids: number[]): { sql: string; values: Knex.RawBinding[] } {
  return { sql: DELETE_FIRED_SQL, values: [JSON.stringify(ids)] };
}

/**
 * A fire batch's claimed rows (`s`), each by its primary key (rowsByKeys): a plain `WHERE id IN (…)` of 500 ids
 * was planned as a scan that locked rows of other relays' batches, and two relays' deletes deadlocked (a fire
 * batch rolled back after its events were on Kafka: duplicates). Used by the delete of fired rows and the
 * cancel of inactive ones.
 */
const CLAIMED_ROWS = rowsByKeys('trigger_schedules', 's', 'bigint');
const DELETE_FIRED_SQL = 'DELETE s FROM ' + CLAIMED_ROWS;
const MARK_CANCELLED_SQL =
  'UPDATE ' + CLAIMED_ROWS + " SET s.status = 'cancelled', s.updated_at = ?, s.last_attempt_at = ?, s.attempt_count = s.attempt_count + 1";

/** Pending rows whose fire_at has passed (the etp_schedules_due gauge). */
export async function countDue(q: Q): Promise<number> {
  const [rows] = (await q.raw("SELECT COUNT(*) AS n FROM trigger_schedules WHERE status = 'pending' AND fire_at <= UTC_TIMESTAMP(3)")) as [
    Array<{ n: number }>,
  ];
  return Number(rows[0]?.n ?? 0);
}

/**
 * The earliest pending occurrence: when it fires (so an idle relay sleeps exactly until it, bounded by the
 * poll ceiling) and whether it is due by the database's clock, the one the claim uses.
 */
export async function nextPending(q: Q | RawQuery): Promise<{ fire_at: Date; due: boolean } | null> {
  const [rows] = (await q.raw(NEXT_PENDING_SQL)) as [Array<{ fire_at: Date; due: number }>];
  return nextPendingOf(rows);
}

/** nextPending's statement (no bindings). */
export const NEXT_PENDING_SQL =
  "SELECT fire_at, fire_at <= UTC_TIMESTAMP(3) AS due FROM trigger_schedules WHERE status = 'pending' ORDER BY fire_at LIMIT 1";

/**
 * The earliest pending occurrence past a claim point (CLAIM_DUE_AFTER_SQL's range, for the same reason):
 * its bindings are the point's fire_at twice and id.
 */
export const NEXT_PENDING_AFTER_SQL = `SELECT fire_at, fire_at <= UTC_TIMESTAMP(3) AS due FROM trigger_schedules FORCE INDEX (idx_schedules_claim)
  WHERE status = 'pending' AND ${PAST_POINT} ORDER BY fire_at, id LIMIT 1`;

/** The next pending occurrence's statement: from the head, or past `after`. */
export function nextPendingStatement(after: ClaimPoint | null): { sql: string; values: Knex.RawBinding[] } {
  return after ? { sql: NEXT_PENDING_AFTER_SQL, values: [after.fire_at, after.fire_at, after.id] } : { sql: NEXT_PENDING_SQL, values: [] };
}

/** nextPending's answer from the rows of NEXT_PENDING_SQL. */
export function nextPendingOf(rows: Array<{ fire_at: Date; due: number }>): { fire_at: Date; due: boolean } | null {
  return rows[0] ? { fire_at: rows[0].fire_at, due: Number(rows[0].due) === 1 } : null;
}

/**
 * Cancelled rows (and the completed rows of versions that kept fired occurrences) are history only; drop
 * them after the retention window, in small batches.
 */
export async function deleteFinishedBefore(q: Q, before: Date, limit: number): Promise<number> {
  const [res] = (await q.raw(
    // (status, fire_at) index: two range scans, no full table scan.
    "DELETE FROM trigger_schedules WHERE status IN ('completed','cancelled') AND fire_at < ? LIMIT ?",
    [before, limit],
  )) as [{ affectedRows: number }];
  return res.affectedRows;
}
