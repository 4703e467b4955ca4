import { expect } from 'chai';
import http from 'node:http';
import { postJson } from '../helpers/post-json';
import type { AddressInfo } from 'node:net';
import { createHmac, randomUUID } from 'node:crypto';
import request from 'supertest';
import type { Express } from 'express';
import { WebhookIngest } from '../../src/api/webhook-ingest';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { ingestOf, testApp } from '../helpers/app';
import { createMultiStatementPool, sendStatements } from '../../src/db/multi';
import { webhookGroupSql, writeGroupScript, type WebhookEventWrite } from '../../src/db/ingest';

const ids = (items: WebhookEventWrite[]) => items.map((it) => it.eventId);

/**
 * The webhook receiver's fast path (src/api/webhook-ingest.ts, src/db/ingest.ts): the in-process trigger
 * cache must never outlive a change made elsewhere, group commits must write each event exactly once,
 * and a failing group must not leave half a transaction behind or answer 202.
 */
const SCHEMA_V1 = { type: 'object', required: ['order_id'], properties: { order_id: { type: 'string' } } };
const SCHEMA_V2 = {
  type: 'object',
  required: ['order_id', 'amount'],
  properties: { order_id: { type: 'string' }, amount: { type: 'number' } },
};
const V1_ONLY = { order_id: 'A-1' };
const V2_VALID = { order_id: 'A-1', amount: 5 };

describe('webhook fast path: trigger cache and group commit', () => {
  let t: TestEnv;

  before(async () => {
    t = await createTestEnv('webhookingest');
  });
  after(async () => {
    await t?.cleanup();
  });

  async function webhookTrigger(app: Express, schema: unknown = SCHEMA_V1): Promise<string> {
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({ name: `wh-${randomUUID().slice(0, 8)}`, type: 'webhook', config: { endpoint: 'https://example.com/h', schema } })
      .expect(201);
    return (res.body as { id: string }).id;
  }
  const fire = (app: Express | http.Server, id: string, body: unknown) =>
    request(app).post(`/api/v1/webhook/${id}`).set('content-type', 'application/json').send(JSON.stringify(body));
  const rowsFor = async (table: 'event_logs' | 'outbox', column: string, ids: string[]) =>
    ids.length === 0 ? 0 : Number(((await t.db(table).whereIn(column, ids).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);
  /** The trigger's events as the rollups count them ('fired'), to compare with its rows. */
  const countedFor = async (triggerId: string) =>
    Number(
      (
        (await t.db('trigger_event_counts').where({ trigger_id: triggerId, kind: 'fired' }).sum({ n: 'n' })) as Array<{ n: number | null }>
      )[0]!.n ?? 0,
    );
  const countedAll = async () =>
    Number(((await t.db('event_counts').where({ kind: 'fired' }).sum({ n: 'n' })) as Array<{ n: number | null }>)[0]!.n ?? 0);
  const editInDb = (id: string, patch: Record<string, unknown>) =>
    t
      .db('triggers')
      .where({ id })
      .update({ ...patch, version: t.db.raw('version + 1'), updated_at: new Date() });

  describe('a change made outside this API instance takes effect on the next request', () => {
    it('applies a schema edit made directly in the database although the trigger is cached', async () => {
      const app = testApp(t);
      const id = await webhookTrigger(app);
      await fire(app, id, V1_ONLY).expect(202); // cached now
      const config = JSON.parse(((await t.db('triggers').where({ id }).first()) as { config: string }).config) as Record<string, unknown>;
      await editInDb(id, { config: JSON.stringify({ ...config, schema: SCHEMA_V2 }) });
      const rejected = await fire(app, id, V1_ONLY).expect(400);
      expect(rejected.body.code).to.equal('SCHEMA_VALIDATION_FAILED');
      expect((rejected.body.errors as Array<{ field: string }>).map((e) => e.field)).to.deep.equal(['/amount']);
      await fire(app, id, V2_VALID).expect(202);
      // And the other way round: a payload valid only under the new schema is not refused by a stale cache.
      const app2 = testApp(t);
      await fire(app2, id, V2_VALID).expect(202);
      await editInDb(id, { config: JSON.stringify({ ...config, schema: SCHEMA_V1 }) });
      await fire(app2, id, V1_ONLY).expect(202);
    });

    it('answers 409 after a deactivation and 404 after a deletion made directly in the database', async () => {
      const app = testApp(t);
      const id = await webhookTrigger(app);
      await fire(app, id, V1_ONLY).expect(202);
      await editInDb(id, { status: 'inactive' });
      const before = await rowsFor('event_logs', 'trigger_id', [id]);
      expect((await fire(app, id, V1_ONLY).expect(409)).body.code).to.equal('TRIGGER_INACTIVE');
      await editInDb(id, { status: 'active' });
      await fire(app, id, V1_ONLY).expect(202);
      await t.db('triggers').where({ id }).delete();
      expect((await fire(app, id, V1_ONLY).expect(404)).body.code).to.equal('TRIGGER_NOT_FOUND');
      expect(await rowsFor('event_logs', 'trigger_id', [id])).to.equal(before + 1);
    });

    it('applies an edit, a deactivation and a deletion made through another app instance on the same database', async () => {
      const a = testApp(t);
      const b = testApp(t);
      const id = await webhookTrigger(a);
      await fire(a, id, V1_ONLY).expect(202);
      await request(b)
        .put(`/api/v1/triggers/${id}`)
        .send({ config: { endpoint: 'https://example.com/h', schema: SCHEMA_V2 } })
        .expect(200);
      await fire(a, id, V1_ONLY).expect(400);
      await fire(a, id, V2_VALID).expect(202);
      await request(b).put(`/api/v1/triggers/${id}`).send({ status: 'inactive' }).expect(200);
      await fire(a, id, V2_VALID).expect(409);
      await request(b).put(`/api/v1/triggers/${id}`).send({ status: 'active' }).expect(200);
      await fire(a, id, V2_VALID).expect(202);
      await request(b).delete(`/api/v1/triggers/${id}`).expect(204);
      await fire(a, id, V2_VALID).expect(404);
    });

    it('requires a signature as soon as a secret is set elsewhere', async () => {
      const app = testApp(t);
      const id = await webhookTrigger(app);
      await fire(app, id, V1_ONLY).expect(202);
      const secret = 'rotated-secret-0123456789';
      await request(testApp(t))
        .put(`/api/v1/triggers/${id}`)
        .send({ config: { endpoint: 'https://example.com/h', schema: SCHEMA_V1, secret } })
        .expect(200);
      expect((await fire(app, id, V1_ONLY).expect(401)).body.code).to.equal('INVALID_SIGNATURE');
      const body = JSON.stringify(V1_ONLY);
      const sig = createHmac('sha256', secret).update(body).digest('hex');
      await request(app)
        .post(`/api/v1/webhook/${id}`)
        .set('content-type', 'application/json')
        .set('x-signature', `sha256=${sig}`)
        .send(body)
        .expect(202);
    });
  });

  describe('group commit', () => {
    it('accepts 300 concurrent requests as 300 events, each with one event log and one outbox row, in fewer commits', async () => {
      const ingest = ingestOf(t)!;
      const app = testApp(t);
      const id = await webhookTrigger(app);
      await fire(app, id, V1_ONLY).expect(202);
      const server = http.createServer(app);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
      try {
        const port = (server.address() as AddressInfo).port;
        const flushesBefore = ingest.stats.flushes;
        const answers = await Promise.all(
          Array.from({ length: 300 }, (_, i) => postJson(agent, `http://127.0.0.1:${port}/api/v1/webhook/${id}`, { order_id: `C-${i}` })),
        );
        expect(answers.map((a) => a.status)).to.deep.equal(answers.map(() => 202));
        const ids = answers.map((a) => (a.body as { event_id: string }).event_id);
        expect(new Set(ids).size).to.equal(300);
        const flushes = ingest.stats.flushes - flushesBefore;
        expect(flushes, 'group commits for 300 requests').to.be.lessThan(300);
        const logs = (await t.db('event_logs').whereIn('id', ids).select('id', 'payload')) as Array<{ id: string; payload: string }>;
        expect(logs).to.have.length(300);
        const outbox = (await t.db('outbox').whereIn('event_id', ids).select('event_id', 'value')) as Array<{
          event_id: string;
          value: Buffer;
        }>;
        expect(outbox).to.have.length(300);
        expect(new Set(outbox.map((o) => o.event_id)).size).to.equal(300);
        const msg = JSON.parse(outbox[0]!.value.toString('utf8')) as Record<string, unknown>;
        expect(msg).to.include({ event_id: outbox[0]!.event_id, trigger_id: id, type: 'webhook', source: 'webhook', is_test_run: false });
        expect(await countedFor(id), "the trigger's events in the rollup").to.equal(301);
      } finally {
        agent.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      }
    });

    it('writes the other items of a group that holds a stale one, and only those', async () => {
      const app = testApp(t);
      const fresh = await webhookTrigger(app);
      const stale = await webhookTrigger(app);
      const ingest = ingestOf(t)!;
      const before = ingest.stats.flushes;
      const countedBefore = await countedAll();
      const items = [fresh, stale, fresh, stale, fresh].map((triggerId) => ({
        eventId: randomUUID(),
        triggerId,
        version: triggerId === stale ? 99 : 1,
        payload: V1_ONLY,
        firedAt: new Date(),
      }));
      const outcomes = await Promise.all(items.map((it) => ingest.submit(it)));
      expect(ingest.stats.flushes - before, 'one group').to.equal(1);
      expect(outcomes).to.deep.equal(['logged', 'stale', 'logged', 'stale', 'logged']);
      const logged = items.filter((it) => it.triggerId === fresh).map((it) => it.eventId);
      const refused = items.filter((it) => it.triggerId === stale).map((it) => it.eventId);
      expect(await rowsFor('event_logs', 'id', logged)).to.equal(3);
      expect(await rowsFor('outbox', 'event_id', logged)).to.equal(3);
      expect(await rowsFor('event_logs', 'id', refused)).to.equal(0);
      expect(await rowsFor('outbox', 'event_id', refused)).to.equal(0);
      // Counted as written: the stale items, which wrote nothing, count nothing.
      expect(await countedFor(fresh)).to.equal(3);
      expect(await countedFor(stale)).to.equal(0);
      expect((await countedAll()) - countedBefore).to.equal(3);
    });

    it('writes a group under one guard: all of it while its triggers are current, none of it when one is not', async () => {
      const app = testApp(t);
      const a = await webhookTrigger(app);
      const b = await webhookTrigger(app);
      const pool = createMultiStatementPool(t.config.databaseUrl, 1);
      try {
        const group = (versionOfB: number): WebhookEventWrite[] =>
          [a, b, a].map((triggerId) => {
            const eventId = randomUUID();
            return {
              eventId,
              triggerId,
              version: triggerId === b ? versionOfB : 1,
              payload: JSON.stringify(V1_ONLY),
              firedAt: new Date(),
              traceParent: null,
              topic: t.config.kafkaTopic,
              value: JSON.stringify({ id: eventId }),
              headers: '{}',
              shard: 0,
            };
          });
        const run = (items: WebhookEventWrite[]) => writeGroupScript(pool, webhookGroupSql(items));
        const current = group(1);
        expect(await run(current), 'every trigger current: the events inserted').to.equal(3);
        expect(await rowsFor('event_logs', 'id', ids(current))).to.equal(3);
        expect(await rowsFor('outbox', 'event_id', ids(current))).to.equal(3);
        const oneStale = group(2);
        expect(await run(oneStale), 'one trigger stale: nothing inserted').to.equal(0);
        expect(await rowsFor('event_logs', 'id', ids(oneStale))).to.equal(0);
        expect(await rowsFor('outbox', 'event_id', ids(oneStale))).to.equal(0);
      } finally {
        await pool.end();
      }
    });

    it('stores every text of a group byte for byte, whatever quotes, backslashes and control characters it holds', async () => {
      const app = testApp(t);
      const a = await webhookTrigger(app);
      const pool = createMultiStatementPool(t.config.databaseUrl, 1);
      // Texts bound as they are (a double quote and nothing else to escape) and texts mysql2 escapes, side by side.
      const texts = [
        JSON.stringify({ order_id: 'A-1', note: 'plain "quoted" text', n: [1, 2.5, null, true] }),
        JSON.stringify({ order_id: 'é ü 日本 🎉', q: '? ?? -- /* */ #' }),
        JSON.stringify({ order_id: "it's", back: 'slash \\ and \\"', nl: 'line\nbreak', nul: '\u0000' }),
        '{"order_id":"raw \' apostrophe"}',
        '{"order_id":"raw\ttab and \r\n newline"}',
        '{"order_id":"A-1"}\u001a',
      ];
      try {
        const items: WebhookEventWrite[] = texts.map((text, i) => {
          const eventId = randomUUID();
          return {
            eventId,
            triggerId: a,
            version: 1,
            payload: JSON.stringify(text),
            firedAt: new Date(),
            traceParent: null,
            topic: t.config.kafkaTopic,
            value: text,
            headers: JSON.stringify({ 'x-text': texts[texts.length - 1 - i] }),
            shard: 0,
          };
        });
        expect(await writeGroupScript(pool, webhookGroupSql(items))).to.equal(items.length);
        const stored = (await t.db('outbox').whereIn('event_id', ids(items)).select('event_id', 'value', 'headers')) as Array<{
          event_id: string;
          value: Buffer | string;
          headers: string;
        }>;
        const logs = (await t.db('event_logs').whereIn('id', ids(items)).select('id', 'payload')) as Array<{ id: string; payload: string }>;
        for (const it of items) {
          const row = stored.find((r) => r.event_id === it.eventId)!;
          expect(String(row.value), 'outbox value').to.equal(it.value);
          expect(row.headers, 'outbox headers').to.equal(it.headers);
          expect(logs.find((r) => r.id === it.eventId)!.payload, 'event log payload').to.equal(it.payload);
        }
        // The relay's scripts (multi-statement queries) bind their texts the same way.
        const [rows] = (await sendStatements(pool, t.db, [
          { sql: `SELECT ${texts.map((_, i) => `? AS t${i}`).join(', ')}`, values: texts },
        ])) as [Array<Record<string, string>>];
        expect(Object.values(rows[0]!)).to.deep.equal(texts);
      } finally {
        await pool.end();
      }
    });

    it('accepts concurrent requests for a trigger edited elsewhere alongside requests for a fresh one', async () => {
      const app = testApp(t);
      const a = await webhookTrigger(app);
      const b = await webhookTrigger(app);
      await fire(app, a, V1_ONLY).expect(202);
      await fire(app, b, V1_ONLY).expect(202);
      await editInDb(b, { name: 'renamed elsewhere' });
      const answers = await Promise.all([a, b, a, b, a, b].map((id) => fire(app, id, V1_ONLY)));
      expect(answers.map((r) => r.status)).to.deep.equal([202, 202, 202, 202, 202, 202]);
      const ids = answers.map((r) => (r.body as { event_id: string }).event_id);
      expect(await rowsFor('event_logs', 'id', ids)).to.equal(6);
      expect(await rowsFor('outbox', 'event_id', ids)).to.equal(6);
    });

    it('answers 503 when the database refuses a group mid-transaction, writes nothing of it, and reuses the connection cleanly', async () => {
      const app = testApp(t);
      const id = await webhookTrigger(app);
      await fire(app, id, V1_ONLY).expect(202);
      // The event log insert succeeds, the outbox insert of the same transaction fails.
      await t.db.raw(
        "CREATE TRIGGER ingest_test_refuse BEFORE INSERT ON outbox FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by test'",
      );
      let failedIds: string[];
      const ingest = ingestOf(t)!;
      try {
        const answers = await Promise.all([1, 2, 3].map(() => fire(testApp(t), id, V1_ONLY)));
        for (const r of answers) {
          expect(r.status).to.equal(503);
          expect(r.headers['content-type']).to.match(/^application\/problem\+json/);
          expect(r.body.code).to.equal('SERVICE_UNAVAILABLE');
        }
        const direct = [randomUUID(), randomUUID()];
        const outcomes = await Promise.all(
          direct.map((eventId) => ingest.submit({ eventId, triggerId: id, version: 1, payload: V1_ONLY, firedAt: new Date() })),
        );
        expect(outcomes).to.deep.equal(['failed', 'failed']);
        failedIds = direct;
      } finally {
        await t.db.raw('DROP TRIGGER ingest_test_refuse');
      }
      // The next groups run on the same pool: had a failed transaction been left open, their START
      // TRANSACTION would have committed its event log rows.
      await Promise.all([1, 2, 3, 4].map(() => fire(app, id, V1_ONLY).expect(202)));
      expect(await rowsFor('event_logs', 'id', failedIds)).to.equal(0);
      const logs = Number(((await t.db('event_logs').where({ trigger_id: id }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);
      const outbox = Number(((await t.db('outbox').where({ msg_key: id }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);
      expect(logs).to.equal(5);
      expect(outbox).to.equal(5);
      // The failed groups counted nothing (their counts went with their rollback), the later ones their events.
      expect(await countedFor(id)).to.equal(5);
    });

    it('closes idempotently after answering what was queued', async () => {
      const app = testApp(t, { ingest: null });
      const id = await webhookTrigger(app);
      const own = WebhookIngest.create(t.config.databaseUrl, {
        topic: t.topic,
        outboxShards: t.config.outboxShards,
        maxItems: 10,
        maxBytes: 1 << 20,
        maxInFlight: 1,
      });
      const pending = own.submit({ eventId: randomUUID(), triggerId: id, version: 1, payload: V1_ONLY, firedAt: new Date() });
      await Promise.all([own.close(), own.close()]);
      expect(await pending).to.equal('logged');
    });
  });
});
