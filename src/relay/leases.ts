import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Db } from '../db/knex';

/**
 * Shard leases for ordered publishing. Each relay:
 *  - heartbeats into relay_heartbeats and counts live relays (seen within one lease time);
 *  - renews the leases it holds, releases what is above its fair share ceil(shards / live) — only between
 *    batches, since refresh() runs on the relay's own loop — and takes expired or free shards up to it;
 *  - claims outbox rows only of shards whose lease it holds, checking owner, fencing token and expiry with
 *    the lease rows locked in the claim transaction itself (see verify()).
 * A taker has to wait for that lock, so it starts only after the previous owner's last batch committed:
 * one relay at a time per shard, and rows of one shard (hence of one trigger) go out in id order.
 */
export class ShardLeases {
  readonly relayId = `relay-${randomUUID()}`;
  /** shard → fencing token of our lease */
  private held = new Map<number, number>();

  constructor(
    private readonly db: Db,
    private readonly shardCount: number,
    private readonly leaseMs: number,
  ) {}

  owned(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /** Creates the lease rows once (idempotent; several relays may race here). */
  async init(): Promise<void> {
    const rows = Array.from({ length: this.shardCount }, (_, shard) => [shard]);
    // Only placeholder groups go into the text; the shard numbers are bound.
    const sql = `INSERT IGNORE INTO relay_leases (shard, owner, token, expires_at) VALUES ${rows.map(() => "(?, NULL, 0, '1970-01-01 00:00:01')").join(',')}`;
    await this.db.raw(sql, rows.flat());
  }

  /** Heartbeat, renew, rebalance. Returns the shards held afterwards. */
  async refresh(): Promise<number[]> {
    const { db, relayId, leaseMs, shardCount } = this;
    await db.raw(
      'INSERT INTO relay_heartbeats (relay_id, seen_at) VALUES (?, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE seen_at = VALUES(seen_at)',
      [relayId],
    );
    const [liveRows] = (await db.raw(
      'SELECT COUNT(*) AS n FROM relay_heartbeats WHERE seen_at > UTC_TIMESTAMP(3) - INTERVAL ? MICROSECOND',
      [leaseMs * 1000],
    )) as [Array<{ n: number }>];
    const live = Math.max(1, Number(liveRows[0]?.n ?? 1));
    const fair = Math.ceil(shardCount / live);

    // Renew everything we still hold; what the database says we hold is the truth from here on.
    await db.raw(
      'UPDATE relay_leases SET expires_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND WHERE owner = ? AND expires_at > UTC_TIMESTAMP(3)',
      [leaseMs * 1000, relayId],
    );
    await this.reload(db);

    // Above the fair share (a relay joined): hand the extra shards over.
    if (this.held.size > fair) {
      const extra = this.owned().slice(fair);
      await db.raw("UPDATE relay_leases SET owner = NULL, expires_at = '1970-01-01 00:00:01' WHERE owner = ? AND shard IN (?)", [
        relayId,
        extra,
      ]);
      extra.forEach((s) => this.held.delete(s));
    }
    // Below it: take free or expired shards (a relay left or died), bumping the fencing token.
    if (this.held.size < fair) {
      await db.raw(
        `UPDATE relay_leases SET owner = ?, token = token + 1, expires_at = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND
          WHERE (owner IS NULL OR expires_at <= UTC_TIMESTAMP(3)) AND shard < ?
          ORDER BY shard LIMIT ?`,
        [relayId, leaseMs * 1000, shardCount, fair - this.held.size],
      );
      await this.reload(db);
    }
    // Forget dead relays' heartbeats now and then (any relay may do it).
    await db.raw('DELETE FROM relay_heartbeats WHERE seen_at < UTC_TIMESTAMP(3) - INTERVAL 1 HOUR LIMIT 100');
    return this.owned();
  }

  private async reload(q: Knex | Knex.Transaction): Promise<void> {
    const [rows] = (await q.raw('SELECT shard, token FROM relay_leases WHERE owner = ? AND expires_at > UTC_TIMESTAMP(3) AND shard < ?', [
      this.relayId,
      this.shardCount,
    ])) as [Array<{ shard: number; token: number }>];
    this.held = new Map(rows.map((r) => [Number(r.shard), Number(r.token)]));
  }

  /**
   * Inside the claim transaction: lock our lease rows and keep only those still ours (same owner, same
   * fencing token, not expired). Lease takeover and renewal wait on these locks until the claim commits.
   *
   * A shared lock is enough for that (takeover and renewal are UPDATEs, which need an exclusive one), and it
   * is what lets lanes claim at the same time: the lease table is so small that MariaDB reads it whole
   * rather than by key, and a locking read locks each row it reads before it tests the WHERE. With FOR
   * UPDATE every lane (and every relay) waited for the other lanes' batches to commit; shared locks do not
   * conflict with one another. (Measured: one relay's three lanes spent about a third of their time in
   * that wait, and published 11-12k events/s instead of 20k.)
   */
  async verify(trx: Knex.Transaction, shards: number[]): Promise<number[]> {
    if (shards.length === 0) return [];
    const [rows] = (await trx.raw(
      'SELECT shard, owner, token, expires_at > UTC_TIMESTAMP(3) AS live FROM relay_leases WHERE shard IN (?) LOCK IN SHARE MODE',
      [shards],
    )) as [Array<{ shard: number; owner: string | null; token: number; live: number }>];
    return rows
      .filter((r) => r.owner === this.relayId && Number(r.live) === 1 && this.held.get(Number(r.shard)) === Number(r.token))
      .map((r) => Number(r.shard));
  }

  /** On stop: give the shards back at once instead of letting them expire. */
  async release(): Promise<void> {
    await this.db.raw("UPDATE relay_leases SET owner = NULL, expires_at = '1970-01-01 00:00:01' WHERE owner = ?", [this.relayId]);
    await this.db.raw('DELETE FROM relay_heartbeats WHERE relay_id = ?', [this.relayId]);
    this.held.clear();
  }
}
