import { Router } from 'express';
import type { Config } from '../config';
import {
  COUNT_CAP,
  getEvent,
  listEvents,
  retentionOf,
  retentionWindow,
  type Cursor,
  type EventFilter,
  type EventRow,
  type RetentionWindow,
} from '../db/events';
import { replayMarks, type ReplayMark } from '../db/replays';
import { summaryOf, triggerIdsNamed, triggerSummaries, type TriggerSummary } from '../db/triggers';
import type { Db } from '../db/knex';
import { traceIdOf } from '../tracing/traceparent';
import { boundedRead } from './bounded-read';
import { cursorPage } from './pagination';
import { ApiError, validationError } from './errors';

/** The retention window as of `now`, from the configured ages. */
export function windowOf(config: Pick<Config, 'retentionActiveSeconds' | 'retentionDeleteAfterSeconds'>, now: Date): RetentionWindow {
  return retentionWindow(now, config.retentionActiveSeconds, config.retentionDeleteAfterSeconds);
}

/**
 * An event as the API shows it; `mark`: its replay mark, if it has been replayed; `trigger`: its trigger's
 * summary (null when the trigger has been deleted, or for an unsaved test run, which carries its own config).
 */
export function presentEvent(
  e: EventRow,
  w: RetentionWindow,
  mark: ReplayMark | null,
  trigger: TriggerSummary | null,
): Record<string, unknown> {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  const own = e.trigger_id === null ? summaryOf('', e.delivery_config as Record<string, unknown> | null) : null;
  return {
    id: e.id,
    trigger_id: e.trigger_id,
    trigger_name: trigger ? trigger.name : null,
    trigger_timezone: (trigger ?? own)?.timezone ?? null,
    max_attempts: (trigger ?? own)?.max_attempts ?? null,
    trigger_type: e.trigger_type,
    source: e.source,
    is_test_run: e.is_test_run,
    payload: e.payload ?? null,
    scheduled_for: iso(e.scheduled_for),
    fired_at: e.fired_at.toISOString(),
    published_at: iso(e.published_at),
    execution_status: e.execution_status,
    attempts: e.attempts,
    response_status: e.response_status,
    latency_ms: e.latency_ms,
    error_message: e.error_message,
    retention_status: retentionOf(e.fired_at, w) ?? 'archived',
    replay_of: e.replay_of ?? null,
    created_at: e.created_at.toISOString(),
    updated_at: e.updated_at.toISOString(),
    next_attempt_at: iso(e.next_attempt_at),
    trace_id: traceIdOf(e.trace_parent),
    replayed_as: mark ? mark.replay_id : null,
    replay_count: mark ? mark.replays : 0,
  };
}

/**
 * Events as the API shows them, with what they need from other tables: their replay marks and their
 * triggers' summaries, one primary-key read each for the whole page (not one per event).
 */
export async function presentEvents(db: Db, rows: EventRow[], w: RetentionWindow): Promise<Array<Record<string, unknown>>> {
  const marks = await replayMarks(
    db,
    rows.map((e) => e.id),
  );
  const triggers = await triggerSummaries(
    db,
    rows.flatMap((e) => (e.trigger_id ? [e.trigger_id] : [])),
  );
  return rows.map((e) => presentEvent(e, w, marks.get(e.id) ?? null, (e.trigger_id && triggers.get(e.trigger_id)) || null));
}

/**
 * The `trigger_name` filter as a trigger id: the one trigger with that name. No such trigger: null (the
 * list is empty). Names are not unique: several triggers with the name is a 400 that names their ids.
 */
export async function triggerIdForName(db: Db, name: string): Promise<string | null> {
  const ids = await triggerIdsNamed(db, name, 6);
  if (ids.length <= 1) return ids[0] ?? null;
  throw validationError([
    {
      field: 'query.trigger_name',
      message: `${ids.length > 5 ? 'more than 5' : ids.length} triggers are named ${JSON.stringify(name)} (${ids.slice(0, 5).join(', ')}): filter by trigger_id instead`,
    },
  ]);
}

/** Cursor = base64url of "<fired_at ms>.<id>": opaque to clients, cheap to check. */
export function encodeCursor(c: Cursor): string {
  return Buffer.from(`${c.fired_at.getTime()}.${c.id}`).toString('base64url');
}

export function decodeCursor(s: string): Cursor | null {
  const m = /^(\d{1,15})\.([0-9a-f-]{36})$/.exec(Buffer.from(s, 'base64url').toString('utf8'));
  return m ? { fired_at: new Date(Number(m[1])), id: m[2] } : null;
}

/** The list's filter from its query (validated against openapi.yaml before it gets here). */
function eventFilterOf(q: Record<string, unknown>, window: ReturnType<typeof windowOf>): EventFilter {
  return {
    retention: (q.retention_status as 'active' | 'archived' | undefined) ?? 'active',
    window,
    trigger_id: q.trigger_id as string | undefined,
    source: q.source as EventFilter['source'],
    execution_status: q.execution_status as EventFilter['execution_status'],
    is_test_run: q.is_test_run === undefined ? undefined : q.is_test_run === true || q.is_test_run === 'true',
    from: q.from ? new Date(q.from as string) : undefined,
    to: q.to ? new Date(q.to as string) : undefined,
  };
}

/** `trigger_name`: narrows the filter to that trigger; it may not contradict a `trigger_id` given too. */
async function narrowToTriggerName(db: Db, filter: EventFilter, name: string): Promise<void> {
  const id = await triggerIdForName(db, name);
  if (filter.trigger_id !== undefined && filter.trigger_id !== id) {
    throw validationError([{ field: 'query.trigger_name', message: 'names a different trigger than trigger_id: give one of them' }]);
  }
  // No trigger has the name: an id no event has, so the list is empty and paged as usual.
  filter.trigger_id = id ?? '00000000-0000-0000-0000-000000000000';
}

export function eventRoutes(deps: { db: Db; config: Config }): Router {
  const { db, config } = deps;
  const r = Router();
  r.get('/events', async (req, res) => {
    const q = req.query as Record<string, unknown>;
    const w = windowOf(config, new Date());
    const presentAll = (rows: EventRow[]) => presentEvents(db, rows, w);
    const filter = eventFilterOf(q, w);
    if (q.trigger_name !== undefined) await narrowToTriggerName(db, filter, String(q.trigger_name));
    const limit = Number(q.limit ?? 20);
    if (q.cursor !== undefined) {
      const cursor = decodeCursor(String(q.cursor));
      if (!cursor) throw validationError([{ field: 'query.cursor', message: 'not a cursor returned by this API' }]);
      const { rows } = await boundedRead(db, res, (q) => listEvents(q, filter, limit + 1, { cursor }, config.readTimeoutMs));
      const keyset = cursorPage(rows, limit, encodeCursor);
      res.json({ events: await presentAll(keyset.rows), pagination: keyset.pagination });
      return;
    }
    const page = Number(q.page ?? 1);
    if ((page - 1) * limit >= COUNT_CAP) {
      throw validationError([
        { field: 'query.page', message: `pages reach the first ${COUNT_CAP} events; page on with the cursor (next_cursor) beyond that` },
      ]);
    }
    const offset = (page - 1) * limit;
    const { rows, total } = await boundedRead(db, res, (q) => listEvents(q, filter, limit, { offset }, config.readTimeoutMs));
    const last = rows[rows.length - 1];
    const exact = (total ?? 0) <= COUNT_CAP;
    const totalRecords = Math.min(total ?? 0, COUNT_CAP);
    res.json({
      events: await presentAll(rows),
      pagination: {
        current_page: page,
        page_size: limit,
        total_pages: Math.ceil(totalRecords / limit),
        total_records: totalRecords,
        total_is_exact: exact,
        next_cursor: last && (page * limit < totalRecords || !exact) ? encodeCursor(last) : null,
      },
    });
  });

  r.get('/events/:id', async (req, res) => {
    const e = await getEvent(db, String(req.params.id));
    const w = windowOf(config, new Date());
    // Past the retention window an event is gone, whether or not the sweep has deleted its row yet.
    if (!e || !retentionOf(e.fired_at, w)) throw new ApiError('EVENT_NOT_FOUND', `No event with id ${String(req.params.id)}`);
    res.json((await presentEvents(db, [e], w))[0]);
  });
  return r;
}
