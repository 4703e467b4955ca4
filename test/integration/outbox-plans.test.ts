import { expect } from 'chai';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { inShortLockWaitTransaction } from '../helpers/lock-wait';
import { captureSql, explain as explainSql, type CapturedQuery } from '../helpers/capture-sql';
import { randomUUID } from 'node:crypto';
import { createDb } from '../../src/db/knex';
import {
  claimUnpublishedInShards,
  ensureShardFences,
  insertOutbox,
  markFailedStatement,
  markPublished,
  markPublishedStatements,
  promoteDue,
  SHARD_FENCE,
  shardOf,
  shardsWithBacklog,
  type ClaimedOutbox,
} from '../../src/db/outbox';

/** A message key (trigger id) whose rows land in `shard` of `shards`. */
function keyInShard(shard: number, shards: number): string {
  for (;;) {
    const k = randomUUID();
    if (shardOf(k, shards) === shard) return k;
  }
}

/** Outbox rows of `topic` ready since a second before `now`, one in each of the shards listed (a shard once per row). */
function readyRowsIn(topic: string, rowShards: number[], shards: number, now: Date) {
  return rowShards.map((shard) => ({
    event_id: randomUUID(),
    message: { topic, key: keyInShard(shard, shards), value: Buffer.from('{}'), headers: {} },
    available_at: new Date(now.getTime() - 1000),
  }));
}

/**
 * Query plans of the relay's outbox statements on a large outbox. On an empty table MariaDB's choice of
 * index says little: these run the real statements against 60,000 rows (in a transaction that is rolled
 * back) and EXPLAIN exactly the SQL they sent.
 */
describe('outbox statements on a large outbox', function () {
  this.timeout(120_000);
  let t: TestEnv;
  const ROWS = 60_000;

  before(async () => {
    t = await createTestEnv('outboxplans');
    // Waiting rows (published = 2) due a minute ago, spread over the 64 shards.
    await t.db.raw(
      `INSERT INTO outbox (event_id, topic, msg_key, shard, value, headers, available_at, published, created_at)
       SELECT UUID(), 'plans', CONCAT('k', seq), seq % 64, REPEAT('x', 300), '{}', UTC_TIMESTAMP(3) - INTERVAL 1 MINUTE, 2, UTC_TIMESTAMP(3)
         FROM seq_1_to_${ROWS}`,
    );
    await t.db.raw('ANALYZE TABLE outbox');
  });
  after(async () => {
    await t?.cleanup();
  });

  const capture = <T>(fn: (trx: import('knex').Knex.Transaction) => Promise<T>) => captureSql(t.db, fn);
  const explain = (q: CapturedQuery) => explainSql(t.db, q);

  it("promotes one lane's due rows in available_at order through idx_outbox_waiting, with no sort of the lane's whole backlog", async () => {
    const shards = Array.from({ length: 64 }, (_, s) => s).filter((s) => s % 3 === 0);
    const { result, sql } = await capture((trx) => promoteDue(trx, 1000, shards));
    expect(result).to.equal(1000);
    expect(sql).to.have.length(1);
    const [plan] = await explain(sql[0]!);
    expect(plan!.key).to.equal('idx_outbox_waiting');
    expect(plan!.Extra ?? '').not.to.match(/filesort/);
  });

  it("claims a lane's shards with one range scan of idx_outbox_shard_claim, in (shard, id) order, with no sort", async () => {
    const lane = Array.from({ length: 21 }, (_, i) => i * 3);
    const { result, sql } = await capture(async (trx) => {
      await promoteDue(trx, ROWS);
      return claimUnpublishedInShards(trx, 500, lane, { next: 30 });
    });
    expect(result.rows).to.have.length(500);
    // Rotation: the claim starts at shard 30, in id order within each shard.
    expect(result.rows[0]!.shard).to.equal(30);
    for (let i = 1; i < result.rows.length; i++) {
      const [a, b] = [result.rows[i - 1]!, result.rows[i]!];
      expect(a.shard < b.shard || (a.shard === b.shard && a.id < b.id), `row ${i} out of (shard, id) order`).to.equal(true);
    }
    const claims = sql.filter((s) => /FROM outbox FORCE INDEX \(idx_outbox_shard_claim\)/.test(s.sql) && /FOR UPDATE/.test(s.sql));
    expect(claims).to.have.length(1); // the first range had 500 rows: no wrap-around statement
    const plan = await explain(claims[0]!);
    expect(plan).to.have.length(1);
    expect(plan[0]!.key).to.equal('idx_outbox_shard_claim');
    expect(plan[0]!.Extra ?? '').to.not.match(/filesort|temporary/i);
  });

  it('promotes only the rows of the shards it is given', async () => {
    const { result } = await capture(async (trx) => {
      const n = await promoteDue(trx, 500, [5, 7]);
      const [rows] = (await trx.raw('SELECT DISTINCT shard FROM outbox WHERE published = 0')) as [Array<{ shard: number }>];
      return { n, shards: rows.map((r) => Number(r.shard)).sort((a, b) => a - b) };
    });
    expect(result.n).to.equal(500);
    expect(result.shards).to.deep.equal([5, 7]);
  });

  it('finds which shards have queued rows with a loose index scan per state, not a read of every queued row', async () => {
    const shards = [1, 5, 9, 13, 17, 21, 25, 29];
    const { result, sql } = await capture(async (trx) => {
      await trx.raw('UPDATE outbox SET published = 1 WHERE shard IN (5, 13)');
      return shardsWithBacklog(trx, shards);
    });
    expect([...result].sort((a, b) => a - b)).to.deep.equal([1, 9, 17, 21, 25, 29]);
    const plans = await explain(sql.find((s) => /UNION/.test(s.sql) && /^\(?select/i.test(s.sql))!);
    const parts = plans.filter((r) => r.key !== null);
    expect(parts).to.have.length(2); // ready (published = 0) and waiting (published = 2)
    for (const p of parts) {
      expect(p.key).to.equal('idx_outbox_shard_claim');
      expect(p.Extra ?? '').to.match(/Using index for group-by/);
      expect(p.Extra ?? '').not.to.match(/filesort/);
    }
  });

  it('answers with one index probe, and no per-shard lookups, when nothing at all is queued', async () => {
    const { result, sql } = await capture(async (trx) => {
      await trx.raw('UPDATE outbox SET published = 1'); // as fences: never queued
      return shardsWithBacklog(trx, [1, 5, 9, 13]);
    });
    expect(result.size).to.equal(0);
    const reads = sql.filter((s) => /^\(?select/i.test(s.sql));
    expect(reads).to.have.length(1);
    const plan = await explain(reads[0]!);
    expect(plan[0]!.key).to.equal('idx_outbox_claim');
  });
});

describe('ordered claims of neighbouring shards', function () {
  this.timeout(60_000);
  let t: TestEnv;

  /** A message key (trigger id) whose rows land in `shard`. */
  const keyIn = (shard: number): string => keyInShard(shard, t.config.outboxShards);

  before(async () => {
    t = await createTestEnv('outboxfences');
    const now = new Date();
    await insertOutbox(t.db, readyRowsIn('fences', [5, 5, 5, 6, 6, 6], t.config.outboxShards, now), now);
  });
  after(async () => {
    await t?.cleanup();
  });

  it("claims a shard holding fewer rows than the batch without waiting for the next shard's rows another relay holds", async () => {
    await ensureShardFences(t.db, t.config.outboxShards);
    const other = await t.db.transaction(); // another relay, in the middle of publishing shard 6
    try {
      expect((await claimUnpublishedInShards(other, 100, [6])).rows).to.have.length(3);
      // Without the fence this claim locks shard 6's first row too, and waits here until the timeout.
      const { rows } = await inShortLockWaitTransaction(t.db, 2, (mine) => claimUnpublishedInShards(mine, 100, [5]));
      expect(rows.map((r) => r.shard)).to.deep.equal([5, 5, 5]);
    } finally {
      await other.rollback();
    }
  });

  it('gives every shard a turn: the next claim starts after the last shard served, and wraps around', async () => {
    const now = new Date();
    const key8 = keyIn(8);
    const key9 = keyIn(9);
    const rows = [key8, key8, key8, key8, key8, key9, key9].map((key) => ({
      event_id: randomUUID(),
      message: { topic: 'rotation', key, value: Buffer.from('{}'), headers: {} },
      available_at: new Date(now.getTime() - 1000),
    }));
    await insertOutbox(t.db, rows, now);
    const cursor = { next: 0 };
    const claims: Array<Array<{ id: number; shard: number }>> = [];
    try {
      for (let i = 0; i < 3; i++) {
        claims.push(
          await t.db.transaction(async (trx) => {
            const got = (await claimUnpublishedInShards(trx, 3, [8, 9], cursor)).rows;
            await markPublished(trx, got, new Date());
            return got.map((r) => ({ id: r.id, shard: r.shard }));
          }),
        );
      }
    } finally {
      await t.db('outbox').where({ topic: 'rotation' }).delete();
    }
    // Shard 8 is hot (5 rows), shard 9 has 2: shard 9 is served in the second claim, not after shard 8 drains.
    expect(claims.map((c) => c.map((r) => r.shard))).to.deep.equal([[8, 8, 8], [9, 9, 8], [8]]);
    // Each shard in id order across the claims.
    for (const shard of [8, 9]) {
      const ids = claims
        .flat()
        .filter((r) => r.shard === shard)
        .map((r) => r.id);
      expect(ids).to.deep.equal([...ids].sort((a, b) => a - b));
    }
  });

  it('adds one fence per shard, once, that no count of queued rows sees', async () => {
    await ensureShardFences(t.db, t.config.outboxShards);
    await ensureShardFences(t.db, t.config.outboxShards);
    const fences = (await t.db('outbox').where({ event_id: SHARD_FENCE }).select('shard', 'published')) as Array<{
      shard: number;
      published: number;
    }>;
    expect(fences).to.have.length(t.config.outboxShards);
    expect(new Set(fences.map((f) => Number(f.shard))).size).to.equal(t.config.outboxShards);
    expect(fences.every((f) => Number(f.published) === 1)).to.equal(true);
    expect(await shardsWithBacklog(t.db, [5, 6, 7])).to.deep.equal(new Set([5, 6]));
  });

  it("writes each row in the shard of its handle's OUTBOX_SHARDS, in a transaction as outside one", async () => {
    const seven = createDb(t.config.databaseUrl, 2, 7);
    try {
      const now = new Date();
      const keys = Array.from({ length: 20 }, () => randomUUID());
      const row = (key: string) => ({
        event_id: randomUUID(),
        message: { topic: 'seven', key, value: Buffer.from('{}'), headers: {} },
        available_at: now,
      });
      await seven.transaction((trx) => insertOutbox(trx, keys.slice(0, 10).map(row), now));
      await insertOutbox(seven, keys.slice(10).map(row), now);
      const got = (await t.db('outbox').where({ topic: 'seven' }).select('msg_key', 'shard')) as Array<{ msg_key: string; shard: number }>;
      expect(got).to.have.length(20);
      for (const r of got) expect(Number(r.shard), r.msg_key).to.equal(shardOf(r.msg_key, 7));
      // With 64 shards some of these keys land at 7 or above: the count really came from the handle.
      expect(keys.some((k) => shardOf(k, 64) >= 7)).to.equal(true);
    } finally {
      await t.db('outbox').where({ topic: 'seven' }).delete();
      await seven.destroy();
    }
  });
});

describe("a publish batch's writes on an outbox that is nearly drained", function () {
  this.timeout(60_000);
  let t: TestEnv;

  before(async () => {
    t = await createTestEnv('outboxbatchwrites');
    // The statistics of an empty outbox, as a table that drains as it goes mostly has, then two lanes'
    // batches: the batch ids are then most of the table, where a plain `id IN (…)` is planned as a scan.
    await t.db.raw('ANALYZE TABLE outbox');
    const now = new Date();
    const rowShards = [11, 12].flatMap((shard) => Array<number>(60).fill(shard));
    await insertOutbox(t.db, readyRowsIn('drained', rowShards, t.config.outboxShards, now), now);
  });
  after(async () => {
    await t?.cleanup();
  });

  it('deletes its delivered rows without waiting for the rows another lane has claimed, and marks failed rows the same way', async () => {
    await ensureShardFences(t.db, t.config.outboxShards);
    const other = await t.db.transaction(); // another lane, in the middle of publishing shard 12
    try {
      expect((await claimUnpublishedInShards(other, 500, [12])).rows).to.have.length(60);
      // A scan of the outbox waits on the other lane's rows here until the timeout (error 1205); two lanes
      // doing that to each other deadlocked.
      const { deleted, failed } = await inShortLockWaitTransaction(t.db, 2, async (mine) => {
        const { rows } = await claimUnpublishedInShards(mine, 500, [11]);
        expect(rows).to.have.length(60);
        const [done, retry] = [rows.slice(0, 50), rows.slice(50)];
        for (const s of markPublishedStatements(done, new Date())) await mine.raw(s.sql, s.values);
        const mark = markFailedStatement(
          retry.map((r) => r.id),
          'kafka: timed out',
          null,
        );
        await mine.raw(mark.sql, mark.values);
        const left = (await mine('outbox').where({ topic: 'drained', shard: 11 }).select('id', 'attempts', 'last_error')) as Array<{
          id: number;
          attempts: number;
          last_error: string;
        }>;
        return { deleted: 60 - left.length, failed: left };
      });
      expect(deleted).to.equal(50);
      expect(failed.map((r) => [Number(r.attempts), r.last_error])).to.deep.equal(Array(10).fill([1, 'kafka: timed out']));
      // The statements as the relay sends them: every row and every event found by its primary key.
      const rows = (await t.db('outbox').where({ topic: 'drained', shard: 11 }).select('id', 'event_id')) as ClaimedOutbox[];
      for (const s of [
        ...markPublishedStatements(rows, new Date()),
        markFailedStatement(
          rows.map((r) => r.id),
          'x',
          null,
        ),
        markFailedStatement(
          rows.map((r) => r.id),
          'x',
          new Date(),
        ),
      ]) {
        const plan = await explainSql(t.db, { sql: s.sql, bindings: s.values as unknown[] });
        expect(
          plan.find((r) => r.table === 'o' || r.table === 'e'),
          s.sql,
        ).to.include({ type: 'eq_ref', key: 'PRIMARY' });
      }
    } finally {
      await other.rollback();
    }
  });
});
