import type { Knex } from 'knex';

/*
 * The event_logs insert trigger counts a row in the rollups only when the writing session has not said it
 * counts its rows itself (the user variable @etp_events_counted is unset).
 *
 * Why: the trigger runs two upserts per inserted row (event_counts and trigger_event_counts). On a batch of
 * 500 that took more of MariaDB's CPU than the INSERT itself, measured on this machine: 32–36 µs per event
 * with the trigger, 13–14 µs without it, 22–23 µs without it plus one grouped upsert per rollup for the
 * batch. The relay's fire batch now sets the variable around its INSERT and adds the batch's counts in
 * those grouped upserts (insertCountedEventsStatements in src/db/events.ts). Every other writer (the API,
 * the webhook group commit, a replay, a hand-written INSERT) leaves it unset and is counted by the trigger
 * as before.
 *
 * The body is the trigger's own, read back and wrapped, so this migration cannot drift from the one that
 * created it. The swap is atomic for writers: on a single server under a write lock of event_logs (no
 * insert runs between the DROP and the CREATE), on MariaDB Galera (where LOCK TABLES is not replicated)
 * by CREATE OR REPLACE TRIGGER.
 */

const NAME = 'trg_event_logs_count_insert';
const GATE_OPEN = 'BEGIN IF @etp_events_counted IS NULL THEN ';
const GATE_CLOSE = '; END IF; END';

async function wsrepOn(knex: Knex): Promise<boolean> {
  const [rows] = (await knex.raw("SHOW VARIABLES LIKE 'wsrep_on'")) as unknown as [Array<{ Value: string }>];
  return rows[0]?.Value === 'ON';
}

async function body(knex: Knex): Promise<string> {
  const [rows] = (await knex.raw(
    'SELECT ACTION_STATEMENT AS body FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = ?',
    [NAME],
  )) as unknown as [Array<{ body: string }>];
  if (!rows[0]) throw new Error(`trigger ${NAME} is missing: run the earlier migrations first`);
  return rows[0].body;
}

async function replace(knex: Knex, newBody: string): Promise<void> {
  const create = (orReplace: boolean) =>
    `CREATE ${orReplace ? 'OR REPLACE ' : ''}TRIGGER ${NAME} AFTER INSERT ON event_logs FOR EACH ROW ${newBody}`;
  if (await wsrepOn(knex)) {
    await knex.raw(create(true));
    return;
  }
  await knex.raw('LOCK TABLES event_logs WRITE, event_counts WRITE, trigger_event_counts WRITE');
  try {
    await knex.raw('DROP TRIGGER ??', [NAME]);
    await knex.raw(create(false));
  } finally {
    await knex.raw('UNLOCK TABLES');
  }
}

export async function up(knex: Knex): Promise<void> {
  const old = await body(knex);
  if (old.startsWith(GATE_OPEN)) return;
  await replace(knex, `${GATE_OPEN}${old}${GATE_CLOSE}`);
}

export async function down(knex: Knex): Promise<void> {
  const gated = await body(knex);
  if (!gated.startsWith(GATE_OPEN) || !gated.endsWith(GATE_CLOSE)) return;
  await replace(knex, gated.slice(GATE_OPEN.length, gated.length - GATE_CLOSE.length));
}
