import type { Knex } from 'knex';

type Q = Knex | Knex.Transaction;

/** Replaces a trigger's tags (inside the caller's transaction, next to the trigger row it belongs to). */
export async function setTags(trx: Knex.Transaction, triggerId: string, tags: readonly string[]): Promise<void> {
  await trx('trigger_tags').where({ trigger_id: triggerId }).delete();
  if (tags.length > 0) await trx('trigger_tags').insert([...new Set(tags)].map((tag) => ({ trigger_id: triggerId, tag })));
}

/** The tags of each trigger, sorted, in one primary-key range query (no N+1 in list responses). */
export async function tagsOf(q: Q, triggerIds: string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(triggerIds.map((id) => [id, []]));
  if (triggerIds.length === 0) return out;
  const rows = (await q('trigger_tags')
    .select('trigger_id', 'tag')
    .whereIn('trigger_id', triggerIds)
    .orderBy(['trigger_id', 'tag'])) as Array<{
    trigger_id: string;
    tag: string;
  }>;
  for (const r of rows) out.get(r.trigger_id)?.push(r.tag);
  return out;
}
