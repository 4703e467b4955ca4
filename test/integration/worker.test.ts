import { expect } from 'chai';
import request from 'supertest';
import { createHmac } from 'node:crypto';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { Receiver } from '../helpers/receiver';
import { until } from '../helpers/until';
import { scrapeMetrics } from '../helpers/metrics';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import { EventProducer } from '../../src/kafka/producer';
import { count } from '../helpers/fixtures';
import { logOutboxInserts } from '../helpers/outbox-log';
import { createDb } from '../../src/db/knex';
import { Lifecycle } from '../../src/events';
import { Worker } from '../../src/worker/worker';
import { randomUUID } from 'node:crypto';
import { insertEvents } from '../../src/db/events';
import { eventMessage, toKafka } from '../../src/kafka/message';

const quiet = createLogger('error', 'test');

interface EventRow {
  execution_status: string;
  attempts: number;
  response_status: number | null;
  error_message: string | null;
}

describe('delivery worker: Kafka to the endpoint, with retries, signatures and a dead-letter topic', function () {
  this.timeout(120_000);
  let t: TestEnv;
  let platform: Platform | null;
  let receiver: Receiver;
  let reader: KafkaReader;
  const procs: RoleProcess[] = [];

  before(async () => {
    t = await createTestEnv('worker');
    platform = await startPlatform(t.config, ['relay', 'worker'], { logger: quiet, migrate: false });
    receiver = await new Receiver().start();
    reader = await new KafkaReader([t.config.kafkaDlqTopic]).start();
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
  });
  after(async () => {
    await platform?.stop();
    await reader?.stop();
    await receiver?.stop();
    await t?.cleanup();
  });

  const event = async (id: string) => (await t.db('event_logs').where({ id }).first()) as EventRow;
  const settled = (id: string, timeoutMs = 30_000) =>
    until(
      async () => {
        const e = await event(id);
        return e && (e.execution_status === 'success' || e.execution_status === 'failure') ? e : null;
      },
      { timeoutMs, message: `event ${id} delivered or failed` },
    );

  async function webhookTrigger(path: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await request(testApp(t))
      .post('/api/v1/triggers')
      .send({ name: path, type: 'webhook', config: { endpoint: receiver.url(path), schema: { type: 'object' }, ...extra } })
      .expect(201);
    return res.body.id as string;
  }

  async function fire(triggerId: string, payload: unknown): Promise<string> {
    const res = await request(testApp(t))
      .post(`/api/v1/webhook/${triggerId}`)
      .send(payload as object)
      .expect(202);
    return res.body.event_id as string;
  }

  it('delivers a scheduled trigger with the configured method, headers and body', async () => {
    receiver.respond = () => ({ status: 204 });
    const runAt = new Date(Math.ceil((Date.now() + 1000) / 1000) * 1000);
    const res = await request(testApp(t))
      .post('/api/v1/triggers')
      .send({
        name: 'scheduled-put',
        type: 'time_scheduled',
        config: {
          endpoint: receiver.url('/scheduled'),
          http_method: 'PUT',
          headers: { 'X-Team': 'billing' },
          run_at: runAt.toISOString(),
          payload: { invoice: 42 },
        },
      })
      .expect(201);
    const [req] = await until(() => receiver.forPath('/scheduled').length === 1 && receiver.forPath('/scheduled'), { timeoutMs: 15_000 });
    expect(req.method).to.equal('PUT');
    expect(req.headers['x-team']).to.equal('billing');
    expect(req.headers['content-type']).to.equal('application/json');
    expect(JSON.parse(req.body)).to.deep.equal({ invoice: 42 });
    const logged = (await t.db('event_logs').where({ trigger_id: res.body.id }).first()) as { id: string };
    expect(req.headers['webhook-id']).to.equal(logged.id);
    expect(req.headers['idempotency-key']).to.equal(logged.id);
    expect(Number(req.headers['webhook-timestamp'])).to.be.closeTo(Date.now() / 1000, 30);
    const e = await settled(logged.id);
    expect(e).to.include({ execution_status: 'success', attempts: 1, response_status: 204 });
  });

  it('signs deliveries of a trigger with a secret per the Standard Webhooks scheme', async () => {
    const secret = 'a-very-secret-value-123';
    receiver.respond = () => ({ status: 200 });
    const id = await webhookTrigger('/signed', { secret });
    const body = JSON.stringify({ order: 1 });
    const sig = createHmac('sha256', secret).update(body).digest('hex');
    const fired = await request(testApp(t))
      .post(`/api/v1/webhook/${id}`)
      .set('content-type', 'application/json')
      .set('X-Signature', `sha256=${sig}`)
      .send(body)
      .expect(202);
    const [req] = await until(() => receiver.forPath('/signed').length > 0 && receiver.forPath('/signed'), { timeoutMs: 15_000 });
    // Independent check of the scheme: base64(HMAC-SHA256(secret, "id.timestamp.body")).
    const expected = createHmac('sha256', secret)
      .update(`${req.headers['webhook-id']}.${req.headers['webhook-timestamp']}.${req.body}`)
      .digest('base64');
    expect(req.headers['webhook-signature']).to.equal(`v1,${expected}`);
    expect(req.headers['webhook-id']).to.equal(fired.body.event_id);
  });

  it('retries a failing receiver with back-off and records success on the third attempt', async () => {
    receiver.respond = (_r, i) =>
      receiver.forPath('/flaky').length <= 2 ? { status: 503, headers: { 'Retry-After': '1' } } : { status: 200, delayMs: i * 0 };
    const id = await webhookTrigger('/flaky', { retry: { max_attempts: 5, backoff_ms: 50 } });
    const eventId = await fire(id, { n: 1 });
    const e = await settled(eventId);
    expect(e).to.include({ execution_status: 'success', attempts: 3, response_status: 200 });
    const reqs = receiver.forPath('/flaky');
    expect(reqs).to.have.length(3);
    // Retry-After: 1 was honoured between attempts.
    expect(reqs[1].at - reqs[0].at).to.be.at.least(950);
    expect(reqs[2].at - reqs[1].at).to.be.at.least(950);
    expect(new Set(reqs.map((r) => r.headers['webhook-id']))).to.deep.equal(new Set([eventId]));
  });

  it('gives up after max_attempts, records the last error and publishes to the dead-letter topic', async () => {
    receiver.respond = () => ({ status: 500 });
    const id = await webhookTrigger('/down', { retry: { max_attempts: 3, backoff_ms: 20 } });
    const eventId = await fire(id, { n: 2 });
    const e = await settled(eventId);
    expect(e.execution_status).to.equal('failure');
    expect(e.attempts).to.equal(3);
    expect(e.response_status).to.equal(500);
    expect(e.error_message).to.match(/500/);
    expect(receiver.forPath('/down')).to.have.length(3);
    const dead = await until(() => reader.byEventId(eventId)[0], { timeoutMs: 15_000, message: 'DLQ message' });
    expect(dead.topic).to.equal(t.config.kafkaDlqTopic);
    expect(dead.value.delivery_attempt).to.equal(3);
  });

  it('does not retry a 400 from the receiver', async () => {
    receiver.respond = () => ({ status: 400 });
    const id = await webhookTrigger('/reject', { retry: { max_attempts: 5, backoff_ms: 20 } });
    const eventId = await fire(id, { n: 3 });
    const e = await settled(eventId);
    expect(e).to.include({ execution_status: 'failure', attempts: 1, response_status: 400 });
    expect(receiver.forPath('/reject')).to.have.length(1);
  });

  it('treats a timeout as a failed attempt with a clear reason', async () => {
    receiver.respond = () => ({ status: 200, delayMs: 2000 });
    const id = await webhookTrigger('/slow', { timeout_ms: 200, retry: { max_attempts: 1, backoff_ms: 20 } });
    const eventId = await fire(id, { n: 4 });
    const e = await settled(eventId);
    expect(e.execution_status).to.equal('failure');
    expect(e.response_status).to.equal(null);
    expect(e.error_message).to.match(/timed out after 200 ms/);
  });

  it('makes one HTTP call for a message that reaches the worker twice', async () => {
    receiver.respond = () => ({ status: 200 });
    const id = await webhookTrigger('/dup');
    const inserts = await logOutboxInserts(t.db); // the relay deletes the row it publishes: keep a copy
    const eventId = await fire(id, { n: 5 });
    await settled(eventId);
    // Re-publish the very same message, as a relay would after a crash between Kafka ack and commit.
    const row = (await inserts.rows()).find((r) => r.event_id === eventId)!;
    await inserts.stop();
    const producer = new EventProducer({ brokers: t.config.kafkaBrokers, messageTimeoutMs: 10_000 });
    await producer.connect();
    try {
      const outcomes = await producer.publish([
        { topic: row.topic, key: row.msg_key, value: row.value, headers: {} },
        { topic: row.topic, key: row.msg_key, value: row.value, headers: {} },
      ]);
      expect(outcomes).to.deep.equal([null, null]);
      const marker = await fire(id, { n: 'after' }); // same partition (same key): handled after the duplicates
      await settled(marker);
    } finally {
      await producer.close();
    }
    expect(receiver.forPath('/dup').filter((r) => r.headers['webhook-id'] === eventId)).to.have.length(1);
    expect(await count(t.db, 'idempotency_keys', { scope: 'delivery', idem_key: `${eventId}:1` })).to.equal(1);
  });

  it('waits for a scheduled event whose message arrives before its event log commits (direct fire path), then delivers it', async () => {
    receiver.respond = () => ({ status: 200 });
    const runAt = new Date(Date.now() + 86_400_000); // far away: the relay will not fire it meanwhile
    const created = await request(testApp(t))
      .post('/api/v1/triggers')
      .send({ name: 'early', type: 'time_scheduled', config: { endpoint: receiver.url('/early'), run_at: runAt.toISOString() } })
      .expect(201);
    const triggerId = created.body.id as string;
    const e = {
      id: randomUUID(),
      trigger_id: triggerId,
      trigger_type: 'time_scheduled' as const,
      source: 'scheduler' as const,
      is_test_run: false,
      payload: { early: true },
      scheduled_for: new Date(),
      fired_at: new Date(),
    };
    // As the relay's fire transaction does: the message first, the event log once the reports are in.
    const producer = new EventProducer({ brokers: t.config.kafkaBrokers, messageTimeoutMs: 10_000 });
    await producer.connect();
    try {
      expect(await producer.publish([toKafka(t.topic, eventMessage(e))])).to.deep.equal([null]);
    } finally {
      await producer.close();
    }
    await new Promise((r) => setTimeout(r, 400)); // the commit comes late on purpose: this is the gap under test
    await t.db.transaction((trx) => insertEvents(trx, [{ ...e, published_at: new Date() }], new Date()));
    const done = await settled(e.id);
    expect(done.execution_status).to.equal('success');
    expect(receiver.forPath('/early').filter((r) => r.headers['webhook-id'] === e.id)).to.have.length(1);
  });

  it('delivers a lone message on a quiet topic at once, not after the wait for a next one (median of 5 under 200 ms)', async () => {
    // The worker waits up to 250 ms for the first message of a batch; a consume that waited that long for
    // every message would hold each lone message back by at least as much.
    receiver.respond = () => ({ status: 200 });
    const triggerId = await webhookTrigger('/lone');
    const producer = new EventProducer({ brokers: t.config.kafkaBrokers, messageTimeoutMs: 10_000 });
    await producer.connect();
    const latencies: number[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const e = {
          id: randomUUID(),
          trigger_id: triggerId,
          trigger_type: 'webhook' as const,
          source: 'webhook' as const,
          is_test_run: false,
          payload: { lone: i },
          scheduled_for: null,
          fired_at: new Date(),
        };
        await t.db.transaction((trx) => insertEvents(trx, [{ ...e, published_at: new Date() }], new Date()));
        expect(await producer.publish([toKafka(t.topic, eventMessage(e))])).to.deep.equal([null]);
        const sentAt = Date.now();
        const got = await until(async () => receiver.forPath('/lone').find((r) => r.headers['webhook-id'] === e.id) ?? null, {
          timeoutMs: 10_000,
          message: `lone message ${i} delivered`,
        });
        latencies.push(got.at - sentAt);
        // Quiet: longer than the worker's wait, so each message meets a worker waiting for a first one.
        await until(async () => (await event(e.id))?.execution_status === 'success', { timeoutMs: 10_000, message: 'recorded' });
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      await producer.close();
    }
    const median = [...latencies].sort((a, b) => a - b)[2]!;
    expect(median, `publish → endpoint, ms: ${latencies.join(', ')}`).to.be.below(200);
  });

  it('records "trigger deleted" without a request when the trigger is gone', async () => {
    receiver.respond = () => ({ status: 200 });
    await platform!.stop();
    platform = null;
    const id = await webhookTrigger('/deleted');
    const eventId = await fire(id, { n: 6 });
    await request(testApp(t)).delete(`/api/v1/triggers/${id}`).expect(204);
    platform = await startPlatform(t.config, ['relay', 'worker'], { logger: quiet, migrate: false });
    const e = await settled(eventId);
    expect(e.execution_status).to.equal('failure');
    expect(e.error_message).to.equal('trigger deleted');
    expect(receiver.forPath('/deleted')).to.have.length(0);
  });

  it('delivers to the edited endpoint from the next event on (trigger config cached by version)', async () => {
    receiver.respond = () => ({ status: 200 });
    const id = await webhookTrigger('/cache-v1');
    await settled(await fire(id, { n: 'before edit' })); // the worker now holds the trigger in its cache
    await request(testApp(t))
      .put(`/api/v1/triggers/${id}`)
      .send({ config: { endpoint: receiver.url('/cache-v2'), schema: { type: 'object' } } })
      .expect(200);
    const after = await fire(id, { n: 'after edit' });
    expect(await settled(after)).to.include({ execution_status: 'success' });
    expect(receiver.forPath('/cache-v1').map((r) => JSON.parse(r.body))).to.deep.equal([{ n: 'before edit' }]);
    expect(receiver.forPath('/cache-v2').map((r) => r.headers['webhook-id'])).to.deep.equal([after]);
  });

  it('records "trigger deleted" without a request when a cached trigger is deleted before its retry', async () => {
    receiver.respond = () => ({ status: 503, headers: { 'Retry-After': '2' } });
    const id = await webhookTrigger('/cache-gone', { retry: { max_attempts: 3, backoff_ms: 20 } });
    const eventId = await fire(id, { n: 8 });
    await until(() => receiver.forPath('/cache-gone').length === 1, { timeoutMs: 15_000, message: 'first attempt' });
    await request(testApp(t)).delete(`/api/v1/triggers/${id}`).expect(204);
    const e = await settled(eventId);
    expect(e).to.include({ execution_status: 'failure', error_message: 'trigger deleted', attempts: 1 });
    expect(receiver.forPath('/cache-gone')).to.have.length(1);
  });

  it('ends success exactly once when a worker is killed -9 mid-delivery', async () => {
    await platform!.stop();
    platform = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
    receiver.respond = () => (receiver.forPath('/crash').length === 1 ? { status: 200, delayMs: 5000 } : { status: 200 });
    const id = await webhookTrigger('/crash');
    const eventId = await fire(id, { n: 7 });
    const victim = await spawnRole('worker', t.env);
    procs.push(victim);
    await until(() => receiver.forPath('/crash').length === 1, { timeoutMs: 30_000, message: 'first delivery in flight' });
    await victim.kill('SIGKILL');
    procs.push(await spawnRole('worker', t.env));
    const e = await settled(eventId, 60_000);
    expect(e).to.include({ execution_status: 'success', attempts: 1 });
    const seen = receiver.forPath('/crash');
    expect(seen.length).to.be.within(2, 3);
    expect(new Set(seen.map((r) => r.headers['webhook-id']))).to.deep.equal(new Set([eventId]));
    expect(await count(t.db, 'idempotency_keys', { scope: 'delivery', idem_key: `${eventId}:1` })).to.equal(1);
  });
});

describe('delivery worker: SSRF guard', function () {
  this.timeout(60_000);
  let t: TestEnv;
  let platform: Platform;
  let receiver: Receiver;

  before(async () => {
    t = await createTestEnv('ssrf', { DELIVERY_ALLOW_PRIVATE_NETWORKS: 'false' });
    platform = await startPlatform(t.config, ['relay', 'worker'], { logger: quiet, migrate: false });
    receiver = await new Receiver().start();
  });
  after(async () => {
    await platform?.stop();
    await receiver?.stop();
    await t?.cleanup();
  });

  for (const host of ['127.0.0.1', 'localhost']) {
    it(`refuses an endpoint that resolves to a loopback address (${host}) and sends nothing`, async () => {
      const endpoint = receiver.url('/ssrf').replace('127.0.0.1', host);
      const created = await request(testApp(t))
        .post('/api/v1/triggers')
        .send({ name: 'ssrf', type: 'webhook', config: { endpoint, schema: {} } })
        .expect(201);
      const fired = await request(testApp(t)).post(`/api/v1/webhook/${created.body.id}`).send({}).expect(202);
      const e = await until(
        async () => {
          const row = (await t.db('event_logs').where({ id: fired.body.event_id }).first()) as EventRow;
          return row.execution_status === 'failure' ? row : null;
        },
        { timeoutMs: 20_000 },
      );
      expect(e.error_message).to.match(/private or loopback address/);
      expect(receiver.requests).to.have.length(0);
    });
  }
});

describe('delivery worker: statements per batch, consumer lag and endpoint circuit breaking', function () {
  this.timeout(120_000);
  const COOLDOWN_MS = 3000;
  let t: TestEnv;
  let relay: Platform;
  let worker: Platform | null = null;
  let ok: Receiver;
  let flaky: Receiver;

  before(async () => {
    t = await createTestEnv('workerbatch', { DELIVERY_CIRCUIT_FAILURES: '3', DELIVERY_CIRCUIT_COOLDOWN: `${COOLDOWN_MS}ms` });
    relay = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
    ok = await new Receiver().start();
    flaky = await new Receiver().start();
  });
  after(async () => {
    await worker?.stop();
    await relay?.stop();
    await ok?.stop();
    await flaky?.stop();
    await t?.cleanup();
  });

  async function trigger(endpoint: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await request(testApp(t))
      .post('/api/v1/triggers')
      .send({ name: 'batch', type: 'webhook', config: { endpoint, schema: { type: 'object' }, ...extra } })
      .expect(201);
    return res.body.id as string;
  }
  async function fireMany(triggerId: string, n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await request(testApp(t)).post(`/api/v1/webhook/${triggerId}`).send({ i }).expect(202);
      ids.push(res.body.event_id as string);
    }
    return ids;
  }
  const statuses = async (ids: string[]) =>
    (await t.db('event_logs').whereIn('id', ids).select('id', 'execution_status', 'attempts', 'error_message')) as Array<
      { id: string } & EventRow
    >;
  const allSucceeded = async (ids: string[]) => (await statuses(ids)).filter((e) => e.execution_status === 'success').length === ids.length;
  const scrape = () => scrapeMetrics(worker!.ports.worker);
  const series = (text: string, name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`))
      .map((l) => ({ labels: l.slice(name.length, l.lastIndexOf(' ')), value: Number(l.slice(l.lastIndexOf(' ') + 1)) }));

  it('writes a backlog with a bounded number of statements per Kafka batch, not several per delivery', async () => {
    const N = 60;
    const id = await trigger(ok.url('/batch'));
    const ids = await fireMany(id, N);
    const published = async () =>
      Number(((await t.db('event_logs').whereIn('id', ids).whereNotNull('published_at').count({ n: '*' }))[0] as { n: number }).n);
    await until(async () => (await published()) >= N, { timeoutMs: 30_000, message: 'backlog published' });
    // The worker in-process on a pool of its own, so every statement it sends is counted.
    const db = createDb(t.config.databaseUrl, 5, t.config.outboxShards);
    const sqls: string[] = [];
    db.on('query', (q: { sql: string }) => sqls.push(q.sql));
    const w = new Worker({
      db,
      producer: new EventProducer({ brokers: t.config.kafkaBrokers, messageTimeoutMs: 10_000 }),
      config: t.config,
      events: new Lifecycle(),
      logger: quiet,
    });
    try {
      await w.start();
      await until(() => allSucceeded(ids), { timeoutMs: 60_000, message: 'backlog delivered' });
    } finally {
      await w.stop();
      await db.destroy();
    }
    expect(ok.forPath('/batch')).to.have.length(N);
    // Each batch reads its events once (joined to the triggers' versions): that statement counts batches.
    const batches = sqls.filter((q) => /FROM event_logs e LEFT JOIN triggers/.test(q)).length;
    expect(batches).to.be.within(1, N / 2);
    // Per batch: the read, BEGIN, the batch's event rows locked (a cancel is never overwritten),
    // idempotency keys, event updates, attempts, COMMIT (and the outbox, for retries: none here); plus one
    // load of the trigger's config into the cache.
    expect(sqls.length, sqls.join('\n')).to.be.at.most(7 * batches + 1);
    expect(sqls.filter((q) => /from `triggers`/i.test(q))).to.have.length(1);
  });

  it('reports consumer lag above 0 while the worker is behind and 0 once it has caught up', async () => {
    worker = await startPlatform(t.config, ['worker'], { logger: quiet, migrate: false });
    ok.respond = (r) => (r.path === '/lag' ? { status: 200, delayMs: 1500 } : { status: 200 });
    const id = await trigger(ok.url('/lag'));
    const ids = await fireMany(id, 10);
    const lagged = await until(
      async () => {
        const lag = series(await scrape(), 'etp_consumer_lag');
        return lag.some((s) => s.value > 0) && lag;
      },
      { timeoutMs: 20_000, intervalMs: 100, message: 'a lag above 0' },
    );
    expect(lagged.some((s) => s.labels.includes(`topic="${t.config.kafkaTopic}"`))).to.equal(true);
    await until(() => allSucceeded(ids), { timeoutMs: 30_000, message: 'lagging events delivered' });
    await until(
      async () => {
        const lag = series(await scrape(), 'etp_consumer_lag');
        return lag.length > 0 && lag.every((s) => s.value === 0);
      },
      { timeoutMs: 20_000, intervalMs: 100, message: 'lag back to 0' },
    );
    const health = (await (await fetch(`http://127.0.0.1:${worker.ports.worker}/health`)).json()) as { checks: Record<string, string> };
    expect(health.checks.consumer).to.equal('ok');
  });

  it('opens the circuit after N failures, sends nothing while open, and closes when the endpoint recovers', async () => {
    let down = true;
    flaky.respond = () => (down ? { status: 500 } : { status: 200 });
    const origin = new URL(flaky.url()).origin;
    const circuit = async () => series(await scrape(), 'etp_circuit_open').find((s) => s.labels.includes(`origin="${origin}"`))?.value;
    const id = await trigger(flaky.url('/breaker'), { retry: { max_attempts: 10, backoff_ms: 20 } });
    const [first] = await fireMany(id, 1);
    await until(async () => (await circuit()) === 1, { timeoutMs: 20_000, message: 'circuit open' });
    expect(flaky.requests).to.have.length(3); // DELIVERY_CIRCUIT_FAILURES=3 in a row
    // While open: these are deferred through the outbox, not sent, and not counted as attempts.
    const later = await fireMany(id, 3);
    const deferred = await until(
      async () => {
        const rows = await statuses(later);
        return rows.every((e) => /circuit open/.test(e.error_message ?? '')) && rows;
      },
      { timeoutMs: COOLDOWN_MS, message: 'later events deferred' },
    );
    expect(deferred.map((e) => e.attempts)).to.deep.equal([0, 0, 0]);
    expect(flaky.requests).to.have.length(3);
    // The endpoint recovers: after the cool-down one probe goes through, succeeds, and the circuit closes.
    down = false;
    await until(() => allSucceeded([first!, ...later]), { timeoutMs: 30_000, message: 'all delivered after recovery' });
    expect(await circuit()).to.equal(0);
    expect((await statuses(later)).map((e) => e.attempts)).to.deep.equal([1, 1, 1]);
    const firstRow = (await statuses([first!]))[0]!;
    expect(firstRow.attempts).to.equal(4); // three failures, then the success; deferrals are not attempts
    expect(flaky.requests).to.have.length(3 + 4);
  });
});
