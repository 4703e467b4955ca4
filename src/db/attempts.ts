import type { Knex } from 'knex';
import { errorText } from './errors';
import { parseJson } from './knex';

type Q = Knex | Knex.Transaction;

/** One HTTP delivery attempt, as the worker made it. */
export interface AttemptRow {
  event_id: string;
  attempt: number;
  started_at: Date;
  duration_ms: number;
  /** null when no response came back (network error, timeout, refused endpoint). */
  status_code: number | null;
  error: string | null;
  /** The first RESPONSE_BODY_MAX_BYTES of the response body. */
  response_body: Buffer | null;
  /** The headers sent, secrets masked and bounded by the worker (src/worker/headers.ts); null: not recorded. */
  request_headers?: Record<string, string> | null;
  /** The headers received (masked, bounded); null when no response came back, or not recorded. */
  response_headers?: Record<string, string> | null;
}

/** How much of a response body is kept per attempt. */
export const RESPONSE_BODY_MAX_BYTES = 4096;

/**
 * A Kafka batch's attempts in one multi-row INSERT, in the worker's outcome transaction (the caller has just
 * updated the event rows, so the foreign key's shared lock on each is already covered by its exclusive lock).
 */
export async function insertAttempts(trx: Knex.Transaction, rows: AttemptRow[]): Promise<void> {
  if (rows.length === 0) return;
  await trx('delivery_attempts').insert(
    rows.map((a) => ({
      ...a,
      duration_ms: Math.max(0, Math.round(a.duration_ms)),
      error: a.error === null ? null : errorText(a.error),
      response_body: a.response_body === null ? null : a.response_body.subarray(0, RESPONSE_BODY_MAX_BYTES),
      request_headers: a.request_headers ? JSON.stringify(a.request_headers) : null,
      response_headers: a.response_headers ? JSON.stringify(a.response_headers) : null,
    })),
  );
}

/** One event's attempts in attempt order: a range read of the primary key (event_id, attempt). */
export async function listAttempts(q: Q, eventId: string): Promise<AttemptRow[]> {
  const rows = (await q('delivery_attempts').where({ event_id: eventId }).orderBy('attempt')) as Array<Record<string, unknown>>;
  return rows.map((r) => ({
    event_id: r.event_id as string,
    attempt: Number(r.attempt),
    started_at: r.started_at as Date,
    duration_ms: Number(r.duration_ms),
    status_code: r.status_code === null ? null : Number(r.status_code),
    error: (r.error as string | null) ?? null,
    response_body: (r.response_body as Buffer | null) ?? null,
    request_headers: r.request_headers ? parseJson<Record<string, string>>(r.request_headers) : null,
    response_headers: r.response_headers ? parseJson<Record<string, string>>(r.response_headers) : null,
  }));
}
