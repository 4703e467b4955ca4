import { expect } from 'chai';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { until } from '../helpers/until';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import { metricValue, scrapeMetrics } from '../helpers/metrics';
import { insertScheduledTriggers, untilLogged } from '../helpers/fixtures';
import { sleep } from '../../src/util';

/** A suite's test environment, made before its tests, and the platforms a test starts, stopped after it. */
function suiteWithPlatforms(label: string, overrides: Record<string, string>): { readonly t: TestEnv; running: Platform[] } {
  let t: TestEnv | undefined;
  const running: Platform[] = [];
  before(async () => {
    t = await createTestEnv(label, overrides);
  });
  afterEach(async () => {
    for (const p of running.splice(0)) await p.stop();
  });
  after(() => t?.cleanup());
  return {
    get t() {
      return t!;
    },
    running,
  };
}

/** A webhook trigger created through the API on `port`, any JSON object accepted: its id. */
async function createWebhookTrigger(port: number, name: string): Promise<string> {
  const created = await fetch(`http://127.0.0.1:${port}/api/v1/triggers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, type: 'webhook', config: { endpoint: 'http://127.0.0.1:9/x', schema: { type: 'object' } } }),
  });
  expect(created.status).to.equal(201);
  return ((await created.json()) as { id: string }).id;
}

/** One call of a webhook trigger through the API on `port`: the event id of the 202. */
async function callWebhook(port: number, triggerId: string, headers: Record<string, string> = {}): Promise<string> {
  const fired = await fetch(`http://127.0.0.1:${port}/api/v1/webhook/${triggerId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{"a":1}',
  });
  expect(fired.status).to.equal(202);
  return ((await fired.json()) as { event_id: string }).event_id;
}

/** An event log's firing and publishing times (undefined: no such event). */
async function eventTimes(db: TestEnv['db'], id: string): Promise<{ fired_at: Date; published_at: Date | null } | undefined> {
  return (await db('event_logs').where({ id }).first('fired_at', 'published_at')) as
    { fired_at: Date; published_at: Date | null } | undefined;
}

/*
 * A relay's publish lane that keeps finding its outbox empty polls less and less often, up to
 * SCHEDULER_INTERVAL. An API in the relay's own process wakes it when it commits webhook events, so they are
 * published at once; an API in another process (here another platform in the test's process, which shares
 * nothing with the relay's) leaves them to the relay's next poll. The polls here are a
 * minute apart (OUTBOX_POLL_INTERVAL 30 s, doubled after the first empty one), so which of the two published
 * an event cannot be mistaken.
 */
describe('relay wake-ups: webhook events and a quiet outbox', function () {
  this.timeout(120_000);
  const quiet = createLogger('error', 'test');
  const suite = suiteWithPlatforms('wakeups', { OUTBOX_POLL_INTERVAL: '30s', SCHEDULER_INTERVAL: '60s' });
  const { running } = suite;

  /** A webhook trigger created and called through the API on `port`: the event id of the 202. */
  const webhookEvent = async (port: number, headers: Record<string, string> = {}): Promise<string> =>
    callWebhook(port, await createWebhookTrigger(port, 'wake'), headers);

  const publishedAt = async (id: string): Promise<Date | null> => (await eventTimes(suite.t.db, id))?.published_at ?? null;

  it('publishes a webhook event at once when the API runs in the relay’s process', async () => {
    const p = await startPlatform(suite.t.config, ['api', 'relay'], { logger: quiet, migrate: false });
    running.push(p);
    const id = await webhookEvent(p.ports.api!);
    await until(async () => (await publishedAt(id)) !== null, { timeoutMs: 5000, message: 'published by the woken lane' });
  });

  it('publishes at once an event sent with an Idempotency-Key (its own transaction, not the group commit) when the API runs in the relay’s process', async () => {
    const p = await startPlatform(suite.t.config, ['api', 'relay'], { logger: quiet, migrate: false });
    running.push(p);
    const id = await webhookEvent(p.ports.api!, { 'idempotency-key': 'wake-1' });
    await until(async () => (await publishedAt(id)) !== null, { timeoutMs: 5000, message: 'published by the woken lane' });
  });

  it('leaves the event to the relay’s next poll when the API is another platform, as in another process (the control)', async () => {
    const relay = await startPlatform(suite.t.config, ['relay'], { logger: quiet, migrate: false });
    running.push(relay);
    const api = await startPlatform(suite.t.config, ['api'], { logger: quiet, migrate: false });
    running.push(api);
    const id = await webhookEvent(api.ports.api!);
    // Nothing wakes the relay: its lane 0 sleeps out the minute it chose after its first empty poll.
    const waited = await until(async () => (await publishedAt(id)) !== null, { timeoutMs: 5000, message: 'published' }).then(
      () => 'published',
      () => 'still queued',
    );
    expect(waited).to.equal('still queued');
    expect(await suite.t.db('outbox').where({ event_id: id }).count({ n: '*' }).first()).to.deep.equal({ n: 1 });
  });
});

/*
 * Idle relays take turns at the fire lane's probe (idleTurnWaitMs): with nothing due, relay k of N probes at
 * the start of idle intervals k, k + N, …, so the platform asks "is anything due?" once an idle interval,
 * as one relay does, however many relays run. Probes are counted by each relay's etp_relay_probes_total.
 */
describe('relay wake-ups: idle relays take turns at the fire probe', function () {
  this.timeout(120_000);
  const quiet = createLogger('error', 'test');
  const IDLE_MS = 200;
  // One lane per relay (no follower lanes' probes), leases refreshed every 250 ms so the relays count each other at once.
  const suite = suiteWithPlatforms('idleturns', { SCHEDULER_INTERVAL: `${IDLE_MS}ms`, RELAY_CONCURRENCY: '1', RELAY_LEASE_MS: '1000' });
  const { running } = suite;

  const scheduleProbes = async (relays: Platform[]) =>
    (
      await Promise.all(
        relays.map(async (r) => metricValue(await scrapeMetrics(r.ports.relay), 'etp_relay_probes_total{kind="schedules"}')),
      )
    ).reduce((a, b) => a + b, 0);

  /**
   * Three relays started; resolves once each has counted all three. The shard leases show it: a relay holds at
   * most its fair share, ceil(shards / live relays), of the count of its last refresh, so the first two (which
   * held more while they counted fewer) have given shards back and the third has taken its own.
   */
  async function threeRelays(): Promise<Platform[]> {
    for (let i = 0; i < 3; i++) running.push(await startPlatform(suite.t.config, ['relay'], { logger: quiet, migrate: false }));
    const fair = Math.ceil(suite.t.config.outboxShards / 3);
    await until(
      async () => {
        const held = (await suite.t
          .db('relay_leases')
          .whereNotNull('owner')
          .andWhere('expires_at', '>', suite.t.db.raw('UTC_TIMESTAMP(3)'))
          .groupBy('owner')
          .select('owner')
          .count({ n: '*' })) as Array<{ owner: string; n: number }>;
        return held.length === 3 && held.every((h) => Number(h.n) <= fair);
      },
      { message: 'the shards shared out among three relays' },
    );
    return running.slice();
  }

  it('three idle relays probe for due occurrences about as often as one relay does, not three times as often', async () => {
    const relays = await threeRelays();
    const before = await scheduleProbes(relays);
    const started = Date.now();
    await sleep(4000); // the measured interval: nothing is due, the relays only probe
    const probes = (await scheduleProbes(relays)) - before;
    const oneRelay = (Date.now() - started) / IDLE_MS; // one relay probes once an idle interval
    // Each on its own, three relays would probe about 3 × oneRelay times (60 here); by turns, about oneRelay.
    expect(probes, `probes in ${Date.now() - started} ms`).to.be.within(0.6 * oneRelay, 1.4 * oneRelay);
  });

  it('fires an occurrence that falls due unannounced while they idle within two idle intervals: their turns interleave', async () => {
    await threeRelays();
    const lags: number[] = [];
    for (let i = 0; i < 8; i++) {
      // Written at a random moment, due at once: found by whichever relay's turn comes next.
      await sleep(Math.random() * 3 * IDLE_MS);
      const [id] = await insertScheduledTriggers(suite.t.db, 1, { fireAt: new Date() });
      await untilLogged(suite.t.db, [id!], { message: 'fired', timeoutMs: 10_000 });
      const e = (await suite.t.db('event_logs').where({ trigger_id: id }).first('fired_at', 'scheduled_for')) as {
        fired_at: Date;
        scheduled_for: Date;
      };
      lags.push(e.fired_at.getTime() - e.scheduled_for.getTime());
    }
    // A probe once an idle interval (200 ms), then the claim. Turns that did not interleave (relays probing
    // together, every third interval) leave up to three intervals between probes, and the largest of eight
    // lags then exceeds two intervals (measured with every relay given rank 0, five runs: 422–603 ms; by
    // turns, three runs: 6–201 ms).
    expect(Math.max(...lags), `fired_at − scheduled_for (ms): ${lags.join(', ')}`).to.be.below(2 * IDLE_MS);
  });
});

/*
 * In unordered mode (OUTBOX_ORDERING=off) any relay may publish any outbox row, so idle relays take turns at
 * the outbox probe too: once its outbox is quiet, relay k of N probes at the start of idle intervals k, k + N,
 * …. (In ordered mode a relay publishes only the shards it leases, and each probes its own.)
 */
describe('relay wake-ups: idle relays take turns at the outbox probe in unordered mode', function () {
  this.timeout(120_000);
  const quiet = createLogger('error', 'test');
  const IDLE_MS = 200;
  // One lane per relay, the roster refreshed every 250 ms so the relays count each other at once. A relay
  // that published polls sooner for a while, up to 4 × OUTBOX_POLL_INTERVAL: here that is the idle interval,
  // so it is back at its turns a few polls after each event.
  const suite = suiteWithPlatforms('outboxturns', {
    OUTBOX_ORDERING: 'off',
    OUTBOX_POLL_INTERVAL: `${IDLE_MS / 4}ms`,
    SCHEDULER_INTERVAL: `${IDLE_MS}ms`,
    RELAY_CONCURRENCY: '1',
    RELAY_LEASE_MS: '1000',
  });
  const { running } = suite;

  const outboxProbes = async (relays: Platform[]) =>
    (
      await Promise.all(relays.map(async (r) => metricValue(await scrapeMetrics(r.ports.relay), 'etp_relay_probes_total{kind="outbox"}')))
    ).reduce((a, b) => a + b, 0);

  /**
   * Three relays started; resolves once each has counted all three: every relay's heartbeat (written in the
   * round trip that counts the live relays) is later than the third relay's first one.
   */
  async function threeRelays(): Promise<Platform[]> {
    for (let i = 0; i < 3; i++) running.push(await startPlatform(suite.t.config, ['relay'], { logger: quiet, migrate: false }));
    const beats = async () =>
      (await suite.t
        .db('relay_heartbeats')
        .where('seen_at', '>', suite.t.db.raw('UTC_TIMESTAMP(3) - INTERVAL 1 SECOND'))
        .select('seen_at')) as Array<{
        seen_at: Date;
      }>;
    await until(async () => (await beats()).length === 3, { message: 'three relays in the roster' });
    const [[{ now }]] = (await suite.t.db.raw('SELECT UTC_TIMESTAMP(3) AS now')) as [[{ now: Date }]];
    await until(async () => (await beats()).every((b) => b.seen_at.getTime() > now.getTime()), {
      message: 'every relay counted the three',
    });
    return running.slice();
  }

  it('three idle relays probe the outbox about as often as one relay does, and an event written meanwhile is published within two idle intervals', async () => {
    const relays = await threeRelays();
    const before = await outboxProbes(relays);
    const started = Date.now();
    await sleep(4000); // the measured interval: the outbox is empty, the relays only probe
    const probes = (await outboxProbes(relays)) - before;
    const oneRelay = (Date.now() - started) / IDLE_MS; // one quiet relay probes once an idle interval
    // Each on its own, three relays would probe about 3 × oneRelay times (60 here); by turns, about oneRelay.
    expect(probes, `outbox probes in ${Date.now() - started} ms`).to.be.within(0.6 * oneRelay, 1.4 * oneRelay);
    // An API in another process (another platform here) writes events at random moments: whichever relay's
    // turn comes next publishes each.
    const api = await startPlatform(suite.t.config, ['api'], { logger: quiet, migrate: false });
    running.push(api);
    const triggerId = await createWebhookTrigger(api.ports.api!, 'turns');
    const lags: number[] = [];
    for (let i = 0; i < 6; i++) {
      await sleep(Math.random() * 3 * IDLE_MS);
      const eventId = await callWebhook(api.ports.api!, triggerId);
      let row: Awaited<ReturnType<typeof eventTimes>>;
      await until(
        async () => {
          row = await eventTimes(suite.t.db, eventId);
          return !!row?.published_at;
        },
        { timeoutMs: 10_000, message: 'published' },
      );
      lags.push(row!.published_at!.getTime() - row!.fired_at.getTime());
      // Quiet again before the next one: the relay that published it polls sooner for a few polls (its back-off
      // doubles from OUTBOX_POLL_INTERVAL back to the idle interval) and takes no turns meanwhile.
      await sleep(4 * IDLE_MS);
    }
    // A probe once an idle interval (200 ms) across the three, then the claim and Kafka's acknowledgement.
    // Turns that did not interleave (every relay given rank 0: all three probe every third interval) left
    // lags of 115–574 ms, and the test failed in both runs; by turns, two runs: 22–197 ms.
    expect(Math.max(...lags), `published_at − fired_at (ms): ${lags.join(', ')}`).to.be.below(2 * IDLE_MS);
  });
});
