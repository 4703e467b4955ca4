import { expect } from 'chai';
import request from 'supertest';
import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { KafkaReader } from '../helpers/kafka';
import { until } from '../helpers/until';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { logOutboxInserts } from '../helpers/outbox-log';
import { ensureTopics } from '../../src/kafka/producer';

const TRIGGERS = 500;
const BATCHES = 5;
const PER_BATCH = 10; // 500 triggers × 50 events
const LEASE_MS = 1500;

/**
 * For every trigger, the first copy of each event must arrive after the first copies of all events with
 * lower outbox ids. Re-sends of an already seen event (after a crash) are skipped, not counted as disorder.
 */
function checkOrder(reader: KafkaReader, outboxIdOf: Map<string, number>): { violations: string[]; duplicates: number; checked: number } {
  const lastByTrigger = new Map<string, number>();
  const seen = new Set<string>();
  const violations: string[] = [];
  let duplicates = 0;
  let checked = 0;
  for (const m of reader.messages) {
    const eventId = m.value.event_id as string;
    const outboxId = outboxIdOf.get(eventId);
    if (outboxId === undefined) continue;
    if (seen.has(eventId)) {
      duplicates++;
      continue;
    }
    seen.add(eventId);
    checked++;
    const trigger = m.value.trigger_id as string;
    const last = lastByTrigger.get(trigger) ?? 0;
    if (outboxId < last) violations.push(`${trigger}: outbox id ${outboxId} after ${last}`);
    lastByTrigger.set(trigger, Math.max(last, outboxId));
  }
  return { violations, duplicates, checked };
}

/**
 * Scheduled events may reach Kafka straight from the fire transaction (RELAY_FIRE_MODE=direct) or through
 * the outbox, so they are checked by firing order itself: per trigger, first copies by rising scheduled_for.
 */
function checkScheduledOrder(reader: KafkaReader): { violations: string[]; checked: number } {
  const lastByTrigger = new Map<string, string>();
  const seen = new Set<string>();
  const violations: string[] = [];
  for (const m of reader.messages) {
    if (m.value.source !== 'scheduler' || seen.has(m.value.event_id as string)) continue;
    seen.add(m.value.event_id as string);
    const trigger = m.value.trigger_id as string;
    const at = m.value.scheduled_for as string;
    const last = lastByTrigger.get(trigger);
    if (last !== undefined && at <= last) violations.push(`${trigger}: ${at} after ${last}`);
    lastByTrigger.set(trigger, at);
  }
  return { violations, checked: seen.size };
}

async function insertWebhookTriggers(t: TestEnv, n: number): Promise<string[]> {
  const now = new Date();
  const config = JSON.stringify({
    endpoint: 'http://127.0.0.1:9/x',
    http_method: 'POST',
    headers: {},
    timeout_ms: 10000,
    retry: { max_attempts: 5, backoff_ms: 1000 },
    schema: { type: 'object' },
  });
  const rows = Array.from({ length: n }, (_, i) => ({
    id: randomUUID(),
    name: `ordered-${i}`,
    type: 'webhook',
    status: 'active',
    config,
    version: 1,
    created_at: now,
    updated_at: now,
  }));
  await t.db('triggers').insert(rows);
  return rows.map((r) => r.id);
}

/** Each trigger gets its batches one after another (its firing order); triggers run concurrently. */
async function fireAll(t: TestEnv, ids: string[], concurrency = 16): Promise<void> {
  const app = testApp(t);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < ids.length) {
        const id = ids[next++];
        for (let b = 0; b < BATCHES; b++) {
          const events = Array.from({ length: PER_BATCH }, (_, i) => ({ seq: b * PER_BATCH + i }));
          await request(app).post(`/api/v1/webhook/${id}/batch`).send({ events }).expect(202);
        }
      }
    }),
  );
}

describe('ordering: events of one trigger reach Kafka in firing order with many relays', function () {
  this.timeout(300_000);
  let t: TestEnv;
  let reader: KafkaReader;
  const procs: RoleProcess[] = [];

  beforeEach(async () => {
    t = await createTestEnv('ordering', { RELAY_LEASE_MS: String(LEASE_MS), RETENTION_SWEEP_INTERVAL: '1h', OUTBOX_ORDERING: 'on' });
    await ensureTopics(t.config.kafkaBrokers, [{ name: t.topic, partitions: 6 }]);
    reader = await new KafkaReader([t.topic]).start();
    inserts = await logOutboxInserts(t.db);
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGKILL')));
    await reader?.stop();
    await t?.cleanup();
  });

  // Every outbox row ever written (a published row is deleted), recorded as it is inserted.
  let inserts: Awaited<ReturnType<typeof logOutboxInserts>>;
  async function outboxIds(): Promise<Map<string, number>> {
    const rows = (await inserts.rows()).filter((r) => r.topic === t.topic);
    return new Map(rows.map((r) => [r.event_id, r.id]));
  }

  it('4 relays, 500 triggers × 50 webhook events plus fast crons: every trigger in outbox-id order', async () => {
    const ids = await insertWebhookTriggers(t, TRIGGERS);
    procs.push(...(await Promise.all([1, 2, 3, 4].map(() => spawnRole('relay', t.env)))));
    const crons = await Promise.all(
      [1, 2, 3].map(async (i) =>
        request(testApp(t))
          .post('/api/v1/triggers')
          .send({ name: `fast-cron-${i}`, type: 'cron_scheduled', config: { endpoint: 'http://127.0.0.1:9/x', cron: '* * * * * *' } })
          .expect(201),
      ),
    );
    await fireAll(t, ids);
    for (const c of crons) await request(testApp(t)).put(`/api/v1/triggers/${c.body.id}`).send({ status: 'inactive' }).expect(200);
    const expected = await outboxIds();
    expect(expected.size).to.be.at.least(TRIGGERS * BATCHES * PER_BATCH);
    await until(() => [...expected.keys()].every((id) => reader.byEventId(id).length > 0), {
      timeoutMs: 120_000,
      intervalMs: 250,
      message: 'all on Kafka',
    });
    const { violations, duplicates, checked } = checkOrder(reader, expected);
    const scheduled = checkScheduledOrder(reader);
    console.log(
      `      ${checked} events checked, ${violations.length} out of order, ${duplicates} re-sends; ${scheduled.checked} cron events, ${scheduled.violations.length} out of order`,
    );
    expect(violations.slice(0, 5)).to.deep.equal([]);
    expect(scheduled.checked).to.be.at.least(3);
    expect(scheduled.violations.slice(0, 5)).to.deep.equal([]);
    // Several relays really shared the work: more than one owner published.
    const owners = (await t.db('relay_leases').whereNotNull('owner').distinct('owner')) as unknown[];
    expect(owners.length).to.be.at.least(2);
  });

  it('stays in order while relays are killed and started, and no shard is unowned for more than two lease times', async () => {
    const ids = await insertWebhookTriggers(t, TRIGGERS);
    procs.push(...(await Promise.all([1, 2, 3].map(() => spawnRole('relay', t.env)))));
    // Watch the leases: the longest time any shard had no live owner.
    let watching = true;
    const unownedSince = new Map<number, number>();
    let worstGapMs = 0;
    const watcher = (async () => {
      while (watching) {
        const rows = (await t.db.raw('SELECT shard, owner IS NOT NULL AND expires_at > UTC_TIMESTAMP(3) AS live FROM relay_leases')) as [
          Array<{ shard: number; live: number }>,
        ];
        const now = Date.now();
        for (const r of rows[0]) {
          if (Number(r.live) === 1) unownedSince.delete(r.shard);
          else if (!unownedSince.has(r.shard)) unownedSince.set(r.shard, now);
          else worstGapMs = Math.max(worstGapMs, now - unownedSince.get(r.shard)!);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const chaos = (async () => {
      for (let round = 0; round < 4; round++) {
        await until(() => reader.messages.length > (round + 1) * 2000, { timeoutMs: 60_000, intervalMs: 100, message: 'progress' });
        const victim = procs.shift()!;
        await victim.kill('SIGKILL');
        procs.push(await spawnRole('relay', t.env));
      }
    })();
    await fireAll(t, ids);
    await chaos;
    const expected = await outboxIds();
    await until(() => [...expected.keys()].every((id) => reader.byEventId(id).length > 0), {
      timeoutMs: 120_000,
      intervalMs: 250,
      message: 'all on Kafka',
    });
    watching = false;
    await watcher;
    const { violations, duplicates, checked } = checkOrder(reader, expected);
    console.log(
      `      with 4 kill -9s: ${checked} events checked, ${violations.length} out of order, ${duplicates} re-sends, longest unowned shard ${worstGapMs} ms`,
    );
    expect(violations.slice(0, 5)).to.deep.equal([]);
    expect(worstGapMs).to.be.below(2 * LEASE_MS);
  });
});
