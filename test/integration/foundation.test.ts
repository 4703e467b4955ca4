import { expect } from 'chai';
import request from 'supertest';
import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { until } from '../helpers/until';
import { EventProducer, ensureTopics } from '../../src/kafka/producer';
import { createDb } from '../../src/db/knex';
import { dbCheck } from '../../src/api/health';
import { eventMessage, toKafka } from '../../src/kafka/message';

describe('foundation: real MariaDB and Kafka', () => {
  let t: TestEnv;
  let producer: EventProducer;

  before(async () => {
    t = await createTestEnv('foundation');
    producer = new EventProducer({ brokers: t.config.kafkaBrokers, messageTimeoutMs: 10_000 });
    await producer.connect();
    await ensureTopics(t.config.kafkaBrokers, [{ name: t.topic, partitions: 3 }]);
  });
  after(async () => {
    await producer?.close();
    await t?.cleanup();
  });

  it('reports healthy with both checks ok against the real services', async () => {
    const app = testApp(t, { checks: { database: dbCheck(t.db), kafka: () => producer.ping() } });
    const res = await request(app).get('/health').expect(200);
    expect(res.body.status).to.equal('healthy');
    expect(res.body.checks).to.deep.equal({ database: 'ok', kafka: 'ok' });
    expect(new Date(res.body.timestamp).getTime()).to.be.closeTo(Date.now(), 10_000);
  });

  it('answers 503 naming the database check when the database URL points at a closed port', async () => {
    const dead = createDb('mysql://root@127.0.0.1:1/nothing', 2);
    try {
      const app = testApp(t, { checks: { database: dbCheck(dead), kafka: () => producer.ping() } });
      const res = await request(app).get('/health').expect(503);
      expect(res.body.status).to.equal('unhealthy');
      expect(res.body.checks.kafka).to.equal('ok');
      expect(res.body.checks.database).to.match(/^error: /);
    } finally {
      await dead.destroy();
    }
  });

  it('publishes through the project producer and a real consumer reads the message back', async () => {
    const reader = await new KafkaReader([t.topic]).start();
    try {
      const id = randomUUID();
      const triggerId = randomUUID();
      const msg = eventMessage({
        id,
        trigger_id: triggerId,
        trigger_type: 'webhook',
        payload: { hello: 'kafka' },
        fired_at: new Date(),
        scheduled_for: null,
        source: 'webhook',
        is_test_run: false,
      });
      const [outcome] = await producer.publish([toKafka(t.topic, msg)]);
      expect(outcome).to.equal(null);
      const got = await until(() => reader.byEventId(id)[0], { timeoutMs: 20_000, message: 'message on Kafka' });
      expect(got.key).to.equal(triggerId);
      expect(got.value).to.deep.equal(msg);
      expect(got.headers['event-id']).to.equal(id);
      expect(got.headers['content-type']).to.equal('application/json');
    } finally {
      await reader.stop();
    }
  });

  it('rejects a request that breaks openapi.yaml with problem+json naming the field', async () => {
    const res = await request(testApp(t)).post('/api/v1/triggers').send({ name: '', type: 'nope', config: {} }).expect(400);
    expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
    expect(res.body.code).to.equal('VALIDATION_FAILED');
    const fields = (res.body.errors as Array<{ field: string }>).map((e) => e.field);
    expect(fields).to.include('name');
    expect(fields).to.include('type');
  });

  it('answers malformed JSON with 400, an unknown route with 404, both as problem+json', async () => {
    const app = testApp(t);
    const bad = await request(app).post('/api/v1/triggers').set('content-type', 'application/json').send('{"name":').expect(400);
    expect(bad.body.code).to.equal('MALFORMED_JSON');
    const missing = await request(app).get('/api/v1/nothing-here').expect(404);
    expect(missing.headers['content-type']).to.match(/^application\/problem\+json/);
  });

  it('answers an over-size body with 413', async () => {
    const res = await request(testApp(t))
      .post('/api/v1/triggers')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ name: 'x'.repeat(t.config.webhookMaxBodyBytes + 10) }))
      .expect(413);
    expect(res.body.code).to.equal('PAYLOAD_TOO_LARGE');
  });

  it('serves Prometheus metrics with process metrics and HTTP request durations', async () => {
    const app = testApp(t);
    await request(app).get('/health').expect(200);
    const res = await request(app).get('/metrics').expect(200);
    expect(res.text).to.match(/etp_process_resident_memory_bytes/);
    expect(res.text).to.match(/etp_http_request_duration_seconds_count\{method="GET",route="\/health",status="200"\} 1/);
    expect(res.text).to.match(/etp_outbox_backlog 0/);
  });

  it('serves the spec and Swagger UI', async () => {
    const app = testApp(t);
    const spec = await request(app).get('/openapi.yaml').expect(200);
    expect(spec.text).to.match(/^openapi: 3\.1/);
    const ui = await request(app).get('/swagger/').expect(200);
    expect(ui.text).to.match(/swagger-ui/i);
  });

  it('echoes a given X-Request-Id and uses it in problem documents', async () => {
    const res = await request(testApp(t)).get('/api/v1/triggers/not-a-uuid').set('X-Request-Id', 'req-123').expect(400);
    expect(res.headers['x-request-id']).to.equal('req-123');
    expect(res.body.request_id).to.equal('req-123');
  });
});
