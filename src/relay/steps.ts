import { randomUUID } from 'node:crypto';
import type { Config } from '../config';
import type { Db } from '../db/knex';
import { outboxRowsOf, recordEvents } from '../db/record-events';
import {
  claimDue,
  deleteFinishedBefore,
  insertOccurrences,
  insertOccurrencesStatement,
  deleteFired,
  deleteFiredStatement,
  markCancelled,
  markCancelledStatement,
  nextPending,
  nextPendingOf,
  nextPendingStatement,
  claimDueStatement,
  claimEnd,
  claimedOf,
  readLargeConfigs,
  type Claimed,
} from '../db/schedules';
import {
  deleteBefore,
  deleteCountsBefore,
  foldBefore,
  foldCountsBefore,
  ROLLUPS,
  insertCountedEventsStatements,
  retentionWindow,
  type EventInsert,
} from '../db/events';
import { ANY_QUEUED, insertOutboxStatements, outboxShardsOf, queuedShardsOf, queuedShardsStatement, shardsWithBacklog } from '../db/outbox';
import { isDuplicateKey } from '../db/errors';
import { rawOf, ScriptTransaction, type MultiPool, type Statement } from '../db/multi';
import { deleteKeysBefore, IDEMPOTENCY_WINDOW_SECONDS } from '../db/idempotency';
import { deleteRejectionsBefore } from '../db/webhook-requests';
import { deleteFireLagsBefore, FIRE_LAG_WINDOW_SECONDS, insertFireLags, insertFireLagsStatement } from '../db/fire-lags';
import { PartitionKeeper, RETIRE_MARGIN_MS, SLICE_MS } from '../db/partitions';
import type { Lifecycle } from '../events';
import { scheduledEventId } from '../triggers/event-id';
import { planOccurrence, type Occurrence } from '../triggers/schedule';
import type { DirectFire } from './direct-fire';
import { Attr, endSpan, type Tracing } from '../tracing/tracing';
import type { Span } from '@opentelemetry/api';
import { coerceError } from '../logger';
import type { ClaimCursor } from './claim-cursor';

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
 * the direct path for a while (see DirectFire), so an outage costs one message timeout, not one per batch.
 * `direct` is null in outbox mode (RELAY_FIRE_MODE=outbox).
 */
export async function fireDue(
  db: Db,
  config: Config,
  events: Lifecycle,
  direct: DirectFire | null,
  tracing: Tracing,
  options: { probeFirst?: boolean; script?: MultiPool | null; limit?: number; cursor?: ClaimCursor } = {},
): Promise<{ full: boolean; claimed: number; left: number; fired: number; queued: number; kafkaMs?: number; nextInMs?: number }> {
  // After a claim that found nothing, one statement without a transaction says whether anything is due
  // (and when the next is): an idle relay costs that, not a claim transaction, per poll.
  if (options.probeFirst) {
    const next = await nextPending(options.script ? rawOf(options.script) : db);
    events.emitEvent('relay:probed', { kind: 'schedules' });
    if (!next?.due) return { full: false, claimed: 0, left: 0, fired: 0, queued: 0, nextInMs: msUntil(next) };
  }
  // Recorded fire spans (none without an exporter), ended once the transaction is over.
  const spans: Span[] = [];
  const limit = options.limit ?? config.relayBatchSize;
  const result = await fireBatch({ db, config, direct, tracing, spans, limit, cursor: options.cursor }, options.script ?? null).then(
    (r) => (spans.forEach((s) => endSpan(s)), r),
    (e: unknown) => {
      spans.forEach((s) => endSpan(s, coerceError(e).message));
      throw e;
    },
  );
  if (result.claimed > 0) {
    events.emitEvent('relay:claimed', { kind: 'schedules', count: result.claimed - result.left });
    events.emitEvent('relay:fired', { count: result.fired, lagsSeconds: result.lags });
    if (result.fired > result.queued) events.emitEvent('relay:published', { count: result.fired - result.queued });
  }
  // Rows left for the next batch (the payload bound) make it full too: the lane claims again at once.
  const full = result.claimed >= limit || result.left > 0;
  const done = { full, claimed: result.claimed, left: result.left, fired: result.fired, queued: result.queued, kafkaMs: result.kafkaMs };
  if (full) return done;
  const next = result.next !== undefined ? result.next : await nextPending(db);
  return { ...done, nextInMs: msUntil(next) };
}

/** What one fire transaction did; `next` is the next pending occurrence when the transaction read it too. */
interface FireBatch {
  claimed: number;
  /** Claimed rows left pending for the next batch (planFiring's payload bound). */
  left: number;
  fired: number;
  queued: number;
  lags: number[];
  /** How long the direct path's produce took, delivery reports included (undefined: nothing was produced). */
  kafkaMs?: number;
  next?: { fire_at: Date; due: boolean } | null;
}

/** The scripted fire transaction when there is a multi-statement pool, else (and after it met a logged event) the knex one. */
async function fireBatch(fire: FireDeps, script: MultiPool | null): Promise<FireBatch> {
  try {
    const scripted = script && (await fireScripted(script, fire));
    if (scripted) return scripted;
    // The knex path claims from the head and leaves no point: the next claim starts at the head too.
    fire.cursor?.reset();
    return await fireWithKnex(fire);
  } catch (e) {
    fire.cursor?.reset();
    throw e;
  }
}

interface FireDeps {
  db: Db;
  config: Config;
  direct: DirectFire | null;
  tracing: Tracing;
  spans: Span[];
  /** The claim's size (ClaimSize: RELAY_BATCH_SIZE, more while a burst lasts). */
  limit: number;
  /** Where the lane's claim starts (the scripted path); without it every claim starts at the head. */
  cursor?: ClaimCursor;
}

/**
 * The fire transaction through knex, a statement per round trip. It is the path of a batch that meets an
 * event already logged (duplicate key on the scripted path): insertEvents then skips such events row by row.
 */
async function fireWithKnex({ db, config, direct, tracing, spans, limit }: FireDeps): Promise<FireBatch> {
  return db.transaction(async (trx) => {
    // The triggers come with the claim, a plain (non-locking) read: locking them would make every API edit wait on relays.
    const claim = await claimDue(trx, limit, FIRE_BATCH_MAX_CHARS);
    if (claim.due.length === 0) return { claimed: 0, left: 0, fired: 0, queued: 0, lags: [] };
    const now = new Date();
    const { toLog, next, lags: planned, completed, cancelled, left } = planFiring(claim, now, config.misfireGraceSeconds * 1000);
    spans.push(...traceFirings(tracing, toLog));
    const kafkaMs =
      direct && toLog.length > 0 && direct.isOpen()
        ? await direct.produce(toLog, outboxShardsOf(trx), (s) => shardsWithBacklog(trx, s))
        : undefined;
    const inserted = await recordEvents(trx, toLog, config.kafkaTopic, now);
    await deleteFired(trx, completed);
    await markCancelled(trx, cancelled, now);
    await insertOccurrences(trx, next, now);
    const fired = toLog.filter((e) => inserted.has(e.id));
    const lags = planned.filter((_, i) => inserted.has(toLog[i]!.id));
    await insertFireLags(trx, lagsMsOf(lags), now);
    return {
      claimed: claim.due.length,
      left,
      fired: inserted.size,
      queued: fired.filter((e) => !e.published_at).length,
      lags,
      kafkaMs,
    };
  });
}

/**
 * The same fire transaction in two round trips on a multi-statement connection (db/multi.ts) instead of
 * about eight: (1) BEGIN, the claim with its triggers' plain read, and the outbox probe of the direct
 * path; [Kafka]; (2) event logs (counted in the rollups per batch), outbox rows, the claimed rows marked,
 * the next occurrences, COMMIT, and after it the next pending occurrence for the lane's sleep. The
 * statements are the knex path's own (the builders of db/), so plan tests check what this sends. Returns
 * null, rolled back, when an event of the batch is already logged: the caller fires it again on the knex
 * path.
 */
async function fireScripted(pool: MultiPool, { db, config, direct, tracing, spans, limit, cursor }: FireDeps): Promise<FireBatch | null> {
  const produce = direct !== null && direct.isOpen();
  // The outbox probe rides with the claim (before anything is produced); when nothing is due it was one index dive for nothing.
  const probe = produce && config.outboxOrdering;
  const { tx, claimed, plan, anyQueued, now, end, claimedAtMs } = await claimAndPlan(pool, config, limit, probe, cursor ?? null);
  try {
    // Where the lane's next claim starts once this one commits: past its rows when all of them leave the
    // pending state (none left for the next batch) and no next occurrence it inserts falls behind them (a
    // recurring trigger catching up), else at the head (relay/claim-cursor.ts).
    const point = plan && plan.left === 0 && end && plan.next.every((o) => o.fire_at > end.fire_at) ? end : null;
    // A batch that is not full is the last due one: the next pending occurrence (past the point) is read after the commit.
    const after: Statement[] = claimed < limit ? [nextPendingStatement(point)] : [];
    if (!plan) {
      const read = await tx.commit([], after);
      cursor?.committed(claimedAtMs, null);
      return { claimed: 0, left: 0, fired: 0, queued: 0, lags: [], next: nextPendingOf(read[0] as Array<{ fire_at: Date; due: number }>) };
    }
    spans.push(...traceFirings(tracing, plan.toLog));
    const lags = plan.lags;
    const shards = outboxShardsOf(db);
    const kafkaMs =
      produce && plan.toLog.length > 0
        ? await direct.produce(plan.toLog, shards, async (s) =>
            anyQueued ? queuedShardsOf(await tx.sendOne(queuedShardsStatement(s))) : new Set(),
          )
        : undefined;
    const outbox = outboxRowsOf(plan.toLog, config.kafkaTopic, now);
    const write: Statement[] = [
      ...insertCountedEventsStatements(plan.toLog, now),
      ...insertOutboxStatements(outbox, now, shards),
      ...(plan.completed.length > 0 ? [deleteFiredStatement(plan.completed)] : []),
      ...(plan.cancelled.length > 0 ? [markCancelledStatement(plan.cancelled, now)] : []),
      ...(plan.next.length > 0 ? [insertOccurrencesStatement(plan.next, now)] : []),
      ...(lags.length > 0 ? [insertFireLagsStatement(lagsMsOf(lags), now)] : []),
    ];
    const read2 = await tx.commit(write, after);
    cursor?.committed(claimedAtMs, point);
    return {
      claimed,
      left: plan.left,
      fired: plan.toLog.length,
      queued: outbox.length,
      lags,
      kafkaMs,
      next: after.length > 0 ? nextPendingOf(read2[0] as Array<{ fire_at: Date; due: number }>) : undefined,
    };
  } catch (e) {
    await tx.rollback();
    if (!isDuplicateKey(e)) throw e;
    // Fired again on the knex path: these spans belong to the attempt that was rolled back.
    spans.splice(0).forEach((s) => endSpan(s, 'an event of the batch was already logged: fired again row by row'));
    return null;
  }
}

/**
 * The first round trip of the scripted fire (BEGIN, the claim with its triggers, the outbox probe) and the
 * plan made of it. Only the plan leaves this function: the claim's rows, their config text and the parsed
 * configs become garbage here, before the batch waits for Kafka. Kept alive through that wait (up to
 * RELAY_CONCURRENCY × RELAY_BATCH_MAX rows in a burst), every scavenge copied them and promoted them.
 * `plan` is null when nothing was due (the transaction is still open: the caller commits it).
 */
async function claimAndPlan(pool: MultiPool, config: Config, limit: number, probe: boolean, cursor: ClaimCursor | null) {
  const claimedAtMs = Date.now();
  const from = cursor ? cursor.start(claimedAtMs) : null;
  const { tx, results } = await ScriptTransaction.begin(pool, [claimDueStatement(limit, from), ...(probe ? [ANY_QUEUED] : [])]);
  if (cursor && from === null) {
    const nowMs = Date.now();
    cursor.fromHead(nowMs, nowMs - claimedAtMs);
  }
  try {
    const claimed = claimedOf(results[0] as Array<Record<string, unknown>>);
    if (claimed.due.length === 0) return { tx, claimed: 0, plan: null, anyQueued: false, now: new Date(), end: null, claimedAtMs };
    const end = cursor ? claimEnd(claimed.due) : null;
    const anyQueued = probe && (results[1] as unknown[]).length > 0;
    // Configs too large to come with the claim: those this batch fires are read now (a round trip more,
    // only for such batches).
    const claim = await readLargeConfigs(claimed, FIRE_BATCH_MAX_CHARS, tx.sendOne);
    const now = new Date();
    const plan = planFiring(claim, now, config.misfireGraceSeconds * 1000);
    return { tx, claimed: claimed.due.length, plan, anyQueued, now, end, claimedAtMs };
  } catch (e) {
    await tx.rollback();
    throw e;
  }
}

/** Fire lags (s) as fire_lags stores them: whole ms, never negative (a relay's clock a little behind the database's). */
function lagsMsOf(lags: number[]): number[] {
  return lags.map((s) => Math.max(0, Math.round(s * 1000)));
}

/**
 * Each firing starts a trace of its own, whose id is the event id (a retried fire transaction keeps it):
 * sets the events' trace_parent and returns the recorded fire spans (none without an exporter; then no
 * attribute object is built either).
 */
function traceFirings(tracing: Tracing, toLog: EventInsert[]): Span[] {
  const spans: Span[] = [];
  for (const e of toLog) {
    const attributes = tracing.recording
      ? { [Attr.eventId]: e.id, [Attr.triggerId]: e.trigger_id!, 'etp.scheduled_for': e.scheduled_for!.toISOString() }
      : undefined;
    const begun = tracing.own('fire', e.id, attributes);
    e.trace_parent = begun.traceparent;
    if (begun.span) spans.push(begun.span);
  }
  return spans;
}

/** How long until the next pending occurrence fires (undefined: none is pending), for the lane's sleep. */
function msUntil(next: { fire_at: Date } | null): number | undefined {
  return next ? next.fire_at.getTime() - Date.now() : undefined;
}

/**
 * The most payload text (counted as the triggers' stored configs, which hold the payloads) one fire batch
 * takes: a batch of triggers with payloads near the limit is fired over several transactions, so what one
 * batch writes and produces (about 32 MiB of payloads, and their copies in the SQL text and the Kafka
 * messages) stays bounded whatever RELAY_BATCH_SIZE says. The first row of a batch is always fired.
 */
export const FIRE_BATCH_MAX_CHARS = 32 * 1024 * 1024;

/**
 * What a claimed batch of due schedule rows becomes (pure): the event logs to write, the next occurrences,
 * each event's fire lag (from its planned instant to `now`), and the rows to mark completed or cancelled.
 * Rows past `maxChars` of payload text, and rows of active triggers whose large config was not read
 * (`unread`), are `left`: untouched, they stay pending, and their locks go with the commit, so the next
 * batch claims them.
 */
export function planFiring({ due, triggers, unread }: Claimed, now: Date, graceMs: number, maxChars = FIRE_BATCH_MAX_CHARS) {
  const toLog: EventInsert[] = [];
  const next: Array<{ trigger_id: string } & Occurrence> = [];
  // Each event's fire lag (s), in toLog's order: from its planned (jittered) instant to `now`.
  const lags: number[] = [];
  const completed: number[] = [];
  const cancelled: number[] = [];
  let chars = 0;
  let left = 0;
  for (const row of due) {
    const t = triggers.get(row.trigger_id);
    // An active trigger whose large config this batch did not read (largeConfigsToRead): for the next batch.
    if (!t && unread?.get(row.trigger_id)?.status === 'active') {
      left++;
      continue;
    }
    if (!t || t.status !== 'active') {
      // Inactive: no event for this occurrence; re-activation schedules from "now" (see triggers/lifecycle.ts).
      cancelled.push(row.id);
      continue;
    }
    // Jitter: the row's fire_at may lie after its nominal scheduled_for, which names the event.
    const plan = planOccurrence(t.id, t.type, t.config, row, now, graceMs);
    const rowChars = t.configChars * plan.fire.length;
    if (toLog.length > 0 && chars + rowChars > maxChars) {
      left++;
      continue;
    }
    chars += rowChars;
    for (const { scheduled_for: at, fire_at } of plan.fire) {
      const id = scheduledEventId(t.id, at);
      lags.push((now.getTime() - fire_at.getTime()) / 1000);
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
  return { toLog, next, lags, completed, cancelled, left };
}

const SWEEP_BATCH = 1000;
/**
 * Rows deleted one by one are those past the window by more than a slice's width and the retire margin:
 * by then the slice that held them in the normal run has been retired whole, so what is left is what no
 * slice retires (occurrences fired days late, rows older than the partition layout, version 4 ids).
 */
export const ROW_DELETE_LAG_MS = SLICE_MS + RETIRE_MARGIN_MS + 60_000;

/**
 * The lag for a retention window of `keepMs`: none under 12 h (tests and demos with windows of seconds or
 * minutes), where a slice of four hours would keep rows far past a short window; there rows are deleted
 * one by one at the window, and the slices retire empty.
 */
export function rowDeleteLagMs(keepMs: number): number {
  return keepMs >= 12 * 3600_000 ? ROW_DELETE_LAG_MS : 0;
}
/** Minute rows of each rollup folded into hours per sweep: one short transaction (25–35k rows/s measured on a cold table). */
const FOLD_BATCH = 2000;

/**
 * Step 3: retention and clean-up, in bounded batches so no statement holds locks for long. Safe with
 * several relays at once: each statement is idempotent and touches rows by age only, and one relay at a time
 * changes partitions (a lease). Nothing is archived row by row: an event's retention state follows from its
 * age (see RetentionWindow in db/events.ts). Events leave by time slice (`keeper`, db/partitions.ts); what
 * no slice retires is deleted row by row once it is a slice's width past the window (rowDeleteLagMs).
 * A relay that was down for days catches up slice by slice and batch by batch (`full` asks for the next
 * sweep at once); `quiet` says it changed nothing at all (the relay then sweeps less often). `now` is for tests.
 */
export async function sweep(
  db: Db,
  config: Config,
  events: Lifecycle,
  keeper: PartitionKeeper = new PartitionKeeper(`sweep-${randomUUID().slice(0, 8)}`),
  now: Date = new Date(),
): Promise<{ full: boolean; quiet: boolean }> {
  const window = retentionWindow(now, config.retentionActiveSeconds, config.retentionDeleteAfterSeconds);
  const keepFrom = window.keepFrom;
  const slices = await keeper.maintain(db, now.getTime(), keepFrom.getTime());
  const lag = rowDeleteLagMs(config.retentionDeleteAfterSeconds * 1000);
  const deleted = await deleteBefore(db, new Date(keepFrom.getTime() - lag), SWEEP_BATCH);
  const counts = await deleteCountsBefore(db, keepFrom, SWEEP_BATCH);
  // Minute rows older than the active window (and an hour) become hour rows: a trigger's stats and the
  // overview's 48 h counts then read about 48 rows per kind (and source), not 2,880 per writer slot.
  let folded = 0;
  for (const rollup of ROLLUPS) folded = Math.max(folded, await foldCountsBefore(db, rollup, foldBefore(window), FOLD_BATCH));
  // The tables cleaned row by row below fill at up to the event rate (an idempotency key per delivery, a
  // fire lag row per fire batch): a full batch asks for the next sweep at once, so a sweep that deletes
  // SWEEP_BATCH rows every RETENTION_SWEEP_INTERVAL (200 rows/s at the defaults) never falls behind for good.
  const cleaned = [
    await deleteFinishedBefore(db, keepFrom, SWEEP_BATCH),
    await deleteFireLagsBefore(db, new Date(now.getTime() - FIRE_LAG_WINDOW_SECONDS * 1000), SWEEP_BATCH),
    await deleteKeysBefore(
      db,
      new Date(now.getTime() - Math.max(IDEMPOTENCY_WINDOW_SECONDS, config.retentionDeleteAfterSeconds) * 1000),
      SWEEP_BATCH,
    ),
    // The inbound call log's rejections age out with the events (the API trims each trigger's to a count).
    await deleteRejectionsBefore(db, keepFrom, SWEEP_BATCH),
  ];
  if (deleted > 0) events.emitEvent('relay:swept', { deleted });
  if (slices.created > 0 || slices.retired > 0) events.emitEvent('relay:slices', { created: slices.created, retired: slices.retired });
  const batches = [deleted, counts, ...cleaned];
  const more = batches.some((n) => n === SWEEP_BATCH);
  const quiet = slices.created + slices.retired + folded === 0 && batches.every((n) => n === 0);
  return { full: slices.more || more || folded === FOLD_BATCH, quiet };
}
