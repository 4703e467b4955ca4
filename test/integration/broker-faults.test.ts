import { expect } from 'chai';
import request from 'supertest';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { OwnBroker } from '../helpers/broker';
import { KafkaReader } from '../helpers/kafka';
import { until } from '../helpers/until';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { insertScheduledTriggers } from '../helpers/fixtures';
import { ensureTopics } from '../../src/kafka/producer';
import { scheduledEventId } from '../../src/triggers/event-id';

type LogRow = { id: string; published_at: Date | null; execution_status: string };

/**
 * The relay against Kafka faults that are really injected: this file starts a broker of its own (the
 * shared one is left alone), freezes it with SIGSTOP — a broker that holds the connection and accepts what
 * is sent but never acknowledges it — and stops it outright.
 */
describe('relay against a Kafka broker that stops answering or goes away', function () {
  this.timeout(240_000);
  let broker: OwnBroker;
  let t: TestEnv;
  let reader: KafkaReader;
  let relay: RoleProcess | null = null;

  const logs = async (ids: string[]) =>
    (await t.db('event_logs').whereIn('id', ids).select('id', 'published_at', 'execution_status')) as LogRow[];
  /** Outbox rows of these events still to publish (a published row is deleted; fences are published = 1). */
  const queued = async (ids: string[]) =>
    (await t.db('outbox').whereIn('event_id', ids).whereNot('published', 1).select('id', 'attempts')) as Array<{
      id: number;
      attempts: number;
    }>;

  before(async () => {
    broker = await OwnBroker.start('brokerfaults');
    t = await createTestEnv('brokerfaults', { KAFKA_BROKERS: broker.brokers, KAFKA_MESSAGE_TIMEOUT_MS: '3000' });
    await ensureTopics(broker.brokers, [{ name: t.topic, partitions: 3 }]);
    reader = await new KafkaReader([t.topic], broker.brokers).start();
    relay = await spawnRole('relay', t.env);
    // Warm up: the relay's producer knows the partition leaders, so what follows is about acknowledgements.
    const fireAt = new Date(Date.now() - 100);
    const [id] = await insertScheduledTriggers(t.db, 1, { fireAt });
    await until(() => reader.byEventId(scheduledEventId(id, fireAt)).length > 0, { timeoutMs: 30_000, message: 'warm-up event on Kafka' });
  });
  afterEach(async () => {
    await broker?.resume();
  });
  after(async () => {
    await relay?.kill('SIGKILL');
    await reader?.stop();
    await t?.cleanup();
    await broker?.destroy();
  });

  it('direct fire path: events the broker never acknowledges are not marked published and go to the outbox', async () => {
    await broker.pause();
    const fireAt = new Date(Date.now() - 100);
    const ids = await insertScheduledTriggers(t.db, 40, { fireAt });
    const eventIds = ids.map((id) => scheduledEventId(id, fireAt));
    // Fired: the relay logged every occurrence (after the direct path's bounded wait for the reports).
    await until(async () => (await logs(eventIds)).length === ids.length, { timeoutMs: 30_000, message: 'all 40 fired' });
    const fired = await logs(eventIds);
    expect(
      fired.filter((l) => l.published_at !== null).map((l) => l.id),
      'marked published although Kafka acknowledged nothing',
    ).to.deep.equal([]);
    expect(fired.every((l) => l.execution_status === 'pending')).to.equal(true);
    expect((await queued(eventIds)).length, 'every unacknowledged event waits in the outbox').to.equal(ids.length);

    await broker.resume();
    await until(() => eventIds.every((e) => reader.byEventId(e).length > 0), { timeoutMs: 60_000, message: 'all 40 on Kafka' });
    await until(async () => (await logs(eventIds)).every((l) => l.published_at !== null), {
      timeoutMs: 30_000,
      message: 'marked published',
    });
    await until(async () => (await queued(eventIds)).length === 0, { timeoutMs: 30_000, message: 'outbox drained' });
  });

  it('outbox path: rows the broker never acknowledges stay in the outbox, unpublished, until it does', async () => {
    const created = await request(testApp(t))
      .post('/api/v1/triggers')
      .send({ name: 'wh', type: 'webhook', config: { endpoint: 'http://127.0.0.1:9/x', schema: { type: 'object' } } })
      .expect(201);
    await broker.pause();
    const eventIds: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await request(testApp(t)).post(`/api/v1/webhook/${created.body.id}`).send({ i }).expect(202);
      eventIds.push(r.body.event_id as string);
    }
    // Wait until the relay has tried them: either the delivery reports came back failed (attempts recorded)
    // or — if reports were not awaited — the rows were taken as published.
    const state = async () => {
      const rows = await queued(eventIds);
      const published = (await logs(eventIds)).filter((l) => l.published_at !== null).length;
      return { rows: rows.length, tried: rows.filter((r) => r.attempts > 0).length, published };
    };
    const seen = await until(
      async () => {
        const s = await state();
        return s.tried === eventIds.length || s.published > 0 || s.rows < eventIds.length ? s : null;
      },
      { timeoutMs: 30_000, message: 'a publish attempt on every row' },
    );
    expect(seen, 'rows left the outbox or were marked published without an acknowledgement').to.deep.equal({
      rows: eventIds.length,
      tried: eventIds.length,
      published: 0,
    });

    await broker.resume();
    await until(() => eventIds.every((e) => reader.byEventId(e).length > 0), { timeoutMs: 60_000, message: 'all 20 on Kafka' });
    await until(async () => (await logs(eventIds)).every((l) => l.published_at !== null), {
      timeoutMs: 30_000,
      message: 'marked published',
    });
    await until(async () => (await queued(eventIds)).length === 0, { timeoutMs: 30_000, message: 'outbox drained' });
  });

  it('survives the broker being stopped: events fired meanwhile wait in the outbox and drain when it returns', async () => {
    await broker.stop();
    let ids: string[] = [];
    try {
      ids = await insertScheduledTriggers(t.db, 300, { fireAt: new Date(Date.now() - 500) });
      // The relay fires them into the outbox while Kafka is down; publishing fails and is retried.
      await until(async () => (await t.db('event_logs').whereIn('trigger_id', ids).select('id')).length === 300, {
        timeoutMs: 30_000,
        message: 'all 300 fired into the outbox',
      });
      await until(async () => Number(((await t.db('outbox').max({ a: 'attempts' }))[0] as { a: number | null }).a ?? 0) > 0, {
        timeoutMs: 20_000,
        message: 'a failed publish attempt recorded',
      });
      expect(await t.db('event_logs').whereIn('trigger_id', ids).whereNotNull('published_at')).to.have.length(0);
    } finally {
      await broker.run();
    }
    const fired = (await t.db('event_logs').whereIn('trigger_id', ids).select('id')) as Array<{ id: string }>;
    expect(fired).to.have.length(300);
    await until(() => fired.every((l) => reader.byEventId(l.id).length > 0), {
      timeoutMs: 90_000,
      intervalMs: 250,
      message: 'backlog drained to Kafka',
    });
    await until(async () => (await queued(fired.map((l) => l.id))).length === 0, { timeoutMs: 30_000, message: 'outbox drained' });
  });
});
