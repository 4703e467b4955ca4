import { expect } from 'chai';
import request from 'supertest';
import { randomUUID } from 'node:crypto';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { encodeCursor, windowOf } from '../../src/api/events';
import { eventsToReplay, triggerStats } from '../../src/db/events';
import { webhookCalls } from '../../src/db/webhook-requests';
import { newEventId } from '../../src/triggers/event-id';

type Source = 'webhook' | 'scheduler' | 'manual-test' | 'replay';
type Status = 'pending' | 'published' | 'success' | 'failure';

interface Seed {
  trigger_id: string | null;
  fired_at: Date;
  source?: Source;
  execution_status?: Status;
  is_test_run?: boolean;
  payload?: unknown;
}

interface EventView {
  id: string;
  trigger_id: string | null;
  fired_at: string;
  source: Source;
  execution_status: Status;
  retention_status: string;
  is_test_run: boolean;
}

interface Page {
  events: EventView[];
  pagination: {
    current_page: number | null;
    page_size: number;
    total_pages: number | null;
    total_records: number | null;
    total_is_exact: boolean | null;
    next_cursor: string | null;
  };
}

const MINUTE = 60_000;
const ENDPOINT = 'https://example.com/hooks/events';

describe('event log API', () => {
  let t: TestEnv;

  /** Event rows written directly, so a test controls fired_at (so retention) and statuses exactly. */
  async function seed(rows: Seed[]): Promise<string[]> {
    const now = new Date();
    const values = rows.map((r) => ({
      id: newEventId(r.fired_at.getTime()),
      trigger_id: r.trigger_id,
      trigger_type: 'webhook',
      source: r.source ?? 'webhook',
      is_test_run: r.is_test_run ? 1 : 0,
      payload: JSON.stringify(r.payload ?? { n: 1 }),
      fired_at: r.fired_at,
      execution_status: r.execution_status ?? 'pending',
      published_at: r.execution_status && r.execution_status !== 'pending' ? r.fired_at : null,
      created_at: now,
      updated_at: now,
    }));
    for (let i = 0; i < values.length; i += 500) await t.db('event_logs').insert(values.slice(i, i + 500));
    return values.map((v) => v.id);
  }

  const ago = (ms: number) => new Date(Date.now() - ms);
  const ids = (p: Page) => p.events.map((e) => e.id);
  const list = async (app: Express, query: Record<string, string | number | boolean>) => {
    const res = await request(app).get('/api/v1/events').query(query);
    expect(res.status, JSON.stringify(res.body)).to.equal(200);
    return res.body as Page;
  };

  /** Follows next_cursor to the end; fails on a page that is over-long or a loop. */
  async function allPagesByCursor(app: Express, query: Record<string, string | number>, limit: number): Promise<Page[]> {
    const pages: Page[] = [];
    let cursor: string | null = null;
    do {
      const page: Page = await list(app, { ...query, limit, ...(cursor ? { cursor } : {}) });
      expect(page.events.length).to.be.at.most(limit);
      pages.push(page);
      cursor = page.pagination.next_cursor;
      expect(pages.length).to.be.below(1000);
    } while (cursor);
    return pages;
  }

  /** Newest first on (fired_at, id): the order the API promises and cursors rely on. */
  function expectNewestFirst(events: EventView[]): void {
    for (let i = 1; i < events.length; i++) {
      const [a, b] = [events[i - 1]!, events[i]!];
      const ordered = a.fired_at > b.fired_at || (a.fired_at === b.fired_at && a.id > b.id);
      expect(ordered, `${a.fired_at}/${a.id} before ${b.fired_at}/${b.id}`).to.equal(true);
    }
  }

  async function createTrigger(app: Express): Promise<string> {
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({ name: `stats-${randomUUID().slice(0, 8)}`, type: 'webhook', config: { endpoint: ENDPOINT, schema: { type: 'object' } } })
      .expect(201);
    return res.body.id as string;
  }

  before(async () => {
    t = await createTestEnv('events');
  });
  after(async () => {
    await t?.cleanup();
  });

  describe('GET /events/{id}', () => {
    it('returns the whole event', async () => {
      const app = testApp(t);
      const triggerId = randomUUID();
      const firedAt = ago(5 * MINUTE);
      const [id] = await seed([{ trigger_id: triggerId, fired_at: firedAt, source: 'scheduler', payload: { hello: 'world' } }]);
      const res = await request(app).get(`/api/v1/events/${id}`).expect(200);
      expect(res.body).to.include({
        id,
        trigger_id: triggerId,
        trigger_type: 'webhook',
        source: 'scheduler',
        is_test_run: false,
        execution_status: 'pending',
        attempts: 0,
        error_message: null,
        retention_status: 'active',
        published_at: null,
        fired_at: firedAt.toISOString(),
      });
      expect(res.body.payload).to.deep.equal({ hello: 'world' });
      expect(res.body).to.have.keys(
        'id',
        'trigger_id',
        'trigger_type',
        'source',
        'is_test_run',
        'payload',
        'scheduled_for',
        'fired_at',
        'published_at',
        'execution_status',
        'attempts',
        'response_status',
        'latency_ms',
        'error_message',
        'retention_status',
        'replay_of',
        'created_at',
        'updated_at',
        // the waiting attempt's due time, and the replay mark
        'next_attempt_at',
        'replayed_as',
        'replay_count',
        // the trigger in the operator's words
        'trigger_name',
        'trigger_timezone',
        'max_attempts',
        // the event's trace (docs/tracing.md): null for a row logged without a trace context
        'trace_id',
      );
      expect(res.body.trace_id).to.equal(null);
    });

    it("names the event's trigger, its zone and retry limit, and says null once the trigger is deleted", async () => {
      const app = testApp(t);
      const name = `nightly-${randomUUID().slice(0, 8)}`;
      const created = await request(app)
        .post('/api/v1/triggers')
        .send({
          name,
          type: 'cron_scheduled',
          status: 'inactive',
          config: { endpoint: ENDPOINT, cron: '0 3 * * *', timezone: 'America/New_York', retry: { max_attempts: 4, backoff_ms: 1000 } },
        })
        .expect(201);
      const triggerId = created.body.id as string;
      const [id] = await seed([{ trigger_id: triggerId, fired_at: ago(MINUTE) }]);
      const named = await request(app).get(`/api/v1/events/${id}`).expect(200);
      expect(named.body).to.include({ trigger_id: triggerId, trigger_name: name, trigger_timezone: 'America/New_York', max_attempts: 4 });
      const listed = await list(app, { trigger_id: triggerId });
      expect(listed.events.map((e) => (e as unknown as { trigger_name: string }).trigger_name)).to.deep.equal([name]);

      await request(app).delete(`/api/v1/triggers/${triggerId}`).expect(204);
      const orphan = await request(app).get(`/api/v1/events/${id}`).expect(200);
      expect(orphan.body).to.include({ trigger_id: triggerId, trigger_name: null, trigger_timezone: null, max_attempts: null });
    });

    it('returns 404 for an unknown event id and 400 for an id that is not a UUID', async () => {
      const app = testApp(t);
      const missing = await request(app).get(`/api/v1/events/${randomUUID()}`).expect(404);
      expect(missing.headers['content-type']).to.match(/^application\/problem\+json/);
      expect(missing.body.code).to.equal('EVENT_NOT_FOUND');
      await request(app).get('/api/v1/events/not-a-uuid').expect(400);
    });

    it('returns 404 once the event is deleted', async () => {
      const app = testApp(t);
      const [id] = await seed([{ trigger_id: randomUUID(), fired_at: ago(MINUTE) }]);
      await request(app).get(`/api/v1/events/${id}`).expect(200);
      await t.db('event_logs').where({ id }).delete();
      await request(app).get(`/api/v1/events/${id}`).expect(404);
    });
  });

  describe('GET /events filters', () => {
    it('filters by trigger_name: the one trigger with that name, none, or a 400 naming the ids when several share it', async () => {
      const app = testApp(t);
      const [a, b] = [await createTrigger(app), await createTrigger(app)];
      const nameOf = async (id: string) => (await request(app).get(`/api/v1/triggers/${id}`).expect(200)).body.name as string;
      const [aId] = await seed([{ trigger_id: a, fired_at: ago(2 * MINUTE) }]);
      await seed([{ trigger_id: b, fired_at: ago(MINUTE) }]);
      // Case-insensitive, exact (not "contains").
      expect(ids(await list(app, { trigger_name: (await nameOf(a)).toUpperCase() }))).to.deep.equal([aId]);
      expect((await list(app, { trigger_name: (await nameOf(a)).slice(0, 6) })).events).to.deep.equal([]);
      const none = await list(app, { trigger_name: `no-such-${randomUUID()}` });
      expect(none.events).to.deep.equal([]);
      expect(none.pagination.total_records).to.equal(0);

      await request(app)
        .put(`/api/v1/triggers/${b}`)
        .send({ name: await nameOf(a) })
        .expect(200);
      const twice = await request(app)
        .get('/api/v1/events')
        .query({ trigger_name: await nameOf(a) });
      expect(twice.status).to.equal(400);
      expect(twice.body.errors[0].field).to.equal('query.trigger_name');
      expect(twice.body.errors[0].message).to.include(a).and.to.include(b);
    });

    it('filters by trigger_id, source, execution_status and is_test_run', async () => {
      const app = testApp(t);
      const a = randomUUID();
      const b = randomUUID();
      const base = Date.now() - 30 * MINUTE;
      const at = (i: number) => new Date(base + i * 1000);
      const [aWebhook, aTest, aSchedPublished, aSchedFailed, bWebhook] = await seed([
        { trigger_id: a, fired_at: at(1), source: 'webhook' },
        { trigger_id: a, fired_at: at(2), source: 'manual-test', is_test_run: true, execution_status: 'success' },
        { trigger_id: a, fired_at: at(3), source: 'scheduler', execution_status: 'published' },
        { trigger_id: a, fired_at: at(4), source: 'scheduler', execution_status: 'failure' },
        { trigger_id: b, fired_at: at(5), source: 'webhook', execution_status: 'success' },
      ]);

      expect(ids(await list(app, { trigger_id: a }))).to.deep.equal([aSchedFailed, aSchedPublished, aTest, aWebhook]);
      expect(ids(await list(app, { trigger_id: b }))).to.deep.equal([bWebhook]);
      expect(ids(await list(app, { trigger_id: a, source: 'scheduler' }))).to.deep.equal([aSchedFailed, aSchedPublished]);
      expect(ids(await list(app, { trigger_id: a, execution_status: 'failure' }))).to.deep.equal([aSchedFailed]);
      expect(ids(await list(app, { trigger_id: a, is_test_run: true }))).to.deep.equal([aTest]);
      expect(ids(await list(app, { trigger_id: a, is_test_run: false }))).to.deep.equal([aSchedFailed, aSchedPublished, aWebhook]);
      // Without trigger_id the filters apply across triggers.
      const success = ids(await list(app, { execution_status: 'success', limit: 100 }));
      expect(success).to.include.members([aTest, bWebhook]);
      expect(success).to.not.include.members([aWebhook, aSchedPublished, aSchedFailed]);
      const tests = await list(app, { is_test_run: true, limit: 100 });
      expect(tests.events.every((e) => e.is_test_run)).to.equal(true);
      expect(ids(tests)).to.include(aTest);
      const sched = await list(app, { source: 'scheduler', limit: 100 });
      expect(sched.events.every((e) => e.source === 'scheduler')).to.equal(true);
    });

    it('filters by fired_at with from (inclusive) and to (exclusive)', async () => {
      const app = testApp(t);
      const trig = randomUUID();
      const base = Date.now() - 60 * MINUTE;
      const at = (i: number) => new Date(base + i * MINUTE);
      const seeded = await seed([0, 1, 2, 3, 4].map((i) => ({ trigger_id: trig, fired_at: at(i) })));
      const window = await list(app, { trigger_id: trig, from: at(1).toISOString(), to: at(3).toISOString() });
      expect(ids(window)).to.deep.equal([seeded[2], seeded[1]]);
      expect(ids(await list(app, { trigger_id: trig, from: at(3).toISOString() }))).to.deep.equal([seeded[4], seeded[3]]);
      expect(ids(await list(app, { trigger_id: trig, to: at(1).toISOString() }))).to.deep.equal([seeded[0]]);
    });

    it('shows active events by default and archived ones only with retention_status=archived', async () => {
      const app = testApp(t);
      const trig = randomUUID();
      // Active for 2 h after firing, archived until 48 h, then gone (even while its row still exists).
      const seeded = await seed(
        [1 * MINUTE, 3 * 3600_000, 3 * MINUTE, 5 * 3600_000, 49 * 3600_000].map((age) => ({ trigger_id: trig, fired_at: ago(age) })),
      );
      const active = await list(app, { trigger_id: trig });
      expect(ids(active)).to.deep.equal([seeded[0], seeded[2]]);
      expect(active.events.every((e) => e.retention_status === 'active')).to.equal(true);
      expect(ids(await list(app, { trigger_id: trig, retention_status: 'active' }))).to.deep.equal([seeded[0], seeded[2]]);
      const archived = await list(app, { trigger_id: trig, retention_status: 'archived' });
      expect(ids(archived)).to.deep.equal([seeded[1], seeded[3]]);
      expect(archived.events.every((e) => e.retention_status === 'archived')).to.equal(true);
      // The archived view is the archive of every trigger; the default view never shows its rows.
      const allActive = await allPagesByCursor(app, {}, 100);
      expect(allActive.flatMap(ids)).to.not.include.members([seeded[1], seeded[3]]);
      // Past 48 h: in neither view, and not readable by id.
      expect(allActive.flatMap(ids)).to.not.include(seeded[4]);
      expect((await request(app).get(`/api/v1/events/${seeded[4]}`)).status).to.equal(404);
      expect((await request(app).get(`/api/v1/events/${seeded[3]}`).expect(200)).body.retention_status).to.equal('archived');
    });

    it('draws the active, archived and gone edges exactly at 2 h and 48 h of age', async () => {
      const app = testApp(t);
      const trig = randomUUID();
      const H = 3600_000;
      // A few seconds either side of each edge: the request comes a moment after the seed, never 5 s later.
      const [youngActive, oldActive, youngArchived, oldArchived, gone] = await seed(
        [2 * H - 20_000, 2 * H - 5000, 2 * H + 5000, 48 * H - 20_000, 48 * H + 5000].map((age) => ({
          trigger_id: trig,
          fired_at: ago(age),
        })),
      );
      expect(ids(await list(app, { trigger_id: trig }))).to.deep.equal([youngActive, oldActive]);
      expect(ids(await list(app, { trigger_id: trig, retention_status: 'archived' }))).to.deep.equal([youngArchived, oldArchived]);
      expect((await request(app).get(`/api/v1/events/${gone}`)).status).to.equal(404);
      expect((await request(app).get(`/api/v1/events/${oldArchived}`).expect(200)).body.retention_status).to.equal('archived');
      expect((await request(app).get(`/api/v1/events/${oldActive}`).expect(200)).body.retention_status).to.equal('active');
    });

    it('answers invalid filters with 400 naming the parameter', async () => {
      const app = testApp(t);
      const cases: Array<[Record<string, string>, string]> = [
        [{ source: 'email' }, 'query.source'],
        [{ execution_status: 'done' }, 'query.execution_status'],
        [{ retention_status: 'deleted' }, 'query.retention_status'],
        [{ trigger_id: 'nope' }, 'query.trigger_id'],
        [{ from: 'yesterday' }, 'query.from'],
        [{ limit: '101' }, 'query.limit'],
        [{ page: '0' }, 'query.page'],
        [{ cursor: 'not a cursor!' }, 'query.cursor'],
      ];
      for (const [query, field] of cases) {
        const res = await request(app).get('/api/v1/events').query(query).expect(400);
        expect(
          res.body.errors.map((e: { field: string }) => e.field),
          JSON.stringify(query),
        ).to.include(field);
      }
      // Well-formed but not ours: the server's own check.
      const forged = Buffer.from('hello').toString('base64url');
      const res = await request(app).get('/api/v1/events').query({ cursor: forged }).expect(400);
      expect(res.body.errors.map((e: { field: string }) => e.field)).to.include('query.cursor');
    });
  });

  describe('GET /events paging', () => {
    it('pages by cursor across several pages with no gaps or repeats, newest first, even with equal fired_at', async () => {
      const app = testApp(t);
      const trig = randomUUID();
      const base = Date.now() - 40 * MINUTE;
      // 55 events, five per millisecond: the id breaks the ties.
      const seeded = await seed(Array.from({ length: 55 }, (_, i) => ({ trigger_id: trig, fired_at: new Date(base + Math.floor(i / 5)) })));
      const pages = await allPagesByCursor(app, { trigger_id: trig }, 10);
      expect(pages.map((p) => p.events.length)).to.deep.equal([10, 10, 10, 10, 10, 5]);
      // The first page is an ordinary page 1 (with totals); the ones reached by cursor carry no totals.
      expect(pages[0]!.pagination).to.include({ current_page: 1, total_pages: 6, total_records: 55, page_size: 10 });
      for (const p of pages.slice(1)) {
        expect(p.pagination).to.include({ current_page: null, total_pages: null, total_records: null, page_size: 10 });
      }
      const seen = pages.flatMap(ids);
      expect(seen).to.have.length(55);
      expect(new Set(seen).size).to.equal(55);
      expect(seen).to.have.members(seeded);
      expectNewestFirst(pages.flatMap((p) => p.events));
      expect(pages[pages.length - 1]!.pagination.next_cursor).to.equal(null);
    });

    it('pages the default view by cursor over every active event, and new events do not shift later pages', async () => {
      const app = testApp(t);
      await seed(Array.from({ length: 30 }, (_, i) => ({ trigger_id: randomUUID(), fired_at: ago((i + 1) * 1000) })));
      const expected = (
        (await t
          .db('event_logs')
          .where('fired_at', '>=', ago(2 * 3600_000))
          .select('id')) as Array<{ id: string }>
      ).map((r) => r.id);
      const first = await list(app, { limit: 7 });
      // Events that arrive while a client pages appear on its next fresh first page, not in the middle.
      const arrivals = await seed([{ trigger_id: randomUUID(), fired_at: new Date() }]);
      const pages = [first];
      let cursor = first.pagination.next_cursor;
      while (cursor) {
        const p = await list(app, { limit: 7, cursor });
        pages.push(p);
        cursor = p.pagination.next_cursor;
      }
      const seen = pages.flatMap(ids);
      expect(new Set(seen).size).to.equal(seen.length);
      expect(seen).to.have.members(expected);
      expect(seen).to.not.include(arrivals[0]);
      expectNewestFirst(pages.flatMap((p) => p.events));
    });

    it('pages by page/limit with totals, and its next_cursor continues where the page ended', async () => {
      const app = testApp(t);
      const trig = randomUUID();
      const base = Date.now() - 50 * MINUTE;
      const seeded = await seed(Array.from({ length: 23 }, (_, i) => ({ trigger_id: trig, fired_at: new Date(base + i * 1000) })));
      const newestFirst = [...seeded].reverse();

      const p1 = await list(app, { trigger_id: trig, limit: 10 });
      expect(p1.pagination).to.include({ current_page: 1, page_size: 10, total_pages: 3, total_records: 23 });
      expect(ids(p1)).to.deep.equal(newestFirst.slice(0, 10));
      const p2 = await list(app, { trigger_id: trig, limit: 10, page: 2 });
      expect(p2.pagination).to.include({ current_page: 2, total_pages: 3, total_records: 23 });
      expect(ids(p2)).to.deep.equal(newestFirst.slice(10, 20));
      const p3 = await list(app, { trigger_id: trig, limit: 10, page: 3 });
      expect(ids(p3)).to.deep.equal(newestFirst.slice(20));
      expect(p3.pagination.next_cursor).to.equal(null);
      const beyond = await list(app, { trigger_id: trig, limit: 10, page: 4 });
      expect(beyond.events).to.deep.equal([]);
      expect(beyond.pagination).to.include({ current_page: 4, total_records: 23, next_cursor: null });

      // A page's next_cursor gives the following page.
      const viaCursor = await list(app, { trigger_id: trig, limit: 10, cursor: p1.pagination.next_cursor! });
      expect(ids(viaCursor)).to.deep.equal(ids(p2));
      const defaults = await list(app, { trigger_id: trig });
      expect(defaults.pagination).to.include({ current_page: 1, page_size: 20, total_pages: 2, total_records: 23 });
    });
  });

  describe('GET /triggers/{id}/stats', () => {
    it('counts the last 48 h by execution status, source and retention status, with the last fired time', async () => {
      const app = testApp(t);
      const id = await createTrigger(app);
      const newest = ago(2 * MINUTE);
      await seed([
        { trigger_id: id, fired_at: ago(50 * MINUTE), source: 'webhook', execution_status: 'success' },
        { trigger_id: id, fired_at: ago(40 * MINUTE), source: 'webhook', execution_status: 'success' },
        { trigger_id: id, fired_at: ago(30 * MINUTE), source: 'webhook', execution_status: 'failure' },
        { trigger_id: id, fired_at: ago(20 * MINUTE), source: 'manual-test', is_test_run: true, execution_status: 'published' },
        { trigger_id: id, fired_at: newest, source: 'webhook', execution_status: 'pending' },
        { trigger_id: id, fired_at: ago(30 * 3600_000), source: 'webhook', execution_status: 'success' },
        // Outside the window, and another trigger's event: neither is counted.
        { trigger_id: id, fired_at: ago(49 * 3600_000), source: 'webhook', execution_status: 'failure' },
        { trigger_id: randomUUID(), fired_at: ago(MINUTE), source: 'webhook' },
      ]);
      const res = await request(app).get(`/api/v1/triggers/${id}/stats`).expect(200);
      const { window_from: from, ...counts } = res.body as { window_from: string };
      // Counts older than the active window are kept per hour: the window starts at the first whole hour of the last 48.
      const age = Date.now() - Date.parse(from);
      expect(Date.parse(from) % 3600_000, from).to.equal(0);
      expect(age, from).to.be.within(47 * 3600_000, 48 * 3600_000);
      expect(counts).to.deep.equal({
        trigger_id: id,
        window_hours: 48,
        total: 6,
        by_execution_status: { pending: 1, published: 1, success: 3, failure: 1 },
        by_source: { webhook: 5, scheduler: 0, 'manual-test': 1, replay: 0 },
        by_retention_status: { active: 5, archived: 1 },
        last_fired_at: newest.toISOString(),
      });
    });

    it('answers zeros and a null last_fired_at for a trigger without events, and 404 for an unknown trigger', async () => {
      const app = testApp(t);
      const id = await createTrigger(app);
      const res = await request(app).get(`/api/v1/triggers/${id}/stats`).expect(200);
      expect(res.body).to.include({ total: 0, last_fired_at: null });
      expect(res.body.by_execution_status).to.deep.equal({ pending: 0, published: 0, success: 0, failure: 0 });
      const missing = await request(app).get(`/api/v1/triggers/${randomUUID()}/stats`).expect(404);
      expect(missing.body.code).to.equal('TRIGGER_NOT_FOUND');
    });

    it('counts events that arrived through the webhook route and a test run', async () => {
      const app = testApp(t);
      const id = await createTrigger(app);
      await request(app).post(`/api/v1/webhook/${id}`).send({ a: 1 }).expect(202);
      await request(app).post(`/api/v1/webhook/${id}`).send({ a: 2 }).expect(202);
      await request(app)
        .post(`/api/v1/triggers/${id}/test`)
        .send({ payload: { a: 3 } })
        .expect(202);
      const res = await request(app).get(`/api/v1/triggers/${id}/stats`).expect(200);
      expect(res.body).to.include({ total: 3 });
      expect(res.body.by_source).to.include({ webhook: 2, 'manual-test': 1 });
      expect(res.body.by_execution_status).to.include({ pending: 3 });
      const [latest] = ((await t.db('event_logs').where({ trigger_id: id }).max({ m: 'fired_at' })) as Array<{ m: Date }>).map((r) => r.m);
      expect(res.body.last_fired_at).to.equal(latest!.toISOString());
    });
  });

  describe('indexes (EXPLAIN)', () => {
    interface ExplainRow {
      select_type: string;
      key: string | null;
      Extra: string | null;
      type: string;
    }
    interface Captured {
      sql: string;
      bindings: unknown[];
    }

    /** The list SELECT the API really runs for a request (captured from knex), not a hand-written copy. */
    async function listSql(app: Express, query: Record<string, string | number>): Promise<Captured> {
      const captured: Captured[] = [];
      const onQuery = (q: { sql: string; bindings?: unknown[] }) => {
        if (/^\(?select \* from `event_logs`.*order by/i.test(q.sql)) captured.push({ sql: q.sql, bindings: q.bindings ?? [] });
      };
      t.db.on('query', onQuery);
      try {
        await list(app, query);
      } finally {
        t.db.removeListener('query', onQuery);
      }
      expect(captured, 'the list query').to.have.length(1);
      return captured[0]!;
    }

    async function explain(q: Captured): Promise<ExplainRow[]> {
      const [rows] = (await t.db.raw(`EXPLAIN ${q.sql}`, q.bindings as never[])) as [ExplainRow[]];
      return rows;
    }

    /** Index entries a statement touched: replayed on one connection, read from its session counters. */
    async function indexReads(q: Captured): Promise<number> {
      return t.db.transaction(async (trx) => {
        await trx.raw('FLUSH STATUS');
        await trx.raw(q.sql, q.bindings as never[]);
        const [status] = (await trx.raw("SHOW SESSION STATUS LIKE 'Handler_read%'")) as [Array<{ Variable_name: string; Value: string }>];
        return status.filter((v) => /_(next|prev)$/.test(v.Variable_name)).reduce((n, v) => n + Number(v.Value), 0);
      });
    }

    /**
     * Each range of the statement read through an index, in its order (no filesort). A trigger's view
     * without a status is one range per status (four), merged by a UNION ALL: the merge's own sort is over
     * at most four pages of rows, so the plan's UNION RESULT row may sort; every range must not.
     */
    function expectIndexedWithoutFilesort(plan: ExplainRow[], why: string, ranges = 1): void {
      const reads = plan.filter((r) => r.select_type !== 'UNION RESULT');
      expect(reads, `${why}: ${JSON.stringify(plan)}`).to.have.length(ranges);
      expect(plan, `${why}: ${JSON.stringify(plan)}`).to.have.length(ranges === 1 ? 1 : ranges + 1);
      for (const r of reads) {
        expect(r.key, `${why}: ${JSON.stringify(plan)}`).to.be.a('string');
        expect(r.Extra ?? '', `${why}: ${JSON.stringify(plan)}`).to.not.match(/filesort/i);
      }
    }

    // Enough rows that the optimizer makes the choice it makes on real data: 100k events over 40 h, one
    // busy trigger with half of them, the rest spread over 39 others; 1.5 % failures.
    const busy = randomUUID();
    const others = Array.from({ length: 39 }, () => randomUUID());
    const ROWS = 100_000;

    before(async function () {
      this.timeout(180_000);
      const statuses: Status[] = ['success', 'success', 'success', 'published'];
      await seed(
        Array.from({ length: ROWS }, (_, i) => ({
          trigger_id: i % 2 === 0 ? busy : others[i % others.length]!,
          // Newest first: the first 6,000 a second apart (active), the rest spread back to 40 h.
          fired_at: ago(i < 6000 ? i * 1000 : 6000 * 1000 + (i - 6000) * 1500),
          execution_status: i % 67 === 5 ? 'failure' : statuses[i % statuses.length]!,
          source: i % 5 === 0 ? 'scheduler' : 'webhook',
        })),
      );
      await t.db.raw('ANALYZE TABLE event_logs');
    });

    /** Every filter the list route bounds by an index, with the index it must read and in how many ranges. */
    const views: Array<[string, Record<string, string>, string, number]> = [
      ['default view', {}, 'idx_events_fired', 1],
      ['archived view', { retention_status: 'archived' }, 'idx_events_fired', 1],
      ['status filter', { execution_status: 'failure' }, 'idx_events_status_fired', 1],
      ['archived status filter', { execution_status: 'failure', retention_status: 'archived' }, 'idx_events_status_fired', 1],
      ['per-trigger view', { trigger_id: busy }, 'idx_events_trigger_status_fired', 4],
      ['trigger + status', { trigger_id: busy, execution_status: 'failure' }, 'idx_events_trigger_status_fired', 1],
      ['archived per-trigger view', { trigger_id: busy, retention_status: 'archived' }, 'idx_events_trigger_status_fired', 4],
    ];

    for (const [why, filter, index, ranges] of views) {
      const shape = ranges === 1 ? 'one range' : `${ranges} ranges (one per status, merged)`;
      it(`reads the ${why} as ${shape} of ${index}, newest first without filesort, by page and by cursor`, async () => {
        const app = testApp(t);
        const first = await listSql(app, { ...filter, limit: 20 });
        const plan = await explain(first);
        expectIndexedWithoutFilesort(plan, why, ranges);
        for (const r of plan.filter((p) => p.select_type !== 'UNION RESULT')) {
          expect(r.key, why).to.equal(index);
          expect(r.type, `${why}: ${JSON.stringify(plan)}`).to.equal('range');
        }
        // The page costs about a page of index entries, though the filter matches thousands of rows.
        expect(await indexReads(first), `index entries read for ${first.sql}`).to.be.below(100);
        const page = await list(app, { ...filter, limit: 20 });
        expect(page.events.length, `${why} has rows to page`).to.be.above(0);
        if (page.pagination.next_cursor) {
          const next = await listSql(app, { ...filter, limit: 20, cursor: page.pagination.next_cursor });
          expectIndexedWithoutFilesort(await explain(next), `${why}, next page by cursor`, ranges);
          expect(await indexReads(next), `index entries read for ${next.sql}`).to.be.below(100);
        }
      });
    }

    it("reads a trigger's stats, last fired time, call log and replay batch from bounded ranges of idx_events_trigger_status_fired", async () => {
      const captured: Captured[] = [];
      const onQuery = (q: { sql: string; bindings?: unknown[] }) => {
        if (/`?event_logs`?/i.test(q.sql)) captured.push({ sql: q.sql, bindings: q.bindings ?? [] });
      };
      t.db.on('query', onQuery);
      let stats: Awaited<ReturnType<typeof triggerStats>>;
      try {
        // The active boundary cuts a minute, which the stats read from the rows (`since` is in folded hours:
        // the window starts at the next whole hour, which cuts nothing).
        const w = windowOf(t.config, new Date(Date.now() - 30_000));
        stats = await triggerStats(t.db, { id: busy, type: 'webhook' }, new Date(Date.now() - 40 * 3600_000 + 30_000), w, 10_000);
        await webhookCalls(t.db, busy, w.keepFrom, 20, 10_000);
        await eventsToReplay(t.db, { keepFrom: w.keepFrom, trigger_id: busy }, new Date(), null, 20);
      } finally {
        t.db.removeListener('query', onQuery);
      }
      expect(stats.last_fired_at, 'the newest of the busy trigger').to.be.an.instanceOf(Date);
      // stats: pending part, edge minutes, last fired; the call log; the replay batch
      expect(captured.length, JSON.stringify(captured.map((c) => c.sql))).to.be.at.least(5);
      for (const q of captured) {
        const plan = (await explain(q)).filter((r) => r.select_type !== 'UNION RESULT');
        for (const r of plan) {
          expect(r.key, `${q.sql}: ${JSON.stringify(plan)}`).to.equal('idx_events_trigger_status_fired');
          expect(r.type, `${q.sql}: ${JSON.stringify(plan)}`).to.equal('range');
        }
        // The busy trigger has 50,000 events: each read touches a few pages of them at most.
        expect(await indexReads(q), `index entries read for ${q.sql}`).to.be.below(200);
      }
    });

    it("counts an offset page's matches only up to 10,000, and sends deeper pages to the cursor", async () => {
      const app = testApp(t);
      const all = await list(app, { retention_status: 'archived', limit: 50 });
      expect(all.pagination).to.include({ total_records: 10_000, total_is_exact: false, total_pages: 200 });
      expect(all.pagination.next_cursor).to.be.a('string');
      const few = await list(app, { trigger_id: busy, execution_status: 'failure', limit: 50 });
      expect(few.pagination.total_is_exact).to.equal(true);
      const expected = await t
        .db('event_logs')
        .where({ trigger_id: busy, execution_status: 'failure' })
        .andWhere('fired_at', '>=', ago(2 * 3600_000))
        .count({ n: '*' });
      expect(few.pagination.total_records).to.equal(Number((expected[0] as { n: number }).n));
      const deep = await request(app).get('/api/v1/events').query({ page: 201, limit: 50 });
      expect(deep.status).to.equal(400);
      expect(deep.body.errors[0].field).to.equal('query.page');
    });

    it("takes a trigger's page total from its rollups and the view's ends, reading a few of its 3,000 active index entries", async () => {
      const app = testApp(t);
      const captured: Captured[] = [];
      const onQuery = (q: { sql: string; bindings?: unknown[] }) => {
        if (/count\(\*\)|sum\(/i.test(q.sql)) captured.push({ sql: q.sql, bindings: q.bindings ?? [] });
      };
      // The busy trigger's active events, counted directly just before and just after the request: the
      // API's window lies between the two (events are seconds apart, so the two counts nearly always agree).
      const active = async () => {
        const [{ n }] = await t
          .db('event_logs')
          .where({ trigger_id: busy })
          .andWhere('fired_at', '>=', ago(2 * 3600_000))
          .count<{ n: number }[]>({ n: '*' });
        return Number(n);
      };
      const before = await active();
      t.db.on('query', onQuery);
      let page: Page;
      try {
        page = await list(app, { trigger_id: busy, limit: 20 });
      } finally {
        t.db.removeListener('query', onQuery);
      }
      const after = await active();
      expect(after, 'the busy trigger has thousands of active events').to.be.above(2500);
      expect(page.pagination.total_is_exact).to.equal(true);
      expect(page.pagination.total_records).to.be.within(after, before);
      // Two statements: the rollups' sum, then the count of the view's ends (four ranges, one per status).
      expect(
        captured.map((c) => c.sql),
        'the sum, then the ends',
      ).to.have.length(2);
      const [sum, ends] = captured as [Captured, Captured];
      // The tables' reads, not the derived table's own rows (PRIMARY) or the union's (UNION RESULT).
      const reads = async (q: Captured) =>
        (await explain(q)).filter((p) => p.select_type !== 'UNION RESULT' && p.select_type !== 'PRIMARY');
      const rollupReads = await reads(sum);
      expect(rollupReads, 'hours and minutes').to.have.length(2);
      for (const r of rollupReads) expect(r, JSON.stringify(r)).to.include({ key: 'PRIMARY', type: 'range' });
      const endReads = await reads(ends);
      expect(endReads, 'one range per status').to.have.length(4);
      for (const r of endReads) expect(r, JSON.stringify(r)).to.include({ key: 'idx_events_trigger_status_fired', type: 'range' });
      expect(await indexReads(ends), `index entries read for ${ends.sql}`).to.be.below(200);
    });

    for (const view of ['default', 'per-trigger'] as const) {
      it(`reads about one page of index entries for a deep ${view} cursor page, where OFFSET reads every row above it`, async () => {
        const app = testApp(t);
        const filter: Record<string, string> = view === 'per-trigger' ? { trigger_id: busy } : {};
        const depth = view === 'per-trigger' ? 1500 : 3000;
        const [deep] = (await t
          .db('event_logs')
          .where(filter)
          .andWhere('fired_at', '>=', ago(2 * 3600_000 - 60_000))
          .orderBy([
            { column: 'fired_at', order: 'desc' },
            { column: 'id', order: 'desc' },
          ])
          .offset(depth - 1)
          .limit(1)
          .select('fired_at', 'id')) as Array<{ fired_at: Date; id: string }>;
        const byCursor = await listSql(app, { ...filter, limit: 20, cursor: encodeCursor(deep!) });
        const byOffset = await listSql(app, { ...filter, limit: 20, page: depth / 20 + 1 });
        const [cursorReads, offsetReads] = [await indexReads(byCursor), await indexReads(byOffset)];
        expect(cursorReads, `${cursorReads} reads for ${byCursor.sql}`).to.be.below(100);
        expect(offsetReads).to.be.above(depth);
        // Both name the same page.
        const [viaCursor, viaOffset] = [
          await list(app, { ...filter, limit: 20, cursor: encodeCursor(deep!) }),
          await list(app, { ...filter, limit: 20, page: depth / 20 + 1 }),
        ];
        expect(ids(viaCursor)).to.deep.equal(ids(viaOffset));
        expect(viaCursor.events).to.have.length(20);
      });
    }
  });
});
