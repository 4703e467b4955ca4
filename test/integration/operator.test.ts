import { expect } from 'chai';
import request from 'supertest';
import { randomUUID } from 'node:crypto';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { Receiver, type Received } from '../helpers/receiver';
import { until } from '../helpers/until';
import { metricValue, scrapeMetrics } from '../helpers/metrics';
import { count } from '../helpers/fixtures';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import { Lifecycle } from '../../src/events';
import { sweep } from '../../src/relay/steps';
import { scheduledEventId } from '../../src/triggers/event-id';
import { jitteredFireAt } from '../../src/triggers/schedule';
import type { TriggerConfig } from '../../src/triggers/types';

/*
 * Issue 11, the operator's toolkit, against the real MariaDB, a real Kafka broker, the real relay and
 * worker (in-process) and local HTTP receivers. Every API response is checked against openapi.yaml.
 */

const quiet = createLogger('error', 'test');
const SECOND = 1000;
const HOUR = 3600 * SECOND;

interface EventBody {
  id: string;
  trigger_id: string | null;
  source: string;
  execution_status: string;
  attempts: number;
  error_message: string | null;
  replay_of: string | null;
  payload: unknown;
  scheduled_for: string | null;
  fired_at: string;
  retention_status: string;
}
interface Attempt {
  attempt: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_body: string | null;
}
interface TriggerBody {
  id: string;
  status: string;
  tags: string[];
  next_scheduled_run: string | null;
  config: Record<string, unknown>;
}
interface Occurrence {
  at: string;
  local: string;
  scheduled_for: string;
}

describe('operator toolkit', function () {
  this.timeout(180_000);
  let t: TestEnv;
  let app: Express;
  let platform: Platform;
  let receiver: Receiver;
  let reader: KafkaReader;
  /** Per-path answers of the shared receiver (default 200). */
  const answers = new Map<string, (r: Received) => { status: number; body?: string; headers?: Record<string, string> }>();

  before(async () => {
    t = await createTestEnv('operator');
    app = testApp(t);
    platform = await startPlatform(t.config, ['relay', 'worker'], { logger: quiet, migrate: false });
    receiver = await new Receiver().start();
    receiver.respond = (r) => (answers.get(r.path) ?? (() => ({ status: 200 })))(r);
    reader = await new KafkaReader([t.config.kafkaTopic, t.config.kafkaDlqTopic]).start();
  });
  after(async () => {
    await platform?.stop();
    await reader?.stop();
    await receiver?.stop();
    await t?.cleanup();
  });

  const getEvent = async (id: string) => (await request(app).get(`/api/v1/events/${id}`).expect(200)).body as EventBody;
  const attemptsOf = async (id: string) =>
    ((await request(app).get(`/api/v1/events/${id}/attempts`).expect(200)).body as { attempts: Attempt[] }).attempts;
  const settled = (id: string, timeoutMs = 60_000) =>
    until(
      async () => {
        const e = (await t.db('event_logs').where({ id }).first()) as { execution_status: string } | undefined;
        return e && (e.execution_status === 'success' || e.execution_status === 'failure') ? getEvent(id) : null;
      },
      { timeoutMs, message: `event ${id} delivered or failed` },
    );
  const getTrigger = async (id: string) => (await request(app).get(`/api/v1/triggers/${id}`).expect(200)).body as TriggerBody;

  async function createTrigger(body: Record<string, unknown>): Promise<TriggerBody> {
    const res = await request(app).post('/api/v1/triggers').send(body);
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body as TriggerBody;
  }
  async function webhookTrigger(path: string, extra: Record<string, unknown> = {}, tags?: string[]): Promise<string> {
    const body: Record<string, unknown> = {
      name: path,
      type: 'webhook',
      config: { endpoint: receiver.url(path), schema: { type: 'object' }, ...extra },
    };
    if (tags) body.tags = tags;
    return (await createTrigger(body)).id;
  }
  async function fire(triggerId: string, payload: object): Promise<string> {
    return ((await request(app).post(`/api/v1/webhook/${triggerId}`).send(payload).expect(202)).body as { event_id: string }).event_id;
  }
  const fieldsOf = (res: request.Response) => ((res.body.errors ?? []) as Array<{ field: string }>).map((e) => e.field);

  describe('delivery history and replay', () => {
    let failedId: string;
    let triggerId: string;

    it("keeps each attempt's request and response headers with secrets masked (signature, authorization, cookies) and long values cut", async () => {
      const secret = 'whsec_' + 'k'.repeat(32);
      answers.set('/headers', () => ({
        status: 200,
        body: 'ok',
        headers: { 'Set-Cookie': 'sid=very-secret-session', 'X-Trace': 'trace-77', 'X-Long': 'v'.repeat(2000) },
      }));
      const id = await webhookTrigger('/headers', { secret, headers: { Authorization: 'Bearer top-secret-token', 'X-Team': 'ops' } });
      // A test run: the trigger's secret also guards its inbound calls, which this test does not sign.
      const eventId = (
        await request(app)
          .post(`/api/v1/triggers/${id}/test`)
          .send({ payload: { n: 7 } })
          .expect(202)
      ).body.event_id as string;
      await settled(eventId);
      const sent = receiver.forPath('/headers')[0]!;
      const [a] = (await request(app).get(`/api/v1/events/${eventId}/attempts`).expect(200)).body.attempts as Array<{
        request_headers: Record<string, string>;
        response_headers: Record<string, string>;
      }>;
      expect(a!.request_headers).to.include({
        'x-team': 'ops',
        'webhook-id': eventId,
        authorization: 'Bearer ••••••',
        'webhook-signature': '••••••',
      });
      expect(a!.request_headers['content-type']).to.equal('application/json');
      expect(sent.headers['webhook-signature']).to.be.a('string').and.not.equal('••••••');
      expect(a!.response_headers).to.include({ 'set-cookie': '••••••', 'x-trace': 'trace-77' });
      expect(a!.response_headers['x-long'])
        .to.have.length.below(600)
        .and.match(/\(2000 chars\)$/);
      // Nothing secret reached the table, in any column.
      const stored = JSON.stringify(await t.db('delivery_attempts').where({ event_id: eventId }));
      for (const s of ['top-secret-token', 'very-secret-session', String(sent.headers['webhook-signature'])])
        expect(stored).to.not.include(s);
    });

    it('records every HTTP attempt — two 500s with their bodies — then a replay after recovery succeeds with replay_of, leaving the original untouched', async () => {
      answers.set('/flaky', (r) => ({ status: 500, body: `boom ${JSON.parse(r.body).n}` }));
      triggerId = await webhookTrigger('/flaky', { retry: { max_attempts: 2, backoff_ms: 20 } });
      failedId = await fire(triggerId, { n: 1 });
      const failed = await settled(failedId);
      expect(failed).to.include({ execution_status: 'failure', attempts: 2 });

      const attempts = await attemptsOf(failedId);
      expect(attempts.map((a) => [a.attempt, a.status_code, a.response_body])).to.deep.equal([
        [1, 500, 'boom 1'],
        [2, 500, 'boom 1'],
      ]);
      for (const a of attempts) {
        expect(a.error).to.match(/500/);
        expect(a.duration_ms).to.be.a('number').and.at.least(0);
      }
      expect(new Date(attempts[1]!.started_at).getTime()).to.be.greaterThan(new Date(attempts[0]!.started_at).getTime());
      expect(new Date(attempts[0]!.started_at).getTime()).to.be.at.least(new Date(failed.fired_at).getTime());

      // The endpoint recovers; the operator replays the failed event.
      answers.set('/flaky', () => ({ status: 200, body: 'thanks' }));
      const replayed = await request(app).post(`/api/v1/events/${failedId}/replay`).expect(202);
      expect(replayed.body.replay_of).to.equal(failedId);
      const replayId = replayed.body.event_id as string;
      expect(replayId).to.not.equal(failedId);

      const replay = await settled(replayId);
      expect(replay).to.include({ execution_status: 'success', attempts: 1, source: 'replay', replay_of: failedId, trigger_id: triggerId });
      expect(replay.payload).to.deep.equal({ n: 1 });
      expect((await attemptsOf(replayId)).map((a) => [a.attempt, a.status_code, a.error, a.response_body])).to.deep.equal([
        [1, 200, null, 'thanks'],
      ]);
      const deliveries = receiver.forPath('/flaky');
      expect(deliveries.map((d) => d.headers['webhook-id'])).to.deep.equal([failedId, failedId, replayId]);

      // The original is untouched.
      expect(await getEvent(failedId)).to.include({ execution_status: 'failure', attempts: 2, replay_of: null, source: 'webhook' });
      expect(await attemptsOf(failedId)).to.have.length(2);

      // On Kafka the replay travels like any other event, and says what it replays.
      const msg = await until(() => reader.byEventId(replayId).find((m) => m.topic === t.config.kafkaTopic), {
        timeoutMs: 30_000,
        message: 'replay on Kafka',
      });
      expect(msg.value).to.include({ replay_of: failedId, source: 'replay', trigger_id: triggerId });
      expect(msg.headers['event-source']).to.equal('replay');
      const original = reader.byEventId(failedId).find((m) => m.topic === t.config.kafkaTopic);
      expect(original!.value.replay_of).to.equal(null);

      // Metrics: the API counts the replay, the worker the attempts by outcome.
      expect(metricValue((await request(app).get('/metrics').expect(200)).text, 'etp_replays_total')).to.equal(1);
      const worker = await scrapeMetrics(platform.ports.relay);
      expect(metricValue(worker, 'etp_delivery_attempts_total{outcome="retry"}')).to.be.at.least(1);
      expect(metricValue(worker, 'etp_delivery_attempts_total{outcome="failure"}')).to.be.at.least(1);
      expect(metricValue(worker, 'etp_delivery_attempts_total{outcome="success"}')).to.be.at.least(1);
    });

    it('answers a retried replay carrying the same Idempotency-Key with the first answer, and replays once', async () => {
      const before = await count(t.db, 'event_logs', { replay_of: failedId });
      const key = `replay-${randomUUID()}`;
      // Replayed before (the test above): a further replay needs force.
      const first = await request(app)
        .post(`/api/v1/events/${failedId}/replay`)
        .query({ force: true })
        .set('Idempotency-Key', key)
        .expect(202);
      const again = await request(app)
        .post(`/api/v1/events/${failedId}/replay`)
        .query({ force: true })
        .set('Idempotency-Key', key)
        .expect(202);
      expect(again.body).to.deep.equal(first.body);
      expect(await count(t.db, 'event_logs', { replay_of: failedId })).to.equal(before + 1);
      await settled(first.body.event_id as string);
    });

    it('returns 404 for the attempts and the replay of an unknown event, and an empty list before the first attempt', async () => {
      const unknown = randomUUID();
      const a = await request(app).get(`/api/v1/events/${unknown}/attempts`).expect(404);
      expect(a.body.code).to.equal('EVENT_NOT_FOUND');
      const r = await request(app).post(`/api/v1/events/${unknown}/replay`).expect(404);
      expect(r.body.code).to.equal('EVENT_NOT_FOUND');
      await request(app).get('/api/v1/events/not-a-uuid/attempts').expect(400);

      const id = randomUUID();
      const now = new Date();
      await t
        .db('event_logs')
        .insert({ id, trigger_id: null, trigger_type: 'webhook', source: 'webhook', fired_at: now, created_at: now, updated_at: now });
      expect(await attemptsOf(id)).to.deep.equal([]);
    });

    it('answers 409 when the trigger was deleted and the event carries no delivery config, and replays an unsaved test run from its own', async () => {
      const gone = await webhookTrigger('/gone');
      const eventId = await fire(gone, { n: 2 });
      await settled(eventId);
      await request(app).delete(`/api/v1/triggers/${gone}`).expect(204);
      const res = await request(app).post(`/api/v1/events/${eventId}/replay`).expect(409);
      expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(res.body.code).to.equal('EVENT_NOT_REPLAYABLE');

      const unsaved = await request(app)
        .post('/api/v1/triggers/test')
        .send({ type: 'time_scheduled', config: { endpoint: receiver.url('/unsaved'), delay_seconds: 0, payload: { dry: true } } })
        .expect(202);
      await settled(unsaved.body.event_id as string);
      const replayed = await request(app)
        .post(`/api/v1/events/${unsaved.body.event_id as string}/replay`)
        .expect(202);
      const replay = await settled(replayed.body.event_id as string);
      expect(replay).to.include({ execution_status: 'success', trigger_id: null, source: 'replay', replay_of: unsaved.body.event_id });
      expect(receiver.forPath('/unsaved')).to.have.length(2);
    });

    it('replays an archived event, and retention deletes attempts together with their event', async () => {
      const id = await fire(triggerId, { n: 3 });
      await settled(id);
      expect(await count(t.db, 'delivery_attempts', { event_id: id })).to.equal(1);
      // Archived by age alone (2 h): the sweep leaves it, with its attempts.
      await t
        .db('event_logs')
        .where({ id })
        .update({ fired_at: new Date(Date.now() - 3 * HOUR) });
      await sweep(t.db, t.config, new Lifecycle());
      expect((await getEvent(id)).retention_status).to.equal('archived');
      expect(await attemptsOf(id), 'archived with its event').to.have.length(1);
      const replayed = await request(app).post(`/api/v1/events/${id}/replay`).expect(202);
      expect((await settled(replayed.body.event_id as string)).execution_status).to.equal('success');

      await t
        .db('event_logs')
        .where({ id })
        .update({ fired_at: new Date(Date.now() - 53 * HOUR) });
      await sweep(t.db, t.config, new Lifecycle());
      expect(await count(t.db, 'event_logs', { id })).to.equal(0);
      expect(await count(t.db, 'delivery_attempts', { event_id: id })).to.equal(0);
    });
  });

  describe('bulk replay', () => {
    it('replays the failures of one trigger and nothing else, then they succeed', async () => {
      let healthy = false;
      answers.set('/bulk-a', (r) => ({ status: healthy || JSON.parse(r.body).ok ? 200 : 500 }));
      answers.set('/bulk-b', () => ({ status: healthy ? 200 : 500 }));
      const a = await webhookTrigger('/bulk-a', { retry: { max_attempts: 1, backoff_ms: 10 } });
      const b = await webhookTrigger('/bulk-b', { retry: { max_attempts: 1, backoff_ms: 10 } });
      const failures = [await fire(a, { n: 1 }), await fire(a, { n: 2 }), await fire(a, { n: 3 })];
      const fine = await fire(a, { ok: true });
      const other = await fire(b, { n: 4 });
      for (const id of [...failures, fine, other]) await settled(id);
      expect((await getEvent(fine)).execution_status).to.equal('success');

      healthy = true;
      const res = await request(app).post('/api/v1/events/replay').send({ trigger_id: a, execution_status: 'failure' }).expect(202);
      expect(res.body).to.deep.equal({ replayed: 3, skipped: { already_replayed: 0, not_final: 0, not_replayable: 0 } });
      const replays = (await t
        .db('event_logs')
        .where({ source: 'replay' })
        .whereIn('replay_of', [...failures, fine, other])) as Array<{
        id: string;
        replay_of: string;
        trigger_id: string;
      }>;
      expect(replays.map((r) => r.replay_of).sort()).to.deep.equal([...failures].sort());
      expect(new Set(replays.map((r) => r.trigger_id))).to.deep.equal(new Set([a]));
      for (const r of replays) expect((await settled(r.id)).execution_status).to.equal('success');
      expect(receiver.forPath('/bulk-b')).to.have.length(1);

      // limit bounds how many are replayed; the originals stay failures and can be replayed again with force.
      const limited = await request(app)
        .post('/api/v1/events/replay')
        .send({ trigger_id: a, execution_status: 'failure', limit: 2, force: true })
        .expect(202);
      expect(limited.body).to.deep.equal({ replayed: 2, skipped: { already_replayed: 0, not_final: 0, not_replayable: 0 } });
      expect(metricValue((await request(app).get('/metrics').expect(200)).text, 'etp_replays_total')).to.be.at.least(5);
    });

    it('replays by time range, and needs at least one filter', async () => {
      const a = await webhookTrigger('/bulk-range');
      const from = new Date();
      const ids = [await fire(a, { n: 1 }), await fire(a, { n: 2 })];
      for (const id of ids) await settled(id);
      const res = await request(app)
        .post('/api/v1/events/replay')
        .send({ from: from.toISOString(), to: new Date().toISOString() })
        .expect(202);
      expect(res.body.replayed).to.be.at.least(2);
      expect(await count(t.db, 'event_logs', { replay_of: ids[0]! })).to.equal(1);

      for (const body of [{}, { limit: 5 }]) {
        const bad = await request(app).post('/api/v1/events/replay').send(body).expect(400);
        expect(bad.body.code).to.equal('VALIDATION_FAILED');
      }
      expect(fieldsOf(await request(app).post('/api/v1/events/replay').send({ trigger_id: a, limit: 10_001 }).expect(400))).to.include(
        'limit',
      );
    });
  });

  describe('upcoming runs and schedule preview', () => {
    it('lists weekday 09:00 New York runs of 0 9 * * 1-5 across the March DST change, the offset changing, as the preview does', async () => {
      // A window starting on 1 March of next year, so the spring-forward change is always within the runs.
      const year = new Date().getUTCFullYear() + 1;
      const config = {
        endpoint: receiver.url('/report'),
        cron: '0 9 * * 1-5',
        timezone: 'America/New_York',
        start_at: `${year}-03-01T00:00:00`,
      };
      const trigger = await createTrigger({ name: 'weekday report', type: 'cron_scheduled', config });
      const res = await request(app).get(`/api/v1/triggers/${trigger.id}/upcoming?count=20`).expect(200);
      const { status, occurrences } = res.body as { status: string; occurrences: Occurrence[] };
      expect(status).to.equal('active');
      expect(occurrences).to.have.length(20);
      expect(occurrences[0]!.at).to.equal(trigger.next_scheduled_run);

      const weekday = new Intl.DateTimeFormat('en-US', { timeZone: 'America/New_York', weekday: 'short' });
      const offsets = new Set<string>();
      for (const o of occurrences) {
        expect(o.local, JSON.stringify(o)).to.match(new RegExp(`^${year}-03-\\d{2}T09:00:00-0[45]:00$`));
        expect(['Mon', 'Tue', 'Wed', 'Thu', 'Fri']).to.include(weekday.format(new Date(o.at)));
        expect(new Date(o.local).getTime(), 'local and at are the same instant').to.equal(new Date(o.at).getTime());
        expect(o.scheduled_for).to.equal(o.at);
        offsets.add(o.local.slice(-6));
      }
      expect([...offsets]).to.deep.equal(['-05:00', '-04:00']);
      const hours = new Set(occurrences.map((o) => new Date(o.at).getUTCHours()));
      expect([...hours].sort()).to.deep.equal([13, 14]);

      const preview = await request(app).post('/api/v1/schedules/preview').send({ type: 'cron_scheduled', config, count: 20 }).expect(200);
      expect(preview.body).to.deep.equal({ status: 'preview', occurrences });
    });

    it('answers a preview of an invalid cron with 400 naming config.cron, storing nothing', async () => {
      const before = await count(t.db, 'triggers');
      const res = await request(app)
        .post('/api/v1/schedules/preview')
        .send({ type: 'cron_scheduled', config: { endpoint: receiver.url('/x'), cron: '61 * * * *' } })
        .expect(400);
      expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(fieldsOf(res)).to.deep.equal(['config.cron']);
      expect(await count(t.db, 'triggers')).to.equal(before);
      const webhook = await request(app)
        .post('/api/v1/schedules/preview')
        .send({ type: 'webhook', config: { endpoint: receiver.url('/x'), schema: {} } })
        .expect(400);
      expect(fieldsOf(webhook)).to.deep.equal(['type']);
    });

    it('answers 400 for a webhook trigger or a count out of 1-100, and 404 for an unknown trigger', async () => {
      const hook = await webhookTrigger('/no-schedule');
      const res = await request(app).get(`/api/v1/triggers/${hook}/upcoming`).expect(400);
      expect(fieldsOf(res)).to.deep.equal(['type']);
      expect(res.body.detail).to.match(/no schedule/);
      const cron = await createTrigger({ name: 'c', type: 'cron_scheduled', config: { endpoint: receiver.url('/c'), cron: '0 0 1 1 *' } });
      for (const n of [0, 101])
        expect(fieldsOf(await request(app).get(`/api/v1/triggers/${cron.id}/upcoming?count=${n}`).expect(400))).to.deep.equal([
          'query.count',
        ]);
      expect((await request(app).get(`/api/v1/triggers/${cron.id}/upcoming`).expect(200)).body.occurrences).to.have.length(10);
      await request(app).get(`/api/v1/triggers/${randomUUID()}/upcoming`).expect(404);
    });

    it('shows an inactive trigger the runs resuming it now would have', async () => {
      const trigger = await createTrigger({
        name: 'paused',
        type: 'cron_scheduled',
        status: 'inactive',
        config: { endpoint: receiver.url('/p'), cron: '0 12 * * *', timezone: 'Asia/Tokyo' },
      });
      expect(trigger.next_scheduled_run).to.equal(null);
      const res = await request(app).get(`/api/v1/triggers/${trigger.id}/upcoming?count=3`).expect(200);
      expect(res.body.status).to.equal('inactive');
      expect((res.body.occurrences as Occurrence[]).map((o) => o.local.slice(10))).to.deep.equal(Array(3).fill('T12:00:00+09:00'));
    });
  });

  describe('schedule windows and jitter', () => {
    it('fires an interval trigger only inside its window, then next_scheduled_run is null and nothing is left to fire', async () => {
      const endAt = new Date(Math.ceil((Date.now() + 3 * SECOND) / SECOND) * SECOND);
      const trigger = await createTrigger({
        name: 'short window',
        type: 'interval_scheduled',
        // fire_all: a relay slowed down by a busy machine still fires every occurrence of the window.
        config: { endpoint: receiver.url('/window'), interval_seconds: 1, end_at: endAt.toISOString(), misfire_policy: 'fire_all' },
      });
      expect(trigger.next_scheduled_run).to.not.equal(null);
      await until(async () => (await getTrigger(trigger.id)).next_scheduled_run === null, { timeoutMs: 60_000, message: 'window over' });
      expect(await count(t.db, 'trigger_schedules', { trigger_id: trigger.id, status: 'pending' }), 'nothing left to fire').to.equal(0);

      const events = (await t.db('event_logs').where({ trigger_id: trigger.id }).orderBy('scheduled_for')) as Array<{
        scheduled_for: Date;
      }>;
      expect(events.length).to.be.within(2, 4);
      for (const e of events) expect(e.scheduled_for.getTime()).to.be.at.most(endAt.getTime());
      expect(events[events.length - 1]!.scheduled_for.getTime()).to.be.greaterThan(endAt.getTime() - 1000);
      for (let i = 1; i < events.length; i++)
        expect(events[i]!.scheduled_for.getTime() - events[i - 1]!.scheduled_for.getTime()).to.equal(1000);
      expect((await request(app).get(`/api/v1/triggers/${trigger.id}/upcoming`).expect(200)).body.occurrences).to.deep.equal([]);
    });

    it('rejects end_at before start_at with 400 naming config.end_at', async () => {
      const res = await request(app)
        .post('/api/v1/triggers')
        .send({
          name: 'backwards',
          type: 'cron_scheduled',
          config: { endpoint: receiver.url('/b'), cron: '0 * * * *', start_at: '2031-02-01T00:00:00Z', end_at: '2031-01-01T00:00:00Z' },
        })
        .expect(400);
      expect(fieldsOf(res)).to.deep.equal(['config.end_at']);
    });

    it('spreads jittered occurrences within the window, the same when recomputed, with scheduled_for nominal', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) {
        ids.push(
          (
            await createTrigger({
              name: `hourly-${i}`,
              type: 'cron_scheduled',
              config: { endpoint: receiver.url('/j'), cron: '0 * * * *', jitter_seconds: 3600 },
            })
          ).id,
        );
      }
      const offsets: number[] = [];
      for (const id of ids) {
        const [row] = (await t.db('trigger_schedules').where({ trigger_id: id, status: 'pending' })) as Array<{
          fire_at: Date;
          scheduled_for: Date | null;
        }>;
        // A row whose jitter came out as 0 s stores no scheduled_for (null: the same as fire_at).
        const nominal = row!.scheduled_for ?? row!.fire_at;
        expect(nominal.getTime() % HOUR, 'the nominal time is on the hour').to.equal(0);
        const offset = row!.fire_at.getTime() - nominal.getTime();
        expect(offset).to.be.within(0, HOUR - SECOND);
        offsets.push(offset);
        const trigger = await getTrigger(id);
        expect(trigger.next_scheduled_run).to.equal(row!.fire_at.toISOString());
        // Recomputed, by the upcoming view and by the pure function: the same instant.
        expect(jitteredFireAt(id, 'cron_scheduled', trigger.config as unknown as TriggerConfig, nominal).toISOString()).to.equal(
          row!.fire_at.toISOString(),
        );
        const [first, second] = (await request(app).get(`/api/v1/triggers/${id}/upcoming?count=2`).expect(200)).body
          .occurrences as Occurrence[];
        expect(first).to.include({ at: row!.fire_at.toISOString(), scheduled_for: nominal.toISOString() });
        expect(new Date(second!.scheduled_for).getTime() - nominal.getTime()).to.equal(HOUR);
        expect(new Date(second!.at).getTime() - new Date(second!.scheduled_for).getTime()).to.be.within(0, HOUR - SECOND);
      }
      expect(new Set(offsets).size, 'offsets differ between triggers').to.be.greaterThan(8);
    });

    it('fires jittered occurrences at their jittered instants with the nominal scheduled_for and event id', async () => {
      const startAt = new Date(Math.ceil((Date.now() + 2 * SECOND) / SECOND) * SECOND);
      const trigger = await createTrigger({
        name: 'jittered interval',
        type: 'interval_scheduled',
        config: {
          endpoint: receiver.url('/jittered'),
          interval_seconds: 3,
          jitter_seconds: 2,
          start_at: startAt.toISOString(),
          misfire_policy: 'fire_all',
        },
      });
      const rows = await until(
        async () => {
          const r = (await t.db('event_logs').where({ trigger_id: trigger.id }).orderBy('scheduled_for')) as Array<{
            id: string;
            scheduled_for: Date;
            fired_at: Date;
          }>;
          return r.length >= 3 && r;
        },
        { timeoutMs: 60_000, message: 'three jittered events' },
      );
      await request(app).put(`/api/v1/triggers/${trigger.id}`).send({ status: 'inactive' }).expect(200);
      const cfg = trigger.config as unknown as TriggerConfig;
      const offsets = new Set<number>();
      for (const [i, e] of rows.slice(0, 3).entries()) {
        expect(e.scheduled_for.toISOString()).to.equal(new Date(startAt.getTime() + i * 3 * SECOND).toISOString());
        expect(e.id).to.equal(scheduledEventId(trigger.id, e.scheduled_for));
        const due = jitteredFireAt(trigger.id, 'interval_scheduled', cfg, e.scheduled_for).getTime();
        offsets.add(due - e.scheduled_for.getTime());
        expect(e.fired_at.getTime(), 'not before its jittered instant').to.be.at.least(due - 50);
        expect(e.fired_at.getTime() - due, 'soon after it').to.be.below(3000);
      }
      for (const o of offsets) expect(o).to.be.within(0, 2000);
    });
  });

  describe('tags and bulk pause/resume', () => {
    const run = randomUUID().slice(0, 8);
    const tag = (name: string) => `${name}:${run}`;

    it('stores tags, returns them sorted, replaces them with PUT, and lists triggers carrying all the given tags', async () => {
      const a = await webhookTrigger('/tag-a', {}, [tag('team'), tag('env')]);
      const b = await webhookTrigger('/tag-b', {}, [tag('team')]);
      const c = await webhookTrigger('/tag-c', {}, [tag('env')]);
      expect((await getTrigger(a)).tags).to.deep.equal([tag('env'), tag('team')]);
      const list = async (query: string) =>
        (await request(app).get(`/api/v1/triggers?${query}`).expect(200)).body as {
          triggers: TriggerBody[];
          pagination: { total_records: number };
        };
      expect((await list(`tag=${tag('team')}`)).triggers.map((x) => x.id)).to.deep.equal([b, a]);
      const both = await list(`tag=${tag('team')}&tag=${tag('env')}`);
      expect(both.triggers.map((x) => x.id)).to.deep.equal([a]);
      expect(both.pagination.total_records).to.equal(1);
      expect(both.triggers[0]!.tags).to.deep.equal([tag('env'), tag('team')]);
      expect((await list(`tag=${tag('nobody')}`)).triggers).to.deep.equal([]);
      expect((await list(`tag=${tag('env')}&type=webhook&limit=1&page=2`)).triggers.map((x) => x.id)).to.deep.equal([a]);

      const put = await request(app)
        .put(`/api/v1/triggers/${b}`)
        .send({ tags: [tag('env')] })
        .expect(200);
      expect(put.body.tags).to.deep.equal([tag('env')]);
      expect((await list(`tag=${tag('env')}`)).triggers.map((x) => x.id)).to.deep.equal([c, b, a]);
      expect(
        (await request(app).put(`/api/v1/triggers/${b}`).send({ name: 'renamed' }).expect(200)).body.tags,
        'kept by other edits',
      ).to.deep.equal([tag('env')]);
      expect((await request(app).put(`/api/v1/triggers/${b}`).send({ tags: [] }).expect(200)).body.tags).to.deep.equal([]);
    });

    it('rejects invalid tags with 400 naming tags', async () => {
      const base = { name: 't', type: 'webhook', config: { endpoint: receiver.url('/t'), schema: {} } };
      for (const tags of [['Upper'], ['has space'], ['x'.repeat(65)], ['dup', 'dup'], Array.from({ length: 21 }, (_, i) => `t${i}`)]) {
        const res = await request(app)
          .post('/api/v1/triggers')
          .send({ ...base, tags });
        expect(res.status, JSON.stringify(tags)).to.equal(400);
        expect(
          fieldsOf(res).some((f) => f.startsWith('tags')),
          JSON.stringify(res.body),
        ).to.equal(true);
      }
      expect(fieldsOf(await request(app).get('/api/v1/triggers?tag=Bad%20Tag').expect(400))[0]).to.match(/^query\.tag/);
    });

    it('pauses and resumes by tag, type and ids in one transaction, with the semantics of PUT status', async () => {
      const fleet = tag('fleet');
      const cron = async (name: string, tags: string[]) =>
        (await createTrigger({ name, type: 'cron_scheduled', tags, config: { endpoint: receiver.url('/fleet'), cron: '0 * * * *' } })).id;
      const crons = [await cron('c1', [fleet]), await cron('c2', [fleet]), await cron('c3', [fleet])];
      const interval = (
        await createTrigger({
          name: 'iv',
          type: 'interval_scheduled',
          tags: [fleet],
          config: { endpoint: receiver.url('/fleet'), interval_seconds: 3600 },
        })
      ).id;
      const hook = await webhookTrigger('/fleet-hook', {}, [fleet]);
      const outsider = await cron('outsider', []);
      const pending = async (id: string) => count(t.db, 'trigger_schedules', { trigger_id: id, status: 'pending' });

      expect((await request(app).post('/api/v1/triggers/pause').send({ tag: fleet }).expect(200)).body).to.deep.equal({ updated: 5 });
      for (const id of [...crons, interval, hook]) {
        const tr = await getTrigger(id);
        expect(tr).to.include({ status: 'inactive', next_scheduled_run: null });
        expect(await pending(id)).to.equal(0);
      }
      expect((await getTrigger(outsider)).status).to.equal('active');
      expect(await pending(outsider)).to.equal(1);
      expect((await request(app).post('/api/v1/triggers/pause').send({ tag: fleet }).expect(200)).body, 'already paused').to.deep.equal({
        updated: 0,
      });

      const resumed = await request(app).post('/api/v1/triggers/resume').send({ tag: fleet, type: 'cron_scheduled' }).expect(200);
      expect(resumed.body).to.deep.equal({ updated: 3 });
      const nextHour = new Date(Math.floor(Date.now() / HOUR) * HOUR + HOUR).toISOString();
      for (const id of crons) {
        expect(await getTrigger(id)).to.include({ status: 'active' });
        expect(await pending(id)).to.equal(1);
        expect([nextHour, new Date(new Date(nextHour).getTime() + HOUR).toISOString()]).to.include(
          (await getTrigger(id)).next_scheduled_run,
        );
      }
      expect((await getTrigger(interval)).status).to.equal('inactive');

      const byIds = await request(app)
        .post('/api/v1/triggers/resume')
        .send({ ids: [interval, hook, outsider] })
        .expect(200);
      expect(byIds.body, 'the outsider was active already').to.deep.equal({ updated: 2 });
      expect(await pending(interval)).to.equal(1);
      expect(await pending(hook)).to.equal(0);
      expect((await getTrigger(hook)).status).to.equal('active');

      expect(
        (
          await request(app)
            .post('/api/v1/triggers/pause')
            .send({ type: 'interval_scheduled', ids: [interval, crons[0]] })
            .expect(200)
        ).body,
      ).to.deep.equal({ updated: 1 });
      expect((await getTrigger(crons[0]!)).status).to.equal('active');
    });

    it('answers 400 without a filter, with an empty or over-long id list, or an unknown field', async () => {
      for (const body of [{}, { ids: [] }, { ids: Array.from({ length: 1001 }, () => randomUUID()) }, { tag: 'x', status: 'inactive' }]) {
        const res = await request(app).post('/api/v1/triggers/pause').send(body);
        expect(res.status, JSON.stringify(res.body)).to.equal(400);
        expect(res.body.code).to.equal('VALIDATION_FAILED');
      }
    });

    it('reads the tag filter from the tag index, touching only the tagged triggers, not all 100k (EXPLAIN)', async function () {
      this.timeout(300_000);
      const rare = tag('rare');
      const common = tag('common');
      const now = Date.now();
      const config = JSON.stringify({ endpoint: 'https://example.com/x', schema: {} });
      const total = 100_000;
      for (let i = 0; i < total; i += 5000) {
        const rows = Array.from({ length: Math.min(5000, total - i) }, (_, j) => ({
          id: randomUUID(),
          name: `bulk-${i + j}`,
          type: 'webhook',
          status: 'active',
          config,
          version: 1,
          created_at: new Date(now - (i + j) * 1000),
          updated_at: new Date(now),
        }));
        await t.db('triggers').insert(rows);
        const tags = rows.flatMap((r, j) => [
          ...((i + j) % 2 === 0 ? [{ trigger_id: r.id, tag: common }] : []),
          ...((i + j) % 10_000 === 0 ? [{ trigger_id: r.id, tag: rare }] : []),
        ]);
        await t.db('trigger_tags').insert(tags);
      }
      await t.db.raw('ANALYZE TABLE triggers, trigger_tags');

      const captured: Array<{ sql: string; bindings: unknown[] }> = [];
      const onQuery = (q: { sql: string; bindings?: unknown[] }) => {
        if (/^select t\.\* from trigger_tags/i.test(q.sql)) captured.push({ sql: q.sql, bindings: q.bindings ?? [] });
      };
      t.db.on('query', onQuery);
      let res: request.Response;
      try {
        res = await request(app).get(`/api/v1/triggers?tag=${rare}&tag=${common}&limit=5`).expect(200);
      } finally {
        t.db.removeListener('query', onQuery);
      }
      expect(res.body.pagination.total_records).to.equal(10);
      expect(captured).to.have.length(1);
      const q = captured[0]!;
      const [plan] = (await t.db.raw(`EXPLAIN ${q.sql}`, q.bindings as never[])) as [
        Array<{ table: string; type: string; key: string | null }>,
      ];
      expect(
        plan.map((p) => [p.table, p.type, p.key]),
        JSON.stringify(plan),
      ).to.deep.equal([
        ['g0', 'ref', 'idx_tags_tag'],
        ['t', 'eq_ref', 'PRIMARY'],
        ['g1', 'eq_ref', 'PRIMARY'],
      ]);
      // Rows touched: about the ten triggers carrying the rare tag, not the table.
      const reads = await t.db.transaction(async (trx) => {
        await trx.raw('FLUSH STATUS');
        await trx.raw(q.sql, q.bindings as never[]);
        const [status] = (await trx.raw("SHOW SESSION STATUS LIKE 'Handler_read%'")) as [Array<{ Variable_name: string; Value: string }>];
        return status.filter((v) => /_(next|prev|rnd_next|key)$/.test(v.Variable_name)).reduce((n, v) => n + Number(v.Value), 0);
      });
      expect(reads).to.be.below(200);
    });
  });

  describe('retry.max_age_seconds', () => {
    it('starts no attempt once the event is older than max_age_seconds: it ends failure "max age exceeded" and goes to the dead letters', async () => {
      answers.set('/old', () => ({ status: 503 }));
      const id = await webhookTrigger('/old', { retry: { max_attempts: 20, backoff_ms: 400, max_age_seconds: 2 } });
      const eventId = await fire(id, { n: 1 });
      const e = await settled(eventId);
      expect(e).to.include({ execution_status: 'failure', error_message: 'max age exceeded' });
      const attempts = await attemptsOf(eventId);
      expect(attempts.length).to.be.within(1, 19);
      expect(e.attempts, 'the attempts made').to.equal(attempts.length);
      const firedAt = new Date(e.fired_at).getTime();
      for (const a of attempts) expect(new Date(a.started_at).getTime() - firedAt).to.be.at.most(2100);
      expect(receiver.forPath('/old')).to.have.length(attempts.length);
      const dead = await until(() => reader.byEventId(eventId).find((m) => m.topic === t.config.kafkaDlqTopic), {
        timeoutMs: 30_000,
        message: 'dead letter',
      });
      expect(dead.value.error).to.equal('max age exceeded');
    });
  });
});
