import type { Knex } from 'knex';

/*
 * One per-trigger index of event_logs instead of two (measured in docs/history.md).
 *
 * idx_events_trigger_fired (trigger_id, fired_at, id) goes. A trigger's events without a status filter
 * are read from idx_events_trigger_status_fired (trigger_id, execution_status, fired_at, id) as one range
 * per status (four), each stopping after the page, merged on (fired_at, id): still a bounded read, a few
 * times a page of index entries at most.
 *
 * Why: each per-trigger B-tree keeps a hot page per trigger at the end of every trigger's range, and on a
 * history many times the buffer pool its other pages are cold. An insert that splits such a page reads
 * its right neighbour (the next trigger's oldest page) from disk, and retention's oldest-first DELETE
 * takes an entry from the oldest page of every trigger's range in every batch (and purge does once more
 * afterwards): on a 500k-event history the two per-trigger indexes took 0.07 of the 0.11 buffer-pool reads
 * per deleted event, half each. One index fewer halves that, and every event costs one index entry less.
 *
 * Dropping an index is an in-place, metadata-only change (no table copy, rows untouched): old rows, of any
 * id format, are read through the remaining index as before. `down` builds it again (online).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE event_logs DROP KEY idx_events_trigger_fired');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE event_logs ADD KEY idx_events_trigger_fired (trigger_id, fired_at, id), ALGORITHM=INPLACE, LOCK=NONE');
}
