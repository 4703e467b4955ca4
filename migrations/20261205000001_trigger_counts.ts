import type { Knex } from 'knex';

/*
 * trigger_counts: how many triggers there are per (type, status), kept by AFTER INSERT / UPDATE / DELETE
 * triggers on `triggers` in the writing transaction, for the overview and the etp_triggers gauge. Counting
 * the rows instead reads every entry of idx_triggers_type_status_created on each call: with 100k triggers
 * that was the overview's slowest query (about 20 ms of its ~30 ms median, measured on the history bench's
 * database). The rollup is at most 4 types × 2 statuses × 4 slots rows whatever the number of triggers.
 *
 * `slot` is the writing connection's id modulo 4, as in event_counts: concurrent creations mostly update
 * different rows. A slot can go negative (a trigger created on one connection and deleted on another);
 * the sum per (type, status) cannot.
 */

const SLOT = 'CONNECTION_ID() % 4';

const add = (row: 'NEW' | 'OLD', delta: '1' | '-1') =>
  `INSERT INTO trigger_counts (type, status, slot, n) VALUES (${row}.type, ${row}.status, ${SLOT}, ${delta})
     ON DUPLICATE KEY UPDATE n = n + (${delta});`;

const TRIGGERS = [
  `CREATE TRIGGER trg_triggers_count_insert AFTER INSERT ON triggers FOR EACH ROW BEGIN ${add('NEW', '1')} END`,
  `CREATE TRIGGER trg_triggers_count_update AFTER UPDATE ON triggers FOR EACH ROW
   BEGIN
     IF NOT (NEW.type <=> OLD.type AND NEW.status <=> OLD.status) THEN
       ${add('OLD', '-1')}
       ${add('NEW', '1')}
     END IF;
   END`,
  `CREATE TRIGGER trg_triggers_count_delete AFTER DELETE ON triggers FOR EACH ROW BEGIN ${add('OLD', '-1')} END`,
];

/** A MariaDB Galera node (wsrep_on=ON), where LOCK TABLES is not replicated (see the history migration). */
async function wsrepOn(knex: Knex): Promise<boolean> {
  const [rows] = (await knex.raw("SHOW VARIABLES LIKE 'wsrep_on'")) as unknown as [Array<{ Value: string }>];
  return rows[0]?.Value === 'ON';
}

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE trigger_counts (
      type ENUM('webhook','time_scheduled','cron_scheduled','interval_scheduled') NOT NULL,
      status ENUM('active','inactive') NOT NULL,
      slot TINYINT UNSIGNED NOT NULL,
      n BIGINT NOT NULL,
      PRIMARY KEY (type, status, slot)
    ) ENGINE=InnoDB`);
  // The triggers that exist are counted once, with `triggers` locked for writes so that none is counted twice
  // or missed; from the triggers on, every write counts itself. (Galera: without the lock, as in the history
  // migration; run it in a quiet window there.)
  const lock = !(await wsrepOn(knex));
  if (lock) await knex.raw('LOCK TABLES triggers WRITE, trigger_counts WRITE');
  try {
    await knex.raw(
      'INSERT INTO trigger_counts (type, status, slot, n) SELECT type, status, 0, COUNT(*) FROM triggers GROUP BY type, status',
    );
    for (const sql of TRIGGERS) await knex.raw(sql);
  } finally {
    if (lock) await knex.raw('UNLOCK TABLES');
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const name of ['trg_triggers_count_delete', 'trg_triggers_count_update', 'trg_triggers_count_insert'])
    await knex.raw('DROP TRIGGER IF EXISTS ??', [name]);
  await knex.raw('DROP TABLE IF EXISTS trigger_counts');
}
