import type { Knex } from 'knex';

/*
 * Per-trigger delivery flow control, shared by every worker process (docs/delivery-flow.md).
 *
 *  - delivery_flow: one row per trigger that has a rate limit or a concurrency limit, created by the first
 *    worker that admits one of its deliveries. The row is the lock that serialises admission for that
 *    trigger (SELECT … FOR UPDATE), and `tat_us` is the rate limiter's state: the theoretical arrival time of
 *    the next delivery (GCRA), in microseconds of the database's clock, so hosts with different clocks agree.
 *  - delivery_slots: one row per request in flight to a concurrency-limited trigger's endpoint. A slot is a
 *    lease: it ends when the worker records the outcome, or at `expires_at` (the request's own timeout plus
 *    a margin) if that worker died, so a killed worker cannot hold a slot for ever.
 *
 * Ordered delivery keeps no state of its own: the order is read from event_logs.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE delivery_flow (
      trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      tat_us BIGINT UNSIGNED NOT NULL DEFAULT 0,
      PRIMARY KEY (trigger_id)
    ) ENGINE=InnoDB`);
  await knex.raw(`
    CREATE TABLE delivery_slots (
      trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      event_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      expires_at DATETIME(3) NOT NULL,
      -- counting a trigger's live slots and releasing a batch's slots are both ranges of this key
      PRIMARY KEY (trigger_id, event_id)
    ) ENGINE=InnoDB`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS delivery_slots');
  await knex.raw('DROP TABLE IF EXISTS delivery_flow');
}
