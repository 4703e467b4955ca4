import { expect } from 'chai';
import request from 'supertest';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { createTestEnv, REPO_ROOT, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { until } from '../helpers/until';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { count, insertScheduledTriggers } from '../helpers/fixtures';
import { logOutboxInserts } from '../helpers/outbox-log';
import { startPlatform, type Platform } from '../../src/platform';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/logger';
import { scheduledEventId } from '../../src/triggers/event-id';
import { shardOf } from '../../src/db/outbox';
import { randomUUID } from 'node:crypto';

const quiet = createLogger('error', 'test');

async function eventCount(t: TestEnv): Promise<number> {
  return count(t.db, 'event_logs');
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
    const blocked = shardOf(ids[0]);
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
        expect(queued.has(eventIds[i]), `trigger ${i} (shard ${shardOf(id)}, blocked ${blocked})`).to.equal(shardOf(id) === blocked);
      }
      expect(logs.every((l) => l.published_at !== null && l.execution_status === 'published')).to.equal(true);
    } finally {
      await t.db('outbox').where({ id: blocker }).delete();
      await inserts.stop();
    }
  });

  it('does not fire the due rows of inactive triggers', async () => {
    const [id] = await insertScheduledTriggers(t.db, 1, { fireAt: new Date(Date.now() - 1000), status: 'inactive' });
    await until(async () => (await count(t.db, 'trigger_schedules', { trigger_id: id, status: 'cancelled' })) === 1, {
      message: 'row cancelled',
    });
    expect(await count(t.db, 'event_logs', { trigger_id: id })).to.equal(0);
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

  it('4 relay processes fire 5,000 triggers due at one instant: one event log each, all on Kafka', async () => {
    const n = 5000;
    const fireAt = new Date(Math.ceil((Date.now() + 6000) / 1000) * 1000);
    const ids = await insertScheduledTriggers(t.db, n, { fireAt });
    const base = await eventCount(t);
    const relays = await Promise.all([1, 2, 3, 4].map(() => spawnRole('relay', t.env)));
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
    const perTrigger = (await t
      .db('event_logs')
      .whereIn('trigger_id', ids.slice(0, 1000))
      .count({ n: '*' })
      .groupBy('trigger_id')) as Array<{
      n: number;
    }>;
    expect(perTrigger.every((r) => Number(r.n) === 1)).to.equal(true);
    const onKafka = reader.messages.filter((m) => expected.has(m.value.event_id as string));
    const duplicates = onKafka.length - expected.size;
    console.log(`      5,000 due at once over 4 relays: ${onKafka.length} messages, ${duplicates} duplicates on Kafka`);
    expect(duplicates).to.be.at.least(0);
    const lags = (await t.db('event_logs').whereIn('trigger_id', ids.slice(0, 1000)).select('fired_at', 'scheduled_for')) as Array<{
      fired_at: Date;
      scheduled_for: Date;
    }>;
    const maxLag = Math.max(...lags.map((l) => new Date(l.fired_at).getTime() - new Date(l.scheduled_for).getTime()));
    expect(maxLag).to.be.below(10_000); // the assignment's SLA
  });

  it('loses nothing and doubles no event log when a relay is killed -9 while publishing', async () => {
    const n = 20_000;
    const fireAt = new Date(Date.now() - 1000);
    const ids = await insertScheduledTriggers(t.db, n, { fireAt });
    const expected = new Set(ids.map((id) => scheduledEventId(id, fireAt)));
    const victim = await spawnRole('relay', { ...t.env, RELAY_BATCH_SIZE: '200' });
    procs.push(victim);
    await until(() => reader.messages.some((m) => expected.has(m.value.event_id as string)), {
      timeoutMs: 30_000,
      message: 'publishing started',
    });
    await victim.kill('SIGKILL');
    const publishedBeforeKill = (await t.db('event_logs').whereIn('trigger_id', ids).whereNotNull('published_at').count({ n: '*' }))[0];
    procs.push(await spawnRole('relay', t.env));
    await until(() => [...expected].every((id) => reader.byEventId(id).length > 0), {
      timeoutMs: 120_000,
      intervalMs: 250,
      message: 'all on Kafka',
    });
    const logs = (await t.db('event_logs').whereIn('trigger_id', ids).count({ n: '*' }))[0] as { n: number };
    expect(Number(logs.n)).to.equal(n);
    expect(Number(((await t.db('outbox').whereNot('published', 1).count({ n: '*' }))[0] as { n: number }).n)).to.equal(0);
    const onKafka = reader.messages.filter((m) => expected.has(m.value.event_id as string)).length;
    console.log(
      `      killed mid-publish (${JSON.stringify(publishedBeforeKill)} events marked published before the kill): ${onKafka - n} duplicates on Kafka, 0 lost`,
    );
  });

  it('survives the Kafka broker being down: the backlog drains when it returns, nothing lost', async function () {
    if (!/^127\.0\.0\.1:|^localhost:/.test(t.config.kafkaBrokers)) this.skip();
    const relay = await spawnRole('relay', { ...t.env, KAFKA_MESSAGE_TIMEOUT_MS: '3000' });
    procs.push(relay);
    const services = path.join(REPO_ROOT, 'scripts', 'services.mjs');
    execFileSync(process.execPath, [services, 'kafka-stop'], { stdio: 'ignore' });
    let ids: string[] = [];
    try {
      ids = await insertScheduledTriggers(t.db, 300, { fireAt: new Date(Date.now() - 500) });
      // The relay fires them into the outbox while Kafka is down; publishing fails and is retried.
      await until(
        async () => Number(((await t.db('event_logs').whereIn('trigger_id', ids).count({ n: '*' }))[0] as { n: number }).n) === 300,
        {
          message: 'all 300 fired into the outbox',
        },
      );
      await until(async () => Number(((await t.db('outbox').max({ a: 'attempts' }))[0] as { a: number | null }).a ?? 0) > 0, {
        timeoutMs: 20_000,
        message: 'a failed publish attempt recorded',
      });
    } finally {
      execFileSync(process.execPath, [services, 'kafka-start'], { stdio: 'ignore' });
    }
    const logs = (await t.db('event_logs').whereIn('trigger_id', ids).select('id')) as Array<{ id: string }>;
    expect(logs).to.have.length(300);
    await until(() => logs.every((l) => reader.byEventId(l.id).length > 0), {
      timeoutMs: 90_000,
      intervalMs: 250,
      message: 'backlog drained to Kafka',
    });
    expect(Number(((await t.db('outbox').whereNot('published', 1).count({ n: '*' }))[0] as { n: number }).n)).to.equal(0);
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
      const created = await request(testApp(t))
        .post('/api/v1/triggers')
        .send({ name: 'ret', type: 'webhook', config: { endpoint: 'http://127.0.0.1:9/x', schema: { type: 'object' } } })
        .expect(201);
      const fired = await request(testApp(t)).post(`/api/v1/webhook/${created.body.id}`).send({ a: 1 }).expect(202);
      const id = fired.body.event_id as string;
      // The API of the same windows: retention follows from age, and the sweep deletes the row.
      const app = testApp(t, { config: cfg });
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

  it('claims through indexes that match the claim queries (no filesort)', async () => {
    const explain = async (sql: string) =>
      ((await t.db.raw(`EXPLAIN ${sql}`)) as [Array<{ key: string | null; Extra: string | null }>])[0][0];
    const s = await explain(
      "SELECT id FROM trigger_schedules WHERE status = 'pending' AND fire_at <= UTC_TIMESTAMP(3) ORDER BY fire_at LIMIT 500 FOR UPDATE SKIP LOCKED",
    );
    expect(s.key).to.equal('idx_schedules_claim');
    expect(s.Extra ?? '').not.to.match(/filesort/);
    const o = await explain('SELECT id FROM outbox WHERE published = 0 ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED');
    expect(o.key).to.equal('idx_outbox_claim');
    expect(o.Extra ?? '').not.to.match(/filesort/);
    // The ordered claim's per-shard part, and the promotion of waiting rows.
    const p = await explain('SELECT id FROM outbox WHERE shard = 3 AND published = 0 AND id > 0 ORDER BY id LIMIT 8 FOR UPDATE');
    expect(p.key).to.equal('idx_outbox_shard_claim');
    expect(p.Extra ?? '').not.to.match(/filesort/);
    const w = await explain(
      'SELECT id FROM outbox WHERE published = 2 AND available_at <= UTC_TIMESTAMP(3) ORDER BY available_at LIMIT 1000',
    );
    expect(w.key).to.equal('idx_outbox_waiting');
    expect(w.Extra ?? '').not.to.match(/filesort/);
    // An idle publish lane's probe: is anything ready in my shards?
    const r = await explain(
      'SELECT id FROM outbox FORCE INDEX (idx_outbox_shard_claim) WHERE published = 0 AND shard IN (1, 5, 9) LIMIT 1',
    );
    expect(r.key).to.equal('idx_outbox_shard_claim');
    expect(r.Extra ?? '').to.match(/Using index/);
  });
});
