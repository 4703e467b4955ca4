import type { Knex } from 'knex';

/*
 * The dashboard in the operator's words.
 *
 * delivery_attempts.request_headers / response_headers: the headers the worker sent and the ones the endpoint
 * answered with, per attempt, as a JSON object of name -> value, secrets masked (signature, authorization,
 * cookies, API keys: see src/worker/headers.ts) and cut to ATTEMPT_HEADERS_MAX_CHARS by the writer, so a row
 * stays small whatever an endpoint sends. Nullable columns added last: an instant ALTER on MariaDB 10.3+
 * and MySQL 8.0 (no table rebuild); attempts recorded before have NULL (not recorded).
 *
 * idx_triggers_name: the events list's `trigger_name` filter resolves a name to its trigger's id with one
 * read of this index instead of a scan of triggers.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE delivery_attempts ADD COLUMN request_headers TEXT NULL, ADD COLUMN response_headers TEXT NULL');
  await knex.raw('ALTER TABLE triggers ADD KEY idx_triggers_name (name)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE triggers DROP KEY idx_triggers_name');
  await knex.raw('ALTER TABLE delivery_attempts DROP COLUMN response_headers, DROP COLUMN request_headers');
}
