import { expect } from 'chai';
import request from 'supertest';
import { randomUUID } from 'node:crypto';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { insertEvents } from '../../src/db/events';
import { scheduledEventId } from '../../src/triggers/event-id';

/*
 * Issue 3: the trigger management API against real MariaDB. Every response is also checked against
 * openapi.yaml by the test app (a response that breaks the spec comes back as a 500).
 */

const ENDPOINT = 'https://example.com/hooks/receive';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

interface TriggerBody {
  id: string;
  name: string;
  type: string;
  status: string;
  config: Record<string, unknown>;
  next_scheduled_run: string | null;
  webhook_url: string | null;
  created_at: string;
  updated_at: string;
}

interface ScheduleRow {
  id: number;
  trigger_id: string;
  fire_at: Date;
  status: 'pending' | 'processing' | 'completed' | 'cancelled';
}

const ceilTo = (ms: number, step: number) => Math.ceil(ms / step) * step;
/** The first multiple of `step` strictly after `ms` (a `*\/n` cron grid in UTC). */
const nextMultiple = (ms: number, step: number) => Math.floor(ms / step) * step + step;
/** The next `M * * * *` (minute M of every hour, UTC) strictly after `ms`. */
const nextAtMinute = (ms: number, minute: number) => {
  const candidate = Math.floor(ms / HOUR) * HOUR + minute * MINUTE;
  return candidate > ms ? candidate : candidate + HOUR;
};
const iso = (ms: number) => new Date(ms).toISOString();

function fieldsOf(res: request.Response): string[] {
  return ((res.body.errors ?? []) as Array<{ field: string }>).map((e) => e.field);
}

/** A 400 problem+json document whose errors name `field`. */
function expectFieldError(res: request.Response, field: string): void {
  expect(res.status, JSON.stringify(res.body)).to.equal(400);
  expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
  expect(res.body.code).to.equal('VALIDATION_FAILED');
  expect(res.body.status).to.equal(400);
  expect(fieldsOf(res), JSON.stringify(res.body)).to.include(field);
}

describe('trigger management API', () => {
  let t: TestEnv;
  let app: Express;

  before(async () => {
    t = await createTestEnv('triggers');
    app = testApp(t);
  });
  after(async () => {
    await t?.cleanup();
  });

  const schedules = (triggerId: string): Promise<ScheduleRow[]> =>
    t.db('trigger_schedules').where({ trigger_id: triggerId }).orderBy('id') as Promise<ScheduleRow[]>;
  const pending = async (triggerId: string) => (await schedules(triggerId)).filter((r) => r.status === 'pending');
  const triggerCount = async () => Number(((await t.db('triggers').count({ n: '*' })) as Array<{ n: number }>)[0]!.n);

  async function create(body: Record<string, unknown>): Promise<TriggerBody> {
    const res = await request(app).post('/api/v1/triggers').send(body);
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body as TriggerBody;
  }
  const cronTrigger = (cron: string, extra: Record<string, unknown> = {}) =>
    create({ name: `cron ${cron}`, type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron, ...extra } });
  const get = async (id: string) => (await request(app).get(`/api/v1/triggers/${id}`).expect(200)).body as TriggerBody;

  describe('POST /api/v1/triggers', () => {
    it('creates a webhook trigger: 201, normalised config, webhook_url, no next run and no schedule row', async () => {
      const before = Date.now();
      const res = await request(app)
        .post('/api/v1/triggers')
        .send({ name: 'orders', type: 'webhook', config: { endpoint: ENDPOINT, schema: { type: 'object', required: ['order_id'] } } })
        .expect(201);
      const body = res.body as TriggerBody;
      expect(body.id).to.match(UUID_RE);
      expect(res.headers.location).to.equal(`/api/v1/triggers/${body.id}`);
      expect(Object.keys(body).sort()).to.deep.equal(
        ['config', 'created_at', 'id', 'name', 'next_scheduled_run', 'status', 'tags', 'type', 'updated_at', 'webhook_url'].sort(),
      );
      expect(body).to.include({ name: 'orders', type: 'webhook', status: 'active', next_scheduled_run: null });
      expect(body.webhook_url).to.equal(`http://127.0.0.1:8080/api/v1/webhook/${body.id}`);
      expect(body.config).to.deep.equal({
        endpoint: ENDPOINT,
        http_method: 'POST',
        headers: {},
        timeout_ms: 10000,
        retry: { max_attempts: 5, backoff_ms: 1000 },
        schema: { type: 'object', required: ['order_id'] },
        has_secret: false,
      });
      expect(new Date(body.created_at).getTime()).to.be.within(before, Date.now());
      expect(body.updated_at).to.equal(body.created_at);
      expect(await schedules(body.id)).to.have.length(0);
      expect(await get(body.id)).to.deep.equal(body);
    });

    it('creates a time_scheduled trigger at run_at, with one pending schedule row at that instant', async () => {
      const runAt = ceilTo(Date.now() + 2 * HOUR, SECOND);
      const body = await create({
        name: 'once',
        type: 'time_scheduled',
        config: { endpoint: ENDPOINT, run_at: iso(runAt), payload: { hello: 'world' } },
      });
      expect(body).to.include({ type: 'time_scheduled', status: 'active', webhook_url: null, next_scheduled_run: iso(runAt) });
      expect(body.config).to.deep.equal({
        endpoint: ENDPOINT,
        http_method: 'POST',
        headers: {},
        timeout_ms: 10000,
        retry: { max_attempts: 5, backoff_ms: 1000 },
        run_at: iso(runAt),
        timezone: 'UTC',
        payload: { hello: 'world' },
      });
      const rows = await schedules(body.id);
      expect(rows.map((r) => [r.status, r.fire_at.toISOString()])).to.deep.equal([['pending', iso(runAt)]]);
      expect(await get(body.id)).to.deep.equal(body);
    });

    it('reads a run_at without an offset in the trigger timezone and stores the UTC instant', async () => {
      const body = await create({
        name: 'berlin morning',
        type: 'time_scheduled',
        config: { endpoint: ENDPOINT, run_at: '2030-07-01T09:00:00', timezone: 'Europe/Berlin' },
      });
      // Berlin is UTC+2 in July.
      expect(body.next_scheduled_run).to.equal('2030-07-01T07:00:00.000Z');
      expect(body.config).to.include({ run_at: '2030-07-01T09:00:00', timezone: 'Europe/Berlin', payload: null });
      const [row] = await pending(body.id);
      expect(row!.fire_at.toISOString()).to.equal('2030-07-01T07:00:00.000Z');
    });

    it('creates a time_scheduled trigger with delay_seconds firing that long after creation', async () => {
      const before = Date.now();
      const body = await create({ name: 'in ten minutes', type: 'time_scheduled', config: { endpoint: ENDPOINT, delay_seconds: 600 } });
      const after = Date.now();
      const next = new Date(body.next_scheduled_run!).getTime();
      expect(next).to.be.within(ceilTo(before + 600 * SECOND, SECOND), ceilTo(after + 600 * SECOND, SECOND));
      expect(body.config).to.include({ delay_seconds: 600 });
      expect(body.config).not.to.have.property('run_at');
      const rows = await pending(body.id);
      expect(rows.map((r) => r.fire_at.toISOString())).to.deep.equal([body.next_scheduled_run]);
    });

    it('accepts a run_at less than 60 s in the past and schedules it to fire at once', async () => {
      const runAt = ceilTo(Date.now() - 30 * SECOND, SECOND);
      const body = await create({ name: 'just missed', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: iso(runAt) } });
      expect(body.next_scheduled_run).to.equal(iso(runAt));
      expect((await pending(body.id)).map((r) => r.fire_at.toISOString())).to.deep.equal([iso(runAt)]);
    });

    it('creates a cron trigger with its next occurrence after now and the misfire defaults', async () => {
      const before = Date.now();
      const body = await cronTrigger('0 * * * *', { payload: [1, 2, 3] });
      const after = Date.now();
      expect([iso(nextAtMinute(before, 0)), iso(nextAtMinute(after, 0))]).to.include(body.next_scheduled_run);
      expect(body).to.include({ type: 'cron_scheduled', webhook_url: null });
      expect(body.config).to.deep.equal({
        endpoint: ENDPOINT,
        http_method: 'POST',
        headers: {},
        timeout_ms: 10000,
        retry: { max_attempts: 5, backoff_ms: 1000 },
        cron: '0 * * * *',
        timezone: 'UTC',
        payload: [1, 2, 3],
        misfire_policy: 'fire_once',
        max_backfill: 100,
      });
      expect((await pending(body.id)).map((r) => r.fire_at.toISOString())).to.deep.equal([body.next_scheduled_run]);
    });

    it('computes a cron in the trigger timezone (09:00 in New York) and a 6-field cron with seconds', async () => {
      const ny = await cronTrigger('0 9 * * *', { timezone: 'America/New_York' });
      const next = new Date(ny.next_scheduled_run!);
      const wall = new Intl.DateTimeFormat('en-GB', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
      expect(wall.format(next)).to.equal('09:00');
      expect(next.getTime() - Date.now()).to.be.within(-MINUTE, 25 * HOUR);

      const before = Date.now();
      const sec = await cronTrigger('*/10 * * * * *');
      const after = Date.now();
      expect(sec.config.cron).to.equal('*/10 * * * * *');
      expect([iso(nextMultiple(before, 10 * SECOND)), iso(nextMultiple(after, 10 * SECOND))]).to.include(sec.next_scheduled_run);
    });

    it('creates interval triggers: one interval after creation, or at a future start_at', async () => {
      const before = Date.now();
      const plain = await create({ name: 'every 30 s', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 30 } });
      const after = Date.now();
      const next = new Date(plain.next_scheduled_run!).getTime();
      expect(next).to.be.within(ceilTo(before, SECOND) + 30 * SECOND, ceilTo(after, SECOND) + 30 * SECOND);
      expect(plain.config).to.include({ interval_seconds: 30, misfire_policy: 'fire_once', max_backfill: 100, timezone: 'UTC' });
      expect(plain.webhook_url).to.equal(null);

      const startAt = ceilTo(Date.now() + 3 * HOUR, SECOND);
      const started = await create({
        name: 'hourly from later',
        type: 'interval_scheduled',
        config: { endpoint: ENDPOINT, interval_seconds: 3600, start_at: iso(startAt), misfire_policy: 'fire_all', max_backfill: 5 },
      });
      expect(started.next_scheduled_run).to.equal(iso(startAt));
      expect(started.config).to.include({ start_at: iso(startAt), misfire_policy: 'fire_all', max_backfill: 5 });
      expect((await pending(started.id)).map((r) => r.fire_at.toISOString())).to.deep.equal([iso(startAt)]);
    });

    it('creates an inactive trigger with no next run and no schedule row', async () => {
      const body = await create({
        name: 'paused',
        type: 'cron_scheduled',
        status: 'inactive',
        config: { endpoint: ENDPOINT, cron: '*/5 * * * *' },
      });
      expect(body).to.include({ status: 'inactive', next_scheduled_run: null });
      expect(await schedules(body.id)).to.have.length(0);
    });

    it('keeps the custom delivery settings it was given', async () => {
      const body = await create({
        name: 'custom delivery',
        type: 'webhook',
        config: {
          endpoint: 'http://example.com:8081/x?y=1',
          http_method: 'PUT',
          headers: { 'X-Team': 'payments' },
          timeout_ms: 60000,
          retry: { max_attempts: 20, backoff_ms: 250 },
          schema: true,
        },
      });
      expect(body.config).to.deep.include({
        endpoint: 'http://example.com:8081/x?y=1',
        http_method: 'PUT',
        headers: { 'X-Team': 'payments' },
        timeout_ms: 60000,
        retry: { max_attempts: 20, backoff_ms: 250 },
        schema: true,
      });
    });

    it('never returns a webhook secret: has_secret is true and the secret is stored', async () => {
      const secret = 'a-very-secret-signing-key';
      const body = await create({ name: 'signed', type: 'webhook', config: { endpoint: ENDPOINT, schema: {}, secret } });
      expect(body.config).to.include({ has_secret: true });
      expect(body.config).not.to.have.property('secret');
      expect(JSON.stringify(body)).not.to.include(secret);
      const fetched = await get(body.id);
      expect(fetched.config).to.include({ has_secret: true });
      expect(JSON.stringify(fetched)).not.to.include(secret);
      const row = (await t.db('triggers').where({ id: body.id }).first()) as { config: string };
      expect(JSON.parse(row.config)).to.include({ secret });
    });
  });

  describe('GET /api/v1/triggers/{id}', () => {
    it('returns 404 problem+json for an unknown trigger id', async () => {
      const id = randomUUID();
      const res = await request(app).get(`/api/v1/triggers/${id}`).expect(404);
      expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(res.body).to.include({ code: 'TRIGGER_NOT_FOUND', status: 404, instance: `/api/v1/triggers/${id}` });
    });

    it('returns 400 naming the id for a malformed id (not 500)', async () => {
      for (const bad of ['not-a-uuid', '12345', 'zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz']) {
        expectFieldError(await request(app).get(`/api/v1/triggers/${bad}`), 'path.id');
      }
    });
  });

  describe('GET /api/v1/triggers (list)', () => {
    // Seven triggers with created_at one second apart, so "newest first" has one right answer.
    const specs: Array<{ name: string; type: string; status?: string; config: Record<string, unknown> }> = [
      { name: 'l0 webhook', type: 'webhook', config: { endpoint: ENDPOINT, schema: {} } },
      { name: 'l1 cron 7', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '7 * * * *' } },
      { name: 'l2 cron paused', type: 'cron_scheduled', status: 'inactive', config: { endpoint: ENDPOINT, cron: '*/5 * * * *' } },
      { name: 'l3 once', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: '2031-03-04T05:06:07Z' } },
      {
        name: 'l4 interval',
        type: 'interval_scheduled',
        config: { endpoint: ENDPOINT, interval_seconds: 90, start_at: '2032-01-01T00:00:00Z' },
      },
      { name: 'l5 webhook paused', type: 'webhook', status: 'inactive', config: { endpoint: ENDPOINT, schema: {} } },
      { name: 'l6 cron yearly', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '0 12 1 1 *' } },
    ];
    let ids: string[] = []; // creation order; the list is the reverse
    let expectedNext: Map<string, string | null>;

    before(async () => {
      await t.db('triggers').delete(); // cascades to trigger_schedules
      ids = [];
      expectedNext = new Map();
      const base = Date.UTC(2026, 0, 1, 0, 0, 0);
      for (const [i, s] of specs.entries()) {
        const body = await create(s);
        ids.push(body.id);
        expectedNext.set(body.id, body.next_scheduled_run);
        await t
          .db('triggers')
          .where({ id: body.id })
          .update({ created_at: new Date(base + i * SECOND) });
      }
    });

    const list = async (query: string) =>
      (await request(app).get(`/api/v1/triggers${query}`).expect(200)).body as {
        triggers: TriggerBody[];
        pagination: Record<string, number>;
      };

    it('lists newest first with the documented pagination shape and defaults', async () => {
      const body = await list('');
      expect(body.pagination).to.deep.equal({
        current_page: 1,
        page_size: 20,
        total_pages: 1,
        total_records: 7,
        total_is_exact: true,
        next_cursor: null,
      });
      expect(body.triggers.map((x) => x.id)).to.deep.equal([...ids].reverse());
      expect(body.triggers.map((x) => x.name)).to.deep.equal(specs.map((s) => s.name).reverse());
      expect(body.triggers[0]!.created_at).to.equal('2026-01-01T00:00:06.000Z');
      const webhook = body.triggers.find((x) => x.id === ids[0])!;
      expect(webhook.webhook_url).to.equal(`http://127.0.0.1:8080/api/v1/webhook/${ids[0]}`);
      expect(body.triggers.filter((x) => x.webhook_url !== null).map((x) => x.type)).to.deep.equal(['webhook', 'webhook']);
    });

    it('pages through with limit and page, and answers an empty page past the end', async () => {
      const p1 = await list('?limit=3&page=1');
      const p2 = await list('?limit=3&page=2');
      const p3 = await list('?limit=3&page=3');
      const p4 = await list('?limit=3&page=4');
      expect(p1.pagination).to.deep.include({ current_page: 1, page_size: 3, total_pages: 3, total_records: 7, total_is_exact: true });
      expect(p1.pagination.next_cursor).to.be.a('string');
      expect(p3.pagination).to.deep.equal({
        current_page: 3,
        page_size: 3,
        total_pages: 3,
        total_records: 7,
        total_is_exact: true,
        next_cursor: null,
      });
      expect([p1, p2, p3].map((p) => p.triggers.length)).to.deep.equal([3, 3, 1]);
      expect([...p1.triggers, ...p2.triggers, ...p3.triggers].map((x) => x.id)).to.deep.equal([...ids].reverse());
      expect(p4.triggers).to.deep.equal([]);
      expect(p4.pagination).to.deep.equal({
        current_page: 4,
        page_size: 3,
        total_pages: 3,
        total_records: 7,
        total_is_exact: true,
        next_cursor: null,
      });
      const max = await list('?limit=100');
      expect(max.pagination.page_size).to.equal(100);
      expect(max.triggers).to.have.length(7);
    });

    it('rejects limit above 100, limit 0, page 0 and non-numeric values with 400 naming the parameter', async () => {
      expectFieldError(await request(app).get('/api/v1/triggers?limit=101'), 'query.limit');
      expectFieldError(await request(app).get('/api/v1/triggers?limit=0'), 'query.limit');
      expectFieldError(await request(app).get('/api/v1/triggers?limit=ten'), 'query.limit');
      expectFieldError(await request(app).get('/api/v1/triggers?page=0'), 'query.page');
      expectFieldError(await request(app).get('/api/v1/triggers?page=-1'), 'query.page');
      expectFieldError(await request(app).get('/api/v1/triggers?type=sometimes'), 'query.type');
      expectFieldError(await request(app).get('/api/v1/triggers?status=paused'), 'query.status');
      const unknown = await request(app).get('/api/v1/triggers?colour=red');
      expect(unknown.status).to.equal(400);
      expect(unknown.body.code).to.equal('VALIDATION_FAILED');
    });

    it('filters by type, by status, and by both', async () => {
      const crons = await list('?type=cron_scheduled');
      expect(crons.triggers.map((x) => x.id)).to.deep.equal([ids[6], ids[2], ids[1]]);
      expect(crons.pagination.total_records).to.equal(3);

      const inactive = await list('?status=inactive');
      expect(inactive.triggers.map((x) => x.id)).to.deep.equal([ids[5], ids[2]]);
      expect(inactive.triggers.every((x) => x.status === 'inactive')).to.equal(true);

      const activeWebhooks = await list('?type=webhook&status=active');
      expect(activeWebhooks.triggers.map((x) => x.id)).to.deep.equal([ids[0]]);
      expect(activeWebhooks.pagination).to.deep.equal({
        current_page: 1,
        page_size: 20,
        total_pages: 1,
        total_records: 1,
        total_is_exact: true,
        next_cursor: null,
      });

      const none = await list('?type=time_scheduled&status=inactive');
      expect(none.triggers).to.deep.equal([]);
      expect(none.pagination).to.deep.equal({
        current_page: 1,
        page_size: 20,
        total_pages: 0,
        total_records: 0,
        total_is_exact: true,
        next_cursor: null,
      });

      const pagedFilter = await list('?type=cron_scheduled&limit=2&page=2');
      expect(pagedFilter.triggers.map((x) => x.id)).to.deep.equal([ids[1]]);
      expect(pagedFilter.pagination).to.deep.equal({
        current_page: 2,
        page_size: 2,
        total_pages: 2,
        total_records: 3,
        total_is_exact: true,
        next_cursor: null,
      });
    });

    it('shows each trigger its own next_scheduled_run (the earliest pending row) in one schedule query', async () => {
      // A second, later pending row for the interval trigger must not hide the earlier one.
      await t.db('trigger_schedules').insert({
        trigger_id: ids[4],
        fire_at: new Date('2033-01-01T00:00:00Z'),
        status: 'pending',
        created_at: new Date(),
        updated_at: new Date(),
      });
      const scheduleQueries: string[] = [];
      const onQuery = (q: { sql: string }) => {
        if (/trigger_schedules/.test(q.sql)) scheduleQueries.push(q.sql);
      };
      t.db.on('query', onQuery);
      let body;
      try {
        body = await list('');
      } finally {
        t.db.removeListener('query', onQuery);
      }
      expect(scheduleQueries, scheduleQueries.join('\n')).to.have.length(1);
      const byId = new Map(body.triggers.map((x) => [x.id, x.next_scheduled_run]));
      expect(byId.get(ids[0])).to.equal(null); // webhook
      expect(byId.get(ids[2])).to.equal(null); // inactive cron
      expect(byId.get(ids[5])).to.equal(null); // inactive webhook
      expect(byId.get(ids[3])).to.equal('2031-03-04T05:06:07.000Z');
      expect(byId.get(ids[4])).to.equal('2032-01-01T00:00:00.000Z');
      const hour7 = new Date(byId.get(ids[1])!);
      expect(hour7.getUTCMinutes()).to.equal(7);
      expect(hour7.getTime() - Date.now()).to.be.within(-MINUTE, HOUR);
      const yearly = new Date(byId.get(ids[6])!);
      expect([yearly.getUTCMonth(), yearly.getUTCDate(), yearly.getUTCHours()]).to.deep.equal([0, 1, 12]);
      for (const id of ids) {
        expect(byId.get(id), id).to.equal(expectedNext.get(id));
        expect((await get(id)).next_scheduled_run, id).to.equal(byId.get(id));
      }
    });
  });

  describe('PUT /api/v1/triggers/{id}', () => {
    const put = (id: string, body: unknown) =>
      request(app)
        .put(`/api/v1/triggers/${id}`)
        .send(body as object);

    it('renames a trigger without touching its config or schedule, and returns what GET returns', async () => {
      const created = await cronTrigger('7 * * * *');
      const [rowBefore] = await schedules(created.id);
      const res = await put(created.id, { name: 'renamed' }).expect(200);
      const body = res.body as TriggerBody;
      expect(body).to.include({ id: created.id, name: 'renamed', status: 'active', created_at: created.created_at });
      expect(body.config).to.deep.equal(created.config);
      expect(body.next_scheduled_run).to.equal(created.next_scheduled_run);
      expect(new Date(body.updated_at).getTime()).to.be.at.least(new Date(created.updated_at).getTime());
      const rows = await schedules(created.id);
      expect(rows).to.have.length(1);
      expect(rows[0]).to.deep.include({ id: rowBefore!.id, status: 'pending' });
      expect(await get(created.id)).to.deep.equal(body);
    });

    it('moves a cron trigger to its new pattern: old pending rows cancelled, exactly one pending at the new next run', async () => {
      // Minute 7 is never on the */5 grid, so the new next run always differs from the old one.
      const created = await cronTrigger('7 * * * *', { payload: { v: 1 } });
      const oldNext = created.next_scheduled_run!;
      // A second pending occurrence (as if computed ahead) must be cancelled too.
      const later = new Date(new Date(oldNext).getTime() + HOUR);
      await t
        .db('trigger_schedules')
        .insert({ trigger_id: created.id, fire_at: later, status: 'pending', created_at: new Date(), updated_at: new Date() });

      const before = Date.now();
      const res = await put(created.id, { config: { endpoint: ENDPOINT, cron: '*/5 * * * *', payload: { v: 2 } } }).expect(200);
      const after = Date.now();
      const body = res.body as TriggerBody;
      expect(body.config).to.include({ cron: '*/5 * * * *' });
      expect(body.config.payload).to.deep.equal({ v: 2 });
      expect([iso(nextMultiple(before, 5 * MINUTE)), iso(nextMultiple(after, 5 * MINUTE))]).to.include(body.next_scheduled_run);
      expect(body.next_scheduled_run).not.to.equal(oldNext);

      const rows = await schedules(created.id);
      const byStatus = (s: string) => rows.filter((r) => r.status === s).map((r) => r.fire_at.toISOString());
      expect(byStatus('cancelled').sort()).to.deep.equal([oldNext, later.toISOString()].sort());
      expect(byStatus('pending')).to.deep.equal([body.next_scheduled_run]);
      expect(await get(created.id)).to.deep.equal(body);
    });

    it('moves interval and time_scheduled triggers when their config changes', async () => {
      const iv = await create({ name: 'iv', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 3600 } });
      const before = Date.now();
      const ivBody = (await put(iv.id, { config: { endpoint: ENDPOINT, interval_seconds: 60 } }).expect(200)).body as TriggerBody;
      const after = Date.now();
      expect(new Date(ivBody.next_scheduled_run!).getTime()).to.be.within(ceilTo(before, SECOND) + MINUTE, ceilTo(after, SECOND) + MINUTE);
      expect((await pending(iv.id)).map((r) => r.fire_at.toISOString())).to.deep.equal([ivBody.next_scheduled_run]);

      const once = await create({ name: 'once', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: '2030-01-01T00:00:00Z' } });
      const onceBody = (await put(once.id, { config: { endpoint: ENDPOINT, run_at: '2030-06-01T12:00:00Z' } }).expect(200))
        .body as TriggerBody;
      expect(onceBody.next_scheduled_run).to.equal('2030-06-01T12:00:00.000Z');
      const rows = await schedules(once.id);
      expect(rows.map((r) => [r.status, r.fire_at.toISOString()])).to.deep.equal([
        ['cancelled', '2030-01-01T00:00:00.000Z'],
        ['pending', '2030-06-01T12:00:00.000Z'],
      ]);
    });

    it('setting inactive cancels pending occurrences and shows no next run; active again resumes after now', async () => {
      const created = await cronTrigger('*/5 * * * *');
      // Pretend an occurrence came due and was never fired: reactivation must not fire it late.
      await t
        .db('trigger_schedules')
        .where({ trigger_id: created.id })
        .update({ fire_at: new Date(Date.now() - HOUR) });

      const off = (await put(created.id, { status: 'inactive' }).expect(200)).body as TriggerBody;
      expect(off).to.include({ status: 'inactive', next_scheduled_run: null });
      expect(await pending(created.id)).to.have.length(0);
      expect((await schedules(created.id)).map((r) => r.status)).to.deep.equal(['cancelled']);
      expect((await get(created.id)).next_scheduled_run).to.equal(null);
      const listed = (await request(app).get('/api/v1/triggers?status=inactive&limit=100').expect(200)).body.triggers as TriggerBody[];
      expect(listed.find((x) => x.id === created.id)?.next_scheduled_run).to.equal(null);

      // A rename while inactive schedules nothing.
      await put(created.id, { name: 'still paused' }).expect(200);
      expect(await pending(created.id)).to.have.length(0);

      const before = Date.now();
      const on = (await put(created.id, { status: 'active' }).expect(200)).body as TriggerBody;
      const after = Date.now();
      expect(on.status).to.equal('active');
      expect([iso(nextMultiple(before, 5 * MINUTE)), iso(nextMultiple(after, 5 * MINUTE))]).to.include(on.next_scheduled_run);
      const rows = await pending(created.id);
      expect(rows.map((r) => r.fire_at.toISOString())).to.deep.equal([on.next_scheduled_run]);
      expect(rows[0]!.fire_at.getTime()).to.be.greaterThan(before);
    });

    it('reactivating a one-shot whose run_at is still ahead schedules it again, once', async () => {
      const created = await create({
        name: 'later',
        type: 'time_scheduled',
        config: { endpoint: ENDPOINT, run_at: '2030-02-03T04:05:06Z' },
      });
      await put(created.id, { status: 'inactive' }).expect(200);
      const on = (await put(created.id, { status: 'active' }).expect(200)).body as TriggerBody;
      expect(on.next_scheduled_run).to.equal('2030-02-03T04:05:06.000Z');
      const rows = await schedules(created.id);
      expect(rows.map((r) => [r.status, r.fire_at.toISOString()])).to.deep.equal([['pending', '2030-02-03T04:05:06.000Z']]);
    });

    /** What the relay does when it fires a trigger's occurrence at `at`: the event logged, the schedule row deleted. */
    async function fired(triggerId: string, at: Date): Promise<void> {
      await t.db.transaction(async (trx) => {
        await insertEvents(
          trx,
          [
            {
              id: scheduledEventId(triggerId, at),
              trigger_id: triggerId,
              trigger_type: 'time_scheduled',
              source: 'scheduler',
              is_test_run: false,
              payload: null,
              scheduled_for: at,
              fired_at: new Date(),
              published_at: new Date(),
            },
          ],
          new Date(),
        );
        await trx('trigger_schedules').where({ trigger_id: triggerId }).delete();
      });
    }

    it('a one-shot that has fired shows no next run and is not scheduled again by an edit', async () => {
      const runAt = ceilTo(Date.now() - 20 * SECOND, SECOND);
      const created = await create({ name: 'fired', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: iso(runAt) } });
      await fired(created.id, new Date(runAt));
      expect((await get(created.id)).next_scheduled_run).to.equal(null);
      await put(created.id, { status: 'inactive' }).expect(200);
      const on = (await put(created.id, { status: 'active', name: 'fired again?' }).expect(200)).body as TriggerBody;
      expect(on.next_scheduled_run).to.equal(null);
      expect(await schedules(created.id)).to.deep.equal([]);
    });

    it('an edit of the timing fields that names the instant a one-shot has fired, within the tolerance for a past run_at, does not schedule it again', async () => {
      const runAt = ceilTo(Date.now() - 20 * SECOND, SECOND);
      const created = await create({ name: 'fired', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: iso(runAt) } });
      await fired(created.id, new Date(runAt));
      // The same instant written in another zone: the timing fields changed, the instant did not.
      const sameInstant = new Date(runAt + 3600_000).toISOString().replace('Z', '+01:00');
      const edited = (await put(created.id, { config: { endpoint: ENDPOINT, run_at: sameInstant } }).expect(200)).body as TriggerBody;
      expect(edited.next_scheduled_run).to.equal(null);
      expect(await schedules(created.id)).to.deep.equal([]);
      // A new instant inside the tolerance is scheduled (it has not fired).
      const other = (await put(created.id, { config: { endpoint: ENDPOINT, run_at: iso(runAt + SECOND) } }).expect(200))
        .body as TriggerBody;
      expect(other.next_scheduled_run).to.equal(iso(runAt + SECOND));
    });

    it('an edit that leaves the timing alone keeps the pending occurrence (an interval grid does not move)', async () => {
      const created = await create({ name: 'daily', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 86400 } });
      // Mid-grid: the next run is an hour away, not a day.
      const nextAt = new Date(ceilTo(Date.now() + HOUR, SECOND));
      await t.db('trigger_schedules').where({ trigger_id: created.id }).update({ fire_at: nextAt });
      const [rowBefore] = await schedules(created.id);
      const body = (
        await put(created.id, {
          config: {
            ...created.config,
            endpoint: 'https://example.com/other',
            payload: { v: 2 },
            misfire_policy: 'skip',
            retry: { max_attempts: 2 },
          },
        }).expect(200)
      ).body as TriggerBody;
      expect(body.config).to.deep.include({ endpoint: 'https://example.com/other', payload: { v: 2 }, misfire_policy: 'skip' });
      expect(body.next_scheduled_run).to.equal(nextAt.toISOString());
      const rows = await schedules(created.id);
      expect(rows.map((r) => [r.id, r.status, r.fire_at.toISOString()])).to.deep.equal([[rowBefore!.id, 'pending', nextAt.toISOString()]]);
    });

    /** A delay_seconds one-shot created two hours ago (created_at and its schedule row moved back). */
    async function agedDelayTrigger(delaySeconds: number) {
      const created = await create({
        name: 'delayed',
        type: 'time_scheduled',
        config: { endpoint: ENDPOINT, delay_seconds: delaySeconds },
      });
      const createdAt = new Date(Date.now() - 2 * HOUR);
      await t.db('triggers').where({ id: created.id }).update({ created_at: createdAt });
      await t
        .db('trigger_schedules')
        .where({ trigger_id: created.id })
        .update({ fire_at: new Date(ceilTo(createdAt.getTime() + delaySeconds * SECOND, SECOND)) });
      return { created, createdAt };
    }

    it('a delay_seconds one-shot that fired is not fired again by reactivation or by an edit', async () => {
      const { created, createdAt } = await agedDelayTrigger(600);
      await fired(created.id, new Date(ceilTo(createdAt.getTime() + 600 * SECOND, SECOND)));
      expect((await get(created.id)).next_scheduled_run).to.equal(null);
      await put(created.id, { status: 'inactive' }).expect(200);
      const on = (await put(created.id, { status: 'active' }).expect(200)).body as TriggerBody;
      expect(on.next_scheduled_run).to.equal(null);
      const edited = (await put(created.id, { config: { endpoint: 'https://example.com/new', delay_seconds: 600 } }).expect(200))
        .body as TriggerBody;
      expect(edited.next_scheduled_run).to.equal(null);
      expect(await schedules(created.id)).to.deep.equal([]);
    });

    it('a delay_seconds one-shot paused and resumed before it is due keeps its original instant', async () => {
      const created = await create({ name: 'in an hour', type: 'time_scheduled', config: { endpoint: ENDPOINT, delay_seconds: 3600 } });
      await put(created.id, { status: 'inactive' }).expect(200);
      expect(await pending(created.id)).to.have.length(0);
      const on = (await put(created.id, { status: 'active' }).expect(200)).body as TriggerBody;
      expect(on.next_scheduled_run).to.equal(created.next_scheduled_run);
      const rows = await schedules(created.id);
      expect(rows.map((r) => [r.status, r.fire_at.toISOString()])).to.deep.equal([['pending', created.next_scheduled_run]]);
    });

    it('a delay_seconds edit counts from creation: an elapsed delay is 400, a longer one moves the run', async () => {
      const { created, createdAt } = await agedDelayTrigger(600);
      expectFieldError(await put(created.id, { config: { endpoint: ENDPOINT, delay_seconds: 900 } }), 'config.delay_seconds');
      const moved = (await put(created.id, { config: { endpoint: ENDPOINT, delay_seconds: 3 * 3600 } }).expect(200)).body as TriggerBody;
      const expected = iso(ceilTo(createdAt.getTime() + 3 * HOUR, SECOND));
      expect(moved.next_scheduled_run).to.equal(expected);
      expect((await pending(created.id)).map((r) => r.fire_at.toISOString())).to.deep.equal([expected]);
    });

    it('an edit to a run_at less than 60 s ago is accepted and scheduled to fire at once, as on create', async () => {
      const created = await create({
        name: 'moved back',
        type: 'time_scheduled',
        config: { endpoint: ENDPOINT, run_at: '2030-01-01T00:00:00Z' },
      });
      const runAt = ceilTo(Date.now() - 30 * SECOND, SECOND);
      const body = (await put(created.id, { config: { endpoint: ENDPOINT, run_at: iso(runAt) } }).expect(200)).body as TriggerBody;
      expect(body.next_scheduled_run).to.equal(iso(runAt));
      expect((await pending(created.id)).map((r) => r.fire_at.toISOString())).to.deep.equal([iso(runAt)]);
    });

    it('accepts a webhook config read back from GET (has_secret is read-only) and keeps the secret', async () => {
      const secret = 'round-trip-secret-value';
      const created = await create({
        name: 'round trip',
        type: 'webhook',
        config: { endpoint: ENDPOINT, schema: { type: 'object' }, secret },
      });
      const fetched = await get(created.id);
      const body = (await put(created.id, { config: fetched.config }).expect(200)).body as TriggerBody;
      expect(body.config).to.deep.equal(fetched.config);
      const row = (await t.db('triggers').where({ id: created.id }).first()) as { config: string };
      expect(JSON.parse(row.config)).to.include({ secret });
    });

    it('a config edit while inactive schedules nothing; activating uses the new timing', async () => {
      const created = await create({
        name: 'paused edit',
        type: 'cron_scheduled',
        status: 'inactive',
        config: { endpoint: ENDPOINT, cron: '7 * * * *' },
      });
      await request(app)
        .put(`/api/v1/triggers/${created.id}`)
        .send({ config: { endpoint: ENDPOINT, cron: '*/5 * * * *' } })
        .expect(200);
      expect(await schedules(created.id)).to.have.length(0);
      const before = Date.now();
      const on = (await request(app).put(`/api/v1/triggers/${created.id}`).send({ status: 'active' }).expect(200)).body as TriggerBody;
      const after = Date.now();
      expect([iso(nextMultiple(before, 5 * MINUTE)), iso(nextMultiple(after, 5 * MINUTE))]).to.include(on.next_scheduled_run);
    });

    it('updates status on a webhook trigger without creating schedule rows', async () => {
      const created = await create({ name: 'wh', type: 'webhook', config: { endpoint: ENDPOINT, schema: {} } });
      const off = (await put(created.id, { status: 'inactive' }).expect(200)).body as TriggerBody;
      expect(off).to.include({ status: 'inactive', next_scheduled_run: null, webhook_url: created.webhook_url });
      const on = (await put(created.id, { status: 'active' }).expect(200)).body as TriggerBody;
      expect(on).to.include({ status: 'active', next_scheduled_run: null });
      expect(await schedules(created.id)).to.have.length(0);
    });

    it('rejects a different type with 400 naming type, and changes nothing', async () => {
      const created = await cronTrigger('7 * * * *');
      const res = await put(created.id, {
        type: 'interval_scheduled',
        name: 'sneaky',
        config: { endpoint: ENDPOINT, interval_seconds: 5 },
      });
      expectFieldError(res, 'type');
      expect(await get(created.id)).to.deep.equal(created);
      expect((await schedules(created.id)).map((r) => r.status)).to.deep.equal(['pending']);
      // Sending the same type is allowed.
      const same = (await put(created.id, { type: 'cron_scheduled', name: 'same type' }).expect(200)).body as TriggerBody;
      expect(same).to.include({ type: 'cron_scheduled', name: 'same type' });
    });

    it('rejects an invalid config with 400 naming the field, keeping the old config and schedule', async () => {
      const created = await cronTrigger('7 * * * *');
      expectFieldError(await put(created.id, { config: { endpoint: ENDPOINT, cron: '* * * *' } }), 'config.cron');
      expectFieldError(await put(created.id, { config: { cron: '*/5 * * * *' } }), 'config.endpoint');
      expectFieldError(await put(created.id, { name: '' }), 'name');
      expectFieldError(await put(created.id, { status: 'paused' }), 'status');
      expect(await get(created.id)).to.deep.equal(created);
      const rows = await schedules(created.id);
      expect(rows.map((r) => [r.status, r.fire_at.toISOString()])).to.deep.equal([['pending', created.next_scheduled_run]]);
    });

    it('rejects an empty body and unknown properties with 400', async () => {
      const created = await cronTrigger('7 * * * *');
      const empty = await put(created.id, {});
      expect(empty.status).to.equal(400);
      expect(empty.body.code).to.equal('VALIDATION_FAILED');
      expectFieldError(await put(created.id, { name: 'x', colour: 'red' }), 'colour');
    });

    it('returns 404 for an unknown id and 400 for a malformed one', async () => {
      const res = await put(randomUUID(), { name: 'ghost' }).expect(404);
      expect(res.body.code).to.equal('TRIGGER_NOT_FOUND');
      expectFieldError(await put('not-a-uuid', { name: 'ghost' }), 'path.id');
    });

    it('keeps the webhook secret when an update omits it, and removes it on "secret": null', async () => {
      const secret = 'sixteen-or-more-chars';
      const created = await create({ name: 'signed', type: 'webhook', config: { endpoint: ENDPOINT, schema: {}, secret } });
      const stored = async () =>
        JSON.parse(((await t.db('triggers').where({ id: created.id }).first()) as { config: string }).config) as Record<string, unknown>;

      const kept = (await put(created.id, { config: { endpoint: ENDPOINT, schema: { type: 'object' } } }).expect(200)).body as TriggerBody;
      expect(kept.config).to.include({ has_secret: true });
      expect(kept.config.schema).to.deep.equal({ type: 'object' });
      expect(JSON.stringify(kept)).not.to.include(secret);
      expect(await stored()).to.include({ secret });

      const renamed = (await put(created.id, { name: 'signed, renamed' }).expect(200)).body as TriggerBody;
      expect(renamed.config).to.include({ has_secret: true });
      expect(await stored()).to.include({ secret });

      const replaced = (await put(created.id, { config: { endpoint: ENDPOINT, schema: {}, secret: 'another-secret-value' } }).expect(200))
        .body as TriggerBody;
      expect(replaced.config).to.include({ has_secret: true });
      expect(await stored()).to.include({ secret: 'another-secret-value' });

      const removed = (await put(created.id, { config: { endpoint: ENDPOINT, schema: {}, secret: null } }).expect(200)).body as TriggerBody;
      expect(removed.config).to.include({ has_secret: false });
      expect(await stored()).not.to.have.property('secret');
    });
  });

  describe('DELETE /api/v1/triggers/{id}', () => {
    it('deletes: 204, then 404; schedule rows go; its event logs stay listable', async () => {
      const created = await cronTrigger('*/5 * * * *', { payload: { keep: 'me' } });
      const fired = await request(app).post(`/api/v1/triggers/${created.id}/test`).send({}).expect(202);
      const eventId = fired.body.event_id as string;
      expect(fired.body).to.deep.equal({ event_id: eventId, status: 'accepted' });
      expect(await schedules(created.id)).to.have.length(1);

      const res = await request(app).delete(`/api/v1/triggers/${created.id}`).expect(204);
      expect(res.text).to.equal('');
      const gone = await request(app).get(`/api/v1/triggers/${created.id}`).expect(404);
      expect(gone.body.code).to.equal('TRIGGER_NOT_FOUND');
      expect((await request(app).delete(`/api/v1/triggers/${created.id}`).expect(404)).body.code).to.equal('TRIGGER_NOT_FOUND');
      expect(await schedules(created.id)).to.have.length(0);
      const listed = (await request(app).get('/api/v1/triggers?limit=100').expect(200)).body.triggers as TriggerBody[];
      expect(listed.map((x) => x.id)).not.to.include(created.id);

      const events = await request(app).get(`/api/v1/events?trigger_id=${created.id}`).expect(200);
      expect((events.body.events as Array<{ id: string }>).map((e) => e.id)).to.deep.equal([eventId]);
      const event = (await request(app).get(`/api/v1/events/${eventId}`).expect(200)).body as Record<string, unknown>;
      expect(event).to.include({ id: eventId, trigger_type: 'cron_scheduled', source: 'manual-test', is_test_run: true });
      expect([created.id, null]).to.include(event.trigger_id);
      expect(event.payload).to.deep.equal({ keep: 'me' });
    });

    it('returns 404 for an unknown id and 400 for a malformed one', async () => {
      expect((await request(app).delete(`/api/v1/triggers/${randomUUID()}`).expect(404)).body.code).to.equal('TRIGGER_NOT_FOUND');
      expectFieldError(await request(app).delete('/api/v1/triggers/nope'), 'path.id');
    });
  });

  describe('validation: every rule answers 400 problem+json naming the field', () => {
    const past = () => iso(Date.now() - 2 * MINUTE);
    const future = () => iso(Date.now() + HOUR);
    const cases: Array<{ rule: string; field: string; body: () => Record<string, unknown> }> = [
      { rule: 'name missing', field: 'name', body: () => ({ type: 'webhook', config: { endpoint: ENDPOINT, schema: {} } }) },
      { rule: 'name empty', field: 'name', body: () => ({ name: '', type: 'webhook', config: { endpoint: ENDPOINT, schema: {} } }) },
      { rule: 'type unknown', field: 'type', body: () => ({ name: 'x', type: 'sometimes', config: { endpoint: ENDPOINT } }) },
      { rule: 'config missing', field: 'config', body: () => ({ name: 'x', type: 'webhook' }) },
      {
        rule: 'status unknown',
        field: 'status',
        body: () => ({ name: 'x', type: 'webhook', status: 'paused', config: { endpoint: ENDPOINT, schema: {} } }),
      },
      { rule: 'endpoint missing', field: 'config.endpoint', body: () => ({ name: 'x', type: 'webhook', config: { schema: {} } }) },
      {
        rule: 'endpoint relative',
        field: 'config.endpoint',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: '/hooks/x', schema: {} } }),
      },
      {
        rule: 'endpoint ftp',
        field: 'config.endpoint',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: 'ftp://example.com/file', schema: {} } }),
      },
      {
        rule: 'endpoint not a string',
        field: 'config.endpoint',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: 42, schema: {} } }),
      },
      {
        rule: 'http_method unknown',
        field: 'config.http_method',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, http_method: 'FETCH', schema: {} } }),
      },
      {
        rule: 'headers value not a string',
        field: 'config.headers.X-Count',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, headers: { 'X-Count': 3 }, schema: {} } }),
      },
      {
        rule: 'header name invalid',
        field: 'config.headers.Bad Name',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, headers: { 'Bad Name': 'v' }, schema: {} } }),
      },
      {
        rule: 'timeout_ms over 60000',
        field: 'config.timeout_ms',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, timeout_ms: 60001, schema: {} } }),
      },
      {
        rule: 'retry.max_attempts 0',
        field: 'config.retry.max_attempts',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, retry: { max_attempts: 0 }, schema: {} } }),
      },
      {
        rule: 'retry.max_attempts 21',
        field: 'config.retry.max_attempts',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, retry: { max_attempts: 21 }, cron: '* * * * *' } }),
      },
      {
        rule: 'unknown config property',
        field: 'config.run_at',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '* * * * *', run_at: future() } }),
      },
      {
        rule: 'webhook schema missing',
        field: 'config.schema',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT } }),
      },
      {
        rule: 'webhook schema that does not compile',
        field: 'config.schema',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, schema: { type: 'nonsense' } } }),
      },
      {
        rule: 'webhook schema with an unresolvable $ref',
        field: 'config.schema',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, schema: { $ref: 'https://example.com/remote.json' } } }),
      },
      {
        rule: 'webhook secret too short',
        field: 'config.secret',
        body: () => ({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, schema: {}, secret: 'short' } }),
      },
      {
        rule: 'run_at in the past',
        field: 'config.run_at',
        body: () => ({ name: 'x', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: past() } }),
      },
      {
        rule: 'run_at not a date',
        field: 'config.run_at',
        body: () => ({ name: 'x', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: 'tomorrow at nine' } }),
      },
      {
        rule: 'run_at an impossible date',
        field: 'config.run_at',
        body: () => ({ name: 'x', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: '2030-02-30T10:00:00Z' } }),
      },
      {
        rule: 'both run_at and delay_seconds',
        field: 'config.run_at',
        body: () => ({ name: 'x', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: future(), delay_seconds: 60 } }),
      },
      {
        rule: 'neither run_at nor delay_seconds',
        field: 'config.run_at',
        body: () => ({ name: 'x', type: 'time_scheduled', config: { endpoint: ENDPOINT } }),
      },
      {
        rule: 'delay_seconds negative',
        field: 'config.delay_seconds',
        body: () => ({ name: 'x', type: 'time_scheduled', config: { endpoint: ENDPOINT, delay_seconds: -5 } }),
      },
      {
        rule: 'unknown timezone (time)',
        field: 'config.timezone',
        body: () => ({
          name: 'x',
          type: 'time_scheduled',
          config: { endpoint: ENDPOINT, run_at: '2030-01-01T00:00:00', timezone: 'Mars/Olympus_Mons' },
        }),
      },
      {
        rule: 'unknown timezone (cron)',
        field: 'config.timezone',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '0 9 * * *', timezone: 'Europe/Atlantis' } }),
      },
      { rule: 'cron missing', field: 'config.cron', body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT } }) },
      {
        rule: 'cron with 4 fields',
        field: 'config.cron',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '* * * *' } }),
      },
      {
        rule: 'cron with 7 fields',
        field: 'config.cron',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '0 0 12 * * * 2030' } }),
      },
      {
        rule: 'cron with an out-of-range minute',
        field: 'config.cron',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '61 * * * *' } }),
      },
      {
        rule: 'cron that is not a pattern',
        field: 'config.cron',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: 'every day at noon' } }),
      },
      {
        rule: 'cron nickname',
        field: 'config.cron',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '@daily' } }),
      },
      {
        rule: 'misfire_policy unknown (cron)',
        field: 'config.misfire_policy',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '* * * * *', misfire_policy: 'sometimes' } }),
      },
      {
        rule: 'max_backfill 0',
        field: 'config.max_backfill',
        body: () => ({
          name: 'x',
          type: 'cron_scheduled',
          config: { endpoint: ENDPOINT, cron: '* * * * *', misfire_policy: 'fire_all', max_backfill: 0 },
        }),
      },
      {
        rule: 'max_backfill 1001',
        field: 'config.max_backfill',
        body: () => ({ name: 'x', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 10, max_backfill: 1001 } }),
      },
      {
        rule: 'max_backfill not an integer',
        field: 'config.max_backfill',
        body: () => ({ name: 'x', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '* * * * *', max_backfill: 'lots' } }),
      },
      {
        rule: 'interval_seconds 0',
        field: 'config.interval_seconds',
        body: () => ({ name: 'x', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 0 } }),
      },
      {
        rule: 'interval_seconds missing',
        field: 'config.interval_seconds',
        body: () => ({ name: 'x', type: 'interval_scheduled', config: { endpoint: ENDPOINT } }),
      },
      {
        rule: 'interval_seconds fractional',
        field: 'config.interval_seconds',
        body: () => ({ name: 'x', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 1.5 } }),
      },
      {
        rule: 'misfire_policy unknown (interval)',
        field: 'config.misfire_policy',
        body: () => ({
          name: 'x',
          type: 'interval_scheduled',
          config: { endpoint: ENDPOINT, interval_seconds: 10, misfire_policy: 'never' },
        }),
      },
      {
        rule: 'start_at not a date',
        field: 'config.start_at',
        body: () => ({ name: 'x', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 10, start_at: 'soon' } }),
      },
    ];

    for (const c of cases) {
      it(`rejects ${c.rule} (${c.field}) and stores nothing`, async () => {
        const count = await triggerCount();
        expectFieldError(await request(app).post('/api/v1/triggers').send(c.body()), c.field);
        expect(await triggerCount()).to.equal(count);
      });
    }

    it('reports every problem of one config at once', async () => {
      const res = await request(app)
        .post('/api/v1/triggers')
        .send({
          name: 'x',
          type: 'cron_scheduled',
          config: { endpoint: 'ftp://x', cron: '* * * *', timezone: 'Nowhere/Land', timeout_ms: 60001 },
        });
      expectFieldError(res, 'config.endpoint');
      expect(fieldsOf(res)).to.include.members(['config.cron', 'config.timezone', 'config.timeout_ms']);
    });

    it('applies the same rules to updates', async () => {
      const created = await create({ name: 'iv', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 10 } });
      const put = (config: Record<string, unknown>) => request(app).put(`/api/v1/triggers/${created.id}`).send({ config });
      expectFieldError(await put({ endpoint: ENDPOINT, interval_seconds: 0 }), 'config.interval_seconds');
      expectFieldError(await put({ endpoint: ENDPOINT, interval_seconds: 10, max_backfill: 1001 }), 'config.max_backfill');
      expectFieldError(await put({ endpoint: 'ftp://example.com', interval_seconds: 10 }), 'config.endpoint');
      expectFieldError(await put({ endpoint: ENDPOINT, interval_seconds: 10, retry: { max_attempts: 21 } }), 'config.retry.max_attempts');
      const once = await create({ name: 'once', type: 'time_scheduled', config: { endpoint: ENDPOINT, run_at: future() } });
      expectFieldError(
        await request(app)
          .put(`/api/v1/triggers/${once.id}`)
          .send({ config: { endpoint: ENDPOINT, run_at: past() } }),
        'config.run_at',
      );
      expect(await get(created.id)).to.deep.equal(created);
    });

    it('answers malformed JSON and a non-JSON body as problem+json', async () => {
      const bad = await request(app).post('/api/v1/triggers').set('content-type', 'application/json').send('{"name": "x",');
      expect(bad.status).to.equal(400);
      expect(bad.body.code).to.equal('MALFORMED_JSON');
      const text = await request(app).post('/api/v1/triggers').set('content-type', 'text/plain').send('name=x');
      expect(text.status).to.be.oneOf([400, 415]);
      expect(text.headers['content-type']).to.match(/^application\/problem\+json/);
    });
  });

  describe('authentication with API_KEYS configured', () => {
    let k: TestEnv;
    let keyed: Express;
    let existing: TriggerBody;
    let webhook: TriggerBody;
    let eventId: string;

    before(async () => {
      k = await createTestEnv('triggersauth', { API_KEYS: 'k1-secret-key,k2-secret-key' });
      keyed = testApp(k);
      existing = (
        await request(keyed)
          .post('/api/v1/triggers')
          .set('Authorization', 'Bearer k1-secret-key')
          .send({ name: 'auth cron', type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '*/5 * * * *' } })
          .expect(201)
      ).body as TriggerBody;
      webhook = (
        await request(keyed)
          .post('/api/v1/triggers')
          .set('X-API-Key', 'k2-secret-key')
          .send({ name: 'auth webhook', type: 'webhook', config: { endpoint: ENDPOINT, schema: { type: 'object' } } })
          .expect(201)
      ).body as TriggerBody;
      eventId = (await request(keyed).post(`/api/v1/triggers/${existing.id}/test`).set('X-API-Key', 'k1-secret-key').send({}).expect(202))
        .body.event_id as string;
    });
    after(async () => {
      await k?.cleanup();
    });

    const routes = (): Array<{ method: 'get' | 'post' | 'put' | 'delete'; path: string; body?: object }> => [
      { method: 'post', path: '/api/v1/triggers', body: { name: 'nope', type: 'webhook', config: { endpoint: ENDPOINT, schema: {} } } },
      { method: 'get', path: '/api/v1/triggers' },
      { method: 'get', path: `/api/v1/triggers/${existing.id}` },
      { method: 'put', path: `/api/v1/triggers/${existing.id}`, body: { name: 'hijacked', status: 'inactive' } },
      { method: 'delete', path: `/api/v1/triggers/${existing.id}` },
      { method: 'post', path: `/api/v1/triggers/${existing.id}/test`, body: {} },
      {
        method: 'post',
        path: '/api/v1/triggers/test',
        body: { type: 'cron_scheduled', config: { endpoint: ENDPOINT, cron: '* * * * *' } },
      },
      { method: 'get', path: `/api/v1/triggers/${existing.id}/stats` },
      { method: 'get', path: '/api/v1/events' },
      { method: 'get', path: `/api/v1/events/${eventId}` },
    ];

    it('answers 401 problem+json on every management route without a key, with a wrong key, or a Basic header', async () => {
      const variants: Array<Record<string, string>> = [
        {},
        { Authorization: 'Bearer wrong-key' },
        { 'X-API-Key': 'k1-secret-key-but-longer' },
        { Authorization: 'Basic azEtc2VjcmV0LWtleTo=' },
        { Authorization: 'Bearer' },
      ];
      for (const r of routes()) {
        for (const headers of variants) {
          let req = request(keyed)[r.method](r.path).set(headers);
          if (r.body) req = req.send(r.body);
          const res = await req;
          const label = `${r.method.toUpperCase()} ${r.path} ${JSON.stringify(headers)}`;
          expect(res.status, label).to.equal(401);
          expect(res.headers['content-type'], label).to.match(/^application\/problem\+json/);
          expect(res.body.code, label).to.equal('UNAUTHORIZED');
          expect(res.headers['www-authenticate'], label).to.equal('Bearer');
          expect(JSON.stringify(res.body), label).not.to.include('k1-secret-key');
        }
      }
      // Nothing was created, changed, deleted or fired by the refused calls.
      expect(Number(((await k.db('triggers').count({ n: '*' })) as Array<{ n: number }>)[0]!.n)).to.equal(2);
      const row = (await k.db('triggers').where({ id: existing.id }).first()) as { name: string; status: string };
      expect(row).to.include({ name: 'auth cron', status: 'active' });
      expect(Number(((await k.db('event_logs').count({ n: '*' })) as Array<{ n: number }>)[0]!.n)).to.equal(1);
    });

    it('accepts either key as Authorization: Bearer or as X-API-Key', async () => {
      for (const headers of [
        { Authorization: 'Bearer k1-secret-key' },
        { Authorization: 'bearer k2-secret-key' },
        { 'X-API-Key': 'k1-secret-key' },
        { 'X-API-Key': 'k2-secret-key' },
      ]) {
        const one = await request(keyed).get(`/api/v1/triggers/${existing.id}`).set(headers).expect(200);
        expect(one.body.id).to.equal(existing.id);
        const all = await request(keyed).get('/api/v1/triggers').set(headers).expect(200);
        expect(all.body.pagination.total_records).to.equal(2);
      }
      const renamed = await request(keyed)
        .put(`/api/v1/triggers/${existing.id}`)
        .set('X-API-Key', 'k2-secret-key')
        .send({ name: 'renamed with key' })
        .expect(200);
      expect(renamed.body.name).to.equal('renamed with key');
    });

    it('does not ask for a key on the webhook receiver or on /health', async () => {
      const res = await request(keyed).post(`/api/v1/webhook/${webhook.id}`).send({ order: 1 }).expect(202);
      expect(res.body.status).to.equal('accepted');
      expect(res.body.event_id).to.match(UUID_RE);
      const unknown = await request(keyed).post(`/api/v1/webhook/${randomUUID()}`).send({ order: 1 });
      expect(unknown.status).to.equal(404);
      await request(keyed).get('/health').expect(200);
    });

    it('deletes with a key: 204', async () => {
      const made = await request(keyed)
        .post('/api/v1/triggers')
        .set('X-API-Key', 'k1-secret-key')
        .send({ name: 'to delete', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 60 } })
        .expect(201);
      await request(keyed)
        .delete(`/api/v1/triggers/${made.body.id as string}`)
        .set('Authorization', 'Bearer k2-secret-key')
        .expect(204);
      await request(keyed)
        .get(`/api/v1/triggers/${made.body.id as string}`)
        .set('Authorization', 'Bearer k2-secret-key')
        .expect(404);
    });
  });
});
