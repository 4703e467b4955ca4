/**
 * History at scale, the guarantees that are not timings: the rollups the overview and stats read equal a
 * direct count of the events, a database that holds rows of the former schema keeps working after the
 * migration, and retention deletes exactly what is past the window, in bounded batches.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import request from 'supertest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import {
  insertCountedEventsStatements,
  insertEvents,
  insertEventsStatements,
  foldBefore,
  foldCountsBefore,
  listEvents,
  rollupSpan,
  EVENT_ROLLUP,
  ROLLUPS,
  TRIGGER_ROLLUP,
  FOLD_MAX_ROWS,
  triggerStats,
  updateDeliveryOutcomes,
  type EventInsert,
  type ExecutionStatus,
} from '../../src/db/events';
import { createMultiStatementPool, ScriptTransaction, type MultiPool } from '../../src/db/multi';
import { migrateLatest, migrationConfig } from '../../src/db/knex';
import { Lifecycle } from '../../src/events';
import { ROW_DELETE_LAG_MS, sweep } from '../../src/relay/steps';
import {
  latePartitions,
  PartitionKeeper,
  readLayout,
  retiredName,
  retireOldest,
  RETIRE_MARGIN_MS,
  SLICE_MS,
  SLICES_AHEAD,
} from '../../src/db/partitions';
import { eventIdTime, newEventId, scheduledEventId } from '../../src/triggers/event-id';
import { windowOf } from '../../src/api/events';
import { triggerCounts } from '../../src/db/overview';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { until } from '../helpers/until';
import { captureSql, explain, sqlDuring } from '../helpers/capture-sql';
import type { Knex } from 'knex';
import { withDbRetry } from '../../src/util';
import { IDEMPOTENCY_WINDOW_SECONDS } from '../../src/db/idempotency';
import { FIRE_LAG_WINDOW_SECONDS } from '../../src/db/fire-lags';
import type { TriggerType } from '../../src/triggers/types';

const MINUTE = 60_000;
const HOUR = 3600_000;
const STATUSES: ExecutionStatus[] = ['pending', 'published', 'success', 'failure'];
const SOURCES = ['webhook', 'scheduler', 'manual-test', 'replay'] as const;

type CountRow = { k: string; n: number };

describe('history at scale', () => {
  let t: TestEnv;
  /** Multi-statement connections, as the relay's fire batch writes through (one: every script meets the last's session). */
  let scripts: MultiPool;

  before(async function () {
    this.timeout(60_000);
    t = await createTestEnv('history');
    scripts = createMultiStatementPool(t.env.DATABASE_URL!, 1);
  });
  after(async () => {
    await scripts?.end();
    await t?.cleanup();
  });

  /** Inserts `rows` in one script transaction, counted in the rollups by the batch (as the relay's fire batch does). */
  async function insertCounted(rows: EventInsert[], now: Date): Promise<void> {
    const { tx } = await ScriptTransaction.begin(scripts, []);
    await tx.commit(insertCountedEventsStatements(rows, now));
  }

  /**
   * SUM(n) of the rollups and COUNT(*) of the events, keyed alike, as comparable maps: the events fired, and
   * of those the ones ended in success and in failure, in all and per trigger and source, per minute from
   * `folded` on and per hour before it, where the sweep folds the minute rows into event_hours and
   * trigger_event_hours (a minute row there, one a fold has yet to take, counts in its hour).
   */
  async function rollupVsEvents(folded: Date): Promise<{ rollup: Map<string, number>; direct: Map<string, number> }> {
    const toMap = (rows: CountRow[]) => new Map(rows.filter((r) => Number(r.n) !== 0).map((r) => [r.k, Number(r.n)]));
    const minuteOf = (col: string) => `CAST(DATE_FORMAT(${col}, '%Y-%m-%d %H:%i:00') AS DATETIME)`;
    const bucketOf = (col: string) =>
      t.db.raw(`IF(${col} >= ?, ${minuteOf(col)}, CAST(DATE_FORMAT(${col}, '%Y-%m-%d %H:00:00') AS DATETIME))`, [folded]).toQuery();
    const queries = [
      `SELECT k, SUM(n) AS n FROM (
         SELECT CONCAT('all|', ${bucketOf('minute')}, '|', kind) AS k, n FROM event_counts
         UNION ALL
         SELECT CONCAT('all|', hour, '|', kind) AS k, n FROM event_hours
       ) c GROUP BY k`,
      `SELECT k, SUM(n) AS n FROM (
         SELECT CONCAT('trigger|', trigger_id, '|', ${bucketOf('minute')}, '|', source, '|', kind) AS k, n FROM trigger_event_counts
         UNION ALL
         SELECT CONCAT('trigger|', trigger_id, '|', hour, '|', source, '|', kind) AS k, n FROM trigger_event_hours
       ) c GROUP BY k`,
    ];
    const direct = [
      `SELECT CONCAT('all|', ${bucketOf('fired_at')}, '|fired') AS k, COUNT(*) AS n FROM event_logs GROUP BY k`,
      `SELECT CONCAT('all|', ${bucketOf('fired_at')}, '|', execution_status) AS k, COUNT(*) AS n FROM event_logs
        WHERE execution_status IN ('success', 'failure') GROUP BY k`,
      // A one-shot trigger's events are not counted per trigger (countedPerTrigger).
      `SELECT CONCAT('trigger|', trigger_id, '|', ${bucketOf('fired_at')}, '|', source, '|fired') AS k, COUNT(*) AS n FROM event_logs
        WHERE trigger_id IS NOT NULL AND trigger_type <> 'time_scheduled' GROUP BY k`,
      `SELECT CONCAT('trigger|', trigger_id, '|', ${bucketOf('fired_at')}, '|', source, '|', execution_status) AS k, COUNT(*) AS n FROM event_logs
        WHERE trigger_id IS NOT NULL AND trigger_type <> 'time_scheduled' AND execution_status IN ('success', 'failure') GROUP BY k`,
    ];
    const run = async (sqls: string[]) => {
      const out = new Map<string, number>();
      for (const sql of sqls) {
        const [rows] = (await t.db.raw(sql)) as [CountRow[]];
        for (const [k, n] of toMap(rows)) out.set(k, n);
      }
      return out;
    };
    return { rollup: await run(queries), direct: await run(direct) };
  }

  describe('rollups', () => {
    const triggers = [randomUUID(), randomUUID(), randomUUID()];
    // The last is a one-shot trigger: its events are left out of the per-trigger rollups, and its stats and
    // list totals are counted from its rows.
    const types: TriggerType[] = ['webhook', 'cron_scheduled', 'time_scheduled'];
    const anEvent = fc.record({
      trigger: fc.integer({ min: 0, max: triggers.length }), // triggers.length: no trigger (an unsaved test run)
      // Most near the edges a count must draw exactly (the active/archived boundary, the window's start).
      ageMs: fc.oneof(
        fc.integer({ min: 0, max: 50 * HOUR }),
        fc.integer({ min: 2 * HOUR - 2 * MINUTE, max: 2 * HOUR + 2 * MINUTE }),
        fc.integer({ min: 48 * HOUR - 2 * MINUTE, max: 48 * HOUR + MINUTE }),
      ),
      source: fc.constantFrom(...SOURCES),
      published: fc.boolean(),
    });
    // How a batch is written: by knex, counted by the event_logs insert trigger; by a script that counts its
    // batch itself; or by such a script that fails on a duplicate id after setting the session's flag, then a
    // plain script on the same connection, which the trigger must count again.
    const aWriter = fc.constantFrom('trigger', 'batch', 'failed-batch-then-plain');
    const anOutcome = fc.record({ pick: fc.nat(), status: fc.constantFrom(...STATUSES), attempts: fc.integer({ min: 1, max: 5 }) });

    it('equal a direct count of the events after any mix of inserts, outcome updates and folds into hours, from several connections', async function () {
      this.timeout(120_000);
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ writer: aWriter, events: fc.array(anEvent, { minLength: 1, maxLength: 30 }) }), {
            minLength: 1,
            maxLength: 4,
          }),
          fc.array(fc.array(anOutcome, { minLength: 1, maxLength: 20 }), { maxLength: 4 }),
          fc.array(fc.array(anOutcome, { minLength: 1, maxLength: 20 }), { maxLength: 3 }),
          fc.integer({ min: 1, max: 60 }),
          fc.integer({ min: 0, max: 59_999 }),
          async (batches, outcomeBatches, lateOutcomeBatches, foldLimit, sinceOffset) => {
            await t.db.raw('DELETE FROM event_logs');
            await t.db.raw('DELETE FROM event_counts');
            await t.db.raw('DELETE FROM trigger_event_counts');
            await t.db.raw('DELETE FROM trigger_event_hours');
            await t.db.raw('DELETE FROM event_hours');
            const now = new Date();
            const w = windowOf(t.config, now);
            const folded = foldBefore(w);
            // Each batch is its own transaction; they run at once, so they come from different connections.
            const written = await Promise.all(
              batches.map(async ({ writer, events }) => {
                const rows: EventInsert[] = events.map((e) => {
                  const firedAt = new Date(now.getTime() - e.ageMs);
                  return {
                    id: newEventId(firedAt.getTime()),
                    trigger_id: triggers[e.trigger] ?? null,
                    trigger_type: types[e.trigger] ?? 'webhook',
                    source: e.source,
                    is_test_run: e.source === 'manual-test',
                    payload: {},
                    scheduled_for: null,
                    fired_at: firedAt,
                    published_at: e.published ? now : null,
                  };
                });
                // Batches written at once can deadlock on rollup rows they share (a slot is the connection id
                // modulo 4); each is one transaction, run again on a deadlock as the product's writers are.
                if (writer === 'trigger') return [...(await withDbRetry(() => t.db.transaction((trx) => insertEvents(trx, rows, now))))];
                if (writer === 'batch') {
                  await withDbRetry(() => insertCounted(rows, now));
                  return rows.map((r) => r.id);
                }
                // The same id twice: the INSERT fails after the flag is set, and the rest of the script never runs.
                await withDbRetry(() =>
                  insertCounted([...rows, rows[0]!], now).then(
                    () => expect.fail('a batch with a duplicate id was written'),
                    (e: { code?: string }) => {
                      if (e.code === 'ER_LOCK_DEADLOCK') throw e;
                      expect(e.code).to.equal('ER_DUP_ENTRY');
                    },
                  ),
                );
                await withDbRetry(async () => {
                  const { tx } = await ScriptTransaction.begin(scripts, []);
                  await tx.commit(insertEventsStatements(rows, now));
                });
                return rows.map((r) => r.id);
              }),
            );
            const ids = written.flat();
            // Each outcome batch one transaction, run again on a deadlock as the worker's are (withDbRetry): a
            // batch can meet another's rollup rows, or a fold's.
            const outcomes = (batches: Array<Array<{ pick: number; status: ExecutionStatus; attempts: number }>>) =>
              batches.map((batch) =>
                withDbRetry(() =>
                  t.db.transaction(async (trx) => {
                    // One outcome per event per batch, as a worker writes them.
                    const byId = new Map(batch.map((o) => [ids[o.pick % ids.length]!, o]));
                    await updateDeliveryOutcomes(
                      trx,
                      [...byId].map(([id, o]) => ({
                        id,
                        attempts: o.attempts,
                        execution_status: o.status,
                        response_status: null,
                        latency_ms: 1,
                        error_message: null,
                      })),
                      now,
                    );
                  }),
                ),
              );
            await Promise.all(outcomes(outcomeBatches));
            // Two relays' sweeps fold the old minutes into hours, `foldLimit` rows a transaction, while late
            // outcomes change the counts of those minutes; then one more fold takes some of what is left.
            const foldAll = async () => {
              for (const rollup of ROLLUPS) while ((await foldCountsBefore(t.db, rollup, folded, foldLimit)) === foldLimit);
            };
            await Promise.all([foldAll(), foldAll(), ...outcomes(lateOutcomeBatches)]);
            for (const rollup of ROLLUPS) await foldCountsBefore(t.db, rollup, folded, foldLimit);
            for (const table of ['trigger_event_counts', 'event_counts']) {
              const [[{ minutes }]] = (await t.db.raw('SELECT COUNT(*) AS minutes FROM ?? WHERE minute < ?', [table, folded])) as [
                [{ minutes: number }],
              ];
              if (lateOutcomeBatches.length === 0) expect(Number(minutes), `${table}: minute rows left before the fold point`).to.equal(0);
            }
            const { rollup, direct } = await rollupVsEvents(folded);
            expect(Object.fromEntries(rollup)).to.deep.equal(Object.fromEntries(direct));

            // A trigger's stats from the rollups (whole hours, whole minutes) and its rows (the edge minutes)
            // equal a direct count from the window's start: a minute's instant where the window starts in
            // minute rows, else the next whole hour.
            const windows = [new Date(now.getTime() - 48 * HOUR + sinceOffset), new Date(now.getTime() - 150 * MINUTE + sinceOffset)];
            for (const [i, since] of triggers.flatMap((_, i) => windows.map((s) => [i, s] as const))) {
              const trigger = triggers[i]!;
              const stats = await triggerStats(t.db, { id: trigger, type: types[i]! }, since, w, 10_000);
              expect(stats.window_from.getTime()).to.equal(since < folded ? Math.ceil(since.getTime() / HOUR) * HOUR : since.getTime());
              const rows = (await t
                .db('event_logs')
                .where('trigger_id', trigger)
                .andWhere('fired_at', '>=', stats.window_from)
                .select('fired_at', 'execution_status', 'source')) as Array<{ fired_at: Date; execution_status: string; source: string }>;
              const count = (f: (r: (typeof rows)[number]) => boolean) => rows.filter(f).length;
              expect(stats.total).to.equal(rows.length);
              for (const s of STATUSES) expect(stats.by_execution_status[s], s).to.equal(count((r) => r.execution_status === s));
              for (const s of SOURCES) expect(stats.by_source[s], s).to.equal(count((r) => r.source === s));
              expect(stats.by_retention_status.active).to.equal(count((r) => r.fired_at >= w.activeFrom));
              expect(stats.by_retention_status.archived).to.equal(count((r) => r.fired_at < w.activeFrom));
            }

            // An offset page's total of each view the rollups count (the rollups' whole hours and minutes, the
            // view's ends from its rows) equals a direct count of the view.
            // All events, or one trigger's (of one source, too).
            const whose = [{}, ...triggers.flatMap((trigger_id) => [{ trigger_id }, { trigger_id, source: 'scheduler' as const }])];
            for (const retention of ['active', 'archived'] as const) {
              for (const status of [undefined, 'success', 'failure'] as const) {
                for (const of of whose) {
                  const f = { retention, window: w, ...of, ...(status ? { execution_status: status } : {}) };
                  expect(rollupSpan(f), 'a view the rollups count').to.not.equal(null);
                  const { total } = await listEvents(t.db, f, 1, { offset: 0 }, 10_000);
                  const direct = t.db('event_logs').count<{ n: number }[]>({ n: '*' }).where(of);
                  if (retention === 'active') direct.where('fired_at', '>=', w.activeFrom);
                  else direct.where('fired_at', '>=', w.keepFrom).andWhere('fired_at', '<', w.activeFrom);
                  if (status) direct.where('execution_status', status);
                  const [{ n }] = await direct;
                  expect(total, `${retention} view, ${status ?? 'any status'}, ${JSON.stringify(of)}`).to.equal(Number(n));
                  // A page past the end holds no row to tell the trigger's type from: the same total.
                  const { rows: none, total: past } = await listEvents(t.db, f, 1, { offset: 1000 }, 10_000);
                  expect(none).to.deep.equal([]);
                  expect(past, `${retention} view, ${status ?? 'any status'}, ${JSON.stringify(of)}, a page past the end`).to.equal(
                    Number(n),
                  );
                }
              }
            }
          },
        ),
        { numRuns: 25 },
      );
    });
  });

  describe('folding minutes into hours', () => {
    // Five minute rows per minute for three days, all before the fold point: more than a batch.
    const cases = [
      {
        rollup: TRIGGER_ROLLUP,
        hours: 'trigger_event_hours',
        index: 'idx_trigger_counts_minute',
        row: (minute: Date, k: number) => ({
          trigger_id: `00000000-0000-4000-8000-00000000000${k}`,
          minute,
          source: 'webhook',
          kind: 'fired',
          slot: k % 4,
          n: 1,
        }),
      },
      {
        rollup: EVENT_ROLLUP,
        hours: 'event_hours',
        index: 'PRIMARY',
        row: (minute: Date, k: number) => ({ minute, kind: (['fired', 'success', 'failure'] as const)[k % 3], slot: k, n: 1 }),
      },
    ];
    for (const c of cases) {
      it(`locks one range of ${c.rollup.name} (${c.index}) and deletes the rows read by their primary key, at the largest batch`, async () => {
        await t.db.raw('DELETE FROM ??', [c.rollup.name]);
        await t.db.raw('DELETE FROM ??', [c.hours]);
        const folded = foldBefore(windowOf(t.config, new Date()));
        const rows = [];
        for (let m = 0; m < 3 * 24 * 60; m++) {
          for (let k = 0; k < 5; k++) rows.push(c.row(new Date(folded.getTime() - (m + 1) * MINUTE), k));
        }
        for (let i = 0; i < rows.length; i += 2000) await t.db(c.rollup.name).insert(rows.slice(i, i + 2000));
        await t.db.raw('ANALYZE TABLE ??', [c.rollup.name]);
        const { result, sql } = await captureSql(t.db, (trx) => foldCountsBefore(trx as unknown as Knex, c.rollup, folded, 1_000_000));
        expect(result, 'a batch is capped').to.equal(FOLD_MAX_ROWS);
        const select = sql.find((q) => /^\s*SELECT/i.test(q.sql))!;
        const del = sql.find((q) => /^\s*DELETE/i.test(q.sql))!;
        const [selectPlan] = await explain(t.db, select);
        expect(selectPlan!.key, JSON.stringify(selectPlan)).to.equal(c.index);
        expect(selectPlan!.Extra ?? '', JSON.stringify(selectPlan)).not.to.match(/filesort/);
        // The DELETE reads its keys from the JSON list and finds each row by its whole primary key.
        const deletePlan = (await explain(t.db, del)) as Array<{ table: string; key: string | null; type?: string }>;
        const rowsPlan = deletePlan.find((p) => p.table === 'c');
        expect(rowsPlan?.key, JSON.stringify(deletePlan)).to.equal('PRIMARY');
        expect(rowsPlan?.type, JSON.stringify(deletePlan)).to.equal('eq_ref');
        // Run for real, it moves a batch: the oldest minutes into their hours, the rest left as they were.
        expect(await foldCountsBefore(t.db, c.rollup, folded, 1_000_000)).to.equal(FOLD_MAX_ROWS);
        const [[left]] = (await t.db.raw('SELECT COUNT(*) AS n, MIN(minute) AS oldest FROM ??', [c.rollup.name])) as [
          [{ n: number; oldest: Date }],
        ];
        expect(Number(left.n)).to.equal(rows.length - FOLD_MAX_ROWS);
        expect(left.oldest.getTime()).to.equal(folded.getTime() - ((rows.length - FOLD_MAX_ROWS) / 5) * MINUTE);
        const [[hours]] = (await t.db.raw('SELECT SUM(n) AS n, COUNT(*) AS r FROM ??', [c.hours])) as [[{ n: number; r: number }]];
        expect(Number(hours.n)).to.equal(FOLD_MAX_ROWS);
        // 5,000 rows are 1,000 minutes: 17 hours (16 whole and a part), one row per hour and key.
        expect(Number(hours.r)).to.equal(17 * (c.rollup === TRIGGER_ROLLUP ? 5 : 3));
      });
    }
  });

  describe('trigger counts', () => {
    const anOp = fc.oneof(
      fc.record({ op: fc.constant('create' as const), type: fc.constantFrom('webhook', 'cron_scheduled', 'interval_scheduled') }),
      fc.record({ op: fc.constantFrom('pause' as const, 'resume' as const, 'delete' as const, 'rename' as const), pick: fc.nat() }),
      fc.record({ op: fc.constantFrom('bulk-pause' as const, 'bulk-resume' as const) }),
    );
    const configOf = (type: string) =>
      type === 'webhook'
        ? { endpoint: 'https://example.com/hook', schema: { type: 'object' } }
        : type === 'cron_scheduled'
          ? { endpoint: 'https://example.com/cron', cron: '0 * * * *', timezone: 'UTC' }
          : { endpoint: 'https://example.com/interval', interval_seconds: 3600 };

    it('equal a direct count of the triggers after any mix of API creates, edits, pauses, resumes and deletes, run at once', async function () {
      this.timeout(120_000);
      const app = testApp(t);
      await fc.assert(
        fc.asyncProperty(fc.array(fc.array(anOp, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 4 }), async (lanes) => {
          const ids: string[] = [];
          // The lanes run at once (their API calls use different pool connections); each lane's calls in order.
          await Promise.all(
            lanes.map(async (ops) => {
              for (const o of ops) {
                const id = 'pick' in o && ids.length > 0 ? ids[o.pick % ids.length]! : null;
                if (o.op === 'create') {
                  const res = await request(app)
                    .post('/api/v1/triggers')
                    .send({ name: `count-${ids.length}`, type: o.type, tags: ['counted'], config: configOf(o.type) })
                    .expect(201);
                  ids.push(res.body.id);
                } else if (o.op === 'bulk-pause' || o.op === 'bulk-resume') {
                  await request(app)
                    .post(`/api/v1/triggers/${o.op === 'bulk-pause' ? 'pause' : 'resume'}`)
                    .send({ tag: 'counted' })
                    .expect(200);
                } else if (id && o.op === 'delete') {
                  await request(app)
                    .delete(`/api/v1/triggers/${id}`)
                    .expect((r) => expect(r.status).to.be.oneOf([204, 404]));
                } else if (id) {
                  const body = o.op === 'rename' ? { name: `renamed-${o.pick}` } : { status: o.op === 'pause' ? 'inactive' : 'active' };
                  await request(app)
                    .put(`/api/v1/triggers/${id}`)
                    .send(body)
                    .expect((r) => expect(r.status).to.be.oneOf([200, 404]));
                }
              }
            }),
          );
          const [direct] = (await t.db.raw('SELECT type, status, COUNT(*) AS n FROM triggers GROUP BY type, status')) as [
            Array<{ type: string; status: string; n: number }>,
          ];
          const key = (r: { type: string; status: string; n: number }) => `${r.type}|${r.status}=${Number(r.n)}`;
          expect((await triggerCounts(t.db)).map(key).sort()).to.deep.equal(direct.map(key).sort());
        }),
        { numRuns: 15 },
      );
    });
  });

  describe('migration of a database that holds rows of the former schema', () => {
    it('keeps old events listable, readable, replayable and retired on time, and counts them in the rollups', async function () {
      this.timeout(120_000);
      const cfg = migrationConfig();
      // Back to the former schema (this also runs the new migrations' down()), rows written as it wrote them:
      // every migration from the history migration on is undone, newest first.
      const completed = async () =>
        ((await t.db.migrate.list(cfg)) as [Array<{ name: string } | string>, unknown[]])[0].map((m) =>
          typeof m === 'string' ? m : m.name,
        );
      for (let i = 0; i < 20 && (await completed()).some((n) => n.startsWith('20261204000001_history')); i++) await t.db.migrate.down(cfg);
      const [cols] = (await t.db.raw("SHOW COLUMNS FROM event_logs LIKE 'retention_status'")) as [unknown[]];
      expect(cols, 'the former schema has retention_status').to.have.length(1);
      await t.db('event_logs').delete();
      const triggerId = randomUUID();
      await t.db('triggers').insert({
        id: triggerId,
        name: 'old',
        type: 'webhook',
        status: 'active',
        config: JSON.stringify({ endpoint: 'https://example.com/x', schema: { type: 'object' } }),
        version: 1,
        created_at: new Date(),
        updated_at: new Date(),
      });
      const now = Date.now();
      const old = [
        { id: randomUUID(), age: 10 * MINUTE, retention_status: 'active', execution_status: 'success' },
        { id: randomUUID(), age: 5 * HOUR, retention_status: 'archived', execution_status: 'failure' },
        // Past the window by more than a time slice: random (version 4) ids are retired row by row, that late.
        { id: randomUUID(), age: 53 * HOUR, retention_status: 'archived', execution_status: 'success' },
      ];
      await t.db('event_logs').insert(
        old.map((o) => ({
          id: o.id,
          trigger_id: triggerId,
          trigger_type: 'webhook',
          source: 'webhook',
          is_test_run: 0,
          payload: '{"old":true}',
          fired_at: new Date(now - o.age),
          published_at: new Date(now - o.age),
          execution_status: o.execution_status,
          retention_status: o.retention_status,
          created_at: new Date(now - o.age),
          updated_at: new Date(now - o.age),
        })),
      );

      await migrateLatest(t.db);
      const { rollup, direct } = await rollupVsEvents(new Date(0));
      expect(Object.fromEntries(rollup), 'old rows counted once by the migration').to.deep.equal(Object.fromEntries(direct));
      expect(rollup.size).to.be.above(0);

      const app = testApp(t);
      const [recent, archived, expired] = old.map((o) => o.id);
      const active = await request(app).get('/api/v1/events').query({ trigger_id: triggerId }).expect(200);
      expect(active.body.events.map((e: { id: string }) => e.id)).to.deep.equal([recent]);
      const arch = await request(app).get('/api/v1/events').query({ trigger_id: triggerId, retention_status: 'archived' }).expect(200);
      expect(arch.body.events.map((e: { id: string }) => e.id)).to.deep.equal([archived]);
      const one = await request(app).get(`/api/v1/events/${archived}`).expect(200);
      expect(one.body).to.include({ id: archived, retention_status: 'archived', execution_status: 'failure' });
      await request(app).get(`/api/v1/events/${expired}`).expect(404);
      const failed = await request(app)
        .get('/api/v1/events')
        .query({ execution_status: 'failure', retention_status: 'archived' })
        .expect(200);
      expect(failed.body.events.map((e: { id: string }) => e.id)).to.deep.equal([archived]);
      const stats = await request(app).get(`/api/v1/triggers/${triggerId}/stats`).expect(200);
      expect(stats.body).to.include({ total: 2 });
      expect(stats.body.by_retention_status).to.deep.equal({ active: 1, archived: 1 });

      const replay = await request(app).post(`/api/v1/events/${archived}/replay`).expect(202);
      expect(replay.body.event_id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);

      await sweep(t.db, t.config, new Lifecycle());
      expect(
        await t
          .db('event_logs')
          .whereIn(
            'id',
            old.map((o) => o.id),
          )
          .pluck('id'),
      ).to.have.members([recent, archived]);
    });
  });

  describe('trigger ids', () => {
    it('are time-ordered (version 7) and carry their creation time, so trigger-keyed indexes grow at their end', async function () {
      this.timeout(20_000);
      const app = testApp(t);
      const created: Array<{ id: string; created_at: string }> = [];
      for (let i = 0; i < 5; i++) {
        const res = await request(app)
          .post('/api/v1/triggers')
          .send({ name: `ordered ${i}`, type: 'cron_scheduled', config: { endpoint: 'http://127.0.0.1:9/x', cron: '0 0 1 1 *' } })
          .expect(201);
        created.push(res.body as { id: string; created_at: string });
        await until(async () => Date.now() > Date.parse(created[i]!.created_at), { timeoutMs: 1000, intervalMs: 1 });
      }
      for (const c of created) {
        expect(c.id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(eventIdTime(c.id)).to.equal(Date.parse(c.created_at));
      }
      expect(created.map((c) => c.id)).to.deep.equal(created.map((c) => c.id).sort());
    });
  });

  describe('retention', () => {
    /** An event of `trigger` whose id carries the instant `idMs` (scheduled, or a webhook's version 7 id) and that fired at `firedMs`. */
    const eventAt = (trigger: string, idMs: number, firedMs: number, scheduled = true): EventInsert => ({
      id: scheduled ? scheduledEventId(trigger, new Date(idMs)) : newEventId(idMs),
      trigger_id: trigger,
      trigger_type: scheduled ? 'cron_scheduled' : 'webhook',
      source: scheduled ? 'scheduler' : 'webhook',
      is_test_run: false,
      payload: {},
      scheduled_for: null,
      fired_at: new Date(firedMs),
    });

    it('puts back the young rows of a slice it retires (an occurrence fired days late), counted once', async function () {
      this.timeout(60_000);
      await t.db.raw('DELETE FROM event_logs');
      // A day on: the slices of 24–48 h ago (made by the migration) are past the window.
      const realNow = Date.now();
      const keepFrom = realNow + 24 * HOUR - t.config.retentionDeleteAfterSeconds * 1000;
      const slice = (await readLayout(t.db, 'event_logs')).slices.find((s) => s.end <= keepFrom - RETIRE_MARGIN_MS);
      expect(slice, 'a slice past the window').to.not.equal(undefined);
      const trigger = randomUUID();
      const inSlice = (firedMs: number) => eventAt(trigger, slice!.start + 1000 + (firedMs % 1000), firedMs);
      const oldRow = inSlice(slice!.start + 2000);
      const lateRow = inSlice(realNow - 5000);
      await t.db.transaction((trx) => insertEvents(trx, [oldRow, lateRow], new Date()));
      const firedCount = async () => {
        const [[{ n }]] = (await t.db.raw(
          "SELECT COALESCE(SUM(n), 0) AS n FROM trigger_event_counts WHERE trigger_id = ? AND kind = 'fired' AND minute >= ?",
          [trigger, new Date(realNow - 10 * MINUTE)],
        )) as [[{ n: number }]];
        return Number(n);
      };
      expect(await firedCount()).to.equal(1);
      // Oldest first, as the sweep does, until that slice is gone.
      while ((await readLayout(t.db, 'event_logs')).slices.some((s) => s.name === slice!.name)) {
        expect(await t.db.transaction((c) => retireOldest(c, keepFrom - RETIRE_MARGIN_MS, keepFrom))).to.equal(true);
      }
      const left = (await t.db('event_logs').where('trigger_id', trigger).pluck('id')) as string[];
      expect(left, 'the young row put back, the old one retired').to.deep.equal([lateRow.id]);
      expect(await firedCount(), 'the row put back is not counted twice').to.equal(1);
      const one = await request(testApp(t)).get(`/api/v1/events/${lateRow.id}`).expect(200);
      expect(one.body).to.include({ id: lateRow.id, retention_status: 'active' });
    });

    it('keeps retired slices beside a large p_late instead of copying it, and merges them all once p_late is small again', async function () {
      this.timeout(60_000);
      await t.db.raw('DELETE FROM event_logs');
      const realNow = Date.now();
      const keepFrom = realNow + 24 * HOUR - t.config.retentionDeleteAfterSeconds * 1000;
      const cutoff = keepFrom - RETIRE_MARGIN_MS;
      const max = 5;
      const { slices } = await readLayout(t.db, 'event_logs');
      expect(slices.filter((s) => s.end <= cutoff).length, 'three slices past the window').to.be.at.least(3);
      const trigger = randomUUID();
      // p_late over the limit: occurrences fired a minute ago with ids older than every slice (after an
      // outage, fire_all); and in each of the next three slices one occurrence fired late, which is put back.
      const inLate = Array.from({ length: max + 1 }, (_, i) => eventAt(trigger, slices[0]!.start - (i + 1) * MINUTE, realNow - MINUTE));
      const putBack = slices.slice(0, 3).map((s) => eventAt(trigger, s.start + MINUTE, realNow - MINUTE));
      await t.db.transaction((trx) => insertEvents(trx, [...inLate, ...putBack], new Date()));
      const retire = async () => {
        const statements = await sqlDuring(t.db, async () => {
          expect(await t.db.transaction((c) => retireOldest(c, cutoff, keepFrom, max))).to.equal(true);
        });
        return statements.filter((q) => /REORGANIZE PARTITION/i.test(q) && /event_logs/.test(q));
      };
      const kept = async () => ((await t.db('event_logs').where('trigger_id', trigger).pluck('id')) as string[]).sort();
      const all = [...inLate, ...putBack].map((e) => e.id).sort();

      for (let i = 0; i < 2; i++) {
        const reorganized = await retire();
        expect(reorganized, 'the emptied slice renamed, p_late not copied').to.have.length(1);
        expect(reorganized[0]).to.not.match(/REORGANIZE PARTITION[^(]*p_late/);
      }
      expect(await latePartitions(t.db, 'event_logs')).to.deep.equal([
        'p_late',
        retiredName(slices[0]!.name),
        retiredName(slices[1]!.name),
      ]);
      expect(await kept(), 'every row kept').to.deep.equal(all);
      expect((await readLayout(t.db, 'event_logs')).slices[0]!.name, 'the retired slices are no longer slices').to.equal(slices[2]!.name);

      // p_late's rows pass the window and are deleted (row by row, as deleteBefore does): the next retirement merges all.
      await t
        .db('event_logs')
        .whereIn(
          'id',
          inLate.map((e) => e.id),
        )
        .delete();
      const merged = await retire();
      expect(merged, 'one merge of p_late, the two retired slices and the emptied one').to.have.length(1);
      expect(merged[0]).to.match(/REORGANIZE PARTITION[^(]*p_late/);
      expect(await latePartitions(t.db, 'event_logs')).to.deep.equal(['p_late']);
      expect(await kept(), 'the rows put back stay').to.deep.equal(putBack.map((e) => e.id).sort());
      expect((await readLayout(t.db, 'event_logs')).slices[0]!.start).to.equal(slices[2]!.end);
      for (const e of putBack) await request(testApp(t)).get(`/api/v1/events/${e.id}`).expect(200);
    });

    it('finishes a retirement that stopped part-way: the rows left in event_logs_retiring go back once, and the table goes', async function () {
      this.timeout(60_000);
      const trigger = randomUUID();
      const realNow = Date.now();
      const kept = eventAt(trigger, realNow - 20 * HOUR, realNow - 5000); // put back already, still in the table
      const lost = eventAt(trigger, realNow - 20 * HOUR + 1000, realNow - 4000); // swapped out, not yet put back
      await t.db.transaction((trx) => insertEvents(trx, [kept, lost], new Date()));
      await t.db.raw('CREATE TABLE event_logs_retiring LIKE event_logs');
      await t.db.raw('ALTER TABLE event_logs_retiring REMOVE PARTITIONING');
      await t.db.raw('INSERT INTO event_logs_retiring SELECT * FROM event_logs WHERE id IN (?, ?)', [kept.id, lost.id]);
      await t.db('event_logs').where({ id: lost.id }).delete();
      const keepFrom = realNow - t.config.retentionDeleteAfterSeconds * 1000;
      await t.db.transaction((c) => retireOldest(c, keepFrom - RETIRE_MARGIN_MS, keepFrom));
      expect(((await t.db('event_logs').where('trigger_id', trigger).pluck('id')) as string[]).sort()).to.deep.equal(
        [kept.id, lost.id].sort(),
      );
      const [twins] = (await t.db.raw(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'event_logs_retiring'",
      )) as [unknown[]];
      expect(twins).to.deep.equal([]);
    });

    it('lets one relay at a time change the slices: three sweeps at once retire each slice once and keep every young row', async function () {
      this.timeout(120_000);
      const realNow = Date.now();
      const now = realNow + 48 * HOUR; // two days on: the window starts at realNow
      const trigger = randomUUID();
      const row = (idMs: number, firedMs: number) => eventAt(trigger, idMs, firedMs);
      const old = Array.from({ length: 40 }, (_, i) => row(realNow - 10 * HOUR - i * MINUTE, realNow - 10 * HOUR - i * MINUTE));
      // Fired late: ids 20 h back (slices past the window), fired inside it.
      const late = Array.from({ length: 40 }, (_, i) => row(realNow - 20 * HOUR - i * MINUTE, realNow + HOUR + i * MINUTE));
      await t.db.transaction((trx) => insertEvents(trx, [...old, ...late], new Date()));
      const due = (await readLayout(t.db, 'event_logs')).slices.filter((s) => s.end <= realNow - RETIRE_MARGIN_MS).length;
      expect(due).to.be.above(2);
      const runs = await Promise.all(
        [1, 2, 3].map(async (r) => {
          const keeper = new PartitionKeeper(`relay-${r}`);
          const seen = new Lifecycle();
          let retired = 0;
          seen.onEvent('relay:slices', (e) => (retired += e.retired));
          for (let i = 0; i < 200 && (await withDbRetry(() => sweep(t.db, t.config, seen, keeper, new Date(now)))).full; i++);
          return retired;
        }),
      );
      expect(
        runs.reduce((a, b) => a + b, 0),
        `slices retired by the three (${runs.join(', ')})`,
      ).to.be.above(0);
      const left = (await t.db('event_logs').where('trigger_id', trigger).pluck('id')) as string[];
      expect(left, 'every young row kept once, every old one gone').to.have.members(late.map((l) => l.id));
      const [twins] = (await t.db.raw(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%\\_retiring'",
      )) as [unknown[]];
      expect(twins, 'no swapped-out table left behind').to.deep.equal([]);
      const oldest = (await readLayout(t.db, 'event_logs')).slices[0]!;
      expect(oldest.end, 'every slice past the window retired').to.be.above(realNow - RETIRE_MARGIN_MS);
    });

    it('deletes expired idempotency keys and fire lags past a batch in back-to-back sweeps, and no younger one', async () => {
      // Deliveries leave a key each: at more than a batch per sweep interval, a sweep that did not ask for
      // the next at once would let the table grow for ever.
      const now = Date.now();
      const keysBefore = now - Math.max(IDEMPOTENCY_WINDOW_SECONDS, t.config.retentionDeleteAfterSeconds) * 1000;
      const lagsBefore = now - FIRE_LAG_WINDOW_SECONDS * 1000;
      const scope = `backlog-${randomUUID().slice(0, 8)}`;
      const keys = Array.from({ length: 2500 }, (_, i) => ({
        scope,
        idem_key: `old-${i}`,
        response: null,
        created_at: new Date(keysBefore - MINUTE - i * 1000),
      }));
      keys.push({ scope, idem_key: 'young', response: null, created_at: new Date(keysBefore + MINUTE) });
      for (let i = 0; i < keys.length; i += 500) await t.db('idempotency_keys').insert(keys.slice(i, i + 500));
      await t.db('fire_lags').delete();
      const lags = Array.from({ length: 2500 }, (_, i) => ({ fired_at: new Date(lagsBefore - MINUTE - i * 1000), lags_ms: String(i) }));
      lags.push({ fired_at: new Date(lagsBefore + MINUTE), lags_ms: '7' });
      for (let i = 0; i < lags.length; i += 500) await t.db('fire_lags').insert(lags.slice(i, i + 500));
      const keeper = new PartitionKeeper('test-keeper');
      let sweeps = 1;
      while ((await withDbRetry(() => sweep(t.db, t.config, new Lifecycle(), keeper, new Date(now)))).full) sweeps++;
      expect(sweeps, 'a full batch asks for the next sweep at once').to.be.at.least(3);
      expect(await t.db('idempotency_keys').where({ scope }).pluck('idem_key')).to.deep.equal(['young']);
      expect(await t.db('fire_lags').pluck('lags_ms')).to.deep.equal(['7']);
    });

    it('retires whole time slices after a long pause, deletes the rows no slice holds in batches, and never a younger row', async function () {
      this.timeout(180_000);
      await t.db.raw('DELETE FROM event_logs');
      await t.db.raw('DELETE FROM delivery_attempts');
      // Relays down for three days: the slices made ahead ran out, and what came in meanwhile sits in p_later.
      const realNow = Date.now();
      // The window starts 2 minutes into a slice (the window is 48 h, whole slices): the slice it starts in
      // is then retired after the rows before it have waited out the row-by-row lag, the slowest case.
      const now = Math.floor((realNow + 72 * HOUR) / SLICE_MS) * SLICE_MS + 2 * MINUTE;
      const keep = t.config.retentionDeleteAfterSeconds * 1000;
      const keepFrom = now - keep;
      const trigger = randomUUID();
      const row = (idMs: number, firedMs: number, scheduled: boolean) => eventAt(trigger, idMs, firedMs, scheduled);
      // 2,500 events past the window, a minute apart, in slices old and new; 1,500 older than every slice
      // (p_late: deleted row by row, in batches); young ones down to a second inside the window; an
      // occurrence fired a minute ago whose id carries a scheduled time 60 h back (an old slice).
      const old: EventInsert[] = [];
      for (let i = 0; i < 2500; i++) old.push(row(keepFrom - 1000 - i * MINUTE, keepFrom - 1000 - i * MINUTE, i % 2 === 0));
      for (let i = 0; i < 1500; i++) old.push(row(realNow - 60 * HOUR - i * MINUTE, realNow - 60 * HOUR - i * MINUTE, i % 2 === 0));
      const young = [1000, MINUTE, 3 * HOUR].map((margin) => row(keepFrom + margin, keepFrom + margin, false));
      const late = row(now - 60 * HOUR, now - MINUTE, true);
      await t.db.transaction(async (trx) => {
        for (let i = 0; i < old.length; i += 500) await insertEvents(trx, old.slice(i, i + 500), new Date());
        await insertEvents(trx, [...young, late], new Date());
      });
      const attempt = (id: string) => ({ event_id: id, attempt: 1, started_at: new Date(realNow), duration_ms: 1 });
      await t.db('delivery_attempts').insert([attempt(old[10]!.id), attempt(old[2600]!.id), attempt(late.id), attempt(young[0]!.id)]);

      const keeper = new PartitionKeeper('test-keeper');
      let sweeps = 1;
      while ((await withDbRetry(() => sweep(t.db, t.config, new Lifecycle(), keeper, new Date(now)))).full) sweeps++;
      expect(sweeps, 'each slice and each full batch asks for another sweep at once').to.be.at.least(4);

      const left = new Set((await t.db('event_logs').where('trigger_id', trigger).pluck('id')) as string[]);
      for (const y of [...young, late]) expect(left.has(y.id), `young ${y.id} kept`).to.equal(true);
      // Past the window: every slice that ended before it is gone whole; rows of the slice it falls in wait
      // for that slice; rows no slice holds were deleted once a slice's width past it.
      const boundarySlice = Math.floor((keepFrom - RETIRE_MARGIN_MS) / SLICE_MS) * SLICE_MS;
      const stayed = old.filter((o) => left.has(o.id));
      expect(stayed.length, 'old rows left: only those of the slice the window starts in').to.be.above(0);
      for (const o of stayed) {
        expect(eventIdTime(o.id)!, 'left only in the slice the window starts in').to.be.at.least(boundarySlice);
        expect(o.fired_at.getTime()).to.be.at.least(keepFrom - ROW_DELETE_LAG_MS);
      }
      expect(old.filter((o) => eventIdTime(o.id)! < boundarySlice && left.has(o.id))).to.deep.equal([]);
      const slices = (await readLayout(t.db, 'event_logs')).slices;
      expect(slices[0]!.start, 'the oldest slice left holds the window start').to.be.at.most(keepFrom);
      expect(slices.at(-1)!.end, 'slices made ahead of the later now').to.be.at.least(now + SLICES_AHEAD * SLICE_MS);
      for (const table of ['delivery_attempts', 'event_replays']) {
        expect(
          (await readLayout(t.db, table)).slices.map((s) => s.name),
          `${table} sliced alike`,
        ).to.deep.equal(slices.map((s) => s.name));
      }
      const attemptsLeft = (await t.db('delivery_attempts').pluck('event_id')) as string[];
      const withEvents = [old[10]!.id, old[2600]!.id, late.id, young[0]!.id].filter((id) => left.has(id));
      expect(withEvents, 'the p_late row is gone').to.not.include(old[2600]!.id);
      expect(attemptsLeft, 'attempts go with their events, row by row and by slice').to.have.members(withEvents);

      // The lag later (a slice and the margins), every row past the first window is gone: by its slice, or
      // one by one where the window started in a slice's first minutes (its slice is retired a little later).
      const later = now + ROW_DELETE_LAG_MS;
      while ((await withDbRetry(() => sweep(t.db, t.config, new Lifecycle(), keeper, new Date(later)))).full);
      const after = new Set((await t.db('event_logs').where('trigger_id', trigger).pluck('id')) as string[]);
      expect(old.filter((o) => after.has(o.id))).to.deep.equal([]);
      expect(after.has(late.id)).to.equal(true);
      expect((await t.db('delivery_attempts').pluck('event_id')) as string[]).to.have.members(
        [late.id, young[0]!.id].filter((id) => after.has(id)),
      );
      // The rollups of the deleted minutes go too.
      const [[{ n: oldCounts }]] = (await t.db.raw('SELECT COUNT(*) AS n FROM trigger_event_counts WHERE trigger_id = ? AND minute < ?', [
        trigger,
        new Date(Math.floor((later - keep) / MINUTE) * MINUTE - MINUTE),
      ])) as [[{ n: number }]];
      expect(Number(oldCounts)).to.equal(0);
    });
  });

  describe('page totals', () => {
    const countsEvents = (sql: string) => /count\(\*\)/i.test(sql) && /`?event_logs`?/.test(sql);

    it("take an offset page's total from the rollups' hours and minutes, without counting rows, when they pass the cap", async function () {
      this.timeout(60_000);
      for (const table of ['event_logs', 'event_counts', 'event_hours']) await t.db.raw('DELETE FROM ??', [table]);
      const now = new Date();
      const w = windowOf(t.config, now);
      // 10,050 archived events over the 3.9 hours before the active boundary, 30 of them failures: no hour
      // of them passes the cap alone, and the older ones are folded into hours (as the sweep does).
      const rows: EventInsert[] = Array.from({ length: 10_050 }, (_, i) => {
        const firedAt = new Date(w.activeFrom.getTime() - 2 * MINUTE - i * 1400);
        return {
          id: newEventId(firedAt.getTime()),
          trigger_id: null,
          trigger_type: 'webhook',
          source: 'webhook',
          is_test_run: false,
          payload: {},
          scheduled_for: null,
          fired_at: firedAt,
          published_at: now,
        };
      });
      for (let i = 0; i < rows.length; i += 2000) await t.db.transaction((trx) => insertEvents(trx, rows.slice(i, i + 2000), now));
      await t
        .db('event_logs')
        .whereIn(
          'id',
          rows.slice(0, 30).map((r) => r.id),
        )
        .update({ execution_status: 'failure' });
      while ((await foldCountsBefore(t.db, EVENT_ROLLUP, foldBefore(w), FOLD_MAX_ROWS)) > 0);
      const [[hours]] = (await t.db.raw("SELECT SUM(n) AS n FROM event_hours WHERE kind = 'fired'")) as [[{ n: number }]];
      expect(Number(hours.n), 'events counted in folded hours').to.be.above(1000);
      const app = testApp(t);

      let page: request.Response | undefined;
      const capped = await sqlDuring(t.db, async () => {
        page = await request(app).get('/api/v1/events').query({ retention_status: 'archived', limit: 50 }).expect(200);
      });
      expect(page!.body.pagination).to.include({ total_records: 10_000, total_is_exact: false, total_pages: 200 });
      expect(page!.body.events).to.have.length(50);
      expect(capped.filter(countsEvents), capped.join('\n')).to.deep.equal([]);
      expect(
        capped.some((q) => /from `?event_hours`?/i.test(q) && /from `?event_counts`?/i.test(q)),
        'the rollups were read',
      ).to.equal(true);

      // Failures: 30 in the rollups, short of the cap: exact, the rollups' whole hours and minutes plus the
      // view's ends (before its first whole hour, after its last whole minute) counted from the rows.
      page = await request(app).get('/api/v1/events').query({ retention_status: 'archived', execution_status: 'failure' }).expect(200);
      expect(page.body.pagination).to.include({ total_records: 30, total_is_exact: true });
      // That count reads the ends only, one bounded range of the status index: none of the 30 lies there.
      const f = { retention: 'archived' as const, window: w, execution_status: 'failure' as const };
      const { result, sql } = await captureSql(t.db, (trx) => listEvents(trx, f, 50, { offset: 0 }, 10_000));
      expect(result.total).to.equal(30);
      const counts = sql.filter((q) => countsEvents(q.sql));
      expect(counts, JSON.stringify(sql)).to.have.length(1);
      const [[ends]] = (await t.db.raw(counts[0]!.sql, counts[0]!.bindings as Knex.RawBinding[])) as [[{ n: number }]];
      expect(Number(ends.n), 'failures counted from the rows').to.equal(0);
      const endsPlan = (await explain(t.db, counts[0]!)).filter((p) => p.table === 'event_logs');
      expect(endsPlan, 'one read of event_logs').to.have.length(1);
      expect(endsPlan[0], JSON.stringify(endsPlan)).to.include({ key: 'idx_events_status_fired', type: 'range' });
      // The active view holds none of them: counted (zero), not taken from the archived hour's rollup.
      page = await request(app).get('/api/v1/events').query({ limit: 50 }).expect(200);
      expect(page.body.pagination).to.include({ total_records: 0, total_is_exact: true });
    });
  });

  describe('reads that run away', () => {
    /** Holds a write lock on event_logs from a connection of its own, so every read of it waits. */
    async function withTableLocked(fn: () => Promise<void>): Promise<void> {
      const conn = await t.db.client.acquireConnection();
      try {
        await t.db.raw('LOCK TABLES event_logs WRITE').connection(conn);
        await fn();
      } finally {
        await t.db.raw('UNLOCK TABLES').connection(conn);
        await t.db.client.releaseConnection(conn);
      }
    }
    const running = async () => {
      const [rows] = (await t.db.raw(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID() AND INFO LIKE 'select%from `event_logs`%'",
        [t.dbName],
      )) as [[{ n: number }]];
      return Number(rows[0].n);
    };

    it('answers 503 READ_TIMEOUT with Retry-After when a list query runs past READ_TIMEOUT, and stops the query', async function () {
      this.timeout(30_000);
      const app = testApp(t, { config: { ...t.config, readTimeoutMs: 300 } });
      await withTableLocked(async () => {
        const res = await request(app).get('/api/v1/events').query({ limit: 5 });
        expect(res.status).to.equal(503);
        expect(res.body).to.include({ code: 'READ_TIMEOUT' });
        expect(res.headers['retry-after']).to.equal('1');
        await until(async () => (await running()) === 0, { timeoutMs: 5000, message: 'the timed-out query stopped' });
      });
    });

    it('stops the query of a client that went away, well before READ_TIMEOUT', async function () {
      this.timeout(30_000);
      const app = testApp(t, { config: { ...t.config, readTimeoutMs: 60_000 } });
      const server = http.createServer(app);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        await withTableLocked(async () => {
          const { port } = server.address() as AddressInfo;
          const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/events?execution_status=failure' });
          req.on('error', () => undefined);
          await until(async () => (await running()) === 1, { timeoutMs: 5000, message: 'the list query waits on the lock' });
          req.destroy();
          await until(async () => (await running()) === 0, { timeoutMs: 5000, message: 'the query stopped when its client left' });
        });
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
});
