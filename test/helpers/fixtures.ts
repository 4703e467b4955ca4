import type { Db } from '../../src/db/knex';
import { validateTriggerConfig } from '../../src/triggers/validate';
import type { TriggerType } from '../../src/triggers/types';
import { newTriggerId } from '../../src/triggers/event-id';
import { until } from './until';

/**
 * Inserts triggers and their first schedule row straight into the database, in bulk (the API would take
 * minutes for thousands): the relay under test cannot tell the difference. Ids are time-ordered, as the API
 * makes them: the benches' bursts fire these triggers, and a random id would put each one's entries on a
 * random page of every trigger-keyed index, which the product never does.
 */
export async function insertScheduledTriggers(
  db: Db,
  n: number,
  opts: { type?: TriggerType; fireAt: Date; config?: Record<string, unknown>; status?: 'active' | 'inactive' },
): Promise<string[]> {
  const type = opts.type ?? 'time_scheduled';
  const now = new Date();
  const input =
    opts.config ??
    (type === 'time_scheduled'
      ? {
          endpoint: 'http://127.0.0.1:9/none',
          run_at: new Date(Math.max(opts.fireAt.getTime(), now.getTime())).toISOString(),
          payload: { n: 1 },
        }
      : {});
  const v = validateTriggerConfig(type, input, now);
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  const ids: string[] = [];
  const chunk = 1000;
  for (let i = 0; i < n; i += chunk) {
    const rows = Array.from({ length: Math.min(chunk, n - i) }, (_, j) => ({
      id: newTriggerId(),
      name: `bulk-${i + j}`,
      type,
      status: opts.status ?? 'active',
      config: JSON.stringify(v.config),
      version: 1,
      created_at: now,
      updated_at: now,
    }));
    await db('triggers').insert(rows);
    await db('trigger_schedules').insert(
      rows.map((r) => ({ trigger_id: r.id, fire_at: opts.fireAt, status: 'pending', created_at: now, updated_at: now })),
    );
    ids.push(...rows.map((r) => r.id));
  }
  return ids;
}

/**
 * A stream of due occurrences: `per` time triggers due at each of `instants` instants `stepMs` apart from
 * `first`, written 20 instants at a time. Returns the trigger ids.
 */
export async function insertStream(db: Db, first: number, opts: { instants: number; per: number; stepMs: number }): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < opts.instants; i += 20) {
    const groups = await Promise.all(
      Array.from({ length: Math.min(20, opts.instants - i) }, (_, j) =>
        insertScheduledTriggers(db, opts.per, { fireAt: new Date(first + (i + j) * opts.stepMs) }),
      ),
    );
    ids.push(...groups.flat());
  }
  return ids;
}

export async function count(db: Db, table: string, where: Record<string, unknown> = {}): Promise<number> {
  const row = (await db(table).where(where).count<{ n: number }[]>({ n: '*' }))[0];
  return Number(row?.n ?? 0);
}

/** Waits until every one of `triggerIds` has an event log (each fires once here): polling, never a fixed sleep. */
export async function untilLogged(db: Db, triggerIds: string[], opts: { message: string; timeoutMs?: number }): Promise<void> {
  await until(async () => (await db('event_logs').whereIn('trigger_id', triggerIds).pluck('id')).length === triggerIds.length, opts);
}
