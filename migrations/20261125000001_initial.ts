import type { Knex } from 'knex';

/*
 * The whole data model of the design page. Raw DDL rather than the schema builder, because the
 * indexes are the point: each one matches a claim or list query (see the comment on it), and the
 * column types (DATETIME(3) in UTC, ascii ids) are chosen for those queries.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE triggers (
      id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      name VARCHAR(255) NOT NULL,
      type ENUM('webhook','time_scheduled','cron_scheduled','interval_scheduled') NOT NULL,
      status ENUM('active','inactive') NOT NULL DEFAULT 'active',
      config LONGTEXT NOT NULL,
      version INT UNSIGNED NOT NULL DEFAULT 1,
      created_at DATETIME(3) NOT NULL,
      updated_at DATETIME(3) NOT NULL,
      PRIMARY KEY (id),
      -- list view: newest first, optionally filtered by type and/or status
      KEY idx_triggers_created (created_at, id),
      KEY idx_triggers_type_status_created (type, status, created_at, id),
      KEY idx_triggers_status_created (status, created_at, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);

  await knex.raw(`
    CREATE TABLE trigger_schedules (
      id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
      trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      fire_at DATETIME(3) NOT NULL,
      status ENUM('pending','processing','completed','cancelled') NOT NULL DEFAULT 'pending',
      attempt_count INT UNSIGNED NOT NULL DEFAULT 0,
      last_attempt_at DATETIME(3) NULL,
      last_error TEXT NULL,
      created_at DATETIME(3) NOT NULL,
      updated_at DATETIME(3) NOT NULL,
      PRIMARY KEY (id),
      -- computing the same next occurrence twice inserts it once
      UNIQUE KEY uq_schedule_occurrence (trigger_id, fire_at),
      -- the relay's claim: WHERE status='pending' AND fire_at <= ? ORDER BY fire_at (no filesort)
      KEY idx_schedules_claim (status, fire_at),
      CONSTRAINT fk_schedules_trigger FOREIGN KEY (trigger_id) REFERENCES triggers(id) ON DELETE CASCADE
    ) ENGINE=InnoDB`);

  // trigger_id is kept as a plain value, with no foreign key: deleting a trigger leaves its logs listable
  // by the old id, and inserts (the hottest write) take no shared lock on the trigger row.
  await knex.raw(`
    CREATE TABLE event_logs (
      id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
      trigger_type ENUM('webhook','time_scheduled','cron_scheduled','interval_scheduled') NOT NULL,
      source ENUM('webhook','scheduler','manual-test','replay') NOT NULL,
      is_test_run TINYINT(1) NOT NULL DEFAULT 0,
      payload LONGTEXT NULL,
      delivery_config LONGTEXT NULL,
      replay_of CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
      scheduled_for DATETIME(3) NULL,
      fired_at DATETIME(3) NOT NULL,
      published_at DATETIME(3) NULL,
      execution_status ENUM('pending','published','success','failure') NOT NULL DEFAULT 'pending',
      attempts INT UNSIGNED NOT NULL DEFAULT 0,
      response_status SMALLINT UNSIGNED NULL,
      latency_ms INT UNSIGNED NULL,
      error_message TEXT NULL,
      retention_status ENUM('active','archived') NOT NULL DEFAULT 'active',
      created_at DATETIME(3) NOT NULL,
      updated_at DATETIME(3) NOT NULL,
      PRIMARY KEY (id),
      -- default view and archived view, newest first, keyset paging on (fired_at, id)
      KEY idx_events_retention_fired (retention_status, fired_at, id),
      -- one trigger's events, newest first; also its 48 h stats
      KEY idx_events_trigger_fired (trigger_id, fired_at, id),
      -- retention: archive/delete by age
      KEY idx_events_fired (fired_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`);

  await knex.raw(`
    CREATE TABLE outbox (
      id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
      event_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      topic VARCHAR(249) CHARACTER SET ascii NOT NULL,
      msg_key VARCHAR(255) NULL,
      value MEDIUMBLOB NOT NULL,
      headers TEXT NULL,
      available_at DATETIME(3) NOT NULL,
      attempts INT UNSIGNED NOT NULL DEFAULT 0,
      last_error TEXT NULL,
      published TINYINT(1) NOT NULL DEFAULT 0,
      published_at DATETIME(3) NULL,
      created_at DATETIME(3) NOT NULL,
      PRIMARY KEY (id),
      -- the relay's claim: WHERE published=0 AND available_at <= ? ORDER BY id; cleanup: published=1
      KEY idx_outbox_claim (published, id)
    ) ENGINE=InnoDB`);

  // Two uses, one shape: the worker's handled (event id, attempt) pairs, and webhook Idempotency-Key answers.
  await knex.raw(`
    CREATE TABLE idempotency_keys (
      scope VARCHAR(64) CHARACTER SET ascii NOT NULL,
      idem_key VARCHAR(255) NOT NULL,
      response LONGTEXT NULL,
      created_at DATETIME(3) NOT NULL,
      PRIMARY KEY (scope, idem_key),
      KEY idx_idem_created (created_at)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`);
}

export async function down(knex: Knex): Promise<void> {
  for (const t of ['idempotency_keys', 'outbox', 'event_logs', 'trigger_schedules', 'triggers']) {
    await knex.raw('DROP TABLE IF EXISTS ??', [t]);
  }
}
