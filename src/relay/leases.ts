import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Db } from '../db/knex';
import {
  deleteHeartbeat,
  ensureLeaseRows,
  heldLeases,
  lockLeases,
  refreshOf,
  refreshStatements,
  releaseLeases,
  rosterOf,
  rosterStatements,
  takeFreeLeases,
} from '../db/leases';
import { sendStatements, type MultiPool } from '../db/multi';

/**
 * A relay's place among the live relays: its id, and how many relays its last refresh counted and its rank
 * among them, by relay id. What the relays' fire slots are cut by (relay.ts); ShardLeases keeps it in its
 * lease refresh, RelayRoster (unordered mode) on its own.
 */
export abstract class CountedRelay {
  readonly relayId = `relay-${randomUUID()}`;
  /** Relays seen alive at the last refresh (this one included; 1 before the first). */
  protected live = 1;
  /** This relay's place among them, by relay id (0 before the first refresh). */
  protected place = 0;

  /** Relays alive at the last refresh, this one included (1 before the first). */
  liveRelays(): number {
    return this.live;
  }

  /** This relay's rank among them, 0 to liveRelays() − 1 (0 before the first refresh). */
  rank(): number {
    return this.place;
  }

  /** Heartbeat and count again (and whatever else the subclass keeps fresh). */
  abstract refresh(): Promise<unknown>;

  /** On stop: leave at once, so the others count one relay fewer at their next refresh. */
  abstract release(): Promise<void>;
}

/**
 * The roster of relays without shard leases (unordered mode, OUTBOX_ORDERING=off): a heartbeat into
 * relay_heartbeats and a count of the relays seen within `windowMs`, one round trip per refresh. With
 * leases, ShardLeases keeps the same roster in its own refresh.
 */
export class RelayRoster extends CountedRelay {
  constructor(
    private readonly db: Db,
    private readonly windowMs: number,
    private readonly script: MultiPool | null = null,
  ) {
    super();
  }

  async refresh(): Promise<void> {
    const { live, rank } = rosterOf(await sendStatements(this.script, this.db, rosterStatements(this.relayId, this.windowMs)));
    this.live = live;
    this.place = rank;
  }

  async release(): Promise<void> {
    await deleteHeartbeat(this.db, this.relayId);
  }
}

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
export class ShardLeases extends CountedRelay {
  /** shard → fencing token of our lease */
  private held = new Map<number, number>();

  /** `script`: the relay's multi-statement pool, on which a refresh is one round trip (statement by statement through knex without it). */
  constructor(
    private readonly db: Db,
    private readonly shardCount: number,
    private readonly leaseMs: number,
    private readonly script: MultiPool | null = null,
  ) {
    super();
  }

  owned(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /** Creates the lease rows once (idempotent; several relays may race here). */
  async init(): Promise<void> {
    await ensureLeaseRows(this.db, this.shardCount);
  }

  /** Heartbeat, renew, rebalance. Returns the shards held afterwards. */
  async refresh(): Promise<number[]> {
    const { db, relayId, leaseMs, shardCount } = this;
    // Heartbeat, count the live relays, renew everything we still hold, read what we hold (the database's
    // word is the truth from here on), forget relays gone for an hour: one round trip on the pool.
    const { live, rank, held } = refreshOf(await sendStatements(this.script, db, refreshStatements(relayId, leaseMs, shardCount)));
    this.live = live;
    this.place = rank;
    this.held = held;
    const fair = Math.ceil(shardCount / this.live);

    // Above the fair share (a relay joined): hand the extra shards over.
    if (this.held.size > fair) {
      const extra = this.owned().slice(fair);
      await releaseLeases(db, relayId, extra);
      extra.forEach((s) => this.held.delete(s));
    }
    // Below it: take free or expired shards (a relay left or died), bumping the fencing token.
    if (this.held.size < fair) {
      await takeFreeLeases(db, relayId, leaseMs, shardCount, fair - this.held.size);
      this.held = await heldLeases(db, relayId, shardCount);
    }
    return this.owned();
  }

  /**
   * Inside the claim transaction: lock our lease rows and keep only those still ours (same owner, same
   * fencing token, not expired). Lease takeover and renewal wait on these locks until the claim commits.
   * The locks are shared, so lanes and relays claiming at once do not wait for one another:
   * docs/decisions/shared-lease-locks.md.
   */
  async verify(trx: Knex.Transaction, shards: number[]): Promise<number[]> {
    return this.ours(await lockLeases(trx, shards));
  }

  /** Of lease rows read (and locked) in a claim transaction, the shards still ours: same owner and token, not expired. */
  ours(rows: Array<{ shard: number; owner: string | null; token: number; live: boolean }>): number[] {
    return rows.filter((r) => r.owner === this.relayId && r.live && this.held.get(r.shard) === r.token).map((r) => r.shard);
  }

  /** On stop: give the shards back at once instead of letting them expire. */
  async release(): Promise<void> {
    await releaseLeases(this.db, this.relayId);
    await deleteHeartbeat(this.db, this.relayId);
    this.held.clear();
  }
}
