import { expect } from 'chai';
import request from 'supertest';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { until } from '../helpers/until';
import { metricValue, scrapeMetrics } from '../helpers/metrics';
import { count, untilLogged } from '../helpers/fixtures';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import type { Config } from '../../src/config';
import { PAYLOAD_MAX_BYTES } from '../../src/kafka/message';
import { FIRE_BATCH_MAX_CHARS } from '../../src/relay/steps';
import { CLAIM_CONFIG_MAX_BYTES, CLAIM_DUE_SQL } from '../../src/db/schedules';
import { claimUnpublishedStatement, OUTBOX_BATCH_MAX_BYTES, OUTBOX_INLINE_MAX_BYTES } from '../../src/db/outbox';

/**
 * Payloads near the API's body limit, many of them due together: the fire batch that logs them (and, in
 * outbox mode, queues their messages) holds more text than the server's max_allowed_packet. Before the
 * statements and round trips were cut by size (db/packets.ts), such a batch was refused on every retry: the
 * occurrences never fired, and the direct path produced the batch to Kafka again on each attempt.
 */
describe('large payloads: fire batches past max_allowed_packet and past their payload bound; payloads past what Kafka takes', function () {
  this.timeout(240_000);
  const PAYLOAD_CHARS = 900_000;
  let t: TestEnv;
  let app: Express;
  let reader: KafkaReader;
  let triggersPerBatch = 0;
  let platform: Platform | null = null;

  before(async () => {
    t = await createTestEnv('largepayloads');
    app = testApp(t);
    const [[row]] = (await t.db.raw('SELECT @@max_allowed_packet AS p')) as unknown as [[{ p: number }]];
    // Enough triggers that their events' text is well past the packet limit (one lane claims them all) and
    // past a fire batch's payload bound, so they take two batches.
    triggersPerBatch = Math.max(Math.ceil(Number(row.p) / PAYLOAD_CHARS), Math.ceil(FIRE_BATCH_MAX_CHARS / PAYLOAD_CHARS)) + 4;
    reader = await new KafkaReader([t.topic]).start();
  });
  afterEach(async () => {
    await platform?.stop();
    platform = null;
  });
  after(async () => {
    await reader?.stop();
    await t?.cleanup();
  });

  /** `n` one-shot triggers, each with a payload of PAYLOAD_CHARS characters, all due at one instant; their ids. */
  function bigTriggers(n: number, tag: string): Promise<string[]> {
    return dueTriggers(
      Array.from({ length: n }, () => PAYLOAD_CHARS),
      tag,
    );
  }

  /** One-shot triggers whose payloads hold texts of `sizes` characters, all due at one instant; their ids. */
  async function dueTriggers(sizes: number[], tag: string): Promise<string[]> {
    const runAt = new Date(Date.now() + 60_000).toISOString();
    const ids: string[] = [];
    for (const [i, chars] of sizes.entries()) {
      const payload = { tag, i, text: 'x'.repeat(chars) };
      const res = await request(app)
        .post('/api/v1/triggers')
        .send({ name: `${tag}-${i}`, type: 'time_scheduled', config: { endpoint: 'http://127.0.0.1:9/x', run_at: runAt, payload } })
        .expect(201);
      ids.push(res.body.id as string);
    }
    // Due now: the relay starts after they are all written, so its first claim takes them together.
    await t
      .db('trigger_schedules')
      .whereIn('trigger_id', ids)
      .update({ fire_at: new Date(Date.now() - 1000) });
    return ids;
  }

  /**
   * Until the trigger's outbox rows are gone. The relay deletes them in the transaction it commits after
   * Kafka acknowledged the messages, so a reader can see a message before that commit: a count made at
   * once, as soon as the messages are read, failed now and then on a slow machine.
   */
  async function untilOutboxDone(webhook: string): Promise<void> {
    await until(async () => (await count(t.db, 'outbox', { msg_key: webhook })) === 0, {
      timeoutMs: 30_000,
      message: 'the published outbox rows deleted',
    });
  }

  /** A webhook trigger, and one accepted call per size with a payload text of that many characters: its id and the event ids. */
  async function webhookEvents(name: string, sizes: number[]): Promise<{ webhook: string; ids: string[] }> {
    const res = await request(app)
      .post('/api/v1/triggers')
      .send({ name, type: 'webhook', config: { endpoint: 'http://127.0.0.1:9/x', schema: {} } })
      .expect(201);
    const webhook = res.body.id as string;
    const ids: string[] = [];
    for (const chars of sizes) {
      const accepted = await request(app)
        .post(`/api/v1/webhook/${webhook}`)
        .set('content-type', 'application/json')
        .send(JSON.stringify({ text: 'z'.repeat(chars) }))
        .expect(202);
      ids.push(accepted.body.event_id as string);
    }
    return { webhook, ids };
  }

  async function firesAll(mode: Config['relayFireMode'], tag: string): Promise<void> {
    const ids = await bigTriggers(triggersPerBatch, tag);
    await t.db('fire_lags').delete();
    platform = await startPlatform({ ...t.config, relayConcurrency: 1, relayFireMode: mode }, ['relay'], {
      logger: createLogger('error', 'test'),
      migrate: false,
    });
    const loggedOf = async () =>
      Number(((await t.db('event_logs').whereIn('trigger_id', ids).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);
    await until(async () => (await loggedOf()) >= ids.length, { timeoutMs: 60_000, message: `${ids.length} large events logged` });
    const logged = (await t.db('event_logs').whereIn('trigger_id', ids).select('id', 'trigger_id', 'payload')) as Array<{
      id: string;
      payload: string;
    }>;
    expect(logged).to.have.length(ids.length);
    for (const e of logged) expect((JSON.parse(e.payload) as { text: string }).text).to.have.length(PAYLOAD_CHARS);
    await until(() => logged.every((e) => reader.byEventId(e.id).length > 0), {
      timeoutMs: 60_000,
      message: 'every large event on Kafka',
    });
    for (const e of logged) expect((reader.byEventId(e.id)[0]!.value.payload as { tag: string }).tag).to.equal(tag);
    expect(await count(t.db, 'trigger_schedules', { status: 'pending' })).to.equal(0);
    // One fire_lags row per fire transaction: the rows past the payload bound went in a later one.
    expect(await count(t.db, 'fire_lags')).to.be.at.least(2);
  }

  describe('a payload whose Kafka message would be over the size Kafka takes is refused where it enters, and nothing is stored', () => {
    let webhook = '';
    const stored = async () =>
      Number(((await t.db('event_logs').where({ trigger_id: webhook }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n) +
      Number(((await t.db('outbox').where({ msg_key: webhook }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);
    const over = JSON.stringify({ text: 'x'.repeat(PAYLOAD_MAX_BYTES) });

    before(async () => {
      const res = await request(app)
        .post('/api/v1/triggers')
        .send({ name: 'sized', type: 'webhook', config: { endpoint: 'http://127.0.0.1:9/x', schema: {} } })
        .expect(201);
      webhook = res.body.id as string;
    });

    it('a webhook call: 413 naming the body, on the fast path and with an Idempotency-Key', async () => {
      for (const key of [undefined, 'sized-1']) {
        const r = request(app).post(`/api/v1/webhook/${webhook}`).set('content-type', 'application/json');
        const res = await (key ? r.set('Idempotency-Key', key) : r).send(over);
        expect(res.status, JSON.stringify(res.body).slice(0, 300)).to.equal(413);
        expect(res.headers['content-type']).to.match(/^application\/problem\+json/);
        expect(res.body.code).to.equal('PAYLOAD_TOO_LARGE');
        expect(res.body.errors[0].field).to.equal('body');
        expect(res.body.errors[0].message).to.include(String(PAYLOAD_MAX_BYTES));
      }
      // The limit is on the payload as stored and sent: a body well inside the request limit whose numbers
      // serialise longer (1e20 is written out in full) is refused too.
      const expanding = `[${Array.from({ length: 180_000 }, () => '1e20').join(',')}]`;
      expect(expanding.length).to.be.below(1_000_000);
      await request(app).post(`/api/v1/webhook/${webhook}`).set('content-type', 'application/json').send(expanding).expect(413);
      expect(await stored()).to.equal(0);
      // Just inside the limit: accepted, and Kafka takes its message.
      const inside = JSON.stringify({ text: 'x'.repeat(PAYLOAD_MAX_BYTES - 20) });
      const accepted = await request(app)
        .post(`/api/v1/webhook/${webhook}`)
        .set('content-type', 'application/json')
        .send(inside)
        .expect(202);
      const eventId = accepted.body.event_id as string;
      platform = await startPlatform(t.config, ['relay'], { logger: createLogger('error', 'test'), migrate: false });
      await until(() => reader.byEventId(eventId).length > 0, { timeoutMs: 30_000, message: 'the largest accepted payload on Kafka' });
      expect((reader.byEventId(eventId)[0]!.value.payload as { text: string }).text).to.have.length(PAYLOAD_MAX_BYTES - 20);
      await t.db('event_logs').where({ trigger_id: webhook }).delete();
    });

    it('a batch item: rejected on its own (207), the others accepted', async () => {
      const body = `{"events":[{"small":1},${over.slice(0, -2)}"}]}`;
      const res = await request(app).post(`/api/v1/webhook/${webhook}/batch`).set('content-type', 'application/json').send(body);
      expect(res.status, JSON.stringify(res.body).slice(0, 300)).to.equal(207);
      expect(res.body.accepted).to.equal(1);
      expect(res.body.results[1].status).to.equal('rejected');
      expect(res.body.results[1].errors[0].field).to.equal('/events/1');
      expect(Number(((await t.db('event_logs').where({ trigger_id: webhook }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n)).to.equal(
        1,
      );
    });

    it("a scheduled trigger's config.payload and a test run's payload: 400 naming the field", async () => {
      const big = { text: 'x'.repeat(PAYLOAD_MAX_BYTES) };
      const created = await request(app)
        .post('/api/v1/triggers')
        .send({ name: 'too-big', type: 'time_scheduled', config: { endpoint: 'http://127.0.0.1:9/x', delay_seconds: 60, payload: big } });
      expect(created.status).to.equal(400);
      expect(created.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['config.payload']);
      expect(await t.db('triggers').where({ name: 'too-big' }).first()).to.equal(undefined);
      const run = await request(app).post(`/api/v1/triggers/${webhook}/test`).send({ payload: big });
      expect(run.status).to.equal(400);
      expect(run.body.errors.map((e: { field: string }) => e.field)).to.deep.equal(['payload']);
    });
  });

  it('the claim brings a config over 16 KiB only by its size; the fire batch reads it afterwards and fires it with the small ones', async () => {
    const sizes = [10, CLAIM_CONFIG_MAX_BYTES + 4000, 20, 3 * CLAIM_CONFIG_MAX_BYTES];
    const ids = await dueTriggers(sizes, 'mixed');
    // What the claim statement itself returns for them (read in a transaction that is rolled back).
    const trx = await t.db.transaction();
    try {
      const [rows] = (await trx.raw(CLAIM_DUE_SQL, [100])) as unknown as [
        Array<{ trigger_id: string; config: string | null; config_bytes: number }>,
      ];
      const byId = new Map(rows.map((r) => [r.trigger_id, r]));
      for (const [i, chars] of sizes.entries()) {
        const row = byId.get(ids[i]!)!;
        expect(row, `claim row of trigger ${i}`).to.not.equal(undefined);
        if (chars > CLAIM_CONFIG_MAX_BYTES) {
          expect(row.config, `trigger ${i}: its config stays on the server`).to.equal(null);
          expect(Number(row.config_bytes)).to.be.above(chars);
        } else {
          expect((JSON.parse(row.config!) as { payload: { text: string } }).payload.text).to.have.length(chars);
        }
      }
    } finally {
      await trx.rollback();
    }
    await t.db('fire_lags').delete();
    platform = await startPlatform({ ...t.config, relayConcurrency: 1 }, ['relay'], {
      logger: createLogger('error', 'test'),
      migrate: false,
    });
    await untilLogged(t.db, ids, {
      timeoutMs: 30_000,
      message: 'all four logged',
    });
    const logged = (await t.db('event_logs').whereIn('trigger_id', ids).select('id', 'trigger_id', 'payload')) as Array<{
      id: string;
      trigger_id: string;
      payload: string;
    }>;
    for (const e of logged) {
      const i = ids.indexOf(e.trigger_id);
      expect((JSON.parse(e.payload) as { text: string }).text, `payload of trigger ${i}`).to.have.length(sizes[i]!);
    }
    await until(() => logged.every((e) => reader.byEventId(e.id).length > 0), { timeoutMs: 30_000, message: 'all four on Kafka' });
    expect(await count(t.db, 'fire_lags'), 'one fire transaction for the four').to.equal(1);
  });

  it('an outbox claim brings a message over 16 KiB only by its size; the publish batch reads it afterwards and sends it whole', async () => {
    const { webhook, ids } = await webhookEvents('outbox-sized', [10, OUTBOX_INLINE_MAX_BYTES + 1000, 20]);
    // What the claim statement itself returns for their outbox rows (in a transaction rolled back).
    const trx = await t.db.transaction();
    try {
      const { sql, values } = claimUnpublishedStatement(1000);
      const [rows] = (await trx.raw(sql, values)) as unknown as [Array<{ event_id: string; value: Buffer | null; value_bytes: number }>];
      const byEvent = new Map(rows.map((r) => [r.event_id, r]));
      expect(byEvent.get(ids[0]!)!.value, 'a small message comes with the claim').to.be.instanceOf(Buffer);
      expect(byEvent.get(ids[1]!)!.value, 'a large one stays on the server').to.equal(null);
      expect(Number(byEvent.get(ids[1]!)!.value_bytes)).to.be.above(OUTBOX_INLINE_MAX_BYTES);
    } finally {
      await trx.rollback();
    }
    platform = await startPlatform({ ...t.config, relayConcurrency: 1 }, ['relay'], {
      logger: createLogger('error', 'test'),
      migrate: false,
    });
    await until(() => ids.every((id) => reader.byEventId(id).length > 0), { timeoutMs: 30_000, message: 'the three on Kafka' });
    expect((reader.byEventId(ids[1]!)[0]!.value.payload as { text: string }).text).to.have.length(OUTBOX_INLINE_MAX_BYTES + 1000);
    await untilOutboxDone(webhook);
  });

  it('publishes an outbox of messages past 32 MiB in more than one batch, each message whole and on Kafka once', async () => {
    // More message bytes than one publish batch takes: one claim holds them all (under RELAY_BATCH_SIZE rows),
    // so only the byte bound can split them.
    const n = Math.ceil(OUTBOX_BATCH_MAX_BYTES / PAYLOAD_CHARS) + 4;
    const { webhook, ids } = await webhookEvents('outbox-bound', Array<number>(n).fill(PAYLOAD_CHARS));
    expect(await count(t.db, 'outbox', { msg_key: webhook })).to.equal(n);
    platform = await startPlatform({ ...t.config, relayConcurrency: 1 }, ['relay'], {
      logger: createLogger('error', 'test'),
      migrate: false,
    });
    await until(() => ids.every((id) => reader.byEventId(id).length > 0), { timeoutMs: 60_000, message: `the ${n} messages on Kafka` });
    for (const [i, id] of ids.entries()) {
      const copies = reader.byEventId(id);
      expect(copies, `event ${i}`).to.have.length(1);
      expect((copies[0]!.value.payload as { text: string }).text, `event ${i}`).to.have.length(PAYLOAD_CHARS);
    }
    await untilOutboxDone(webhook);
    // Each publish batch is one observation of the relay's batch-size histogram (kind "outbox").
    const batches = metricValue(await scrapeMetrics(platform.ports.relay), 'etp_relay_batch_size_count{kind="outbox"}');
    expect(batches, 'publish batches').to.be.at.least(2);
  });

  it('fires them all through the direct path, each logged once with its whole payload and on Kafka', async () => {
    await firesAll('direct', 'direct');
  });

  it('fires them all through the outbox (their messages queued in the same transaction), each logged once and on Kafka', async () => {
    await firesAll('outbox', 'outbox');
  });
});
