import { expect } from 'chai';
import request from 'supertest';
import type { Express } from 'express';
import { createHmac, randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { until } from '../helpers/until';
import { count } from '../helpers/fixtures';
import { Lifecycle } from '../../src/events';
import { sweep } from '../../src/relay/steps';
import { REJECTIONS_KEPT_PER_TRIGGER } from '../../src/db/webhook-requests';
import { REQUEST_LOG_DEFAULTS, WebhookRequestLog } from '../../src/api/webhook-request-log';
import { ApiError } from '../../src/api/errors';
import type { Request } from 'express';

/*
 * Issue 24, item 3: a webhook trigger's log of inbound calls. Accepted calls are read from the event log;
 * every kind of rejection is written (off the request path) to a bounded log. Real MariaDB, the real app.
 */

interface Call {
  received_at: string;
  outcome: 'accepted' | 'rejected';
  http_status: number;
  code: string | null;
  reason: string | null;
  body_bytes: number;
  signature: string;
  event_id: string | null;
}

describe('webhook request log: accepted and rejected calls per trigger', function () {
  this.timeout(60_000);
  let t: TestEnv;
  let app: Express;
  const secret = 'request-log-secret-123';
  const sign = (body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

  before(async () => {
    t = await createTestEnv('reqlog', { WEBHOOK_MAX_BODY_BYTES: '2048', RATE_LIMIT_PER_WEBHOOK: '0' });
    app = testApp(t);
  });
  after(async () => {
    await t?.cleanup();
  });

  async function webhookTrigger(name: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({
        name,
        type: 'webhook',
        config: {
          endpoint: 'https://example.com/hook',
          schema: { type: 'object', required: ['order_id'], properties: { order_id: { type: 'string' } } },
          ...extra,
        },
      });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body.id as string;
  }
  const calls = async (id: string, limit?: number) =>
    (
      await request(app)
        .get(`/api/v1/triggers/${id}/requests`)
        .query(limit ? { limit } : {})
        .expect(200)
    ).body as {
      trigger_id: string;
      max_rejections_kept: number;
      requests: Call[];
    };
  const post = (id: string, body: string, headers: Record<string, string> = {}, path = '') => {
    const r = request(app).post(`/api/v1/webhook/${id}${path}`).set('content-type', 'application/json');
    for (const [k, v] of Object.entries(headers)) r.set(k, v);
    return r.send(body);
  };

  it('logs every kind of rejection with its status, code, reason, size and signature verdict, and the accepted call with its event, newest first', async () => {
    const id = await webhookTrigger('logged', { secret });
    const good = JSON.stringify({ order_id: 'A-1' });
    const accepted = await post(id, good, { 'X-Signature': sign(good) }).expect(202);
    const wrongShape = JSON.stringify({ amount: 5 });
    await post(id, wrongShape, { 'X-Signature': sign(wrongShape) }).expect(400);
    await post(id, '{"order_id":', { 'X-Signature': sign('{"order_id":') }).expect(400);
    await request(app).post(`/api/v1/webhook/${id}`).set('content-type', 'text/plain').send('order=1').expect(415);
    await post(randomUUID(), good).expect(404); // unknown trigger: not logged
    await post(id, good).expect(401);
    await post(id, good, { 'X-Signature': sign('something else') }).expect(401);
    const big = JSON.stringify({ order_id: 'x'.repeat(3000) });
    await post(id, big, { 'X-Signature': sign(big) }).expect(413);
    const batch = JSON.stringify({ events: [{ amount: 1 }, { amount: 2 }] });
    await post(id, batch, { 'X-Signature': sign(batch) }, '/batch').expect(400);
    await request(app).put(`/api/v1/triggers/${id}`).send({ status: 'inactive' }).expect(200);
    await post(id, good, { 'X-Signature': sign(good) }).expect(409);

    const log = await until(
      async () => {
        const l = await calls(id);
        return l.requests.filter((c) => c.outcome === 'rejected').length === 8 ? l : null;
      },
      { timeoutMs: 10_000, message: 'eight rejections logged' },
    );
    expect(log.max_rejections_kept).to.equal(REJECTIONS_KEPT_PER_TRIGGER);
    const shape = log.requests.map((c) => [c.outcome, c.http_status, c.code, c.signature]);
    expect(shape).to.deep.equal([
      ['rejected', 409, 'TRIGGER_INACTIVE', 'not_checked'],
      ['rejected', 400, 'SCHEMA_VALIDATION_FAILED', 'valid'],
      ['rejected', 413, 'PAYLOAD_TOO_LARGE', 'not_checked'],
      ['rejected', 401, 'INVALID_SIGNATURE', 'invalid'],
      ['rejected', 401, 'INVALID_SIGNATURE', 'missing'],
      ['rejected', 415, 'UNSUPPORTED_MEDIA_TYPE', 'not_checked'],
      ['rejected', 400, 'MALFORMED_JSON', 'not_checked'],
      ['rejected', 400, 'SCHEMA_VALIDATION_FAILED', 'valid'],
      ['accepted', 202, null, 'passed'],
    ]);
    const times = log.requests.map((c) => Date.parse(c.received_at));
    expect([...times].sort((a, b) => b - a)).to.deep.equal(times);
    const [, , tooBig, , , , , schema, ok] = log.requests;
    expect(ok).to.include({ event_id: accepted.body.event_id, body_bytes: good.length, reason: null });
    expect(schema!.reason).to.include('/order_id');
    expect(schema!.body_bytes).to.equal(wrongShape.length);
    expect(tooBig!.body_bytes).to.equal(big.length);
    for (const c of log.requests.filter((x) => x.outcome === 'rejected')) expect(c.event_id).to.equal(null);
    // Only the rejections were written; the 404 was not (it was sent before the 401s, which are in).
    expect(await count(t.db, 'webhook_rejections')).to.equal(8);

    expect((await calls(id, 3)).requests).to.have.length(3);
  });

  it('keeps at most the newest REJECTIONS_KEPT_PER_TRIGGER (+ one trim interval) under a flood, and ages them out with the events', async () => {
    const id = await webhookTrigger('flooded');
    const bad = JSON.stringify({ nope: true });
    const flood = REJECTIONS_KEPT_PER_TRIGGER + 60;
    for (let i = 0; i < flood; i += 20) {
      await Promise.all(Array.from({ length: Math.min(20, flood - i) }, () => post(id, bad).expect(400)));
    }
    // A last, different rejection: once it is in, every earlier one has been written (and trimmed).
    await request(app).post(`/api/v1/webhook/${id}`).set('content-type', 'text/plain').send('x').expect(415);
    await until(async () => (await calls(id, 1)).requests[0]?.code === 'UNSUPPORTED_MEDIA_TYPE', {
      timeoutMs: 20_000,
      message: 'the flood written',
    });
    const kept = await count(t.db, 'webhook_rejections', { trigger_id: id });
    expect(kept).to.be.at.least(REJECTIONS_KEPT_PER_TRIGGER);
    expect(kept).to.be.at.most(REJECTIONS_KEPT_PER_TRIGGER + REQUEST_LOG_DEFAULTS.trimEvery);
    expect((await calls(id, 200)).requests).to.have.length(200);

    await t
      .db('webhook_rejections')
      .where({ trigger_id: id })
      .update({ received_at: new Date(Date.now() - (t.config.retentionDeleteAfterSeconds + 60) * 1000) });
    expect((await calls(id)).requests).to.deep.equal([]);
    expect((await sweep(t.db, t.config, new Lifecycle())).quiet, 'a sweep that deleted rows is not quiet').to.equal(false);
    expect(await count(t.db, 'webhook_rejections', { trigger_id: id })).to.equal(0);
    // Once it has caught up (a fresh database's empty time slices retire one a sweep), nothing is left to
    // age out: the relay sweeps less often after such a sweep.
    for (let i = 0; i < 50 && (await sweep(t.db, t.config, new Lifecycle())).full; i++);
    expect((await sweep(t.db, t.config, new Lifecycle())).quiet, 'the next sweep, with nothing to do').to.equal(true);
  });

  it('holds at most maxQueued rejections in memory: the rest are counted as not recorded, and close() writes what it holds', async () => {
    const id = await webhookTrigger('queue');
    const events = new Lifecycle();
    const seen: boolean[] = [];
    events.onEvent('api:webhook_rejected', (e) => seen.push(e.recorded));
    // A flush delay far beyond the test: only close() writes.
    const log = new WebhookRequestLog(
      t.db,
      { ...REQUEST_LOG_DEFAULTS, flushDelayMs: 600_000, maxQueued: 5, keepSeconds: 3600 },
      events,
      null,
    );
    const req = { method: 'POST', originalUrl: `/api/v1/webhook/${id}`, headers: { 'content-length': '12' } } as unknown as Request;
    for (let i = 0; i < 8; i++) log.note(req, 'missing', new ApiError('INVALID_SIGNATURE'));
    log.note({ ...req, originalUrl: `/api/v1/webhook/${id}` } as Request, undefined, new ApiError('TRIGGER_NOT_FOUND')); // 404: ignored
    log.note({ ...req, originalUrl: '/api/v1/triggers' } as Request, undefined, new ApiError('VALIDATION_FAILED')); // not a webhook
    expect(seen).to.deep.equal([true, true, true, true, true, false, false, false]);
    expect(await count(t.db, 'webhook_rejections', { trigger_id: id })).to.equal(0);
    await log.close();
    expect(
      await count(t.db, 'webhook_rejections', { trigger_id: id, code: 'INVALID_SIGNATURE', signature: 'missing', body_bytes: 12 }),
    ).to.equal(5);
    log.note(req, 'missing', new ApiError('INVALID_SIGNATURE'));
    expect(seen[seen.length - 1], 'closed: takes no more').to.equal(false);
  });

  it('answers 404 for an unknown trigger and 400 for a trigger that is not a webhook trigger', async () => {
    const missing = await request(app).get(`/api/v1/triggers/${randomUUID()}/requests`).expect(404);
    expect(missing.body.code).to.equal('TRIGGER_NOT_FOUND');
    const cron = await request(app)
      .post('/api/v1/triggers')
      .send({ name: 'c', type: 'cron_scheduled', config: { endpoint: 'https://example.com/c', cron: '0 9 * * *' } })
      .expect(201);
    const res = await request(app)
      .get(`/api/v1/triggers/${cron.body.id as string}/requests`)
      .expect(400);
    expect(res.body.code).to.equal('VALIDATION_FAILED');
    expect(res.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['type']);
  });
});
