import type { Knex } from 'knex';
import type { OutgoingMessage } from '../kafka/producer';
import { parseJson } from './knex';

type Q = Knex | Knex.Transaction;

export interface OutboxInsert {
  event_id: string;
  message: OutgoingMessage;
  available_at: Date;
}

export async function insertOutbox(q: Q, rows: OutboxInsert[], now: Date): Promise<void> {
  if (rows.length === 0) return;
  await q('outbox').insert(
    rows.map((r) => ({
      event_id: r.event_id,
      topic: r.message.topic,
      msg_key: r.message.key,
      value: r.message.value,
      headers: JSON.stringify(r.message.headers),
      available_at: r.available_at,
      created_at: now,
    })),
  );
}

export interface ClaimedOutbox {
  id: number;
  event_id: string;
  message: OutgoingMessage;
  attempts: number;
}

/**
 * Claims unpublished rows in id order. idx_outbox_claim (published, id) gives the order without a sort;
 * rows not yet available (a delivery retry's future available_at) are filtered after the index lookup and,
 * at READ COMMITTED, their locks are released at once. SKIP LOCKED: relays never wait for each other.
 */
export async function claimUnpublished(trx: Knex.Transaction, limit: number): Promise<ClaimedOutbox[]> {
  const [rows] = (await trx.raw(
    `SELECT id, event_id, topic, msg_key, value, headers, attempts FROM outbox
      WHERE published = 0 AND available_at <= UTC_TIMESTAMP(3)
      ORDER BY id
      LIMIT ? FOR UPDATE SKIP LOCKED`,
    [limit],
  )) as [
    Array<{ id: number; event_id: string; topic: string; msg_key: string | null; value: Buffer; headers: string | null; attempts: number }>,
  ];
  return rows.map((r) => ({
    id: Number(r.id),
    event_id: r.event_id,
    attempts: r.attempts,
    message: { topic: r.topic, key: r.msg_key, value: r.value, headers: parseJson<Record<string, string>>(r.headers) ?? {} },
  }));
}

export async function markPublished(trx: Knex.Transaction, rows: ClaimedOutbox[], now: Date): Promise<void> {
  if (rows.length === 0) return;
  await trx('outbox')
    .whereIn(
      'id',
      rows.map((r) => r.id),
    )
    .update({ published: 1, published_at: now, attempts: trx.raw('attempts + 1') });
  // Only the first publish of an event moves it to `published` (delivery retries reuse the outbox).
  await trx('event_logs')
    .whereIn('id', [...new Set(rows.map((r) => r.event_id))])
    .whereNull('published_at')
    .update({
      published_at: now,
      execution_status: trx.raw("IF(execution_status = 'pending', 'published', execution_status)"),
      updated_at: now,
    });
}

export async function markFailed(trx: Knex.Transaction, ids: number[], error: string, retryAt: Date): Promise<void> {
  if (ids.length === 0) return;
  await trx('outbox')
    .whereIn('id', ids)
    .update({ attempts: trx.raw('attempts + 1'), last_error: error.slice(0, 2000), available_at: retryAt });
}

/** Published rows are history; delete them in small batches (short locks, no long purge). */
export async function deletePublished(q: Q, before: Date, limit: number): Promise<number> {
  const [res] = (await q.raw('DELETE FROM outbox WHERE published = 1 AND published_at < ? ORDER BY id LIMIT ?', [before, limit])) as [
    { affectedRows: number },
  ];
  return res.affectedRows;
}

export async function backlog(q: Q): Promise<number> {
  const [rows] = (await q.raw('SELECT COUNT(*) AS n FROM outbox WHERE published = 0')) as [Array<{ n: number }>];
  return Number(rows[0]?.n ?? 0);
}
