import type { Knex } from 'knex';

/*
 * The operator's toolkit: delivery history, tags, and the nominal time of a jittered occurrence.
 */
export async function up(knex: Knex): Promise<void> {
  // One row per HTTP attempt, written by the worker in the transaction that records the attempt's outcome.
  // The primary key is the read path (one event's attempts, in order) and makes an attempt unique; the
  // foreign key makes retention's DELETE of an event take its attempts with it (archived events keep them).
  await knex.raw(`
    CREATE TABLE delivery_attempts (
      event_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      attempt INT UNSIGNED NOT NULL,
      started_at DATETIME(3) NOT NULL,
      duration_ms INT UNSIGNED NOT NULL,
      status_code SMALLINT UNSIGNED NULL,
      error TEXT NULL,
      response_body BLOB NULL,
      PRIMARY KEY (event_id, attempt),
      CONSTRAINT fk_attempts_event FOREIGN KEY (event_id) REFERENCES event_logs(id) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);

  // Tags as rows, not a JSON column: "triggers carrying tags a and b" is a join that starts from
  // idx_tags_tag (tag, trigger_id) and reaches each trigger by primary key, with no scan of triggers.
  await knex.raw(`
    CREATE TABLE trigger_tags (
      trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      tag VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      PRIMARY KEY (trigger_id, tag),
      KEY idx_tags_tag (tag, trigger_id),
      CONSTRAINT fk_tags_trigger FOREIGN KEY (trigger_id) REFERENCES triggers(id) ON DELETE CASCADE
    ) ENGINE=InnoDB`);

  // With jitter, fire_at (when the relay claims the row) differs from the occurrence's nominal time, which
  // the event's scheduled_for and its name-based id are derived from. NULL means "the same as fire_at"
  // (rows written before this column, and occurrences without jitter). uq_schedule_occurrence on
  // (trigger_id, fire_at) stays unique per occurrence: a jittered fire_at always falls before the next
  // nominal occurrence (see jitteredFireAt in src/triggers/schedule.ts), so two occurrences never share one.
  await knex.raw('ALTER TABLE trigger_schedules ADD COLUMN scheduled_for DATETIME(3) NULL AFTER fire_at');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE trigger_schedules DROP COLUMN scheduled_for');
  await knex.raw('DROP TABLE IF EXISTS trigger_tags');
  await knex.raw('DROP TABLE IF EXISTS delivery_attempts');
}
