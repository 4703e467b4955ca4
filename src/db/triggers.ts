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

/** What firing needs of trigger `id`, from a row with its type, status, config and version (the relay's claim reads them). */
export function fireTriggerOf(id: string, r: Record<string, unknown>): FireTrigger {
  const text = r.config as string | Buffer | null;
  return {
    id,
    type: r.type as TriggerType,
    status: r.status as TriggerStatus,
    config: parseJson<TriggerConfig>(text),
    version: Number(r.version),
    configChars: text === null || text === undefined ? 0 : text.length,
  };
}

/**
 * What firing needs of each trigger (type, status, config, version), without the rest of the row: the
 * relay reads it with every claim, and `SELECT *` would also fetch and convert the name and two timestamps
 * per trigger that it never looks at. `configChars`: the stored config's length, what bounds the text each
 * of its events carries (the payload is part of it).
 */
export interface FireTrigger extends Pick<TriggerRow, 'id' | 'type' | 'status' | 'config' | 'version'> {
  configChars: number;
}

export interface TriggerFilter {
  type?: TriggerType;
  status?: TriggerStatus;
  /** Triggers carrying every one of these tags. */
  tags?: string[];
  /** Triggers whose name contains this text (case-insensitive: the column's _ci collation). */
  nameContains?: string;
  /** Only triggers after this one in list order (newest first): a cursor page continues strictly after it. */
  after?: { created_at: Date; id: string };
}

/** A LIKE pattern matching names that contain `text` literally: `%`, `_` and the escape `!` are escaped. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[!%_]/g, '!$&')}%`;
}

/**
 * Newest first; served by idx_triggers_*_created (no filesort). With tags, see listTriggersByTags. A name
 * search (`LIKE '%…%'`) can use no index: it filters the rows that walk visits.
 */
/**
 * A page of triggers, newest first on (created_at, id). `total` counts every match of the filter (without
 * `after`); it is null, and not computed, when `count` is false (cursor pages).
 */
export async function listTriggers(
  q: Q,
  f: TriggerFilter,
  limit: number,
  offset: number,
  count = true,
): Promise<{ rows: TriggerRow[]; total: number | null }> {
  if (f.tags && f.tags.length > 0) return listTriggersByTags(q, { ...f, tags: f.tags }, limit, offset, count);
  const base = q('triggers').modify((b) => {
    if (f.type) b.where('type', f.type);
    if (f.status) b.where('status', f.status);
    if (f.nameContains) b.whereRaw("name LIKE ? ESCAPE '!'", [containsPattern(f.nameContains)]);
  });
  const page = base.clone().modify((b) => {
    const c = f.after;
    if (c)
      b.where((w) =>
        w.where('created_at', '<', c.created_at).orWhere((w2) => w2.where('created_at', '=', c.created_at).andWhere('id', '<', c.id)),
      );
  });
  const [rows, countRow] = await Promise.all([
    page
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(limit)
      .offset(offset),
    count ? base.clone().count<{ n: number }[]>({ n: '*' }) : Promise.resolve(null),
  ]);
  return { rows: (rows as Record<string, unknown>[]).map(fromDb), total: countRow ? Number(countRow[0]?.n ?? 0) : null };
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

/**
 * The FROM/WHERE of "triggers carrying all these tags", driven by the tag index. STRAIGHT_JOIN fixes the
 * join order: idx_tags_tag (tag, trigger_id) gives the first tag's triggers (ref), each reached by primary
 * key (eq_ref), each further tag checked by the tags' primary key (eq_ref). Left to itself, the optimizer
 * may prefer walking all triggers in created_at order to avoid a sort, which on a rare tag reads the whole
 * table; this way the cost is the number of triggers carrying the first tag (sorted after, by created_at).
 */
function byTags(f: TriggerFilter & { tags: string[] }, extra: { ids?: string[] } = {}): { sql: string; bindings: Knex.RawBinding[] } {
  const [first, ...rest] = f.tags;
  // Only fixed fragments and "?" placeholders go into the text; every value is bound.
  let sql = 'FROM trigger_tags g0 STRAIGHT_JOIN triggers t ON t.id = g0.trigger_id';
  const bindings: Knex.RawBinding[] = [];
  rest.forEach((tag, i) => {
    sql += ` STRAIGHT_JOIN trigger_tags g${i + 1} ON g${i + 1}.trigger_id = g0.trigger_id AND g${i + 1}.tag = ?`;
    bindings.push(tag);
  });
  sql += ' WHERE g0.tag = ?';
  bindings.push(first!);
  if (f.type) {
    sql += ' AND t.type = ?';
    bindings.push(f.type);
  }
  if (f.status) {
    sql += ' AND t.status = ?';
    bindings.push(f.status);
  }
  if (f.nameContains) {
    sql += " AND t.name LIKE ? ESCAPE '!'";
    bindings.push(containsPattern(f.nameContains));
  }
  if (extra.ids) {
    sql += ` AND t.id IN (${extra.ids.map(() => '?').join(',')})`;
    bindings.push(...extra.ids);
  }
  return { sql, bindings };
}

async function listTriggersByTags(
  q: Q,
  f: TriggerFilter & { tags: string[] },
  limit: number,
  offset: number,
  count: boolean,
): Promise<{ rows: TriggerRow[]; total: number | null }> {
  const { sql, bindings } = byTags(f);
  const c = f.after;
  const after = c ? ' AND (t.created_at < ? OR (t.created_at = ? AND t.id < ?))' : '';
  const afterBindings: Knex.RawBinding[] = c ? [c.created_at, c.created_at, c.id] : [];
  const page = 'SELECT t.* ' + sql + after + ' ORDER BY t.created_at DESC, t.id DESC LIMIT ? OFFSET ?';
  const total = 'SELECT COUNT(*) AS n ' + sql;
  const [[rows], counted] = (await Promise.all([
    q.raw(page, [...bindings, ...afterBindings, limit, offset]),
    count ? q.raw(total, bindings) : Promise.resolve(null),
  ])) as [[Record<string, unknown>[]], [Array<{ n: number }>] | null];
  return { rows: rows.map(fromDb), total: counted ? Number(counted[0][0]?.n ?? 0) : null };
}

/** Which triggers a bulk pause/resume acts on: every given filter applies (AND). */
export interface BulkFilter {
  tag?: string;
  type?: TriggerType;
  ids?: string[];
}

/**
 * The triggers matching `f` that are not already in `status`, locked (FOR UPDATE) for the caller's bulk
 * status change, as PUT locks the one trigger it edits. By tag: the tag index drives (see byTags); by type:
 * idx_triggers_type_status_created; by ids: the primary key.
 */
export async function lockForStatusChange(trx: Knex.Transaction, f: BulkFilter, status: TriggerStatus): Promise<TriggerRow[]> {
  const other: TriggerStatus = status === 'active' ? 'inactive' : 'active';
  if (f.tag !== undefined) {
    const { sql, bindings } = byTags({ tags: [f.tag], type: f.type, status: other }, { ids: f.ids });
    const select = 'SELECT t.* ' + sql + ' FOR UPDATE';
    const [rows] = (await trx.raw(select, bindings)) as [Record<string, unknown>[]];
    return rows.map(fromDb);
  }
  const rows = (await trx('triggers')
    .where('status', other)
    .modify((b) => {
      if (f.type) b.where('type', f.type);
      if (f.ids) b.whereIn('id', f.ids);
    })
    .forUpdate()) as Record<string, unknown>[];
  return rows.map(fromDb);
}

/** Sets the status of many triggers (as updateTrigger does for one), in statements of at most 1,000 ids. */
export async function setStatus(trx: Knex.Transaction, ids: string[], status: TriggerStatus, now: Date): Promise<void> {
  for (let i = 0; i < ids.length; i += 1000) {
    await trx('triggers')
      .whereIn('id', ids.slice(i, i + 1000))
      .update({ status, updated_at: now, version: trx.raw('version + 1') });
  }
}

/** What an event's presentation needs of its trigger: the name, the zone it is scheduled in, its retry limit. */
export interface TriggerSummary {
  name: string;
  /** The IANA zone of a scheduled trigger; null for a webhook trigger (it has none). */
  timezone: string | null;
  max_attempts: number | null;
}

/**
 * The summaries of these triggers, in one primary-key read. A trigger that has been deleted is simply
 * missing from the map (its events keep the id as a value).
 */
export async function triggerSummaries(q: Q, ids: string[]): Promise<Map<string, TriggerSummary>> {
  const out = new Map<string, TriggerSummary>();
  const unique = [...new Set(ids)];
  if (unique.length === 0) return out;
  const rows = (await q('triggers').select('id', 'name', 'config').whereIn('id', unique)) as Array<Record<string, unknown>>;
  for (const r of rows) out.set(r.id as string, summaryOf(r.name as string, parseJson<Record<string, unknown>>(r.config)));
  return out;
}

/** A summary from a trigger config (also an unsaved test run's own delivery config). */
export function summaryOf(name: string, config: Record<string, unknown> | null | undefined): TriggerSummary {
  const tz = config?.timezone;
  const max = (config?.retry as { max_attempts?: unknown } | undefined)?.max_attempts;
  return { name, timezone: typeof tz === 'string' ? tz : null, max_attempts: typeof max === 'number' ? max : null };
}

/**
 * The ids of the triggers with exactly this name (compared in the column's case-insensitive collation),
 * newest first, at most `limit`: a read of idx_triggers_name.
 */
export async function triggerIdsNamed(q: Q, name: string, limit: number): Promise<string[]> {
  const rows = (await q('triggers').select('id').where('name', name).orderBy('created_at', 'desc').limit(limit)) as Array<{ id: string }>;
  return rows.map((r) => r.id);
}
