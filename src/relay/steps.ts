import type { Config } from '../config';
import type { Db } from '../db/knex';
import { recordEvents } from '../db/fire';
import { claimDue, earliestPending, insertOccurrences, markDone, deleteFinishedBefore } from '../db/schedules';
import { getTriggersForFire } from '../db/triggers';
import {
  claimUnpublished,
  claimUnpublishedInShards,
  deletePublished,
  markFailed,
  markPublished,
  hasReady,
  promoteDue,
  shardOf,
  shardsWithBacklog,
  type ClaimedOutbox,
} from '../db/outbox';
import { eventMessage, toKafka } from '../kafka/message';
import type { Knex } from 'knex';
import { deleteBefore, deleteCountsBefore, type EventInsert } from '../db/events';
import { deleteKeysBefore } from '../db/idempotency';
import { deleteRejectionsBefore } from '../db/webhook-requests';
import type { Lifecycle } from '../events';
import type { EventProducer } from '../kafka/producer';
import { scheduledEventId } from '../triggers/event-id';
import { planOccurrence, type Occurrence } from '../triggers/schedule';
import { backoffMs, withDbRetry } from '../util';
import type { ShardLeases } from './leases';

/** After a failed direct produce, due events go through the outbox for a while (the outbox retries them). */
let directPausedUntil = 0;
let directFailures = 0;

/**
 * Step 1: fire due schedules. One short READ COMMITTED transaction per batch:
 * claim (SKIP LOCKED) → [direct mode: produce to Kafka, await the delivery reports] → event logs (+ outbox
 * rows for whatever is not on Kafka yet) → mark completed → next occurrence → commit. A crash anywhere
 * before the commit rolls it all back and the rows are claimed again; the event id is derived from
 * (trigger id, scheduled time), so however often an occurrence is retried it yields one event log (Kafka
 * may then see the event id twice, as with the outbox).
 *
 * Direct mode (RELAY_FIRE_MODE=direct, with a producer) treats the due row as the event's outbox entry: no
 * outbox insert, claim and update per event. Per-trigger order still holds: a trigger has one pending row
 * at a time and the next is only claimable after this commit, which follows the delivery reports; and an
 * event whose shard still has queued outbox rows (a test run, a replay, a Kafka outage's backlog) takes the
 * outbox path behind them. A failed produce falls back to the outbox in the same transaction and pauses
 * the direct path for a while, so an outage costs one message timeout, not one per batch.
 */
export async function fireDue(
  db: Db,
  config: Config,
  events: Lifecycle,
  producer?: EventProducer | null,
): Promise<{ full: boolean; fired: number; queued: number; nextInMs?: number }> {
  const result = await db.transaction(async (trx) => {
    const due = await claimDue(trx, config.relayBatchSize);
    if (due.length === 0) return { claimed: 0, fired: 0, queued: 0, lags: [] as number[] };
    // A plain (non-locking) read: taking trigger row locks here would make every API edit wait on relays.
    const triggers = await getTriggersForFire(trx, [...new Set(due.map((d) => d.trigger_id))]);
    const now = new Date();
    const toLog: EventInsert[] = [];
    const next: Array<{ trigger_id: string } & Occurrence> = [];
    const plannedAt = new Map<string, Date>(); // event id → the (jittered) instant it was due, for the lag
    const completed: number[] = [];
    const cancelled: number[] = [];
    for (const row of due) {
      const t = triggers.get(row.trigger_id);
      if (!t || t.status !== 'active') {
        // Inactive: no event for this occurrence; re-activation schedules from "now" (see api/triggers.ts).
        cancelled.push(row.id);
        continue;
      }
      // Jitter: the row's fire_at may lie after its nominal scheduled_for, which names the event.
      const plan = planOccurrence(t.id, t.type, t.config, row, now, config.misfireGraceSeconds * 1000);
      for (const { scheduled_for: at, fire_at } of plan.fire) {
        const id = scheduledEventId(t.id, at);
        plannedAt.set(id, fire_at);
        toLog.push({
          id,
          trigger_id: t.id,
          trigger_type: t.type,
          source: 'scheduler',
          is_test_run: false,
          payload: (t.config as { payload?: unknown }).payload ?? null,
          scheduled_for: at,
          fired_at: now,
        });
      }
      if (plan.next) next.push({ trigger_id: t.id, ...plan.next });
      completed.push(row.id);
    }
    if (producer && config.relayFireMode === 'direct' && toLog.length > 0 && Date.now() >= directPausedUntil) {
      await produceDirect(trx, producer, config, toLog);
    }
    const inserted = await recordEvents(trx, toLog, config.kafkaTopic, now);
    await markDone(trx, completed, 'completed', now);
    await markDone(trx, cancelled, 'cancelled', now);
    await insertOccurrences(trx, next, now);
    const fired = toLog.filter((e) => inserted.has(e.id));
    const lags = fired.map((e) => (now.getTime() - plannedAt.get(e.id)!.getTime()) / 1000);
    const queued = fired.filter((e) => !e.published_at).length;
    return { claimed: due.length, fired: inserted.size, queued, lags };
  });
  if (result.claimed > 0) {
    events.emitEvent('relay:claimed', { kind: 'schedules', count: result.claimed });
    events.emitEvent('relay:fired', { count: result.fired, lagsSeconds: result.lags });
    if (result.fired > result.queued) events.emitEvent('relay:published', { count: result.fired - result.queued });
  }
  const full = result.claimed >= config.relayBatchSize;
  if (full) return { full, fired: result.fired, queued: result.queued };
  const earliest = await earliestPending(db);
  return { full, fired: result.fired, queued: result.queued, nextInMs: earliest ? earliest.getTime() - Date.now() : undefined };
}

/** The direct fire path's produce: sets `published_at` on the events Kafka acknowledged; the rest stay for the outbox. */
async function produceDirect(trx: Knex.Transaction, producer: EventProducer, config: Config, toLog: EventInsert[]): Promise<void> {
  let sendable = toLog;
  if (config.outboxOrdering) {
    const busy = await shardsWithBacklog(trx, [...new Set(toLog.map((e) => shardOf(e.trigger_id)))]);
    if (busy.size > 0) sendable = toLog.filter((e) => !busy.has(shardOf(e.trigger_id)));
  }
  if (sendable.length === 0) return;
  // Bounded: a fire transaction never waits out a broker outage (a late chain would misfire). What is not
  // acknowledged in time goes through the outbox below; a late report then only makes a duplicate.
  const outcomes = await producer.publish(
    sendable.map((e) => toKafka(config.kafkaTopic, eventMessage(e))),
    config.relayDirectTimeoutMs,
  );
  const at = new Date();
  // A trigger with a failed event (fire_all backfill) sends its later ones through the outbox too, behind it.
  const failedTriggers = new Set(sendable.filter((_, i) => outcomes[i] !== null).map((e) => e.trigger_id));
  sendable.forEach((e, i) => {
    if (outcomes[i] === null && !failedTriggers.has(e.trigger_id)) e.published_at = at;
  });
  if (failedTriggers.size > 0) {
    directFailures++;
    directPausedUntil = Date.now() + 1000 + backoffMs(directFailures, 1000, 30_000);
  } else {
    directFailures = 0;
  }
}

/** Ordered mode's state: the relay's shard leases, and shards waiting after a failed publish of their head. */
export interface Ordering {
  leases: ShardLeases;
  blockedUntil: Map<number, number>;
  failures: Map<number, number>;
}

let consecutivePublishFailures = 0;
let lastPromoteMs = 0;
const PROMOTE_EVERY_MS = 100;

/**
 * Step 2: publish the outbox. Claim (SKIP LOCKED, id order) → produce all → await every delivery report →
 * mark the delivered ones published and the failed ones retried later → commit. Nothing is dropped: a row
 * leaves the backlog only in the commit that follows its successful delivery report. A crash between the
 * report and the commit re-publishes the batch (at-least-once; consumers drop duplicates by event id).
 *
 * With `ordering` (OUTBOX_ORDERING=on) only rows of shards this relay leases are claimed, the leases are
 * verified with their rows locked in the same transaction, and a failed row keeps its place: its shard
 * (only its shard) waits with back-off and retries from that row, so nothing behind it overtakes it.
 */
export async function publishOutbox(
  db: Db,
  producer: EventProducer,
  config: Config,
  events: Lifecycle,
  ordering?: Ordering,
  lane: { lane: number; lanes: number; idle?: boolean; promotedAt?: number; cursor?: { next: number } } = { lane: 0, lanes: 1 },
): Promise<{ full: boolean; claimed: number }> {
  if (ordering) {
    // Each lane promotes the waiting rows of its own shards: no lock on anyone else's claim range.
    if (Date.now() - (lane.promotedAt ?? 0) >= PROMOTE_EVERY_MS) {
      lane.promotedAt = Date.now();
      await withDbRetry(() => promoteDue(db, 1000, laneShards(ordering, lane)));
    }
  } else if (Date.now() - lastPromoteMs >= PROMOTE_EVERY_MS) {
    lastPromoteMs = Date.now();
    await withDbRetry(() => promoteDue(db));
  }
  // An idle lane first asks, without a transaction or a lock, whether anything is ready in its shards: an
  // index dive instead of the claim transaction (lease check + one lookup per shard) on every poll.
  if (lane.idle) {
    const shards = ordering ? laneShards(ordering, lane) : null;
    if (shards?.length === 0 || !(await hasReady(db, shards))) return { full: false, claimed: 0 };
  }
  // Rows Kafka has acknowledged in this attempt. If the transaction then dies (a deadlock victim, a lost
  // connection) they are marked again in a fresh transaction below, rather than left to be re-published
  // as a whole batch of duplicates. Marking a delivered row is always safe: it is on Kafka.
  let delivered: ClaimedOutbox[] = [];
  const r = await db
    .transaction(async (trx) => publishBatch(trx))
    .catch(async (e: unknown) => {
      if (delivered.length === 0) throw e;
      const rows = delivered;
      await withDbRetry(() => db.transaction((trx) => markPublished(trx, rows, new Date())));
      events.emitEvent('relay:error', { step: 'outbox-mark', error: e instanceof Error ? e : new Error(String(e)) });
      return { claimed: rows.length, ok: rows.length, failed: 0, error: '', full: true };
    });
  lane.idle = r.claimed === 0;
  if (r.claimed > 0) events.emitEvent('relay:claimed', { kind: 'outbox', count: r.claimed });
  if (r.ok > 0) events.emitEvent('relay:published', { count: r.ok });
  if (r.failed > 0) {
    events.emitEvent('relay:publish_failed', { count: r.failed, error: r.error });
    // Unordered: the whole loop backs off. Ordered: only the failed shards wait; the others go on.
    if (!ordering) throw new Error(`kafka publish failed for ${r.failed} rows: ${r.error}`);
  }
  return { full: r.full, claimed: r.claimed };

  async function publishBatch(trx: Knex.Transaction) {
    let rows;
    let full: boolean;
    if (ordering) {
      const shards = await ordering.leases.verify(trx, laneShards(ordering, lane));
      ({ rows, full } = await claimUnpublishedInShards(trx, config.relayBatchSize, shards, (lane.cursor ??= { next: 0 })));
    } else {
      rows = await claimUnpublished(trx, config.relayBatchSize);
      full = rows.length >= config.relayBatchSize;
    }
    if (rows.length === 0) return { claimed: 0, ok: 0, failed: 0, error: '', full: false };
    const outcomes = await producer.publish(rows.map((row) => row.message));
    const ok = rows.filter((_, i) => outcomes[i] === null);
    const failed = rows.filter((_, i) => outcomes[i] !== null);
    delivered = ok;
    const now = new Date();
    const firstError = outcomes.find((o) => o !== null)?.message ?? '';
    if (ordering) {
      // A failed row keeps its place and only its shard waits. Rows of the same trigger behind it cannot
      // have been delivered (the idempotent producer fails a partition's queue in order), so nothing of
      // that trigger overtakes it; other triggers' delivered rows are marked as usual.
      for (const shard of new Set(failed.map((f) => f.shard))) {
        const n = (ordering.failures.get(shard) ?? 0) + 1;
        ordering.failures.set(shard, n);
        ordering.blockedUntil.set(shard, Date.now() + 200 + backoffMs(n, 500, 15_000));
      }
      for (const row of ok) ordering.failures.delete(row.shard);
    }
    await markPublished(trx, ok, now);
    if (failed.length > 0) {
      consecutivePublishFailures++;
      const retryAt = ordering ? null : new Date(now.getTime() + 500 + backoffMs(consecutivePublishFailures, 500, 15_000));
      await markFailed(
        trx,
        failed.map((f) => f.id),
        firstError,
        retryAt,
      );
    } else {
      consecutivePublishFailures = 0;
    }
    return { claimed: rows.length, ok: ok.length, failed: failed.length, error: firstError, full };
  }
}

/** The shards a publish lane claims now: held by this relay, assigned to the lane, not waiting after a failure. */
function laneShards(ordering: Ordering, lane: { lane: number; lanes: number }): number[] {
  const now = Date.now();
  return ordering.leases.owned().filter((s) => s % lane.lanes === lane.lane && (ordering.blockedUntil.get(s) ?? 0) <= now);
}

const SWEEP_BATCH = 1000;

/**
 * Step 3: retention and clean-up, in bounded batches so no statement holds locks for long. Safe with
 * several relays at once: each statement is idempotent and touches rows by age only. Nothing is archived
 * row by row: an event's retention state follows from its age (see RetentionWindow in db/events.ts).
 * A relay that was down for days catches up batch by batch (`full` asks for the next sweep at once).
 */
export async function sweep(db: Db, config: Config, events: Lifecycle): Promise<{ full: boolean }> {
  const now = new Date();
  const keepFrom = new Date(now.getTime() - config.retentionDeleteAfterSeconds * 1000);
  const deleted = await deleteBefore(db, keepFrom, SWEEP_BATCH);
  const counts = await deleteCountsBefore(db, keepFrom, SWEEP_BATCH);
  const outboxCleaned = await deletePublished(db, new Date(now.getTime() - 60_000), SWEEP_BATCH);
  await deleteFinishedBefore(db, keepFrom, SWEEP_BATCH);
  await deleteKeysBefore(db, new Date(now.getTime() - Math.max(24 * 3600, config.retentionDeleteAfterSeconds) * 1000), SWEEP_BATCH);
  // The inbound call log's rejections age out with the events (the API trims each trigger's to a count).
  await deleteRejectionsBefore(db, keepFrom, SWEEP_BATCH);
  if (deleted + outboxCleaned > 0) events.emitEvent('relay:swept', { deleted, outboxCleaned });
  return { full: deleted === SWEEP_BATCH || counts === SWEEP_BATCH || outboxCleaned === SWEEP_BATCH };
}
