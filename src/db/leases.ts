/**
 * The statements behind ordered publishing's shard leases (relay/leases.ts says how they fit together):
 * relay_leases holds one row per shard (owner, fencing token, expiry), relay_heartbeats one row per live
 * relay. Times are the database's own clock (UTC_TIMESTAMP(3)), so relays on hosts whose clocks differ still
 * agree on who holds what.
 */
import type { Knex } from 'knex';
import type { Statement } from './multi';

type Q = Knex | Knex.Transaction;

/** Creates the lease rows 0 … shards − 1 once (idempotent; several relays may race here). */
export async function ensureLeaseRows(q: Q, shards: number): Promise<void> {
  const rows = Array.from({ length: shards }, (_, shard) => [shard]);
  // Only placeholder groups go into the text; the shard numbers are bound.
  const sql = `INSERT IGNORE INTO relay_leases (shard, owner, token, expires_at) VALUES ${rows.map(() => "(?, NULL, 0, '1970-01-01 00:00:01')").join(',')}`;
  await q.raw(sql, rows.flat());
}

/**
 * A relay's regular lease refresh, in this order: the roster's statements (rosterStatements: its heartbeat,
 * the live relays counted and ranked, relays gone for an hour forgotten); its unexpired leases extended by
 * `leaseMs` from now; the shards below `shards` it holds afterwards, with each lease's fencing token. Each
 * statement stands alone (no transaction), so they can go in one round trip (refreshOf reads the answers).
 */
export function refreshStatements(relayId: string, leaseMs: number, shards: number): Statement[] {
  return [
    ...rosterStatements(relayId, leaseMs),
    {
      sql: 'UPDATE relay_leases SET expires_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND WHERE owner = ? AND expires_at > UTC_TIMESTAMP(3)',
      values: [leaseMs * 1000, relayId],
    },
    heldLeasesStatement(relayId, shards),
  ];
}

/**
 * The answers of refreshStatements: live relays (at least 1: the caller is one), the caller's rank among them
 * (0 to live − 1, by relay id), and shard → fencing token held.
 */
export function refreshOf(results: unknown[]): { live: number; rank: number; held: Map<number, number> } {
  return { ...rosterOf(results), held: heldOf(results[4] as unknown[]) };
}

/**
 * The roster alone, for relays without shard leases (unordered mode), in this order: the relay's heartbeat;
 * the relays seen within `windowMs` (how many, and how many of them have a lower relay id: this relay's
 * rank); relays not seen for an hour forgotten. Each statement stands alone, so they go in one round trip.
 */
export function rosterStatements(relayId: string, windowMs: number): Statement[] {
  return [
    {
      sql: 'INSERT INTO relay_heartbeats (relay_id, seen_at) VALUES (?, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE seen_at = VALUES(seen_at)',
      values: [relayId],
    },
    {
      sql: 'SELECT COUNT(*) AS n, COALESCE(SUM(relay_id < ?), 0) AS below FROM relay_heartbeats WHERE seen_at > UTC_TIMESTAMP(3) - INTERVAL ? MICROSECOND',
      values: [relayId, windowMs * 1000],
    },
    { sql: 'DELETE FROM relay_heartbeats WHERE seen_at < UTC_TIMESTAMP(3) - INTERVAL 1 HOUR LIMIT 100', values: [] },
  ];
}

/** Live relays (at least 1: the caller is one) and the caller's rank among them (0 to live − 1, by relay id), from the answers of rosterStatements or refreshStatements. */
export function rosterOf(results: unknown[]): { live: number; rank: number } {
  const count = results[1] as Array<{ n: number; below: number | string }>;
  const live = Math.max(1, Number(count[0]?.n ?? 1));
  const rank = Math.min(live - 1, Math.max(0, Number(count[0]?.below ?? 0)));
  return { live, rank };
}

/** The shards below `shards` that `relayId` holds now, with the fencing token of each lease. */
export async function heldLeases(q: Q, relayId: string, shards: number): Promise<Map<number, number>> {
  const { sql, values } = heldLeasesStatement(relayId, shards);
  const [rows] = (await q.raw(sql, values as Knex.RawBinding[])) as [unknown[]];
  return heldOf(rows);
}

function heldLeasesStatement(relayId: string, shards: number): Statement {
  return {
    sql: 'SELECT shard, token FROM relay_leases WHERE owner = ? AND expires_at > UTC_TIMESTAMP(3) AND shard < ?',
    values: [relayId, shards],
  };
}

function heldOf(rows: unknown[]): Map<number, number> {
  return new Map((rows as Array<{ shard: number; token: number }>).map((r) => [Number(r.shard), Number(r.token)]));
}

/**
 * Gives `shards` (all of `relayId`'s when omitted) back: no owner, and an expiry in the past (TIMESTAMP's
 * lowest value) for every comparison, so any relay may take them.
 */
export async function releaseLeases(q: Q, relayId: string, shards?: number[]): Promise<void> {
  if (shards === undefined) {
    await q.raw("UPDATE relay_leases SET owner = NULL, expires_at = '1970-01-01 00:00:01' WHERE owner = ?", [relayId]);
  } else if (shards.length > 0) {
    await q.raw("UPDATE relay_leases SET owner = NULL, expires_at = '1970-01-01 00:00:01' WHERE owner = ? AND shard IN (?)", [
      relayId,
      shards,
    ]);
  }
}

/**
 * Takes up to `count` free or expired shards below `shards` for `relayId`, lowest first, bumping each
 * lease's fencing token so a previous owner's late claim is refused (see lockLeases).
 */
export async function takeFreeLeases(q: Q, relayId: string, leaseMs: number, shards: number, count: number): Promise<void> {
  await q.raw(
    `UPDATE relay_leases SET owner = ?, token = token + 1, expires_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND
      WHERE (owner IS NULL OR expires_at <= UTC_TIMESTAMP(3)) AND shard < ?
      ORDER BY shard LIMIT ?`,
    [relayId, leaseMs * 1000, shards, count],
  );
}

export async function deleteHeartbeat(q: Q, relayId: string): Promise<void> {
  await q.raw('DELETE FROM relay_heartbeats WHERE relay_id = ?', [relayId]);
}

/**
 * Inside a claim transaction: the lease rows of `shards` with a shared lock, which takeover and renewal
 * (UPDATEs, needing an exclusive lock) wait on until the claim commits. Why shared and not FOR UPDATE:
 * docs/decisions/shared-lease-locks.md.
 */
export async function lockLeases(
  trx: Knex.Transaction,
  shards: number[],
): Promise<Array<{ shard: number; owner: string | null; token: number; live: boolean }>> {
  if (shards.length === 0) return [];
  const [rows] = (await trx.raw(LOCK_LEASES_SQL, [shards])) as [unknown[]];
  return leasesOf(rows);
}

/** lockLeases's statement; its one binding is the array of shards. */
export const LOCK_LEASES_SQL =
  'SELECT shard, owner, token, expires_at > UTC_TIMESTAMP(3) AS live FROM relay_leases WHERE shard IN (?) LOCK IN SHARE MODE';

/** lockLeases's answer from the rows of LOCK_LEASES_SQL. */
export function leasesOf(rows: unknown[]): Array<{ shard: number; owner: string | null; token: number; live: boolean }> {
  return (rows as Array<{ shard: number; owner: string | null; token: number; live: number }>).map((r) => ({
    shard: Number(r.shard),
    owner: r.owner,
    token: Number(r.token),
    live: Number(r.live) === 1,
  }));
}
