/**
 * Shared pieces of the benchmarks (`npm run bench`): options and environments (one parser and one set-up
 * with the tests), the run and its interruption, percentiles, a progress line, a table printer, CPU accounting of the processes involved, and the
 * results writer (bench/results/<date>-<name>.json with the machine's facts).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import type { Db } from '../src/db/knex';
import { createTestEnv, KAFKA_BROKERS, type TestEnv } from '../test/helpers/env';
import { spawnRole, type RoleProcess } from '../test/helpers/proc';
import { validateTriggerConfig } from '../src/triggers/validate';
import { newTriggerId } from '../src/triggers/event-id';

export const BENCH_ROOT = __dirname;
/** Where benches write their results: bench/results, or BENCH_RESULTS_DIR (the suite's smoke runs use a temporary one). */
export const RESULTS_DIR = process.env.BENCH_RESULTS_DIR || path.join(BENCH_ROOT, 'results');

// ------------------------------------------------------------------------------- arguments, environment

// One parser and one environment set-up for the benchmarks and the tests (test/helpers/args.ts, env.ts).
export { choicesArg, envArg, intArg, listArg, numArg, optionalNumArg, parseArgs, type Args } from '../test/helpers/args';
export { deleteTopics } from '../test/helpers/env';

/** A benchmark's environment: a test environment of the bench kind (see createTestEnv). */
export type BenchEnv = TestEnv;

/**
 * createTestEnv's bench kind: `etp_bench_*` names, production settings, a bigger pool, the topics deleted
 * with the database; `existingDb` names a database to use (and migrate) instead of a new one (--reuse).
 */
export async function createBenchEnv(label: string, overrides: Record<string, string> = {}, existingDb?: string): Promise<BenchEnv> {
  const env = await createTestEnv(label, overrides, { kind: 'bench', existingDb });
  measuredServerPid ??= await dbServerPid(env.db);
  return env;
}

/** The pid of the server the bench's databases live on (dbServerPid, known once a bench env exists). */
let measuredServerPid: number | null = null;

/** The end of a bench's environment: dropped, or with --keep left in place (and said so). */
export async function closeBenchEnv(e: BenchEnv, keep: boolean, indent = ''): Promise<void> {
  if (!keep) return e.cleanup();
  log(`${indent}--keep: database ${e.dbName} and topic ${e.topic} kept`);
  await e.keep();
}

/**
 * Runs a bench's main and exits: 0 when it is done, 1 with the error when it failed. On SIGINT/SIGTERM
 * (Ctrl-C, or run.mjs passing a signal on) `onInterrupt` stops what runs and drops what was made, within
 * `graceMs`, then exit 130; a second signal exits at once.
 */
export function runBench(name: string, main: () => Promise<void>, onInterrupt?: () => Promise<unknown>, graceMs = 20_000): void {
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (interrupted || !onInterrupt) process.exit(130);
      interrupted = true;
      log(`\n${sig}: stopping processes and dropping the bench databases…`);
      const t = setTimeout(() => process.exit(130), graceMs);
      void onInterrupt()
        .catch(() => undefined)
        .finally(() => {
          clearTimeout(t);
          process.exit(130);
        });
    });
  }
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (err: unknown) => {
      process.stderr.write(`${name} benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}

/** The processes and environments a bench has running, for its interrupt handler to stop and drop. */
export class Live {
  readonly procs = new Set<RoleProcess>();
  readonly envs = new Set<BenchEnv>();

  /** Tracks `e` while `fn` runs, then drops it (or keeps it with --keep). */
  async withEnv<T>(e: BenchEnv, keep: boolean, fn: (e: BenchEnv) => Promise<T>, indent = ''): Promise<T> {
    this.envs.add(e);
    try {
      return await fn(e);
    } finally {
      this.envs.delete(e);
      await closeBenchEnv(e, keep, indent);
    }
  }

  /** Kills every tracked process and drops every tracked environment (an interrupted run). */
  async abandon(): Promise<void> {
    await Promise.allSettled([...this.procs].map((p) => p.kill('SIGKILL')));
    await Promise.allSettled([...this.envs].map((e) => e.cleanup()));
  }
}

// ------------------------------------------------------------------------------------------ statistics

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface Summary {
  count: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(values: number[]): Summary {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return {
    count: s.length,
    min: s.length ? s[0]! : NaN,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s.length ? s[s.length - 1]! : NaN,
    mean: s.length ? sum / s.length : NaN,
  };
}

// ------------------------------------------------------------------------------------------- printing

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

/** Node flags that make a spawned process write a V8 CPU profile into `dir` when it stops (none without a dir). */
export function cpuProfArgs(dir: string | undefined): string[] {
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(dir)}`] : [];
}

export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * A progress line on stderr while a long phase works: `render()` every `everyMs` (rewritten in place on a
 * terminal, one line each time otherwise). Returns stop().
 */
export function progress(render: () => string | Promise<string>, everyMs = 2000): () => void {
  const tty = process.stderr.isTTY;
  let busy = false;
  let shown = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void Promise.resolve()
      .then(render)
      .then(
        (text) => {
          if (tty) process.stderr.write(`\r\x1b[2K  … ${text}`);
          else process.stderr.write(`  … ${text}\n`);
          shown = true;
        },
        () => undefined,
      )
      .finally(() => (busy = false));
  }, everyMs);
  return () => {
    clearInterval(timer);
    if (tty && shown) process.stderr.write('\r\x1b[2K');
  };
}

/** A plain aligned table (first column left, the others right-aligned). */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

// ------------------------------------------------------------------------------------------ CPU usage

/** CPU seconds (user + system) of a process from /proc (Linux only; null elsewhere or when it is gone). */
export function cpuSecondsOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3; utime/stime are 14/15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

const CLOCK_TICKS = 100; // USER_HZ on every Linux this runs on

/**
 * A server's CPU time so far, in ns: the sum of its threads' run time (/proc/<pid>/task/<tid>/schedstat), read
 * around single statements by the benches that measure the database server's share (fire-cost, claim-walk).
 */
export function serverCpuNs(pid: number): number {
  let sum = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* thread gone */
    }
  }
  return sum;
}

/** A statement on one connection taken from a knex pool (mysql2's callback API): the rows, or the result. */
export type ConnQuery = (sql: string, values?: unknown[]) => Promise<unknown>;

/** A connection of `db`'s pool, held until `release`, and its query function. */
export async function heldConnection(db: Db): Promise<{ query: ConnQuery; release: () => void }> {
  const conn = (await db.client.acquireConnection()) as {
    query: (o: { sql: string; values: unknown[] }, cb: (err: unknown, rows: unknown) => void) => void;
  };
  return {
    query: (sql, values = []) => new Promise((res, rej) => conn.query({ sql, values }, (err, rows) => (err ? rej(err) : res(rows)))),
    release: () => db.client.releaseConnection(conn),
  };
}

/**
 * The frame of a bench that reads the database server's CPU from /proc around statements it sends on one
 * connection (fire-cost, claim-walk): a bench environment tracked by `live`, the server's pid (it must run on
 * this machine), one held connection; the connection released and the environment dropped after `body`.
 */
export async function withMeasuredServer(
  name: string,
  live: Live,
  body: (m: { e: BenchEnv; pid: number; q: ConnQuery }) => Promise<void>,
): Promise<void> {
  await live.withEnv(await createBenchEnv(name.replace(/[^a-z0-9]/g, '')), false, async (e) => {
    const pid = await dbServerPid(e.db);
    if (pid === null) throw new Error(`${name} reads the database server from /proc: run it against a server on this machine`);
    const conn = await heldConnection(e.db);
    try {
      await body({ e, pid, q: conn.query });
    } finally {
      conn.release();
    }
  });
}

/**
 * The pid of the server `db` is connected to, from its pid file (a local server; null if unreadable). Where
 * several MariaDB servers run (the machine's own and one a bench started for itself on another port), the
 * first one servicePids finds by name need not be the one measured.
 */
export async function dbServerPid(db: Db): Promise<number | null> {
  try {
    const [[row]] = (await db.raw('SELECT @@pid_file AS f, @@datadir AS d')) as [[{ f: string; d: string }]];
    const file = path.isAbsolute(row.f) ? row.f : path.join(row.d, row.f);
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && fs.existsSync(`/proc/${pid}`) ? pid : null;
  } catch {
    return null;
  }
}

/**
 * The pids of the MariaDB/MySQL server and Kafka broker (Linux only): the server the bench env was made on
 * (its pid file), else the first found by name in /proc, as the broker is.
 */
export function servicePids(): { mysqld: number | null; kafka: number | null; kafkaVersion: string | null } {
  const out = { mysqld: null as number | null, kafka: null as number | null, kafkaVersion: null as string | null };
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return out;
  }
  for (const e of entries) {
    try {
      const comm = fs.readFileSync(`/proc/${e}/comm`, 'utf8').trim();
      if (comm === 'mariadbd' || comm === 'mysqld') out.mysqld ??= Number(e);
      else if (comm === 'java') {
        const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8');
        if (/\bkafka\.Kafka\b/.test(cmd)) {
          out.kafka ??= Number(e);
          out.kafkaVersion ??= /kafka[-_](?:2\.\d+-)?(\d+\.\d+\.\d+)/.exec(cmd)?.[1] ?? null;
        }
      }
    } catch {
      /* process gone */
    }
  }
  out.mysqld = measuredServerPid ?? out.mysqld;
  return out;
}

/** CPU seconds used by named processes between begin() and end(), plus wall time and the machine's cores. */
export class CpuMeter {
  private start = new Map<string, number>();
  private t0 = 0;
  private readonly lost = new Set<string>();
  constructor(private readonly pids: () => Record<string, number[]>) {}

  begin(): this {
    this.t0 = performance.now();
    this.lost.clear();
    this.start = this.sample();
    return this;
  }

  private sample(): Map<string, number> {
    const m = new Map<string, number>();
    for (const [name, list] of Object.entries(this.pids())) {
      let sum = 0;
      for (const pid of list) {
        if (pid === process.pid) {
          const u = process.cpuUsage();
          sum += (u.user + u.system) / 1e6;
          continue;
        }
        const s = cpuSecondsOf(pid);
        if (s === null) this.lost.add(name);
        sum += s ?? 0;
      }
      m.set(name, sum);
    }
    return m;
  }

  /**
   * CPU seconds per process group over the interval, and the share of the whole machine each used. `lost`
   * names groups with a process that went away meanwhile (e.g. a broker restarted by someone else): their
   * figures, and the phase's, are not to be trusted.
   */
  end(): CpuUse {
    const wall = (performance.now() - this.t0) / 1000;
    const now = this.sample();
    const cpuSeconds: Record<string, number> = {};
    const machineShare: Record<string, number> = {};
    for (const [k, v] of now) {
      cpuSeconds[k] = round(v - (this.start.get(k) ?? 0), 2);
      machineShare[k] = round((v - (this.start.get(k) ?? 0)) / (wall * os.cpus().length), 3);
    }
    return { wallSeconds: round(wall, 3), cpuSeconds, machineShare, lost: [...this.lost] };
  }
}

export interface CpuUse {
  wallSeconds: number;
  cpuSeconds: Record<string, number>;
  machineShare: Record<string, number>;
  lost: string[];
}

/**
 * CPU µs per event of each process group over a phase (cpuSeconds × 10⁶ ÷ events), and their sum: the
 * figure that says what one event costs, and is less sensitive to other load on the machine than rates.
 */
export function cpuPerEvent(c: CpuUse, events: number): Record<string, number> {
  const out: Record<string, number> = {};
  if (events <= 0) return out;
  let total = 0;
  for (const [k, v] of Object.entries(c.cpuSeconds)) {
    out[k] = round((v * 1e6) / events, 1);
    total += v;
  }
  out.total = round((total * 1e6) / events, 1);
  return out;
}

/** `api 123 µs, mariadb 45 µs, … total 200 µs` per event (see cpuPerEvent). */
export function fmtCpuPerEvent(c: CpuUse, events: number, unit = 'event'): string {
  const per = cpuPerEvent(c, events);
  const parts = Object.entries(per).map(([k, v]) => `${k} ${Math.round(v)}`);
  return parts.length ? `CPU µs per ${unit}: ${parts.join(', ')}` : `CPU µs per ${unit}: —`;
}

/** The median of `xs` (of an even count, the lower middle one: a verdict never rests on an average of two). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((x, y) => x - y);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

// -------------------------------------------------------------------------------------------- results

export interface MachineFacts {
  os: string;
  cpuModel: string;
  cpuCount: number;
  totalMemoryGiB: number;
  node: string;
  mariadb: string;
  librdkafka: string;
  kafkaBroker: string | null;
  db: Record<string, string>;
  loadAverageAtStart: number[];
}

/** The facts a reader needs to judge the figures: hardware, versions, and the database's durability settings. */
export async function machineFacts(db: Db): Promise<MachineFacts> {
  const cpus = os.cpus();
  const [[ver]] = (await db.raw('SELECT VERSION() AS v')) as [[{ v: string }]];
  const [vars] = (await db.raw(
    `SHOW GLOBAL VARIABLES WHERE Variable_name IN
       ('innodb_flush_log_at_trx_commit','sync_binlog','log_bin','innodb_buffer_pool_size','innodb_log_file_size',
        'innodb_doublewrite','innodb_flush_method','max_connections')`,
  )) as [Array<{ Variable_name: string; Value: string }>];
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    totalMemoryGiB: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    mariadb: ver.v,
    librdkafka: Kafka.librdkafkaVersion,
    kafkaBroker: servicePids().kafkaVersion,
    db: Object.fromEntries(vars.map((v) => [v.Variable_name, v.Value])),
    loadAverageAtStart: os.loadavg().map((l) => round(l, 2)),
  };
}

/** bench/results/<YYYY-MM-DD>-<name>.json (local date). Returns the path written. */
export function writeResults(name: string, data: Record<string, unknown>): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const d = new Date();
  const date = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  const file = path.join(RESULTS_DIR, `${date}-${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ name, date: d.toISOString(), ...data }, null, 2)}\n`);
  return file;
}

// ------------------------------------------------------------------------------------------- helpers

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Polls `fn` until it returns true; the interval may depend on the last value (fine near the end). */
export async function waitFor(
  fn: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs: number | (() => number); what: string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await sleep(typeof opts.intervalMs === 'number' ? opts.intervalMs : opts.intervalMs());
  }
}

// -------------------------------------------------------------------------------------- Kafka reader

export interface Seen {
  /** Date.now() when the consumer got the message (first copy). */
  consumedAt: number;
  /** The message timestamp: the relay's produce() time. */
  producedAt: number;
  /** scheduled_for of the event, ms since epoch (NaN when null). */
  scheduledFor: number;
}

/**
 * A no-op consumer in its own group from the earliest offset that notes, per event id (the `event-id`
 * header), when it first saw the message; further copies are counted as duplicates.
 */
export class BenchReader {
  readonly seen = new Map<string, Seen>();
  duplicates = 0;
  total = 0;
  private readonly consumer: Kafka.KafkaConsumer;

  constructor(private readonly topic: string) {
    this.consumer = new Kafka.KafkaConsumer(
      {
        'group.id': `etp-bench-reader-${randomBytes(4).toString('hex')}`,
        'metadata.broker.list': KAFKA_BROKERS,
        'enable.auto.commit': false,
      },
      { 'auto.offset.reset': 'earliest' },
    );
  }

  /**
   * Connects, subscribes and resolves once partitions are assigned (so a later burst is read as it lands).
   * Flowing mode: node-rdkafka's consume loop hands over each message as it arrives, so the time noted is
   * the arrival time (consume(n) would hold a batch until n messages or a gap of the consume timeout).
   */
  async start(timeoutMs = 30_000): Promise<this> {
    await new Promise<void>((resolve, reject) => this.consumer.connect({ timeout: 15_000 }, (err) => (err ? reject(err) : resolve())));
    this.consumer.setDefaultConsumeTimeout(100);
    // After an empty poll the loop would otherwise sleep 500 ms (node-rdkafka's default) before polling again.
    this.consumer.setDefaultConsumeLoopTimeoutDelay(0);
    this.consumer.on('data', (m) => this.note(m, Date.now()));
    this.consumer.subscribe([this.topic]);
    this.consumer.consume();
    await waitFor(async () => this.consumer.assignments().length > 0, { timeoutMs, intervalMs: 100, what: 'partition assignment' });
    return this;
  }

  private note(m: Kafka.Message, now: number): void {
    this.total++;
    let id: string | undefined;
    for (const h of m.headers ?? []) {
      const v = h['event-id'];
      if (v !== undefined) id = Buffer.isBuffer(v) ? v.toString() : String(v);
    }
    if (!id) return;
    if (this.seen.has(id)) {
      this.duplicates++;
      return;
    }
    let scheduledFor = NaN;
    try {
      const value = JSON.parse((m.value as Buffer).toString('utf8')) as { scheduled_for?: string | null };
      if (value.scheduled_for) scheduledFor = Date.parse(value.scheduled_for);
    } catch {
      /* not ours */
    }
    this.seen.set(id, { consumedAt: now, producedAt: m.timestamp ?? NaN, scheduledFor });
  }

  get distinct(): number {
    return this.seen.size;
  }

  async stop(): Promise<void> {
    try {
      this.consumer.unsubscribe();
    } catch {
      /* ignore */
    }
    await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
  }
}

/**
 * Messages on a topic (the sum of its partitions' high − low watermarks), from one connected client: a
 * cheap progress probe that puts no load on the database being measured.
 */
export class Watermarks {
  private readonly c = new Kafka.KafkaConsumer(
    { 'group.id': `etp-bench-wm-${randomBytes(4).toString('hex')}`, 'metadata.broker.list': KAFKA_BROKERS },
    {},
  );

  constructor(
    private readonly topic: string,
    private readonly partitions: number,
  ) {}

  async connect(): Promise<this> {
    await new Promise<void>((resolve, reject) => this.c.connect({ timeout: 15_000 }, (err) => (err ? reject(err) : resolve())));
    return this;
  }

  async count(): Promise<number> {
    const parts = await Promise.all(
      Array.from(
        { length: this.partitions },
        (_, p) =>
          new Promise<number>((resolve, reject) =>
            this.c.queryWatermarkOffsets(this.topic, p, 10_000, (err, o) =>
              err ? reject(new Error(err.message)) : resolve(o.highOffset - o.lowOffset),
            ),
          ),
      ),
    );
    return parts.reduce((a, b) => a + b, 0);
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => this.c.disconnect(() => resolve()));
  }
}

/** How many messages a topic holds, from a client connected for the one question. */
export async function topicMessageCount(topic: string, partitions: number): Promise<number> {
  const w = await new Watermarks(topic, partitions).connect();
  try {
    return await w.count();
  } finally {
    await w.close();
  }
}

/**
 * Starts k `node dist/main.js <role>` processes; if any fails to start, stops the others and throws.
 * `live` tracks them so an interrupted run can kill what is still running.
 */
export async function spawnRoles(
  role: string,
  env: Record<string, string>,
  k: number,
  live: Set<RoleProcess>,
  nodeArgs: string[] = [],
): Promise<RoleProcess[]> {
  const procs = await Promise.allSettled(Array.from({ length: k }, () => spawnRole(role, env, 90_000, nodeArgs)));
  const ok = procs.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []));
  ok.forEach((p) => live.add(p));
  const failed = procs.find((p) => p.status === 'rejected');
  if (failed) {
    await stopRoles(ok, live);
    throw (failed as PromiseRejectedResult).reason;
  }
  return ok;
}

/** SIGTERM, then SIGKILL after 15 s. */
export async function stopRoles(procs: RoleProcess[], live: Set<RoleProcess>): Promise<void> {
  await Promise.all(
    procs.map(async (p) => {
      live.delete(p);
      const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
      await p.kill('SIGTERM');
      clearTimeout(t);
    }),
  );
}

/** Time triggers whose (pending) schedule rows fall at the given instants, bulk-inserted (the API would take minutes for 100k); returns their ids in `fireTimes` order. */
export async function insertTriggersAt(db: Db, fireTimes: number[], onDone: (n: number) => void = () => undefined): Promise<string[]> {
  const now = new Date();
  const v = validateTriggerConfig(
    'time_scheduled',
    { endpoint: 'http://127.0.0.1:9/none', run_at: new Date(Date.now() + 3600_000).toISOString(), payload: { n: 1 } },
    now,
  );
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  const chunk = 1000;
  const ids: string[] = [];
  for (let i = 0; i < fireTimes.length; i += chunk) {
    const rows = fireTimes.slice(i, i + chunk).map((at, j) => ({
      id: newTriggerId(), // as the API creates them
      name: `steady-${i + j}`,
      type: 'time_scheduled',
      status: 'active',
      config: JSON.stringify({ ...v.config, run_at: new Date(at).toISOString() }),
      version: 1,
      created_at: now,
      updated_at: now,
      fire_at: new Date(at),
    }));
    await db('triggers').insert(rows.map(({ fire_at: _f, ...t }) => t));
    await db('trigger_schedules').insert(
      rows.map((r) => ({ trigger_id: r.id, fire_at: r.fire_at, status: 'pending', created_at: now, updated_at: now })),
    );
    for (const r of rows) ids.push(r.id);
    onDone(i + rows.length);
  }
  return ids;
}
