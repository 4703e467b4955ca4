import type { Knex } from 'knex';
import { eventMessage, toKafka } from '../kafka/message';
import { insertEvents, type EventInsert } from './events';
import { insertOutbox, type OutboxInsert } from './outbox';

/**
 * The transactional outbox in one call: event logs and their outbox rows, inside the caller's
 * transaction. An event whose id already exists is not logged again and gets no second outbox row; an
 * event that is already on Kafka (`published_at` set: the relay's direct fire path) gets none either.
 * Returns the ids that were new.
 */
export async function recordEvents(trx: Knex.Transaction, events: EventInsert[], topic: string, now: Date): Promise<Set<string>> {
  const inserted = await insertEvents(trx, events, now);
  await insertOutbox(
    trx,
    outboxRowsOf(
      events.filter((e) => inserted.has(e.id)),
      topic,
      now,
    ),
    now,
  );
  return inserted;
}

/** The outbox rows of `events` (those not on Kafka yet), ready at `now`. */
export function outboxRowsOf(events: EventInsert[], topic: string, now: Date): OutboxInsert[] {
  return events
    .filter((e) => !e.published_at)
    .map((e) => ({ event_id: e.id, message: toKafka(topic, eventMessage(e)), available_at: now }));
}
