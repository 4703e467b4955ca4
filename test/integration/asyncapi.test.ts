import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import YAML from 'yaml';
import { testApp } from '../helpers/app';
import { createTestEnv, REPO_ROOT, type TestEnv } from '../helpers/env';
import { KafkaReader, type ReadMessage } from '../helpers/kafka';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { Receiver } from '../helpers/receiver';
import { until } from '../helpers/until';

/** asyncapi.yaml: the Kafka message contract (AsyncAPI 3.0; its schemas are JSON Schema draft 7). */
const ASYNCAPI = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, 'asyncapi.yaml'), 'utf8'));

/** Channel address (with the test's topic in place of trigger-events) → the validators of its message. */
function contract(topic: string) {
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  ajv.addSchema({ components: ASYNCAPI.components }, 'asyncapi');
  const compile = (ref: string) => ajv.compile({ $ref: `asyncapi${ref}` });
  const byAddress = new Map<
    string,
    { key: ReturnType<typeof compile>; headers: ReturnType<typeof compile>; payload: ReturnType<typeof compile> }
  >();
  for (const channel of Object.values(ASYNCAPI.channels) as Array<{ address: string; messages: Record<string, { $ref: string }> }>) {
    const [message] = Object.values(channel.messages);
    const m = message.$ref.replace(/^#\/components\/messages\//, '');
    const msg = ASYNCAPI.components.messages[m];
    byAddress.set(channel.address.replace(/^trigger-events/, topic), {
      key: compile(msg.bindings.kafka.key.$ref),
      headers: compile(msg.headers.$ref),
      payload: compile(msg.payload.$ref),
    });
  }
  return byAddress;
}

describe('Kafka messages match asyncapi.yaml', function () {
  this.timeout(120_000);
  let t: TestEnv;
  let receiver: Receiver;
  let reader: KafkaReader;
  const procs: RoleProcess[] = [];

  before(async () => {
    t = await createTestEnv('asyncapi', { DELIVERY_CIRCUIT_FAILURES: '100' });
    receiver = await new Receiver().start();
    // /fail answers 500 (a retry, then a dead letter); everything else 200.
    receiver.respond = (r) => ({ status: r.path === '/fail' ? 500 : 200 });
    reader = await new KafkaReader([t.topic, `${t.topic}.retry`, `${t.topic}.dlq`]).start();
  });
  after(async () => {
    for (const p of procs) await p.kill();
    await reader?.stop();
    await receiver?.stop();
    await t?.cleanup();
  });

  it('validates a real message of every source and every topic (key, headers, payload)', async () => {
    const app = testApp(t);
    const create = async (body: Record<string, unknown>) =>
      (await request(app).post('/api/v1/triggers').send(body).expect(201)).body as { id: string };
    const webhook = await create({
      name: 'failing',
      type: 'webhook',
      config: { endpoint: receiver.url('/fail'), retry: { max_attempts: 2, backoff_ms: 10 }, schema: { type: 'object' } },
    });
    const interval = await create({
      name: 'tick',
      type: 'interval_scheduled',
      config: { endpoint: receiver.url('/ok'), interval_seconds: 1 },
    });
    const fired = (await request(app).post(`/api/v1/webhook/${webhook.id}`).send({ order: 1 }).expect(202)).body.event_id as string;
    const test = (
      await request(app)
        .post(`/api/v1/triggers/${interval.id}/test`)
        .send({ payload: { dry: true } })
        .expect(202)
    ).body.event_id as string;
    const unsaved = (
      await request(app)
        .post('/api/v1/triggers/test')
        .send({ type: 'time_scheduled', config: { endpoint: receiver.url('/ok'), delay_seconds: 0, payload: { hi: 1 } } })
        .expect(202)
    ).body.event_id as string;
    procs.push(await spawnRole('relay', t.env), await spawnRole('worker', t.env));
    // Only an event that has ended can be replayed: wait for the webhook event's end (its endpoint fails).
    await until(async () => ['success', 'failure'].includes((await request(app).get(`/api/v1/events/${fired}`)).body.execution_status), {
      timeoutMs: 60_000,
      message: 'the webhook event ended',
    });
    const replay = (await request(app).post(`/api/v1/events/${fired}/replay`).expect(202)).body.event_id as string;

    const on = (topic: string, pred: (m: ReadMessage) => boolean) => reader.messages.some((m) => m.topic === topic && pred(m));
    await until(
      () =>
        [fired, test, unsaved, replay].every((id) => reader.byEventId(id).length > 0) &&
        on(t.topic, (m) => m.value.source === 'scheduler') &&
        on(`${t.topic}.retry`, (m) => m.value.event_id === fired) &&
        on(`${t.topic}.dlq`, (m) => m.value.event_id === fired),
      { timeoutMs: 60_000 },
    );

    const validators = contract(t.topic);
    const seen = new Set<string>();
    for (const m of reader.messages) {
      const v = validators.get(m.topic);
      expect(v, m.topic).to.not.equal(undefined);
      const where = `${m.topic} ${JSON.stringify(m.value)}`;
      expect(v!.key(m.key), `key of ${where}: ${JSON.stringify(v!.key.errors)}`).to.equal(true);
      expect(v!.headers(m.headers), `headers of ${where}: ${JSON.stringify(v!.headers.errors)}`).to.equal(true);
      expect(v!.payload(m.value), `payload of ${where}: ${JSON.stringify(v!.payload.errors)}`).to.equal(true);
      seen.add(`${m.topic.slice(t.topic.length) || 'main'}:${String(m.value.source)}`);
    }
    expect([...seen]).to.include.members([
      'main:webhook',
      'main:scheduler',
      'main:manual-test',
      'main:replay',
      '.retry:webhook',
      '.dlq:webhook',
    ]);

    // The key: the trigger id, or the event id of an unsaved test run (it has no trigger).
    expect(reader.byEventId(fired)[0].key).to.equal(webhook.id);
    expect(reader.byEventId(unsaved)[0].key).to.equal(unsaved);
    expect(reader.byEventId(unsaved)[0].value.trigger_id).to.equal(null);
  });
});
