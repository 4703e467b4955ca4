import { expect } from 'chai';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { until } from '../helpers/until';
import { metricValue, scrapeMetrics } from '../helpers/metrics';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { count, insertScheduledTriggers, insertStream, untilLogged } from '../helpers/fixtures';
import { logOutboxInserts } from '../helpers/outbox-log';
import { inShortLockWaitTransaction } from '../helpers/lock-wait';
import { captureSql, explain } from '../helpers/capture-sql';
import { startPlatform, type Platform } from '../../src/platform';
import { loadConfig } from '../../src/config';
import { fireSlotMs } from '../../src/relay/relay';
import { createLogger } from '../../src/logger';
import { scheduledEventId } from '../../src/triggers/event-id';
import { claimUnpublished, claimUnpublishedInShards, probeOutbox, promoteDue, shardOf, shardsWithBacklog } from '../../src/db/outbox';
import { claimDue, claimDueStatement, deleteFired, markCancelled, nextPending, nextPendingStatement } from '../../src/db/schedules';
import { insertEvents } from '../../src/db/events';
import { randomUUID } from 'node:crypto';

const quiet = createLogger('error', 'test');

async function eventCount(t: TestEnv): Promise<number> {
  return count(t.db, 'event_logs');
}

/**
 * For the duplicate counts: the direct fire path waits up to 10 s for delivery reports (default 500 ms).
 * On a loaded test machine many reports take longer than 500 ms, and each late one sends its event through
 * the outbox as well — a legitimate second copy (README, Reliability) that would blur a bound meant to
 * catch double claims. The late-report path itself is tested in broker-faults.test.ts.
 */
const PATIENT_DIRECT = { RELAY_DIRECT_TIMEOUT: '10s' };

/** Ready outbox rows (as a webhook or a fallback would leave them), written straight into the table. */
async function insertReadyOutboxRows(t: TestEnv, n: number): Promise<number[]> {
  const rows = Array.from({ length: n }, () => {
    const key = randomUUID();
    return {
      event_id: randomUUID(),
      topic: t.topic,
      msg_key: key,
      shard: shardOf(key, t.config.outboxShards),
      value: Buffer.from('{}'),
      headers: '{}',
      available_at: new Date(),
      published: 0,
      created_at: new Date(),
    };
  });
  await t.db('outbox').insert(rows);
  return (
    (await t
      .db('outbox')
      .whereIn(
        'event_id',
        rows.map((r) => r.event_id),
      )
      .select('id')) as Array<{ id: number }>
  ).map((r) => Number(r.id));
}

/** Runs `claim` in a second transaction that waits at most 2 s for a lock; a wait is reported as such. */
async function claimBeside<T>(t: TestEnv, claim: (trx: import('knex').Knex.Transaction) => Promise<T>): Promise<T> {
  return inShortLockWaitTransaction(t.db, 2, claim).catch((e: { errno?: number }) => {
    if (e.errno === 1205) throw new Error("the second claim waited for the first one's locked rows (no SKIP LOCKED?)");
    throw e;
  });
}

describe('relay: due schedules and the outbox to Kafka', function () {
  this.timeout(180_000);
  let t: TestEnv;
  let reader: KafkaReader;
  const procs: RoleProcess[] = [];
  let platform: Platform | null = null;

  before(async () => {
    t = await createTestEnv('relay');
    // Start the relay once so the topics exist before the reader subscribes.
    platform = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
    reader = await new KafkaReader([t.topic]).start();
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });
  after(async () => {
    await platform?.stop();
    await reader?.stop();
    await t?.cleanup();
  });

  it('fires a time trigger once, within 1 s of run_at, with every field on Kafka', async () => {
    // The app's first request builds its validators (seconds on a loaded machine): not part of the fire lag.
    await request(testApp(t)).get('/api/v1/triggers').expect(200);
    const runAt = new Date(Math.ceil((Date.now() + 2000) / 1000) * 1000);
    const created = await request(testApp(t))
      .post('/api/v1/triggers')
      .send({
        name: 'once',
        type: 'time_scheduled',
        config: { endpoint: 'http://127.0.0.1:9/x', run_at: runAt.toISOString(), payload: { hello: 'world' } },
      })
      .expect(201);
    const id = created.body.id as string;
    const eventId = scheduledEventId(id, runAt);
    const msg = await until(() => reader.byEventId(eventId)[0], { timeoutMs: 15_000, message: 'event on Kafka' });
    const log = await t.db('event_logs').where({ id: eventId }).first();
    expect(log.source).to.equal('scheduler');
    expect(log.trigger_id).to.equal(id);
    expect(new Date(log.scheduled_for).toISOString()).to.equal(runAt.toISOString());
    const lagMs = new Date(log.fired_at).getTime() - runAt.getTime();
    expect(lagMs).to.be.within(0, 1000);
    expect(msg.key).to.equal(id);
    expect(msg.value).to.deep.equal({
      event_id: eventId,
      trigger_id: id,
      type: 'time_scheduled',
      payload: { hello: 'world' },
      fired_at: new Date(log.fired_at).toISOString(),
      scheduled_for: runAt.toISOString(),
      source: 'scheduler',
      is_test_run: false,
      replay_of: null,
    });
    expect(msg.headers['event-id']).to.equal(eventId);
    // Exactly one event, and nothing left to fire.
    expect(await count(t.db, 'event_logs', { trigger_id: id })).to.equal(1);
    expect(await count(t.db, 'trigger_schedules', { trigger_id: id, status: 'pending' })).to.equal(0);
    const after = await request(testApp(t)).get(`/api/v1/triggers/${id}`).expect(200);
    expect(after.body.next_scheduled_run).to.equal(null);
  });

  it('fires straight to Kafka with no outbox row, except behind a shard that still has queued outbox rows', async () => {
    const inserts = await logOutboxInserts(t.db); // published rows leave the outbox: record what went in
    const fireAt = new Date(Date.now() + 1500);
    const ids = await insertScheduledTriggers(t.db, 12, { fireAt });
    const blocked = shardOf(ids[0], t.config.outboxShards);
    // A queued (waiting) outbox row of ids[0]'s shard, as a pending retry or an outage's backlog would be.
    const [blocker] = await t.db('outbox').insert({
      event_id: randomUUID(),
      topic: t.topic,
      msg_key: ids[0],
      shard: blocked,
      value: Buffer.from('{}'),
      headers: '{}',
      available_at: new Date(Date.now() + 3_600_000),
      published: 2,
      created_at: new Date(),
    });
    try {
      const eventIds = ids.map((id) => scheduledEventId(id, fireAt));
      await until(() => eventIds.every((e) => reader.byEventId(e).length > 0), { timeoutMs: 15_000, message: 'all on Kafka' });
      const queued = new Set((await inserts.rows()).map((r) => r.event_id));
      const logs = (await t.db('event_logs').whereIn('id', eventIds).select('id', 'published_at', 'execution_status')) as Array<{
        id: string;
        published_at: Date | null;
        execution_status: string;
      }>;
      expect(logs).to.have.length(ids.length);
      for (const [i, id] of ids.entries()) {
        // Behind the queued row: through the outbox. Elsewhere: produced in the fire transaction.
        expect(queued.has(eventIds[i]), `trigger ${i} (shard ${shardOf(id, t.config.outboxShards)}, blocked ${blocked})`).to.equal(
          shardOf(id, t.config.outboxShards) === blocked,
        );
      }
      expect(logs.every((l) => l.published_at !== null && l.execution_status === 'published')).to.equal(true);
    } finally {
      await t.db('outbox').where({ id: blocker }).delete();
      await inserts.stop();
    }
  });

  it('deletes the schedule rows it fires and records their fire lags for the overview, one row per batch', async () => {
    const since = new Date(Date.now() - 1000);
    const fireAt = new Date(Date.now() - 500);
    const ids = await insertScheduledTriggers(t.db, 5, { fireAt });
    await untilLogged(t.db, ids, {
      message: 'all five fired',
    });
    expect(await t.db('trigger_schedules').whereIn('trigger_id', ids).pluck('id'), 'no schedule row left').to.deep.equal([]);
    const rows = (await t.db('fire_lags').where('fired_at', '>=', since).select('lags_ms')) as Array<{ lags_ms: string }>;
    const lags = rows.flatMap((r) => r.lags_ms.split(',').map(Number));
    expect(lags.length, 'a lag per fired event (other tests may fire meanwhile)').to.be.at.least(ids.length);
    expect(rows.length, 'one row per batch, not per event').to.be.below(lags.length + 1);
    for (const l of lags) expect(l).to.be.within(0, 60_000);
    const o = await request(testApp(t)).get('/api/v1/overview').expect(200);
    expect(o.body.fire_lag.sample_size).to.be.at.least(ids.length);
  });

  it('grows its claim while claims come back full (RELAY_BATCH_SIZE doubled up to RELAY_BATCH_MAX), each occurrence fired once', async () => {
    await platform?.stop(); // one relay, one lane: its claims are the only ones
    platform = null;
    const before = Number(((await t.db('fire_lags').max({ id: 'id' })) as Array<{ id: number | null }>)[0]!.id ?? 0);
    const ids = await insertScheduledTriggers(t.db, 700, { fireAt: new Date(Date.now() - 500) });
    const grown = await startPlatform({ ...t.config, relayBatchSize: 50, relayBatchMax: 200, relayConcurrency: 1 }, ['relay'], {
      logger: quiet,
      migrate: false,
    });
    try {
      await until(async () => (await count(t.db, 'trigger_schedules', { status: 'pending' })) === 0, { message: 'all 700 fired' });
    } finally {
      await grown.stop();
      platform = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
    }
    expect(await t.db('event_logs').whereIn('trigger_id', ids).pluck('id')).to.have.length(700);
    // One fire_lags row per fire transaction, a lag per event fired: the batches' sizes, in order.
    const batches = ((await t.db('fire_lags').where('id', '>', before).orderBy('id').pluck('lags_ms')) as string[]).map(
      (l) => l.split(',').length,
    );
    expect(batches[0], `batch sizes ${batches.join(', ')}`).to.equal(50);
    expect(Math.max(...batches), `batch sizes ${batches.join(', ')}`).to.equal(200);
    expect(batches.reduce((a, b) => a + b, 0)).to.equal(700);
  });

  it('claims an occurrence committed behind its last claim (already due when written) within a claim from the head, while a stream keeps it busy', async () => {
    await platform?.stop(); // one relay, one lane: its claims start past its own earlier ones
    platform = null;
    const config = { ...t.config, relayConcurrency: 1, relayFireWindowMs: 10, relayFireWindowMaxMs: 10 };
    const relay = await startPlatform(config, ['relay'], { logger: quiet, migrate: false });
    try {
      // A stream of 800 occurrences, five every 25 ms (200 a second for 4 s), written before it falls due.
      const first = Date.now() + 5000;
      const stream = await insertStream(t.db, first, { instants: 160, per: 5, stepMs: 25 });
      expect(Date.now(), 'the stream was written before it fell due').to.be.below(first);
      // 1 s into the stream, an occurrence due 900 ms ago: behind every point the lane has passed since.
      await until(async () => Date.now() >= first + 1000, { intervalMs: 5, message: 'one second into the stream' });
      const [late] = await insertScheduledTriggers(t.db, 1, { fireAt: new Date(first + 100) });
      const writtenAt = Date.now();
      await untilLogged(t.db, [late!], { message: 'the late occurrence fired' });
      const [row] = (await t.db('event_logs').where('trigger_id', late!).select('fired_at')) as Array<{ fired_at: Date }>;
      // A claim from the head comes every SCHEDULER_INTERVAL (250 ms here) while the stream runs; a lane that
      // only claimed past its points would leave it until the stream ends (first + 4 s) and claims come back empty.
      expect(row!.fired_at.getTime() - writtenAt, 'fired this long after it was written (ms)').to.be.below(1500);
      expect(row!.fired_at.getTime(), 'fired while the stream was still running').to.be.below(first + 3500);
      await untilLogged(t.db, stream, { message: 'the stream fired', timeoutMs: 60_000 });
    } finally {
      await relay.stop();
      platform = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
    }
  });

  it('widens its fire window while fire batches are small (a trickle), up to RELAY_FIRE_WINDOW_MAX, and reports it in etp_relay_fire_window_seconds', async () => {
    await platform?.stop(); // one relay, one lane: its batches are the only ones
    platform = null;
    const windows: number[] = [];
    try {
      for (const most of [10, 40]) {
        // A trickle: one occurrence every 100 ms, so each fire batch holds one event, or two.
        const first = Date.now() + 1000;
        const ids = (
          await Promise.all(Array.from({ length: 12 }, (_, i) => insertScheduledTriggers(t.db, 1, { fireAt: new Date(first + i * 100) })))
        ).flat();
        const config = { ...t.config, relayConcurrency: 1, relayFireWindowMs: 10, relayFireWindowMaxMs: most };
        const relay = await startPlatform(config, ['relay'], { logger: quiet, migrate: false });
        try {
          await untilLogged(t.db, ids, {
            message: 'the trickle fired',
          });
          windows.push(metricValue(await scrapeMetrics(relay.ports.relay), 'etp_relay_fire_window_seconds'));
        } finally {
          await relay.stop();
        }
      }
    } finally {
      platform = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
    }
    expect(windows[0], 'RELAY_FIRE_WINDOW_MAX = RELAY_FIRE_WINDOW: a fixed window').to.equal(0.01);
    expect(windows[1], 'batches of one or two events: widened to the most').to.be.closeTo(0.04, 0.002);
  });

  for (const ordering of [true, false]) {
    it(`with two relays, takes turns in fire slots: their claims fall a slot apart, not at random moments (${ordering ? 'shard leases' : 'unordered mode: the roster'})`, async () => {
      await platform?.stop(); // only the two relays below claim
      platform = null;
      // Ordered mode counts the relays in the shard leases' refresh, unordered mode (no leases) in the roster's.
      const config = {
        ...t.config,
        outboxOrdering: ordering,
        relayConcurrency: 1,
        relayFireWindowMs: 10,
        relayFireWindowMaxMs: 10,
        relayLeaseMs: 1000,
      };
      const slotMs = fireSlotMs(10, 10);
      const relays = [
        await startPlatform(config, ['relay'], { logger: quiet, migrate: false }),
        await startPlatform(config, ['relay'], { logger: quiet, migrate: false }),
      ];
      try {
        // 1,000 occurrences, five every 10 ms (500 a second for 2 s), due once both relays have seen each
        // other (a lease refresh every quarter lease time; the lease time is short here).
        const first = Date.now() + 5000;
        const ids = await insertStream(t.db, first, { instants: 200, per: 5, stepMs: 10 });
        expect(Date.now(), 'the stream was written before it fell due').to.be.below(first);
        await untilLogged(t.db, ids, {
          message: 'the stream fired',
          timeoutMs: 60_000,
        });
        // Each fire transaction writes one fire_lags row stamped at its claim: the platform's claims, in order.
        const claims = (
          (await t
            .db('fire_lags')
            .where('fired_at', '>=', new Date(first + 100))
            .andWhere('fired_at', '<', new Date(first + 1900))
            .orderBy('fired_at')
            .pluck('fired_at')) as Date[]
        ).map((d) => d.getTime());
        const gaps = claims.slice(1).map((c, i) => c - claims[i]!);
        // Evenly spaced, nearly every gap is a slot (give or take a timer's delay). Claims at random moments (each
        // relay waiting its own jittered time, as before the slots) spread the gaps from a few ms to twice a slot,
        // and two relays in the same slots leave gaps of about 0 and 2 slots: under half fall near a slot then.
        const nearSlot = gaps.filter((g) => Math.abs(g - slotMs) <= slotMs / 4).length;
        expect(nearSlot / gaps.length, `gaps (ms) ${gaps.join(', ')}`).to.be.at.least(0.7);
        expect(gaps.length, 'about one claim a slot').to.be.within(1800 / slotMs / 2, (1800 / slotMs) * 1.3);
      } finally {
        await Promise.all(relays.map((r) => r.stop()));
        platform = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
      }
    });
  }

  it('does not fire the due rows of inactive triggers', async () => {
    const [id] = await insertScheduledTriggers(t.db, 1, { fireAt: new Date(Date.now() - 1000), status: 'inactive' });
    await until(async () => (await count(t.db, 'trigger_schedules', { trigger_id: id, status: 'cancelled' })) === 1, {
      message: 'row cancelled',
    });
    expect(await count(t.db, 'event_logs', { trigger_id: id })).to.equal(0);
  });

  it('fires a batch that holds an occurrence already logged: that event keeps its one log row, and the others fire', async () => {
    // Due 2 s from now: the logged copy is in place well before the relay claims the batch.
    const fireAt = new Date(Math.ceil((Date.now() + 2000) / 1000) * 1000);
    const ids = await insertScheduledTriggers(t.db, 20, { fireAt });
    const loggedId = scheduledEventId(ids[7]!, fireAt);
    await t.db.transaction((trx) =>
      insertEvents(
        trx,
        [
          {
            id: loggedId,
            trigger_id: ids[7]!,
            trigger_type: 'time_scheduled',
            source: 'scheduler',
            is_test_run: false,
            payload: { logged: 'before' },
            scheduled_for: fireAt,
            fired_at: new Date(),
            published_at: new Date(),
          },
        ],
        new Date(),
      ),
    );
    // A fired row is deleted in the fire transaction.
    await until(async () => (await t.db('trigger_schedules').whereIn('trigger_id', ids).pluck('id')).length === 0, {
      timeoutMs: 30_000,
      message: 'every occurrence of the batch fired',
    });
    const eventIds = ids.map((id) => scheduledEventId(id, fireAt));
    const rows = (await t.db('event_logs').whereIn('id', eventIds).select('id', 'payload')) as Array<{ id: string; payload: string }>;
    expect(rows.map((r) => r.id)).to.have.members(eventIds);
    expect(JSON.parse(rows.find((r) => r.id === loggedId)!.payload)).to.deep.equal({ logged: 'before' });
    await until(() => eventIds.every((id) => id === loggedId || reader.byEventId(id).length > 0), {
      timeoutMs: 30_000,
      message: 'the other events on Kafka',
    });
  });

  it('fires a 6-field every-second cron on successive seconds, keeping the next row even when its relay is killed', async () => {
    await platform!.stop();
    platform = null;
    const created = await request(testApp(t))
      .post('/api/v1/triggers')
      .send({ name: 'every-second', type: 'cron_scheduled', config: { endpoint: 'http://127.0.0.1:9/x', cron: '* * * * * *' } })
      .expect(201);
    const id = created.body.id as string;
    const times = async () =>
      ((await t.db('event_logs').where({ trigger_id: id }).orderBy('scheduled_for')) as Array<{ scheduled_for: Date }>).map((r) =>
        new Date(r.scheduled_for).getTime(),
      );
    const relay = await spawnRole('relay', t.env);
    procs.push(relay);
    await until(async () => (await times()).length >= 3, { timeoutMs: 15_000, message: '3 firings' });
    await relay.kill('SIGKILL');
    // Killed between firings: the next occurrence was inserted in the same commit as the last firing.
    expect(await count(t.db, 'trigger_schedules', { trigger_id: id, status: 'pending' })).to.equal(1);
    const before = (await times()).length;
    procs.push(await spawnRole('relay', t.env));
    await until(async () => (await times()).length >= before + 3, { timeoutMs: 15_000, message: '3 more firings' });
    const all = await times();
    expect(new Set(all).size).to.equal(all.length);
    for (let i = 1; i < all.length; i++) expect(all[i] - all[i - 1]).to.be.at.least(1000);
    all.forEach((ms) => expect(ms % 1000).to.equal(0));
    // Before the kill the occurrences were consecutive seconds.
    for (let i = 1; i < 3; i++) expect(all[i] - all[i - 1]).to.equal(1000);
    await request(testApp(t)).delete(`/api/v1/triggers/${id}`).expect(204);
  });

  it('claims due schedule rows disjointly: a concurrent claim skips the rows another holds, without waiting for them', async () => {
    await platform?.stop(); // no relay of this process may claim meanwhile
    platform = null;
    const ids = await insertScheduledTriggers(t.db, 20, { fireAt: new Date(Date.now() - 1000) });
    const ours = (rows: Array<{ id: number; trigger_id: string }>) => rows.filter((r) => ids.includes(r.trigger_id)).map((r) => r.id);
    const first = await t.db.transaction();
    try {
      const a = ours((await claimDue(first, 8)).due);
      expect(a).to.have.length(8);
      const b = ours((await claimBeside(t, (second) => claimDue(second, 100))).due);
      expect(
        b.filter((id) => a.includes(id)),
        'rows claimed by both',
      ).to.deep.equal([]);
      expect(b, 'the second claim takes every other due row').to.have.length(12);
    } finally {
      await first.rollback();
      await t.db('trigger_schedules').whereIn('trigger_id', ids).delete();
      await t.db('triggers').whereIn('id', ids).delete();
    }
  });

  it("reads the claimed rows' triggers without locking them: an edit of such a trigger does not wait for the fire transaction", async () => {
    await platform?.stop(); // no relay of this process may claim meanwhile
    platform = null;
    const ids = await insertScheduledTriggers(t.db, 3, { fireAt: new Date(Date.now() - 1000) });
    const first = await t.db.transaction();
    try {
      const claim = await claimDue(first, 100);
      const ours = claim.due.filter((d) => ids.includes(d.trigger_id));
      expect(ours, 'every due row claimed').to.have.length(3);
      for (const d of ours)
        expect(claim.triggers.get(d.trigger_id), `trigger of row ${d.id}`).to.include({ id: d.trigger_id, status: 'active' });
      // While the claim is held (its transaction open), another connection edits a claimed row's trigger.
      const edited = await inShortLockWaitTransaction(t.db, 2, (trx) =>
        trx('triggers').where({ id: ours[0]!.trigger_id }).update({ status: 'inactive', updated_at: new Date() }),
      ).catch((e: { errno?: number }) => {
        if (e.errno === 1205) throw new Error("the trigger edit waited for the claim's transaction: the claim locked the trigger row");
        throw e;
      });
      expect(edited, 'trigger rows updated').to.equal(1);
      // The claimed schedule rows themselves stay locked.
      const schedule = await inShortLockWaitTransaction(t.db, 1, (trx) =>
        trx('trigger_schedules').where({ id: ours[0]!.id }).update({ attempt_count: 1 }),
      ).then(
        () => 'updated',
        (e: { errno?: number }) => (e.errno === 1205 ? 'waited' : Promise.reject(e)),
      );
      expect(schedule, "a claimed schedule row is locked by the claim's transaction").to.equal('waited');
    } finally {
      await first.rollback();
      await t.db('trigger_schedules').whereIn('trigger_id', ids).delete();
      await t.db('triggers').whereIn('id', ids).delete();
    }
  });

  it('claims outbox rows disjointly (OUTBOX_ORDERING=off): a concurrent claim skips the rows another holds, without waiting', async () => {
    await platform?.stop();
    platform = null;
    const ids = await insertReadyOutboxRows(t, 20);
    const ours = (rows: Array<{ id: number }>) => rows.map((r) => r.id).filter((id) => ids.includes(id));
    const first = await t.db.transaction();
    try {
      const a = ours(await claimUnpublished(first, 8));
      expect(a).to.have.length(8);
      const b = ours(await claimBeside(t, (second) => claimUnpublished(second, 100)));
      expect(
        b.filter((id) => a.includes(id)),
        'rows claimed by both',
      ).to.deep.equal([]);
      expect(b, 'the second claim takes every other ready row').to.have.length(12);
    } finally {
      await first.rollback();
      await t.db('outbox').whereIn('id', ids).delete();
    }
  });

  it('4 relay processes fire 5,000 triggers due at one instant: all logged and counted once in the rollups, none fired twice (a copy on Kafka only after a late report)', async () => {
    const n = 5000;
    const inserts = await logOutboxInserts(t.db);
    try {
      const fireAt = new Date(Math.ceil((Date.now() + 6000) / 1000) * 1000);
      const ids = await insertScheduledTriggers(t.db, n, { fireAt });
      const base = await eventCount(t);
      const relays = await Promise.all([1, 2, 3, 4].map(() => spawnRole('relay', { ...t.env, ...PATIENT_DIRECT })));
      procs.push(...relays);
      const expected = new Set(ids.map((id) => scheduledEventId(id, fireAt)));
      await until(() => [...expected].every((id) => reader.byEventId(id).length > 0), {
        timeoutMs: 90_000,
        intervalMs: 200,
        message: 'all on Kafka',
      });
      // Fired directly, a batch is on Kafka a moment before its event logs commit: wait for the commits.
      await until(async () => (await eventCount(t)) - base >= n, { timeoutMs: 30_000, message: 'all event logs committed' });
      expect((await eventCount(t)) - base).to.equal(n);
      // Each batch counts its events in the rollups itself (the insert trigger stands aside): once each in
      // event_counts (below). These are one-shot triggers, which the per-trigger rollup leaves out.
      const [[perTrigger]] = (await t.db.raw(
        `SELECT COUNT(*) AS n FROM trigger_event_counts WHERE trigger_id IN (${ids.map(() => '?').join(',')})`,
        ids,
      )) as [[{ n: number }]];
      expect(Number(perTrigger.n), 'per-trigger rollup rows of one-shot triggers').to.equal(0);
      const [[minutes]] = (await t.db.raw(
        `SELECT (SELECT SUM(n) FROM event_counts WHERE kind = 'fired' AND minute >= m.lo AND minute <= m.hi) AS rollup,
                (SELECT COUNT(*) FROM event_logs WHERE fired_at >= m.lo AND fired_at < m.hi + INTERVAL 1 MINUTE) AS direct
           FROM (SELECT CAST(DATE_FORMAT(MIN(fired_at), '%Y-%m-%d %H:%i:00') AS DATETIME) AS lo,
                        CAST(DATE_FORMAT(MAX(fired_at), '%Y-%m-%d %H:%i:00') AS DATETIME) AS hi
                   FROM event_logs WHERE trigger_id IN (${ids.map(() => '?').join(',')})) m`,
        ids,
      )) as [[{ rollup: number; direct: number }]];
      expect(Number(minutes.rollup), 'event_counts over the minutes of the burst').to.equal(Number(minutes.direct));
      // Let every relay finish what it holds (a late copy through the outbox included) before counting copies.
      await until(async () => (await count(t.db, 'outbox', { published: 0 })) === 0, { timeoutMs: 30_000, message: 'outbox drained' });
      const copies = new Map<string, number>();
      for (const m of reader.messages) {
        const id = m.value.event_id as string;
        if (expected.has(id)) copies.set(id, (copies.get(id) ?? 0) + 1);
      }
      // Disjoint claims: no occurrence was fired by two relays. The one way an event reaches Kafka twice
      // without a kill is a delivery report later than RELAY_DIRECT_TIMEOUT: then it also went through
      // the outbox (same event id), once.
      const viaOutbox = new Set((await inserts.rows()).map((r) => r.event_id).filter((id) => expected.has(id)));
      const doubled = [...copies].filter(([, c]) => c > 1);
      const unexplained = doubled.filter(([id, c]) => !viaOutbox.has(id) || c > 2);
      const duplicates = doubled.reduce((sum, [, c]) => sum + c - 1, 0);
      console.log(
        `      5,000 due at once over 4 relays: ${duplicates} duplicates on Kafka, ${viaOutbox.size} events sent through the outbox after a late report`,
      );
      expect(
        unexplained.slice(0, 5),
        `${unexplained.length} events on Kafka more than once without a late report (claimed by two relays?)`,
      ).to.deep.equal([]);
      const lags = (await t.db('event_logs').whereIn('trigger_id', ids.slice(0, 1000)).select('fired_at', 'scheduled_for')) as Array<{
        fired_at: Date;
        scheduled_for: Date;
      }>;
      const maxLag = Math.max(...lags.map((l) => new Date(l.fired_at).getTime() - new Date(l.scheduled_for).getTime()));
      expect(maxLag).to.be.below(10_000); // the assignment's SLA
    } finally {
      await inserts.stop();
    }
  });

  it('loses nothing when a relay is killed -9 while publishing; Kafka duplicates only of the batches it had in flight', async () => {
    const n = 10_000;
    // Claims start at 100 rows and grow to 200 while they come back full (RELAY_BATCH_MAX): the bound is the larger.
    const batch = 200;
    const inserts = await logOutboxInserts(t.db);
    try {
      const fireAt = new Date(Date.now() - 1000);
      const ids = await insertScheduledTriggers(t.db, n, { fireAt });
      const expected = new Set(ids.map((id) => scheduledEventId(id, fireAt)));
      const base = await eventCount(t);
      const victim = await spawnRole('relay', {
        ...t.env,
        ...PATIENT_DIRECT,
        RELAY_BATCH_SIZE: String(batch / 2),
        RELAY_BATCH_MAX: String(batch),
      });
      procs.push(victim);
      // Kill it as soon as its first batch has committed: the other lanes' batches are then in flight.
      await until(async () => (await eventCount(t)) > base, { timeoutMs: 30_000, intervalMs: 5, message: 'first batch committed' });
      await victim.kill('SIGKILL');
      const committedBeforeKill = (await eventCount(t)) - base;
      expect(committedBeforeKill, 'the relay had finished before the kill: no fault injected').to.be.below(n);
      procs.push(await spawnRole('relay', { ...t.env, ...PATIENT_DIRECT }));
      await until(() => [...expected].every((id) => reader.byEventId(id).length > 0), {
        timeoutMs: 120_000,
        intervalMs: 250,
        message: 'all on Kafka',
      });
      await until(
        async () => Number(((await t.db('event_logs').whereIn('trigger_id', ids).count({ n: '*' }))[0] as { n: number }).n) === n,
        {
          timeoutMs: 30_000,
          message: 'every occurrence logged',
        },
      );
      await until(async () => (await count(t.db, 'outbox', { published: 0 })) === 0, { timeoutMs: 30_000, message: 'outbox drained' });
      const onKafka = reader.messages.filter((m) => expected.has(m.value.event_id as string)).length;
      // What the victim had produced but not committed: at most its lanes' batches in flight. Each is fired
      // again under the same event id. Late delivery reports (RELAY_DIRECT_TIMEOUT) add at most one copy per
      // event sent through the outbox.
      const inFlight = t.config.relayConcurrency * batch;
      const viaOutbox = new Set((await inserts.rows()).map((r) => r.event_id).filter((id) => expected.has(id))).size;
      console.log(
        `      killed mid-publish (${committedBeforeKill} of ${n} committed before the kill): ${onKafka - n} duplicates on Kafka (bound ${inFlight} in flight + ${viaOutbox} via the outbox), 0 lost`,
      );
      expect(onKafka - n).to.be.within(0, inFlight + viaOutbox);
    } finally {
      await inserts.stop();
    }
  });

  it('moves an event log active → archived → deleted with windows of seconds', async () => {
    const cfg = loadConfig({
      ...t.env,
      RETENTION_ACTIVE_SECONDS: '2',
      RETENTION_DELETE_AFTER_SECONDS: '4',
      RETENTION_SWEEP_INTERVAL: '200ms',
    });
    const p = await startPlatform(cfg, ['relay'], { logger: quiet, migrate: false });
    try {
      // The API of the same windows: retention follows from age, and the sweep deletes the row. Built and
      // warmed before the event exists, so the first read below comes well inside the 2 s active window.
      const app = testApp(t, { config: cfg });
      await request(app).get(`/api/v1/events/${randomUUID()}`).expect(404);
      const created = await request(app)
        .post('/api/v1/triggers')
        .send({ name: 'ret', type: 'webhook', config: { endpoint: 'http://127.0.0.1:9/x', schema: { type: 'object' } } })
        .expect(201);
      const fired = await request(app).post(`/api/v1/webhook/${created.body.id}`).send({ a: 1 }).expect(202);
      const id = fired.body.event_id as string;
      const status = async () => {
        const res = await request(app).get(`/api/v1/events/${id}`);
        return res.status === 404 ? 'gone' : (res.body as { retention_status: string }).retention_status;
      };
      const rows = async () => Number(((await t.db('event_logs').where({ id }).count({ n: '*' }))[0] as { n: number }).n);
      expect(await status()).to.equal('active');
      await until(async () => (await status()) === 'archived', { timeoutMs: 10_000, message: 'archived' });
      const archived = await request(app).get('/api/v1/events?retention_status=archived').expect(200);
      expect(archived.body.events.map((e: { id: string }) => e.id)).to.include(id);
      const active = await request(app).get('/api/v1/events').expect(200);
      expect(active.body.events.map((e: { id: string }) => e.id)).not.to.include(id);
      expect(await rows(), 'archiving rewrites nothing: the row stays until deleted').to.equal(1);
      await until(async () => (await rows()) === 0, { timeoutMs: 10_000, message: 'deleted by the sweep' });
      await request(app).get(`/api/v1/events/${id}`).expect(404);
    } finally {
      await p.stop();
    }
  });

  it('claims through indexes that match the claim queries (no filesort), as the relay sends them', async () => {
    // The statements the src/ functions send (captured in a rolled-back transaction), not copies of them.
    const plan = async (name: string, fn: (trx: import('knex').Knex.Transaction) => Promise<unknown>, index: number = 0) => {
      const { sql: sent } = await captureSql(t.db, fn);
      expect(sent.length, `${name}: statements sent`).to.be.greaterThan(index);
      const [row] = await explain(t.db, sent[index]!);
      return { ...row!, Extra: row!.Extra ?? '', sql: sent[index]!.sql };
    };
    // The claim is a derived table (walked in index order, no filesort) joined to its triggers by primary key.
    const { sql: claimSent } = await captureSql(t.db, (trx) => claimDue(trx, 500));
    const claimPlan = await explain(t.db, claimSent[0]!);
    const s = claimPlan.find((r) => r.table === 'trigger_schedules');
    expect(s, claimSent[0]!.sql).to.include({ key: 'idx_schedules_claim' });
    expect(s!.Extra ?? '', claimSent[0]!.sql).not.to.match(/filesort/);
    expect(
      claimPlan.find((r) => r.table === 't'),
      claimSent[0]!.sql,
    ).to.include({ type: 'eq_ref', key: 'PRIMARY' });
    expect(claimPlan.map((r) => r.Extra ?? '').join(' | '), claimSent[0]!.sql).not.to.match(/filesort/);
    // The fire batch deletes the rows it fired, and cancels those of inactive triggers, one by one by
    // primary key: a scan would wait on (and lock) rows of other relays' batches, and two batches' deletes
    // deadlocked.
    const claimed = Array.from({ length: 500 }, (_, i) => i + 1);
    for (const [name, fn] of [
      ['deleteFired', (trx: import('knex').Knex.Transaction) => deleteFired(trx, claimed)],
      ['markCancelled', (trx: import('knex').Knex.Transaction) => markCancelled(trx, claimed, new Date())],
    ] as const) {
      const { sql: sent } = await captureSql(t.db, fn);
      expect(
        (await explain(t.db, sent[0]!)).find((r) => r.table === 's'),
        `${name}: ${sent[0]!.sql}`,
      ).to.include({ type: 'eq_ref', key: 'PRIMARY' });
    }
    const e = await plan('nextPending', (trx) => nextPending(trx));
    expect(e.key, e.sql).to.equal('idx_schedules_claim');
    expect(e.Extra, e.sql).not.to.match(/filesort/);
    // A fire lane's claim, and its read of the next pending occurrence, past its last claim (relay/claim-cursor.ts):
    // a range of idx_schedules_claim that starts at the point (a ref on status alone would start at the head, and
    // walk the fired rows' delete-marked entries there), in the index's order.
    const point = { fire_at: new Date(), id: 1 };
    for (const [name, statement] of [
      ['claim past a point', claimDueStatement(500, point)],
      ['next pending past a point', nextPendingStatement(point)],
    ] as const) {
      const { sql: sent } = await captureSql(t.db, (trx) => trx.raw(statement.sql, statement.values));
      const rows = await explain(t.db, sent[0]!);
      const s2 = rows.find((r) => r.table === 'trigger_schedules');
      expect(s2, `${name}: ${statement.sql}`).to.include({ key: 'idx_schedules_claim', type: 'range' });
      expect(rows.map((r) => r.Extra ?? '').join(' | '), `${name}: ${statement.sql}`).not.to.match(/filesort/);
    }
    // The unordered claim is left to the optimizer: both indexes that hold the claim's order serve it, and which one
    // it takes depends on the outbox's statistics (the primary key with a few rows left by the tests before). Forcing
    // idx_outbox_claim was measured slower with four relays of three lanes each (4,369 and 5,147 events/s against
    // 7,009), probably because each row another claimer holds then costs a primary-key lookup before it is skipped.
    const o = await plan('claimUnpublished', (trx) => claimUnpublished(trx, 500));
    expect(['idx_outbox_claim', 'PRIMARY'], o.sql).to.include(o.key);
    expect(o.type, o.sql).to.not.equal('ALL');
    expect(o.Extra, o.sql).not.to.match(/filesort/);
    // The ordered claim, and the promotion of waiting rows (all shards; per-shard on a large outbox in
    // outbox-plans.test.ts).
    const p = await plan('claimUnpublishedInShards', (trx) => claimUnpublishedInShards(trx, 8, [3]));
    expect(p.key, p.sql).to.equal('idx_outbox_shard_claim');
    expect(p.Extra, p.sql).not.to.match(/filesort/);
    const w = await plan('promoteDue', (trx) => promoteDue(trx, 1000));
    expect(w.key, w.sql).to.equal('idx_outbox_waiting');
    expect(w.Extra, w.sql).not.to.match(/filesort/);
    // An idle publish lane's probe: is anything ready, or due for promotion, in my shards (or anywhere)?
    // One statement of two subqueries, each an index dive.
    for (const shards of [[1, 5, 9], null]) {
      const { sql: sent } = await captureSql(t.db, (trx) => probeOutbox(trx, shards));
      expect(sent, 'probeOutbox: one statement').to.have.length(1);
      const rows = await explain(t.db, sent[0]!);
      const keys = rows.filter((r) => r.table === 'outbox').map((r) => r.key);
      expect(keys, sent[0]!.sql).to.have.members([shards ? 'idx_outbox_shard_claim' : 'idx_outbox_claim', 'idx_outbox_waiting']);
      for (const r of rows) expect(r.Extra ?? '', sent[0]!.sql).not.to.match(/filesort|temporary/);
    }
    // The direct fire path's "anything queued at all?" probe.
    const b = await plan('shardsWithBacklog', (trx) => shardsWithBacklog(trx, [1, 5, 9]));
    expect(b.key, b.sql).to.equal('idx_outbox_claim');
  });
});
