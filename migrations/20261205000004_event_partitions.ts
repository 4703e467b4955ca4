import type { Knex } from 'knex';

/*
 * event_logs, delivery_attempts and event_replays become RANGE COLUMNS partitions of the event id, in slices of
 * four hours of the id's time. Event ids are time-ordered (the UUID's first 48 bits are a millisecond time),
 * so an id's first 12 hex digits place it in time; a partition's bound is that prefix ('019ae2c0-7a00').
 * Retention then retires a whole slice at a time (src/db/partitions.ts): the slice's rows are swapped out to a
 * table of their own (EXCHANGE PARTITION, a metadata change), the rare younger row in it is put back, the
 * emptied slice is merged into the partition below it, and the swapped-out table is dropped. That costs the
 * same at any size of history, where deleting row by row cost ~20 s per hour of history at 1,000 events/s
 * and grew with the table.
 *
 * What partitioning asks for:
 * - Every unique key must hold the partitioning column: the primary keys are (id) and (event_id, …). ✓
 * - InnoDB refuses foreign keys on partitioned tables, so fk_attempts_event and fk_replays_event go. An
 *   event's attempts and its replay row share its id, so they sit in the same slice of their own tables and
 *   are retired with it; rows deleted one by one (see deleteBefore) take their attempts and replay row in
 *   the same transaction.
 * - An ordered read across partitions merges one index range per partition and needs the whole order in the
 *   index: idx_events_fired becomes (fired_at, id) (InnoDB appended the id before, implicitly).
 *
 * The layout: p_late below the oldest slice (rows whose id time is older than every slice: occurrences
 * fired days late, and rows from before this layout), the four-hour slices p<yyyymmddhh of the slice's
 * start, UTC>, p_later up to '02' (ids of times beyond the newest slice, until 2039) and p_legacy above it
 * (random version 4 ids of old rows). The relays' sweep creates slices ahead and retires old ones; rows
 * that no slice retires are deleted one by one once they are past the window and a slice's width.
 *
 * On a table that holds history this is a copy of each table (ALTER … PARTITION BY), with writes blocked
 * while it runs: run it in a quiet window (`node dist/main.js migrate`, MIGRATE_ON_START=false on the roles).
 */

const SLICE_MS = 4 * 3600_000;
/** Slices below now at migration time, so existing history lands in slices too. */
const SLICES_BEHIND = 14;
const SLICES_AHEAD = 3;

function bound(ms: number): string {
  const h = ms.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8)}`;
}

function sliceName(startMs: number): string {
  return `p${new Date(startMs).toISOString().slice(0, 13).replace(/[-T]/g, '')}`;
}

/** Partitions `table` by its id column `col` in slices around `now` (names and bounds as bindings). */
async function partition(knex: Knex, table: string, col: string, now: number, extra = ''): Promise<void> {
  const first = Math.floor(now / SLICE_MS) * SLICE_MS - SLICES_BEHIND * SLICE_MS;
  const parts = ['PARTITION p_late VALUES LESS THAN (?)'];
  const bindings: string[] = [table, col, bound(first)];
  for (let t = first; t < Math.floor(now / SLICE_MS) * SLICE_MS + (SLICES_AHEAD + 1) * SLICE_MS; t += SLICE_MS) {
    parts.push('PARTITION ?? VALUES LESS THAN (?)');
    bindings.push(sliceName(t), bound(t + SLICE_MS));
  }
  parts.push("PARTITION p_later VALUES LESS THAN ('02')", 'PARTITION p_legacy VALUES LESS THAN (MAXVALUE)');
  const sql = ['ALTER TABLE ??', extra, 'PARTITION BY RANGE COLUMNS(??) (', parts.join(', '), ')'].join(' ');
  await knex.raw(sql, bindings);
}

export async function up(knex: Knex): Promise<void> {
  const now = Date.now();
  await knex.raw('ALTER TABLE delivery_attempts DROP FOREIGN KEY fk_attempts_event');
  await knex.raw('ALTER TABLE event_replays DROP FOREIGN KEY fk_replays_event');
  await partition(knex, 'event_logs', 'id', now, 'DROP INDEX idx_events_fired, ADD INDEX idx_events_fired (fired_at, id)');
  await partition(knex, 'delivery_attempts', 'event_id', now);
  await partition(knex, 'event_replays', 'event_id', now);
  // One row per maintenance job; a relay holds it for a short lease while it changes partitions, so two
  // relays never exchange the same slice. Times are the database's clock.
  await knex.raw(`
    CREATE TABLE maintenance_leases (
      name VARCHAR(64) CHARACTER SET ascii NOT NULL,
      owner VARCHAR(64) NULL,
      expires_at DATETIME(3) NOT NULL,
      PRIMARY KEY (name)
    ) ENGINE=InnoDB`);
  await knex.raw("INSERT INTO maintenance_leases (name, owner, expires_at) VALUES ('partitions', NULL, '1970-01-01 00:00:01')");
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS maintenance_leases');
  for (const t of ['event_logs_retiring', 'delivery_attempts_retiring', 'event_replays_retiring'])
    await knex.raw('DROP TABLE IF EXISTS ??', [t]);
  await knex.raw('ALTER TABLE event_replays REMOVE PARTITIONING');
  await knex.raw('ALTER TABLE delivery_attempts REMOVE PARTITIONING');
  await knex.raw('ALTER TABLE event_logs REMOVE PARTITIONING');
  await knex.raw('ALTER TABLE event_logs DROP INDEX idx_events_fired, ADD INDEX idx_events_fired (fired_at)');
  // Rows whose event is gone (retired slices never leave them, but a down after a crash might) would stop the keys.
  await knex.raw('DELETE a FROM delivery_attempts a LEFT JOIN event_logs e ON e.id = a.event_id WHERE e.id IS NULL');
  await knex.raw('DELETE r FROM event_replays r LEFT JOIN event_logs e ON e.id = r.event_id WHERE e.id IS NULL');
  await knex.raw(
    'ALTER TABLE delivery_attempts ADD CONSTRAINT fk_attempts_event FOREIGN KEY (event_id) REFERENCES event_logs(id) ON DELETE CASCADE',
  );
  await knex.raw(
    'ALTER TABLE event_replays ADD CONSTRAINT fk_replays_event FOREIGN KEY (event_id) REFERENCES event_logs(id) ON DELETE CASCADE',
  );
}
