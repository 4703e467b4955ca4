/**
 * The platform side by side with the job queues people would pick instead:
 * `npm run bench -- peers [--quick] [--systems=us,graphile-worker,pg-boss,bullmq] [--workers=1,4]
 * [--only=burst,steady,throughput] [--settled-idle=<s>] [--cpu-prof=<dir>] [--relay-node-args="<flags>"] [--relay-env=K=V,…]`.
 *
 * Systems
 *   us               time triggers / webhook events → `node dist/main.js relay` × k → Kafka `trigger-events`
 *                    → a no-op Kafka consumer in this process (BenchReader); MariaDB + Kafka as `npm run services` runs them.
 *   graphile-worker  PostgreSQL; k worker processes (bench/peers/proc.mjs) with a no-op task.
 *   pg-boss          PostgreSQL; k worker processes with a no-op batch handler.
 *   bullmq           Redis (the bench's own instance, AOF appendfsync everysec); k worker processes, no-op processor.
 * Every peer runs in a fresh database (PostgreSQL) or a flushed Redis, dropped afterwards; peers' libraries
 * live in bench/peers/ (own package.json, installed here on demand with `npm ci --prefix bench/peers`).
 *
 * Workloads (each with k = 1 and k = 4 worker/relay processes; systems interleaved per workload)
 *   burst       BURST jobs all due at one instant T, created beforehand (time triggers; run_at; startAfter;
 *               delayed jobs); T → last consumed, jobs/s, lag = consumed − T.
 *   steady      RATE due jobs/s for SECONDS s, created beforehand; lag = consumed − due; CPU seconds of the
 *               system's own processes (us: relays + mariadbd + kafka; peers: workers + postgres / redis).
 *               Idle CPU twice: settled (the system up with nothing queued, --settled-idle s, 10, quick 5, after
 *               twice as long left quiet, before the jobs are created), and the quiet moment between the jobs'
 *               creation and the first due job.
 *   throughput  enqueue N immediately due jobs as fast as possible (workers/relays not running), then start
 *               them and drain: enqueue/s and drain/s (first → last consumed). Our enqueue is the product's
 *               bulk path: `POST /api/v1/webhook/{id}/batch` (500 events a request) to one api process;
 *               the peers' are their bulk client calls (addJobs / insert / addBulk, 500 jobs a call); 4 in flight each.
 * "Consumed" = the moment a job reaches the consumer: our Kafka consumer receiving the message, a peer's
 * handler being called (noted with Date.now() in the worker process).
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { ensureTopics } from '../src/kafka/producer';
import { insertScheduledTriggers } from '../test/helpers/fixtures';
import { spawnRole, type RoleProcess } from '../test/helpers/proc';
import {
  BenchReader,
  cpuProfArgs,
  createBenchEnv,
  cpuSecondsOf,
  fmtInt,
  fmtMs,
  log,
  machineFacts,
  choicesArg,
  envArg,
  intArg,
  listArg,
  numArg,
  parseArgs,
  runBench,
  percentile,
  progress,
  round,
  servicePids,
  sleep,
  summarize,
  table,
  waitFor,
  writeResults,
  type BenchEnv,
  type Summary,
  spawnRoles,
  stopRoles,
  insertTriggersAt,
} from './lib';
import { postJson } from './webhooks';

// ------------------------------------------------------------------------------------------- settings

const args = parseArgs();
const QUICK = args.flags.has('quick');
/** --cpu-prof=<dir>: our relays run with `node --cpu-prof`, their profiles written to <dir> as they stop. */
const CPU_PROF_DIR = args.values.get('cpu-prof');
/** --relay-node-args="<flags>": node/V8 flags for our relay processes, space separated (`--relay-node-args=--max-semi-space-size=32`). */
const RELAY_NODE_ARGS = (args.values.get('relay-node-args') ?? '').split(' ').filter(Boolean);
/** --relay-env=K=V,K=V: settings for our relay processes, over the bench's own (`--relay-env=RELAY_FIRE_MODE=outbox`), as the history bench's. */
const RELAY_ENV = envArg(args, 'relay-env');
const BURST = intArg(args, 'burst', QUICK ? 5_000 : 50_000);
/**
 * --warmup=<jobs>: before the measured workloads, each system runs one burst of this many jobs that is not
 * measured (--no-warmup: none), so the servers are warm as in a long-running deployment: Kafka's JVM compiles its hot
 * paths in the first tens of thousands of messages, and without it our first measured burst paid for that
 * (the broker's CPU per event 24 µs in a session's first burst, 8–15 afterwards). The relays and the peers'
 * worker processes are still started afresh for every workload, so their own warm-up stays in the measure.
 */
const WARMUP = args.flags.has('no-warmup') ? 0 : intArg(args, 'warmup', QUICK ? 1_000 : 5_000);
const RATE = intArg(args, 'rate', 2_000);
const SECONDS = numArg(args, 'seconds', QUICK ? 10 : 60);
/**
 * steady: seconds of idle measured once the system is up with nothing queued, after twice as long left quiet
 * (before the jobs are created, so the steady run's own timing is as without it); 0 leaves it out. A relay
 * just started is not yet idle: V8's memory reducer runs its full collections some seconds after start-up
 * (an idle relay alone: 0.014 CPU-s/s from 5 s on, 0.036 over its 15th to 20th second).
 */
const SETTLED_IDLE_SECONDS = numArg(args, 'settled-idle', QUICK ? 5 : 10);
const SETTLED_IDLE_MS = SETTLED_IDLE_SECONDS * 1000;
const N = intArg(args, 'n', QUICK ? 20_000 : 200_000);
const ENQUEUE_BATCH = intArg(args, 'batch', 500);
const INFLIGHT = intArg(args, 'inflight', 4);
const REDIS_PORT = intArg(args, 'redis-port', 6380);
const PG_URL = (args.values.get('pg-url') ?? process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/').replace(/\/?$/, '/');
const WEBHOOK_TRIGGERS = intArg(args, 'webhooks', 256); // distinct webhook triggers (Kafka keys, outbox shards)

const ALL_SYSTEMS = ['us', 'graphile-worker', 'pg-boss', 'bullmq'] as const;
type System = (typeof ALL_SYSTEMS)[number];
type Peer = Exclude<System, 'us'>;
const ALIASES: Record<string, System> = {
  graphile: 'graphile-worker',
  graphileworker: 'graphile-worker',
  pgboss: 'pg-boss',
  bull: 'bullmq',
};
const ALL_WORKLOADS = ['burst', 'steady', 'throughput'] as const;
type Workload = (typeof ALL_WORKLOADS)[number];

const SYSTEMS = choicesArg(args, 'systems', ALL_SYSTEMS, ALIASES);
const WORKLOADS = choicesArg(args, 'only', ALL_WORKLOADS);
const WORKERS = listArg(args, 'workers', '1,4').map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new Error(`--workers=${s}: expected integers 1..16`);
  return n;
});

const PEERS_DIR = path.join(__dirname, 'peers');
const REDIS_DIR = path.join(os.tmpdir(), `etp-bench-redis-${REDIS_PORT}`);

/**
 * Each peer's settings for throughput, from its own documentation (recorded in the results):
 * - graphile-worker: the configuration of its performance page (worker.graphile.org/docs/performance):
 *   concurrentJobs 24, maxPoolSize 25, localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0.
 *   pollInterval (default 2000 ms; it is how jobs scheduled for later are found) set to 250 ms, our relays'
 *   SCHEDULER_INTERVAL ceiling. (Pools open lazily: 4 such processes held at most ~18 connections here.)
 * - pg-boss 10: work() fetches `batchSize` jobs per poll and waits out `pollingIntervalSeconds` between polls
 *   (default 1 job every 2 s); teamSize is gone in 10 — more work() calls per process give more loops.
 *   batchSize 500 (our relays' batch), pollingIntervalSeconds 0.5 (its minimum), 4 work() loops a process.
 * - BullMQ: its production guide — Redis AOF with appendfsync everysec, maxmemory-policy noeviction,
 *   removeOnComplete {count: 1000}, removeOnFail {count: 5000}; concurrency 50 (its concurrency guide's example).
 * - us: the product's defaults (read from the config the relays load; recorded in the results), except that
 *   several relays on this one host run with RELAY_CONCURRENCY=1 each, as the README's Operations section
 *   recommends for relays that share a host (MANY_RELAYS_ENV).
 */
function peerSettings(peer: Peer): Record<string, unknown> {
  switch (peer) {
    case 'graphile-worker':
      return {
        concurrentJobs: 24,
        maxPoolSize: 25,
        localQueueSize: 500,
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
        pollInterval: 250,
      };
    case 'pg-boss':
      return { batchSize: 500, pollingIntervalSeconds: 0.5, workersPerProcess: 4, poolMax: 10 };
    case 'bullmq':
      return { concurrency: 50, removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } };
  }
}

// ---------------------------------------------------------------------------------------- CPU meters

interface ProcStat {
  ppid: number;
  /** utime + stime, seconds */
  self: number;
  /** cutime + cstime (children waited for), seconds */
  children: number;
}

function readStat(pid: number): ProcStat | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      ppid: Number(rest[1]),
      self: (Number(rest[11]) + Number(rest[12])) / 100,
      children: (Number(rest[13]) + Number(rest[14])) / 100,
    };
  } catch {
    return null;
  }
}

function allPids(): number[] {
  try {
    return fs
      .readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .map(Number);
  } catch {
    return [];
  }
}

function commOf(pid: number): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/**
 * CPU seconds of a process and all its descendants, plus what its exited children used (cutime): PostgreSQL's
 * backends come and go, and the postmaster reaps them, so the difference of two samples is the tree's use.
 */
function treeCpuSeconds(root: number): number {
  const stats = new Map<number, ProcStat>();
  for (const pid of allPids()) {
    const s = readStat(pid);
    if (s) stats.set(pid, s);
  }
  const rootStat = stats.get(root);
  if (!rootStat) return NaN; // gone: the meter reports the group as lost
  const kids = new Map<number, number[]>();
  for (const [pid, s] of stats) kids.set(s.ppid, [...(kids.get(s.ppid) ?? []), pid]);
  let sum = rootStat.children;
  const stack = [root];
  while (stack.length) {
    const p = stack.pop()!;
    sum += stats.get(p)?.self ?? 0;
    stack.push(...(kids.get(p) ?? []));
  }
  return sum;
}

function findPostmaster(): number | null {
  for (const pid of allPids()) {
    if (commOf(pid) !== 'postgres') continue;
    const s = readStat(pid);
    if (s && commOf(s.ppid) !== 'postgres') return pid;
  }
  return null;
}

interface CpuResult {
  wallSeconds: number;
  /** CPU seconds per group over the interval */
  cpuSeconds: Record<string, number>;
  /** the system's own processes: every group but "bench" */
  systemCpuSeconds: number;
  /** share of the whole machine (all cores) the system's processes used */
  systemMachineShare: number;
  /** groups with a process that went away during the interval (e.g. a broker restarted by someone else): not to be trusted */
  lost: string[];
}

/** CPU seconds per named group (each a function summing its processes) between begin() and end(). */
class GroupMeter {
  private t0 = 0;
  private start: Record<string, number> = {};
  constructor(private readonly groups: Record<string, () => number>) {}
  private sample(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.groups).map(([k, f]) => [k, f()]));
  }
  begin(): this {
    this.t0 = performance.now();
    this.start = this.sample();
    return this;
  }
  end(): CpuResult {
    const wall = (performance.now() - this.t0) / 1000;
    const now = this.sample();
    const lost = Object.keys(now).filter((k) => !Number.isFinite(now[k]!) || !Number.isFinite(this.start[k] ?? NaN));
    const cpuSeconds = Object.fromEntries(
      Object.entries(now).map(([k, v]) => [k, lost.includes(k) ? 0 : round(v - (this.start[k] ?? 0), 2)]),
    );
    const systemCpuSeconds = round(
      Object.entries(cpuSeconds)
        .filter(([k]) => k !== 'bench')
        .reduce((a, [, v]) => a + v, 0),
      2,
    );
    return {
      wallSeconds: round(wall, 2),
      cpuSeconds,
      systemCpuSeconds,
      systemMachineShare: round(systemCpuSeconds / (wall * os.cpus().length), 3),
      lost,
    };
  }
}

const benchCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const pidsCpu = (pids: () => number[]) => () => pids().reduce((a, p) => a + (cpuSecondsOf(p) ?? NaN), 0);

// ------------------------------------------------------------------------------------------ services

function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function waitPort(host: string, port: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await portOpen(host, port)) return true;
    await sleep(250);
  }
  return false;
}

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin'])) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** `node bench/peers/admin.mjs <cmd> …` → its JSON answer (throws with its stderr). */
function admin<T = Record<string, unknown>>(...cmd: string[]): T {
  const r = spawnSync(process.execPath, [path.join(PEERS_DIR, 'admin.mjs'), ...cmd], { cwd: PEERS_DIR, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`admin ${cmd[0]}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  return JSON.parse(r.stdout) as T;
}

/** Installs bench/peers' dependencies when missing. Returns why the peers cannot run, or null. */
function ensurePeersInstalled(): string | null {
  if (fs.existsSync(path.join(PEERS_DIR, 'node_modules', '.package-lock.json'))) return null;
  log('peers: bench/peers/node_modules is missing — npm ci --prefix bench/peers --include=dev');
  const r = spawnSync('npm', ['ci', '--prefix', PEERS_DIR, '--include=dev', '--no-audit', '--no-fund'], { stdio: ['ignore', 2, 2] });
  if (r.status !== 0) return `npm ci --prefix bench/peers failed (${r.error?.message ?? `exit ${r.status}`})`;
  return null;
}

/** The local PostgreSQL: reachable, or started if installed but stopped. Returns why it cannot be used, or null. */
async function ensurePostgres(): Promise<string | null> {
  const u = new URL(PG_URL);
  const host = u.hostname || '127.0.0.1';
  const port = Number(u.port || 5432);
  if (await portOpen(host, port)) return null;
  const local = ['127.0.0.1', 'localhost', '::1'].includes(host);
  const versions = fs.existsSync('/etc/postgresql') ? fs.readdirSync('/etc/postgresql') : [];
  if (!local || versions.length === 0 || !which('pg_ctlcluster')) {
    return `PostgreSQL does not answer at ${host}:${port} and no local cluster is installed (/etc/postgresql, pg_ctlcluster)`;
  }
  for (const v of versions) {
    log(`PostgreSQL: starting cluster ${v}/main (pg_ctlcluster --skip-systemctl-redirect ${v} main start)`);
    const r = spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', v, 'main', 'start'], { encoding: 'utf8' });
    if (r.status !== 0) log(`  pg_ctlcluster: ${(r.stderr || r.stdout).trim()}`);
  }
  return (await waitPort(host, port, 30_000)) ? null : `PostgreSQL ${versions.join(', ')} installed but did not start on ${host}:${port}`;
}

interface RedisState {
  reason: string | null;
  /** pid of the instance this run started (stopped at the end), or null */
  startedPid: number | null;
  pid: number | null;
}

/**
 * The bench's own durable Redis on REDIS_PORT (AOF, appendfsync everysec, noeviction), started here; the
 * machine's default Redis (6379, no persistence) is left alone. An instance already on that port is used only
 * if it has those settings.
 */
async function ensureRedis(): Promise<RedisState> {
  const pidFile = path.join(REDIS_DIR, 'redis.pid');
  const pidFromFile = (): number | null => {
    try {
      const p = Number(fs.readFileSync(pidFile, 'utf8').trim());
      return p > 0 && readStat(p) ? p : null;
    } catch {
      return null;
    }
  };
  if (await portOpen('127.0.0.1', REDIS_PORT)) {
    const f = admin<{ config: Record<string, string> }>('redis-facts', String(REDIS_PORT));
    const ours = pidFromFile();
    if (f.config.appendonly === 'yes' && f.config.appendfsync === 'everysec' && f.config['maxmemory-policy'] === 'noeviction') {
      return { reason: null, startedPid: ours, pid: ours ?? findRedisPid(REDIS_PORT) };
    }
    return {
      reason: `127.0.0.1:${REDIS_PORT} answers but runs appendonly=${f.config.appendonly}, appendfsync=${f.config.appendfsync}, maxmemory-policy=${f.config['maxmemory-policy']} (not durable): stop it or pass --redis-port`,
      startedPid: null,
      pid: null,
    };
  }
  const server = which('redis-server');
  if (!server) return { reason: 'redis-server is not installed', startedPid: null, pid: null };
  fs.rmSync(REDIS_DIR, { recursive: true, force: true });
  fs.mkdirSync(REDIS_DIR, { recursive: true });
  const argv = [
    '--daemonize', 'yes', '--bind', '127.0.0.1', '--port', String(REDIS_PORT),
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction',
    '--dir', REDIS_DIR, '--pidfile', pidFile, '--logfile', path.join(REDIS_DIR, 'redis.log'),
  ]; // prettier-ignore
  log(`Redis: starting the bench's own instance: redis-server ${argv.map((a) => (a === '' ? '""' : a)).join(' ')}`);
  const r = spawnSync(server, argv, { encoding: 'utf8' });
  if (r.status !== 0 || !(await waitPort('127.0.0.1', REDIS_PORT, 15_000))) {
    return { reason: `redis-server did not start on ${REDIS_PORT}: ${(r.stderr || r.stdout || '').trim()}`, startedPid: null, pid: null };
  }
  await waitFor(async () => pidFromFile() !== null, { timeoutMs: 5000, intervalMs: 50, what: 'the Redis pid file' }).catch(() => undefined);
  const pid = pidFromFile();
  return { reason: null, startedPid: pid, pid };
}

function findRedisPid(port: number): number | null {
  for (const pid of allPids()) {
    if (commOf(pid) !== 'redis-server') continue;
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`:${port}`)) return pid;
    } catch {
      /* gone */
    }
  }
  return null;
}

async function stopRedis(state: RedisState): Promise<void> {
  if (!state.startedPid) return;
  try {
    process.kill(state.startedPid, 'SIGTERM');
  } catch {
    return;
  }
  await waitFor(async () => readStat(state.startedPid!) === null, { timeoutMs: 15_000, intervalMs: 100, what: 'Redis to stop' }).catch(() =>
    log(`Redis ${state.startedPid} did not stop within 15 s`),
  );
  fs.rmSync(REDIS_DIR, { recursive: true, force: true });
}

// ------------------------------------------------------------------------------------- peer processes

/** One forked bench/peers/proc.mjs (a peer's worker or producer) and its IPC protocol. */
class PeerProc {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<number | null>;
  onSeen: ((d: number[]) => void) | null = null;
  onProgress: ((done: number) => void) | null = null;
  private seq = 0;
  private readonly replies = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private stopped: (() => void) | null = null;

  constructor(
    readonly peer: Peer,
    readonly role: 'worker' | 'producer',
    cfg: Record<string, unknown>,
  ) {
    this.child = fork(path.join(PEERS_DIR, 'proc.mjs'), [peer, role], {
      cwd: PEERS_DIR,
      env: { ...process.env, PEER_CONFIG: JSON.stringify(cfg) },
      execArgv: [], // not ts-node's hook: these are plain ESM
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.ready = new Promise<void>((resolve, reject) => {
      this.child.on('message', (raw) => {
        const m = raw as { t: string; d?: number[]; done?: number; id?: number; result?: unknown; error?: string };
        if (m.t === 'ready') resolve();
        else if (m.t === 'seen') this.onSeen?.(m.d!);
        else if (m.t === 'progress') this.onProgress?.(m.done!);
        else if (m.t === 'stopped') this.stopped?.();
        else if (m.t === 'reply') {
          const r = this.replies.get(m.id!);
          this.replies.delete(m.id!);
          if (m.error) r?.reject(new Error(`${peer} ${role}: ${m.error}`));
          else r?.resolve(m.result);
        }
      });
      void this.exited.then((code) => {
        reject(new Error(`${peer} ${role} exited with ${code} before it was ready`));
        for (const r of this.replies.values()) r.reject(new Error(`${peer} ${role} exited with ${code}`));
        this.replies.clear();
      });
    });
  }

  call<T>(op: string, a: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.replies.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ t: 'call', id, op, args: a });
    });
  }

  go(): void {
    this.child.send({ t: 'go' });
  }

  /** Worker: graceful stop (its last seen batch arrives before 'stopped'); producer: close. SIGKILL after 20 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const t = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    try {
      this.child.send({ t: this.role === 'worker' ? 'stop' : 'close' });
    } catch {
      this.child.kill('SIGKILL');
    }
    await this.exited;
    clearTimeout(t);
  }
}

async function startPeer(peer: Peer, role: 'worker' | 'producer', cfg: Record<string, unknown>): Promise<PeerProc> {
  const p = new PeerProc(peer, role, cfg);
  live.procs.add(p);
  void p.exited.then(() => live.procs.delete(p));
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 60_000);
  try {
    await p.ready;
  } finally {
    clearTimeout(timer);
  }
  return p;
}

/** First-arrival time per job index, from the workers' `seen` batches. */
class Arrivals {
  readonly at: Float64Array;
  count = 0;
  duplicates = 0;
  strays = 0;
  first = Infinity;
  last = -Infinity;
  constructor(readonly size: number) {
    this.at = new Float64Array(size);
  }
  add(d: number[]): void {
    for (let k = 0; k + 1 < d.length; k += 2) {
      const i = d[k]!;
      const t = d[k + 1]!;
      if (!(i >= 0 && i < this.size)) {
        this.strays++;
        continue;
      }
      if (this.at[i]) {
        this.duplicates++;
        continue;
      }
      this.at[i] = t;
      this.count++;
      if (t < this.first) this.first = t;
      if (t > this.last) this.last = t;
    }
  }
}

// ---------------------------------------------------------------------------------------------- results

interface LagStats extends Summary {
  /** [percentile, ms] points, for the percentile plot */
  curve: Array<[number, number]>;
}

const CURVE = [0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 100];

function lagStats(values: ArrayLike<number>): LagStats {
  const arr = Array.from(values);
  const s = summarize(arr);
  const sorted = Float64Array.from(arr).sort();
  const r = (n: number) => round(n, 1);
  return {
    count: s.count,
    min: r(s.min),
    p50: r(s.p50),
    p95: r(s.p95),
    p99: r(s.p99),
    max: r(s.max),
    mean: r(s.mean),
    curve: CURVE.map((p) => [p, r(p === 0 ? s.min : percentile(sorted, p))]),
  };
}

interface RunResult {
  system: System;
  workload: Workload;
  workers: number;
  ok: boolean;
  error?: string;
  jobs: number;
  loadAverage1m: number;
  /** burst/steady: seconds to create the jobs beforehand (not measured as a rate) */
  createSeconds?: number;
  /** burst: T → last consumed */
  lastConsumedMs?: number;
  jobsPerSecond?: number;
  lagMs?: LagStats;
  /** steady: consumed per second over the run (first → last) */
  achievedPerSecond?: number;
  cpu?: CpuResult;
  /**
   * steady: CPU seconds per second the system's processes used in the quiet moment between creating the jobs and
   * the first due time (pollers, background flushing — and whatever else shares MariaDB/Kafka/PostgreSQL).
   */
  idleSystemCpuPerSecond?: number | null;
  /** steady: the same quiet moment's CPU seconds per second by process group (bench included) */
  idleCpuPerSecond?: Record<string, number> | null;
  /**
   * steady: CPU seconds per second with the system up and nothing queued, over SETTLED_IDLE_SECONDS after twice as
   * long left quiet, before the jobs are created: what an idle system costs. By process group below.
   */
  settledIdleSystemCpuPerSecond?: number | null;
  settledIdleCpuPerSecond?: Record<string, number> | null;
  /** throughput */
  enqueueSeconds?: number;
  enqueuePerSecond?: number;
  drainSeconds?: number;
  drainPerSecond?: number;
  /** throughput: workers/relays told to start (peers) or spawned (us) → first job consumed */
  startToFirstMs?: number;
  /** peers: until the queue reports no unfinished job (completions written), after T / first due / start */
  allFinishedMs?: number | null;
  duplicates: number;
  warnings: string[];
}

// ----------------------------------------------------------------------------------------------- us

const live = { relays: new Set<RoleProcess>(), envs: new Set<BenchEnv>(), procs: new Set<PeerProc>(), pgDbs: new Set<string>() };

async function withUs<T>(label: string, fn: (e: BenchEnv) => Promise<T>): Promise<T> {
  const e = await createBenchEnv(label);
  live.envs.add(e);
  try {
    return await fn(e);
  } finally {
    live.envs.delete(e);
    await e.cleanup();
  }
}

/** Several relays sharing one host: one claim lane each (three per relay made 4 relays slower than 1 on 2 cores). */
const MANY_RELAYS_ENV = { RELAY_CONCURRENCY: '1' };

function spawnRelays(e: BenchEnv, k: number): Promise<RoleProcess[]> {
  const prof = cpuProfArgs(CPU_PROF_DIR);
  return spawnRoles('relay', { ...e.env, ...(k > 1 ? MANY_RELAYS_ENV : {}), ...RELAY_ENV }, k, live.relays, [...RELAY_NODE_ARGS, ...prof]);
}

function stopRelaysOf(procs: RoleProcess[]): Promise<void> {
  return stopRoles(procs, live.relays);
}

/** A JSON log line as "message: the end of its error" (SQL errors carry the statement first, the reason last). */
function summarizeLogLine(line: string): string {
  try {
    const j = JSON.parse(line) as { message?: string; error?: string; count?: number };
    const err = String(j.error ?? '');
    return `${j.message ?? ''}${j.count !== undefined ? ` (count ${j.count})` : ''}${err ? `: …${err.slice(-240).replace(/\s+/g, ' ')}` : ''}`;
  } catch {
    return line.slice(0, 300);
  }
}

/** The relays' warning and error log lines (first few), kept with the run: they explain duplicates or stalls. */
function relayWarnings(relays: RoleProcess[], max = 5): string[] {
  const lines = relays.flatMap((r, i) =>
    r
      .output()
      .split('\n')
      .filter((l) => /"level":"(warn|error)"/.test(l))
      .map((l) => `relay ${i + 1}: ${summarizeLogLine(l)}`),
  );
  return lines.length > max ? [...lines.slice(0, max), `… ${lines.length - max} more relay warnings`] : lines;
}

function usMeter(relays: RoleProcess[]): GroupMeter {
  const svc = servicePids();
  return new GroupMeter({
    relays: pidsCpu(() => relays.map((r) => r.child.pid ?? 0)),
    mariadb: () => (svc.mysqld ? treeCpuSeconds(svc.mysqld) : NaN),
    kafka: () => (svc.kafka ? treeCpuSeconds(svc.kafka) : NaN),
    bench: benchCpu,
  });
}

/**
 * Sleeps until `until`, measuring the CPU meanwhile: the system's CPU seconds per second, and each group's
 * (both null when there is under 0.5 s to measure).
 */
async function idleCpu(
  m: GroupMeter,
  until: number,
): Promise<{ idleSystemCpuPerSecond: number | null; idleCpuPerSecond: Record<string, number> | null }> {
  if (until - Date.now() < 500) {
    await sleep(until - Date.now());
    return { idleSystemCpuPerSecond: null, idleCpuPerSecond: null };
  }
  m.begin();
  await sleep(until - Date.now());
  const c = m.end();
  return {
    idleSystemCpuPerSecond: round(c.systemCpuSeconds / c.wallSeconds, 3),
    idleCpuPerSecond: Object.fromEntries(Object.entries(c.cpuSeconds).map(([k, v]) => [k, round(v / c.wallSeconds, 3)])),
  };
}

/**
 * The system up with nothing queued: 2 × SETTLED_IDLE_MS left quiet, then SETTLED_IDLE_MS measured (nothing
 * when SETTLED_IDLE_MS is 0).
 */
async function settledIdle(m: GroupMeter): Promise<Partial<RunResult>> {
  if (SETTLED_IDLE_MS === 0) return {};
  await sleep(2 * SETTLED_IDLE_MS);
  const settled = await idleCpu(m, Date.now() + SETTLED_IDLE_MS);
  return { settledIdleSystemCpuPerSecond: settled.idleSystemCpuPerSecond, settledIdleCpuPerSecond: settled.idleCpuPerSecond };
}

/** [min, max] without spreading a large array into arguments. */
function span(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Measured creation rate per system in this run (to place T after the creation); conservative before the first. */
const createRate = new Map<System, number>();
const DEFAULT_CREATE_RATE: Record<System, number> = { us: 4000, 'graphile-worker': 8000, 'pg-boss': 8000, bullmq: 8000 };

function instantAfterCreate(system: System, jobs: number): number {
  const rate = createRate.get(system) ?? DEFAULT_CREATE_RATE[system];
  return Math.ceil((Date.now() + (jobs / rate) * 1500 + 2000) / 1000) * 1000;
}

async function usBurst(k: number, jobs = BURST): Promise<RunResult> {
  return withUs(`pburst${k}`, async (e) => {
    const warnings: string[] = [];
    const relays = await spawnRelays(e, k);
    const reader = await new BenchReader(e.topic).start();
    try {
      const T = instantAfterCreate('us', jobs);
      const f0 = performance.now();
      await insertScheduledTriggers(e.db, jobs, { fireAt: new Date(T) });
      const createSeconds = (performance.now() - f0) / 1000;
      createRate.set('us', jobs / createSeconds);
      const margin = T - Date.now();
      if (margin < 100) warnings.push(`creation finished ${-margin} ms after T: the burst is not one instant`);
      const meter = usMeter(relays);
      await sleep(T - Date.now() - 50);
      meter.begin();
      const stop = progress(() => `us burst (${k}): consumed ${fmtInt(reader.distinct)} / ${fmtInt(jobs)}`);
      try {
        await waitFor(async () => reader.distinct >= jobs, { timeoutMs: 10 * 60_000, intervalMs: 5, what: 'every burst event on Kafka' });
      } finally {
        stop();
      }
      const cpu = meter.end();
      await sleep(300);
      const lag = lagStats([...reader.seen.values()].map((s) => s.consumedAt - T));
      warnings.push(...relayWarnings(relays));
      return {
        system: 'us',
        workload: 'burst',
        workers: k,
        ok: true,
        jobs,
        loadAverage1m: round(os.loadavg()[0]!, 2),
        createSeconds: round(createSeconds, 2),
        lastConsumedMs: lag.max,
        jobsPerSecond: Math.round(jobs / (lag.max / 1000)),
        lagMs: lag,
        cpu,
        duplicates: reader.duplicates,
        warnings,
      };
    } finally {
      await reader.stop();
      await stopRelaysOf(relays);
    }
  });
}

async function usSteady(k: number): Promise<RunResult> {
  return withUs(`psteady${k}`, async (e) => {
    const warnings: string[] = [];
    const total = Math.round(RATE * SECONDS);
    const relays = await spawnRelays(e, k);
    const reader = await new BenchReader(e.topic).start();
    try {
      const settled = await settledIdle(usMeter(relays));
      const S = instantAfterCreate('us', total);
      const times = Array.from({ length: total }, (_, i) => S + Math.floor((i * 1000) / RATE));
      let created = 0;
      const stopC = progress(() => `us steady (${k}): creating ${fmtInt(created)} / ${fmtInt(total)}`);
      const f0 = performance.now();
      try {
        await insertTriggersAt(e.db, times, (n) => (created = n));
      } finally {
        stopC();
      }
      const createSeconds = (performance.now() - f0) / 1000;
      createRate.set('us', total / createSeconds);
      const margin = S - Date.now();
      if (margin < 100) warnings.push(`creation finished ${-margin} ms after the first due time`);
      const idle = { ...(await idleCpu(usMeter(relays), S)), ...settled };
      const meter = usMeter(relays);
      meter.begin();
      const stop = progress(
        () =>
          `us steady (${k}): consumed ${fmtInt(reader.distinct)} / ${fmtInt(total)} (${round((Date.now() - S) / 1000, 0)} s of ${SECONDS})`,
      );
      try {
        await waitFor(async () => reader.distinct >= total, {
          timeoutMs: SECONDS * 1000 + 10 * 60_000,
          intervalMs: 20,
          what: 'every steady event',
        });
      } finally {
        stop();
      }
      const cpu = meter.end();
      await sleep(300);
      const seen = [...reader.seen.values()];
      const lag = lagStats(seen.map((s) => s.consumedAt - s.scheduledFor));
      const [first, last] = span(seen.map((s) => s.consumedAt));
      warnings.push(...relayWarnings(relays));
      return {
        system: 'us',
        workload: 'steady',
        workers: k,
        ok: true,
        jobs: total,
        loadAverage1m: round(os.loadavg()[0]!, 2),
        createSeconds: round(createSeconds, 2),
        lagMs: lag,
        achievedPerSecond: Math.round(total / Math.max(0.001, (last - first) / 1000)),
        cpu,
        ...idle,
        duplicates: reader.duplicates,
        warnings,
      };
    } finally {
      await reader.stop();
      await stopRelaysOf(relays);
    }
  });
}

async function usThroughput(k: number): Promise<RunResult> {
  return withUs(`pthru${k}`, async (e) => {
    const warnings: string[] = [];
    await ensureTopics(e.config.kafkaBrokers, [{ name: e.topic, partitions: e.config.kafkaPartitions }]);
    const reader = await new BenchReader(e.topic).start();
    const api = await spawnRole('api', e.env, 90_000);
    live.relays.add(api);
    const agent = new http.Agent({ keepAlive: true, maxSockets: INFLIGHT });
    let relays: RoleProcess[] = [];
    try {
      const port = Number(/"port":(\d+)/.exec(api.output())?.[1]);
      const base = `http://127.0.0.1:${port}/api/v1`;
      // Webhook triggers to spread the events over Kafka keys and outbox shards, as jobs of one queue are unordered.
      const ids: string[] = [];
      for (let i = 0; i < WEBHOOK_TRIGGERS; i += 8) {
        const made = await Promise.all(
          Array.from({ length: Math.min(8, WEBHOOK_TRIGGERS - i) }, async (_, j) => {
            const r = await postJson(agent, `${base}/triggers`, {
              name: `bench-wh-${i + j}`,
              type: 'webhook',
              config: { endpoint: 'https://example.com/hook', schema: { type: 'object' } },
            });
            if (r.status !== 201) throw new Error(`creating a webhook trigger: ${r.status} ${JSON.stringify(r.body)}`);
            return (r.body as { id: string }).id;
          }),
        );
        ids.push(...made);
      }
      // Enqueue: N events in batches of ENQUEUE_BATCH, INFLIGHT requests at a time, round-robin over the triggers.
      let next = 0;
      let done = 0;
      let request = 0;
      const stopE = progress(() => `us throughput (${k}): enqueued ${fmtInt(done)} / ${fmtInt(N)}`);
      const e0 = performance.now();
      try {
        await Promise.all(
          Array.from({ length: INFLIGHT }, async () => {
            for (;;) {
              const start = next;
              if (start >= N) return;
              next = Math.min(N, start + ENQUEUE_BATCH);
              const events = Array.from({ length: next - start }, (_, j) => ({ i: start + j }));
              const id = ids[request++ % ids.length]!;
              const r = await postJson(agent, `${base}/webhook/${id}/batch`, { events });
              if (r.status !== 202) throw new Error(`webhook batch: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
              done += events.length;
            }
          }),
        );
      } finally {
        stopE();
      }
      const enqueueSeconds = (performance.now() - e0) / 1000;
      // Drain: start the relays; the outbox rows are all available.
      const g0 = Date.now();
      relays = await spawnRelays(e, k);
      const stop = progress(() => `us throughput (${k}): consumed ${fmtInt(reader.distinct)} / ${fmtInt(N)}`);
      try {
        await waitFor(async () => reader.distinct >= N, { timeoutMs: 30 * 60_000, intervalMs: 20, what: 'every event on Kafka' });
      } finally {
        stop();
      }
      await sleep(300);
      const [first, last] = span([...reader.seen.values()].map((s) => s.consumedAt));
      const drainSeconds = (last - first) / 1000;
      warnings.push(...relayWarnings(relays));
      return {
        system: 'us',
        workload: 'throughput',
        workers: k,
        ok: true,
        jobs: N,
        loadAverage1m: round(os.loadavg()[0]!, 2),
        enqueueSeconds: round(enqueueSeconds, 2),
        enqueuePerSecond: Math.round(N / enqueueSeconds),
        drainSeconds: round(drainSeconds, 2),
        drainPerSecond: Math.round(N / Math.max(0.001, drainSeconds)),
        startToFirstMs: first - g0,
        duplicates: reader.duplicates,
        warnings,
      };
    } finally {
      agent.destroy();
      await reader.stop();
      await stopRelaysOf([...relays, api]);
    }
  });
}

// --------------------------------------------------------------------------------------------- peers

interface PeerCtx {
  producer: PeerProc;
  workers: PeerProc[];
  settings: Record<string, unknown>;
  meter: () => GroupMeter;
}

let redisState: RedisState = { reason: 'not started', startedPid: null, pid: null };

async function withPeer<T>(peer: Peer, k: number, fn: (c: PeerCtx) => Promise<T>): Promise<T> {
  const tag = randomBytes(4).toString('hex');
  const usesPg = peer !== 'bullmq';
  const db = `etp_bench_${peer.replace(/-/g, '')}_${tag}`;
  if (usesPg) {
    admin('pg-create', `${PG_URL}postgres`, db);
    live.pgDbs.add(db);
  } else admin('redis-flush', String(REDIS_PORT));
  const settings = peerSettings(peer);
  const cfg = { pgUrl: `${PG_URL}${db}`, redis: { host: '127.0.0.1', port: REDIS_PORT }, queue: `bench_${tag}`, settings };
  const procs: PeerProc[] = [];
  try {
    const producer = await startPeer(peer, 'producer', cfg); // sets up the schema / queue first
    procs.push(producer);
    const workers = await Promise.all(Array.from({ length: k }, () => startPeer(peer, 'worker', cfg)));
    procs.push(...workers);
    const postmaster = usesPg ? findPostmaster() : null;
    const meter = () =>
      new GroupMeter({
        workers: pidsCpu(() => workers.map((w) => w.child.pid ?? 0)),
        ...(usesPg
          ? { postgres: () => (postmaster ? treeCpuSeconds(postmaster) : NaN) }
          : { redis: () => (redisState.pid ? treeCpuSeconds(redisState.pid) : NaN) }),
        bench: benchCpu,
      });
    return await fn({ producer, workers, settings, meter });
  } finally {
    await Promise.all(procs.filter((p) => p.role === 'worker').map((p) => p.stop()));
    await Promise.all(procs.filter((p) => p.role === 'producer').map((p) => p.stop()));
    if (usesPg) {
      try {
        admin('pg-drop', `${PG_URL}postgres`, db);
        live.pgDbs.delete(db);
      } catch (e) {
        log(`    could not drop ${db}: ${(e as Error).message}`);
      }
    }
  }
}

async function enqueueVia(
  producer: PeerProc,
  label: string,
  count: number,
  due: Record<string, unknown>,
): Promise<{ seconds: number; wallSeconds: number }> {
  let done = 0;
  producer.onProgress = (d) => (done = d);
  const stop = progress(() => `${label}: enqueued ${fmtInt(done)} / ${fmtInt(count)}`);
  const w0 = performance.now();
  try {
    const r = await producer.call<{ seconds: number }>('enqueue', { count, batch: ENQUEUE_BATCH, inflight: INFLIGHT, due });
    return { seconds: r.seconds, wallSeconds: (performance.now() - w0) / 1000 };
  } finally {
    stop();
    producer.onProgress = null;
  }
}

/** Polls the peer's count of unfinished jobs until 0; ms after `from`, or null after 60 s. */
async function finishedAfter(producer: PeerProc, from: number): Promise<number | null> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if ((await producer.call<number>('pending')) === 0) return Date.now() - from;
    await sleep(50);
  }
  return null;
}

async function waitArrivals(a: Arrivals, total: number, label: string, timeoutMs: number): Promise<void> {
  const stop = progress(() => `${label}: consumed ${fmtInt(a.count)} / ${fmtInt(total)}`);
  try {
    await waitFor(async () => a.count >= total, { timeoutMs, intervalMs: 5, what: `${label}: every job consumed` });
  } finally {
    stop();
  }
}

async function peerBurst(peer: Peer, k: number, jobs = BURST): Promise<RunResult> {
  return withPeer(peer, k, async ({ producer, workers, meter }) => {
    const warnings: string[] = [];
    const a = new Arrivals(jobs);
    for (const w of workers) {
      w.onSeen = (d) => a.add(d);
      w.go();
    }
    const T = instantAfterCreate(peer, jobs);
    const c = await enqueueVia(producer, `${peer} burst (${k})`, jobs, { mode: 'at', at: T });
    createRate.set(peer, jobs / c.wallSeconds);
    const margin = T - Date.now();
    if (margin < 100) warnings.push(`creation finished ${-margin} ms after T: the burst is not one instant`);
    const m = meter();
    await sleep(T - Date.now() - 50);
    m.begin();
    await waitArrivals(a, jobs, `${peer} burst (${k})`, 10 * 60_000);
    const cpu = m.end();
    const lag = lagStats(Array.from(a.at, (t) => t - T));
    const allFinishedMs = await finishedAfter(producer, T);
    if (a.strays) warnings.push(`${a.strays} jobs seen that were not created in this run`);
    return {
      system: peer,
      workload: 'burst',
      workers: k,
      ok: true,
      jobs,
      loadAverage1m: round(os.loadavg()[0]!, 2),
      createSeconds: round(c.wallSeconds, 2),
      lastConsumedMs: lag.max,
      jobsPerSecond: Math.round(jobs / (lag.max / 1000)),
      lagMs: lag,
      cpu,
      allFinishedMs,
      duplicates: a.duplicates,
      warnings,
    };
  });
}

async function peerSteady(peer: Peer, k: number): Promise<RunResult> {
  return withPeer(peer, k, async ({ producer, workers, meter }) => {
    const warnings: string[] = [];
    const total = Math.round(RATE * SECONDS);
    const a = new Arrivals(total);
    for (const w of workers) {
      w.onSeen = (d) => a.add(d);
      w.go();
    }
    const settled = await settledIdle(meter());
    const S = instantAfterCreate(peer, total);
    const c = await enqueueVia(producer, `${peer} steady (${k})`, total, { mode: 'rate', start: S, rate: RATE });
    createRate.set(peer, total / c.wallSeconds);
    const margin = S - Date.now();
    if (margin < 100) warnings.push(`creation finished ${-margin} ms after the first due time`);
    const idle = { ...(await idleCpu(meter(), S)), ...settled };
    const m = meter();
    m.begin();
    await waitArrivals(a, total, `${peer} steady (${k})`, SECONDS * 1000 + 10 * 60_000);
    const cpu = m.end();
    const lag = lagStats(Array.from(a.at, (t, i) => t - (S + Math.floor((i * 1000) / RATE))));
    const allFinishedMs = await finishedAfter(producer, S + Math.floor(((total - 1) * 1000) / RATE));
    if (a.strays) warnings.push(`${a.strays} jobs seen that were not created in this run`);
    return {
      system: peer,
      workload: 'steady',
      workers: k,
      ok: true,
      jobs: total,
      loadAverage1m: round(os.loadavg()[0]!, 2),
      createSeconds: round(c.wallSeconds, 2),
      lagMs: lag,
      achievedPerSecond: Math.round(total / Math.max(0.001, (a.last - a.first) / 1000)),
      cpu,
      ...idle,
      allFinishedMs,
      duplicates: a.duplicates,
      warnings,
    };
  });
}

async function peerThroughput(peer: Peer, k: number): Promise<RunResult> {
  return withPeer(peer, k, async ({ producer, workers }) => {
    const warnings: string[] = [];
    const a = new Arrivals(N);
    for (const w of workers) w.onSeen = (d) => a.add(d);
    const e = await enqueueVia(producer, `${peer} throughput (${k})`, N, { mode: 'now' });
    const pending = await producer.call<number>('pending');
    if (pending !== N) warnings.push(`${pending} unfinished jobs after enqueueing ${N}`);
    const g0 = Date.now();
    for (const w of workers) w.go();
    await waitArrivals(a, N, `${peer} throughput (${k})`, 30 * 60_000);
    const allFinishedMs = await finishedAfter(producer, g0);
    const drainSeconds = (a.last - a.first) / 1000;
    if (a.strays) warnings.push(`${a.strays} jobs seen that were not created in this run`);
    return {
      system: peer,
      workload: 'throughput',
      workers: k,
      ok: true,
      jobs: N,
      loadAverage1m: round(os.loadavg()[0]!, 2),
      // The producer's own clock around its enqueue loop (IPC to the bench excluded).
      enqueueSeconds: round(e.seconds, 2),
      enqueuePerSecond: Math.round(N / e.seconds),
      drainSeconds: round(drainSeconds, 2),
      drainPerSecond: Math.round(N / Math.max(0.001, drainSeconds)),
      startToFirstMs: a.first - g0,
      allFinishedMs,
      duplicates: a.duplicates,
      warnings,
    };
  });
}

// ---------------------------------------------------------------------------------------------- main

function runOne(system: System, workload: Workload, k: number): Promise<RunResult> {
  if (system === 'us') return workload === 'burst' ? usBurst(k) : workload === 'steady' ? usSteady(k) : usThroughput(k);
  return workload === 'burst' ? peerBurst(system, k) : workload === 'steady' ? peerSteady(system, k) : peerThroughput(system, k);
}

const LABEL: Record<System, string> = {
  us: 'us (relays → Kafka)',
  'graphile-worker': 'graphile-worker',
  'pg-boss': 'pg-boss',
  bullmq: 'BullMQ',
};

/** "relays 0.023, mariadb 0.015, …": CPU seconds per second by process group. */
function groupLine(perSecond: Record<string, number>): string {
  return Object.entries(perSecond)
    .map(([k, v]) => `${k} ${v.toFixed(3)}`)
    .join(', ');
}

function cpuCell(c?: CpuResult): string {
  if (!c) return '—';
  return Object.entries(c.cpuSeconds)
    .filter(([k]) => k !== 'bench')
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(' + ');
}

function report(runs: RunResult[], header: string, skipped: Array<{ system: System; reason: string }>): string {
  const out: string[] = [header, ''];
  const ok = runs.filter((r) => r.ok);
  const failed = runs.filter((r) => !r.ok);
  const rowsFor = (w: Workload) => ok.filter((r) => r.workload === w);
  const name = (r: RunResult) => `${LABEL[r.system]}, ${r.workers}`;
  if (rowsFor('burst').length) {
    out.push(`Burst: ${fmtInt(BURST)} jobs due at one instant T (lag = consumed − T)`);
    out.push(
      table(
        ['system, workers', 'T → last', 'jobs/s', 'lag p50', 'p95', 'p99', 'all finished'],
        rowsFor('burst').map((r) => [
          name(r),
          fmtMs(r.lastConsumedMs!),
          fmtInt(r.jobsPerSecond!),
          fmtMs(r.lagMs!.p50),
          fmtMs(r.lagMs!.p95),
          fmtMs(r.lagMs!.p99),
          r.allFinishedMs === undefined ? '(n/a)' : r.allFinishedMs === null ? '> 60 s' : fmtMs(r.allFinishedMs),
        ]),
      ),
    );
    out.push('');
  }
  if (rowsFor('steady').length) {
    out.push(`Steady: ${fmtInt(RATE)} due jobs/s for ${SECONDS} s (lag = consumed − due); CPU seconds of the system's processes`);
    out.push(
      table(
        ['system, workers', 'lag p50', 'p95', 'p99', 'max', 'CPU s', 'machine', 'of which', 'bench/consumer', 'idle CPU s/s', 'settled'],
        rowsFor('steady').map((r) => [
          name(r),
          fmtMs(r.lagMs!.p50),
          fmtMs(r.lagMs!.p95),
          fmtMs(r.lagMs!.p99),
          fmtMs(r.lagMs!.max),
          r.cpu!.systemCpuSeconds.toFixed(1),
          `${Math.round(r.cpu!.systemMachineShare * 100)}%`,
          cpuCell(r.cpu),
          (r.cpu!.cpuSeconds.bench ?? 0).toFixed(1),
          r.idleSystemCpuPerSecond == null ? '—' : r.idleSystemCpuPerSecond.toFixed(2),
          r.settledIdleSystemCpuPerSecond == null ? '—' : r.settledIdleSystemCpuPerSecond.toFixed(3),
        ]),
      ),
    );
    out.push('');
  }
  if (rowsFor('throughput').length) {
    out.push(`Throughput: enqueue ${fmtInt(N)} immediately due jobs, then drain (first → last consumed)`);
    out.push(
      table(
        ['system, workers', 'enqueue/s', 'drain/s', 'enqueue', 'drain', 'start → first'],
        rowsFor('throughput').map((r) => [
          name(r),
          fmtInt(r.enqueuePerSecond!),
          fmtInt(r.drainPerSecond!),
          `${r.enqueueSeconds!.toFixed(1)} s`,
          `${r.drainSeconds!.toFixed(1)} s`,
          fmtMs(r.startToFirstMs!),
        ]),
      ),
    );
    out.push('');
  }
  const metered = ok.filter((r) => r.cpu && r.jobs > 0 && (r.workload === 'burst' || r.workload === 'steady'));
  if (metered.length) {
    out.push(
      "CPU µs per event, per process group (the measured interval's CPU seconds ÷ its jobs; bench = the load generator / our Kafka consumer):",
    );
    for (const r of metered) {
      const per = Object.entries(r.cpu!.cpuSeconds).map(([k, v]) => `${k} ${Math.round((v * 1e6) / r.jobs)}`);
      const system = Math.round((r.cpu!.systemCpuSeconds * 1e6) / r.jobs);
      out.push(`  ${`${r.workload} ${name(r)}`.padEnd(36)} system ${system} (${per.join(', ')})`);
    }
    const idle = metered.filter((r) => r.idleCpuPerSecond);
    if (idle.length) {
      out.push('Idle CPU seconds per second, per process group (the quiet moment before the first due job of the steady run):');
      for (const r of idle) out.push(`  ${name(r).padEnd(36)} ${groupLine(r.idleCpuPerSecond!)}`);
    }
    const settled = metered.filter((r) => r.settledIdleCpuPerSecond);
    if (settled.length) {
      out.push(
        `Settled idle CPU seconds per second, per process group (up, nothing queued: ${SETTLED_IDLE_SECONDS} s after ${2 * SETTLED_IDLE_SECONDS} s left quiet):`,
      );
      for (const r of settled) out.push(`  ${name(r).padEnd(36)} ${groupLine(r.settledIdleCpuPerSecond!)}`);
    }
    out.push('');
  }
  const verdicts = winners(ok);
  if (verdicts.length) {
    out.push('Best per workload (same run):');
    out.push(...verdicts.map((v) => `  - ${v.text}`));
    out.push('');
  }
  if (skipped.length) {
    out.push('Skipped:');
    out.push(...skipped.map((s) => `  - ${LABEL[s.system]}: ${s.reason}`));
    out.push('');
  }
  if (failed.length) {
    out.push('Failed runs:');
    out.push(...failed.map((r) => `  - ${LABEL[r.system]}, ${r.workload}, ${r.workers} worker(s): ${r.error}`));
    out.push('');
  }
  const warnings = ok.flatMap((r) => [
    ...(r.cpu?.lost.length
      ? [
          `${LABEL[r.system]} ${r.workload} (${r.workers}): CPU of ${r.cpu.lost.join(', ')} not measured — a process went away meanwhile (restarted by someone else?)`,
        ]
      : []),
    ...r.warnings.map((w) => `${LABEL[r.system]} ${r.workload} (${r.workers}): ${w}`),
  ]);
  const dups = ok
    .filter((r) => r.duplicates > 0)
    .map((r) => `${LABEL[r.system]} ${r.workload} (${r.workers}): ${r.duplicates} duplicate deliveries`);
  if (warnings.length || dups.length) {
    out.push('Warnings:');
    out.push(...[...warnings, ...dups].map((w) => `  - ${w}`));
  }
  return out.join('\n');
}

interface Verdict {
  workload: Workload;
  workers: number;
  metric: string;
  best: System;
  text: string;
  /** us ÷ best peer (or best peer ÷ us for lower-is-better), > 1 = we are better */
  usVsBestPeer: number | null;
}

function winners(runs: RunResult[]): Verdict[] {
  const out: Verdict[] = [];
  const metrics: Array<{ workload: Workload; metric: string; get: (r: RunResult) => number; higher: boolean; fmt: (n: number) => string }> =
    [
      { workload: 'burst', metric: 'T → last consumed', get: (r) => r.lastConsumedMs!, higher: false, fmt: fmtMs },
      { workload: 'steady', metric: 'lag p99', get: (r) => r.lagMs!.p99, higher: false, fmt: fmtMs },
      { workload: 'throughput', metric: 'enqueue/s', get: (r) => r.enqueuePerSecond!, higher: true, fmt: (n) => `${fmtInt(n)}/s` },
      { workload: 'throughput', metric: 'drain/s', get: (r) => r.drainPerSecond!, higher: true, fmt: (n) => `${fmtInt(n)}/s` },
    ];
  for (const m of metrics) {
    for (const k of WORKERS) {
      const rs = runs.filter((r) => r.workload === m.workload && r.workers === k);
      if (rs.length < 2) continue;
      const sorted = [...rs].sort((x, y) => (m.higher ? m.get(y) - m.get(x) : m.get(x) - m.get(y)));
      const best = sorted[0]!;
      const us = rs.find((r) => r.system === 'us');
      const bestPeer = sorted.find((r) => r.system !== 'us');
      const ratio = us && bestPeer ? (m.higher ? m.get(us) / m.get(bestPeer) : m.get(bestPeer) / m.get(us)) : null;
      out.push({
        workload: m.workload,
        workers: k,
        metric: m.metric,
        best: best.system,
        usVsBestPeer: ratio === null ? null : round(ratio, 2),
        text:
          `${m.workload} ${m.metric}, ${k} worker(s): ${LABEL[best.system]} ${m.fmt(m.get(best))}` +
          (us && bestPeer ? `; us ${m.fmt(m.get(us))} = ${ratio!.toFixed(2)}× the best peer (${LABEL[bestPeer.system]})` : ''),
      });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const skipped: Array<{ system: System; reason: string }> = [];
  const peersWanted = SYSTEMS.filter((s): s is Peer => s !== 'us');
  const facts: Record<string, unknown> = {};
  const versions: Record<string, string | null> = {};
  let peersReason: string | null = null;
  let pgReason: string | null = null;

  if (peersWanted.length) {
    peersReason = ensurePeersInstalled();
    if (!peersReason) Object.assign(versions, admin<Record<string, string | null>>('versions'));
    if (!peersReason && peersWanted.some((p) => p !== 'bullmq')) {
      pgReason = await ensurePostgres();
      if (!pgReason) {
        try {
          const pg = admin<{ version: string; settings: Record<string, string> }>('pg-facts', `${PG_URL}postgres`);
          facts.postgres = pg;
          versions.postgres = pg.version;
          if (pg.settings.synchronous_commit !== 'on' || pg.settings.fsync !== 'on')
            log(`WARNING: PostgreSQL runs synchronous_commit=${pg.settings.synchronous_commit}, fsync=${pg.settings.fsync} (not durable)`);
        } catch (e) {
          pgReason = `PostgreSQL at ${PG_URL} does not accept connections: ${(e as Error).message}`;
        }
      }
    }
    if (!peersReason && peersWanted.includes('bullmq')) {
      redisState = await ensureRedis();
      if (!redisState.reason) {
        const r = admin<{ version: string; config: Record<string, string> }>('redis-facts', String(REDIS_PORT));
        facts.redis = { ...r, port: REDIS_PORT, startedByBench: redisState.startedPid !== null };
        versions.redis = r.version;
      }
    }
  }
  for (const p of peersWanted) {
    const reason = peersReason ?? (p === 'bullmq' ? redisState.reason : pgReason);
    if (reason) skipped.push({ system: p, reason });
  }

  // MariaDB / Kafka facts (and whether "us" can run at all).
  let machine: Awaited<ReturnType<typeof machineFacts>> | null = null;
  let usSettings: Record<string, unknown> = {};
  try {
    const probe = await createBenchEnv('pfacts');
    try {
      machine = await machineFacts(probe.db);
      // The relay settings that shape our figures, as the relays read them: product defaults unless set, in
      // the bench's own environment too (the relays inherit it, e.g. RELAY_FIRE_WINDOW_MAX=10ms for a run).
      const c = loadConfig({ ...process.env, ...probe.env }) as unknown as Record<string, unknown>;
      usSettings = Object.fromEntries(
        [
          'relayBatchSize',
          'relayBatchMax',
          'relayFireWindowMs',
          'relayFireWindowMaxMs',
          'relayConcurrency',
          'outboxOrdering',
          'outboxShards',
          'schedulerIntervalMs',
          'outboxPollIntervalMs',
          'kafkaPartitions',
        ]
          .filter((k) => k in c)
          .map((k) => [k, c[k]]),
      );
    } finally {
      await probe.cleanup();
    }
  } catch (e) {
    if (SYSTEMS.includes('us')) skipped.push({ system: 'us', reason: `MariaDB/Kafka not usable: ${(e as Error).message}` });
  }
  if (machine) {
    versions.mariadb = machine.mariadb;
    versions.kafka = machine.kafkaBroker;
    versions.librdkafka = machine.librdkafka;
    if (machine.db.innodb_flush_log_at_trx_commit !== '1')
      log(`WARNING: MariaDB runs innodb_flush_log_at_trx_commit=${machine.db.innodb_flush_log_at_trx_commit} (not durable)`);
  }
  versions.node = process.version;
  const systems = SYSTEMS.filter((s) => !skipped.some((x) => x.system === s));
  const durability = {
    mariadb: machine
      ? { innodb_flush_log_at_trx_commit: machine.db.innodb_flush_log_at_trx_commit, sync_binlog: machine.db.sync_binlog }
      : null,
    postgres: (facts.postgres as { settings?: Record<string, string> } | undefined)?.settings ?? null,
    redis: (facts.redis as { config?: Record<string, string> } | undefined)?.config ?? null,
    kafka: 'producer acks=all, enable.idempotence; single broker, default log flush (the OS page cache, no fsync per message)',
  };
  const settings = {
    quick: QUICK,
    burstJobs: BURST,
    warmupJobs: WARMUP,
    steadyRatePerSecond: RATE,
    steadySeconds: SECONDS,
    throughputJobs: N,
    enqueueBatch: ENQUEUE_BATCH,
    enqueueInflight: INFLIGHT,
    workers: WORKERS,
    systems,
    workloads: WORKLOADS,
    perSystem: {
      us: {
        ...usSettings,
        severalRelaysEnv: MANY_RELAYS_ENV,
        webhookTriggers: WEBHOOK_TRIGGERS,
        enqueue: 'POST /api/v1/webhook/{id}/batch to one api process',
      },
      'graphile-worker': peerSettings('graphile-worker'),
      'pg-boss': peerSettings('pg-boss'),
      bullmq: peerSettings('bullmq'),
    },
  };
  log(
    `peers benchmark ${QUICK ? '(quick) ' : ''}— systems ${systems.join(', ') || 'none'}; workloads ${WORKLOADS.join(', ')}; workers ${WORKERS.join(', ')}`,
  );
  log(
    `versions: ${Object.entries(versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  );
  log(`durability: ${JSON.stringify(durability)}`);
  for (const s of skipped) log(`SKIPPED ${LABEL[s.system]}: ${s.reason}`);

  if (WARMUP > 0) {
    for (const s of systems) {
      log(`--- warm-up (not measured): a burst of ${fmtInt(WARMUP)} jobs, ${LABEL[s]}`);
      try {
        await (s === 'us' ? usBurst(1, WARMUP) : peerBurst(s, 1, WARMUP));
      } catch (e) {
        log(`    warm-up failed (the measured runs go on): ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
  const runs: RunResult[] = [];
  const loadAtStart = os.loadavg().map((l) => round(l, 2));
  for (const w of WORKLOADS) {
    for (const k of WORKERS) {
      for (const s of systems) {
        log(`--- ${w}, ${LABEL[s]}, ${k} worker process(es) (load ${os.loadavg()[0]!.toFixed(2)})`);
        try {
          const r = await runOne(s, w, k);
          runs.push(r);
          log(
            `    ${w === 'burst' ? `T → last ${fmtMs(r.lastConsumedMs!)}, ${fmtInt(r.jobsPerSecond!)} jobs/s` : w === 'steady' ? `lag p50 ${fmtMs(r.lagMs!.p50)}, p99 ${fmtMs(r.lagMs!.p99)}, CPU ${r.cpu!.systemCpuSeconds} s` : `enqueue ${fmtInt(r.enqueuePerSecond!)}/s, drain ${fmtInt(r.drainPerSecond!)}/s`}`,
          );
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          log(`    FAILED: ${msg}`);
          runs.push({
            system: s,
            workload: w,
            workers: k,
            ok: false,
            error: msg.slice(0, 2000),
            jobs: 0,
            loadAverage1m: round(os.loadavg()[0]!, 2),
            duplicates: 0,
            warnings: [],
          });
        }
      }
    }
  }

  const load = { atStart: loadAtStart, atEnd: os.loadavg().map((l) => round(l, 2)) };
  const header =
    `Peers benchmark${QUICK ? ' (QUICK — smoke sizes, not the issue-7 sizes)' : ''}: ` +
    (machine ? `${machine.cpuCount}× ${machine.cpuModel}, ${machine.totalMemoryGiB} GiB, ` : '') +
    `load average ${load.atStart.join(' ')} → ${load.atEnd.join(' ')}`;
  process.stdout.write(`\n${report(runs, header, skipped)}\n`);

  const complete = ALL_SYSTEMS.every((s) => SYSTEMS.includes(s)) && ALL_WORKLOADS.every((w) => WORKLOADS.includes(w));
  const file = writeResults(
    `peers${QUICK ? '-quick' : ''}${complete ? '' : `-${[...SYSTEMS.map((s) => s.replace(/-/g, '')), ...WORKLOADS].join('-')}`}`,
    {
      command: `npm run bench -- peers ${process.argv.slice(2).join(' ')}`.trim(),
      complete,
      machine: machine
        ? { ...machine, loadAverageAtEnd: load.atEnd }
        : { os: `${os.type()} ${os.release()}`, cpuCount: os.cpus().length, loadAverage: load },
      versions,
      durability,
      settings,
      skipped,
      verdicts: winners(runs.filter((r) => r.ok)),
      runs,
    },
  );
  log(`results: ${file}  (bench/report.mjs turns the latest into bench/results/latest.md and a chart)`);
  if (runs.some((r) => !r.ok)) process.exitCode = 1;
}

async function cleanupAll(): Promise<void> {
  await Promise.allSettled([...live.relays].map((p) => p.kill('SIGKILL')));
  for (const p of live.procs) p.child.kill('SIGKILL');
  await Promise.allSettled([...live.envs].map((e) => e.cleanup()));
  for (const db of live.pgDbs) {
    try {
      admin('pg-drop', `${PG_URL}postgres`, db);
    } catch {
      /* best effort */
    }
  }
  await stopRedis(redisState);
}

runBench(
  'peers',
  async () => {
    try {
      await main();
    } catch (e) {
      await cleanupAll();
      throw e;
    }
    await stopRedis(redisState);
  },
  cleanupAll,
  30_000,
);
