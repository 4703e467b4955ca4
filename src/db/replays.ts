import type { Knex } from 'knex';
import { isDuplicateKey } from './errors';

type Q = Knex | Knex.Transaction;

/** An event that has been replayed: its latest replay, and how many replays it has had. */
export interface ReplayMark {
  event_id: string;
  replay_id: string;
  replays: number;
  replayed_at: Date;
}

function fromDb(r: Record<string, unknown>): ReplayMark {
  return {
    event_id: r.event_id as string,
    replay_id: r.replay_id as string,
    replays: Number(r.replays),
    replayed_at: r.replayed_at as Date,
  };
}

/**
 * The replay marks of these events (one primary-key read each, in one statement). `lock`: a shared-lock
 * read, which sees the latest committed marks rather than the transaction's snapshot.
 */
export async function replayMarks(q: Q, eventIds: string[], opts: { lock?: boolean } = {}): Promise<Map<string, ReplayMark>> {
  const out = new Map<string, ReplayMark>();
  if (eventIds.length === 0) return out;
  const b = q('event_replays').whereIn('event_id', eventIds);
  if (opts.lock) b.forShare();
  const rows = (await b) as Array<Record<string, unknown>>;
  for (const r of rows) out.set(r.event_id as string, fromDb(r));
  return out;
}

/**
 * Marks events as replayed, in the caller's transaction, and returns the originals that were newly marked.
 * Without `force` an event that already has a mark keeps it and is left out of the result: the primary key
 * decides, so of two concurrent replays of one event exactly one gets it (the other's insert is a
 * duplicate, or waits for the first's commit and then is). The fast path is one multi-row INSERT; on a
 * duplicate it falls back to INSERT IGNORE row by row, which says which ones were new. With `force` every
 * mark is set to the new replay (`replays` counts them).
 */
export async function markReplayed(
  trx: Knex.Transaction,
  pairs: Array<{ event_id: string; replay_id: string }>,
  now: Date,
  force: boolean,
): Promise<Set<string>> {
  if (pairs.length === 0) return new Set();
  // Sorted: two bulk replays over overlapping events take their locks in the same order.
  const sorted = [...pairs].sort((a, b) => (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0));
  const rows = sorted.map((p) => ({ event_id: p.event_id, replay_id: p.replay_id, replays: 1, replayed_at: now }));
  if (force) {
    await trx('event_replays')
      .insert(rows)
      .onConflict('event_id')
      .merge({ replay_id: trx.raw('VALUES(replay_id)'), replays: trx.raw('replays + 1'), replayed_at: trx.raw('VALUES(replayed_at)') });
    return new Set(sorted.map((p) => p.event_id));
  }
  try {
    await trx('event_replays').insert(rows);
    return new Set(sorted.map((p) => p.event_id));
  } catch (e) {
    if (!isDuplicateKey(e)) throw e;
  }
  const fresh = new Set<string>();
  for (const r of rows) {
    const [res] = (await trx.raw('INSERT IGNORE INTO event_replays (event_id, replay_id, replays, replayed_at) VALUES (?, ?, 1, ?)', [
      r.event_id,
      r.replay_id,
      now,
    ])) as [{ affectedRows: number }];
    if (res.affectedRows === 1) fresh.add(r.event_id);
  }
  return fresh;
}
