/**
 * The operator's actions on one event or many: test runs, replay at most once, retry now, cancel. Each
 * rule lives here once; the routes (api/event-actions.ts, api/triggers.ts) parse and format, the dashboard calls the routes.
 *
 * What makes them safe against the worker, which records an event's outcomes concurrently:
 *  - a replay needs a final event (success or failure), and a final event never changes again (the
 *    worker skips final events, and writes nothing of one that became final while its request was in
 *    flight: see Worker.record). "Replayed at most once" is the primary key of event_replays.
 *  - retry now moves the waiting attempt's outbox row forward instead of adding a message: the attempt
 *    keeps its number and there is only ever one message for it (compare-and-set on the row's state).
 *  - cancel is a compare-and-set of the event's status (pending/published → failure).
 */
import type { Knex } from 'knex';
import { ApiError } from '../api/errors';
import {
  bringAttemptForward,
  cancelDelivery,
  eventsToReplay,
  getEvent,
  retentionOf,
  type EventInsert,
  type EventRow,
  type RetentionWindow,
  type ReplayFilter,
} from '../db/events';
import { recordEvents } from '../db/record-events';
import type { Db } from '../db/knex';
import { deleteWaiting, releaseWaiting } from '../db/outbox';
import { markReplayed, replayMarks } from '../db/replays';
import { getTrigger, getTriggersByIds } from '../db/triggers';
import { newEventId } from '../triggers/event-id';
import { Attr, endSpan, type Begun, type Tracing } from '../tracing/tracing';
import { coerceError } from '../logger';
import { withConflictRetry, withDbRetry } from '../util';

/** Events written per transaction by a bulk replay. */
export const REPLAY_BATCH = 500;

/**
 * A test run: one event of a stored trigger (its schedule untouched) or of an unsaved definition (nothing
 * stored but the event, which then carries its own `delivery_config` for the worker), logged and queued in
 * one transaction. Returns the new event's id. A test run starts a trace of its own (docs/tracing.md).
 */
export async function recordTestRun(
  db: Db,
  topic: string,
  run: Pick<EventInsert, 'trigger_id' | 'trigger_type' | 'payload' | 'delivery_config'>,
  now: Date,
  tracing: Tracing,
): Promise<string> {
  const id = newEventId();
  const begun = tracing.own('test run', id, { [Attr.eventId]: id, ...(run.trigger_id ? { [Attr.triggerId]: run.trigger_id } : {}) });
  const event: EventInsert = {
    id,
    ...run,
    source: 'manual-test',
    is_test_run: true,
    scheduled_for: null,
    fired_at: now,
    trace_parent: begun.traceparent,
  };
  await ended(
    begun,
    withConflictRetry(() => db.transaction((trx) => recordEvents(trx, [event], topic, now))),
  );
  return id;
}

/** Ends `begun`'s span (if recorded) when `work` settles: an error as the span's status. */
async function ended<T>(begun: Begun | Begun[], work: Promise<T>): Promise<T> {
  const all = Array.isArray(begun) ? begun : [begun];
  try {
    const r = await work;
    for (const b of all) endSpan(b.span);
    return r;
  } catch (e) {
    for (const b of all) endSpan(b.span, coerceError(e).message);
    throw e;
  }
}

/**
 * A replay's trace: a new one (its own event id as trace id), linked to the original event's trace when
 * spans are recorded. Not a child of the original: that trace ended with the original delivery, and a
 * replay may come days later from an operator, a different cause.
 */
function replayTrace(tracing: Tracing, replay: EventInsert, original: EventRow): Begun {
  const attrs = { [Attr.eventId]: replay.id, ...(replay.trigger_id ? { [Attr.triggerId]: replay.trigger_id } : {}) };
  const begun = tracing.own('replay', replay.id, attrs, original.trace_parent);
  replay.trace_parent = begun.traceparent;
  return begun;
}

const isFinal = (e: Pick<EventRow, 'execution_status'>) => e.execution_status === 'success' || e.execution_status === 'failure';

/** The new event of a replay: same trigger, payload and delivery config, a fresh id and delivery round. */
function replayOf(e: EventRow, id: string, now: Date): EventInsert {
  return {
    id,
    trigger_id: e.trigger_id,
    trigger_type: e.trigger_type,
    source: 'replay',
    is_test_run: e.is_test_run,
    payload: e.payload,
    delivery_config: e.delivery_config ?? null,
    replay_of: e.id,
    // The occurrence it re-delivers: consumers keyed on the scheduled time see the same one again.
    scheduled_for: e.scheduled_for,
    fired_at: now,
  };
}

/** A delivery needs the trigger's config, or the event's own (an unsaved test run carries one). */
function replayable(e: EventRow, triggerExists: boolean): boolean {
  return e.delivery_config !== null && e.delivery_config !== undefined ? true : e.trigger_id !== null && triggerExists;
}

function notFinal(e: EventRow): ApiError {
  const where = e.execution_status === 'pending' ? 'is not on Kafka yet' : `is still being delivered (${e.attempts} attempt(s) so far)`;
  return new ApiError(
    'EVENT_NOT_FINAL',
    `The event ${where}; a replay would deliver it twice. Wait for it to end, or cancel its retries first`,
  );
}

/** An event of the retention window, or 404. */
async function liveEvent(q: Knex | Knex.Transaction, id: string, w: RetentionWindow): Promise<EventRow> {
  const e = await getEvent(q, id);
  if (!e || !retentionOf(e.fired_at, w)) throw new ApiError('EVENT_NOT_FOUND', `No event with id ${id}`);
  return e;
}

/**
 * Replays one event in the caller's transaction: 404 outside the retention window, 409 EVENT_NOT_FINAL
 * while it is pending or being retried, EVENT_NOT_REPLAYABLE when nothing could deliver it, and
 * EVENT_ALREADY_REPLAYED (with the existing replay's id) when it has been replayed before — unless `force`.
 */
export async function replayOne(
  trx: Knex.Transaction,
  opts: { id: string; force: boolean; window: RetentionWindow; topic: string; now: Date; tracing: Tracing },
): Promise<{ event_id: string; replay_of: string }> {
  const e = await liveEvent(trx, opts.id, opts.window);
  if (!isFinal(e)) throw notFinal(e);
  const exists = e.trigger_id !== null && (await getTrigger(trx, e.trigger_id)) !== null;
  if (!replayable(e, exists)) {
    const detail = `The trigger of this event (${e.trigger_id ?? 'none'}) was deleted, and the event carries no delivery config of its own`;
    throw new ApiError('EVENT_NOT_REPLAYABLE', detail);
  }
  const replay = replayOf(e, newEventId(), opts.now);
  const marked = await markReplayed(trx, [{ event_id: e.id, replay_id: replay.id }], opts.now, opts.force);
  if (!marked.has(e.id)) {
    // A locking read: the mark may have been committed after this transaction's snapshot was taken.
    const existing = (await replayMarks(trx, [e.id], { lock: true })).get(e.id);
    throw new ApiError(
      'EVENT_ALREADY_REPLAYED',
      `The event was replayed already as ${existing?.replay_id ?? 'another event'}; pass force=true to replay it again`,
      [],
      {},
      { replay_id: existing?.replay_id ?? null },
    );
  }
  const begun = replayTrace(opts.tracing, replay, e);
  await ended(begun, recordEvents(trx, [replay], opts.topic, opts.now));
  return { event_id: replay.id, replay_of: e.id };
}

export interface BulkReplayResult {
  replayed: number;
  skipped: { already_replayed: number; not_final: number; not_replayable: number };
}

/**
 * Replays every event matching the filter, fired before the request, oldest first, up to `limit`: in
 * batches of REPLAY_BATCH, each its own transaction (a bulk replay of 10,000 events never holds one long
 * transaction). Events still pending or being retried, events replayed before (unless `force`) and events
 * nothing could deliver are skipped and counted.
 */
export async function replayMatching(
  db: Db,
  opts: { filter: ReplayFilter; limit: number; force: boolean; topic: string; tracing: Tracing },
): Promise<BulkReplayResult> {
  // Only events fired before this request: the replays it writes must never match its own filter.
  const before = new Date();
  const triggerExists = new Map<string, boolean>();
  const result: BulkReplayResult = { replayed: 0, skipped: { already_replayed: 0, not_final: 0, not_replayable: 0 } };
  let remaining = opts.limit;
  let after: EventRow | null = null;
  while (remaining > 0) {
    const size = Math.min(REPLAY_BATCH, remaining);
    const batch = await eventsToReplay(db, opts.filter, before, after, size);
    if (batch.length === 0) break;
    remaining -= batch.length;
    after = batch[batch.length - 1]!;
    const unseen = [...new Set(batch.map((e) => e.trigger_id).filter((id): id is string => id !== null && !triggerExists.has(id)))];
    const found = await getTriggersByIds(db, unseen);
    for (const id of unseen) triggerExists.set(id, found.has(id));
    const final = batch.filter(isFinal);
    result.skipped.not_final += batch.length - final.length;
    const candidates = final.filter((e) => replayable(e, e.trigger_id !== null && triggerExists.get(e.trigger_id) === true));
    result.skipped.not_replayable += final.length - candidates.length;
    const now = new Date();
    // Ids are drawn before the transaction, so a retried batch writes the same events (never two copies).
    const replays = candidates.map((e) => replayOf(e, newEventId(), now));
    const traces = replays.map((r, i) => replayTrace(opts.tracing, r, candidates[i]!));
    const written = await ended(
      traces,
      withDbRetry(() =>
        db.transaction(async (trx) => {
          const marked = await markReplayed(
            trx,
            replays.map((r) => ({ event_id: r.replay_of!, replay_id: r.id })),
            now,
            opts.force,
          );
          const rows = replays.filter((r) => marked.has(r.replay_of!));
          await recordEvents(trx, rows, opts.topic, now);
          return rows.length;
        }),
      ),
    );
    result.replayed += written;
    result.skipped.already_replayed += replays.length - written;
    if (batch.length < size) break;
  }
  return result;
}

/**
 * "Retry now": the attempt the worker has scheduled (a retry after a failed attempt, or one put off by an
 * open circuit) is made now instead of at its time — the same attempt, so it is counted once and made
 * once. 409 EVENT_ENDED for an event that has ended (replay it instead), RETRY_NOT_WAITING when no
 * attempt is waiting (not on Kafka yet, an attempt being made right now, or the next one already due).
 */
export async function retryNow(db: Db, id: string, w: RetentionWindow): Promise<{ event_id: string; attempt: number; due_at: Date }> {
  return withDbRetry(() =>
    db.transaction(async (trx) => {
      const now = new Date();
      const e = await liveEvent(trx, id, w);
      if (isFinal(e)) throw new ApiError('EVENT_ENDED', `The event ended (${e.execution_status}); replay it to deliver it again`);
      const dueAt = e.next_attempt_at;
      // The outbox row first, then the event row: the relay's publish locks them in that order too.
      if (!dueAt || !(await releaseWaiting(trx, id, dueAt, now)) || !(await bringAttemptForward(trx, id, dueAt, now))) {
        throw new ApiError(
          'RETRY_NOT_WAITING',
          e.execution_status === 'pending'
            ? 'The event is not on Kafka yet: its first attempt follows as soon as it is'
            : 'No attempt is waiting: one is being made now, or the next is already due',
        );
      }
      return { event_id: id, attempt: e.attempts + 1, due_at: now };
    }),
  );
}

/**
 * "Cancel retries": no more attempts; the event ends `failure` with the reason. An attempt whose request
 * is in flight as the cancel commits is recorded in the event's history, but does not change its end.
 * 409 EVENT_ENDED for an event that has ended already. Returns the event as it is now.
 */
export async function cancelRetries(db: Db, id: string, reason: string | undefined, w: RetentionWindow): Promise<EventRow> {
  const message = `cancelled by an operator${reason ? `: ${reason}` : ''}`;
  return withDbRetry(() =>
    db.transaction(async (trx) => {
      const now = new Date();
      const e = await liveEvent(trx, id, w);
      const ended = () => new ApiError('EVENT_ENDED', `The event has ended already (${e.execution_status})`);
      if (isFinal(e)) throw ended();
      // The waiting follow-up goes too (the worker would skip it anyway: the event is final).
      if (e.next_attempt_at) await deleteWaiting(trx, id, e.next_attempt_at);
      if (!(await cancelDelivery(trx, id, message, now))) throw ended();
      return { ...e, execution_status: 'failure', error_message: message, next_attempt_at: null, updated_at: now };
    }),
  );
}
