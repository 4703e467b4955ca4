/**
 * A trigger's lifecycle, in one place: create, edit, change status (one trigger or many), and what each of
 * them does to the trigger's schedule. The routes (api/triggers.ts) parse and format; the rules live here.
 *
 * Unlike the rest of src/triggers (pure functions), these run transactions: each rule is a change of the
 * trigger row and of its schedule rows that must commit together, so the rule and its writes stay side by
 * side. The schedule maths they use is the pure part (schedule.ts).
 *
 * What a status change does: pausing cancels the pending occurrence (no event for it); resuming schedules
 * the next occurrence from now (a one-shot whose instant has passed stays unscheduled); the relay also
 * skips a due row whose trigger is inactive, for a pause that races a claim.
 */
import type { Knex } from 'knex';
import { ApiError, validationError } from '../api/errors';
import type { Db } from '../db/knex';
import { cancelPendingMany, insertOccurrences } from '../db/schedules';
import { setTags } from '../db/tags';
import {
  getTrigger,
  insertTrigger,
  lockForStatusChange,
  setStatus,
  updateTrigger,
  type BulkFilter,
  type TriggerRow,
  type TriggerStatus,
} from '../db/triggers';
import { withConflictRetry, withDbRetry } from '../util';
import { newTriggerId, scheduledEventId } from './event-id';
import { firstOccurrence, occurrenceAt, type Occurrence } from './schedule';
import type { TimeConfig, TriggerConfig, TriggerType, WebhookConfig } from './types';
import { LIMITS, validateTriggerConfig } from './validate';

/** A config checked against its type's schema, or a 400 naming every wrong field. */
export function checkedConfig(type: TriggerType, input: unknown, now: Date): TriggerConfig {
  const result = validateTriggerConfig(type, input, now);
  if (!result.ok) throw validationError(result.errors);
  return result.config;
}

/** How far ahead of this process's clock an instant may already have fired (the database's and the relays' clocks may run ahead). */
const FIRED_CHECK_AHEAD_MS = 60_000;

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

/** The first run of a trigger scheduled now (occurrenceToSchedule, with its jitter), or null. A preview has no id yet. */
export function firstRun(
  t: Pick<TriggerRow, 'type' | 'config' | 'created_at'> & { id: string | null },
  now: Date,
  fresh: boolean,
): Occurrence | null {
  const at = occurrenceToSchedule(t, now, fresh);
  return at ? occurrenceAt(t.id, t.type, t.config, at) : null;
}

/**
 * Edits affect future firings only: the triggers' pending occurrences are cancelled and, for those now
 * active, the next one is scheduled from `now`. Webhook triggers have no schedule and are left out.
 */
async function reschedule(trx: Knex.Transaction, triggers: TriggerRow[], now: Date, fresh: boolean): Promise<void> {
  const scheduled = triggers.filter((t) => t.type !== 'webhook');
  await cancelPendingMany(
    trx,
    scheduled.map((t) => t.id),
    now,
  );
  const runs = scheduled.flatMap((t) => {
    const run = t.status === 'active' ? firstRun(t, now, fresh) : null;
    return run ? [{ trigger_id: t.id, ...run }] : [];
  });
  // An instant that has fired is never scheduled again (a one-shot reactivated or edited within the
  // tolerance of its instant): the relay deletes a fired row, and the event, keyed by the instant, is what
  // is left of it.
  const next = await notYetFired(trx, runs, now);
  for (let i = 0; i < next.length; i += 500) await insertOccurrences(trx, next.slice(i, i + 500), now);
}

/** `runs` without those whose events are logged: their instants have fired. Only instants not ahead of now can have. */
async function notYetFired<R extends { trigger_id: string; scheduled_for: Date }>(
  trx: Knex.Transaction,
  runs: R[],
  now: Date,
): Promise<R[]> {
  // Each run's event id, hashed once; null where its instant is still ahead (it cannot have fired).
  const idOf = runs.map((r) =>
    r.scheduled_for.getTime() <= now.getTime() + FIRED_CHECK_AHEAD_MS ? scheduledEventId(r.trigger_id, r.scheduled_for) : null,
  );
  const ids = idOf.filter((id): id is string => id !== null);
  const fired = new Set<string>();
  for (let i = 0; i < ids.length; i += 1000) {
    const logged = (await trx('event_logs')
      .whereIn('id', ids.slice(i, i + 1000))
      .pluck('id')) as string[];
    logged.forEach((id) => fired.add(id));
  }
  return runs.filter((_, i) => idOf[i] === null || !fired.has(idOf[i]!));
}

export interface NewTrigger {
  name: string;
  type: TriggerType;
  status?: TriggerStatus;
  config: unknown;
  tags?: string[];
}

/** Creates a trigger with its tags and, when active, its first occurrence, in one transaction. */
export async function createTrigger(
  db: Db,
  input: NewTrigger,
  now: Date,
): Promise<{ row: TriggerRow; tags: string[]; next: Occurrence | null }> {
  const row: TriggerRow = {
    id: newTriggerId(now.getTime()),
    name: input.name,
    type: input.type,
    status: input.status ?? 'active',
    config: checkedConfig(input.type, input.config, now),
    version: 1,
    created_at: now,
    updated_at: now,
  };
  const next = row.status === 'active' ? firstRun(row, now, true) : null;
  const tags = input.tags ?? [];
  // A lost race (the counts' rows, a schedule index gap) wrote nothing: the same row is written again.
  await withConflictRetry(() =>
    db.transaction(async (trx) => {
      await insertTrigger(trx, row);
      await setTags(trx, row.id, tags);
      if (next) await insertOccurrences(trx, [{ trigger_id: row.id, ...next }], now);
    }),
  );
  return { row, tags, next };
}

export interface TriggerEdit {
  name?: string;
  type?: TriggerType;
  status?: TriggerStatus;
  config?: Record<string, unknown>;
  tags?: string[];
}

/**
 * A webhook config as sent on PUT, made whole: `has_secret` (GET's read-only marker) is dropped, so a config
 * read back from GET can be sent again; the secret is write-only, so omitting it keeps the stored one and
 * null removes it.
 */
function withStoredSecret(type: TriggerType, input: Record<string, unknown>, stored: TriggerConfig): Record<string, unknown> {
  const out = { ...input };
  if (type === 'webhook') {
    delete out.has_secret;
    const secret = (stored as WebhookConfig).secret;
    if (!('secret' in out) && secret !== undefined) out.secret = secret;
  }
  if (out.secret === null) delete out.secret;
  return out;
}

/** A time trigger's delay counts from its creation: like a run_at in the past, one that has elapsed is refused. */
function checkDelayNotElapsed(t: TriggerRow, cfg: TriggerConfig, now: Date): void {
  if (t.type !== 'time_scheduled' || (cfg as TimeConfig).delay_seconds === undefined) return;
  const at = firstOccurrence(t.type, cfg, t.created_at);
  if (at && at.getTime() < now.getTime() - LIMITS.runAtPastToleranceMs) {
    throw validationError([
      {
        field: 'config.delay_seconds',
        message: `counts from the trigger's creation (${t.created_at.toISOString()}), so it has already elapsed; give run_at instead`,
      },
    ]);
  }
}

/**
 * Edits a trigger (PUT): name, status, config and tags; the type cannot change. A webhook keeps its stored
 * secret unless the edit names one. A change of the timing fields or of the status reschedules (from now);
 * other edits keep the pending occurrence (the relay reads the config when it fires). Returns the row as
 * stored afterwards.
 */
export async function editTrigger(db: Db, id: string, edit: TriggerEdit, now: Date): Promise<TriggerRow> {
  // Retried as a whole on a deadlock, as the bulk status change is: the trigger row is locked first, then
  // its schedule rows, while a relay firing the trigger holds a schedule row and its FK check wants the
  // trigger row. Re-running is correct: it re-reads the row under its lock.
  return withDbRetry(() =>
    db.transaction(async (trx) => {
      // The row lock serialises concurrent edits of one trigger, so schedule rows follow the last edit.
      const t = await getTrigger(trx, id, { forUpdate: true });
      if (!t) throw new ApiError('TRIGGER_NOT_FOUND', `No trigger with id ${id}`);
      if (edit.type !== undefined && edit.type !== t.type) {
        throw validationError([{ field: 'type', message: `the type of a trigger cannot change (it is ${t.type})` }]);
      }
      const cfg = edit.config === undefined ? undefined : checkedConfig(t.type, withStoredSecret(t.type, edit.config, t.config), now);
      const status = edit.status ?? t.status;
      const timingChanged = cfg !== undefined && !sameTiming(t.config, cfg);
      if (timingChanged) checkDelayNotElapsed(t, cfg, now);
      await updateTrigger(trx, id, { name: edit.name, status: edit.status, config: cfg }, now);
      if (edit.tags !== undefined) await setTags(trx, id, edit.tags);
      const after: TriggerRow = {
        ...t,
        name: edit.name ?? t.name,
        status,
        config: cfg ?? t.config,
        version: t.version + 1,
        updated_at: now,
      };
      if (timingChanged || status !== t.status) await reschedule(trx, [after], now, timingChanged);
      return after;
    }),
  );
}

/**
 * Bulk pause/resume: the same as an edit of `status` on every trigger matching all of `filter`, in one
 * transaction. Triggers already in that status are left alone (and not counted), as an edit leaves their
 * schedules. Returns how many changed.
 */
export async function setStatusOfMatching(db: Db, filter: BulkFilter, status: TriggerStatus): Promise<number> {
  // Retried as a whole on a deadlock: it locks many trigger rows, in the order the filter's index gives.
  return withDbRetry(() =>
    db.transaction(async (trx) => {
      const now = new Date();
      const rows = await lockForStatusChange(trx, filter, status);
      await setStatus(
        trx,
        rows.map((t) => t.id),
        status,
        now,
      );
      await reschedule(
        trx,
        rows.map((t) => ({ ...t, status })),
        now,
        false,
      );
      return rows.length;
    }),
  );
}
