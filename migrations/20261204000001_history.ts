import type { Knex } from 'knex';

/*
 * History at scale: the cost of an event must not grow with the number of events kept.
 *
 * event_logs
 *  - retention_status goes: whether an event is active or archived follows from its age (fired_at), so
 *    retention never rewrites a row; it only deletes old ones, oldest first.
 *  - idx_events_retention_fired (retention_status, fired_at, id) goes with it: the default and archived
 *    views are ranges of idx_events_fired (fired_at, + the primary key id).
 *  - idx_events_status_fired and idx_events_trigger_status_fired bound the status filter, alone and with
 *    a trigger, to the rows they return (before, a failure filter read every row of the view).
 *
 * event_counts, trigger_event_counts: events per minute of fired_at and execution status (and per trigger
 * and source), kept by triggers on event_logs in the transaction that writes the event, so the overview's
 * chart and counts and a trigger's stats read a few thousand rollup rows instead of every event of their
 * window. A row's `slot` is the writing connection's id modulo 4: concurrent transactions mostly update
 * different rows, so the rollup adds no lock queue on a busy minute. Readers add the slots up; a slot can
 * go negative (an event counted as pending by one connection and moved on by another), its sum cannot.
 */

/*
 * The trigger bodies add a row to (or take it from) both rollups: its minute is fired_at cut to the
 * minute (CAST of a formatted DATETIME: the same in MariaDB and MySQL, no time zone involved).
 */
const COUNT_NEW = `
    INSERT INTO event_counts (minute, execution_status, slot, n)
      VALUES (CAST(DATE_FORMAT(NEW.fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME), NEW.execution_status, CONNECTION_ID() % 4, 1)
      ON DUPLICATE KEY UPDATE n = n + 1;
    IF NEW.trigger_id IS NOT NULL THEN
      INSERT INTO trigger_event_counts (trigger_id, minute, source, execution_status, slot, n)
        VALUES (NEW.trigger_id, CAST(DATE_FORMAT(NEW.fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME), NEW.source, NEW.execution_status,
                CONNECTION_ID() % 4, 1)
        ON DUPLICATE KEY UPDATE n = n + 1;
    END IF;`;

const UNCOUNT_OLD = `
    INSERT INTO event_counts (minute, execution_status, slot, n)
      VALUES (CAST(DATE_FORMAT(OLD.fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME), OLD.execution_status, CONNECTION_ID() % 4, -1)
      ON DUPLICATE KEY UPDATE n = n - 1;
    IF OLD.trigger_id IS NOT NULL THEN
      INSERT INTO trigger_event_counts (trigger_id, minute, source, execution_status, slot, n)
        VALUES (OLD.trigger_id, CAST(DATE_FORMAT(OLD.fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME), OLD.source, OLD.execution_status,
                CONNECTION_ID() % 4, -1)
        ON DUPLICATE KEY UPDATE n = n - 1;
    END IF;`;

const INSERT_TRIGGER = `CREATE TRIGGER trg_event_logs_count_insert AFTER INSERT ON event_logs FOR EACH ROW BEGIN ${COUNT_NEW} END`;

// Only a change of what is counted moves a count: delivery outcomes that keep the status (a retry's
// attempt count, latency) cost the trigger one comparison.
const UPDATE_TRIGGER = `CREATE TRIGGER trg_event_logs_count_update AFTER UPDATE ON event_logs FOR EACH ROW
  BEGIN
    IF NOT (NEW.execution_status <=> OLD.execution_status AND NEW.fired_at <=> OLD.fired_at
            AND NEW.trigger_id <=> OLD.trigger_id AND NEW.source <=> OLD.source) THEN
      ${UNCOUNT_OLD}
      ${COUNT_NEW}
    END IF;
  END`;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE event_counts (
      minute DATETIME NOT NULL,
      execution_status ENUM('pending','published','success','failure') NOT NULL,
      slot TINYINT UNSIGNED NOT NULL,
      n BIGINT NOT NULL,
      PRIMARY KEY (minute, execution_status, slot)
    ) ENGINE=InnoDB`);
  await knex.raw(`
    CREATE TABLE trigger_event_counts (
      trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      minute DATETIME NOT NULL,
      source ENUM('webhook','scheduler','manual-test','replay') NOT NULL,
      execution_status ENUM('pending','published','success','failure') NOT NULL,
      slot TINYINT UNSIGNED NOT NULL,
      n BIGINT NOT NULL,
      PRIMARY KEY (trigger_id, minute, source, execution_status, slot),
      -- retention of the rollup itself: delete by minute
      KEY idx_trigger_counts_minute (minute)
    ) ENGINE=InnoDB`);

  // Rows that exist before the triggers are counted once here (the table is locked for writes meanwhile,
  // so no event is counted twice or missed); from the triggers on, every write counts itself.
  await knex.raw('LOCK TABLES event_logs WRITE, event_counts WRITE, trigger_event_counts WRITE');
  try {
    await knex.raw(`
      INSERT INTO event_counts (minute, execution_status, slot, n)
      SELECT CAST(DATE_FORMAT(fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME) AS m, execution_status, 0, COUNT(*)
        FROM event_logs GROUP BY m, execution_status`);
    await knex.raw(`
      INSERT INTO trigger_event_counts (trigger_id, minute, source, execution_status, slot, n)
      SELECT trigger_id, CAST(DATE_FORMAT(fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME) AS m, source, execution_status, 0, COUNT(*)
        FROM event_logs WHERE trigger_id IS NOT NULL GROUP BY trigger_id, m, source, execution_status`);
    await knex.raw(INSERT_TRIGGER);
    await knex.raw(UPDATE_TRIGGER);
  } finally {
    await knex.raw('UNLOCK TABLES');
  }

  await knex.raw(`
    ALTER TABLE event_logs
      DROP KEY idx_events_retention_fired,
      DROP COLUMN retention_status,
      ADD KEY idx_events_status_fired (execution_status, fired_at, id),
      ADD KEY idx_events_trigger_status_fired (trigger_id, execution_status, fired_at, id)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE event_logs
      DROP KEY idx_events_trigger_status_fired,
      DROP KEY idx_events_status_fired,
      ADD COLUMN retention_status ENUM('active','archived') NOT NULL DEFAULT 'active' AFTER error_message,
      ADD KEY idx_events_retention_fired (retention_status, fired_at, id)`);
  await knex.raw('DROP TRIGGER IF EXISTS trg_event_logs_count_update');
  await knex.raw('DROP TRIGGER IF EXISTS trg_event_logs_count_insert');
  await knex.raw('DROP TABLE IF EXISTS trigger_event_counts');
  await knex.raw('DROP TABLE IF EXISTS event_counts');
}
