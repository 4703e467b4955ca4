import { expect } from 'chai';
import request from 'supertest';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { until } from '../helpers/until';
import { count } from '../helpers/fixtures';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import type { Config } from '../../src/config';

/**
 * Payloads near the API's body limit, many of them due together: the fire batch that logs them (and, in
 * outbox mode, queues their messages) holds more text than the server's max_allowed_packet. Before the
 * statements and round trips were cut by size (db/packets.ts), such a batch was refused on every retry: the
 * occurrences never fired, and the direct path produced the batch to Kafka again on each attempt.
 */
describe('large payloads: a fire batch larger than max_allowed_packet', function () {
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
    // Enough triggers that their events' text is well past the packet limit (one lane claims them all).
    triggersPerBatch = Math.ceil(Number(row.p) / PAYLOAD_CHARS) + 4;
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
  async function bigTriggers(n: number, tag: string): Promise<string[]> {
    const runAt = new Date(Date.now() + 60_000).toISOString();
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const payload = { tag, i, text: 'x'.repeat(PAYLOAD_CHARS) };
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

  async function firesAll(mode: Config['relayFireMode'], tag: string): Promise<void> {
    const ids = await bigTriggers(triggersPerBatch, tag);
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
  }

  it('fires them all through the direct path, each logged once with its whole payload and on Kafka', async () => {
    await firesAll('direct', 'direct');
  });

  it('fires them all through the outbox (their messages queued in the same transaction), each logged once and on Kafka', async () => {
    await firesAll('outbox', 'outbox');
  });
});
