import type { Knex } from 'knex';
import { parseJson } from './knex';

type Q = Knex | Knex.Transaction;

export interface StoredAnswer {
  status: number;
  body: unknown;
}

/** The stored answer for (scope, key) if it is younger than maxAgeSeconds. */
export async function storedResponse(q: Q, scope: string, key: string, maxAgeSeconds: number): Promise<StoredAnswer | null> {
  const row = (await q('idempotency_keys')
    .where({ scope, idem_key: key })
    .andWhere('created_at', '>=', new Date(Date.now() - maxAgeSeconds * 1000))
    .first()) as { response: string | null } | undefined;
  return row && row.response ? parseJson<StoredAnswer>(row.response) : null;
}

/**
 * Records (scope, key) with its answer in the caller's transaction. An expired row for the same key is
 * replaced; a live one makes the insert fail with a duplicate-key error (the caller answers from it).
 */
export async function claimIdempotencyKey(
  trx: Knex.Transaction,
  scope: string,
  key: string,
  answer: StoredAnswer | null,
  now: Date,
  maxAgeSeconds: number,
): Promise<void> {
  await trx('idempotency_keys')
    .where({ scope, idem_key: key })
    .andWhere('created_at', '<', new Date(now.getTime() - maxAgeSeconds * 1000))
    .delete();
  await trx('idempotency_keys').insert({ scope, idem_key: key, response: answer ? JSON.stringify(answer) : null, created_at: now });
}

/** True when the key was new and is now recorded; false when it had been recorded before (a duplicate). */
export async function recordOnce(trx: Knex.Transaction, scope: string, key: string, now: Date): Promise<boolean> {
  const [res] = (await trx.raw('INSERT IGNORE INTO idempotency_keys (scope, idem_key, created_at) VALUES (?, ?, ?)', [
    scope,
    key,
    now,
  ])) as [{ affectedRows: number }];
  return res.affectedRows === 1;
}

const ER_DUP_ENTRY = 1062;

/**
 * recordOnce for a whole batch of keys in the caller's transaction; returns the keys that were new. The
 * fast path is one multi-row INSERT (keys sorted, so two workers inserting overlapping batches lock them
 * in the same order). If any key exists (a redelivery another worker handled first), that statement fails
 * alone and each key is tried with INSERT IGNORE, which says which ones were new.
 */
export async function recordManyOnce(trx: Knex.Transaction, scope: string, keys: string[], now: Date): Promise<Set<string>> {
  const sorted = [...new Set(keys)].sort();
  if (sorted.length === 0) return new Set();
  try {
    await trx('idempotency_keys').insert(sorted.map((k) => ({ scope, idem_key: k, created_at: now })));
    return new Set(sorted);
  } catch (e) {
    if ((e as { errno?: number }).errno !== ER_DUP_ENTRY) throw e;
  }
  const fresh = new Set<string>();
  for (const k of sorted) if (await recordOnce(trx, scope, k, now)) fresh.add(k);
  return fresh;
}

export async function deleteKeysBefore(q: Q, before: Date, limit: number): Promise<number> {
  const [res] = (await q.raw('DELETE FROM idempotency_keys WHERE created_at < ? LIMIT ?', [before, limit])) as [{ affectedRows: number }];
  return res.affectedRows;
}
