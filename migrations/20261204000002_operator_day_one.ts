import type { Knex } from 'knex';

/*
 * The operator's day one: safe replay, retry controls, a log of inbound calls. Nothing here adds a
 * write to the ingest path: an accepted webhook call writes exactly what it wrote before.
 *
 * event_replays: one row per event that has been replayed, written only by a replay. Its primary key makes
 * "replayed at most once" atomic (two concurrent replays of one event: the second insert is a duplicate)
 * and answers "has this event been replayed, and as what" with one primary-key read. An index on
 * event_logs.replay_of would have answered it too, but would have cost every event an entry (NULL for all
 * but replays) on a 100M-row table, and still needed a lock for the uniqueness. The foreign key makes
 * retention's DELETE of an event take its row with it (as delivery_attempts does).
 *
 * event_logs.next_attempt_at: when the worker's next attempt of an event is due (NULL: none is waiting).
 * The worker sets it in the UPDATE it already makes of the row when it schedules a retry, so it costs no
 * extra write; it is also the retry's outbox row's available_at, which lets a manual "retry now" find that
 * row through idx_outbox_waiting (published, available_at) without an index on outbox.event_id. A nullable
 * column added last is an instant ALTER on MariaDB 10.3+ and MySQL 8.0 (no table rebuild).
 *
 * webhook_rejections: the webhook calls that were answered with an error (400 schema / malformed JSON,
 * 401 signature, 409 inactive, 413, 415), per trigger. Accepted calls are not written here: the event log
 * already holds them (read through idx_events_trigger_fired). Rows are written off the request path in
 * batches, trimmed to a fixed number per trigger and deleted by age with the events (see
 * src/db/webhook-requests.ts), so the table stays bounded at any rate of rejections.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE event_replays (
      event_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      replay_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      replays INT UNSIGNED NOT NULL DEFAULT 1,
      replayed_at DATETIME(3) NOT NULL,
      PRIMARY KEY (event_id),
      CONSTRAINT fk_replays_event FOREIGN KEY (event_id) REFERENCES event_logs(id) ON DELETE CASCADE
    ) ENGINE=InnoDB`);

  await knex.raw('ALTER TABLE event_logs ADD COLUMN next_attempt_at DATETIME(3) NULL');

  await knex.raw(`
    CREATE TABLE webhook_rejections (
      id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
      trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      received_at DATETIME(3) NOT NULL,
      http_status SMALLINT UNSIGNED NOT NULL,
      code VARCHAR(64) CHARACTER SET ascii NOT NULL,
      reason VARCHAR(500) NOT NULL,
      body_bytes INT UNSIGNED NOT NULL,
      signature ENUM('valid','invalid','missing','not_required','not_checked') NOT NULL,
      PRIMARY KEY (id),
      -- one trigger's log, newest first (and its trim: the rows past the newest N)
      KEY idx_rejections_trigger_received (trigger_id, received_at, id),
      -- retention by age
      KEY idx_rejections_received (received_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS webhook_rejections');
  await knex.raw('ALTER TABLE event_logs DROP COLUMN next_attempt_at');
  await knex.raw('DROP TABLE IF EXISTS event_replays');
}
