import type { Knex } from 'knex';

/*
 * fire_lags: the fire lags of the last hour, one row per fire batch (the lags of its events in ms, in one
 * text column), for the overview's fire-lag percentiles.
 *
 * Why: a fired schedule row used to be kept as a `completed` row until the retention window had passed,
 * and the overview read the lag of the newest ones (fire_at, the planned instant, to last_attempt_at, the
 * commit that fired it). Marking each claimed row completed moved its entry in idx_schedules_claim and
 * rewrote the row: 17.7 µs of server CPU per fired event, measured (bench/fire-cost.bench.ts), against 8.0 µs
 * to delete it and write this table's row for the batch; and the sweep deleted it again two days later, from
 * pages gone cold. The fire batch now deletes the rows it fired and writes one row here for the whole
 * batch; the sweep deletes these rows once they are past the overview's lag window. Completed rows written
 * before this migration are left to the sweep, which deletes them as before.
 */

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE fire_lags (
      id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
      fired_at DATETIME(3) NOT NULL,
      lags_ms MEDIUMTEXT CHARACTER SET ascii NOT NULL,
      PRIMARY KEY (id),
      KEY idx_fire_lags_fired (fired_at)
    ) ENGINE=InnoDB`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS fire_lags');
}
