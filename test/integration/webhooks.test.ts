import { expect } from 'chai';
import request from 'supertest';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { until } from '../helpers/until';
import { EventProducer, ensureTopics } from '../../src/kafka/producer';
import { OutboxPublisher } from '../../src/relay/publisher';
import { Lifecycle } from '../../src/events';

const ENDPOINT = 'https://example.com/hooks/orders';
const SECRET = 'whsec-test-secret-0123456789';

/** Every error below has its own JSON pointer, so a test can check that all of them are reported. */
const ORDER_SCHEMA = {
  type: 'object',
  required: ['order_id', 'amount'],
  additionalProperties: false,
  properties: {
    order_id: { type: 'string' },
    amount: { type: 'number', minimum: 0 },
    customer: { type: 'object', required: ['email'], properties: { email: { type: 'string', format: 'email' } } },
  },
};
const VALID_ORDER = { order_id: 'A-1', amount: 12.5, customer: { email: 'a@example.com' } };
const INVALID_ORDER = { amount: -5, customer: {}, coupon: 'FREE' };
const INVALID_ORDER_POINTERS = ['/order_id', '/amount', '/customer/email', '/coupon'];

interface Problem {
  status: number;
  code: string;
  errors?: Array<{ field: string; message: string }>;
}

async function createTrigger(app: Express, body: Record<string, unknown>): Promise<{ id: string; next_scheduled_run: string | null }> {
  const res = await request(app).post('/api/v1/triggers').send(body).expect(201);
  return res.body as { id: string; next_scheduled_run: string | null };
}

function webhookTrigger(app: Express, extra: { status?: string; secret?: string; schema?: unknown } = {}) {
  return createTrigger(app, {
    name: `orders-${randomUUID().slice(0, 8)}`,
    type: 'webhook',
    ...(extra.status ? { status: extra.status } : {}),
    config: { endpoint: ENDPOINT, schema: extra.schema ?? ORDER_SCHEMA, ...(extra.secret ? { secret: extra.secret } : {}) },
  });
}

function cronTrigger(app: Express, status = 'active') {
  return createTrigger(app, {
    name: `report-${randomUUID().slice(0, 8)}`,
    type: 'cron_scheduled',
    status,
    config: { endpoint: ENDPOINT, cron: '0 9 * * *', timezone: 'UTC', payload: { report: 'daily' } },
  });
}

function postJson(app: Express, path: string, body: unknown) {
  return request(app).post(path).set('content-type', 'application/json').send(JSON.stringify(body));
}

describe('webhook ingestion and manual test runs', () => {
  let t: TestEnv;

  const eventsOf = async (triggerId: string) =>
    (await t.db('event_logs').where({ trigger_id: triggerId }).orderBy('fired_at')) as Array<Record<string, unknown>>;
  const countRows = async (table: string) => Number(((await t.db(table).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);

  before(async () => {
    t = await createTestEnv('webhooks');
  });
  after(async () => {
    await t?.cleanup();
  });

  describe('POST /webhook/{trigger_id}', () => {
    it('accepts a valid payload with 202 and logs it as a webhook event', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).expect(202);
      expect(res.body).to.have.keys('event_id', 'status');
      expect(res.body.status).to.equal('accepted');
      const ev = await request(app).get(`/api/v1/events/${res.body.event_id}`).expect(200);
      expect(ev.body).to.include({
        id: res.body.event_id,
        trigger_id: trigger.id,
        trigger_type: 'webhook',
        source: 'webhook',
        is_test_run: false,
        execution_status: 'pending',
        retention_status: 'active',
        scheduled_for: null,
      });
      expect(ev.body.payload).to.deep.equal(VALID_ORDER);
      // The outbox row is written in the same transaction, waiting for the relay.
      const outbox = (await t.db('outbox').where({ event_id: res.body.event_id })) as Array<{ published: number }>;
      expect(outbox).to.have.length(1);
      expect(outbox[0]!.published).to.equal(0);
    });

    it("answers the lean lane's 202 as the general route does, without an ETag, and takes a BOM-prefixed or charset-labelled body", async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const plain = await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).set('x-request-id', 'lane-1').expect(202);
      expect(plain.headers['content-type']).to.equal('application/json; charset=utf-8');
      expect(plain.headers['x-request-id']).to.equal('lane-1');
      expect(plain.headers).to.not.have.property('etag');
      const bom = await request(app)
        .post(`/api/v1/webhook/${trigger.id}`)
        .set('content-type', 'application/json; charset=utf-8')
        .send(`\ufeff${JSON.stringify(VALID_ORDER)}`)
        .expect(202);
      const ids = [plain.body.event_id, bom.body.event_id] as string[];
      const logged = await eventsOf(trigger.id);
      expect(logged.map((e) => e.id)).to.have.members(ids);
      for (const e of logged) expect(JSON.parse(e.payload as string)).to.deep.equal(VALID_ORDER);
    });

    it('answers an invalid payload with 400 problem+json naming every schema error by JSON pointer, and logs nothing', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}`, INVALID_ORDER).expect(400);
      expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      const problem = res.body as Problem;
      expect(problem.code).to.equal('SCHEMA_VALIDATION_FAILED');
      expect(problem.errors!.map((e) => e.field)).to.have.members(INVALID_ORDER_POINTERS);
      for (const e of problem.errors!) expect(e.message).to.be.a('string').and.not.be.empty;
      expect(await eventsOf(trigger.id)).to.have.length(0);
    });

    it('answers a body that is not JSON with 400 MALFORMED_JSON', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const res = await request(app)
        .post(`/api/v1/webhook/${trigger.id}`)
        .set('content-type', 'application/json')
        .send('{"order_id":')
        .expect(400);
      expect(res.body.code).to.equal('MALFORMED_JSON');
      expect(await eventsOf(trigger.id)).to.have.length(0);
    });

    it('answers a body that is not application/json with 415', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const res = await request(app).post(`/api/v1/webhook/${trigger.id}`).set('content-type', 'text/plain').send('order A-1').expect(415);
      expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(res.body.code).to.equal('UNSUPPORTED_MEDIA_TYPE');
      expect(await eventsOf(trigger.id)).to.have.length(0);
    });

    it('returns 404 for an unknown trigger id', async () => {
      const res = await postJson(testApp(t), `/api/v1/webhook/${randomUUID()}`, VALID_ORDER).expect(404);
      expect(res.body.code).to.equal('TRIGGER_NOT_FOUND');
    });

    it('returns 404 for a deleted webhook trigger', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      await request(app).delete(`/api/v1/triggers/${trigger.id}`).expect(204);
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).expect(404);
      expect(res.body.code).to.equal('TRIGGER_NOT_FOUND');
    });

    it('returns the same 404 for the id of a trigger that is not a webhook trigger', async () => {
      const app = testApp(t);
      const cron = await cronTrigger(app);
      const res = await postJson(app, `/api/v1/webhook/${cron.id}`, VALID_ORDER).expect(404);
      expect(res.body.code).to.equal('TRIGGER_NOT_FOUND');
      expect(res.body.detail).to.not.match(/cron/i);
      expect(await eventsOf(cron.id)).to.have.length(0);
    });

    it('returns 409 with a reason for an inactive webhook trigger', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app, { status: 'inactive' });
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).expect(409);
      expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(res.body.code).to.equal('TRIGGER_INACTIVE');
      expect(res.body.detail).to.match(/inactive/);
      expect(await eventsOf(trigger.id)).to.have.length(0);
    });

    it('applies a schema edit made through PUT on the next request, also on another API instance', async () => {
      const appA = testApp(t);
      const appB = testApp(t);
      const trigger = await webhookTrigger(appA, { schema: { type: 'object', required: ['a'] } });
      // appA compiles and caches the first schema.
      await postJson(appA, `/api/v1/webhook/${trigger.id}`, { a: 1 }).expect(202);
      await request(appB)
        .put(`/api/v1/triggers/${trigger.id}`)
        .send({ config: { endpoint: ENDPOINT, schema: { type: 'object', required: ['b'] } } })
        .expect(200);
      const refused = await postJson(appA, `/api/v1/webhook/${trigger.id}`, { a: 1 }).expect(400);
      expect((refused.body as Problem).errors!.map((e) => e.field)).to.deep.equal(['/b']);
      await postJson(appA, `/api/v1/webhook/${trigger.id}`, { b: 1 }).expect(202);
      await postJson(appB, `/api/v1/webhook/${trigger.id}`, { b: 2 }).expect(202);
      expect((await eventsOf(trigger.id)).map((e) => JSON.parse(e.payload as string))).to.have.deep.members([{ a: 1 }, { b: 1 }, { b: 2 }]);
    });

    it('answers 409 after the trigger is deactivated through PUT, and 202 again once reactivated', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      await request(app).put(`/api/v1/triggers/${trigger.id}`).send({ status: 'inactive' }).expect(200);
      await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).expect(409);
      await request(app).put(`/api/v1/triggers/${trigger.id}`).send({ status: 'active' }).expect(200);
      await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).expect(202);
    });
  });

  describe('signatures', () => {
    const body = JSON.stringify(VALID_ORDER);
    const hexSignature = (secret: string, raw: string) => `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;
    const standardSignature = (secret: string, id: string, ts: number, raw: string) =>
      `v1,${createHmac('sha256', secret).update(`${id}.${ts}.${raw}`).digest('base64')}`;
    const send = (app: Express, id: string, headers: Record<string, string>, raw = body) => {
      const req = request(app).post(`/api/v1/webhook/${id}`).set('content-type', 'application/json');
      for (const [k, v] of Object.entries(headers)) req.set(k, v);
      return req.send(raw);
    };

    it('accepts a valid X-Signature (hex HMAC-SHA256 of the raw body) with 202', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app, { secret: SECRET });
      // Whitespace in the raw body is signed as sent, not as re-serialised.
      const raw = JSON.stringify(VALID_ORDER, null, 2);
      const res = await send(app, trigger.id, { 'x-signature': hexSignature(SECRET, raw) }, raw).expect(202);
      expect(res.body.status).to.equal('accepted');
      expect(await eventsOf(trigger.id)).to.have.length(1);
    });

    it('answers 401 for a missing signature, a wrong one, or one made with another secret, and logs nothing', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app, { secret: SECRET });
      const missing = await send(app, trigger.id, {}).expect(401);
      expect(missing.body.code).to.equal('INVALID_SIGNATURE');
      await send(app, trigger.id, { 'x-signature': hexSignature('another-secret-0123456789', body) }).expect(401);
      await send(app, trigger.id, { 'x-signature': hexSignature(SECRET, body + ' ') }).expect(401);
      await send(app, trigger.id, { 'x-signature': 'sha256=not-hex' }).expect(401);
      expect(await eventsOf(trigger.id)).to.have.length(0);
    });

    it('accepts Standard Webhooks headers (v1 = base64 HMAC over id.timestamp.body) with 202', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app, { secret: SECRET });
      const msgId = `msg_${randomUUID()}`;
      const ts = Math.floor(Date.now() / 1000);
      await send(app, trigger.id, {
        'webhook-id': msgId,
        'webhook-timestamp': String(ts),
        // Several signatures may be sent (key rotation): one valid one is enough.
        'webhook-signature': `v1,${Buffer.alloc(32).toString('base64')} ${standardSignature(SECRET, msgId, ts, body)}`,
      }).expect(202);
      expect(await eventsOf(trigger.id)).to.have.length(1);
    });

    it('accepts Standard Webhooks headers signed with a whsec_ secret, keyed by its base64-decoded bytes as the spec says', async () => {
      const app = testApp(t);
      const keyBytes = randomBytes(24);
      const whsec = `whsec_${keyBytes.toString('base64')}`;
      const trigger = await webhookTrigger(app, { secret: whsec });
      const msgId = `msg_${randomUUID()}`;
      const ts = Math.floor(Date.now() / 1000);
      const signed = `v1,${createHmac('sha256', keyBytes).update(`${msgId}.${ts}.${body}`).digest('base64')}`;
      await send(app, trigger.id, { 'webhook-id': msgId, 'webhook-timestamp': String(ts), 'webhook-signature': signed }).expect(202);
      expect(await eventsOf(trigger.id)).to.have.length(1);
    });

    it('answers 401 for Standard Webhooks headers with a wrong signature, a stale timestamp or a changed id', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app, { secret: SECRET });
      const msgId = `msg_${randomUUID()}`;
      const now = Math.floor(Date.now() / 1000);
      const stale = now - 3600;
      await send(app, trigger.id, {
        'webhook-id': msgId,
        'webhook-timestamp': String(now),
        'webhook-signature': standardSignature('another-secret-0123456789', msgId, now, body),
      }).expect(401);
      await send(app, trigger.id, {
        'webhook-id': msgId,
        'webhook-timestamp': String(stale),
        'webhook-signature': standardSignature(SECRET, msgId, stale, body),
      }).expect(401);
      await send(app, trigger.id, {
        'webhook-id': `${msgId}-other`,
        'webhook-timestamp': String(now),
        'webhook-signature': standardSignature(SECRET, msgId, now, body),
      }).expect(401);
      expect(await eventsOf(trigger.id)).to.have.length(0);
    });

    it('requires the signature on the batch route too', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app, { secret: SECRET });
      const raw = JSON.stringify({ events: [VALID_ORDER] });
      await send(app, `${trigger.id}/batch`, {}, raw).expect(401);
      await send(app, `${trigger.id}/batch`, { 'x-signature': hexSignature(SECRET, raw) }, raw).expect(202);
      expect(await eventsOf(trigger.id)).to.have.length(1);
    });
  });

  describe('Idempotency-Key', () => {
    it('replays the first answer (same event id) for a repeated key and writes one event only', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const first = await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).set('Idempotency-Key', 'order-A-1').expect(202);
      const again = await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).set('Idempotency-Key', 'order-A-1').expect(202);
      expect(again.body).to.deep.equal(first.body);
      const events = await eventsOf(trigger.id);
      expect(events.map((e) => e.id)).to.deep.equal([first.body.event_id]);
      expect(await t.db('outbox').where({ event_id: first.body.event_id })).to.have.length(1);
      // Another key is another event.
      const other = await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).set('Idempotency-Key', 'order-A-2').expect(202);
      expect(other.body.event_id).to.not.equal(first.body.event_id);
      expect(await eventsOf(trigger.id)).to.have.length(2);
    });

    it('scopes keys per trigger', async () => {
      const app = testApp(t);
      const a = await webhookTrigger(app);
      const b = await webhookTrigger(app);
      const ra = await postJson(app, `/api/v1/webhook/${a.id}`, VALID_ORDER).set('Idempotency-Key', 'shared').expect(202);
      const rb = await postJson(app, `/api/v1/webhook/${b.id}`, VALID_ORDER).set('Idempotency-Key', 'shared').expect(202);
      expect(ra.body.event_id).to.not.equal(rb.body.event_id);
      expect(await eventsOf(a.id)).to.have.length(1);
      expect(await eventsOf(b.id)).to.have.length(1);
    });

    it('gives concurrent requests with one key one event and the same event id', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const answers = await Promise.all(
        Array.from({ length: 8 }, () => postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).set('Idempotency-Key', 'burst')),
      );
      expect(answers.map((r) => r.status)).to.deep.equal(Array(8).fill(202));
      expect(new Set(answers.map((r) => r.body.event_id as string)).size).to.equal(1);
      expect(await eventsOf(trigger.id)).to.have.length(1);
    });

    it('replays a batch answer for a repeated key without writing the batch again', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const body = { events: [VALID_ORDER, INVALID_ORDER, { ...VALID_ORDER, order_id: 'A-2' }] };
      const first = await postJson(app, `/api/v1/webhook/${trigger.id}/batch`, body).set('Idempotency-Key', 'batch-1').expect(207);
      const again = await postJson(app, `/api/v1/webhook/${trigger.id}/batch`, body).set('Idempotency-Key', 'batch-1').expect(207);
      expect(again.body).to.deep.equal(first.body);
      expect(await eventsOf(trigger.id)).to.have.length(2);
    });
  });

  describe('POST /webhook/{trigger_id}/batch', () => {
    it('answers mixed items with 207, an event id per valid item and errors per invalid one, and stores the valid ones', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const items = [VALID_ORDER, INVALID_ORDER, { ...VALID_ORDER, order_id: 'A-2' }, 'not an object'];
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}/batch`, { events: items }).expect(207);
      expect(res.body.accepted).to.equal(2);
      expect(res.body.rejected).to.equal(2);
      const results = res.body.results as Array<{ index: number; status: string; event_id?: string; errors?: Problem['errors'] }>;
      expect(results.map((r) => [r.index, r.status])).to.deep.equal([
        [0, 'accepted'],
        [1, 'rejected'],
        [2, 'accepted'],
        [3, 'rejected'],
      ]);
      expect(results[1]!.errors!.map((e) => e.field)).to.have.members(INVALID_ORDER_POINTERS.map((p) => `/events/1${p}`));
      expect(results[3]!.errors!.map((e) => e.field)).to.deep.equal(['/events/3']);
      const events = await eventsOf(trigger.id);
      expect(events.map((e) => e.id)).to.have.members([results[0]!.event_id, results[2]!.event_id]);
      const byId = new Map(events.map((e) => [e.id, JSON.parse(e.payload as string) as unknown]));
      expect(byId.get(results[0]!.event_id!)).to.deep.equal(items[0]);
      expect(byId.get(results[2]!.event_id!)).to.deep.equal(items[2]);
      expect(await t.db('outbox').whereIn('event_id', [results[0]!.event_id!, results[2]!.event_id!])).to.have.length(2);
    });

    it('answers 202 when every item is valid', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const items = Array.from({ length: 25 }, (_, i) => ({ order_id: `B-${i}`, amount: i }));
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}/batch`, { events: items }).expect(202);
      expect(res.body.accepted).to.equal(25);
      expect(res.body.rejected).to.equal(0);
      const ids = (res.body.results as Array<{ event_id: string }>).map((r) => r.event_id);
      expect(new Set(ids).size).to.equal(25);
      expect((await eventsOf(trigger.id)).map((e) => e.id)).to.have.members(ids);
    });

    it('answers 400 with the per-item errors when no item is valid, and stores nothing', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}/batch`, { events: [INVALID_ORDER, {}] }).expect(400);
      expect(res.body.accepted).to.equal(0);
      expect(res.body.rejected).to.equal(2);
      expect((res.body.results as Array<{ status: string }>).every((r) => r.status === 'rejected')).to.equal(true);
      expect(await eventsOf(trigger.id)).to.have.length(0);
    });

    it('answers 400 for more than 500 items and for an empty list, storing nothing', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const items = Array.from({ length: 501 }, (_, i) => ({ order_id: `C-${i}`, amount: 1 }));
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}/batch`, { events: items }).expect(400);
      expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      expect((res.body as Problem).errors!.map((e) => e.field)).to.include('events');
      await postJson(app, `/api/v1/webhook/${trigger.id}/batch`, { events: [] }).expect(400);
      expect(await eventsOf(trigger.id)).to.have.length(0);
    });

    it('answers 404 and 409 as the single route does', async () => {
      const app = testApp(t);
      await postJson(app, `/api/v1/webhook/${randomUUID()}/batch`, { events: [VALID_ORDER] }).expect(404);
      const cron = await cronTrigger(app);
      await postJson(app, `/api/v1/webhook/${cron.id}/batch`, { events: [VALID_ORDER] }).expect(404);
      const inactive = await webhookTrigger(app, { status: 'inactive' });
      await postJson(app, `/api/v1/webhook/${inactive.id}/batch`, { events: [VALID_ORDER] }).expect(409);
    });
  });

  describe('manual test runs', () => {
    it('POST /triggers/{id}/test fires a cron trigger once as a test run and leaves its schedule alone', async () => {
      const app = testApp(t);
      const trigger = await cronTrigger(app);
      expect(trigger.next_scheduled_run).to.be.a('string');
      const schedulesBefore = await t.db('trigger_schedules').where({ trigger_id: trigger.id }).orderBy('id');
      const res = await request(app).post(`/api/v1/triggers/${trigger.id}/test`).expect(202);
      expect(res.body.status).to.equal('accepted');
      const ev = await request(app).get(`/api/v1/events/${res.body.event_id}`).expect(200);
      expect(ev.body).to.include({ trigger_id: trigger.id, trigger_type: 'cron_scheduled', source: 'manual-test', is_test_run: true });
      expect(ev.body.payload).to.deep.equal({ report: 'daily' });
      expect(await eventsOf(trigger.id)).to.have.length(1);
      const after = await request(app).get(`/api/v1/triggers/${trigger.id}`).expect(200);
      expect(after.body.next_scheduled_run).to.equal(trigger.next_scheduled_run);
      expect(await t.db('trigger_schedules').where({ trigger_id: trigger.id }).orderBy('id')).to.deep.equal(schedulesBefore);
    });

    it('uses a given payload instead of the configured one', async () => {
      const app = testApp(t);
      const trigger = await cronTrigger(app);
      const res = await request(app)
        .post(`/api/v1/triggers/${trigger.id}/test`)
        .send({ payload: { report: 'adhoc' } })
        .expect(202);
      const ev = await request(app).get(`/api/v1/events/${res.body.event_id}`).expect(200);
      expect(ev.body.payload).to.deep.equal({ report: 'adhoc' });
    });

    it('works for an inactive trigger', async () => {
      const app = testApp(t);
      const trigger = await cronTrigger(app, 'inactive');
      expect(trigger.next_scheduled_run).to.equal(null);
      const res = await request(app).post(`/api/v1/triggers/${trigger.id}/test`).expect(202);
      const ev = await request(app).get(`/api/v1/events/${res.body.event_id}`).expect(200);
      expect(ev.body).to.include({ trigger_id: trigger.id, source: 'manual-test', is_test_run: true });
      const after = await request(app).get(`/api/v1/triggers/${trigger.id}`).expect(200);
      expect(after.body).to.include({ status: 'inactive', next_scheduled_run: null });
      expect(await t.db('trigger_schedules').where({ trigger_id: trigger.id })).to.have.length(0);
    });

    it('validates a webhook trigger test payload against its schema: 400 with pointers if invalid, 202 if valid', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app, { status: 'inactive' });
      const bad = await request(app).post(`/api/v1/triggers/${trigger.id}/test`).send({ payload: INVALID_ORDER }).expect(400);
      expect(bad.body.code).to.equal('SCHEMA_VALIDATION_FAILED');
      expect((bad.body as Problem).errors!.map((e) => e.field)).to.have.members(INVALID_ORDER_POINTERS.map((p) => `/payload${p}`));
      expect(await eventsOf(trigger.id)).to.have.length(0);
      const ok = await request(app).post(`/api/v1/triggers/${trigger.id}/test`).send({ payload: VALID_ORDER }).expect(202);
      const ev = await request(app).get(`/api/v1/events/${ok.body.event_id}`).expect(200);
      expect(ev.body).to.include({ source: 'manual-test', is_test_run: true, trigger_type: 'webhook' });
      expect(ev.body.payload).to.deep.equal(VALID_ORDER);
    });

    it('returns 404 for a test run of an unknown trigger', async () => {
      const res = await request(testApp(t)).post(`/api/v1/triggers/${randomUUID()}/test`).expect(404);
      expect(res.body.code).to.equal('TRIGGER_NOT_FOUND');
    });

    it('POST /triggers/test fires an unsaved definition once: trigger_id null, is_test_run true, no trigger stored', async () => {
      const app = testApp(t);
      const [triggersBefore, schedulesBefore] = [await countRows('triggers'), await countRows('trigger_schedules')];
      const res = await request(app)
        .post('/api/v1/triggers/test')
        .send({
          name: 'draft',
          type: 'cron_scheduled',
          config: { endpoint: ENDPOINT, cron: '*/5 * * * *', timezone: 'Europe/Berlin', payload: { draft: true } },
        })
        .expect(202);
      expect(res.body.status).to.equal('accepted');
      const ev = await request(app).get(`/api/v1/events/${res.body.event_id}`).expect(200);
      expect(ev.body).to.include({ trigger_id: null, trigger_type: 'cron_scheduled', source: 'manual-test', is_test_run: true });
      expect(ev.body.payload).to.deep.equal({ draft: true });
      expect(await countRows('triggers')).to.equal(triggersBefore);
      expect(await countRows('trigger_schedules')).to.equal(schedulesBefore);
    });

    it('POST /triggers/test refuses an invalid definition with 400 naming the field, and an invalid webhook payload with 400', async () => {
      const app = testApp(t);
      const eventsBefore = await countRows('event_logs');
      const bad = await request(app)
        .post('/api/v1/triggers/test')
        .send({ type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: 'not a cron' } })
        .expect(400);
      expect((bad.body as Problem).errors!.map((e) => e.field)).to.include('config.cron');
      const badPayload = await request(app)
        .post('/api/v1/triggers/test')
        .send({ type: 'webhook', config: { endpoint: ENDPOINT, schema: ORDER_SCHEMA }, payload: INVALID_ORDER })
        .expect(400);
      expect(badPayload.body.code).to.equal('SCHEMA_VALIDATION_FAILED');
      expect(await countRows('event_logs')).to.equal(eventsBefore);
      const ok = await request(app)
        .post('/api/v1/triggers/test')
        .send({ type: 'webhook', config: { endpoint: ENDPOINT, schema: ORDER_SCHEMA }, payload: VALID_ORDER })
        .expect(202);
      const ev = await request(app).get(`/api/v1/events/${ok.body.event_id}`).expect(200);
      expect(ev.body).to.include({ trigger_id: null, trigger_type: 'webhook', is_test_run: true });
    });
  });

  describe('through the relay to Kafka', () => {
    let producer: EventProducer;
    let reader: KafkaReader;

    before(async function () {
      // Topic creation on a shared broker can take several seconds.
      this.timeout(60_000);
      await ensureTopics(t.config.kafkaBrokers, [{ name: t.topic, partitions: 3 }], 45_000);
      producer = new EventProducer({ brokers: t.config.kafkaBrokers, messageTimeoutMs: 10_000 });
      await producer.connect();
      reader = await new KafkaReader([t.topic]).start();
    });
    after(async () => {
      await reader?.stop();
      await producer?.close();
    });

    const publishAll = async () => {
      const lane = new OutboxPublisher({ db: t.db, producer, config: t.config, events: new Lifecycle() }).lane(0, 1);
      while ((await lane.publish()).full) {
        /* next batch */
      }
    };

    it('publishes an accepted webhook event to Kafka, keyed by trigger id, with event-id and content-type headers', async () => {
      const app = testApp(t);
      const trigger = await webhookTrigger(app);
      const res = await postJson(app, `/api/v1/webhook/${trigger.id}`, VALID_ORDER).expect(202);
      const eventId = res.body.event_id as string;
      await publishAll();

      const msg = await until(() => reader.byEventId(eventId)[0], { timeoutMs: 20_000, message: 'the webhook event on Kafka' });
      expect(msg.topic).to.equal(t.topic);
      expect(msg.key).to.equal(trigger.id);
      expect(msg.headers['event-id']).to.equal(eventId);
      expect(msg.headers['content-type']).to.equal('application/json');
      const ev = await request(app).get(`/api/v1/events/${eventId}`).expect(200);
      expect(msg.value).to.include({
        event_id: eventId,
        trigger_id: trigger.id,
        type: 'webhook',
        source: 'webhook',
        is_test_run: false,
        scheduled_for: null,
        fired_at: ev.body.fired_at,
      });
      expect(msg.value.payload).to.deep.equal(VALID_ORDER);
      // The relay marked it published.
      expect(ev.body.execution_status).to.equal('published');
      expect(ev.body.published_at).to.be.a('string');
      // …and removed its row from the outbox in the same commit.
      expect(await t.db('outbox').where({ event_id: eventId })).to.have.length(0);
      expect(reader.byEventId(eventId)).to.have.length(1);
    });

    it('publishes an unsaved test run with trigger_id null, keyed by its event id', async () => {
      const app = testApp(t);
      const res = await request(app)
        .post('/api/v1/triggers/test')
        .send({ type: 'webhook', config: { endpoint: ENDPOINT, schema: ORDER_SCHEMA }, payload: VALID_ORDER })
        .expect(202);
      const eventId = res.body.event_id as string;
      await publishAll();
      const msg = await until(() => reader.byEventId(eventId)[0], { timeoutMs: 20_000, message: 'the test-run event on Kafka' });
      expect(msg.key).to.equal(eventId);
      expect(msg.value).to.include({ event_id: eventId, trigger_id: null, source: 'manual-test', is_test_run: true, type: 'webhook' });
      expect(msg.headers['event-id']).to.equal(eventId);
    });
  });
});

describe('webhook body size limit', () => {
  let t: TestEnv;
  before(async () => {
    t = await createTestEnv('webhooklimit', { WEBHOOK_MAX_BODY_BYTES: '2048' });
  });
  after(async () => {
    await t?.cleanup();
  });

  it('answers a body over WEBHOOK_MAX_BODY_BYTES with 413 and logs nothing; a body under it is accepted', async () => {
    const app = testApp(t);
    const trigger = await webhookTrigger(app, { schema: { type: 'object' } });
    const big = JSON.stringify({ blob: 'x'.repeat(2100) });
    const res = await request(app).post(`/api/v1/webhook/${trigger.id}`).set('content-type', 'application/json').send(big).expect(413);
    expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
    expect(res.body.code).to.equal('PAYLOAD_TOO_LARGE');
    const small = JSON.stringify({ blob: 'x'.repeat(1900) });
    await request(app).post(`/api/v1/webhook/${trigger.id}`).set('content-type', 'application/json').send(small).expect(202);
    const rows = (await t.db('event_logs').where({ trigger_id: trigger.id })) as Array<{ payload: string }>;
    expect(rows).to.have.length(1);
    expect(JSON.parse(rows[0]!.payload)).to.deep.equal({ blob: 'x'.repeat(1900) });
  });

  it('answers an over-size batch with 413', async () => {
    const app = testApp(t);
    const trigger = await webhookTrigger(app, { schema: { type: 'object' } });
    const events = Array.from({ length: 50 }, (_, i) => ({ n: i, pad: 'y'.repeat(40) }));
    const res = await postJson(app, `/api/v1/webhook/${trigger.id}/batch`, { events }).expect(413);
    expect(res.body.code).to.equal('PAYLOAD_TOO_LARGE');
    expect(await t.db('event_logs').where({ trigger_id: trigger.id })).to.have.length(0);
  });
});
