/**
 * The operator's toolkit (issue 11): delivery history, replay (one event or in bulk), upcoming runs and the
 * schedule preview, and bulk pause/resume. Tags themselves are part of the trigger routes (triggers.ts).
 */
import { Router, type Request, type Response } from 'express';
import type { Knex } from 'knex';
import type { Config } from '../config';
import { listAttempts } from '../db/attempts';
import {
  eventsToReplay,
  getEvent,
  retentionOf,
  type EventInsert,
  type EventRow,
  type ExecutionStatus,
  type ReplayFilter,
} from '../db/events';
import { recordEvents } from '../db/fire';
import { claimIdempotencyKey, storedResponse, type StoredAnswer } from '../db/idempotency';
import type { Db } from '../db/knex';
import { cancelPendingMany, insertOccurrences, pendingOccurrence } from '../db/schedules';
import { getTrigger, getTriggersByIds, lockForStatusChange, setStatus, type BulkFilter, type TriggerStatus } from '../db/triggers';
import { Lifecycle } from '../events';
import type { Metrics } from '../metrics';
import { newEventId } from '../triggers/event-id';
import { formatInZone, occurrenceAt, runsFrom, type Occurrence } from '../triggers/schedule';
import type { TriggerType } from '../triggers/types';
import { validateTriggerConfig } from '../triggers/validate';
import { withDbRetry } from '../util';
import { ApiError, validationError } from './errors';
import { windowOf } from './events';
import { occurrenceToSchedule } from './triggers';

/** Events written per transaction by a bulk replay. */
export const REPLAY_BATCH = 500;
const IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600;

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

function presentOccurrence(o: Occurrence, timeZone: string) {
  return { at: o.fire_at.toISOString(), local: formatInZone(o.fire_at, timeZone), scheduled_for: o.scheduled_for.toISOString() };
}

function notScheduled(type: TriggerType): ApiError {
  return validationError([{ field: 'type', message: `a ${type} trigger has no schedule: it fires when its webhook URL is called` }]);
}

export function operatorRoutes(deps: { db: Db; config: Config; metrics: Metrics }): Router {
  const { db, config } = deps;
  // The API's own lifecycle events (the relay's and worker's are the platform's); metrics subscribe to them.
  const events = new Lifecycle();
  deps.metrics.subscribe(events);
  const r = Router();

  /**
   * Runs `write` in a transaction guarded by the Idempotency-Key, if any (as the webhook routes do): the
   * first request stores its answer in the same commit as its writes; a repeat within 24 h gets that
   * answer back and writes nothing. `fresh` says whether this request did the writing.
   */
  async function idempotent(
    req: Request,
    scope: string,
    write: (trx: Knex.Transaction) => Promise<StoredAnswer>,
  ): Promise<{ answer: StoredAnswer; fresh: boolean }> {
    const key = req.get('idempotency-key');
    if (!key) return { answer: await db.transaction(write), fresh: true };
    const stored = await storedResponse(db, scope, key, IDEMPOTENCY_WINDOW_SECONDS);
    if (stored) return { answer: stored, fresh: false };
    try {
      const answer = await db.transaction(async (trx) => {
        const a = await write(trx);
        await claimIdempotencyKey(trx, scope, key, a, new Date(), IDEMPOTENCY_WINDOW_SECONDS);
        return a;
      });
      return { answer, fresh: true };
    } catch (e) {
      // A concurrent request with the same key committed first: answer as it did.
      const again = await storedResponse(db, scope, key, IDEMPOTENCY_WINDOW_SECONDS);
      if (again) return { answer: again, fresh: false };
      throw e;
    }
  }

  r.get('/events/:id/attempts', async (req, res) => {
    const id = String(req.params.id);
    if (!(await getEvent(db, id))) throw new ApiError('EVENT_NOT_FOUND', `No event with id ${id}`);
    const attempts = await listAttempts(db, id);
    res.json({
      attempts: attempts.map((a) => ({
        attempt: a.attempt,
        started_at: a.started_at.toISOString(),
        duration_ms: a.duration_ms,
        status_code: a.status_code,
        error: a.error,
        response_body: a.response_body === null ? null : a.response_body.toString('utf8'),
      })),
    });
  });

  r.post('/events/replay', async (req, res) => {
    const b = req.body as { trigger_id?: string; execution_status?: ExecutionStatus; from?: string; to?: string; limit?: number };
    if (b.trigger_id === undefined && b.execution_status === undefined && b.from === undefined && b.to === undefined) {
      throw validationError([{ field: 'body', message: 'give at least one filter: trigger_id, execution_status, from or to' }]);
    }
    const filter: ReplayFilter = {
      keepFrom: new Date(Date.now() - config.retentionDeleteAfterSeconds * 1000),
      trigger_id: b.trigger_id,
      execution_status: b.execution_status,
      from: b.from ? new Date(b.from) : undefined,
      to: b.to ? new Date(b.to) : undefined,
    };
    // Only events fired before this request: the replays it writes must never match its own filter.
    const before = new Date();
    const triggerExists = new Map<string, boolean>();
    let remaining = b.limit ?? 1000;
    let after: EventRow | null = null;
    let replayed = 0;
    while (remaining > 0) {
      const size = Math.min(REPLAY_BATCH, remaining);
      const batch = await eventsToReplay(db, filter, before, after, size);
      if (batch.length === 0) break;
      remaining -= batch.length;
      after = batch[batch.length - 1]!;
      const unseen = [...new Set(batch.map((e) => e.trigger_id).filter((id): id is string => id !== null && !triggerExists.has(id)))];
      const found = await getTriggersByIds(db, unseen);
      for (const id of unseen) triggerExists.set(id, found.has(id));
      const now = new Date();
      // Ids are drawn before the transaction, so a retried batch writes the same events (never two copies).
      const rows = batch
        .filter((e) => replayable(e, e.trigger_id !== null && triggerExists.get(e.trigger_id) === true))
        .map((e) => replayOf(e, newEventId(), now));
      // Each batch is its own transaction: a bulk replay of 10,000 events never holds one long transaction.
      await withDbRetry(() => db.transaction((trx) => recordEvents(trx, rows, config.kafkaTopic, now)));
      replayed += rows.length;
      if (batch.length < size) break;
    }
    if (replayed > 0) events.emitEvent('api:replayed', { count: replayed });
    res.status(202).json({ replayed });
  });

  r.post('/events/:id/replay', async (req, res) => {
    const id = String(req.params.id);
    const { answer, fresh } = await idempotent(req, `replay:${id}`, async (trx) => {
      const e = await getEvent(trx, id);
      if (!e || !retentionOf(e.fired_at, windowOf(config, new Date()))) throw new ApiError('EVENT_NOT_FOUND', `No event with id ${id}`);
      const exists = e.trigger_id !== null && (await getTrigger(trx, e.trigger_id)) !== null;
      if (!replayable(e, exists)) {
        const detail = `The trigger of this event (${e.trigger_id ?? 'none'}) was deleted, and the event carries no delivery config of its own`;
        throw new ApiError('EVENT_NOT_REPLAYABLE', detail);
      }
      const now = new Date();
      const replay = replayOf(e, newEventId(), now);
      await recordEvents(trx, [replay], config.kafkaTopic, now);
      return { status: 202, body: { event_id: replay.id, replay_of: e.id } };
    });
    if (fresh) events.emitEvent('api:replayed', { count: 1 });
    res.status(answer.status).json(answer.body);
  });

  r.get('/triggers/:id/upcoming', async (req, res) => {
    const id = String(req.params.id);
    const t = await getTrigger(db, id);
    if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${id}`);
    if (t.type === 'webhook') throw notScheduled(t.type);
    const count = Number((req.query as { count?: number }).count ?? 10);
    // An active trigger continues from its pending occurrence, exactly as the relay will; an inactive one
    // shows what resuming it now would schedule.
    let first: Occurrence | null;
    if (t.status === 'active') {
      first = await pendingOccurrence(db, t.id);
    } else {
      const at = occurrenceToSchedule(t, new Date(), false);
      first = at ? occurrenceAt(t.id, t.type, t.config, at) : null;
    }
    const timeZone = (t.config as { timezone?: string }).timezone ?? 'UTC';
    res.json({ status: t.status, occurrences: runsFrom(t.id, t.type, t.config, first, count).map((o) => presentOccurrence(o, timeZone)) });
  });

  r.post('/schedules/preview', async (req, res) => {
    const b = req.body as { type: TriggerType; config: unknown; count?: number; trigger_id?: string };
    if (b.type === 'webhook') throw notScheduled(b.type);
    const now = new Date();
    const result = validateTriggerConfig(b.type, b.config, now);
    if (!result.ok) throw validationError(result.errors);
    // What creating it now would schedule first, then the same pure functions the relay uses.
    const at = occurrenceToSchedule({ type: b.type, config: result.config, created_at: now }, now, true);
    const triggerId = b.trigger_id ?? null;
    const first = at ? occurrenceAt(triggerId, b.type, result.config, at) : null;
    const timeZone = (result.config as { timezone?: string }).timezone ?? 'UTC';
    res.json({
      status: 'preview',
      occurrences: runsFrom(triggerId, b.type, result.config, first, b.count ?? 10).map((o) => presentOccurrence(o, timeZone)),
    });
  });

  /** Bulk pause/resume: the same semantics as PUT `status` on each matching trigger, in one transaction. */
  const setStatusOf = (status: TriggerStatus) =>
    async function bulkStatus(req: Request, res: Response) {
      const f = { ...(req.body as BulkFilter) };
      // An empty id list is no id filter (some generated clients always send the field).
      if (f.ids !== undefined && f.ids.length === 0) delete f.ids;
      if (f.tag === undefined && f.type === undefined && f.ids === undefined) {
        throw validationError([{ field: 'body', message: 'give at least one of tag, type or ids' }]);
      }
      const updated = await withDbRetry(() =>
        db.transaction(async (trx) => {
          const now = new Date();
          // Triggers already in the target status are left alone (and not counted), as PUT leaves their schedules.
          const rows = await lockForStatusChange(trx, f, status);
          await setStatus(
            trx,
            rows.map((t) => t.id),
            status,
            now,
          );
          const scheduled = rows.filter((t) => t.type !== 'webhook');
          await cancelPendingMany(
            trx,
            scheduled.map((t) => t.id),
            now,
          );
          if (status === 'active') {
            const next = scheduled.flatMap((t) => {
              const at = occurrenceToSchedule(t, now, false);
              return at ? [{ trigger_id: t.id, ...occurrenceAt(t.id, t.type, t.config, at) }] : [];
            });
            for (let i = 0; i < next.length; i += 500) await insertOccurrences(trx, next.slice(i, i + 500), now);
          }
          return rows.length;
        }),
      );
      res.json({ updated });
    };
  r.post('/triggers/pause', setStatusOf('inactive'));
  r.post('/triggers/resume', setStatusOf('active'));

  return r;
}
