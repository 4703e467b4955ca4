/**
 * Event id storage: does BINARY(16) pay over the CHAR(36) ascii strings the schema keeps?
 *
 *   npm run bench -- ids [--quick] [--rows=N]
 *
 * Two copies of the event_logs shape (primary key id, idx (fired_at), idx (trigger_id, fired_at)), one with
 * CHAR(36) ids and trigger ids, one with BINARY(16) ones, filled with the same time-ordered (v7) ids in the
 * same batches, in one run. Printed: fill rate, on-disk size of data and indexes, and primary-key lookups
 * per second, each as binary ÷ char.
 */
import { randomUUID } from 'node:crypto';
import { createBenchEnv, Live, log, numArg, parseArgs, round, runBench, table, writeResults } from './lib';
import { newEventId } from '../src/triggers/event-id';

const args = parseArgs();
const ROWS = numArg(args, 'rows', args.flags.has('quick') ? 200_000 : 2_000_000);
const BATCH = 1000;
const TRIGGERS = 1000;
const LOOKUPS = args.flags.has('quick') ? 20_000 : 100_000;

const hex = (uuid: string) => Buffer.from(uuid.replace(/-/g, ''), 'hex');

const live = new Live();

async function main(): Promise<void> {
  const env = await createBenchEnv('ids');
  live.envs.add(env);
  const { db } = env;
  try {
    await db.raw(`CREATE TABLE ids_char (
      id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, trigger_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NULL,
      fired_at DATETIME(3) NOT NULL, execution_status ENUM('pending','published','success','failure') NOT NULL, payload LONGTEXT NULL,
      PRIMARY KEY (id), KEY idx_fired (fired_at), KEY idx_trigger_fired (trigger_id, fired_at)) ENGINE=InnoDB`);
    await db.raw(`CREATE TABLE ids_binary (
      id BINARY(16) NOT NULL, trigger_id BINARY(16) NULL,
      fired_at DATETIME(3) NOT NULL, execution_status ENUM('pending','published','success','failure') NOT NULL, payload LONGTEXT NULL,
      PRIMARY KEY (id), KEY idx_fired (fired_at), KEY idx_trigger_fired (trigger_id, fired_at)) ENGINE=InnoDB`);
    const triggers = Array.from({ length: TRIGGERS }, () => randomUUID());
    const start = Date.now() - 48 * 3600_000;
    const step = (48 * 3600_000) / ROWS;
    const sample: string[] = [];
    const fill = { ids_char: 0, ids_binary: 0 };
    log(`filling ${ROWS.toLocaleString()} rows into each table, ${BATCH} a statement, alternating`);
    for (let i = 0; i < ROWS; i += BATCH) {
      const rows = Array.from({ length: Math.min(BATCH, ROWS - i) }, (_, j) => {
        const at = start + (i + j) * step;
        const id = newEventId(Math.floor(at));
        if ((i + j) % Math.ceil(ROWS / LOOKUPS) === 0) sample.push(id);
        return {
          id,
          trigger_id: triggers[(i + j) % TRIGGERS]!,
          fired_at: new Date(at),
          execution_status: 'success',
          payload: '{"order_id":"A-1","total":12.5}',
        };
      });
      for (const name of (i / BATCH) % 2 === 0 ? (['ids_char', 'ids_binary'] as const) : (['ids_binary', 'ids_char'] as const)) {
        const t0 = process.hrtime.bigint();
        await db(name).insert(name === 'ids_char' ? rows : rows.map((r) => ({ ...r, id: hex(r.id), trigger_id: hex(r.trigger_id) })));
        fill[name] += Number(process.hrtime.bigint() - t0) / 1e6;
      }
    }
    await db.raw('ANALYZE TABLE ids_char, ids_binary');
    const [sizes] = (await db.raw(
      'SELECT table_name AS t, data_length AS d, index_length AS i FROM information_schema.tables WHERE table_schema = ? AND table_name IN (?, ?)',
      [env.dbName, 'ids_char', 'ids_binary'],
    )) as [Array<{ t: string; d: number; i: number }>];
    const size = (t: string) => sizes.find((s) => s.t === t)!;
    const lookup = { ids_char: 0, ids_binary: 0 };
    for (const name of ['ids_char', 'ids_binary'] as const) {
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < sample.length; k += 100) {
        const ids = sample.slice(k, k + 100);
        await db(name)
          .whereIn('id', name === 'ids_char' ? ids : ids.map(hex))
          .select('id', 'fired_at');
      }
      lookup[name] = Number(process.hrtime.bigint() - t0) / 1e6;
    }
    const mib = (n: number) => round(Number(n) / 1048576, 1);
    const rows = (['ids_char', 'ids_binary'] as const).map((t) => [
      t,
      String(round(ROWS / (fill[t] / 1000), 0)),
      String(mib(size(t).d)),
      String(mib(size(t).i)),
      String(round(sample.length / (lookup[t] / 1000), 0)),
    ]);
    process.stdout.write(`${table(['table', 'fill rows/s', 'data MiB', 'index MiB', 'PK lookups/s (100 a query)'], rows)}\n`);
    const ratio = {
      fill: fill.ids_char / fill.ids_binary,
      size: (Number(size('ids_binary').d) + Number(size('ids_binary').i)) / (Number(size('ids_char').d) + Number(size('ids_char').i)),
      lookups: lookup.ids_char / lookup.ids_binary,
    };
    log(`fill rate binary ÷ char: ${round(ratio.fill, 2)}×`);
    log(`size (data + indexes) binary ÷ char: ${round(ratio.size, 2)}×`);
    log(`PK lookups/s binary ÷ char: ${round(ratio.lookups, 2)}×`);
    writeResults('ids', { rows: ROWS, fillMs: fill, sizes, lookupMs: lookup, lookups: sample.length, ratio });
  } finally {
    live.envs.delete(env);
    await env.cleanup();
  }
}

runBench('ids', main, () => live.abandon());
