import type { Knex } from 'knex';

/*
 * event_hours: all events per hour of fired_at, fired and of those the ones that ended in success and in
 * failure. It is to event_counts what trigger_event_hours is to trigger_event_counts: nothing writes it per
 * event; the relay's sweep folds the minute rows of event_counts into it once they are an hour or more older
 * than the active window (foldCountsBefore in src/db/events.ts) and deletes the minute rows it folded. A
 * minute row written later in a folded hour (a late delivery outcome) is folded by a later sweep; until then
 * readers add it to the hour's row. The sum of both tables stays equal to the events, at every moment.
 *
 * Why: the overview's 48 h delivery counts and the etp_event_logs gauge summed every minute row of the
 * retention window: 2,880 minutes × 3 kinds × 4 writer slots, about 35k rows, on each computation. With
 * the old minutes folded they read 48 hour rows per kind and the last three hours' minute rows.
 */

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE event_hours (
      hour DATETIME NOT NULL,
      kind ENUM('fired','success','failure') NOT NULL,
      n BIGINT NOT NULL,
      PRIMARY KEY (hour, kind)
    ) ENGINE=InnoDB`);
}

export async function down(knex: Knex): Promise<void> {
  // The folded hours go back to minute rows: each hour's counts as one row at its first minute.
  await knex.raw(`
    INSERT INTO event_counts (minute, kind, slot, n)
    SELECT hour, kind, 0, n FROM event_hours
    ON DUPLICATE KEY UPDATE n = event_counts.n + VALUES(n)`);
  await knex.raw('DROP TABLE IF EXISTS event_hours');
}
