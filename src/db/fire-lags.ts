/**
 * The fire lags of the last hour (migration 20261205000006_fire_lags.ts): one row per fire batch, holding
 * the lag of each event it fired, in ms, from the occurrence's planned instant (its fire_at, jitter
 * included, as the etp_fire_lag_seconds metric counts it) to the fire transaction's time. The overview's
 * fire-lag percentiles read the newest of them; the relays' sweep deletes them past the window.
 */
import type { Knex } from 'knex';

type Q = Knex | Knex.Transaction;

/** The span of the overview's fire-lag sample, and how long the rows are kept. */
export const FIRE_LAG_WINDOW_SECONDS = 3600;

/** One batch's lags (ms) as one row; written in the fire transaction. */
export function insertFireLagsStatement(lagsMs: number[], firedAt: Date): { sql: string; values: Knex.RawBinding[] } {
  return { sql: 'INSERT INTO fire_lags (fired_at, lags_ms) VALUES (?, ?)', values: [firedAt, lagsMs.join(',')] };
}

export async function insertFireLags(q: Q, lagsMs: number[], firedAt: Date): Promise<void> {
  if (lagsMs.length === 0) return;
  const { sql, values } = insertFireLagsStatement(lagsMs, firedAt);
  await q.raw(sql, values);
}

/**
 * Fire lags (ms) of the newest batches fired since `since`, newest batch first, at most `limit` lags. Each
 * row holds at least one lag, so reading `limit` rows of idx_fire_lags_fired backwards is enough: the read
 * is bounded however busy the platform is.
 */
export async function recentFireLags(q: Q, since: Date, limit: number): Promise<number[]> {
  const [rows] = (await q.raw('SELECT lags_ms FROM fire_lags WHERE fired_at >= ? ORDER BY fired_at DESC LIMIT ?', [since, limit])) as [
    Array<{ lags_ms: string }>,
  ];
  const lags: number[] = [];
  for (const r of rows) {
    for (const text of r.lags_ms.split(',')) {
      if (lags.length === limit) return lags;
      lags.push(Number(text));
    }
  }
  return lags;
}

/** The sweep's part: batches fired before `before`, oldest first, at most `limit` rows. */
export async function deleteFireLagsBefore(q: Q, before: Date, limit: number): Promise<number> {
  const [res] = (await q.raw('DELETE FROM fire_lags WHERE fired_at < ? ORDER BY fired_at LIMIT ?', [before, limit])) as [
    { affectedRows: number },
  ];
  return res.affectedRows;
}
