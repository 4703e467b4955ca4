import type { Knex } from 'knex';
import { isDuplicateKey } from './errors';
import { withConflictRetry } from '../util';
import type { Db } from './knex';
import { parseJson } from './knex';

type Q = Knex | Knex.Transaction;

/**
 * How long an Idempotency-Key is remembered: a repeat within this window gets the first answer back. The
 * sweep keeps keys at least this long (longer when the retention window is longer).
 */
export const IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600;

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
    if (!isDuplicateKey(e)) throw e;
  }
  const fresh = new Set<string>();
  for (const k of sorted) if (await recordOnce(trx, scope, k, now)) fresh.add(k);
  return fresh;
}

/**
 * Runs `write` in a transaction guarded by an Idempotency-Key, if one was given: the first request stores
 * its answer in the same commit as its writes; a repeat within IDEMPOTENCY_WINDOW_SECONDS gets that answer
 * back and writes nothing. `fresh` says whether this call did the writing.
 */
export async function withIdempotencyKey(
  db: Db,
  scope: string,
  key: string | undefined,
  write: (trx: Knex.Transaction) => Promise<StoredAnswer>,
): Promise<{ answer: StoredAnswer; fresh: boolean }> {
  // A transaction that lost a race (a deadlock with the worker's or the relay's writes) wrote nothing: it
  // runs again rather than answering 503 for the platform's own contention.
  if (!key) return { answer: await withConflictRetry(() => db.transaction(write)), fresh: true };
  const stored = await storedResponse(db, scope, key, IDEMPOTENCY_WINDOW_SECONDS);
  if (stored) return { answer: stored, fresh: false };
  try {
    const answer = await withConflictRetry(() =>
      db.transaction(async (trx) => {
        const a = await write(trx);
        await claimIdempotencyKey(trx, scope, key, a, new Date(), IDEMPOTENCY_WINDOW_SECONDS);
        return a;
      }),
    );
    return { answer, fresh: true };
  } catch (e) {
    // A concurrent request with the same key committed first: answer as it did.
    const again = await storedResponse(db, scope, key, IDEMPOTENCY_WINDOW_SECONDS);
    if (again) return { answer: again, fresh: false };
    throw e;
  }
}

export async function deleteKeysBefore(q: Q, before: Date, limit: number): Promise<number> {
  const [res] = (await q.raw('DELETE FROM idempotency_keys WHERE created_at < ? LIMIT ?', [before, limit])) as [{ affectedRows: number }];
  return res.affectedRows;
}
