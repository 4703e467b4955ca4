import type { Knex } from 'knex';
import type { TriggerConfig, TriggerType } from '../triggers/types';
import { parseJson } from './knex';

export type TriggerStatus = 'active' | 'inactive';

export interface TriggerRow {
  id: string;
  name: string;
  type: TriggerType;
  status: TriggerStatus;
  config: TriggerConfig;
  version: number;
  created_at: Date;
  updated_at: Date;
}

type Q = Knex | Knex.Transaction;

function fromDb(r: Record<string, unknown>): TriggerRow {
  return {
    id: r.id as string,
    name: r.name as string,
    type: r.type as TriggerType,
    status: r.status as TriggerStatus,
    config: parseJson<TriggerConfig>(r.config),
    version: Number(r.version),
    created_at: r.created_at as Date,
    updated_at: r.updated_at as Date,
  };
}

export async function insertTrigger(q: Q, t: TriggerRow): Promise<void> {
  await q('triggers').insert({ ...t, config: JSON.stringify(t.config) });
}

export async function getTrigger(q: Q, id: string, opts: { forUpdate?: boolean } = {}): Promise<TriggerRow | null> {
  let query = q('triggers').where({ id }).first();
  if (opts.forUpdate) query = query.forUpdate();
  const row = (await query) as Record<string, unknown> | undefined;
  return row ? fromDb(row) : null;
}

export async function getTriggersByIds(q: Q, ids: string[]): Promise<Map<string, TriggerRow>> {
  const out = new Map<string, TriggerRow>();
  if (ids.length === 0) return out;
  const rows = (await q('triggers').whereIn('id', ids)) as Record<string, unknown>[];
  for (const r of rows) out.set(r.id as string, fromDb(r));
  return out;
}

export interface TriggerFilter {
  type?: TriggerType;
  status?: TriggerStatus;
}

/** Newest first; served by idx_triggers_*_created (no filesort). */
export async function listTriggers(q: Q, f: TriggerFilter, limit: number, offset: number): Promise<{ rows: TriggerRow[]; total: number }> {
  const base = q('triggers').modify((b) => {
    if (f.type) b.where('type', f.type);
    if (f.status) b.where('status', f.status);
  });
  const [rows, countRow] = await Promise.all([
    base
      .clone()
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(limit)
      .offset(offset),
    base.clone().count<{ n: number }[]>({ n: '*' }),
  ]);
  return { rows: (rows as Record<string, unknown>[]).map(fromDb), total: Number(countRow[0]?.n ?? 0) };
}

export async function updateTrigger(
  q: Q,
  id: string,
  patch: { name?: string; status?: TriggerStatus; config?: TriggerConfig },
  now: Date,
): Promise<void> {
  const values: Record<string, unknown> = { updated_at: now, version: q.raw('version + 1') };
  if (patch.name !== undefined) values.name = patch.name;
  if (patch.status !== undefined) values.status = patch.status;
  if (patch.config !== undefined) values.config = JSON.stringify(patch.config);
  await q('triggers').where({ id }).update(values);
}

export async function deleteTrigger(q: Q, id: string): Promise<boolean> {
  const n = await q('triggers').where({ id }).delete();
  return n > 0;
}
