import { expect } from 'chai';
import request from 'supertest';
import { testApp } from '../helpers/app';
import { createTestEnv, type TestEnv } from '../helpers/env';

/** What openapi.yaml promises about nulls, headers, paging and query parsing, as the server does it. */
describe('the API contract: nulls, headers, paging, date-time queries', () => {
  let t: TestEnv;
  let app: ReturnType<typeof testApp>;
  const ENDPOINT = 'https://example.com/hooks/contract';

  before(async () => {
    t = await createTestEnv('contract');
    app = testApp(t);
  });
  after(async () => {
    await t?.cleanup();
  });

  it('reads an explicit null as absent, as a generated client that writes every field sends it', async () => {
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({
        name: 'nulls',
        type: 'webhook',
        status: null,
        tags: null,
        config: {
          endpoint: ENDPOINT,
          schema: { type: 'object' },
          payload: null,
          secret: null,
          timeout_ms: null,
          retry: { max_attempts: null },
        },
      })
      .expect(201);
    expect(res.body.status).to.equal('active');
    expect(res.body.config).to.include({ timeout_ms: 10_000, has_secret: false });
    expect(res.body.config.retry).to.deep.equal({ max_attempts: 5, backoff_ms: 1000 });
  });

  it('fires a test run with an explicit null payload with the configured payload', async () => {
    const created = await request(app)
      .post('/api/v1/triggers')
      .send({ name: 'once', type: 'time_scheduled', config: { endpoint: ENDPOINT, delay_seconds: 3600, payload: { configured: true } } })
      .expect(201);
    const stored = await request(app).post(`/api/v1/triggers/${created.body.id}/test`).send({ payload: null }).expect(202);
    expect((await request(app).get(`/api/v1/events/${stored.body.event_id}`).expect(200)).body.payload).to.deep.equal({ configured: true });
    const unsaved = await request(app)
      .post('/api/v1/triggers/test')
      .send({ type: 'time_scheduled', config: { endpoint: ENDPOINT, delay_seconds: 0, payload: { mine: 1 } }, payload: null })
      .expect(202);
    expect((await request(app).get(`/api/v1/events/${unsaved.body.event_id}`).expect(200)).body.payload).to.deep.equal({ mine: 1 });
  });

  it('names the trigger types a stray config key belongs to', async () => {
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({ name: 'x', type: 'webhook', config: { endpoint: ENDPOINT, schema: {}, payload: { a: 1 } } })
      .expect(400);
    expect(res.body.errors).to.deep.include({
      field: 'config.payload',
      message: 'only time_scheduled, cron_scheduled, interval_scheduled triggers have this property, not webhook',
    });
  });

  it('treats an empty id list in a bulk pause as no id filter', async () => {
    await request(app)
      .post('/api/v1/triggers')
      .send({ name: 'tagged', type: 'interval_scheduled', tags: ['bulk-empty-ids'], config: { endpoint: ENDPOINT, interval_seconds: 60 } })
      .expect(201);
    const res = await request(app).post('/api/v1/triggers/pause').send({ tag: 'bulk-empty-ids', ids: [] }).expect(200);
    expect(res.body.updated).to.equal(1);
  });

  it('answers 201 with Location and every answer with X-Request-Id, as declared', async () => {
    const res = await request(app)
      .post('/api/v1/triggers')
      .set('X-Request-Id', 'req-1')
      .send({ name: 'loc', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 60 } })
      .expect(201);
    expect(res.headers.location).to.equal(`/api/v1/triggers/${res.body.id}`);
    expect(res.headers['x-request-id']).to.equal('req-1');
  });

  it('still takes an update without type when it carries no config', async () => {
    const created = await request(app)
      .post('/api/v1/triggers')
      .send({ name: 'legacy', type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 60 } })
      .expect(201);
    const res = await request(app).put(`/api/v1/triggers/${created.body.id}`).send({ status: 'inactive' }).expect(200);
    expect(res.body.status).to.equal('inactive');
  });

  it('pages triggers by cursor as events are paged, and rejects a forged cursor', async () => {
    const page1 = (await request(app).get('/api/v1/triggers?limit=2').expect(200)).body;
    expect(page1.pagination).to.include({ current_page: 1, page_size: 2, total_is_exact: true });
    const all = (await request(app).get('/api/v1/triggers?limit=100').expect(200)).body.triggers.map((x: { id: string }) => x.id);
    const seen: string[] = page1.triggers.map((x: { id: string }) => x.id);
    let cursor: string | null = page1.pagination.next_cursor;
    while (cursor) {
      const page = (await request(app).get(`/api/v1/triggers?limit=2&cursor=${cursor}`).expect(200)).body;
      expect(page.pagination).to.include({ current_page: null, total_records: null });
      seen.push(...page.triggers.map((x: { id: string }) => x.id));
      cursor = page.pagination.next_cursor;
    }
    expect(seen).to.deep.equal(all);
    const forged = await request(app).get('/api/v1/triggers?cursor=bm90LWEtY3Vyc29y').expect(400);
    expect(forged.body.errors[0].field).to.equal('query.cursor');
  });

  it('accepts date-time query parameters as people type them, unencoded, with Z or an offset', async () => {
    const z = await request(app).get('/api/v1/events?from=2026-12-03T10:00:00Z&to=2099-01-01T00:00:00Z').expect(200);
    expect(z.body.events).to.be.an('array');
    const offset = await request(app).get('/api/v1/events?from=2000-01-01T10:00:00+01:00').expect(200);
    expect(offset.body.events.length).to.be.greaterThan(0);
    await request(app).get('/api/v1/events?from=tomorrow').expect(400);
  });
});
