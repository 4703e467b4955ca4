/**
 * The /triggers routes: create, list, read, edit, delete, test runs, stats, the inbound call log, upcoming
 * runs and bulk pause/resume. The lifecycle rules are in triggers/lifecycle.ts.
 */
import { Router, type Request, type Response } from 'express';
import { withDbRetry } from '../util';
import type { Config } from '../config';
import { triggerStats } from '../db/events';
import type { Db } from '../db/knex';
import { nextRuns, pendingOccurrence } from '../db/schedules';
import { tagsOf } from '../db/tags';
import {
  deleteTrigger,
  getTrigger,
  listTriggers,
  type BulkFilter,
  type TriggerFilter,
  type TriggerRow,
  type TriggerStatus,
} from '../db/triggers';
import { REJECTIONS_KEPT_PER_TRIGGER, webhookCalls } from '../db/webhook-requests';
import { recordTestRun } from '../operator/actions';
import type { Tracing } from '../tracing/tracing';
import { payloadTooLarge } from '../kafka/message';
import {
  checkedConfig,
  createTrigger,
  editTrigger,
  firstRun,
  setStatusOfMatching,
  type NewTrigger,
  type TriggerEdit,
} from '../triggers/lifecycle';
import { formatInZone, runsFrom, type Occurrence } from '../triggers/schedule';
import type { TriggerConfig, TriggerType, WebhookConfig } from '../triggers/types';
import { boundedRead } from './bounded-read';
import { ApiError, validationError } from './errors';
import { decodeCursor, encodeCursor, windowOf } from './events';
import { cursorPage } from './pagination';
import type { WebhookCaches } from './webhooks';

export interface TriggerView {
  id: string;
  name: string;
  type: TriggerType;
  status: TriggerStatus;
  config: Record<string, unknown>;
  next_scheduled_run: string | null;
  webhook_url: string | null;
  tags: string[];
  created_at: string;
  updated_at: string;
}

/** The API view of a trigger: a webhook `secret` is write-only (only `has_secret` is shown). */
export function presentTrigger(t: TriggerRow, next: Date | null | undefined, publicBaseUrl: string, tags: string[]): TriggerView {
  const config: Record<string, unknown> = { ...(t.config as unknown as Record<string, unknown>) };
  if (t.type === 'webhook') {
    config.has_secret = typeof config.secret === 'string';
    delete config.secret;
  }
  return {
    id: t.id,
    name: t.name,
    type: t.type,
    status: t.status,
    config,
    next_scheduled_run: next ? next.toISOString() : null,
    webhook_url: t.type === 'webhook' ? `${publicBaseUrl}/api/v1/webhook/${t.id}` : null,
    tags: [...tags].sort(),
    created_at: t.created_at.toISOString(),
    updated_at: t.updated_at.toISOString(),
  };
}

export function presentOccurrence(o: Occurrence, timeZone: string) {
  return { at: o.fire_at.toISOString(), local: formatInZone(o.fire_at, timeZone), scheduled_for: o.scheduled_for.toISOString() };
}

export function notScheduled(type: TriggerType): ApiError {
  return validationError([{ field: 'type', message: `a ${type} trigger has no schedule: it fires when its webhook URL is called` }]);
}

/** A trigger list cursor: the (created_at, id) of the previous page's last trigger, opaque to clients. */
function encodeTriggerCursor(t: Pick<TriggerRow, 'created_at' | 'id'>): string {
  return encodeCursor({ fired_at: t.created_at, id: t.id });
}

function decodeTriggerCursor(s: string): { created_at: Date; id: string } | null {
  const c = decodeCursor(s);
  return c ? { created_at: c.fired_at, id: c.id } : null;
}

function idParam(req: Request): string {
  return String(req.params.id);
}

/** Long only as a list of routes: each handler parses, calls one function (triggers/lifecycle.ts, db/) and formats. */
// eslint-disable-next-line max-lines-per-function -- a list of thin routes, as said above
export function triggerRoutes(deps: { db: Db; config: Config; caches: WebhookCaches; tracing: Tracing }): Router {
  const { db, config } = deps;
  const r = Router();

  /** Answers with one trigger as stored now, with its next run and tags. */
  async function presentOne(id: string, res: Response): Promise<void> {
    const t = await getTrigger(db, id);
    if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${id}`);
    const [next, tagMap] = await Promise.all([nextRuns(db, [id]), tagsOf(db, [id])]);
    res.json(presentTrigger(t, next.get(id), config.publicBaseUrl, tagMap.get(id) ?? []));
  }

  r.post('/triggers', async (req, res) => {
    const { row, tags, next } = await createTrigger(db, req.body as NewTrigger, new Date());
    res
      .status(201)
      .location(`/api/v1/triggers/${row.id}`)
      .json(presentTrigger(row, next?.fire_at, config.publicBaseUrl, tags));
  });

  r.get('/triggers', async (req, res) => {
    const q = req.query as {
      type?: TriggerType;
      status?: TriggerStatus;
      page?: number;
      limit?: number;
      tag?: string | string[];
      q?: string;
      cursor?: string;
    };
    const limit = Number(q.limit ?? 20);
    const tags = q.tag === undefined ? undefined : [...new Set(Array.isArray(q.tag) ? q.tag : [q.tag])];
    const filter: TriggerFilter = { type: q.type, status: q.status, tags, nameContains: q.q };
    const present = async (rows: TriggerRow[]) => {
      const ids = rows.map((t) => t.id);
      const [next, tagMap] = await Promise.all([nextRuns(db, ids), tagsOf(db, ids)]);
      return rows.map((t) => presentTrigger(t, next.get(t.id), config.publicBaseUrl, tagMap.get(t.id) ?? []));
    };
    if (q.cursor !== undefined) {
      // Keyset paging, as on /events: the page after the cursor's trigger, no count.
      const after = decodeTriggerCursor(q.cursor);
      if (!after) throw validationError([{ field: 'query.cursor', message: 'not a cursor returned by this API' }]);
      const { rows } = await listTriggers(db, { ...filter, after }, limit + 1, 0, false);
      const keyset = cursorPage(rows, limit, encodeTriggerCursor);
      res.json({ triggers: await present(keyset.rows), pagination: keyset.pagination });
      return;
    }
    const page = Number(q.page ?? 1);
    const { rows, total } = await listTriggers(db, filter, limit, (page - 1) * limit);
    const totalRecords = total ?? 0;
    const last = rows[rows.length - 1];
    res.json({
      triggers: await present(rows),
      pagination: {
        current_page: page,
        page_size: limit,
        total_pages: Math.ceil(totalRecords / limit),
        total_records: totalRecords,
        total_is_exact: true,
        next_cursor: last && page * limit < totalRecords ? encodeTriggerCursor(last) : null,
      },
    });
  });

  r.get('/triggers/:id', async (req, res) => {
    await presentOne(idParam(req), res);
  });

  r.put('/triggers/:id', async (req, res) => {
    const id = idParam(req);
    const updated = await editTrigger(db, id, req.body as TriggerEdit, new Date());
    deps.caches.forget(id);
    const [next, tagMap] = await Promise.all([nextRuns(db, [id]), tagsOf(db, [id])]);
    res.json(presentTrigger(updated, next.get(id), config.publicBaseUrl, tagMap.get(id) ?? []));
  });

  r.delete('/triggers/:id', async (req, res) => {
    const id = idParam(req);
    // Schedule rows go with the trigger (ON DELETE CASCADE); event logs stay, keeping the id as a value. The
    // cascade locks the trigger's schedule and tag rows, which a concurrent bulk pause or edit may hold in
    // the other order: a deadlock is run again, as every other trigger write is (lifecycle.ts).
    if (!(await withDbRetry(() => deleteTrigger(db, id)))) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${id}`);
    deps.caches.forget(id);
    res.status(204).end();
  });

  r.post('/triggers/:id/test', async (req, res) => {
    const t = await getTrigger(db, idParam(req));
    if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${idParam(req)}`);
    const body = (req.body ?? {}) as { payload?: unknown };
    const payload = await testPayload(t.type, t.config, body.payload, deps.caches, t.id, t.version);
    const run = { trigger_id: t.id, trigger_type: t.type, payload };
    const id = await recordTestRun(db, config.kafkaTopic, run, new Date(), deps.tracing);
    res.status(202).json({ event_id: id, status: 'accepted' });
  });

  r.post('/triggers/test', async (req, res) => {
    const body = req.body as { type: TriggerType; config: unknown; payload?: unknown };
    const now = new Date();
    const cfg = checkedConfig(body.type, body.config, now);
    const payload = await testPayload(body.type, cfg, body.payload, deps.caches, null, 0);
    // Nothing but the event is stored; it carries its own delivery config for the worker.
    const id = await recordTestRun(
      db,
      config.kafkaTopic,
      { trigger_id: null, trigger_type: body.type, payload, delivery_config: cfg },
      now,
      deps.tracing,
    );
    res.status(202).json({ event_id: id, status: 'accepted' });
  });

  r.get('/triggers/:id/stats', async (req, res) => {
    const t = await getTrigger(db, idParam(req));
    if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${idParam(req)}`);
    const windowHours = 48;
    const now = new Date();
    const w = windowOf(config, now);
    // Events past the retention window are gone even before the sweep deletes their rows.
    const since = new Date(Math.max(now.getTime() - windowHours * 3600_000, w.keepFrom.getTime()));
    const s = await boundedRead(db, res, (q) => triggerStats(q, t, since, w, config.readTimeoutMs));
    res.json({
      trigger_id: t.id,
      window_hours: windowHours,
      ...s,
      window_from: s.window_from.toISOString(),
      last_fired_at: s.last_fired_at ? s.last_fired_at.toISOString() : null,
    });
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
    const first = t.status === 'active' ? await pendingOccurrence(db, t.id) : firstRun(t, new Date(), false);
    const timeZone = (t.config as { timezone?: string }).timezone ?? 'UTC';
    res.json({ status: t.status, occurrences: runsFrom(t.id, t.type, t.config, first, count).map((o) => presentOccurrence(o, timeZone)) });
  });

  /** Bulk pause/resume: the same semantics as PUT `status` on each matching trigger (setStatusOfMatching). */
  const setStatusOf = (status: TriggerStatus) =>
    async function bulkStatus(req: Request, res: Response) {
      const f = { ...(req.body as BulkFilter) };
      // An empty id list is no id filter (some generated clients always send the field).
      if (f.ids !== undefined && f.ids.length === 0) delete f.ids;
      if (f.tag === undefined && f.type === undefined && f.ids === undefined) {
        throw validationError([{ field: 'body', message: 'give at least one of tag, type or ids' }]);
      }
      res.json({ updated: await setStatusOfMatching(db, f, status) });
    };
  r.post('/triggers/pause', setStatusOf('inactive'));
  r.post('/triggers/resume', setStatusOf('active'));

  return r;
}

/** A test run's payload: the one given, else the configured one; webhook payloads must pass the schema. */
async function testPayload(
  type: TriggerType,
  cfg: TriggerConfig,
  given: unknown,
  caches: WebhookCaches,
  triggerId: string | null,
  version: number,
): Promise<unknown> {
  const tooLarge = given === undefined ? null : payloadTooLarge(given);
  if (tooLarge !== null) throw validationError([{ field: 'payload', message: tooLarge }]);
  if (type !== 'webhook') return given !== undefined ? given : ((cfg as { payload?: unknown }).payload ?? null);
  const payload = given !== undefined ? given : {};
  const errors = caches.validate(triggerId, version, (cfg as WebhookConfig).schema, payload);
  if (errors.length > 0) {
    throw new ApiError(
      'SCHEMA_VALIDATION_FAILED',
      'The payload does not match the trigger schema',
      // JSON pointers into the request body ({ payload }), as the webhook route reports them.
      errors.map((e) => ({ field: `/payload${e.pointer === '/' ? '' : e.pointer}`, message: e.message })),
    );
  }
  return payload;
}
