/**
 * The history benchmark (`npm run bench -- history [--quick]`): does the platform cost the same on a
 * database that holds 48 h of history as on an empty one? One database and topic for the whole run, with
 * 1,000 triggers (600 webhook, 400 cron / interval) from the start, and the same measurements three times,
 * one right after the other once the fill is done: empty, full, empty again.
 *   empty  a new database of the same server holding the triggers and nothing else (but what the
 *          measurements themselves write), dropped after its phase; once just before the full phase and
 *          once just after it, and a rate's empty figure is the mean of the two. Not before the fill: this
 *          shared machine's speed drifts over the half hour of a fill by more than the effect measured
 *          (identical 10 s ingest runs on one empty database, minutes apart: 2,169–3,575 events/s);
 *   full   after a fill of N events (20M; quick 1M) with fired_at spread evenly over the last 48 h, as
 *          production leaves them: time-ordered ids from the product's own functions (newEventId,
 *          scheduledEventId), 60 % webhook / 40 % scheduled, 1.5 % failures, the newest minute published
 *          or pending, payloads of ≈250 bytes, and what a delivered event leaves beside it — its
 *          delivery_attempts rows and the worker's (event, attempt) idempotency keys (`--events-only`
 *          leaves those out; a fired occurrence's schedule row is deleted when it fires). The rollups
 *          (event_counts, trigger_event_counts) follow through the event_logs triggers. Then, untimed,
 *          the minute rows older than the active window folded into trigger_event_hours (as the relays'
 *          sweeps do), ANALYZE, the relay's sweep() caught up on what passed 48 h during the fill, dirty
 *          pages flushed.
 * Each phase measures:
 *   ingest     POST /api/v1/webhook/{id} on one api process, autocannon, 64 connections at full speed over
 *              the 600 webhook triggers: accepted events/s, and InnoDB buffer-pool reads (pages read from
 *              disk) per accepted event;
 *   publish    PUBLISH_ROWS (50k; quick 15k) of the outbox rows ingest left behind (the older ones: the same
 *              count in every phase, the rest published untimed afterwards), published by the relays
 *              (swapped in at one instant once the relays hold their shard leases, as relay.bench.ts
 *              does), its pages read into the buffer pool first so every phase times it equally warm
 *              (warmBacklog): events/s;
 *   burst      BURST time triggers (50k; quick 10k) due at one instant T, relays running: T → all on Kafka;
 *   steady     STEADY_RATE (2,000) time triggers a second due over STEADY_SECONDS (30; quick 10), created
 *              beforehand, the same relays running: each event's lag from due to on Kafka (p50/p95/p99), and
 *              the CPU per event of the relays, MariaDB and Kafka (with several relays, they take turns in
 *              fire slots: this is where that is measured on a database that holds history);
 *   reads      every read route over HTTP, one request at a time, in READS rounds (50; quick 20) of
 *              READ_REPEATS calls of each route (4) and one of the overview, p50/p99 (not in the second
 *              empty phase). The overview keeps an answer for 2 s per api process: its calls are spaced
 *              2.1 s apart (the other routes run in between), so each call measured computes anew —
 *              checked on generated_at;
 *   retention  (history only) the oldest time slice that holds history retired as the relays' sweep does
 *              (retireOldest): seconds per hour of history removed, once part-way through the fill (at the
 *              end of the time slice event N/10 falls in, N/10 at most 1M: the same hourly density, a table
 *              a tenth the size or a little more, its oldest slice whole) and once at the end of the full
 *              phase.
 * The InnoDB buffer pool is set to 128 MiB for the run (the old size is restored at the end, also on
 * failure or Ctrl-C), so the history is many times the pool, as it is in production.
 * Prints a summary, one line per full ÷ empty ratio (and a control: the load generator's CPU per request,
 * full ÷ empty, whose work does not depend on the database; see loadGenUs), and the targets: ingest, publish and burst ≥ 0.9× of
 * empty; steady lag p99 ≤ 1.2× and CPU per event ≤ 1.11× (1 ÷ 0.9) of empty; ≤ 0.05 buffer-pool reads per ingested event; every read's p99 ≤ 50 ms; the retention cost per hour
 * flat (within ±20 %: the full table's hour at most 1.2× the small fill's).
 * The buffer-pool counter is the server's: other work on the same MariaDB shows up in it, so its rate over
 * 3 idle seconds just before each ingest run is printed beside it. Run it against a server of its own
 * (TEST_DATABASE_URL=mysql://root@127.0.0.1:<port>/) for counts that are the run's alone; with
 * performance_schema on there, every phase's ingest, publish, burst, steady and retention also print their
 * reads per table, and always the pages each index brought into the pool (PageReads): where the reads go,
 * not only how many.
 * Options: --quick, --events= (history size), --small-fill= (events at the first retention measurement),
 * --seconds= (ingest; 30, quick 10), --connections= (64), --burst=, --bursts= (per phase, the median
 * reported; 3, quick 1), --steady-rate=, --steady-seconds=, --publish-rows=, --reads= (rounds), --read-repeats= (calls of each route but the
 * overview per round), --relays= (4; RELAY_CONCURRENCY=1 each when more than one, as Operations recommends
 * on a shared host), --relay-env=K=V,…,
 * --writers= (fill connections, 3), --chunk= (events per fill statement, 2500), --events-only, --keep,
 * --reuse=<database> (no empty phase and no fill: the history a --keep run left, migrated to the latest schema,
 * settled and measured as the full phase again; for a before/after of a schema or code change on one fill),
 * --empty (with --reuse: first the empty phase on a new database of the same server, so the run prints
 * full ÷ empty ratios of one code version, measured minutes apart).
 */
import http from 'node:http';
import os from 'node:os';
import mysql from 'mysql2/promise';
import { foldBefore, foldCountsBefore, FOLD_MAX_ROWS, ROLLUPS } from '../src/db/events';
import { windowOf } from '../src/api/events';
import { connectionOptions, type Db } from '../src/db/knex';
import { ensureShardFences } from '../src/db/outbox';
import { OVERVIEW_CACHE_MS } from '../src/api/overview';
import { Lifecycle } from '../src/events';
import { sweep } from '../src/relay/steps';
import { newEventId, newTriggerId, scheduledEventId } from '../src/triggers/event-id';
import { idBound, readLayout, retireOldest, SLICE_MS, withPartitionLease } from '../src/db/partitions';
import { firstOccurrence } from '../src/triggers/schedule';
import type { TriggerType } from '../src/triggers/types';
import { validateTriggerConfig } from '../src/triggers/validate';
import { withDbRetry } from '../src/util';
import { insertScheduledTriggers } from '../test/helpers/fixtures';
import type { RoleProcess } from '../test/helpers/proc';
import {
  BenchReader,
  CpuMeter,
  createBenchEnv,
  fmtInt,
  fmtMs,
  insertTriggersAt,
  log,
  machineFacts,
  closeBenchEnv,
  cpuPerEvent,
  envArg,
  intArg,
  numArg,
  parseArgs,
  runBench,
  progress,
  round,
  servicePids,
  sleep,
  spawnRoles,
  stopRoles,
  summarize,
  table,
  Watermarks,
  waitFor,
  writeResults,
  type BenchEnv,
  type CpuUse,
  type Summary,
} from './lib';
import { PAYLOAD_BODY, SCHEMA, apiPortOf, cpuLine, runAutocannon, samplePayload, verdict } from './webhooks';

const args = parseArgs();
const QUICK = args.flags.has('quick');
const KEEP = args.flags.has('keep');
const EVENTS_ONLY = args.flags.has('events-only');
/** --reuse=<database>: a database a --keep run left, measured again as the full phase (after a migration, say). */
const REUSE = args.values.get('reuse') ?? null;
/** --empty (with --reuse): an empty phase of this run, on a new database, to divide the reused full phase by. */
const REUSE_EMPTY = args.flags.has('empty');
/** Keep the database at the end: asked for, or one this run did not create. */
const KEEP_DB = KEEP || REUSE !== null;
const N = intArg(args, 'events', QUICK ? 1_000_000 : 20_000_000);
const SMALL_FILL = intArg(args, 'small-fill', Math.min(Math.round(N / 10), 1_000_000));
const SECONDS = numArg(args, 'seconds', QUICK ? 10 : 30);
const WARMUP_SECONDS = QUICK ? 3 : 5;
const CONNECTIONS = intArg(args, 'connections', 64);
const BURST = intArg(args, 'burst', QUICK ? 10_000 : 50_000);
/**
 * Bursts per phase; the phase reports the median one. A burst lasts a few seconds, so one run is at the
 * mercy of whatever else the two cores did in those seconds (single bursts moved by 0.2× between runs).
 */
const BURSTS = intArg(args, 'bursts', QUICK ? 1 : 3);
const READS = intArg(args, 'reads', QUICK ? 20 : 50);
/** Calls of each route but the overview per round: a p99 of many calls rather than the slowest of 50. */
const READ_REPEATS = intArg(args, 'read-repeats', 4);
const RELAYS = intArg(args, 'relays', 4);
/** Steady: occurrences due per second, and for how long (the peers bench's steady workload, on this database). */
const STEADY_RATE = intArg(args, 'steady-rate', 2_000);
const STEADY_SECONDS = numArg(args, 'steady-seconds', QUICK ? 10 : 30);
/**
 * Outbox rows each publish phase times: the same backlog in every phase, whatever rate its ingest ran at
 * (a larger backlog outgrows the 128 MiB pool sooner and reads more pages back per event). The newer rows
 * past it wait aside and are published untimed afterwards.
 */
const PUBLISH_ROWS = intArg(args, 'publish-rows', QUICK ? 15_000 : 50_000);
const WRITERS = intArg(args, 'writers', 3);
const CHUNK = intArg(args, 'chunk', 2500);
const BUFFER_POOL_BYTES = 134_217_728;

const WEBHOOK_TRIGGERS = 600;
const SCHEDULED_TRIGGERS = 400;
const HISTORY_MS = 48 * 3600_000;
const HOUR_MS = 3600_000;
/** The idle window before ingest in which the server's own buffer-pool read rate is taken. */
const IDLE_MS = 3000;
/** Spacing of the overview's calls: past its per-process cache, so each call measured computes. */
const OVERVIEW_GAP_MS = OVERVIEW_CACHE_MS + 100;

const TARGET = { ratio: 0.9, bufferPoolReadsPerEvent: 0.05, readP99Ms: 50, retentionGrowth: 1.2, steadyLagGrowth: 1.2 };

/** `--relay-env=K=V,K=V`: extra settings for every relay. */
const RELAY_ENV: Record<string, string> = {
  ...(RELAYS > 1 ? { RELAY_CONCURRENCY: '1' } : {}),
  ...envArg(args, 'relay-env'),
};

/** What an interrupted or failed run must undo: processes, the database and topics, the buffer pool size. */
const live = { procs: new Set<RoleProcess>(), env: null as BenchEnv | null, restorePool: null as (() => Promise<void>) | null };

// ---------------------------------------------------------------------------------------- database

async function statusValue(db: Db, name: string): Promise<string | null> {
  const [rows] = (await db.raw('SHOW GLOBAL STATUS LIKE ?', [name])) as [Array<{ Value: string }>];
  return rows[0]?.Value ?? null;
}

/** Pages InnoDB had to read from disk (not found in the buffer pool), server-wide. */
async function bufferPoolReads(db: Db): Promise<number> {
  return Number(await statusValue(db, 'Innodb_buffer_pool_reads'));
}

/**
 * Which indexes the buffer-pool reads of a phase hit. InnoDB's counter says how many pages came from disk,
 * not whose: this takes the pool's page list (information_schema.INNODB_BUFFER_PAGE: 8,192 pages at 128 MiB,
 * so a snapshot costs milliseconds) every SAMPLE_MS during the phase, and counts, per table and index, the
 * pages present in a snapshot that were not in the one before — pages read in between (a page read and
 * evicted again between two snapshots is missed, so the total is a lower bound; compare it with the counter).
 */
class PageReads {
  static readonly SAMPLE_MS = 500;
  private prev: Set<string> | null = null;
  private readonly newPages = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> = Promise.resolve();
  constructor(
    private readonly db: Db,
    private readonly dbName: string,
  ) {}

  private async snapshot(): Promise<void> {
    const [rows] = (await this.db.raw(
      "SELECT SPACE AS s, PAGE_NUMBER AS p, TABLE_NAME AS t, INDEX_NAME AS i FROM information_schema.INNODB_BUFFER_PAGE WHERE PAGE_STATE = 'FILE_PAGE'",
    )) as [Array<{ s: number; p: number; t: string | null; i: string | null }>];
    const now = new Set<string>();
    const prefix = `\`${this.dbName}\`.`;
    for (const r of rows) {
      const key = `${r.s}:${r.p}`;
      now.add(key);
      if (this.prev && !this.prev.has(key)) {
        const table = r.t
          ? r.t.startsWith(prefix)
            ? r.t.slice(prefix.length).replace(/`/g, '')
            : 'other databases'
          : '(no table: undo, system)';
        const name = r.t?.startsWith(prefix) ? `${table}.${r.i ?? '?'}` : table;
        this.newPages.set(name, (this.newPages.get(name) ?? 0) + 1);
      }
    }
    this.prev = now;
  }

  /** Reads per InnoDB file of this database (performance_schema's file I/O, when the server has it on). */
  private async fileReads(): Promise<Map<string, number> | null> {
    try {
      const [rows] = (await this.db.raw(
        "SELECT FILE_NAME AS f, COUNT_READ AS n FROM performance_schema.file_summary_by_instance WHERE FILE_NAME LIKE '%.ibd' OR FILE_NAME LIKE '%ibdata%' OR FILE_NAME LIKE '%undo0%'",
      )) as [Array<{ f: string; n: number | string }>];
      if (rows.length === 0) return null;
      const m = new Map<string, number>();
      for (const r of rows) {
        const parts = r.f.split('/');
        const name =
          parts.at(-2) === this.dbName ? parts.at(-1)!.replace(/\.ibd$/, '') : r.f.endsWith('.ibd') ? 'other databases' : 'system, undo';
        m.set(name, (m.get(name) ?? 0) + Number(r.n));
      }
      return m;
    } catch {
      return null;
    }
  }

  private files0: Map<string, number> | null = null;

  async begin(): Promise<this> {
    this.files0 = await this.fileReads();
    await this.snapshot();
    this.timer = setInterval(() => {
      this.busy = this.busy.then(() => this.snapshot()).catch(() => undefined);
    }, PageReads.SAMPLE_MS);
    return this;
  }

  /**
   * Per `per` (events or rows), most first: pages newly in the pool per index (reads, but also pages the
   * phase created by splitting or extending an index — the empty phase, which reads nothing, shows those),
   * and reads per table file (exact, read-ahead included; null when performance_schema is off).
   */
  async end(per: number): Promise<PageReadsResult> {
    if (this.timer) clearInterval(this.timer);
    await this.busy;
    await this.snapshot();
    const files1 = await this.fileReads();
    const rate = (entries: Array<[string, number]>) =>
      Object.fromEntries(
        entries
          .filter(([, n]) => n > 0)
          .sort((a, b) => b[1] - a[1])
          .map(([k, n]) => [k, per > 0 ? round(n / per, 4) : n]),
      );
    return {
      newPagesByIndex: rate([...this.newPages.entries()]),
      fileReadsByTable: files1 && this.files0 ? rate([...files1.entries()].map(([k, n]) => [k, n - (this.files0!.get(k) ?? 0)])) : null,
    };
  }
}

interface PageReadsResult {
  newPagesByIndex: Record<string, number>;
  fileReadsByTable: Record<string, number> | null;
}

function fmtPageReads(r: PageReadsResult, top = 8): string {
  const line = (m: Record<string, number>) => {
    const e = Object.entries(m);
    return e.length
      ? e
          .slice(0, top)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')
      : 'none';
  };
  return `file reads by table: ${r.fileReadsByTable ? line(r.fileReadsByTable) : '(performance_schema off)'}; pages new in the pool by index: ${line(r.newPagesByIndex)}`;
}

async function bufferPoolSize(db: Db): Promise<number> {
  const [[row]] = (await db.raw('SELECT @@GLOBAL.innodb_buffer_pool_size AS n')) as [[{ n: number | string }]];
  return Number(row.n);
}

/**
 * SET GLOBAL innodb_buffer_pool_size, then waits (at most 2 min) until the resize has finished: the size
 * reads back and the resize status is empty or says it completed ("Completed resizing buffer pool at …",
 * "Size did not change"). A status that never says so is reported, not fatal.
 */
async function setBufferPool(db: Db, bytes: number): Promise<void> {
  await db.raw('SET GLOBAL innodb_buffer_pool_size = ?', [bytes]);
  let status = '';
  try {
    await waitFor(
      async () => {
        status = (await statusValue(db, 'Innodb_buffer_pool_resize_status')) ?? '';
        return (await bufferPoolSize(db)) === bytes && (status === '' || /completed|did not change/i.test(status));
      },
      { timeoutMs: 120_000, intervalMs: 200, what: `the buffer pool resize to ${bytes} bytes` },
    );
  } catch (err) {
    log(`warning: ${err instanceof Error ? err.message : String(err)} (size now ${await bufferPoolSize(db)}, status "${status}")`);
  }
}

/**
 * Events in event_logs, from the event_counts rollup (a few thousand rows; COUNT(*) would read a whole
 * index of the history, and fill the buffer pool with it, just before a measurement). The rollup keeps a
 * minute until it passes the retention window, deleted events included; deletes go oldest first, so only
 * minutes from the oldest row's on are summed (exact but for that one minute; for that hour where the sweep
 * has folded the minutes into event_hours). With a `kind` column the rollup holds firings and outcomes, and
 * only the firings are summed; without one, every count is an event.
 */
async function eventCount(db: Db): Promise<number> {
  const [[oldest]] = (await db.raw('SELECT MIN(fired_at) AS t FROM event_logs')) as [[{ t: Date | null }]];
  if (!oldest.t) return 0;
  const from = new Date(Math.floor(oldest.t.getTime() / 60_000) * 60_000);
  const [cols] = (await db.raw("SHOW COLUMNS FROM event_counts LIKE 'kind'")) as [unknown[]];
  const [[row]] = (await db.raw(
    cols.length > 0
      ? "SELECT COALESCE(SUM(n), 0) AS n FROM event_counts WHERE kind = 'fired' AND minute >= ?"
      : 'SELECT COALESCE(SUM(n), 0) AS n FROM event_counts WHERE minute >= ?',
    [from],
  )) as [[{ n: number | string }]];
  // The minutes the sweep has folded into hours (event_hours, where the schema has it): the hour of the
  // oldest event and after.
  const [hoursTable] = (await db.raw("SHOW TABLES LIKE 'event_hours'")) as [unknown[]];
  if (hoursTable.length === 0) return Number(row.n);
  const [[hours]] = (await db.raw("SELECT COALESCE(SUM(n), 0) AS n FROM event_hours WHERE kind = 'fired' AND hour >= ?", [
    new Date(Math.floor(oldest.t.getTime() / HOUR_MS) * HOUR_MS),
  ])) as [[{ n: number | string }]];
  return Number(row.n) + Number(hours.n);
}

async function countUnpublished(db: Db): Promise<number> {
  const [rows] = (await db.raw('SELECT COUNT(*) AS n FROM outbox WHERE published <> 1')) as [Array<{ n: number }>];
  return Number(rows[0]?.n ?? 0);
}

/** Writes the tables' dirty pages out before a timed phase (see settleTables in relay.bench.ts for why). */
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

/** Whether k relays hold every shard's lease, each at most its fair share (as in relay.bench.ts). */
async function leasesSettled(db: Db, k: number, shards: number): Promise<boolean> {
  const [rows] = (await db.raw(
    'SELECT owner, COUNT(*) AS n FROM relay_leases WHERE owner IS NOT NULL AND expires_at > UTC_TIMESTAMP(3) GROUP BY owner',
  )) as [Array<{ owner: string; n: number }>];
  const held = rows.reduce((sum, r) => sum + Number(r.n), 0);
  return rows.length === k && held === shards && rows.every((r) => Number(r.n) <= Math.ceil(shards / k));
}

async function databaseBytes(db: Db, dbName: string): Promise<number> {
  const [[row]] = (await db.raw(
    'SELECT COALESCE(SUM(data_length + index_length), 0) AS n FROM information_schema.TABLES WHERE table_schema = ?',
    [dbName],
  )) as [[{ n: number | string }]];
  return Number(row.n);
}

// ---------------------------------------------------------------------------------------- triggers

interface HistoryTriggers {
  webhook: string[];
  scheduled: Array<{ id: string; type: TriggerType }>;
}

/**
 * The 1,000 triggers, as plain rows (the API would only be slower): 600 webhook triggers with the ingest
 * bench's JSON Schema, 250 cron triggers (daily, 03:30 UTC) and 150 interval triggers (daily), each with its
 * pending schedule row: their next occurrence is hours away, so they fire at most once during a run.
 */
async function insertHistoryTriggers(db: Db): Promise<HistoryTriggers> {
  const now = new Date();
  const created = new Date(now.getTime() - 30 * 86_400_000);
  const endpoint = 'http://127.0.0.1:9/unused';
  const configs: Record<string, Record<string, unknown>> = {
    webhook: { endpoint, schema: SCHEMA, retry: { max_attempts: 3, backoff_ms: 1000 } },
    cron_scheduled: { endpoint, cron: '30 3 * * *', timezone: 'UTC', payload: { report: 'daily-sales', region: 'eu-west-1' } },
    interval_scheduled: { endpoint, interval_seconds: 86_400, payload: { job: 'sync-inventory', warehouse: 'ams-2' } },
  };
  const out: HistoryTriggers = { webhook: [], scheduled: [] };
  const rows: Array<Record<string, unknown>> = [];
  const schedules: Array<Record<string, unknown>> = [];
  for (let i = 0; i < WEBHOOK_TRIGGERS + SCHEDULED_TRIGGERS; i++) {
    const type: TriggerType = i < WEBHOOK_TRIGGERS ? 'webhook' : i < WEBHOOK_TRIGGERS + 250 ? 'cron_scheduled' : 'interval_scheduled';
    const v = validateTriggerConfig(type, configs[type], now);
    if (!v.ok) throw new Error(`${type}: ${JSON.stringify(v.errors)}`);
    const id = newTriggerId(); // as the API creates them
    rows.push({
      id,
      name: `history-${type}-${i}`,
      type,
      status: 'active',
      config: JSON.stringify(v.config),
      version: 1,
      created_at: created,
      updated_at: created,
    });
    if (type === 'webhook') out.webhook.push(id);
    else {
      out.scheduled.push({ id, type });
      const next = firstOccurrence(type, v.config, now) ?? new Date(now.getTime() + 86_400_000);
      schedules.push({ trigger_id: id, fire_at: next, status: 'pending', created_at: now, updated_at: now });
    }
  }
  for (let i = 0; i < rows.length; i += 500) await db('triggers').insert(rows.slice(i, i + 500));
  for (let i = 0; i < schedules.length; i += 500) await db('trigger_schedules').insert(schedules.slice(i, i + 500));
  return out;
}

// -------------------------------------------------------------------------------------------- fill

const EVENT_COLUMNS =
  'id, trigger_id, trigger_type, source, is_test_run, payload, delivery_config, replay_of, scheduled_for, fired_at, published_at, ' +
  'execution_status, attempts, response_status, latency_ms, error_message, created_at, updated_at';
// Fixed statement texts; the rows go in as one bound `VALUES ?` list (mysql2 escapes every value).
const INSERT_EVENTS = `INSERT INTO event_logs (${EVENT_COLUMNS}) VALUES ?`;
const INSERT_ATTEMPTS =
  'INSERT INTO delivery_attempts (event_id, attempt, started_at, duration_ms, status_code, error, response_body) VALUES ?';
const INSERT_KEYS = 'INSERT INTO idempotency_keys (scope, idem_key, response, created_at) VALUES ?';

const OK_BODY = Buffer.from('{"received":true}');
const ERROR_BODY = Buffer.from('upstream unavailable');

interface FillPlan {
  /** fired_at of row i is start + (i + 0.5) × step: evenly over [start, end). */
  start: number;
  end: number;
  stepMs: number;
  triggers: HistoryTriggers;
}

interface ChunkRows {
  events: unknown[][];
  attempts: unknown[][];
  keys: unknown[][];
}

/**
 * Row i of the history, deterministic. Rows i ≡ 0, 1, 2 (mod 5) are webhook events, rows ≡ 3, 4 scheduled
 * ones; each kind cycles through its triggers, so a scheduled trigger's occurrences are hundreds of rows
 * apart and never share a scheduled instant (their ids, and schedule rows, are unique). 1.5 % fail after
 * three attempts, 3 % succeed at the second, the rest at the first; events of the last minute before `end`
 * are published and not yet delivered, those of its last 5 s still pending.
 */
function historyRow(i: number, plan: FillPlan, out: ChunkRows): void {
  const firedMs = Math.floor(plan.start + (i + 0.5) * plan.stepMs);
  const fired = new Date(firedMs);
  const age = plan.end - firedMs;
  const slot = i % 5;
  const webhook = slot < 3;
  let triggerId: string;
  let type: TriggerType;
  let scheduledFor: Date | null = null;
  let id: string;
  let payload: unknown;
  if (webhook) {
    const w = Math.floor(i / 5) * 3 + slot;
    triggerId = plan.triggers.webhook[w % plan.triggers.webhook.length]!;
    type = 'webhook';
    id = newEventId(firedMs);
    payload = { ...samplePayload(i), context: { ip: '203.0.113.7', user_agent: 'shop-frontend/4.2', request_id: `req_${i}` } };
  } else {
    const s = Math.floor(i / 5) * 2 + (slot - 3);
    const t = plan.triggers.scheduled[s % plan.triggers.scheduled.length]!;
    triggerId = t.id;
    type = t.type;
    scheduledFor = new Date(firedMs - 3 - (i % 40));
    id = scheduledEventId(triggerId, scheduledFor);
    payload = {
      report: 'daily-sales',
      region: 'eu-west-1',
      run: i,
      params: { currency: 'EUR', breakdown: ['channel', 'country'], top: 25 },
    };
  }
  const pending = age < 5_000;
  const inFlight = age < 60_000;
  const failed = !inFlight && (i * 7919) % 1000 < 15;
  const attempts = pending || inFlight ? 0 : failed ? 3 : (i * 104_729) % 100 < 3 ? 2 : 1;
  const published = pending ? null : new Date(firedMs + 15 + (i % 20));
  const latency = 20 + ((i * 31) % 250);
  let last = published ? published.getTime() : firedMs;
  for (let k = 1; k <= attempts; k++) {
    const started = last + (k === 1 ? 5 : 1000 * 2 ** (k - 2));
    const ok = !failed && k === attempts;
    if (!EVENTS_ONLY) {
      out.attempts.push([id, k, new Date(started), latency, ok ? 200 : 503, ok ? null : 'HTTP 503', ok ? OK_BODY : ERROR_BODY]);
      out.keys.push(['delivery', `${id}:${k}`, null, new Date(started + latency)]);
    }
    last = started + latency;
  }
  const status = pending ? 'pending' : inFlight ? 'published' : failed ? 'failure' : 'success';
  out.events.push([
    id,
    triggerId,
    type,
    webhook ? 'webhook' : 'scheduler',
    0,
    JSON.stringify(payload),
    null,
    null,
    scheduledFor,
    fired,
    published,
    status,
    attempts,
    attempts === 0 ? null : failed ? 503 : 200,
    attempts === 0 ? null : latency,
    failed ? 'HTTP 503 Service Unavailable after 3 attempts' : null,
    fired,
    new Date(last),
  ]);
}

interface FillProgress {
  events: number;
  companions: number;
}

/**
 * Rows [from, to) of the history in chunks of CHUNK events, WRITERS connections at once, oldest first;
 * each chunk one transaction of multi-row INSERTs (event logs, then what refers to them).
 */
async function fillRange(pool: mysql.Pool, plan: FillPlan, from: number, to: number, done: FillProgress): Promise<void> {
  let next = from;
  const writer = async () => {
    for (;;) {
      const start = next;
      if (start >= to) return;
      const end = Math.min(to, start + CHUNK);
      next = end;
      const rows: ChunkRows = { events: [], attempts: [], keys: [] };
      for (let i = start; i < end; i++) historyRow(i, plan, rows);
      await withDbRetry(async () => {
        const conn = await pool.getConnection();
        try {
          await conn.beginTransaction();
          await conn.query(INSERT_EVENTS, [rows.events]);
          if (rows.attempts.length) await conn.query(INSERT_ATTEMPTS, [rows.attempts]);
          if (rows.keys.length) await conn.query(INSERT_KEYS, [rows.keys]);
          await conn.commit();
        } catch (err) {
          await conn.rollback().catch(() => undefined);
          throw err;
        } finally {
          conn.release();
        }
      });
      done.events += rows.events.length;
      done.companions += rows.attempts.length + rows.keys.length;
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
}

function createFillPool(databaseUrl: string): mysql.Pool {
  const pool = mysql.createPool({ ...connectionOptions(databaseUrl), connectionLimit: WRITERS, timezone: 'Z', charset: 'utf8mb4' });
  // The product's session settings (src/db/knex.ts): UTC, READ COMMITTED.
  pool.on('connection', (conn) => {
    const core = conn as unknown as { query(sql: string, cb: (err: Error | null) => void): void };
    core.query("SET time_zone = '+00:00'", () => undefined);
    core.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', () => undefined);
  });
  return pool;
}

// ---------------------------------------------------------------------------------------- retention

interface RetentionResult {
  /** Events in event_logs when the measurement started (from the rollup). */
  tableEvents: number;
  oldest: string;
  deleted: number;
  batches: number;
  seconds: number;
  /** Seconds per hour of history removed (one hour is removed). */
  secondsPerHour: number;
  rowsPerSecond: number;
  batchMs: Summary;
  bufferPoolReadsPerRow: number;
  /** Where the reads went (see PageReads). */
  readsByIndex: PageReadsResult;
}

/**
 * Retires the oldest time slice that holds history, as the relays' sweep does (retireOldest under the
 * partitions lease: swap the slice's rows out, put back any still inside the window, drop them, merge the
 * empty slice into p_late), and reports the time per hour of history removed: the slice's rows span
 * (newest − oldest fired_at) of the fill. Older slices that hold nothing are retired first, untimed.
 */
async function retentionHour(db: Db, dbName: string, label: string): Promise<RetentionResult> {
  const tableEvents = await eventCount(db);
  const result = await withPartitionLease(db, 'history-bench', async (c) => {
    for (;;) {
      const slice = (await readLayout(c, 'event_logs')).slices[0];
      if (!slice) throw new Error('retention: no slice holds events');
      const [[span]] = (await c.raw('SELECT COUNT(*) AS n, MIN(fired_at) AS a, MAX(fired_at) AS b FROM event_logs PARTITION (??)', [
        slice.name,
      ])) as [[{ n: number; a: Date | null; b: Date | null }]];
      if (Number(span.n) === 0 || !span.a || !span.b) {
        await retireOldest(c, slice.end, slice.end);
        continue;
      }
      const rows = Number(span.n);
      const hours = (span.b.getTime() - span.a.getTime()) / HOUR_MS;
      log(`retention (${label}): retiring slice ${slice.name}: ${fmtInt(rows)} events over ${hours.toFixed(2)} h of history`);
      const pages = await new PageReads(db, dbName).begin();
      const bp0 = await bufferPoolReads(db);
      const t0 = performance.now();
      await retireOldest(c, slice.end, slice.end);
      const seconds = (performance.now() - t0) / 1000;
      const bp = (await bufferPoolReads(db)) - bp0;
      const [[still]] = (await c.raw('SELECT COUNT(*) AS n FROM event_logs WHERE id >= ? AND id < ?', [
        idBound(slice.start),
        idBound(slice.end),
      ])) as [[{ n: number }]];
      const readsByIndex = await pages.end(rows);
      return { slice, rows, hours, seconds, bp, kept: Number(still.n), oldest: span.a, readsByIndex };
    }
  });
  if (result === null) throw new Error('retention: a relay held the partitions lease');
  log(
    `  retention reads per row: ${fmtPageReads(result.readsByIndex)}; ${fmtInt(result.kept)} rows put back (fired inside the slice's end)`,
  );
  return {
    tableEvents,
    oldest: result.oldest.toISOString(),
    deleted: result.rows - result.kept,
    batches: 1,
    seconds: round(result.seconds, 3),
    secondsPerHour: round(result.seconds / result.hours, 3),
    rowsPerSecond: Math.round(result.rows / result.seconds),
    batchMs: roundSummary(summarize([result.seconds * 1000])),
    bufferPoolReadsPerRow: result.rows > 0 ? round(result.bp / result.rows, 4) : NaN,
    readsByIndex: result.readsByIndex,
  };
}

// ---------------------------------------------------------------------------------------- measurements

function roundSummary(s: Summary): Summary {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, k === 'count' ? v : round(v, 2)])) as unknown as Summary;
}

function meterFor(procs: () => RoleProcess[], name: string): CpuMeter {
  const svc = servicePids();
  return new CpuMeter(() => ({
    [name]: procs().map((p) => p.child.pid ?? 0),
    mariadb: svc.mysqld ? [svc.mysqld] : [],
    kafka: svc.kafka ? [svc.kafka] : [],
    bench: [process.pid],
  }));
}

interface IngestResult {
  /** Buffer-pool reads per second of the whole server just before, with nothing of this run working. */
  idleReadsPerSecond: number;
  seconds: number;
  accepted: number;
  acceptedPerSecond: number;
  non2xx: number;
  errors: number;
  latencyMs: { p50: number; p99: number };
  bufferPoolReads: number;
  bufferPoolReadsPerEvent: number;
  /** Where the reads went (see PageReads). */
  readsByIndex: PageReadsResult;
  cpu: CpuUse;
}

/** Webhook POSTs at full speed over every webhook trigger, after an unrecorded warm-up (which also fills the api's trigger cache). */
async function ingest(db: Db, dbName: string, base: string, api: RoleProcess, triggerIds: string[]): Promise<IngestResult> {
  const common = {
    url: base,
    connections: CONNECTIONS,
    // Each entry complete: autocannon does not merge top-level headers into an entry's own.
    requests: triggerIds.map((id) => ({
      method: 'POST',
      path: `/api/v1/webhook/${id}`,
      headers: { 'content-type': 'application/json' },
      body: PAYLOAD_BODY,
    })),
  };
  await runAutocannon('ingest warm-up', { ...common, duration: WARMUP_SECONDS });
  // The counter is server-wide: its rate with nothing of ours running says how much of it is other work.
  const idle0 = await bufferPoolReads(db);
  const i0 = performance.now();
  await sleep(IDLE_MS);
  const idleReadsPerSecond = ((await bufferPoolReads(db)) - idle0) / ((performance.now() - i0) / 1000);
  log(`ingest: ${CONNECTIONS} connections over ${triggerIds.length} webhook triggers, full speed, ${SECONDS} s`);
  const meter = meterFor(() => [api], 'api').begin();
  const pages = await new PageReads(db, dbName).begin();
  const bp0 = await bufferPoolReads(db);
  const r = await runAutocannon('ingest', { ...common, duration: SECONDS });
  const bp = (await bufferPoolReads(db)) - bp0;
  const cpu = meter.end();
  const readsByIndex = await pages.end(r['2xx']);
  log(`  ingest reads per event: ${fmtPageReads(readsByIndex)}`);
  return {
    idleReadsPerSecond: round(idleReadsPerSecond, 2),
    seconds: r.duration,
    accepted: r['2xx'],
    acceptedPerSecond: Math.round(r.okPerSecond),
    non2xx: r.non2xx,
    errors: r.errors,
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99 },
    bufferPoolReads: bp,
    bufferPoolReadsPerEvent: r['2xx'] > 0 ? round(bp / r['2xx'], 4) : NaN,
    readsByIndex,
    cpu,
  };
}

interface PublishResult {
  /** Outbox rows ingest left; `events` of them (PUBLISH_ROWS at most) were timed. */
  waiting: number;
  events: number;
  seconds: number;
  eventsPerSecond: number;
  bufferPoolReadsPerEvent: number;
  /** Where the reads went, per published event (see PageReads). */
  readsByIndex: PageReadsResult;
  /** Pages warmBacklog read from disk before the clock started. */
  warmPagesRead: number;
  cpu: CpuUse;
}

const WARM_FROM = 'SELECT COUNT(*) FROM outbox_filled o STRAIGHT_JOIN event_logs e ON e.id = o.event_id STRAIGHT_JOIN event_logs s';
/** warmBacklog's lookups of the backlog's events in the two status indexes: where each entry is, where it goes. */
const WARM_STATUS_ENTRIES = [
  `${WARM_FROM} FORCE INDEX (idx_events_status_fired) ON s.execution_status = e.execution_status AND s.fired_at = e.fired_at AND s.id = e.id`,
  `${WARM_FROM} FORCE INDEX (idx_events_status_fired) ON s.execution_status = 'published' AND s.fired_at = e.fired_at AND s.id = e.id`,
  `${WARM_FROM} FORCE INDEX (idx_events_trigger_status_fired) ON s.trigger_id = e.trigger_id AND s.execution_status = e.execution_status AND s.fired_at = e.fired_at AND s.id = e.id`,
  `${WARM_FROM} FORCE INDEX (idx_events_trigger_status_fired) ON s.trigger_id = e.trigger_id AND s.execution_status = 'published' AND s.fired_at = e.fired_at AND s.id = e.id`,
];

/**
 * Reads every page the timed publish will touch into the buffer pool, before the clock starts, so that each
 * phase times the same backlog equally warm: the outbox rows (clustered and every secondary index), their
 * events' rows, and those events' entries in event_logs' secondary indexes, where they are now and where the
 * publish moves them (execution_status 'published', the same fired_at and id: a lookup that finds nothing
 * still reads the leaf the entry will go into). Without it the phase measured whether a 30 s backlog stayed in
 * the bench's 128 MiB pool, which it did not in the empty phase after the full one either (history.md). Every
 * query starts from outbox_filled (STRAIGHT_JOIN) and looks event_logs up by key, so it reads only the
 * backlog's pages, never a scan of the history. Returns the pages read from disk doing it.
 */
async function warmBacklog(db: Db): Promise<{ pagesRead: number; seconds: number }> {
  const t0 = performance.now();
  const bp0 = await bufferPoolReads(db);
  await db.raw('SELECT COUNT(*), SUM(LENGTH(value)), SUM(LENGTH(headers)), SUM(LENGTH(last_error)) FROM outbox_filled');
  const [indexes] = (await db.raw(
    "SELECT DISTINCT INDEX_NAME AS i FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'outbox_filled' AND INDEX_NAME <> 'PRIMARY'",
  )) as [Array<{ i: string }>];
  for (const { i } of indexes) await db.raw('SELECT COUNT(*) FROM outbox_filled FORCE INDEX (??)', [i]);
  await db.raw(
    'SELECT COUNT(*), SUM(LENGTH(e.payload)), SUM(LENGTH(e.delivery_config)) FROM outbox_filled o STRAIGHT_JOIN event_logs e ON e.id = o.event_id',
  );
  // Each entry where it is now, then where the publish moves it.
  for (const sql of WARM_STATUS_ENTRIES) await db.raw(sql);
  return { pagesRead: (await bufferPoolReads(db)) - bp0, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The outbox ingest left, published by RELAYS relay processes. As in relay.bench.ts's publish phase, the
 * filled outbox is set aside while the relays start and settle their shard leases on an empty one, then
 * swapped in with one RENAME: the clock starts with every row ready. Returns the relays, still running.
 */
async function publishBacklog(e: BenchEnv): Promise<{ result: PublishResult; relays: RoleProcess[] }> {
  // The fold point moves on the hour (foldBefore): when an hour has turned since the fill was settled, a whole
  // hour of minute rows becomes foldable at once (a thousand triggers' rows a minute, each trigger's on its
  // own pages of the rollup's primary key). Left to the relays that start here, they would be folded inside
  // the timed publish, and their reads would take the backlog's pages out of the pool (history.md).
  await catchUpFold(e, 'publish');
  const waiting = await countUnpublished(e.db);
  const events = Math.min(waiting, PUBLISH_ROWS);
  if (waiting > events) {
    await e.db.raw('CREATE TABLE outbox_rest LIKE outbox');
    await e.db.raw('INSERT INTO outbox_rest SELECT * FROM outbox WHERE published <> 1 ORDER BY id DESC LIMIT ?', [waiting - events]);
    await e.db.raw('DELETE outbox FROM outbox JOIN outbox_rest USING (id)');
  }
  await ensureShardFences(e.db, e.config.outboxShards);
  await e.db.raw('ANALYZE TABLE outbox');
  await settleTables(e.db, ['outbox', 'event_logs']);
  await e.db.raw('RENAME TABLE outbox TO outbox_filled');
  await e.db.raw('CREATE TABLE outbox LIKE outbox_filled');
  log(`publish: ${fmtInt(events)} of ${fmtInt(waiting)} outbox rows set aside; starting ${RELAYS} relay(s) ${JSON.stringify(RELAY_ENV)}`);
  const relays = await spawnRoles('relay', { ...e.env, ...RELAY_ENV }, RELAYS, live.procs);
  try {
    if (e.config.outboxOrdering) {
      await waitFor(() => leasesSettled(e.db, RELAYS, e.config.outboxShards), {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: 'the shard leases to settle',
      });
    }
    const wm = await new Watermarks(e.topic, e.config.kafkaPartitions).connect();
    try {
      const before = await wm.count();
      const warmed = await warmBacklog(e.db);
      log(`publish: the backlog's pages warmed in ${warmed.seconds.toFixed(2)} s, ${fmtInt(warmed.pagesRead)} page(s) read from disk`);
      const meter = meterFor(() => relays, 'relays').begin();
      const pages = await new PageReads(e.db, e.dbName).begin();
      const bp0 = await bufferPoolReads(e.db);
      const t0 = performance.now();
      await e.db.raw('RENAME TABLE outbox TO outbox_empty, outbox_filled TO outbox');
      let onKafka = 0;
      const stop = progress(() => `published ${fmtInt(onKafka)} / ${fmtInt(events)}`);
      try {
        await waitFor(
          async () => {
            onKafka = (await wm.count()) - before;
            return onKafka >= events;
          },
          { timeoutMs: 10 * 60_000, intervalMs: 20, what: 'the outbox on Kafka' },
        );
        await waitFor(async () => (await countUnpublished(e.db)) === 0, { timeoutMs: 60_000, intervalMs: 5, what: 'the outbox to drain' });
      } finally {
        stop();
      }
      const seconds = (performance.now() - t0) / 1000;
      const bp = (await bufferPoolReads(e.db)) - bp0;
      const cpu = meter.end();
      const readsByIndex = await pages.end(events);
      await e.db.raw('DROP TABLE outbox_empty');
      if (waiting > events) {
        await e.db.raw('INSERT INTO outbox SELECT * FROM outbox_rest');
        await e.db.raw('DROP TABLE outbox_rest');
        await waitFor(async () => (await countUnpublished(e.db)) === 0, {
          timeoutMs: 10 * 60_000,
          intervalMs: 50,
          what: 'the rest of the outbox to drain (untimed)',
        });
      }
      return {
        result: {
          waiting,
          events,
          seconds: round(seconds, 3),
          eventsPerSecond: Math.round(events / seconds),
          bufferPoolReadsPerEvent: events > 0 ? round(bp / events, 4) : NaN,
          readsByIndex,
          warmPagesRead: warmed.pagesRead,
          cpu,
        },
        relays,
      };
    } finally {
      await wm.close();
    }
  } catch (err) {
    await stopRoles(relays, live.procs);
    throw err;
  }
}

interface BurstResult {
  triggers: number;
  insertSeconds: number;
  allOnKafkaMs: number;
  eventsPerSecond: number;
  consumeLagMs: Summary;
  eventLogs: number;
  lastPublishedAtMs: number | null;
  duplicatesOnKafka: number;
  bufferPoolReadsPerEvent: number;
  /** Where the reads went, per burst event (see PageReads). */
  readsByIndex: PageReadsResult;
  cpu: CpuUse;
  warnings: string[];
  /** With --bursts above 1: every burst's T → all on Kafka (ms), in the order run; the rest is the median burst's. */
  runsMs?: number[];
}

/** The median of a phase's bursts (by rate; of an even count the slower middle one), with every run's time and warnings. */
function medianBurst(runs: BurstResult[]): BurstResult {
  const sorted = [...runs].sort((a, b) => a.eventsPerSecond - b.eventsPerSecond);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  if (runs.length === 1) return median;
  return { ...median, warnings: runs.flatMap((r) => r.warnings), runsMs: runs.map((r) => r.allOnKafkaMs) };
}

/**
 * The relays' timed wait: from now until `done`, with a progress line, the buffer-pool reads (how many, and
 * per index for each of `events`: PageReads) and the CPU of the relays, MariaDB, Kafka and the bench over it.
 */
async function measuredWait(
  e: BenchEnv,
  relays: RoleProcess[],
  o: { done: () => Promise<boolean>; line: () => string; what: string; timeoutMs: number; intervalMs: number; events: number },
): Promise<{ bp: number; readsByIndex: PageReadsResult; cpu: CpuUse }> {
  const meter = meterFor(() => relays, 'relays').begin();
  const pages = await new PageReads(e.db, e.dbName).begin();
  const bp0 = await bufferPoolReads(e.db);
  const stop = progress(o.line);
  try {
    await waitFor(o.done, { timeoutMs: o.timeoutMs, intervalMs: o.intervalMs, what: o.what });
  } finally {
    stop();
  }
  const bp = (await bufferPoolReads(e.db)) - bp0;
  const cpu = meter.end();
  return { bp, readsByIndex: await pages.end(o.events), cpu };
}

/** Messages on the run's topic now (its partitions' high watermarks). */
async function topicCount(e: BenchEnv): Promise<number> {
  const w = await new Watermarks(e.topic, e.config.kafkaPartitions).connect();
  try {
    return await w.count();
  } finally {
    await w.close();
  }
}

/** Measured trigger insert rate (to place T just after the insert); conservative before the first burst. */
let triggerInsertRate = 3000;

/** BURST time triggers due at one instant T, the relays already running: T → every one of them on Kafka. */
async function burst(e: BenchEnv, relays: RoleProcess[]): Promise<BurstResult> {
  const warnings: string[] = [];
  // As before the publish phase: an hour that passed the fold point is folded now, not inside the timed burst.
  await catchUpFold(e, 'burst');
  const reader = await new BenchReader(e.topic).start();
  try {
    // The topic already holds this run's earlier messages: the reader reads them first, before T.
    const onTopic = await topicCount(e);
    await waitFor(async () => reader.total >= onTopic, { timeoutMs: 120_000, intervalMs: 50, what: 'the reader to catch up' });
    // Nothing else produces to the topic now (the api is idle): what the reader sees from here on is the burst.
    const seenBefore = reader.distinct;
    const T = new Date(Math.ceil((Date.now() + (BURST / triggerInsertRate) * 1500 + 2000) / 1000) * 1000);
    log(`burst: inserting ${fmtInt(BURST)} time triggers due at ${T.toISOString()}`);
    const f0 = performance.now();
    await insertScheduledTriggers(e.db, BURST, { fireAt: T });
    const insertSeconds = (performance.now() - f0) / 1000;
    triggerInsertRate = BURST / insertSeconds;
    const margin = T.getTime() - Date.now();
    if (margin < 100) warnings.push(`the insert finished ${-margin} ms after T: the burst is not one instant`);
    await sleep(T.getTime() - Date.now() - 50);
    const { bp, readsByIndex, cpu } = await measuredWait(e, relays, {
      events: BURST,
      done: async () => reader.distinct - seenBefore >= BURST,
      line: () => `burst on Kafka ${fmtInt(reader.distinct - seenBefore)} / ${fmtInt(BURST)}`,
      what: 'every burst event on Kafka',
      timeoutMs: 10 * 60_000,
      intervalMs: 5,
    });
    await sleep(500); // late duplicates, if any
    const ours = [...reader.seen.values()].filter((s) => s.scheduledFor === T.getTime());
    if (ours.length !== BURST) warnings.push(`${ours.length} messages scheduled for T on Kafka for ${BURST} burst triggers`);
    const consumeLagMs = roundSummary(summarize(ours.map((s) => s.consumedAt - T.getTime())));
    // idx_events_fired bounds the read to what fired since T (the burst and little else), whatever the history.
    const [[logged]] = (await e.db.raw(
      'SELECT COUNT(*) AS n, MAX(published_at) AS last FROM event_logs WHERE fired_at >= ? AND scheduled_for = ?',
      [new Date(T.getTime() - 1000), T],
    )) as [[{ n: number; last: Date | null }]];
    if (Number(logged.n) !== BURST) warnings.push(`${logged.n} event logs for ${BURST} burst triggers`);
    return {
      triggers: BURST,
      insertSeconds: round(insertSeconds, 2),
      allOnKafkaMs: consumeLagMs.max,
      eventsPerSecond: Math.round(BURST / (consumeLagMs.max / 1000)),
      consumeLagMs,
      eventLogs: Number(logged.n),
      lastPublishedAtMs: logged.last ? logged.last.getTime() - T.getTime() : null,
      duplicatesOnKafka: reader.duplicates,
      bufferPoolReadsPerEvent: round(bp / BURST, 4),
      readsByIndex,
      cpu,
      warnings,
    };
  } finally {
    await reader.stop();
  }
}

interface SteadyResult {
  rate: number;
  seconds: number;
  events: number;
  /** Consumed on Kafka − due, per event (ms). */
  lagMs: Summary;
  /** Events on Kafka per second, first to last. */
  achievedPerSecond: number;
  /** CPU µs per event of the relays, MariaDB and Kafka together (not the bench's reader). */
  systemCpuUsPerEvent: number;
  bufferPoolReadsPerEvent: number;
  /** Where the reads went, per steady event (see PageReads). */
  readsByIndex: PageReadsResult;
  duplicatesOnKafka: number;
  cpu: CpuUse;
  warnings: string[];
}

/**
 * STEADY_RATE time triggers a second due over STEADY_SECONDS, created beforehand, the relays running (as
 * the peers bench's steady workload): each event's lag from its due instant to its arrival on Kafka, and
 * the CPU per event of the relays, MariaDB and Kafka. With several relays this is where they take turns in
 * fire slots; the events are told from the cron / interval triggers' by their ids (scheduledEventId).
 */
async function steady(e: BenchEnv, relays: RoleProcess[]): Promise<SteadyResult> {
  const warnings: string[] = [];
  // As before the publish phase: an hour that passed the fold point is folded now, not inside the timed steady.
  await catchUpFold(e, 'steady');
  const total = Math.round(STEADY_RATE * STEADY_SECONDS);
  const reader = await new BenchReader(e.topic).start();
  try {
    // The reader reads the run's earlier messages first: caught up before the first due instant, it reads
    // the steady events as they land.
    const onTopic = await topicCount(e);
    await waitFor(async () => reader.total >= onTopic, { timeoutMs: 120_000, intervalMs: 50, what: 'the reader to catch up' });
    const seenBefore = reader.distinct;
    const S = Math.ceil((Date.now() + (total / triggerInsertRate) * 1500 + 2000) / 1000) * 1000;
    const times = Array.from({ length: total }, (_, i) => S + Math.floor((i * 1000) / STEADY_RATE));
    log(`steady: inserting ${fmtInt(total)} time triggers due from ${new Date(S).toISOString()}, ${fmtInt(STEADY_RATE)} a second`);
    const f0 = performance.now();
    const ids = await insertTriggersAt(e.db, times);
    triggerInsertRate = total / ((performance.now() - f0) / 1000);
    const expected = new Set(ids.map((id, i) => scheduledEventId(id, new Date(times[i]!))));
    const margin = S - Date.now();
    if (margin < 100) warnings.push(`the insert finished ${-margin} ms after the first due instant`);
    await sleep(S - Date.now() - 50);
    // The cron / interval triggers' events land too: ours are counted one by one only once enough have.
    let arrived = 0;
    const count = () => {
      if (reader.distinct - seenBefore < total) return 0;
      arrived = 0;
      for (const id of expected) if (reader.seen.has(id)) arrived++;
      return arrived;
    };
    const { bp, readsByIndex, cpu } = await measuredWait(e, relays, {
      events: total,
      done: async () => count() >= total,
      line: () =>
        `steady on Kafka ${fmtInt(Math.max(arrived, reader.distinct - seenBefore))} / ${fmtInt(total)} (${round((Date.now() - S) / 1000, 0)} s of ${STEADY_SECONDS})`,
      what: 'every steady event on Kafka',
      timeoutMs: STEADY_SECONDS * 1000 + 10 * 60_000,
      intervalMs: 20,
    });
    await sleep(300); // late duplicates, if any
    const ours = [...expected].map((id) => reader.seen.get(id)!);
    const lagMs = roundSummary(summarize(ours.map((s) => s.consumedAt - s.scheduledFor)));
    let first = Infinity;
    let last = -Infinity;
    for (const s of ours) {
      first = Math.min(first, s.consumedAt);
      last = Math.max(last, s.consumedAt);
    }
    const per = cpuPerEvent(cpu, total);
    return {
      rate: STEADY_RATE,
      seconds: STEADY_SECONDS,
      events: total,
      lagMs,
      achievedPerSecond: Math.round(total / Math.max(0.001, (last - first) / 1000)),
      systemCpuUsPerEvent: round((per.relays ?? 0) + (per.mariadb ?? 0) + (per.kafka ?? 0), 1),
      bufferPoolReadsPerEvent: round(bp / total, 4),
      readsByIndex,
      duplicatesOnKafka: reader.duplicates,
      cpu,
      warnings,
    };
  } finally {
    await reader.stop();
  }
}

/** GET with node:http (keep-alive through `agent`): status and body text. */
function get(agent: http.Agent, url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${url}: no answer in 30 s`)));
    req.on('error', reject);
  });
}

interface RouteResult {
  calls: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  non200: number;
  /** Rows in the answer of the last call (events listed), for the reader to judge what was read. */
  rows: number | null;
}

interface ReadsResult {
  routes: Record<string, RouteResult>;
  /** Distinct generated_at among the overview answers measured: = calls when every one was computed. */
  overviewFreshAnswers: number;
  notes: string[];
}

const ROUTES = [
  'GET /events?limit=50',
  'GET /events?execution_status=failure&limit=50',
  'GET /events?trigger_id=…&limit=50',
  'GET /events?trigger_id=…&execution_status=failure',
  'GET /events?retention_status=archived&limit=50',
  'GET /events?limit=50&cursor=… (page 3)',
  'GET /events?page=5',
  'GET /triggers/{id}/stats',
  'GET /overview',
  'GET /events/{id}',
] as const;
type Route = (typeof ROUTES)[number];

/** READS ids spread evenly over the fired_at range the API still shows (reads of idx_events_fired only, not of the rows). */
async function sampleEventIds(db: Db, keepFrom: Date): Promise<string[]> {
  const [[span]] = (await db.raw('SELECT MIN(fired_at) AS a, MAX(fired_at) AS b FROM event_logs WHERE fired_at >= ?', [keepFrom])) as [
    [{ a: Date | null; b: Date | null }],
  ];
  if (!span.a || !span.b) return [];
  const ids: string[] = [];
  for (let k = 0; k < READS; k++) {
    const t = new Date(span.a.getTime() + ((span.b.getTime() - span.a.getTime()) * (k + 0.5)) / READS);
    const [rows] = (await db.raw('SELECT id FROM event_logs FORCE INDEX (idx_events_fired) WHERE fired_at >= ? ORDER BY fired_at LIMIT 1', [
      t,
    ])) as [Array<{ id: string }>];
    if (rows[0]) ids.push(rows[0].id);
  }
  return ids;
}

/**
 * Every read route, one request at a time, in rounds: the overview first, then the others, then a wait
 * until OVERVIEW_GAP_MS after the round's overview call. One unrecorded round first.
 */
async function reads(e: BenchEnv, base: string, triggerId: string): Promise<ReadsResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const notes: string[] = [];
  try {
    const keepFrom = new Date(Date.now() - e.config.retentionDeleteAfterSeconds * 1000 + 10 * 60_000);
    const ids = await sampleEventIds(e.db, keepFrom);
    // Page 3 of the default view by cursor: the cursor after page 2, taken once.
    let cursor: string | null = null;
    for (let page = 1; page <= 2; page++) {
      const r = await get(agent, `${base}/api/v1/events?limit=50${cursor ? `&cursor=${cursor}` : ''}`);
      cursor =
        r.status === 200 ? ((JSON.parse(r.text) as { pagination: { next_cursor: string | null } }).pagination.next_cursor ?? null) : null;
      if (!cursor) break;
    }
    if (!cursor) notes.push('fewer than 100 active events: the cursor route was left out');
    const path = (route: Route, i: number): string | null => {
      switch (route) {
        case 'GET /events?limit=50':
          return '/api/v1/events?limit=50';
        case 'GET /events?execution_status=failure&limit=50':
          return '/api/v1/events?execution_status=failure&limit=50';
        case 'GET /events?trigger_id=…&limit=50':
          return `/api/v1/events?trigger_id=${triggerId}&limit=50`;
        case 'GET /events?trigger_id=…&execution_status=failure':
          return `/api/v1/events?trigger_id=${triggerId}&execution_status=failure`;
        case 'GET /events?retention_status=archived&limit=50':
          return '/api/v1/events?retention_status=archived&limit=50';
        case 'GET /events?limit=50&cursor=… (page 3)':
          return cursor ? `/api/v1/events?limit=50&cursor=${cursor}` : null;
        case 'GET /events?page=5':
          return '/api/v1/events?page=5';
        case 'GET /triggers/{id}/stats':
          return `/api/v1/triggers/${triggerId}/stats`;
        case 'GET /overview':
          return '/api/v1/overview';
        case 'GET /events/{id}':
          return ids.length ? `/api/v1/events/${ids[i % ids.length]}` : null;
      }
    };
    const ms = new Map<Route, number[]>(ROUTES.map((r) => [r, []]));
    const non200 = new Map<Route, number>(ROUTES.map((r) => [r, 0]));
    const rows = new Map<Route, number | null>();
    const generated = new Set<string>();
    let turn = 0;
    const stop = progress(() => `reads: round ${turn} / ${READS}`);
    try {
      for (turn = 0; turn <= READS; turn++) {
        const warmUp = turn === 0;
        const roundStart = Date.now();
        for (const route of ROUTES) {
          for (let k = 0; k < (route === 'GET /overview' ? 1 : READ_REPEATS); k++) {
            const p = path(route, turn * READ_REPEATS + k);
            if (!p) continue;
            const t0 = performance.now();
            const r = await get(agent, `${base}${p}`);
            const took = performance.now() - t0;
            if (warmUp) continue;
            ms.get(route)!.push(took);
            if (r.status !== 200) non200.set(route, non200.get(route)! + 1);
            else {
              const body = JSON.parse(r.text) as { events?: unknown[]; generated_at?: string };
              if (route === 'GET /overview' && body.generated_at) generated.add(body.generated_at);
              rows.set(route, body.events ? body.events.length : null);
            }
          }
        }
        await sleep(roundStart + OVERVIEW_GAP_MS - Date.now());
      }
    } finally {
      stop();
    }
    const routes: Record<string, RouteResult> = {};
    for (const route of ROUTES) {
      const s = summarize(ms.get(route)!);
      if (s.count === 0) continue;
      routes[route] = {
        calls: s.count,
        p50Ms: round2(s.p50),
        p99Ms: round2(s.p99),
        maxMs: round2(s.max),
        non200: non200.get(route)!,
        rows: rows.get(route) ?? null,
      };
    }
    return { routes, overviewFreshAnswers: generated.size, notes };
  } finally {
    agent.destroy();
  }
}

function round2(n: number): number {
  return round(n, 2);
}

interface PhaseResult {
  /** Events in event_logs when the phase started. */
  eventsAtStart: number;
  ingest: IngestResult;
  publish: PublishResult;
  burst: BurstResult;
  steady: SteadyResult;
  reads: ReadsResult;
  retention: RetentionResult | null;
}

/** One phase's measurements: ingest (api alone), publish and burst (relays), reads (api alone, quiet). */
async function measure(label: string, e: BenchEnv, triggers: HistoryTriggers, withReads = true): Promise<PhaseResult> {
  const eventsAtStart = await eventCount(e.db);
  log(`\n--- ${label}: ${fmtInt(eventsAtStart)} events in event_logs`);
  // A fresh api process per phase: neither phase inherits the other's caches or JIT state.
  const [api] = await spawnRoles('api', e.env, 1, live.procs);
  try {
    const base = `http://127.0.0.1:${apiPortOf(api!)}`;
    const ing = await ingest(e.db, e.dbName, base, api!, triggers.webhook);
    log(`  ingest: ${fmtInt(ing.acceptedPerSecond)} events/s, ${ing.bufferPoolReadsPerEvent} buffer-pool reads/event`);
    const { result: pub, relays } = await publishBacklog(e);
    log(`  publish: ${fmtInt(pub.events)} in ${pub.seconds.toFixed(2)} s, ${fmtInt(pub.eventsPerSecond)} events/s`);
    log(`  publish reads per event: ${fmtPageReads(pub.readsByIndex)}`);
    const runs: BurstResult[] = [];
    let st: SteadyResult;
    try {
      for (let i = 0; i < BURSTS; i++) runs.push(await burst(e, relays));
      st = await steady(e, relays);
    } finally {
      await stopRoles(relays, live.procs);
    }
    const b = medianBurst(runs);
    const each = b.runsMs ? `; runs ${b.runsMs.map(fmtMs).join(', ')}` : '';
    log(`  burst: ${fmtInt(b.triggers)} on Kafka ${fmtMs(b.allOnKafkaMs)} after T (${fmtInt(b.eventsPerSecond)} events/s, median${each})`);
    log(`  burst reads per event (the median burst): ${fmtPageReads(b.readsByIndex)}`);
    log(
      `  steady: lag p50 ${fmtMs(st.lagMs.p50)}, p99 ${fmtMs(st.lagMs.p99)}; ${st.systemCpuUsPerEvent} CPU µs per event (relays, MariaDB, Kafka)`,
    );
    log(`  steady reads per event: ${fmtPageReads(st.readsByIndex)}`);
    const r = withReads ? await reads(e, base, triggers.webhook[0]!) : { routes: {}, overviewFreshAnswers: 0, notes: [] };
    return { eventsAtStart, ingest: ing, publish: pub, burst: b, steady: st, reads: r, retention: null };
  } finally {
    await stopRoles([api!], live.procs);
  }
}

// ---------------------------------------------------------------------------------------------- main

/** The triggers a --keep run left: its webhook and cron / interval triggers (not its bursts' time triggers). */
async function existingHistoryTriggers(db: Db): Promise<HistoryTriggers> {
  const [rows] = (await db.raw(
    "SELECT id, type FROM triggers WHERE type IN ('webhook', 'cron_scheduled', 'interval_scheduled') ORDER BY id",
  )) as [Array<{ id: string; type: TriggerType }>];
  return {
    webhook: rows.filter((r) => r.type === 'webhook').map((r) => r.id),
    scheduled: rows.filter((r) => r.type !== 'webhook'),
  };
}

/**
 * The product's fold of the rollups' minute rows into hours (what the relays' sweeps do), run to the end now:
 * every minute row past the fold point becomes hour rows. Returns the minute rows folded; before a timed
 * `phase`, says so when there were any.
 */
async function catchUpFold(e: BenchEnv, phase?: string): Promise<{ folded: number; seconds: number }> {
  const f0 = performance.now();
  const foldPoint = foldBefore(windowOf(e.config, new Date()));
  let folded = 0;
  for (const rollup of ROLLUPS) {
    for (;;) {
      const n = await withDbRetry(() => foldCountsBefore(e.db, rollup, foldPoint, FOLD_MAX_ROWS));
      folded += n;
      if (n < FOLD_MAX_ROWS) break;
    }
  }
  const seconds = (performance.now() - f0) / 1000;
  if (phase && folded > 0) log(`${phase}: ${fmtInt(folded)} rollup minute rows folded first (${seconds.toFixed(2)} s, untimed)`);
  return { folded, seconds };
}

/**
 * What a long-lived database has, untimed: statistics taken on its size, the relay's own retention sweep
 * caught up (what passed 48 h during the fill), dirty pages written out. Returns the events swept.
 */
async function settleHistory(e: BenchEnv): Promise<number> {
  const tables = [
    'event_logs',
    'delivery_attempts',
    'idempotency_keys',
    'trigger_schedules',
    'event_counts',
    'trigger_event_counts',
    'event_hours',
    'trigger_event_hours',
  ];
  // The relays' sweeps fold the rollups' minute rows into hours once they are past the active window (and
  // an hour): over 48 h of running they would have folded the fill's older hours as they went. Here the
  // product's fold catches up at once, in its largest batches.
  const { folded, seconds: foldSeconds } = await catchUpFold(e);
  log(
    `  folded ${fmtInt(folded)} minute rows of the rollups into hours in ${foldSeconds.toFixed(1)} s (${fmtInt(folded / foldSeconds)} rows/s)`,
  );
  await e.db.raw('ANALYZE TABLE ??', [tables]);
  let caughtUp = 0;
  const sweepEvents = new Lifecycle().onEvent('relay:swept', (ev) => (caughtUp += ev.deleted));
  for (let b = 0; b < 100_000; b++) {
    const { full } = await withDbRetry(() => sweep(e.db, e.config, sweepEvents));
    if (!full) break;
  }
  await settleTables(e.db, tables);
  return caughtUp;
}

/** The index of the first event fired at or after the end of the time slice event `i` falls in (at most N). */
function sliceEndIndex(plan: FillPlan, i: number): number {
  const firedMs = plan.start + (i + 0.5) * plan.stepMs; // as fillRange places event i
  const end = (Math.floor(firedMs / SLICE_MS) + 1) * SLICE_MS;
  return Math.min(N, Math.ceil((end - plan.start) / plan.stepMs - 0.5));
}

/** One phase on a new, empty database of the same server (its 1,000 triggers only), dropped afterwards. */
async function measureEmpty(label: string, withReads: boolean): Promise<PhaseResult> {
  const e0 = await createBenchEnv('history', { RATE_LIMIT_PER_WEBHOOK: '0' });
  try {
    return await measure(label, e0, await insertHistoryTriggers(e0.db), withReads);
  } finally {
    await closeBenchEnv(e0, false);
  }
}

/** --reuse: the full phase again on a kept history, printed and written without an empty phase to compare with. */
async function mainReuse(e: BenchEnv): Promise<void> {
  let empty: PhaseResult | null = null;
  if (REUSE_EMPTY) {
    empty = await measureEmpty('empty', true);
  }
  const triggers = await existingHistoryTriggers(e.db);
  const s0 = performance.now();
  const caughtUp = await settleHistory(e);
  const dbBytes = await databaseBytes(e.db, e.dbName);
  log(
    `reuse ${e.dbName}: settled in ${((performance.now() - s0) / 1000).toFixed(1)} s (${fmtInt(caughtUp)} events past 48 h swept); database ${round(dbBytes / 1024 ** 3, 2)} GiB`,
  );
  const full = await measure('full (reused)', e, triggers);
  full.retention = await retentionHour(e.db, e.dbName, 'full (reused)');
  const machine = await machineFacts(e.db);
  const lines = [
    '',
    `History benchmark, --reuse=${e.dbName}: ${fmtInt(full.eventsAtStart)} events, database ${round(dbBytes / 1024 ** 3, 2)} GiB, load ${os
      .loadavg()
      .map((l) => round(l, 2))
      .join(' ')}`,
    `ingest ${fmtInt(full.ingest.acceptedPerSecond)} events/s, ${full.ingest.bufferPoolReadsPerEvent} buffer-pool reads/event (idle before: ${full.ingest.idleReadsPerSecond}/s)`,
    `  ${fmtPageReads(full.ingest.readsByIndex)}`,
    `publish ${fmtInt(full.publish.eventsPerSecond)} events/s; burst ${fmtMs(full.burst.allOnKafkaMs)}; steady lag p99 ${fmtMs(full.steady.lagMs.p99)}, ${full.steady.systemCpuUsPerEvent} CPU µs per event`,
    `retention ${full.retention.secondsPerHour.toFixed(2)} s per hour (${fmtInt(full.retention.deleted)} rows, ${full.retention.bufferPoolReadsPerRow} reads/row)`,
    `  ${fmtPageReads(full.retention.readsByIndex)}`,
    ...ROUTES.flatMap((r) => {
      const v = full.reads.routes[r];
      const a = empty?.reads.routes[r];
      const was = a ? ` (empty ${a.p50Ms.toFixed(1)} / ${a.p99Ms.toFixed(1)})` : '';
      return v ? [`read ${r}: p50 ${v.p50Ms.toFixed(1)} / p99 ${v.p99Ms.toFixed(1)} ms${was}`] : [];
    }),
    ...(empty
      ? [
          `empty: ingest ${fmtInt(empty.ingest.acceptedPerSecond)} events/s, publish ${fmtInt(empty.publish.eventsPerSecond)} events/s, burst ${fmtMs(empty.burst.allOnKafkaMs)}`,
          `ingest full ÷ empty: ${x(ratio(full.ingest.acceptedPerSecond, empty.ingest.acceptedPerSecond))} (target ≥ ${TARGET.ratio}×)`,
          `publish full ÷ empty: ${x(ratio(full.publish.eventsPerSecond, empty.publish.eventsPerSecond))} (target ≥ ${TARGET.ratio}×)`,
          `burst full ÷ empty: ${x(ratio(full.burst.eventsPerSecond, empty.burst.eventsPerSecond))} (target ≥ ${TARGET.ratio}×)`,
          `steady lag p99 full ÷ empty: ${x(ratio(full.steady.lagMs.p99, empty.steady.lagMs.p99))} (target ≤ ${TARGET.steadyLagGrowth}×)`,
          `steady CPU per event full ÷ empty: ${x(ratio(full.steady.systemCpuUsPerEvent, empty.steady.systemCpuUsPerEvent))} (target ≤ ${x(1 / TARGET.ratio)})`,
          `control — load generator CPU per request, full ÷ empty: ${x(ratio(loadGenUs(full), loadGenUs(empty)))} (${loadGenUs(empty).toFixed(0)} → ${loadGenUs(full).toFixed(0)} µs)`,
        ]
      : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const file = writeResults('history-reuse', {
    command: `npm run bench -- history ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { ...machine, loadAverageAtEnd: os.loadavg().map((l) => round(l, 2)) },
    dbBytes,
    caughtUp,
    results: empty ? { empty, full } : { full },
  });
  log(`results: ${file}`);
}

async function main(): Promise<void> {
  const e = await createBenchEnv('history', { RATE_LIMIT_PER_WEBHOOK: '0' }, REUSE ?? undefined);
  live.env = e;
  const oldPool = await bufferPoolSize(e.db);
  live.restorePool = async () => {
    live.restorePool = null;
    if (oldPool !== BUFFER_POOL_BYTES) {
      log(`restoring innodb_buffer_pool_size to ${oldPool}`);
      await setBufferPool(e.db, oldPool);
    }
  };
  const fillPool = createFillPool(e.env.DATABASE_URL!);
  try {
    await setBufferPool(e.db, BUFFER_POOL_BYTES);
    const machine = await machineFacts(e.db);
    const settings = {
      quick: QUICK,
      events: N,
      smallFill: SMALL_FILL,
      companions: !EVENTS_ONLY,
      triggers: { webhook: WEBHOOK_TRIGGERS, scheduled: SCHEDULED_TRIGGERS },
      historyHours: HISTORY_MS / HOUR_MS,
      ingestSeconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      connections: CONNECTIONS,
      burst: BURST,
      bursts: BURSTS,
      readsPerRoute: READS,
      readRepeats: READ_REPEATS,
      publishRows: PUBLISH_ROWS,
      overviewGapMs: OVERVIEW_GAP_MS,
      relays: RELAYS,
      steadyRate: STEADY_RATE,
      steadySeconds: STEADY_SECONDS,
      relayEnv: RELAY_ENV,
      fillWriters: WRITERS,
      fillChunk: CHUNK,
      bufferPoolBytes: BUFFER_POOL_BYTES,
      bufferPoolBytesBefore: oldPool,
      apiDbPoolMax: e.config.dbPoolMax,
      outboxOrdering: e.config.outboxOrdering,
    };
    log(`history benchmark ${QUICK ? '(quick) ' : ''}— ${JSON.stringify(settings)}`);
    log(
      `machine: ${machine.cpuCount}× ${machine.cpuModel}, ${machine.totalMemoryGiB} GiB, node ${machine.node}, ${machine.mariadb}, load ${machine.loadAverageAtStart.join(' ')}`,
    );
    if (SMALL_FILL * 48 <= N || SMALL_FILL >= N)
      throw new Error(`--small-fill=${SMALL_FILL} must hold more than an hour of the ${N} events and fewer than all`);

    if (REUSE) return await mainReuse(e);
    const triggers = await insertHistoryTriggers(e.db);

    // ------------------------------------------------------------------------------------------ fill
    const fillStart = Date.now();
    const plan: FillPlan = { start: fillStart - HISTORY_MS, end: fillStart, stepMs: HISTORY_MS / N, triggers };
    const done: FillProgress = { events: 0, companions: 0 };
    log(
      `\n--- fill: ${fmtInt(N)} events over the 48 h before ${new Date(fillStart).toISOString()}, ${WRITERS} connections, ${fmtInt(CHUNK)} events a statement${EVENTS_ONLY ? '' : ' (+ attempts, idempotency keys)'}`,
    );
    let fillSeconds = 0;
    /** fillRange with a progress line; adds its time to fillSeconds. */
    const fillTimed = async (from: number, to: number) => {
      const t0 = performance.now();
      const before = done.events;
      const stop = progress(() => {
        const s = (performance.now() - t0) / 1000;
        return `filled ${fmtInt(done.events)} / ${fmtInt(N)} events (${fmtInt((done.events - before) / s)} events/s, + ${fmtInt(done.companions)} companion rows)`;
      }, 5000);
      try {
        await fillRange(fillPool, plan, from, to, done);
      } finally {
        stop();
        fillSeconds += (performance.now() - t0) / 1000;
      }
    };
    // The small fill ends where a time slice does: the slice it retires must be whole. Ended inside one,
    // the rest of the fill would land below the oldest slice (p_late, where the retired range goes) and be
    // copied by every later retirement (which merges the emptied slice into p_late), as no platform leaves it.
    const smallEnd = sliceEndIndex(plan, SMALL_FILL);
    await fillTimed(0, smallEnd);
    log(
      `  ${fmtInt(smallEnd)} events in after ${fillSeconds.toFixed(1)} s (the end of the slice event ${fmtInt(SMALL_FILL)} falls in): retention at this small fill`,
    );
    const smallRetention = await retentionHour(e.db, e.dbName, `${fmtInt(smallEnd)} events`);
    log(
      `  small fill: ${fmtInt(smallRetention.deleted)} rows of the oldest slice retired in ${smallRetention.seconds.toFixed(2)} s (${smallRetention.secondsPerHour} s per hour)`,
    );
    await fillTimed(smallEnd, N);
    const fillRate = Math.round(done.events / fillSeconds);
    log(
      `  filled ${fmtInt(done.events)} events + ${fmtInt(done.companions)} companion rows in ${fillSeconds.toFixed(1)} s: ${fmtInt(fillRate)} events/s`,
    );
    const s0 = performance.now();
    const caughtUp = await settleHistory(e);
    const dbBytes = await databaseBytes(e.db, e.dbName);
    const rollupEvents = await eventCount(e.db);
    log(
      `  settled in ${((performance.now() - s0) / 1000).toFixed(1)} s (${fmtInt(caughtUp)} events past 48 h swept); database ${round(dbBytes / 1024 ** 3, 2)} GiB, ${fmtInt(rollupEvents)} events`,
    );

    // The empty phases run beside the full one — just before it and just after it, each on a new database
    // of the same server and in the same buffer pool — rather than before the fill: this shared machine's
    // speed drifts over the half hour a fill takes by more than the effect measured.
    const empty = await measureEmpty('empty (before full)', true);
    const full = await measure('full', e, triggers);
    full.retention = await retentionHour(e.db, e.dbName, 'full');
    log(
      `  full: ${fmtInt(full.retention.deleted)} rows of the oldest slice retired in ${full.retention.seconds.toFixed(2)} s (${full.retention.secondsPerHour} s per hour)`,
    );
    const after = await measureEmpty('empty (after full)', false);

    report(
      machine,
      settings,
      empty,
      full,
      smallRetention,
      {
        fillSeconds,
        fillRate,
        companions: done.companions,
        caughtUp,
        dbBytes,
        rollupEvents,
      },
      after,
    );
  } finally {
    await fillPool.end().catch(() => undefined);
    await live.restorePool?.().catch((err: unknown) => log(`could not restore the buffer pool size: ${String(err)}`));
    live.env = null;
    await closeBenchEnv(e, KEEP_DB);
  }
}

// -------------------------------------------------------------------------------------------- report

type Machine = Awaited<ReturnType<typeof machineFacts>>;

function ratio(full: number, empty: number): number {
  return empty > 0 && Number.isFinite(full) ? full / empty : NaN;
}

function x(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : '—';
}

/**
 * The load generator's CPU per ingested request (µs): work that does not depend on what the database
 * holds, so its full ÷ empty ratio is a control. Far from 1×, the machine itself ran faster or slower
 * between the phases (this shared VM drifts by that much), and the rate ratios carry that drift too.
 */
function loadGenUs(p: PhaseResult): number {
  return p.ingest.accepted > 0 ? ((p.ingest.cpu.cpuSeconds.bench ?? 0) * 1e6) / p.ingest.accepted : NaN;
}

function report(
  machine: Machine,
  settings: Record<string, unknown>,
  empty: PhaseResult,
  full: PhaseResult,
  small: RetentionResult,
  fill: { fillSeconds: number; fillRate: number; companions: number; caughtUp: number; dbBytes: number; rollupEvents: number },
  /** The second empty database, measured just after the full phase (the first just before it). */
  after: PhaseResult | null = null,
): void {
  // With two empty controls beside the full phase, a rate's "empty" is their mean: drift of the machine
  // over the minutes of the three phases falls on both sides of the full one.
  const emptyRate = (f: (p: PhaseResult) => number): number => (after ? (f(empty) + f(after)) / 2 : f(empty));
  const both = (f: (p: PhaseResult) => number, fmt: (n: number) => string): string =>
    after ? `${fmt(f(empty))} · ${fmt(f(after))}` : fmt(f(empty));
  const ratios: Record<string, number> = {
    ingest: ratio(
      full.ingest.acceptedPerSecond,
      emptyRate((p) => p.ingest.acceptedPerSecond),
    ),
    publish: ratio(
      full.publish.eventsPerSecond,
      emptyRate((p) => p.publish.eventsPerSecond),
    ),
    burst: ratio(
      full.burst.eventsPerSecond,
      emptyRate((p) => p.burst.eventsPerSecond),
    ),
    steadyLagP99: ratio(
      full.steady.lagMs.p99,
      emptyRate((p) => p.steady.lagMs.p99),
    ),
    steadyCpuPerEvent: ratio(
      full.steady.systemCpuUsPerEvent,
      emptyRate((p) => p.steady.systemCpuUsPerEvent),
    ),
    retention: ratio(full.retention!.secondsPerHour, small.secondsPerHour),
    loadGeneratorCpuPerRequest: ratio(loadGenUs(full), emptyRate(loadGenUs)),
  };
  const rows: string[][] = [
    [
      'ingest (POST /webhook/{id})',
      `${both((p) => p.ingest.acceptedPerSecond, fmtInt)} events/s`,
      `${fmtInt(full.ingest.acceptedPerSecond)} events/s`,
      x(ratios.ingest!),
    ],
    [
      '  p50 / p99',
      `${empty.ingest.latencyMs.p50} / ${empty.ingest.latencyMs.p99} ms`,
      `${full.ingest.latencyMs.p50} / ${full.ingest.latencyMs.p99} ms`,
      '',
    ],
    ['  buffer-pool reads / event', String(empty.ingest.bufferPoolReadsPerEvent), String(full.ingest.bufferPoolReadsPerEvent), ''],
    ['  server reads / s when idle before', String(empty.ingest.idleReadsPerSecond), String(full.ingest.idleReadsPerSecond), ''],
    [
      'publish (outbox → Kafka)',
      `${both((p) => p.publish.eventsPerSecond, fmtInt)} events/s (${fmtInt(empty.publish.events)})`,
      `${fmtInt(full.publish.eventsPerSecond)} events/s (${fmtInt(full.publish.events)})`,
      x(ratios.publish!),
    ],
    [
      `burst (${fmtInt(BURST)} due at T${BURSTS > 1 ? `, median of ${BURSTS}` : ''})`,
      `${both((p) => p.burst.allOnKafkaMs, fmtMs)} (${both((p) => p.burst.eventsPerSecond, fmtInt)}/s)`,
      `${fmtMs(full.burst.allOnKafkaMs)} (${fmtInt(full.burst.eventsPerSecond)}/s)`,
      x(ratios.burst!),
    ],
    [
      `steady (${fmtInt(STEADY_RATE)} due/s for ${STEADY_SECONDS} s): lag p99`,
      both((p) => p.steady.lagMs.p99, fmtMs),
      fmtMs(full.steady.lagMs.p99),
      x(ratios.steadyLagP99!),
    ],
    [
      '  lag p50 / p95',
      both((p) => p.steady.lagMs.p50, fmtMs) + ' / ' + both((p) => p.steady.lagMs.p95, fmtMs),
      `${fmtMs(full.steady.lagMs.p50)} / ${fmtMs(full.steady.lagMs.p95)}`,
      '',
    ],
    [
      '  CPU µs per event (relays, MariaDB, Kafka)',
      both(
        (p) => p.steady.systemCpuUsPerEvent,
        (n) => n.toFixed(0),
      ),
      full.steady.systemCpuUsPerEvent.toFixed(0),
      x(ratios.steadyCpuPerEvent!),
    ],
    [
      'retention: s per hour removed',
      `${small.secondsPerHour.toFixed(2)} s at ${fmtInt(small.tableEvents)} events`,
      `${full.retention!.secondsPerHour.toFixed(2)} s at ${fmtInt(full.retention!.tableEvents)} events`,
      x(ratios.retention!),
    ],
    [
      '  rows / s, buffer-pool reads / row',
      `${fmtInt(small.rowsPerSecond)}, ${small.bufferPoolReadsPerRow}`,
      `${fmtInt(full.retention!.rowsPerSecond)}, ${full.retention!.bufferPoolReadsPerRow}`,
      '',
    ],
  ];
  const readRows: string[][] = [];
  const readRatios: Record<string, number> = {};
  for (const route of ROUTES) {
    const a = empty.reads.routes[route];
    const b = full.reads.routes[route];
    if (!a && !b) continue;
    const r = a && b ? ratio(b.p99Ms, a.p99Ms) : NaN;
    readRatios[route] = r;
    const cell = (v: RouteResult | undefined) =>
      v ? `${v.p50Ms.toFixed(1)} / ${v.p99Ms.toFixed(1)}${v.non200 ? ` (${v.non200} non-200)` : ''}` : '—';
    readRows.push([route, cell(a), cell(b), x(r), b?.rows === null || b?.rows === undefined ? '' : String(b.rows)]);
  }

  const targets: string[][] = [
    ['ingest full ÷ empty', x(ratios.ingest!), `≥ ${TARGET.ratio}×`, verdict(ratios.ingest! >= TARGET.ratio)],
    ['publish full ÷ empty', x(ratios.publish!), `≥ ${TARGET.ratio}×`, verdict(ratios.publish! >= TARGET.ratio)],
    ['burst full ÷ empty', x(ratios.burst!), `≥ ${TARGET.ratio}×`, verdict(ratios.burst! >= TARGET.ratio)],
    [
      'steady lag p99 full ÷ empty',
      x(ratios.steadyLagP99!),
      `≤ ${TARGET.steadyLagGrowth}×`,
      verdict(ratios.steadyLagP99! <= TARGET.steadyLagGrowth),
    ],
    [
      'steady CPU per event full ÷ empty',
      x(ratios.steadyCpuPerEvent!),
      `≤ ${x(1 / TARGET.ratio)}`,
      verdict(ratios.steadyCpuPerEvent! <= 1 / TARGET.ratio),
    ],
    [
      'buffer-pool reads / ingested event (full)',
      String(full.ingest.bufferPoolReadsPerEvent),
      `≤ ${TARGET.bufferPoolReadsPerEvent}`,
      verdict(full.ingest.bufferPoolReadsPerEvent <= TARGET.bufferPoolReadsPerEvent),
    ],
  ];
  for (const route of ROUTES) {
    const b = full.reads.routes[route];
    const a = empty.reads.routes[route];
    if (!b || !a) continue;
    const worst = Math.max(a.p99Ms, b.p99Ms);
    targets.push([
      `read p99 ${route}`,
      `${b.p99Ms.toFixed(1)} ms (empty ${a.p99Ms.toFixed(1)})`,
      `≤ ${TARGET.readP99Ms} ms`,
      verdict(worst <= TARGET.readP99Ms && b.non200 === 0 && a.non200 === 0),
    ]);
  }
  targets.push([
    'retention s/hour full ÷ small fill (flat)',
    x(ratios.retention!),
    `≤ ${TARGET.retentionGrowth}×`,
    verdict(ratios.retention! <= TARGET.retentionGrowth),
  ]);

  const loadEnd = os.loadavg().map((l) => round(l, 2));
  const out: string[] = [];
  out.push('');
  out.push(
    `History benchmark${QUICK ? ' (QUICK — smaller history, short phases)' : ''}: ${machine.cpuCount}× ${machine.cpuModel}, ${machine.mariadb}, buffer pool ${round(BUFFER_POOL_BYTES / 1024 ** 2, 0)} MiB, ` +
      `${WEBHOOK_TRIGGERS + SCHEDULED_TRIGGERS} triggers; full = ${fmtInt(full.eventsAtStart)} events over 48 h (database ${round(fill.dbBytes / 1024 ** 3, 2)} GiB), empty = ${fmtInt(empty.eventsAtStart)}`,
  );
  out.push(
    `Fill: ${fmtInt(N)} events${EVENTS_ONLY ? '' : ` + ${fmtInt(fill.companions)} attempt and key rows`} in ${fill.fillSeconds.toFixed(1)} s (${fmtInt(fill.fillRate)} events/s); ${fmtInt(fill.caughtUp)} past 48 h swept before the full phase.`,
  );
  out.push('');
  out.push(table(['measurement', 'empty', 'full', 'full ÷ empty'], rows));
  out.push('');
  out.push(
    `Reads over HTTP, one at a time, ${READS * READ_REPEATS} calls each, the overview ${READS} (p50 / p99 ms); the overview's calls ${OVERVIEW_GAP_MS} ms apart, past its ${OVERVIEW_CACHE_MS} ms cache ` +
      `(fresh answers: empty ${empty.reads.overviewFreshAnswers}, full ${full.reads.overviewFreshAnswers} of ${READS}):`,
  );
  out.push(table(['route', 'empty', 'full', 'p99 full ÷ empty', 'rows'], readRows));
  out.push('');
  out.push(`ingest full ÷ empty: ${x(ratios.ingest!)}`);
  out.push(`publish full ÷ empty: ${x(ratios.publish!)}`);
  out.push(`burst full ÷ empty: ${x(ratios.burst!)}`);
  out.push(`steady lag p99 full ÷ empty: ${x(ratios.steadyLagP99!)}`);
  out.push(`steady CPU per event full ÷ empty: ${x(ratios.steadyCpuPerEvent!)}`);
  out.push(
    `control — load generator CPU per request, full ÷ empty: ${x(ratios.loadGeneratorCpuPerRequest!)} ` +
      `(${both(loadGenUs, (n) => n.toFixed(0))} → ${loadGenUs(full).toFixed(0)} µs; its work does not depend on the database, so far from 1× the machine's own speed moved)`,
  );
  for (const [route, r] of Object.entries(readRatios)) out.push(`read p99 ${route} full ÷ empty: ${x(r)}`);
  out.push(
    `retention s/hour full (${fmtInt(full.retention!.tableEvents)}) ÷ small fill (${fmtInt(small.tableEvents)}): ${x(ratios.retention!)}`,
  );
  out.push('');
  out.push(table(['measurement', 'measured', 'target', 'verdict'], targets));
  out.push('');
  out.push(`Where the CPU went (${os.cpus().length} cores; % of the whole machine):`);
  const phases: Array<[string, PhaseResult]> = after
    ? [
        ['empty (before)', empty],
        ['full', full],
        ['empty (after)', after],
      ]
    : [
        ['empty', empty],
        ['full', full],
      ];
  for (const [label, p] of phases) {
    out.push(cpuLine(`${label} ingest`, p.ingest.cpu, p.ingest.accepted));
    out.push(cpuLine(`${label} publish`, p.publish.cpu, p.publish.events));
    out.push(cpuLine(`${label} burst`, p.burst.cpu, p.burst.eventLogs));
    out.push(cpuLine(`${label} steady`, p.steady.cpu, p.steady.events));
  }
  out.push('');
  out.push(
    `Load average: ${machine.loadAverageAtStart.join(' ')} at start, ${loadEnd.join(' ')} at end (other work shares this machine and its MariaDB).`,
  );
  const warnings = [
    ...empty.burst.warnings.map((w) => `empty burst: ${w}`),
    ...full.burst.warnings.map((w) => `full burst: ${w}`),
    ...empty.reads.notes.map((w) => `empty reads: ${w}`),
    ...full.reads.notes.map((w) => `full reads: ${w}`),
    ...(after ? after.burst.warnings.map((w) => `empty (after) burst: ${w}`) : []),
    ...phases.flatMap(([label, p]) => p.steady.warnings.map((w) => `${label} steady: ${w}`)),
    ...phases.flatMap(([label, p]) =>
      p.steady.duplicatesOnKafka + p.burst.duplicatesOnKafka > 0
        ? [`${label}: ${p.burst.duplicatesOnKafka + p.steady.duplicatesOnKafka} duplicate messages on Kafka`]
        : [],
    ),
    ...phases.flatMap(([label, p]) =>
      [p.ingest.cpu, p.publish.cpu, p.burst.cpu, p.steady.cpu].flatMap((c) =>
        c.lost.length ? [`${label}: ${c.lost.join(', ')} went away during a phase — do not trust its figures`] : [],
      ),
    ),
    ...phases.flatMap(([label, p]) =>
      p.ingest.non2xx + p.ingest.errors > 0 ? [`${label} ingest: ${p.ingest.non2xx} non-2xx, ${p.ingest.errors} errors`] : [],
    ),
    ...[empty, full].flatMap((p, i) =>
      p.reads.overviewFreshAnswers < READS
        ? [`${i ? 'full' : 'empty'}: only ${p.reads.overviewFreshAnswers} of ${READS} overview answers were fresh computations`]
        : [],
    ),
  ];
  if (warnings.length) out.push('', 'Warnings:', ...warnings.map((w) => `  - ${w}`));
  process.stdout.write(`${out.join('\n')}\n`);

  const file = writeResults(`history${QUICK ? '-quick' : ''}`, {
    command: `npm run bench -- history ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { ...machine, loadAverageAtEnd: loadEnd },
    settings,
    targets: TARGET,
    verdicts: Object.fromEntries(targets.map((t) => [t[0], { measured: t[1], target: t[2], met: t[3] === 'met' }])),
    ratios: {
      ...Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 3)])),
      readP99: Object.fromEntries(Object.entries(readRatios).map(([k, v]) => [k, round(v, 3)])),
    },
    fill,
    results: { empty, full, ...(after ? { emptyAfter: after } : {}), smallFillRetention: small },
  });
  log(`results: ${file}`);
}

// Interrupted (Ctrl-C, or run.mjs passing a signal on): kill the processes, restore the buffer pool, drop the database.
runBench(
  'history',
  main,
  async () => {
    await Promise.allSettled([...live.procs].map((p) => p.kill('SIGKILL')));
    await live.restorePool?.().catch(() => undefined);
    if (live.env && !KEEP_DB) await live.env.cleanup();
  },
  30_000,
);
