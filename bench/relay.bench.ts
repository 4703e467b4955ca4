/**
 * The relay benchmark (`npm run bench -- relay [--quick]`). Each phase in its own fresh database
 * and topic, dropped afterwards:
 *   (a) database-only ceiling: the relay's own publish lanes (src/relay/publisher.ts) claiming and marking
 *       500-row outbox batches with Kafka left out, 1 and 4 lanes at once;
 *   (b) real relay processes (`node dist/main.js relay`) publishing a pre-filled outbox to Kafka with
 *       delivery reports, 1 and 4 relays;
 *   (c) burst: time triggers all due at one instant, relays already running;
 *   (d) steady: a fixed rate of due triggers for a while; fire-lag percentiles.
 * Options: --quick (smoke run), --n=, --burst=, --rate=, --seconds=, --relays= (for b's second run, c, d),
 * --only=a,b,c,d,e, --env=K=V,… (every relay), --many-env=K=V,… (the runs with several relays only),
 * --cpu-prof=<dir> (relays run with `node --cpu-prof`; each writes its profile to <dir> when it stops).
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { ensureShardFences, insertOutbox } from '../src/db/outbox';
import { Lifecycle } from '../src/events';
import { OutboxPublisher, ShardBackoff, type PublishLane } from '../src/relay/publisher';
import { insertEvents, type EventInsert } from '../src/db/events';
import { eventMessage, toKafka } from '../src/kafka/message';
import { EventProducer, ensureTopics } from '../src/kafka/producer';
import { withDbRetry } from '../src/util';
import type { Db } from '../src/db/knex';
import { createMultiStatementPool, type MultiPool } from '../src/db/multi';
import type { Knex } from 'knex';
import { insertScheduledTriggers } from '../test/helpers/fixtures';
import type { RoleProcess } from '../test/helpers/proc';
import {
  BenchReader,
  CpuMeter,
  cpuProfArgs,
  fmtCpuPerEvent,
  createBenchEnv,
  fmtInt,
  fmtMs,
  log,
  machineFacts,
  envArg,
  intArg,
  listArg,
  Live,
  numArg,
  parseArgs,
  runBench,
  progress,
  round,
  servicePids,
  sleep,
  summarize,
  table,
  topicMessageCount,
  Watermarks,
  waitFor,
  writeResults,
  type BenchEnv,
  type CpuUse,
  type Summary,
  spawnRoles,
  stopRoles,
  insertTriggersAt,
} from './lib';

const args = parseArgs();
const QUICK = args.flags.has('quick');
const KEEP = args.flags.has('keep'); // keep each phase's database and topic for inspection
const N = intArg(args, 'n', QUICK ? 20_000 : 200_000);
const BURST = intArg(args, 'burst', QUICK ? 5_000 : 50_000);
const RATE = intArg(args, 'rate', 2_000);
const SECONDS = numArg(args, 'seconds', QUICK ? 10 : 60);
const MANY = intArg(args, 'relays', 4);
const KEYS = intArg(args, 'keys', 1000); // distinct triggers (message keys) in a pre-filled outbox
const BATCH = intArg(args, 'batch', 500); // the target is stated for batches of 500; --batch is for tuning runs
const ONLY = new Set(listArg(args, 'only', 'a,b,c,d,e'));
const CPU_PROF_DIR = args.values.get('cpu-prof');
/** `--env=OUTBOX_ORDERING=off,OUTBOX_SHARDS=16`: extra settings for the relays (and this process's view of them). */
const EXTRA_ENV = envArg(args, 'env');
const RELAY_ENV: Record<string, string> = { RELAY_BATCH_SIZE: String(BATCH), ...EXTRA_ENV };
/**
 * `--many-env=RELAY_CONCURRENCY=1`: settings for the runs with several relays only (b's second run, c, d), so
 * one run compares one relay as it comes with several relays sharing a host as they would be configured.
 */
const MANY_ENV = envArg(args, 'many-env');

const TARGET = { eventsPerSecond: 25_000, ratio: 0.8, burstMs: 3_000, steadyP99Ms: 250, steadyP50Ms: 50 };

// ------------------------------------------------------------------------------------------- fixtures

/** How long starting relay processes took in this run (to place the start instant just after it). */
let relaySpawnMs: number | null = null;

/** Measured outbox fill rate of this run (used to place the start instant after the fill); conservative before the first. */

/** A realistic scheduler event (≈300-byte Kafka value) for a pre-filled outbox. */
function sampleEvent(triggerId: string, at: Date, i: number): EventInsert {
  return {
    id: randomUUID(),
    trigger_id: triggerId,
    trigger_type: 'time_scheduled',
    source: 'scheduler',
    is_test_run: false,
    payload: { order_id: `ord_${i}`, amount_cents: 1000 + (i % 9000) },
    scheduled_for: at,
    fired_at: at,
  };
}

/**
 * Fills event_logs + outbox as the product writes them (one transaction per chunk, same insert code),
 * with a chosen available_at. Two writers in parallel. Returns rows/s and the mean Kafka value size.
 */
async function fillOutbox(e: BenchEnv, n: number, availableAt: Date): Promise<{ seconds: number; valueBytes: number }> {
  const triggers = Array.from({ length: KEYS }, () => randomUUID());
  const chunk = 1000;
  let next = 0;
  let done = 0;
  let bytes = 0;
  const t0 = performance.now();
  const stop = progress(() => `filling outbox ${fmtInt(done)} / ${fmtInt(n)}`);
  try {
    const writer = async () => {
      for (;;) {
        const start = next;
        if (start >= n) return;
        next += chunk;
        const now = new Date();
        const events = Array.from({ length: Math.min(chunk, n - start) }, (_, j) =>
          sampleEvent(triggers[(start + j) % triggers.length]!, now, start + j),
        );
        const rows = events.map((ev) => ({ event_id: ev.id, message: toKafka(e.topic, eventMessage(ev)), available_at: availableAt }));
        for (const r of rows) bytes += r.message.value.length;
        const write = async (q: Knex.Transaction) => {
          await insertEvents(q, events, now);
          await insertOutbox(q, rows, now);
        };
        await withDbRetry(() => e.db.transaction(write));
        done += events.length;
      }
    };
    await Promise.all([writer(), writer()]);
  } finally {
    stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, valueBytes: Math.round(bytes / n) };
}

/**
 * Writes the fill's dirty pages out before a timed phase starts. Otherwise MariaDB's page cleaner flushes
 * them (at innodb_io_capacity) during the phase that follows, and the same run repeated moved by up to 60 %
 * depending on what the phase before it had written. FLUSH TABLES … FOR EXPORT flushes a table's pages
 * and returns; UNLOCK TABLES lets writes in again.
 */
async function settleTables(db: Db, tables: string[]): Promise<void> {
  await withDbRetry(async () => {
    const conn = await db.client.acquireConnection();
    try {
      await db.raw('FLUSH TABLES ?? FOR EXPORT', [tables]).connection(conn);
      await db.raw('UNLOCK TABLES').connection(conn);
    } finally {
      await db.client.releaseConnection(conn);
    }
  });
}

/** insertTriggersAt with a progress line: the steady phase inserts its triggers up front. */
async function insertTriggersWithProgress(db: Db, fireTimes: number[]): Promise<void> {
  let done = 0;
  const stop = progress(() => `inserting triggers ${fmtInt(done)} / ${fmtInt(fireTimes.length)}`);
  try {
    await insertTriggersAt(db, fireTimes, (n) => (done = n));
  } finally {
    stop();
  }
}

async function countUnpublished(db: Db): Promise<number> {
  const [rows] = (await db.raw('SELECT COUNT(*) AS n FROM outbox WHERE published <> 1')) as [Array<{ n: number }>];
  return Number(rows[0]?.n ?? 0);
}

/** Whether k relays hold every shard's lease, each at most its fair share ceil(shards / k). */
async function leasesSettled(db: Db, k: number, shards: number): Promise<boolean> {
  const [rows] = (await db.raw(
    'SELECT owner, COUNT(*) AS n FROM relay_leases WHERE owner IS NOT NULL AND expires_at > UTC_TIMESTAMP(3) GROUP BY owner',
  )) as [Array<{ owner: string; n: number }>];
  const held = rows.reduce((sum, r) => sum + Number(r.n), 0);
  return rows.length === k && held === shards && rows.every((r) => Number(r.n) <= Math.ceil(shards / k));
}

/** What an interrupted run must clean up: relay processes and phase environments still alive. */
const live = new Live();

function spawnRelays(e: BenchEnv, k: number, extra: Record<string, string> = {}): Promise<RoleProcess[]> {
  return spawnRoles('relay', { ...e.env, ...RELAY_ENV, ...(k > 1 ? MANY_ENV : {}), ...extra }, k, live.procs, cpuProfArgs(CPU_PROF_DIR));
}

function stopRelays(procs: RoleProcess[]): Promise<void> {
  return stopRoles(procs, live.procs);
}

function meterFor(relays: () => RoleProcess[]): CpuMeter {
  const svc = servicePids();
  return new CpuMeter(() => ({
    relays: relays().map((p) => p.child.pid ?? 0),
    mariadb: svc.mysqld ? [svc.mysqld] : [],
    kafka: svc.kafka ? [svc.kafka] : [],
    bench: [process.pid],
  }));
}

async function withEnv<T>(label: string, fn: (e: BenchEnv) => Promise<T>): Promise<T> {
  return live.withEnv(await createBenchEnv(label, RELAY_ENV), KEEP, fn, '    ');
}

/** Throughput samples: (seconds since start, rows done) every ~second, to see whether a run slows down as it goes. */
class Timeline {
  readonly points: Array<[number, number]> = [];
  private last = -Infinity;
  constructor(private readonly t0: number) {}
  add(done: number): void {
    const t = (performance.now() - this.t0) / 1000;
    if (t - this.last >= 1) {
      this.points.push([round(t, 2), done]);
      this.last = t;
    }
  }
  /** Rows/s over the first and the second half of the run. */
  halves(total: number, seconds: number): [number, number] {
    const mid = this.points.find(([, d]) => d >= total / 2);
    if (!mid || mid[0] <= 0 || seconds <= mid[0]) return [NaN, NaN];
    return [mid[1] / mid[0], (total - mid[1]) / (seconds - mid[0])];
  }
}

// -------------------------------------------------------------------------------------------- phases

interface CeilingResult {
  claimers: number;
  /** true: the ordered claim (claimUnpublishedInShards over disjoint shard sets), false: claimUnpublished */
  ordered: boolean;
  rows: number;
  fillSeconds: number;
  valueBytes: number;
  seconds: number;
  rowsPerSecond: number;
  firstHalfRowsPerSecond: number;
  secondHalfRowsPerSecond: number;
  batchMs: Summary;
  cpu: CpuUse;
  timeline: Array<[number, number]>;
}

/**
 * The relay's own publish lanes (src/relay/publisher.ts: OutboxPublisher, PublishLane), run in this process
 * with `producer` in place of Kafka's: `lanes` lanes of one relay that holds every shard in ordered mode
 * (the lease check left out: it answers from a fixed set), claiming as the relay's lanes do
 * (shard % lanes = lane). Throws when a publish fails, as a bench must not measure a half-failed run.
 */
/** `script`: the relay's multi-statement connections (its publish path); without them, knex's statement per round trip. */
function publishLanes(
  e: BenchEnv,
  lanes: number,
  ordered: boolean,
  producer: Pick<EventProducer, 'publish'>,
  script: MultiPool | null = null,
): PublishLane[] {
  const events = new Lifecycle();
  events.onEvent('relay:publish_failed', ({ count, error }) => {
    throw new Error(`publish failed for ${count} rows: ${error}`);
  });
  const allShards = Array.from({ length: e.config.outboxShards }, (_, s) => s);
  const publisher = new OutboxPublisher({
    db: e.db,
    producer,
    config: { relayBatchSize: BATCH },
    events,
    ordering: ordered
      ? {
          leases: { owned: () => allShards, verify: (_trx, shards) => Promise.resolve(shards), ours: () => allShards },
          backoff: new ShardBackoff(),
        }
      : undefined,
    script,
  });
  return Array.from({ length: lanes }, (_, i) => publisher.lane(i, lanes));
}

/** A producer that acknowledges every message at once: the ceiling's stand-in for Kafka. */
const NO_KAFKA: Pick<EventProducer, 'publish'> = { publish: (messages) => Promise.resolve(messages.map(() => null)) };

/**
 * (a) The database-only ceiling: the relay's own publish lanes (claim, mark, commit: the relay's statements
 * in the relay's transaction) with Kafka left out, 1 and 4 lanes at once.
 */
async function ceiling(claimers: number, ordered = false): Promise<CeilingResult> {
  return withEnv(`ceil${claimers}${ordered ? 'o' : ''}`, async (e) => {
    log(`(a) ceiling${ordered ? ' (ordered claim)' : ''}, ${claimers} claimer(s): filling ${fmtInt(N)} outbox rows`);
    const fill = await fillOutbox(e, N, new Date(Date.now() - 1000));
    if (ordered) await ensureShardFences(e.db, e.config.outboxShards); // as the relays keep them
    await settleTables(e.db, ['outbox', 'event_logs']);
    let done = 0;
    const batchMs: number[] = [];
    const meter = meterFor(() => []).begin();
    const t0 = performance.now();
    const timeline = new Timeline(t0);
    const stop = progress(() => `claimed+marked ${fmtInt(done)} / ${fmtInt(N)}`);
    // The relay's own path: its multi-statement connections, one per lane.
    const script = createMultiStatementPool(e.env.DATABASE_URL!, claimers);
    const lanes = publishLanes(e, claimers, ordered, NO_KAFKA, script);
    try {
      await Promise.all(
        Array.from({ length: claimers }, async (_, i) => {
          // Ordered: lane i claims the shards s ≡ i (mod claimers), as a relay's lanes (or relays with their fair
          // share of leases) would.
          const lane = lanes[i]!;
          for (;;) {
            const b0 = performance.now();
            const n = (await withDbRetry(() => lane.publish())).claimed;
            if (n === 0) return;
            batchMs.push(performance.now() - b0);
            done += n;
            timeline.add(done);
          }
        }),
      );
    } finally {
      stop();
      await script.end();
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = meter.end();
    const left = await countUnpublished(e.db);
    if (left !== 0 || done !== N) throw new Error(`ceiling: ${left} rows left unpublished, ${done} claimed of ${N}`);
    const [h1, h2] = timeline.halves(N, seconds);
    return {
      claimers,
      ordered,
      rows: N,
      fillSeconds: round(fill.seconds, 2),
      valueBytes: fill.valueBytes,
      seconds: round(seconds, 3),
      rowsPerSecond: Math.round(N / seconds),
      firstHalfRowsPerSecond: Math.round(h1),
      secondHalfRowsPerSecond: Math.round(h2),
      batchMs: roundSummary(summarize(batchMs)),
      cpu,
      timeline: timeline.points,
    };
  });
}

interface PublishResult {
  relays: number;
  /** OUTBOX_ORDERING of the relays */
  ordered: boolean;
  rows: number;
  fillSeconds: number;
  relaysUpBeforeStartMs: number;
  seconds: number;
  eventsPerSecond: number;
  firstHalfEventsPerSecond: number;
  secondHalfEventsPerSecond: number;
  /** The first batch's published_at after the start instant: how long the first claim took to come back. */
  firstPublishedAtMs: number;
  lastPublishedAtMs: number;
  onKafka: number;
  cpu: CpuUse;
  /** [ms after the start instant, rows] per published batch (rows of one batch share a published_at). */
  batches: Array<[number, number]>;
  timeline: Array<[number, number]>;
  warnings: string[];
}

/** (b) Real relay processes publishing a pre-filled outbox to Kafka, from the instant the rows become available. */
async function publish(k: number, ordered = orderedRelays): Promise<PublishResult> {
  return withEnv(`pub${k}${ordered ? '' : 'u'}`, async (e) => {
    const warnings: string[] = [];
    // The whole outbox is written first (the product's insert code, committed chunks), then set aside
    // under another name while the relays start and settle their shard leases on an empty outbox. The
    // start is one atomic RENAME that swaps the filled table in: every row becomes ready at once, as a
    // burst of webhooks would leave them (published = 0: no promotion from a waiting state is measured).
    log(`(b) publish, ${k} relay(s)${ordered ? '' : ', unordered'}: filling ${fmtInt(N)} outbox rows`);
    const fill = await fillOutbox(e, N, new Date(Date.now() - 1000));
    // Fresh statistics, as a long-lived outbox has: without this the renamed-in table kept statistics
    // taken while it was nearly empty, and the run read ~1M rows/s in table scans (half the throughput).
    // The relays add each shard's fence row at start (ensureShardFences), but they start on the empty
    // table that is swapped out: the filled one gets its fences here, as a long-lived outbox has them.
    await ensureShardFences(e.db, e.config.outboxShards);
    await e.db.raw('ANALYZE TABLE outbox');
    await settleTables(e.db, ['outbox', 'event_logs']);
    await e.db.raw('RENAME TABLE outbox TO outbox_filled');
    await e.db.raw('CREATE TABLE outbox LIKE outbox_filled');
    log(`    fill took ${fill.seconds.toFixed(1)} s; starting ${k} relay(s)`);
    const s0 = Date.now();
    const relays = await spawnRelays(e, k, { OUTBOX_ORDERING: ordered ? 'on' : 'off' });
    relaySpawnMs = Math.max(relaySpawnMs ?? 0, Date.now() - s0);
    try {
      if (ordered) {
        log(`    ${k} relay(s) started in ${Date.now() - s0} ms; waiting for the ${e.config.outboxShards} shard leases to spread evenly`);
        await waitFor(() => leasesSettled(e.db, k, e.config.outboxShards), {
          timeoutMs: 60_000,
          intervalMs: 100,
          what: 'the shard leases to settle',
        });
      }
      // The Kafka topic exists now (created by the relays): good to count messages on later.
      const meter = meterFor(() => relays);
      meter.begin();
      const start = new Date();
      const t0 = performance.now();
      await e.db.raw('RENAME TABLE outbox TO outbox_empty, outbox_filled TO outbox');
      const upMs = start.getTime() - s0;
      const timeline = new Timeline(t0);
      let left = N;
      const stop = progress(() => `published ${fmtInt(N - left)} / ${fmtInt(N)}`);
      // Progress comes from the topic's watermarks, not from a COUNT(*) over the unpublished rows: that
      // count read up to 200k index entries per poll, database work that showed up in the relays' figures.
      // Only once every message is on Kafka does the database say when the last batch was marked (a cheap
      // count by then: at most a few batches are left).
      const wm = await new Watermarks(e.topic, e.config.kafkaPartitions).connect();
      try {
        await waitFor(
          async () => {
            left = Math.max(0, N - (await wm.count()));
            timeline.add(N - left);
            return left === 0;
          },
          { timeoutMs: 30 * 60_000, intervalMs: 20, what: 'every message on Kafka' },
        );
        await waitFor(async () => (await countUnpublished(e.db)) === 0, { timeoutMs: 60_000, intervalMs: 5, what: 'the outbox to drain' });
      } finally {
        stop();
        await wm.close();
      }
      const seconds = (performance.now() - t0) / 1000;
      const cpu = meter.end();
      // A published row leaves the outbox; its event log keeps the time.
      const [[span]] = (await e.db.raw('SELECT MIN(published_at) AS first, MAX(published_at) AS last FROM event_logs')) as [
        [{ first: Date; last: Date }],
      ];
      const onKafka = await topicMessageCount(e.topic, e.config.kafkaPartitions);
      // Every batch marks its rows with one published_at: the batches' times and sizes, for the raw figures.
      const [batchRows] = (await e.db.raw(
        'SELECT published_at AS t, COUNT(*) AS n FROM event_logs WHERE published_at IS NOT NULL GROUP BY published_at ORDER BY published_at',
      )) as [Array<{ t: Date; n: number }>];
      const batches = batchRows.map((r) => [r.t.getTime() - start.getTime(), Number(r.n)] as [number, number]);
      if (onKafka < N) warnings.push(`only ${onKafka} of ${N} messages on the topic`);
      const [h1, h2] = timeline.halves(N, seconds);
      return {
        relays: k,
        ordered,
        rows: N,
        fillSeconds: round(fill.seconds, 2),
        relaysUpBeforeStartMs: upMs,
        seconds: round(seconds, 3),
        eventsPerSecond: Math.round(N / seconds),
        firstHalfEventsPerSecond: Math.round(h1),
        secondHalfEventsPerSecond: Math.round(h2),
        firstPublishedAtMs: span.first.getTime() - start.getTime(),
        lastPublishedAtMs: span.last.getTime() - start.getTime(),
        onKafka,
        cpu,
        timeline: timeline.points,
        batches,
        warnings,
      };
    } finally {
      await stopRelays(relays);
    }
  });
}

interface LagRows {
  fireLagMs: Summary;
  publishLagMs: Summary;
  events: number;
}

/** fired_at − scheduled_for and published_at − scheduled_for of every event log. */
async function eventLags(db: Db): Promise<LagRows> {
  const [rows] = (await db.raw(
    `SELECT TIMESTAMPDIFF(MICROSECOND, scheduled_for, fired_at) AS fire_us,
            TIMESTAMPDIFF(MICROSECOND, scheduled_for, published_at) AS pub_us
       FROM event_logs`,
  )) as [Array<{ fire_us: number; pub_us: number | null }>];
  return {
    events: rows.length,
    fireLagMs: roundSummary(summarize(rows.map((r) => Number(r.fire_us) / 1000))),
    publishLagMs: roundSummary(summarize(rows.filter((r) => r.pub_us !== null).map((r) => Number(r.pub_us) / 1000))),
  };
}

function roundSummary(s: Summary): Summary {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 'count' ? v : round(v, 1)])) as unknown as Summary;
}

/** Measured trigger insert rate of this run (used to place T after the fill); conservative before the first. */
let triggerInsertRate = 4000;

interface BurstResult {
  relays: number;
  triggers: number;
  fillSeconds: number;
  allOnKafkaMs: number;
  lastPublishedAtMs: number;
  eventsPerSecond: number;
  fireLagMs: Summary;
  publishLagMs: Summary;
  consumeLagMs: Summary;
  eventLogs: number;
  distinctOnKafka: number;
  duplicatesOnKafka: number;
  cpu: CpuUse;
  warnings: string[];
}

/** (c) BURST time triggers all due at one instant T, relays already running; T → all consumed from Kafka. */
async function burst(k: number): Promise<BurstResult> {
  return withEnv('burst', async (e) => {
    const warnings: string[] = [];
    log(`(c) burst: starting ${k} relays and a consumer`);
    const relays = await spawnRelays(e, k);
    const reader = await new BenchReader(e.topic).start();
    try {
      const T = new Date(Math.ceil((Date.now() + (BURST / triggerInsertRate) * 1500 + 2000) / 1000) * 1000);
      log(`    inserting ${fmtInt(BURST)} time triggers due at ${T.toISOString()}`);
      const f0 = performance.now();
      await insertScheduledTriggers(e.db, BURST, { fireAt: T });
      const fillSeconds = (performance.now() - f0) / 1000;
      triggerInsertRate = BURST / fillSeconds;
      const margin = T.getTime() - Date.now();
      if (margin < 100) warnings.push(`the insert finished ${-margin} ms after T: the burst is not one instant`);
      log(`    insert took ${fillSeconds.toFixed(1)} s; ${margin} ms to T`);
      const meter = meterFor(() => relays);
      await sleep(T.getTime() - Date.now() - 50);
      meter.begin();
      const stop = progress(() => `on Kafka ${fmtInt(reader.distinct)} / ${fmtInt(BURST)}`);
      try {
        await waitFor(async () => reader.distinct >= BURST, { timeoutMs: 10 * 60_000, intervalMs: 5, what: 'every burst event on Kafka' });
      } finally {
        stop();
      }
      const cpu = meter.end();
      await sleep(500); // late duplicates, if any
      const consumed = [...reader.seen.values()].map((s) => s.consumedAt - T.getTime());
      const consumeLagMs = roundSummary(summarize(consumed));
      const lags = await eventLags(e.db);
      const [[last]] = (await e.db.raw('SELECT MAX(published_at) AS t FROM event_logs')) as [[{ t: Date }]];
      if (lags.events !== BURST) warnings.push(`${lags.events} event logs for ${BURST} triggers`);
      return {
        relays: k,
        triggers: BURST,
        fillSeconds: round(fillSeconds, 2),
        allOnKafkaMs: consumeLagMs.max,
        lastPublishedAtMs: last.t.getTime() - T.getTime(),
        eventsPerSecond: Math.round(BURST / (consumeLagMs.max / 1000)),
        fireLagMs: lags.fireLagMs,
        publishLagMs: lags.publishLagMs,
        consumeLagMs,
        eventLogs: lags.events,
        distinctOnKafka: reader.distinct,
        duplicatesOnKafka: reader.duplicates,
        cpu,
        warnings,
      };
    } finally {
      await reader.stop();
      await stopRelays(relays);
    }
  });
}

interface SteadyResult {
  relays: number;
  ratePerSecond: number;
  seconds: number;
  triggers: number;
  fillSeconds: number;
  achievedFiresPerSecond: number;
  fireLagMs: Summary;
  publishLagMs: Summary;
  endToEndLagMs: Summary;
  eventLogs: number;
  distinctOnKafka: number;
  duplicatesOnKafka: number;
  cpu: CpuUse;
  warnings: string[];
}

/** (d) RATE fires/s for SECONDS (fire_at spread evenly, inserted beforehand), relays and a consumer running. */
async function steady(k: number): Promise<SteadyResult> {
  return withEnv('steady', async (e) => {
    const warnings: string[] = [];
    const total = Math.round(RATE * SECONDS);
    log(`(d) steady: starting ${k} relays and a consumer`);
    const relays = await spawnRelays(e, k);
    const reader = await new BenchReader(e.topic).start();
    try {
      const S = Math.ceil((Date.now() + (total / triggerInsertRate) * 1500 + 2000) / 1000) * 1000;
      const times = Array.from({ length: total }, (_, i) => S + Math.floor((i * 1000) / RATE));
      log(`    inserting ${fmtInt(total)} time triggers, ${fmtInt(RATE)}/s from ${new Date(S).toISOString()} for ${SECONDS} s`);
      const f0 = performance.now();
      await insertTriggersWithProgress(e.db, times);
      const fillSeconds = (performance.now() - f0) / 1000;
      const margin = S - Date.now();
      if (margin < 100) warnings.push(`the insert finished ${-margin} ms after the first fire time`);
      log(`    insert took ${fillSeconds.toFixed(1)} s; ${margin} ms to the first fire time`);
      const meter = meterFor(() => relays);
      await sleep(S - Date.now());
      meter.begin();
      const stop = progress(
        () => `fired ${fmtInt(reader.distinct)} / ${fmtInt(total)} (${round((Date.now() - S) / 1000, 0)} s of ${SECONDS})`,
      );
      try {
        await waitFor(async () => reader.distinct >= total, {
          timeoutMs: SECONDS * 1000 + 10 * 60_000,
          intervalMs: 20,
          what: 'every steady event on Kafka',
        });
      } finally {
        stop();
      }
      const cpu = meter.end();
      await sleep(500);
      const lags = await eventLags(e.db);
      const [[span]] = (await e.db.raw('SELECT MIN(fired_at) AS a, MAX(fired_at) AS b FROM event_logs')) as [[{ a: Date; b: Date }]];
      const endToEnd = [...reader.seen.values()].map((s) => s.consumedAt - s.scheduledFor);
      if (lags.events !== total) warnings.push(`${lags.events} event logs for ${total} triggers`);
      return {
        relays: k,
        ratePerSecond: RATE,
        seconds: SECONDS,
        triggers: total,
        fillSeconds: round(fillSeconds, 2),
        achievedFiresPerSecond: Math.round(lags.events / Math.max(0.001, (span.b.getTime() - span.a.getTime()) / 1000)),
        fireLagMs: lags.fireLagMs,
        publishLagMs: lags.publishLagMs,
        endToEndLagMs: roundSummary(summarize(endToEnd)),
        eventLogs: lags.events,
        distinctOnKafka: reader.distinct,
        duplicatesOnKafka: reader.duplicates,
        cpu,
        warnings,
      };
    } finally {
      await reader.stop();
      await stopRelays(relays);
    }
  });
}

interface BreakdownResult {
  rows: number;
  batches: number;
  eventsPerSecond: number;
  stepMs: Record<string, Summary>;
  shareOfBatch: Record<string, number>;
  cpu: CpuUse;
}

/**
 * (e) Diagnostic: one relay's publish batch, step by step, in this process — the relay's own publish lane
 * (PublishLane.publish) with a clock on each step: the producer is wrapped to time produce + delivery
 * reports, and knex's query events mark where the claim and the commit begin. Says where a batch's time
 * goes; not a target. "begin" is from the lane's call to its claim (the promotion of due waiting rows every
 * 100 ms, BEGIN); "mark" from the last delivery report to COMMIT.
 */
async function breakdown(): Promise<BreakdownResult> {
  const rows = Math.min(N, 50_000);
  return withEnv('breakdown', async (e) => {
    log(`(e) breakdown of one relay's publish batch (in-process): filling ${fmtInt(rows)} outbox rows`);
    await ensureTopics(e.config.kafkaBrokers, [{ name: e.topic, partitions: e.config.kafkaPartitions }]);
    const producer = new EventProducer({
      brokers: e.config.kafkaBrokers,
      messageTimeoutMs: e.config.kafkaMessageTimeoutMs,
      clientId: 'etp-bench',
    });
    await producer.connect();
    /** When each step of the batch under way began: the first claim statement, produce, its reports, COMMIT. */
    const marks = new Map<string, number>();
    const mark = (step: string) => void (marks.has(step) || marks.set(step, performance.now()));
    const onQuery = (q: { sql: string }) => {
      if (/FOR UPDATE/i.test(q.sql)) mark('claim');
      else if (/^\s*COMMIT/i.test(q.sql)) mark('commit');
    };
    const timed: Pick<EventProducer, 'publish'> = {
      async publish(messages) {
        mark('produce');
        const outcomes = await producer.publish(messages);
        mark('produced');
        return outcomes;
      },
    };
    e.db.on('query', onQuery);
    try {
      await fillOutbox(e, rows, new Date(Date.now() - 1000));
      const [lane] = publishLanes(e, 1, e.config.outboxOrdering, timed);
      const steps: Record<string, number[]> = { begin: [], claim: [], 'produce + delivery reports': [], mark: [], commit: [], batch: [] };
      let done = 0;
      const meter = meterFor(() => []).begin();
      const t0 = performance.now();
      const stop = progress(() => `published ${fmtInt(done)} / ${fmtInt(rows)}`);
      try {
        for (;;) {
          marks.clear();
          const a = performance.now();
          const { claimed } = await lane!.publish();
          const end = performance.now();
          if (claimed === 0) break;
          const at = (step: string) => marks.get(step) ?? NaN;
          steps.begin!.push(at('claim') - a);
          steps.claim!.push(at('produce') - at('claim'));
          steps['produce + delivery reports']!.push(at('produced') - at('produce'));
          steps.mark!.push(at('commit') - at('produced'));
          steps.commit!.push(end - at('commit'));
          steps.batch!.push(end - a);
          done += claimed;
        }
      } finally {
        stop();
      }
      const seconds = (performance.now() - t0) / 1000;
      const cpu = meter.end();
      const total = steps.batch!.reduce((x, y) => x + y, 0);
      return {
        rows,
        batches: steps.batch!.length,
        eventsPerSecond: Math.round(rows / seconds),
        stepMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, roundSummary(summarize(v))])),
        shareOfBatch: Object.fromEntries(
          Object.entries(steps)
            .filter(([k]) => k !== 'batch')
            .map(([k, v]) => [k, round(v.reduce((x, y) => x + y, 0) / total, 3)]),
        ),
        cpu,
      };
    } finally {
      e.db.off('query', onQuery);
      await producer.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------- main

function verdict(ok: boolean): string {
  return ok ? 'met' : 'NOT met';
}

/** CPU seconds and machine share per process group, then CPU µs per event (row) of each. */
function cpuLine(label: string, c: CpuUse, events: number): string {
  const parts = Object.entries(c.cpuSeconds)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v.toFixed(1)} s (${Math.round((c.machineShare[k] ?? 0) * 100)}%)`);
  return `  ${label.padEnd(22)} wall ${c.wallSeconds.toFixed(1)} s; CPU ${parts.join(', ')}\n  ${''.padEnd(22)} ${fmtCpuPerEvent(c, events)}`;
}

/** A (b) row of the report: relays and mode, rate, volume and time, ratios to the ceilings. */
function publishRow(b: PublishResult, ratios: string): string[] {
  return [
    `(b) relay publish, ${b.relays} relay${b.relays > 1 ? 's' : ''} (${b.ordered ? 'ordered' : 'unordered'})`,
    `${fmtInt(b.eventsPerSecond)} events/s`,
    `${fmtInt(b.rows)} events in ${b.seconds.toFixed(2)} s (first batch +${fmtMs(b.firstPublishedAtMs)})`,
    ratios,
  ];
}

/** Whether the relays run with OUTBOX_ORDERING on (their claim is then claimUnpublishedInShards). */
let orderedRelays = false;

async function main(): Promise<void> {
  const settings = {
    quick: QUICK,
    outboxRows: N,
    burstTriggers: BURST,
    steadyRate: RATE,
    steadySeconds: SECONDS,
    relays: MANY,
    batchSize: BATCH,
    phases: [...ONLY],
    relayEnv: RELAY_ENV,
    manyRelaysEnv: MANY_ENV,
    relayConfig: {} as Record<string, unknown>,
  };
  const probe = await createBenchEnv('facts', RELAY_ENV);
  let machine;
  try {
    machine = await machineFacts(probe.db);
    // The relay settings that shape these figures, as the relays will read them (defaults included).
    const c = probe.config;
    settings.relayConfig = {
      relayBatchSize: c.relayBatchSize,
      outboxPollIntervalMs: c.outboxPollIntervalMs,
      schedulerIntervalMs: c.schedulerIntervalMs,
      kafkaPartitions: c.kafkaPartitions,
      dbPoolMax: c.dbPoolMax,
      ...Object.fromEntries(
        (['outboxOrdering', 'outboxShards', 'relayLeaseMs'] as const)
          .filter((k) => k in c)
          .map((k) => [k, (c as unknown as Record<string, unknown>)[k]]),
      ),
    };
    orderedRelays = (c as unknown as { outboxOrdering?: boolean }).outboxOrdering === true;
  } finally {
    await probe.cleanup();
  }
  log(`relay benchmark ${QUICK ? '(quick) ' : ''}— ${JSON.stringify(settings)}`);
  log(
    `machine: ${machine.cpuCount}× ${machine.cpuModel}, ${machine.totalMemoryGiB} GiB, node ${machine.node}, ${machine.mariadb}, librdkafka ${machine.librdkafka}, load ${machine.loadAverageAtStart.join(' ')}`,
  );

  const results: Record<string, unknown> = {};
  const a1 = ONLY.has('a') ? await ceiling(1) : null;
  const a4 = ONLY.has('a') ? await ceiling(MANY) : null;
  // Relays in ordered mode claim with claimUnpublishedInShards: measure that claim's ceiling as well.
  const ao1 = ONLY.has('a') && orderedRelays ? await ceiling(1, true) : null;
  const ao4 = ONLY.has('a') && orderedRelays ? await ceiling(MANY, true) : null;
  results.ceiling = [a1, a4, ao1, ao4].filter(Boolean);
  const b1 = ONLY.has('b') ? await publish(1) : null;
  // Issue 9: ordered relays against unordered ones in the same run, each count right after the other, so a
  // change in the machine's state between runs does not pass for a difference between the modes.
  const bu1 = ONLY.has('b') && orderedRelays ? await publish(1, false) : null;
  const b4 = ONLY.has('b') ? await publish(MANY) : null;
  const bu4 = ONLY.has('b') && orderedRelays ? await publish(MANY, false) : null;
  results.publish = [b1, bu1, b4, bu4].filter(Boolean);
  const c = ONLY.has('c') ? await burst(MANY) : null;
  results.burst = c;
  const d = ONLY.has('d') ? await steady(MANY) : null;
  results.steady = d;
  const x = ONLY.has('e') ? await breakdown() : null;
  results.breakdown = x;

  // ------------------------------------------------------------------------------------------ report
  const rows: string[][] = [];
  for (const a of [a1, a4, ao1, ao4]) {
    if (!a) continue;
    rows.push([
      `(a) DB-only ceiling${a.ordered ? ' (ordered claim)' : ''}, ${a.claimers} claimer${a.claimers > 1 ? 's' : ''}`,
      `${fmtInt(a.rowsPerSecond)} rows/s`,
      `${fmtInt(a.rows)} rows in ${a.seconds.toFixed(2)} s`,
      '',
    ]);
  }
  const targets: string[][] = [];
  for (const [b, a, ao] of [
    [b1, a1, ao1],
    [b4, a4, ao4],
  ] as const) {
    if (!b) continue;
    const ratio = a ? b.eventsPerSecond / a.rowsPerSecond : NaN;
    const ratios = [
      a ? `${ratio.toFixed(2)}× ceiling` : '',
      ao ? `${(b.eventsPerSecond / ao.rowsPerSecond).toFixed(2)}× ordered ceiling` : '',
    ]
      .filter(Boolean)
      .join(', ');
    rows.push(publishRow(b, ratios));
    targets.push([
      `(b) ${b.relays} relay(s): events/s`,
      fmtInt(b.eventsPerSecond),
      `≥ ${fmtInt(TARGET.eventsPerSecond)}`,
      verdict(b.eventsPerSecond >= TARGET.eventsPerSecond),
    ]);
    if (a) targets.push([`(b)/(a) with ${b.relays}`, `${ratio.toFixed(2)}×`, `≥ ${TARGET.ratio}×`, verdict(ratio >= TARGET.ratio)]);
  }
  for (const bu of [bu1, bu4]) {
    if (!bu) continue;
    const a = bu.relays === 1 ? a1 : a4;
    rows.push(publishRow(bu, a ? `${(bu.eventsPerSecond / a.rowsPerSecond).toFixed(2)}× ceiling` : ''));
    const ordered = bu.relays === 1 ? b1 : b4;
    if (ordered) {
      const r = ordered.eventsPerSecond / bu.eventsPerSecond;
      targets.push([`(b) ordered ÷ unordered, ${bu.relays} relay(s)`, `${r.toFixed(2)}×`, '≥ 0.8×', verdict(r >= 0.8)]);
    }
  }
  if (b1 && b4) {
    // Issue 9: scaling out must not cost throughput (many relays at least as fast as one).
    const scale = b4.eventsPerSecond / b1.eventsPerSecond;
    const how = Object.keys(MANY_ENV).length
      ? ` (${Object.entries(MANY_ENV)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')})`
      : '';
    targets.push([`(b) ${b4.relays} relays${how} ÷ 1 relay`, `${scale.toFixed(2)}×`, '≥ 1.0×', verdict(scale >= 1)]);
  }
  const lags: string[][] = [];
  const lagRow = (label: string, s: Summary) => [label, fmtMs(s.p50), fmtMs(s.p95), fmtMs(s.p99), fmtMs(s.max)];
  if (c) {
    rows.push([
      `(c) burst, ${c.relays} relays`,
      `${fmtInt(c.eventsPerSecond)} events/s`,
      `${fmtInt(c.triggers)} due at T, all on Kafka ${fmtMs(c.allOnKafkaMs)} after T`,
      '',
    ]);
    lags.push(lagRow('(c) burst fire lag (fired_at − scheduled_for)', c.fireLagMs));
    lags.push(lagRow('(c) burst publish lag (published_at − T)', c.publishLagMs));
    lags.push(lagRow('(c) burst consume lag (consumed − T)', c.consumeLagMs));
    targets.push([
      `(c) burst: T → all on Kafka`,
      fmtMs(c.allOnKafkaMs),
      `≤ ${fmtMs(TARGET.burstMs)}`,
      verdict(c.allOnKafkaMs <= TARGET.burstMs),
    ]);
  }
  if (d) {
    rows.push([
      `(d) steady, ${d.relays} relays`,
      `${fmtInt(d.achievedFiresPerSecond)} fires/s`,
      `${fmtInt(d.ratePerSecond)}/s × ${d.seconds} s = ${fmtInt(d.eventLogs)} events`,
      '',
    ]);
    lags.push(lagRow('(d) steady fire lag (fired_at − scheduled_for)', d.fireLagMs));
    lags.push(lagRow('(d) steady publish lag (published_at − scheduled_for)', d.publishLagMs));
    lags.push(lagRow('(d) steady end-to-end (consumed − scheduled_for)', d.endToEndLagMs));
    targets.push([
      `(d) steady fire lag p99`,
      fmtMs(d.fireLagMs.p99),
      `< ${TARGET.steadyP99Ms} ms`,
      verdict(d.fireLagMs.p99 < TARGET.steadyP99Ms),
    ]);
    targets.push([
      `(d) steady fire lag p50`,
      fmtMs(d.fireLagMs.p50),
      `< ${TARGET.steadyP50Ms} ms`,
      verdict(d.fireLagMs.p50 < TARGET.steadyP50Ms),
    ]);
  }

  const out: string[] = [];
  out.push('');
  out.push(
    `Relay benchmark${QUICK ? ' (QUICK — smoke run, not the issue-4 sizes)' : ''}: ${machine.cpuCount}× ${machine.cpuModel}, ${machine.totalMemoryGiB} GiB, ${machine.mariadb}, librdkafka ${machine.librdkafka}, batch ${BATCH}`,
  );
  out.push('');
  out.push(table(['phase', 'rate', 'volume / time', 'ratio'], rows));
  if (lags.length) {
    out.push('');
    out.push(table(['lag', 'p50', 'p95', 'p99', 'max'], lags));
  }
  out.push('');
  out.push(table(['measurement', 'measured', 'target', 'verdict'], targets));
  const cpuLines = [
    ...[a1, a4, ao1, ao4]
      .filter((x): x is CeilingResult => !!x)
      .map((x) => cpuLine(`(a) ${x.claimers} claimer(s)${x.ordered ? ' ord.' : ''}`, x.cpu, x.rows)),
    ...[b1, bu1, b4, bu4]
      .filter((x): x is PublishResult => !!x)
      .map((x) => cpuLine(`(b) ${x.relays} relay(s)${x.ordered ? '' : ' unord.'}`, x.cpu, x.rows)),
    ...(c ? [cpuLine('(c) burst', c.cpu, c.eventLogs)] : []),
    ...(d ? [cpuLine('(d) steady', d.cpu, d.eventLogs)] : []),
    ...(x ? [cpuLine('(e) breakdown', x.cpu, x.rows)] : []),
  ];
  out.push('');
  out.push(`Where the CPU went (${os.cpus().length} cores; % of the whole machine):`);
  out.push(...cpuLines);
  if (x) {
    out.push('');
    out.push(
      `One relay's ${BATCH}-row publish batch, step by step (e, in-process, ${fmtInt(x.eventsPerSecond)} events/s over ${fmtInt(x.rows)} rows):`,
    );
    out.push(
      table(
        ['step', 'p50', 'p95', 'mean', 'share'],
        Object.entries(x.stepMs).map(([k, v]) => [
          k,
          `${v.p50.toFixed(1)} ms`,
          `${v.p95.toFixed(1)} ms`,
          `${v.mean.toFixed(1)} ms`,
          k === 'batch' ? '100%' : `${Math.round((x.shareOfBatch[k] ?? 0) * 100)}%`,
        ]),
      ),
    );
  }
  const phaseCpu: Array<[string, CpuUse | undefined]> = [
    ['(a) 1 claimer', a1?.cpu],
    [`(a) ${MANY} claimers`, a4?.cpu],
    ['(a) 1 claimer, ordered', ao1?.cpu],
    [`(a) ${MANY} claimers, ordered`, ao4?.cpu],
    ['(b) 1 relay', b1?.cpu],
    [`(b) ${MANY} relays`, b4?.cpu],
    ['(c) burst', c?.cpu],
    ['(d) steady', d?.cpu],
    ['(e) breakdown', x?.cpu],
  ];
  const warnings = [
    ...[b1, bu1, b4, bu4, c, d].flatMap((r) => (r ? r.warnings : [])),
    ...phaseCpu.flatMap(([name, cpu]) =>
      cpu && cpu.lost.length > 0
        ? [`${name}: ${cpu.lost.join(', ')} went away during the measurement (restarted by someone else?) — do not trust this phase`]
        : [],
    ),
  ];
  if (warnings.length) {
    out.push('');
    out.push('Warnings:');
    out.push(...warnings.map((w) => `  - ${w}`));
  }
  process.stdout.write(`${out.join('\n')}\n`);

  // A smoke run or a subset of phases never overwrites the day's full results.
  const partial = ['a', 'b', 'c', 'd', 'e'].some((p) => !ONLY.has(p));
  // An unordered run (--env=OUTBOX_ORDERING=off) is kept beside the ordered one of the same day.
  const mode = orderedRelays ? '' : '-unordered';
  const file = writeResults(`relay${mode}${QUICK ? '-quick' : ''}${partial ? `-${[...ONLY].sort().join('')}` : ''}`, {
    command: `npm run bench -- relay ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { ...machine, loadAverageAtEnd: os.loadavg().map((l) => round(l, 2)) },
    settings,
    targets: TARGET,
    verdicts: Object.fromEntries(targets.map((t) => [t[0], { measured: t[1], target: t[2], met: t[3] === 'met' }])),
    results,
  });
  log(`results: ${file}`);
}

runBench('relay', main, () => live.abandon());
