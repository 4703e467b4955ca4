import { expect } from 'chai';
import request from 'supertest';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { Receiver, type Received } from '../helpers/receiver';
import { until } from '../helpers/until';
import { count } from '../helpers/fixtures';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';

/*
 * Issue 24, items 1 and 2: replay at most once, retry now, cancel retries — against the real MariaDB, a
 * real Kafka broker, the real relay and worker (in-process) and a local HTTP receiver. Every API response
 * is checked against openapi.yaml.
 */

const quiet = createLogger('error', 'test');
const HOUR_S = '3600';

interface EventBody {
  id: string;
  execution_status: string;
  attempts: number;
  error_message: string | null;
  next_attempt_at: string | null;
  replayed_as: string | null;
  replay_count: number;
  replay_of: string | null;
}
type Answer = { status: number; body?: string; headers?: Record<string, string>; delayMs?: number };

describe('delivery controls: replay at most once, retry now, cancel retries', function () {
  this.timeout(180_000);
  let t: TestEnv;
  let app: Express;
  let platform: Platform;
  let receiver: Receiver;
  /** Per-path answers of the shared receiver (default 200); `n` counts that path's requests from 0. */
  const answers = new Map<string, (r: Received, n: number) => Answer>();

  before(async () => {
    t = await createTestEnv('controls');
    app = testApp(t);
    platform = await startPlatform(t.config, ['relay', 'worker'], { logger: quiet, migrate: false });
    receiver = await new Receiver().start();
    receiver.respond = (r) => (answers.get(r.path) ?? (() => ({ status: 200 })))(r, receiver.forPath(r.path).length - 1);
  });
  after(async () => {
    await platform?.stop();
    await receiver?.stop();
    await t?.cleanup();
  });

  const getEvent = async (id: string) => (await request(app).get(`/api/v1/events/${id}`).expect(200)).body as EventBody;
  const row = async (id: string) => (await t.db('event_logs').where({ id }).first()) as { execution_status: string; attempts: number };
  const attemptNumbers = async (id: string) =>
    ((await t.db('delivery_attempts').where({ event_id: id }).orderBy('attempt')) as Array<{ attempt: number }>).map((a) => a.attempt);
  const settled = (id: string, timeoutMs = 60_000) =>
    until(
      async () => {
        const e = await row(id);
        return e && (e.execution_status === 'success' || e.execution_status === 'failure') ? getEvent(id) : null;
      },
      { timeoutMs, message: `event ${id} delivered or failed` },
    );
  /** Until the worker has recorded a failed first attempt and scheduled the next one. */
  const waiting = (id: string) =>
    until(
      async () => {
        const e = await getEvent(id);
        return e.next_attempt_at !== null ? e : null;
      },
      { timeoutMs: 30_000, message: `a retry of ${id} waiting` },
    );
  async function webhookTrigger(path: string, retry: Record<string, number> = { max_attempts: 5, backoff_ms: 100 }): Promise<string> {
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({ name: path, type: 'webhook', config: { endpoint: receiver.url(path), schema: { type: 'object' }, retry } });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body.id as string;
  }
  async function fire(triggerId: string, payload: object): Promise<string> {
    return ((await request(app).post(`/api/v1/webhook/${triggerId}`).send(payload).expect(202)).body as { event_id: string }).event_id;
  }
  /** A receiver path that fails every call with 503 until `healthy()` (Retry-After: an hour, so no retry comes by itself). */
  function flaky(path: string): { heal: () => void } {
    let healthy = false;
    answers.set(path, () => (healthy ? { status: 200 } : { status: 503, headers: { 'Retry-After': HOUR_S } }));
    return { heal: () => (healthy = true) };
  }

  describe('replay', () => {
    it('replays a failed event once; a second replay answers 409 naming the first replay, which the original shows; force replays again', async () => {
      const ep = flaky('/once');
      const trigger = await webhookTrigger('/once', { max_attempts: 1, backoff_ms: 10 });
      const original = await fire(trigger, { invoice: 'INV-DUP' });
      expect((await settled(original)).execution_status).to.equal('failure');
      ep.heal();

      const first = await request(app).post(`/api/v1/events/${original}/replay`).expect(202);
      const replayId = first.body.event_id as string;
      const second = await request(app).post(`/api/v1/events/${original}/replay`).expect(409);
      expect(second.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(second.body).to.include({ code: 'EVENT_ALREADY_REPLAYED', replay_id: replayId });
      expect(second.body.detail).to.include(replayId);
      expect(await count(t.db, 'event_logs', { replay_of: original })).to.equal(1);

      const shown = await getEvent(original);
      expect(shown).to.include({ execution_status: 'failure', replayed_as: replayId, replay_count: 1 });
      const listed = (await request(app).get('/api/v1/events').query({ trigger_id: trigger, execution_status: 'failure' }).expect(200))
        .body as { events: EventBody[] };
      expect(listed.events.find((e) => e.id === original)).to.include({ replayed_as: replayId });
      expect((await settled(replayId)).execution_status).to.equal('success');

      const forced = await request(app).post(`/api/v1/events/${original}/replay`).query({ force: true }).expect(202);
      expect(forced.body.event_id).to.not.equal(replayId);
      expect(await getEvent(original)).to.include({ replayed_as: forced.body.event_id, replay_count: 2 });
      await settled(forced.body.event_id as string);
      // The original once, the replay once, the forced replay once.
      expect(receiver.forPath('/once').map((r) => JSON.parse(r.body).invoice)).to.deep.equal(['INV-DUP', 'INV-DUP', 'INV-DUP']);
    });

    it('lets exactly one of several concurrent replays of one event through', async () => {
      const trigger = await webhookTrigger('/concurrent');
      const original = await fire(trigger, { n: 1 });
      await settled(original);
      const answers = await Promise.all(Array.from({ length: 6 }, () => request(app).post(`/api/v1/events/${original}/replay`)));
      expect(answers.map((a) => a.status).sort()).to.deep.equal([202, 409, 409, 409, 409, 409]);
      const winner = answers.find((a) => a.status === 202)!.body.event_id as string;
      for (const a of answers.filter((x) => x.status === 409))
        expect(a.body).to.include({ code: 'EVENT_ALREADY_REPLAYED', replay_id: winner });
      expect(await count(t.db, 'event_logs', { replay_of: original })).to.equal(1);
    });

    it('refuses to replay an event that is still being retried (409 EVENT_NOT_FINAL); after cancelling its retries it replays once', async () => {
      const ep = flaky('/dup-2');
      const trigger = await webhookTrigger('/dup-2');
      const id = await fire(trigger, { ref: 'DUP-2' });
      await waiting(id);
      const refused = await request(app).post(`/api/v1/events/${id}/replay`).expect(409);
      expect(refused.body.code).to.equal('EVENT_NOT_FINAL');
      expect(await count(t.db, 'event_logs', { replay_of: id })).to.equal(0);

      await request(app).post(`/api/v1/events/${id}/cancel`).send({ reason: 'endpoint fixed, replaying' }).expect(200);
      ep.heal();
      const replay = await request(app).post(`/api/v1/events/${id}/replay`).expect(202);
      await settled(replay.body.event_id as string);
      // The failed first attempt, then the replay: DUP-2 reached the endpoint once successfully.
      expect(receiver.forPath('/dup-2').map((r) => r.headers['webhook-id'])).to.deep.equal([id, replay.body.event_id]);
    });

    it('bulk replay skips events replayed before and events not final, and says how many of each', async () => {
      const ep = flaky('/bulk');
      flaky('/bulk-retrying');
      const trigger = await webhookTrigger('/bulk', { max_attempts: 1, backoff_ms: 10 });
      const failed = [await fire(trigger, { n: 1 }), await fire(trigger, { n: 2 })];
      for (const id of failed) await settled(id);
      ep.heal();
      const single = await request(app).post(`/api/v1/events/${failed[0]!}/replay`).expect(202);
      expect((await settled(single.body.event_id as string)).execution_status).to.equal('success');
      // An event still being retried, of a trigger with retries.
      const retrying = await webhookTrigger('/bulk-retrying');
      const pending = await fire(retrying, { n: 3 });
      await waiting(pending);

      const res = await request(app).post('/api/v1/events/replay').send({ trigger_id: trigger, execution_status: 'failure' }).expect(202);
      expect(res.body).to.deep.equal({ replayed: 1, skipped: { already_replayed: 1, not_final: 0, not_replayable: 0 } });
      const all = await request(app).post('/api/v1/events/replay').send({ trigger_id: retrying }).expect(202);
      expect(all.body).to.deep.equal({ replayed: 0, skipped: { already_replayed: 0, not_final: 1, not_replayable: 0 } });
      // "Replay all shown" a second time replays nothing.
      const again = await request(app).post('/api/v1/events/replay').send({ trigger_id: trigger, execution_status: 'failure' }).expect(202);
      expect(again.body).to.deep.equal({ replayed: 0, skipped: { already_replayed: 2, not_final: 0, not_replayable: 0 } });
      const forced = await request(app)
        .post('/api/v1/events/replay')
        .send({ trigger_id: trigger, execution_status: 'failure', force: true })
        .expect(202);
      expect(forced.body.replayed).to.equal(2);
      expect(await count(t.db, 'event_logs', { replay_of: failed[0]! })).to.equal(2);
      expect(await count(t.db, 'event_logs', { replay_of: failed[1]! })).to.equal(2);
      await request(app).post(`/api/v1/events/${pending}/cancel`).expect(200);
    });
  });

  describe('retry now', () => {
    it('makes the waiting attempt now, counted once: attempts 1 and 2, two requests in all', async () => {
      const ep = flaky('/retry-now');
      const trigger = await webhookTrigger('/retry-now');
      const id = await fire(trigger, { n: 1 });
      const before = await waiting(id);
      expect(before).to.include({ execution_status: 'published', attempts: 1 });
      expect(Date.parse(before.next_attempt_at!) - Date.now()).to.be.greaterThan(3000 * 1000);

      ep.heal();
      const res = await request(app).post(`/api/v1/events/${id}/retry`).expect(202);
      expect(res.body).to.include({ event_id: id, attempt: 2 });
      const done = await settled(id, 30_000);
      expect(done).to.include({ execution_status: 'success', attempts: 2, next_attempt_at: null });
      expect(await attemptNumbers(id)).to.deep.equal([1, 2]);
      expect(receiver.forPath('/retry-now')).to.have.length(2);

      const ended = await request(app).post(`/api/v1/events/${id}/retry`).expect(409);
      expect(ended.body.code).to.equal('EVENT_ENDED');
    });

    it('answers 409 RETRY_NOT_WAITING while an attempt is being made, and 404 for an unknown event', async () => {
      answers.set('/slow', () => ({ status: 200, delayMs: 1500 }));
      const trigger = await webhookTrigger('/slow');
      const id = await fire(trigger, { n: 1 });
      await until(() => receiver.forPath('/slow').length === 1, { timeoutMs: 30_000, message: 'first attempt under way' });
      const res = await request(app).post(`/api/v1/events/${id}/retry`).expect(409);
      expect(res.body.code).to.equal('RETRY_NOT_WAITING');
      expect((await settled(id)).attempts).to.equal(1);
      const unknown = await request(app).post('/api/v1/events/00000000-0000-4000-8000-000000000000/retry').expect(404);
      expect(unknown.body.code).to.equal('EVENT_NOT_FOUND');
    });

    it("races manual retries against the worker's own retry: never two attempts with one number, never an extra delivery", async () => {
      // Attempt 1 fails with a short back-off (0-300 ms, jittered); manual retries hammer the event meanwhile.
      const paths = ['/race-1', '/race-2', '/race-3', '/race-4'];
      for (const p of paths) answers.set(p, (_r, n) => ({ status: n === 0 ? 503 : 200 }));
      const ids = await Promise.all(
        paths.map(async (p) => fire(await webhookTrigger(p, { max_attempts: 5, backoff_ms: 300 }), { path: p })),
      );
      const statuses: number[] = [];
      await Promise.all(
        ids.map(async (id) => {
          await until(async () => (await row(id)).attempts >= 1, { timeoutMs: 30_000, message: `first attempt of ${id}` });
          while ((await row(id)).execution_status !== 'success') {
            const burst = await Promise.all(Array.from({ length: 3 }, () => request(app).post(`/api/v1/events/${id}/retry`)));
            statuses.push(...burst.map((b) => b.status));
          }
        }),
      );
      // At most one manual retry per event moved its attempt forward; the others found it on its way.
      expect(statuses.filter((s) => s === 202).length).to.be.at.most(ids.length);
      expect(
        statuses.every((s) => s === 202 || s === 409),
        JSON.stringify(statuses),
      ).to.equal(true);
      for (const [i, id] of ids.entries()) {
        expect(await attemptNumbers(id), id).to.deep.equal([1, 2]);
        expect(await row(id)).to.include({ execution_status: 'success', attempts: 2 });
        expect(receiver.forPath(paths[i]!), paths[i]).to.have.length(2);
      }
    });
  });

  describe('cancel retries', () => {
    it('ends a retrying event as failure with the reason, drops its waiting attempt, and answers 409 once it has ended', async () => {
      flaky('/cancel');
      const trigger = await webhookTrigger('/cancel');
      const id = await fire(trigger, { n: 1 });
      await waiting(id);
      expect(await count(t.db, 'outbox', { event_id: id })).to.equal(1);

      const res = await request(app).post(`/api/v1/events/${id}/cancel`).send({ reason: 'customer asked' }).expect(200);
      expect(res.body).to.include({ id, execution_status: 'failure', error_message: 'cancelled by an operator: customer asked' });
      expect(res.body.next_attempt_at).to.equal(null);
      expect(await count(t.db, 'outbox', { event_id: id })).to.equal(0);
      const again = await request(app).post(`/api/v1/events/${id}/cancel`).expect(409);
      expect(again.body.code).to.equal('EVENT_ENDED');
      expect((await request(app).post(`/api/v1/events/${id}/retry`).expect(409)).body.code).to.equal('EVENT_ENDED');
      expect(receiver.forPath('/cancel')).to.have.length(1);
    });

    it('keeps a cancel that lands while an attempt is in flight: the attempt is recorded, nothing is retried, the event stays cancelled', async () => {
      answers.set('/cancel-in-flight', () => ({ status: 503, delayMs: 1500 }));
      const trigger = await webhookTrigger('/cancel-in-flight', { max_attempts: 5, backoff_ms: 10 });
      const id = await fire(trigger, { n: 1 });
      await until(() => receiver.forPath('/cancel-in-flight').length === 1, { timeoutMs: 30_000, message: 'attempt under way' });
      await request(app).post(`/api/v1/events/${id}/cancel`).expect(200);
      // The worker records the 503 it got: in the history only.
      await until(async () => (await attemptNumbers(id)).length === 1, { timeoutMs: 30_000, message: 'attempt recorded' });
      const e = await getEvent(id);
      expect(e).to.include({ execution_status: 'failure', error_message: 'cancelled by an operator', next_attempt_at: null });
      expect(await count(t.db, 'outbox', { event_id: id })).to.equal(0);
      expect(receiver.forPath('/cancel-in-flight')).to.have.length(1);
    });

    it('validates the reason and answers 404 for an unknown event', async () => {
      const bad = await request(app).post('/api/v1/events/00000000-0000-4000-8000-000000000000/cancel').send({ reason: '' }).expect(400);
      expect(bad.body.code).to.equal('VALIDATION_FAILED');
      const unknown = await request(app).post('/api/v1/events/00000000-0000-4000-8000-000000000000/cancel').expect(404);
      expect(unknown.body.code).to.equal('EVENT_NOT_FOUND');
    });
  });
});
