import type { Knex } from 'knex';

/*
 * A one-shot trigger (time_scheduled) is no longer counted per trigger: the event_logs triggers leave its
 * events out of trigger_event_counts (event_counts, the platform's totals, still counts them), and so does the
 * relay's fire batch (insertCountedEventsStatements). Its stats and its event list's totals are counted from its
 * own rows on idx_events_trigger_status_fired instead (countedPerTrigger in src/db/events.ts).
 *
 * Why: the per-trigger rollups exist so that a busy trigger's counts cost the same at any number of events.
 * A one-shot trigger fires once; its events are that occurrence and whatever an operator adds by hand (test
 * runs, replays), a few index entries to count. Yet each of its events cost a trigger_event_counts row of its
 * own (a new (trigger, minute) key every time): 9.2 µs of MariaDB's CPU in the fire batch (bench/fire-cost),
 * another row when its delivery ends, and later the sweep's fold of those minute rows into hours.
 *
 * A trigger's type cannot change, so all of a trigger's events are counted one way or the other; the rows
 * written for one-shot triggers before this migration are left to the fold and to retention (readers no
 * longer look at them). The bodies are the triggers' own, read back and edited, so this migration cannot drift
 * from the ones that created them; the swap is done as in 20261205000002_counted_by_writer.ts.
 */

const TRIGGERS = [
  { name: 'trg_event_logs_count_insert', timing: 'AFTER INSERT' },
  { name: 'trg_event_logs_count_update', timing: 'AFTER UPDATE' },
];

/** The per-trigger count's condition, as 20261204000001_history.ts wrote it, and with one-shot triggers left out. */
const counted = (row: 'NEW' | 'OLD') => `IF ${row}.trigger_id IS NOT NULL THEN`;
const countedUnlessOneShot = (row: 'NEW' | 'OLD') => `IF ${row}.trigger_id IS NOT NULL AND ${row}.trigger_type <> 'time_scheduled' THEN`;

async function wsrepOn(knex: Knex): Promise<boolean> {
  const [rows] = (await knex.raw("SHOW VARIABLES LIKE 'wsrep_on'")) as unknown as [Array<{ Value: string }>];
  return rows[0]?.Value === 'ON';
}

async function body(knex: Knex, name: string): Promise<string> {
  const [rows] = (await knex.raw(
    'SELECT ACTION_STATEMENT AS body FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = ?',
    [name],
  )) as unknown as [Array<{ body: string }>];
  if (!rows[0]) throw new Error(`trigger ${name} is missing: run the earlier migrations first`);
  return rows[0].body;
}

/** Each trigger's body with every `from(row)` replaced by `to(row)`; a body that has none of them is left as it is. */
async function rewrite(knex: Knex, from: typeof counted, to: typeof counted): Promise<void> {
  const bodies: Array<{ name: string; timing: string; text: string }> = [];
  for (const t of TRIGGERS) {
    const old = await body(knex, t.name);
    const text = old.split(from('NEW')).join(to('NEW')).split(from('OLD')).join(to('OLD'));
    if (text !== old) bodies.push({ ...t, text });
  }
  if (bodies.length === 0) return;
  const create = (b: (typeof bodies)[number], orReplace: boolean) =>
    `CREATE ${orReplace ? 'OR REPLACE ' : ''}TRIGGER ${b.name} ${b.timing} ON event_logs FOR EACH ROW ${b.text}`;
  if (await wsrepOn(knex)) {
    for (const b of bodies) await knex.raw(create(b, true));
    return;
  }
  await knex.raw('LOCK TABLES event_logs WRITE, event_counts WRITE, trigger_event_counts WRITE');
  try {
    for (const b of bodies) {
      await knex.raw('DROP TRIGGER ??', [b.name]);
      await knex.raw(create(b, false));
    }
  } finally {
    await knex.raw('UNLOCK TABLES');
  }
}

export async function up(knex: Knex): Promise<void> {
  await rewrite(knex, counted, countedUnlessOneShot);
}

export async function down(knex: Knex): Promise<void> {
  await rewrite(knex, countedUnlessOneShot, counted);
}
