import type { Knex } from 'knex';
import type { Config } from '../config';
import type { Db } from '../db/knex';
import {
  claimedOf,
  claimInShards,
  claimUnpublished,
  claimUnpublishedInShards,
  claimUnpublishedStatement,
  markFailedStatement,
  markPublished,
  markPublishedStatements,
  probeOutbox,
  promoteDue,
  readBoundedBatch,
  type ClaimedOutbox,
} from '../db/outbox';
import { leasesOf, LOCK_LEASES_SQL } from '../db/leases';
import { rawOf, ScriptTransaction, statementOn, type MultiPool, type Statement } from '../db/multi';
import type { Lifecycle } from '../events';
import type { EventProducer } from '../kafka/producer';
import { coerceError } from '../logger';
import { backoffMs, withDbRetry, type Clock } from '../util';
import type { ShardLeases } from './leases';

/** How often waiting outbox rows (retries, deferrals) whose time has come are made ready. */
const PROMOTE_EVERY_MS = 100;

/** Runs something at most once per `everyMs` of its clock. */
export class Throttle {
  private lastMs = -Infinity;
  constructor(
    private readonly everyMs: number,
    private readonly clock: Clock = Date.now,
  ) {}

  /** True (and starts a new period) when the last run is at least `everyMs` ago. */
  due(): boolean {
    const now = this.clock();
    if (now - this.lastMs < this.everyMs) return false;
    this.lastMs = now;
    return true;
  }
}

/**
 * Ordered mode's back-off per shard: a shard whose head row failed to publish waits (200 ms plus jittered
 * back-off growing with its consecutive failures, up to 15 s) and then retries from that row; the other
 * shards go on. A delivered row of the shard resets it.
 */
export class ShardBackoff {
  private readonly blockedUntil = new Map<number, number>();
  private readonly failures = new Map<number, number>();
  constructor(
    private readonly clock: Clock = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  failed(shard: number): void {
    const n = (this.failures.get(shard) ?? 0) + 1;
    this.failures.set(shard, n);
    this.blockedUntil.set(shard, this.clock() + 200 + backoffMs(n, 500, 15_000, this.random));
  }

  delivered(shard: number): void {
    this.failures.delete(shard);
  }

  isBlocked(shard: number): boolean {
    return (this.blockedUntil.get(shard) ?? 0) > this.clock();
  }
}

/**
 * Unordered mode's back-off: after a batch with failed rows, they are retried 500 ms plus a jittered
 * back-off later that grows with consecutive failed batches (up to 15 s); a batch without failures resets it.
 */
export class BatchBackoff {
  private consecutive = 0;
  constructor(
    private readonly clock: Clock = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  /** When the failed rows of this batch are published again. */
  failed(): Date {
    this.consecutive++;
    return new Date(this.clock() + 500 + backoffMs(this.consecutive, 500, 15_000, this.random));
  }

  succeeded(): void {
    this.consecutive = 0;
  }
}

/** Ordered mode's state: the relay's shard leases and the shards waiting after a failed publish of their head. */
export interface Ordering {
  leases: Pick<ShardLeases, 'owned' | 'verify' | 'ours'>;
  backoff: ShardBackoff;
}

export interface PublisherDeps {
  db: Db;
  producer: Pick<EventProducer, 'publish'>;
  config: Pick<Config, 'relayBatchSize'>;
  events: Lifecycle;
  /** OUTBOX_ORDERING=on: only shards this relay leases are claimed. */
  ordering?: Ordering;
  clock?: Clock;
  /** Multi-statement connections: a publish batch in three or four round trips instead of six or seven (see PublishLane). */
  script?: MultiPool | null;
}

/** What one publish batch did. */
interface BatchOutcome {
  claimed: number;
  ok: number;
  failed: number;
  error: string;
  full: boolean;
}

const NOTHING: BatchOutcome = { claimed: 0, ok: 0, failed: 0, error: '', full: false };

/**
 * Step 2 of a relay: publish the outbox. One publisher per relay holds what its lanes share (unordered
 * mode's promotion throttle and failure back-off); `lane(i, n)` gives the state of one claim lane.
 */
export class OutboxPublisher {
  readonly clock: Clock;
  /** Unordered mode: one promotion of due waiting rows per relay per PROMOTE_EVERY_MS, whichever lane. */
  readonly promotion: Throttle;
  readonly batchBackoff: BatchBackoff;

  constructor(readonly deps: PublisherDeps) {
    this.clock = deps.clock ?? Date.now;
    this.promotion = new Throttle(PROMOTE_EVERY_MS, this.clock);
    this.batchBackoff = new BatchBackoff(this.clock);
  }

  lane(index: number, lanes: number): PublishLane {
    return new PublishLane(this, index, lanes);
  }
}

/**
 * One publish lane: claim (SKIP LOCKED, id order) → produce all → await every delivery report → delete the
 * delivered rows and mark the failed ones for a retry → commit. Nothing is dropped: a row leaves the outbox
 * only in the commit that follows its successful delivery report. A crash between the report and the
 * commit re-publishes the batch (at-least-once; consumers drop duplicates by event id).
 *
 * In ordered mode the lane claims the held shards with shard % lanes = index, the leases are verified
 * with their rows locked in the same transaction, and a failed row keeps its place: its shard (only its
 * shard) waits with back-off and retries from that row, so nothing behind it overtakes it.
 */
export class PublishLane {
  /** The last claim found nothing: the next one first asks, without a transaction, whether rows are ready. */
  private idle = false;
  /** Ordered mode: each lane promotes the waiting rows of its own shards (no lock on another lane's range). */
  private readonly promotion: Throttle;
  /** Ordered mode: where the next claim starts, after the last shard the previous one reached. */
  private readonly cursor = { next: 0 };

  constructor(
    private readonly publisher: OutboxPublisher,
    readonly index: number,
    readonly lanes: number,
  ) {
    this.promotion = new Throttle(PROMOTE_EVERY_MS, publisher.clock);
  }

  /** The shards this lane claims now: held by the relay, assigned to the lane, not waiting after a failure. */
  shards(): number[] {
    return this.relayShards().filter((s) => s % this.lanes === this.index);
  }

  /** The shards of every lane of this relay (ordered mode), not waiting after a failure. */
  private relayShards(): number[] {
    const { ordering } = this.publisher.deps;
    return ordering ? ordering.leases.owned().filter((s) => !ordering.backoff.isBlocked(s)) : [];
  }

  /** Another lane found rows: the next publish claims at once instead of probing first. */
  markBusy(): void {
    this.idle = false;
  }

  /**
   * One publish step. `probeAll`: an idle probe covers the shards of every lane of the relay, not only this
   * lane's (the relay's lane 0 does this, and wakes the others when it finds something: see Relay).
   * `found` says the probe or the claim saw rows.
   */
  async publish(probeAll = false): Promise<{ full: boolean; claimed: number; found: boolean }> {
    const { db, events, ordering, script } = this.publisher.deps;
    let promote = ordering ? this.promotion.due() : this.publisher.promotion.due();
    let probed = false;
    // An idle lane first asks, in one statement without a transaction or a lock, whether anything is ready
    // or due for promotion: an idle relay then costs one statement per poll, not a promotion UPDATE and a
    // claim transaction (lease check + one lookup per shard).
    if (this.idle) {
      const shards = ordering ? (probeAll ? this.relayShards() : this.shards()) : null;
      // A lane that holds no shards has nothing to ask.
      if (shards?.length === 0) return { full: false, claimed: 0, found: false };
      const probe = await probeOutbox(script ? rawOf(script) : db, shards);
      events.emitEvent('relay:probed', { kind: 'outbox' });
      if (!probe.ready && !probe.due) return { full: false, claimed: 0, found: false };
      promote = promote || probe.due;
      probed = true;
    }
    if (promote) await withDbRetry(() => promoteDue(db, 1000, ordering ? this.shards() : undefined));
    // Rows Kafka has acknowledged in this attempt. If the transaction then dies (a deadlock victim, a lost
    // connection) they are marked again in a fresh transaction below, rather than left to be re-published
    // as a whole batch of duplicates. Marking a delivered row is always safe: it is on Kafka.
    const delivered: ClaimedOutbox[] = [];
    const r = await (script ? this.publishScripted(script, delivered) : db.transaction((trx) => this.publishBatch(trx, delivered))).catch(
      async (e: unknown) => {
        if (delivered.length === 0) throw e;
        await withDbRetry(() => db.transaction((trx) => markPublished(trx, delivered, new Date(this.publisher.clock()))));
        events.emitEvent('relay:error', { step: 'outbox-mark', error: coerceError(e) });
        return { claimed: delivered.length, ok: delivered.length, failed: 0, error: '', full: true };
      },
    );
    this.idle = r.claimed === 0;
    if (r.claimed > 0) events.emitEvent('relay:claimed', { kind: 'outbox', count: r.claimed });
    if (r.ok > 0) events.emitEvent('relay:published', { count: r.ok });
    if (r.failed > 0) {
      events.emitEvent('relay:publish_failed', { count: r.failed, error: r.error });
      // Unordered: the whole loop backs off. Ordered: only the failed shards wait; the others go on.
      if (!ordering) throw new Error(`kafka publish failed for ${r.failed} rows: ${r.error}`);
    }
    return { full: r.full, claimed: r.claimed, found: probed || r.claimed > 0 };
  }

  /** The batch through knex, a statement per round trip. */
  private async publishBatch(trx: Knex.Transaction, delivered: ClaimedOutbox[]): Promise<BatchOutcome> {
    const { config, ordering } = this.publisher.deps;
    let rows: ClaimedOutbox[];
    let full: boolean;
    if (ordering) {
      const shards = await ordering.leases.verify(trx, this.shards());
      ({ rows, full } = await claimUnpublishedInShards(trx, config.relayBatchSize, shards, this.cursor));
    } else {
      rows = await claimUnpublished(trx, config.relayBatchSize);
      full = rows.length >= config.relayBatchSize;
    }
    if (rows.length === 0) return NOTHING;
    const batch = await readBoundedBatch(rows, statementOn(trx));
    const { outcome, write } = await this.send(batch.rows, full || batch.cut, delivered);
    for (const { sql, values } of write) await trx.raw(sql, values as Knex.RawBinding[]);
    return outcome;
  }

  /**
   * The same batch on a multi-statement connection (db/multi.ts), the knex path's statements in fewer round
   * trips: (1) BEGIN with the lease check (ordered) or the claim (unordered); (2) the ordered claim's part
   * from the cursor on, and (only when it comes back short) the wrapped part; [Kafka]; (last) the delivered
   * rows deleted and their events stamped, the failed ones marked, COMMIT.
   */
  private async publishScripted(pool: MultiPool, delivered: ClaimedOutbox[]): Promise<BatchOutcome> {
    const { config, ordering } = this.publisher.deps;
    const limit = config.relayBatchSize;
    const held = ordering ? this.shards() : [];
    if (ordering && held.length === 0) return NOTHING;
    const { tx, results } = await ScriptTransaction.begin(pool, [
      ordering ? { sql: LOCK_LEASES_SQL, values: [held] } : claimUnpublishedStatement(limit),
    ]);
    try {
      let rows: ClaimedOutbox[];
      let full: boolean;
      if (ordering) {
        const shards = ordering.leases.ours(leasesOf(results[0] as unknown[]));
        ({ rows, full } = await claimInShards(tx.sendOne, limit, shards, this.cursor));
      } else {
        rows = claimedOf(results[0] as unknown[]);
        full = rows.length >= limit;
      }
      if (rows.length === 0) {
        await tx.commit([]);
        return NOTHING;
      }
      // Messages too large to come with the claim are read now, for the rows this batch publishes.
      const batch = await readBoundedBatch(rows, tx.sendOne);
      const { outcome, write } = await this.send(batch.rows, full || batch.cut, delivered);
      await tx.commit(write);
      return outcome;
    } catch (e) {
      await tx.rollback();
      throw e;
    }
  }

  /**
   * Produces the claimed rows and awaits every delivery report: the batch's outcome, and the statements that
   * record it (the delivered rows deleted and their events stamped, the failed ones marked for a retry).
   */
  private async send(
    rows: ClaimedOutbox[],
    full: boolean,
    delivered: ClaimedOutbox[],
  ): Promise<{ outcome: BatchOutcome; write: Statement[] }> {
    const { producer, ordering } = this.publisher.deps;
    const outcomes = await producer.publish(rows.map((row) => row.message));
    const ok = rows.filter((_, i) => outcomes[i] === null);
    const failed = rows.filter((_, i) => outcomes[i] !== null);
    delivered.push(...ok);
    const now = new Date(this.publisher.clock());
    const firstError = outcomes.find((o) => o !== null)?.message ?? '';
    if (ordering) {
      // A failed row keeps its place and only its shard waits. Rows of the same trigger behind it cannot
      // have been delivered (the idempotent producer fails a partition's queue in order), so nothing of
      // that trigger overtakes it; other triggers' delivered rows are marked as usual.
      for (const shard of new Set(failed.map((f) => f.shard))) ordering.backoff.failed(shard);
      for (const row of ok) ordering.backoff.delivered(row.shard);
    }
    const write: Statement[] = markPublishedStatements(ok, now);
    if (failed.length > 0) {
      const retryAt = ordering ? null : this.publisher.batchBackoff.failed();
      write.push(
        markFailedStatement(
          failed.map((f) => f.id),
          firstError,
          retryAt,
        ),
      );
    } else {
      this.publisher.batchBackoff.succeeded();
    }
    return { outcome: { claimed: rows.length, ok: ok.length, failed: failed.length, error: firstError, full }, write };
  }
}
