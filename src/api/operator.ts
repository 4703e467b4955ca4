/**
 * The operator's toolkit (issue 11): delivery history, replay (one event or in bulk), upcoming runs and the
 * schedule preview, and bulk pause/resume. Tags themselves are part of the trigger routes (triggers.ts).
 */
import { Router, type Request, type Response } from 'express';
import type { Knex } from 'knex';
import type { Config } from '../config';
import { listAttempts } from '../db/attempts';
import { getEvent, type ExecutionStatus, type ReplayFilter } from '../db/events';
import { claimIdempotencyKey, storedResponse, type StoredAnswer } from '../db/idempotency';
import type { Db } from '../db/knex';
import { cancelPendingMany, insertOccurrences, pendingOccurrence } from '../db/schedules';
import { getTrigger, lockForStatusChange, setStatus, type BulkFilter, type TriggerStatus } from '../db/triggers';
import { Lifecycle } from '../events';
import type { Metrics } from '../metrics';
import { formatInZone, occurrenceAt, runsFrom, type Occurrence } from '../triggers/schedule';
import type { TriggerType } from '../triggers/types';
import { validateTriggerConfig } from '../triggers/validate';
import { withDbRetry } from '../util';
import { cancelRetries, replayMatching, replayOne, retryNow } from '../operator/actions';
import { REJECTIONS_KEPT_PER_TRIGGER, webhookCalls } from '../db/webhook-requests';
import { ApiError, validationError } from './errors';
import { presentEvents, windowOf } from './events';
import { boundedRead } from './bounded-read';
import { occurrenceToSchedule } from './triggers';

const IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600;

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
        request_headers: a.request_headers ?? null,
        response_headers: a.response_headers ?? null,
      })),
    });
  });

  r.post('/events/replay', async (req, res) => {
    const b = req.body as {
      trigger_id?: string;
      execution_status?: ExecutionStatus;
      from?: string;
      to?: string;
      limit?: number;
      force?: boolean;
    };
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
    const result = await replayMatching(db, { filter, limit: b.limit ?? 1000, force: b.force === true, topic: config.kafkaTopic });
    if (result.replayed > 0) events.emitEvent('api:replayed', { count: result.replayed });
    res.status(202).json(result);
  });

  r.post('/events/:id/replay', async (req, res) => {
    const id = String(req.params.id);
    const q = req.query as { force?: boolean | string };
    const force = q.force === true || q.force === 'true';
    const { answer, fresh } = await idempotent(req, `replay:${id}`, async (trx) => {
      const now = new Date();
      const body = await replayOne(trx, { id, force, window: windowOf(config, now), topic: config.kafkaTopic, now });
      return { status: 202, body };
    });
    if (fresh) events.emitEvent('api:replayed', { count: 1 });
    res.status(answer.status).json(answer.body);
  });

  r.post('/events/:id/retry', async (req, res) => {
    const retry = await retryNow(db, String(req.params.id), windowOf(config, new Date()));
    events.emitEvent('api:delivery_control', { action: 'retry' });
    res.status(202).json({ event_id: retry.event_id, attempt: retry.attempt, due_at: retry.due_at.toISOString() });
  });

  r.post('/events/:id/cancel', async (req, res) => {
    const reason = (req.body as { reason?: string } | undefined)?.reason;
    const w = windowOf(config, new Date());
    const e = await cancelRetries(db, String(req.params.id), reason, w);
    events.emitEvent('api:delivery_control', { action: 'cancel' });
    res.json((await presentEvents(db, [e], w))[0]);
  });

  r.get('/triggers/:id/requests', async (req, res) => {
    const id = String(req.params.id);
    const limit = Number((req.query as { limit?: number }).limit ?? 50);
    // The validator coerces '-1e400' to -Infinity and lets it by; the statement must never see it.
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) {
      throw validationError([{ field: 'query.limit', message: 'must be an integer from 1 to 200' }]);
    }
    const t = await getTrigger(db, id);
    if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${id}`);
    if (t.type !== 'webhook') {
      throw validationError([{ field: 'type', message: `a ${t.type} trigger has no webhook URL: it receives no calls` }]);
    }
    const keepFrom = new Date(Date.now() - config.retentionDeleteAfterSeconds * 1000);
    const calls = await boundedRead(db, res, (q) => webhookCalls(q, id, keepFrom, limit, config.readTimeoutMs));
    res.json({
      trigger_id: id,
      max_rejections_kept: REJECTIONS_KEPT_PER_TRIGGER,
      requests: calls.map((c) => ({ ...c, received_at: c.received_at.toISOString() })),
    });
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
