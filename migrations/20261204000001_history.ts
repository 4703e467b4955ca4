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
 * event_counts, trigger_event_counts: per minute of fired_at, the events fired, and of those the ones that
 * ended in success and in failure (trigger_event_counts per trigger and source too). The triggers on
 * event_logs keep them in the transaction that writes the event, so the overview's chart and counts and a
 * trigger's stats read a few thousand rollup rows instead of every event of their window. Only a firing
 * and an outcome move a count: the passage pending → published (the relay's publish stamp) and a retry's
 * bookkeeping cost the update trigger one comparison each. Pending events are counted from
 * idx_events_status_fired when read (there are few: the ones not yet on Kafka); published = fired − the rest.
 * A row's `slot` is the writing connection's id modulo 4: concurrent transactions mostly update different
 * rows, so the rollup adds no lock queue on a busy minute. Readers add the slots up; a slot can go
 * negative (a count taken back by another connection than the one that added it), their sum cannot.
 */

const MINUTE_OF = (row: 'NEW' | 'OLD') => `CAST(DATE_FORMAT(${row}.fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME)`;

/** SQL that adds `delta` to the `kind` count of the row's minute (and trigger and source) in both rollups. */
function count(row: 'NEW' | 'OLD', kind: string, delta: '1' | '-1'): string {
  return `
      INSERT INTO event_counts (minute, kind, slot, n) VALUES (${MINUTE_OF(row)}, ${kind}, CONNECTION_ID() % 4, ${delta})
        ON DUPLICATE KEY UPDATE n = n + (${delta});
      IF ${row}.trigger_id IS NOT NULL THEN
        INSERT INTO trigger_event_counts (trigger_id, minute, source, kind, slot, n)
          VALUES (${row}.trigger_id, ${MINUTE_OF(row)}, ${row}.source, ${kind}, CONNECTION_ID() % 4, ${delta})
          ON DUPLICATE KEY UPDATE n = n + (${delta});
      END IF;`;
}

/** The row's outcome count, if it has ended. */
function countOutcome(row: 'NEW' | 'OLD', delta: '1' | '-1'): string {
  return `
      IF ${row}.execution_status IN ('success', 'failure') THEN ${count(row, `${row}.execution_status`, delta)}
      END IF;`;
}

const INSERT_TRIGGER = `CREATE TRIGGER trg_event_logs_count_insert AFTER INSERT ON event_logs FOR EACH ROW
  BEGIN
    ${count('NEW', "'fired'", '1')}
    ${countOutcome('NEW', '1')}
  END`;

const UPDATE_TRIGGER = `CREATE TRIGGER trg_event_logs_count_update AFTER UPDATE ON event_logs FOR EACH ROW
  BEGIN
    IF NOT (NEW.fired_at <=> OLD.fired_at AND NEW.trigger_id <=> OLD.trigger_id AND NEW.source <=> OLD.source) THEN
      ${count('OLD', "'fired'", '-1')}
      ${countOutcome('OLD', '-1')}
      ${count('NEW', "'fired'", '1')}
      ${countOutcome('NEW', '1')}
    ELSEIF NOT (NEW.execution_status <=> OLD.execution_status) THEN
      ${countOutcome('OLD', '-1')}
      ${countOutcome('NEW', '1')}
    END IF;
  END`;

/** A MariaDB Galera node (wsrep_on=ON). MySQL and a plain MariaDB have no such variable or have it OFF. */
async function wsrepOn(knex: Knex): Promise<boolean> {
  const [rows] = (await knex.raw("SHOW VARIABLES LIKE 'wsrep_on'")) as unknown as [Array<{ Value: string }>];
  return rows[0]?.Value === 'ON';
}

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE event_counts (
      minute DATETIME NOT NULL,
      kind ENUM('fired','success','failure') NOT NULL,
      slot TINYINT UNSIGNED NOT NULL,
      n BIGINT NOT NULL,
      PRIMARY KEY (minute, kind, slot)
    ) ENGINE=InnoDB`);
  await knex.raw(`
    CREATE TABLE trigger_event_counts (
      trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
      minute DATETIME NOT NULL,
      source ENUM('webhook','scheduler','manual-test','replay') NOT NULL,
      kind ENUM('fired','success','failure') NOT NULL,
      slot TINYINT UNSIGNED NOT NULL,
      n BIGINT NOT NULL,
      PRIMARY KEY (trigger_id, minute, source, kind, slot),
      -- retention of the rollup itself: delete by minute
      KEY idx_trigger_counts_minute (minute)
    ) ENGINE=InnoDB`);

  // Rows that exist before the triggers are counted once here (the table is locked for writes meanwhile,
  // so no event is counted twice or missed); from the triggers on, every write counts itself.
  // Galera does not support LOCK TABLES (a table lock is local to one node, not replicated; see
  // docs/topology.md). There the backfill runs without it: exact on a new database (nothing to count) and
  // on an upgrade run in a quiet window, as docs/history.md asks for anyway; an event written on another
  // node meanwhile could be counted twice or missed in the rollups (the events themselves are not touched).
  const lock = !(await wsrepOn(knex));
  if (lock) await knex.raw('LOCK TABLES event_logs WRITE, event_counts WRITE, trigger_event_counts WRITE');
  try {
    // One statement per kind: under LOCK TABLES a statement may name a locked table only once.
    await knex.raw(`
      INSERT INTO event_counts (minute, kind, slot, n)
      SELECT CAST(DATE_FORMAT(fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME) AS m, 'fired', 0, COUNT(*) FROM event_logs GROUP BY m`);
    await knex.raw(`
      INSERT INTO event_counts (minute, kind, slot, n)
      SELECT CAST(DATE_FORMAT(fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME) AS m, execution_status, 0, COUNT(*) FROM event_logs
       WHERE execution_status IN ('success', 'failure') GROUP BY m, execution_status`);
    await knex.raw(`
      INSERT INTO trigger_event_counts (trigger_id, minute, source, kind, slot, n)
      SELECT trigger_id, CAST(DATE_FORMAT(fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME) AS m, source, 'fired', 0, COUNT(*)
        FROM event_logs WHERE trigger_id IS NOT NULL GROUP BY trigger_id, m, source`);
    await knex.raw(`
      INSERT INTO trigger_event_counts (trigger_id, minute, source, kind, slot, n)
      SELECT trigger_id, CAST(DATE_FORMAT(fired_at, '%Y-%m-%d %H:%i:00') AS DATETIME) AS m, source, execution_status, 0, COUNT(*)
        FROM event_logs WHERE trigger_id IS NOT NULL AND execution_status IN ('success', 'failure')
       GROUP BY trigger_id, m, source, execution_status`);
    await knex.raw(INSERT_TRIGGER);
    await knex.raw(UPDATE_TRIGGER);
  } finally {
    if (lock) await knex.raw('UNLOCK TABLES');
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
