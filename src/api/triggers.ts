import { Router, type Request } from 'express';
import type { Config } from '../config';
import type { Db } from '../db/knex';
import { recordEvents } from '../db/fire';
import {
  getTrigger,
  insertTrigger,
  listTriggers,
  updateTrigger,
  deleteTrigger,
  type TriggerFilter,
  type TriggerRow,
  type TriggerStatus,
} from '../db/triggers';
import { cancelPending, insertOccurrences, nextRuns } from '../db/schedules';
import { setTags, tagsOf } from '../db/tags';
import { triggerStats } from '../db/events';
import { boundedRead } from './bounded-read';
import { cursorPage } from './pagination';
import { decodeCursor, encodeCursor, windowOf } from './events';
import { LIMITS, validateTriggerConfig } from '../triggers/validate';
import { firstOccurrence, occurrenceAt } from '../triggers/schedule';
import { newEventId, newTriggerId } from '../triggers/event-id';
import type { TimeConfig, TriggerConfig, TriggerType, WebhookConfig } from '../triggers/types';
import { ApiError, validationError } from './errors';
import type { WebhookValidators } from './webhooks';

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

function checkedConfig(type: TriggerType, input: unknown, now: Date): TriggerConfig {
  const result = validateTriggerConfig(type, input, now);
  if (!result.ok) throw validationError(result.errors);
  return result.config;
}

/** The config fields that decide when a trigger fires. Other edits (endpoint, payload, retry, …) keep its schedule. */
const TIMING_FIELDS = ['run_at', 'delay_seconds', 'timezone', 'cron', 'interval_seconds', 'start_at', 'end_at', 'jitter_seconds'] as const;

function sameTiming(a: TriggerConfig, b: TriggerConfig): boolean {
  const pick = (c: TriggerConfig) => JSON.stringify(TIMING_FIELDS.map((k) => (c as unknown as Record<string, unknown>)[k] ?? null));
  return pick(a) === pick(b);
}

/**
 * The occurrence to schedule when a trigger is created, (re)activated, or its timing is edited.
 * A one-shot's instant is fixed — `run_at`, or `created_at + delay_seconds` ("that many seconds after
 * creation") — so reactivating it never moves it and never repeats one that has passed (it fired, or was
 * missed while inactive). `fresh` (create, or an edit of the timing fields) still schedules an instant up
 * to the validation tolerance in the past, to fire at once; otherwise more than a second late is dropped.
 */
export function occurrenceToSchedule(t: Pick<TriggerRow, 'type' | 'config' | 'created_at'>, now: Date, fresh: boolean): Date | null {
  if (t.type !== 'time_scheduled') return firstOccurrence(t.type, t.config, now);
  const at = firstOccurrence(t.type, t.config, t.created_at);
  const toleranceMs = fresh ? LIMITS.runAtPastToleranceMs : 1000;
  return at && at.getTime() >= now.getTime() - toleranceMs ? at : null;
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

export function triggerRoutes(deps: { db: Db; config: Config; validators: WebhookValidators }): Router {
  const { db, config } = deps;
  const r = Router();

  r.post('/triggers', async (req, res) => {
    const body = req.body as { name: string; type: TriggerType; status?: TriggerStatus; config: unknown; tags?: string[] };
    const now = new Date();
    const cfg = checkedConfig(body.type, body.config, now);
    const row: TriggerRow = {
      id: newTriggerId(now.getTime()),
      name: body.name,
      type: body.type,
      status: body.status ?? 'active',
      config: cfg,
      version: 1,
      created_at: now,
      updated_at: now,
    };
    const first = row.status === 'active' ? occurrenceToSchedule(row, now, true) : null;
    const next = first ? occurrenceAt(row.id, row.type, row.config, first) : null;
    const tags = body.tags ?? [];
    await db.transaction(async (trx) => {
      await insertTrigger(trx, row);
      await setTags(trx, row.id, tags);
      if (next) await insertOccurrences(trx, [{ trigger_id: row.id, ...next }], now);
    });
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
    const t = await getTrigger(db, idParam(req));
    if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${idParam(req)}`);
    const [next, tagMap] = await Promise.all([nextRuns(db, [t.id]), tagsOf(db, [t.id])]);
    res.json(presentTrigger(t, next.get(t.id), config.publicBaseUrl, tagMap.get(t.id) ?? []));
  });

  r.put('/triggers/:id', async (req, res) => {
    const id = idParam(req);
    const body = req.body as {
      name?: string;
      type?: TriggerType;
      status?: TriggerStatus;
      config?: Record<string, unknown>;
      tags?: string[];
    };
    const now = new Date();
    const updated = await db.transaction(async (trx) => {
      // The row lock serialises concurrent edits of one trigger, so schedule rows follow the last edit.
      const t = await getTrigger(trx, id, { forUpdate: true });
      if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${id}`);
      if (body.type !== undefined && body.type !== t.type) {
        throw validationError([{ field: 'type', message: `the type of a trigger cannot change (it is ${t.type})` }]);
      }
      let cfg: TriggerConfig | undefined;
      if (body.config !== undefined) {
        const input: Record<string, unknown> = { ...body.config };
        const stored = t.config as WebhookConfig;
        if (t.type === 'webhook') {
          // `has_secret` is the read-only marker GET shows, so a config read back from GET can be sent again.
          delete input.has_secret;
          // The secret is write-only: omitting it keeps the stored one; null removes it.
          if (!('secret' in input) && stored.secret !== undefined) input.secret = stored.secret;
        }
        if (input.secret === null) delete input.secret;
        cfg = checkedConfig(t.type, input, now);
      }
      const status = body.status ?? t.status;
      const timingChanged = cfg !== undefined && !sameTiming(t.config, cfg);
      if (timingChanged && t.type === 'time_scheduled' && (cfg as TimeConfig).delay_seconds !== undefined) {
        // Like a run_at in the past: the delay counts from creation, so refuse one that has already elapsed.
        const at = firstOccurrence(t.type, cfg!, t.created_at);
        if (at && at.getTime() < now.getTime() - LIMITS.runAtPastToleranceMs) {
          throw validationError([
            {
              field: 'config.delay_seconds',
              message: `counts from the trigger's creation (${t.created_at.toISOString()}), so it has already elapsed; give run_at instead`,
            },
          ]);
        }
      }
      await updateTrigger(trx, id, { name: body.name, status: body.status, config: cfg }, now);
      if (body.tags !== undefined) await setTags(trx, id, body.tags);
      const after: TriggerRow = {
        ...t,
        name: body.name ?? t.name,
        status,
        config: cfg ?? t.config,
        version: t.version + 1,
        updated_at: now,
      };
      if ((timingChanged || status !== t.status) && t.type !== 'webhook') {
        // Edits affect future firings only: pending occurrences go and the next one is computed after now.
        // Edits that leave the timing alone keep the pending row (the relay reads the config when it fires).
        await cancelPending(trx, id, now);
        const next = status === 'active' ? occurrenceToSchedule(after, now, timingChanged) : null;
        if (next) await insertOccurrences(trx, [{ trigger_id: id, ...occurrenceAt(id, t.type, after.config, next) }], now);
      }
      return after;
    });
    deps.validators.forget(id);
    const [next, tagMap] = await Promise.all([nextRuns(db, [id]), tagsOf(db, [id])]);
    res.json(presentTrigger(updated, next.get(id), config.publicBaseUrl, tagMap.get(id) ?? []));
  });

  r.delete('/triggers/:id', async (req, res) => {
    const id = idParam(req);
    // Schedule rows go with the trigger (ON DELETE CASCADE); event logs stay, keeping the id as a value.
    if (!(await deleteTrigger(db, id))) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${id}`);
    deps.validators.forget(id);
    res.status(204).end();
  });

  r.post('/triggers/:id/test', async (req, res) => {
    const t = await getTrigger(db, idParam(req));
    if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${idParam(req)}`);
    const body = (req.body ?? {}) as { payload?: unknown };
    const payload = await testPayload(t.type, t.config, body.payload, deps.validators, t.id, t.version);
    const now = new Date();
    const id = newEventId();
    await db.transaction((trx) =>
      recordEvents(
        trx,
        [
          {
            id,
            trigger_id: t.id,
            trigger_type: t.type,
            source: 'manual-test',
            is_test_run: true,
            payload,
            scheduled_for: null,
            fired_at: now,
          },
        ],
        config.kafkaTopic,
        now,
      ),
    );
    res.status(202).json({ event_id: id, status: 'accepted' });
  });

  r.post('/triggers/test', async (req, res) => {
    const body = req.body as { type: TriggerType; config: unknown; payload?: unknown };
    const now = new Date();
    const cfg = checkedConfig(body.type, body.config, now);
    const payload = await testPayload(body.type, cfg, body.payload, deps.validators, null, 0);
    const id = newEventId();
    // Nothing but the event is stored; it carries its own delivery config for the worker.
    await db.transaction((trx) =>
      recordEvents(
        trx,
        [
          {
            id,
            trigger_id: null,
            trigger_type: body.type,
            source: 'manual-test',
            is_test_run: true,
            payload,
            delivery_config: cfg,
            scheduled_for: null,
            fired_at: now,
          },
        ],
        config.kafkaTopic,
        now,
      ),
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
    const s = await boundedRead(db, res, (q) => triggerStats(q, t.id, since, w, config.readTimeoutMs));
    res.json({ trigger_id: t.id, window_hours: windowHours, ...s, last_fired_at: s.last_fired_at ? s.last_fired_at.toISOString() : null });
  });

  return r;
}

/** A test run's payload: the one given, else the configured one; webhook payloads must pass the schema. */
async function testPayload(
  type: TriggerType,
  cfg: TriggerConfig,
  given: unknown,
  validators: WebhookValidators,
  triggerId: string | null,
  version: number,
): Promise<unknown> {
  if (type !== 'webhook') return given !== undefined ? given : ((cfg as { payload?: unknown }).payload ?? null);
  const payload = given !== undefined ? given : {};
  const errors = validators.validate(triggerId, version, (cfg as WebhookConfig).schema, payload);
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
