import type { Knex } from 'knex';
import { mergedRanges, triggerRanges, type ExecutionStatus } from './events';

type Q = Knex | Knex.Transaction;

/** How the signature check of a webhook call went. `passed` (accepted calls only): valid, or none required. */
export type SignatureVerdict = 'valid' | 'invalid' | 'missing' | 'not_required' | 'not_checked' | 'passed';

/** A webhook call that was answered with an error (what webhook_rejections keeps). */
export interface Rejection {
  trigger_id: string;
  received_at: Date;
  http_status: number;
  code: string;
  reason: string;
  body_bytes: number;
  signature: Exclude<SignatureVerdict, 'passed'>;
}

/** One line of a trigger's inbound call log, accepted or rejected. */
export interface WebhookCall {
  received_at: Date;
  outcome: 'accepted' | 'rejected';
  http_status: number;
  code: string | null;
  reason: string | null;
  body_bytes: number;
  signature: SignatureVerdict;
  event_id: string | null;
}

/** The newest rejections kept per trigger; older ones are trimmed (see trimRejections). */
export const REJECTIONS_KEPT_PER_TRIGGER = 200;

/** Many rejections in one multi-row INSERT (the request log's flush, never a request's own write). */
export async function insertRejections(q: Q, rows: Rejection[]): Promise<void> {
  if (rows.length === 0) return;
  await q('webhook_rejections').insert(rows.map((r) => ({ ...r, reason: r.reason.slice(0, 500), body_bytes: Math.max(0, r.body_bytes) })));
}

/**
 * Keeps a trigger's newest `keep` rejections and none older than `keepFrom`: one read of the (keep+1)-th
 * newest entry of idx_rejections_trigger_received, then one DELETE over the trigger's range of the same
 * index below it.
 */
export async function trimRejections(q: Q, triggerId: string, keep: number, keepFrom: Date): Promise<number> {
  const [cut] = (await q.raw(
    `SELECT received_at, id FROM webhook_rejections FORCE INDEX (idx_rejections_trigger_received)
      WHERE trigger_id = ? ORDER BY received_at DESC, id DESC LIMIT 1 OFFSET ?`,
    [triggerId, keep],
  )) as [Array<{ received_at: Date; id: number }>];
  const c = cut[0];
  const [res] = c
    ? ((await q.raw('DELETE FROM webhook_rejections WHERE trigger_id = ? AND (received_at < ? OR (received_at = ? AND id <= ?))', [
        triggerId,
        c.received_at > keepFrom ? c.received_at : keepFrom,
        c.received_at,
        c.id,
      ])) as [{ affectedRows: number }])
    : ((await q.raw('DELETE FROM webhook_rejections WHERE trigger_id = ? AND received_at < ?', [triggerId, keepFrom])) as [
        { affectedRows: number },
      ]);
  return res.affectedRows;
}

/** Retention: rejections received before `before`, oldest first, at most `limit` (idx_rejections_received). */
export async function deleteRejectionsBefore(q: Q, before: Date, limit: number): Promise<number> {
  const [res] = (await q.raw('DELETE FROM webhook_rejections WHERE received_at < ? ORDER BY received_at LIMIT ?', [before, limit])) as [
    { affectedRows: number },
  ];
  return res.affectedRows;
}

/**
 * A webhook trigger's recent inbound calls, newest first: the accepted ones from event_logs (each accepted
 * call is an event; idx_events_trigger_status_fired read newest first, one range per status, each stopping
 * after `limit` webhook events, merged) and
 * the rejected ones from webhook_rejections (idx_rejections_trigger_received, the same way), merged. Both
 * reads are bounded by `limit` and by the retention window (`keepFrom`). An accepted call's body size is
 * the stored payload's (its JSON as stored, which may differ from the bytes sent in whitespace).
 */
export async function webhookCalls(q: Q, triggerId: string, keepFrom: Date, limit: number, timeoutMs: number): Promise<WebhookCall[]> {
  // One after the other on the read's own connection (see listEvents).
  const accepted = (await mergedRanges(
    q,
    triggerRanges<{ trigger_id: string; execution_status?: ExecutionStatus }>({ trigger_id: triggerId }).map((r) =>
      q(q.raw('?? FORCE INDEX (??)', ['event_logs', 'idx_events_trigger_status_fired']))
        .select('id', 'fired_at', q.raw('LENGTH(payload) AS body_bytes'))
        .where({ trigger_id: triggerId, execution_status: r.execution_status! })
        .andWhere('fired_at', '>=', keepFrom)
        .andWhere('source', 'webhook')
        .orderBy([
          { column: 'fired_at', order: 'desc' },
          { column: 'id', order: 'desc' },
        ])
        .limit(limit),
    ),
    'desc',
    limit,
    0,
    timeoutMs,
  )) as Array<{ id: string; fired_at: Date; body_bytes: number | null }>;
  const [rejected] = (await q
    .raw(
      `SELECT received_at, http_status, code, reason, body_bytes, signature FROM webhook_rejections
         FORCE INDEX (idx_rejections_trigger_received)
        WHERE trigger_id = ? AND received_at >= ?
        ORDER BY received_at DESC, id DESC LIMIT ?`,
      [triggerId, keepFrom, limit],
    )
    .timeout(timeoutMs, { cancel: true })) as [Array<Omit<Rejection, 'trigger_id'>>];
  const calls: WebhookCall[] = [
    ...accepted.map((a) => ({
      received_at: a.fired_at,
      outcome: 'accepted' as const,
      http_status: 202,
      code: null,
      reason: null,
      body_bytes: Number(a.body_bytes ?? 0),
      signature: 'passed' as const,
      event_id: a.id,
    })),
    ...rejected.map((r) => ({
      received_at: r.received_at,
      outcome: 'rejected' as const,
      http_status: Number(r.http_status),
      code: r.code,
      reason: r.reason,
      body_bytes: Number(r.body_bytes),
      signature: r.signature,
      event_id: null,
    })),
  ];
  // Newest first; an accepted call before a rejection of the same millisecond (stable either way).
  calls.sort((a, b) => b.received_at.getTime() - a.received_at.getTime());
  return calls.slice(0, limit);
}
