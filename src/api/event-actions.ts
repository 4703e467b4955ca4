/**
 * What an operator does with events, beyond reading them (api/events.ts): the delivery attempts of one,
 * replay (one or in bulk), retry now and cancel retries. The rules are in operator/actions.ts.
 */
import { Router } from 'express';
import type { Config } from '../config';
import { listAttempts } from '../db/attempts';
import { getEvent, type ExecutionStatus, type ReplayFilter } from '../db/events';
import { withIdempotencyKey } from '../db/idempotency';
import type { Db } from '../db/knex';
import { Lifecycle } from '../events';
import type { Metrics } from '../metrics';
import { cancelRetries, replayMatching, replayOne, retryNow } from '../operator/actions';
import type { Tracing } from '../tracing/tracing';
import { ApiError, validationError } from './errors';
import { presentEvents, windowOf } from './events';

type Attempt = Awaited<ReturnType<typeof listAttempts>>[number];

function presentAttempt(a: Attempt) {
  return {
    attempt: a.attempt,
    started_at: a.started_at.toISOString(),
    duration_ms: a.duration_ms,
    status_code: a.status_code,
    error: a.error,
    response_body: a.response_body === null ? null : a.response_body.toString('utf8'),
    request_headers: a.request_headers ?? null,
    response_headers: a.response_headers ?? null,
  };
}

interface BulkReplayBody {
  trigger_id?: string;
  execution_status?: ExecutionStatus;
  from?: string;
  to?: string;
  limit?: number;
  force?: boolean;
}

/** What a bulk replay selects: at least one filter, and never events past the retention window. */
function replayFilterOf(b: BulkReplayBody, config: Config): ReplayFilter {
  if (b.trigger_id === undefined && b.execution_status === undefined && b.from === undefined && b.to === undefined) {
    throw validationError([{ field: 'body', message: 'give at least one filter: trigger_id, execution_status, from or to' }]);
  }
  return {
    keepFrom: new Date(Date.now() - config.retentionDeleteAfterSeconds * 1000),
    trigger_id: b.trigger_id,
    execution_status: b.execution_status,
    from: b.from ? new Date(b.from) : undefined,
    to: b.to ? new Date(b.to) : undefined,
  };
}

/** A list of routes: each handler parses, calls one function (operator/actions.ts) and formats. */
export function eventActionRoutes(deps: { db: Db; config: Config; metrics: Metrics; tracing: Tracing }): Router {
  const { db, config, tracing } = deps;
  // The API's own lifecycle events (the relay's and worker's are the platform's); metrics subscribe to them.
  const events = new Lifecycle();
  deps.metrics.subscribe(events);
  const r = Router();

  r.get('/events/:id/attempts', async (req, res) => {
    const id = String(req.params.id);
    if (!(await getEvent(db, id))) throw new ApiError('EVENT_NOT_FOUND', `No event with id ${id}`);
    res.json({ attempts: (await listAttempts(db, id)).map(presentAttempt) });
  });

  r.post('/events/replay', async (req, res) => {
    const b = req.body as BulkReplayBody;
    const filter = replayFilterOf(b, config);
    const result = await replayMatching(db, { filter, limit: b.limit ?? 1000, force: b.force === true, topic: config.kafkaTopic, tracing });
    if (result.replayed > 0) events.emitEvent('api:replayed', { count: result.replayed });
    res.status(202).json(result);
  });

  r.post('/events/:id/replay', async (req, res) => {
    const id = String(req.params.id);
    const q = req.query as { force?: boolean | string };
    const force = q.force === true || q.force === 'true';
    const { answer, fresh } = await withIdempotencyKey(db, `replay:${id}`, req.get('idempotency-key'), async (trx) => {
      const now = new Date();
      const body = await replayOne(trx, { id, force, window: windowOf(config, now), topic: config.kafkaTopic, now, tracing });
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

  return r;
}
