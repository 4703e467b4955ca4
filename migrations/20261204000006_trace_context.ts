import type { Knex } from 'knex';

/*
 * event_logs.trace_parent: the event's W3C trace context (docs/tracing.md), a version 00 `traceparent`
 * (55 ASCII characters): the trace a webhook call brought, or the trace the platform started for a
 * scheduled firing, test run or replay, with the span id of the step that logged the event. The API shows
 * its trace id; the worker continues the trace from it when a message carries no header.
 *
 * A nullable column added last with ALGORITHM=INSTANT: a metadata-only change on MariaDB 10.3+ (10.11 here)
 * and MySQL 8.0, no table rebuild and no row touched, however big event_logs is; naming the algorithm makes
 * the statement fail rather than silently copy the table if a server could not do it instantly. Events
 * logged before have NULL (no trace; the API shows trace_id null). No index: nothing looks events up by trace.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE event_logs ADD COLUMN trace_parent CHAR(55) CHARACTER SET ascii COLLATE ascii_bin NULL, ALGORITHM=INSTANT');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE event_logs DROP COLUMN trace_parent');
}
