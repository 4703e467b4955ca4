import { expect } from 'chai';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { RelayRoster, ShardLeases } from '../../src/relay/leases';
import { inShortLockWaitTransaction } from '../helpers/lock-wait';
import { createMultiStatementPool } from '../../src/db/multi';

/** The lease check inside a claim transaction: lanes do not wait for each other, a takeover waits for the claim. */
describe('shard lease checks in claim transactions', function () {
  this.timeout(60_000);
  let t: TestEnv;
  let leases: ShardLeases;

  before(async () => {
    t = await createTestEnv('leases');
    leases = new ShardLeases(t.db, t.config.outboxShards, 30_000);
    await leases.init();
    // The only live relay: it takes every shard.
    expect(await leases.refresh()).to.have.length(t.config.outboxShards);
  });
  after(async () => {
    await leases.release();
    await t?.cleanup();
  });

  it("lets two lanes check disjoint shard sets at once, without waiting for each other's batch", async () => {
    // A relay's three publish lanes: shard % 3 = lane.
    const [a, b] = [0, 1].map((lane) => leases.owned().filter((s) => s % 3 === lane));
    const laneA = await t.db.transaction();
    try {
      expect(await leases.verify(laneA, a)).to.deep.equal(a);
      // MariaDB reads the small lease table whole; with exclusive locks this check waited for lane A's commit.
      expect(await inShortLockWaitTransaction(t.db, 2, (laneB) => leases.verify(laneB, b))).to.deep.equal(b);
    } finally {
      await laneA.rollback();
    }
  });

  it('makes a takeover of a shard wait until the claim transaction that checked its lease has ended', async () => {
    const claim = await t.db.transaction();
    try {
      expect(await leases.verify(claim, [7])).to.deep.equal([7]);
      let error: { errno?: number } | null = null;
      await inShortLockWaitTransaction(t.db, 1, (taker) =>
        taker.raw("UPDATE relay_leases SET owner = 'relay-other', token = token + 1 WHERE shard = 7").catch((e: { errno?: number }) => {
          error = e;
        }),
      );
      expect(error, 'the takeover should wait for the claim and time out').to.not.equal(null);
      expect(error!.errno).to.equal(1205);
    } finally {
      await claim.rollback();
    }
  });

  it('refuses a shard whose fencing token is not the one this relay took it with, until it has re-read its leases', async () => {
    const [stale, fresh] = leases.owned();
    // The lease was lost and taken again since this relay read it (same owner, token bumped as every
    // takeover does): a lane still holding the old token must not claim with it.
    await t.db.raw('UPDATE relay_leases SET token = token + 1 WHERE shard = ?', [stale]);
    const claim = await t.db.transaction();
    try {
      expect(await leases.verify(claim, [stale, fresh])).to.deep.equal([fresh]);
    } finally {
      await claim.rollback();
    }
    await leases.refresh(); // re-reads the tokens it holds
    const again = await t.db.transaction();
    try {
      expect(await leases.verify(again, [stale, fresh])).to.deep.equal([stale, fresh]);
    } finally {
      await again.rollback();
    }
  });

  it('shares the shards with a relay that joins and refreshes in one round trip, each holding its half, none twice', async () => {
    // The second relay refreshes as a running relay does, on its multi-statement pool; this one through knex.
    const pool = createMultiStatementPool(t.config.databaseUrl, 1);
    let poolQueries = 0;
    const query = pool.query.bind(pool);
    pool.query = ((...a: Parameters<typeof query>) => (poolQueries++, query(...a))) as typeof pool.query;
    const joiner = new ShardLeases(t.db, t.config.outboxShards, 30_000, pool);
    try {
      // It sees two live relays (itself and this one) and takes its fair share of what is free: none yet.
      expect(await joiner.refresh()).to.deep.equal([]);
      expect(joiner.liveRelays()).to.equal(2);
      // Heartbeat, count, renew, read and clean-up went as one query on the pool.
      expect(poolQueries).to.equal(1);
      // This relay hands half back; the joiner takes it.
      const kept = await leases.refresh();
      expect(kept).to.have.length(Math.ceil(t.config.outboxShards / 2));
      const taken = await joiner.refresh();
      expect(taken).to.have.length(t.config.outboxShards - kept.length);
      expect(taken.filter((s) => kept.includes(s))).to.deep.equal([]);
      // Each knows its rank among the two by relay id (the order of their fire slots), and the ranks differ.
      expect([leases.rank(), joiner.rank()]).to.deep.equal(leases.relayId < joiner.relayId ? [0, 1] : [1, 0]);
    } finally {
      await joiner.release();
      await pool.end();
      // Back to one relay holding everything, for the tests after this one.
      await t.db.raw('DELETE FROM relay_heartbeats WHERE relay_id = ?', [joiner.relayId]);
      expect(await leases.refresh()).to.have.length(t.config.outboxShards);
    }
  });

  it('counts and ranks relays without leases too (the roster of unordered mode), and a stopped relay leaves it at once', async () => {
    const pool = createMultiStatementPool(t.config.databaseUrl, 1);
    // Two relays of unordered mode beside the leased one: the roster counts every relay's heartbeat.
    const a = new RelayRoster(t.db, 30_000, pool);
    const b = new RelayRoster(t.db, 30_000);
    try {
      await a.refresh();
      expect(a.liveRelays(), 'before b heartbeats: a and the leased relay').to.equal(2);
      await b.refresh();
      await a.refresh();
      await leases.refresh();
      expect([a.liveRelays(), b.liveRelays(), leases.liveRelays()]).to.deep.equal([3, 3, 3]);
      const ids = [a.relayId, b.relayId, leases.relayId].sort();
      expect([a.rank(), b.rank(), leases.rank()]).to.deep.equal([
        ids.indexOf(a.relayId),
        ids.indexOf(b.relayId),
        ids.indexOf(leases.relayId),
      ]);
      await b.release();
      await a.refresh();
      expect(a.liveRelays(), 'b released: counted no more').to.equal(2);
    } finally {
      await a.release();
      await b.release();
      await pool.end();
      await leases.refresh();
    }
  });
});
