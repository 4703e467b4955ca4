import { expect } from 'chai';
import request from 'supertest';
import { createHmac } from 'node:crypto';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { Receiver } from '../helpers/receiver';
import { until } from '../helpers/until';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import { EventProducer } from '../../src/kafka/producer';
import { count } from '../helpers/fixtures';

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
    const eventId = await fire(id, { n: 5 });
    await settled(eventId);
    // Re-publish the very same message, as a relay would after a crash between Kafka ack and commit.
    const row = (await t.db('outbox').where({ event_id: eventId }).first()) as { topic: string; msg_key: string; value: Buffer };
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
