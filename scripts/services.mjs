#!/usr/bin/env node
// Local backing services for development and tests: MySQL/MariaDB and a single-node Apache Kafka broker.
//
//   node scripts/services.mjs up|down|status|kafka-stop|kafka-start
//
// Plain Node ESM with built-ins only: it runs before `npm run build` and before any dependency is usable.
// Kafka is run from the official jars on Maven Central (java + mvn needed), the broker runs detached and outlives this script.
// Only what this script started is ever stopped; that is recorded in the state file (services.json).
// A database server it starts reads the project's settings from deploy/mysql/etp.cnf (--defaults-extra-file).
//
// Environment:
//   DATABASE_URL   default mysql://root@127.0.0.1:3306/event_triggers
//   KAFKA_BROKERS  default 127.0.0.1:9092 (only the first host:port is used)
//   EVENT_TRIGGER_CACHE_DIR  default ~/.cache/event-trigger-platform (jars, broker data, logs, state)

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const KAFKA_VERSION = '4.1.1';
const LOG4J_VERSION = '2.24.3';
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';
// Fixed cluster id: base64url of the 16 bytes "event-trigger-pf" (22 chars, valid Kafka Uuid).
export const CLUSTER_ID = Buffer.from('event-trigger-pf').toString('base64url');
export const READY_TIMEOUT_MS = 60_000;
export const KAFKA_STOP_GRACE_MS = 15_000;
export const DB_STOP_GRACE_MS = 60_000;

const CACHE_ROOT =
  process.env.EVENT_TRIGGER_CACHE_DIR ||
  path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'event-trigger-platform');
const KAFKA_HOME = path.join(CACHE_ROOT, `kafka-${KAFKA_VERSION}`);
export const KAFKA_LIB = path.join(KAFKA_HOME, 'lib');
const KAFKA_LIB_MARKER = path.join(KAFKA_HOME, 'lib.complete');
const KAFKA_DATA = path.join(CACHE_ROOT, 'kafka-data');
const KAFKA_CONFIG = path.join(CACHE_ROOT, 'kafka-server.properties');
const LOG4J_CONFIG = path.join(CACHE_ROOT, 'kafka-log4j2.properties');
const KAFKA_OUT = path.join(CACHE_ROOT, 'kafka.out'); // broker stdout/stderr of the current run
const KAFKA_LOG_DIR = path.join(CACHE_ROOT, 'kafka-logs'); // rolling server.log (INFO)
const DB_OUT = path.join(CACHE_ROOT, 'mariadb.out');
const DB_PIDFILE = path.join(CACHE_ROOT, 'mariadb.pid');
const STATE_FILE = path.join(CACHE_ROOT, 'services.json');
// The project's server settings (buffer pool, redo log, isolation, binlog format, ...), see the file itself.
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DB_CONFIG = path.join(REPO_ROOT, 'deploy', 'mysql', 'etp.cnf');
const DB_CONFIG_ARG = `--defaults-extra-file=${DB_CONFIG}`;
const LOCK_FILE = path.join(CACHE_ROOT, 'services.lock');

// ---------------------------------------------------------------------------------------------- config

function parseDb() {
  const raw = process.env.DATABASE_URL || 'mysql://root@127.0.0.1:3306/event_triggers';
  let url;
  try {
    url = new URL(raw);
  } catch {
    fail(`DATABASE_URL is not a valid URL: ${raw}`);
  }
  return { host: stripBrackets(url.hostname) || '127.0.0.1', port: Number(url.port || 3306) };
}

function parseKafka() {
  const first = (process.env.KAFKA_BROKERS || '127.0.0.1:9092').split(',')[0].trim();
  const hostPort = first.replace(/^[a-z+]+:\/\//i, '');
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
  if (!m) fail(`KAFKA_BROKERS: cannot parse "${first}" as host:port`);
  return { host: stripBrackets(m[1]), port: Number(m[2] || 9092) };
}

const stripBrackets = (h) => h.replace(/^\[(.*)\]$/, '$1');
const isLocal = (h) => ['127.0.0.1', 'localhost', '::1', '0.0.0.0', os.hostname()].includes(h);

// --------------------------------------------------------------------------------------------- helpers

export class Fatal extends Error {}
export function fail(msg) {
  throw new Fatal(msg);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const secs = (t0) => ((Date.now() - t0) / 1000).toFixed(1);
export const tilde = (p) => (p.startsWith(os.homedir() + path.sep) ? '~' + p.slice(os.homedir().length) : p);
export const line = (name, where, what) => console.log(`${name.padEnd(6)} ${where.padEnd(22)} ${what}`);

export function portOpen(host, port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export function findExecutable(name, extraDirs = []) {
  const dirs = [...extraDirs, ...(process.env.PATH || '').split(path.delimiter)].filter(Boolean);
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

export function pidAlive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if (e.code !== 'EPERM') return false;
  }
  // A zombie (exited, not yet reaped) counts as dead.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

export function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

/** Alive and (when /proc can tell) really the process we think it is, not a recycled pid. */
export function pidMatches(pid, predicate) {
  if (!pidAlive(pid)) return false;
  const args = cmdline(pid);
  return args === null ? true : predicate(args);
}

const isOurBroker = (args) => args.includes('kafka.Kafka') && args.includes(KAFKA_CONFIG);
const isDbServer = (args) => args.slice(0, 2).some((a) => /(^|\/)(mariadbd|mysqld)$/.test(a));

export function scanProcs(predicate) {
  let entries;
  try {
    entries = fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return entries.map(Number).filter((pid) => pid !== process.pid && pidMatches(pid, (a) => predicate(a)));
}

export async function waitExit(pid, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!pidAlive(pid)) return true;
    await sleep(100);
  }
  return !pidAlive(pid);
}

/** SIGTERM, then SIGKILL after graceMs. Returns 'term' | 'kill' | 'gone'. */
export async function terminate(pid, graceMs) {
  if (!pidAlive(pid)) return 'gone';
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'gone';
  }
  if (await waitExit(pid, graceMs)) return 'term';
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* exited meanwhile */
  }
  await waitExit(pid, 5000);
  return 'kill';
}

// ------------------------------------------------------------------------------------- state and lock

function readState() {
  try {
    return JSON.parse(fs.readFileSync(STATE_FILE, 'utf8'));
  } catch {
    return {};
  }
}

function writeState(state) {
  fs.mkdirSync(CACHE_ROOT, { recursive: true });
  const tmp = `${STATE_FILE}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  fs.renameSync(tmp, STATE_FILE);
}

function updateState(key, value) {
  const s = readState();
  if (value === undefined) delete s[key];
  else s[key] = value;
  writeState(s);
}

/** Drops state entries whose process is gone (stale pid after a crash, reboot or kill -9). */
function cleanStaleState() {
  const s = readState();
  let changed = false;
  if (s.kafka && !pidMatches(s.kafka.pid, isOurBroker)) {
    delete s.kafka;
    changed = true;
  }
  if (s.mysql && !pidMatches(s.mysql.pid, isDbServer)) {
    delete s.mysql;
    changed = true;
    try {
      fs.unlinkSync(DB_PIDFILE);
    } catch {
      /* none */
    }
  }
  if (changed) writeState(s);
  return s;
}

/** Serialises concurrent runs (two `npm test` at once); a lock left by a dead process is taken over. */
export async function withLock(fn, lockFile = LOCK_FILE) {
  fs.mkdirSync(path.dirname(lockFile), { recursive: true });
  const until = Date.now() + 300_000; // a first-time jar download can take a while
  let announced = false;
  for (;;) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    let holder;
    let ageMs;
    try {
      holder = Number(fs.readFileSync(lockFile, 'utf8').trim());
      ageMs = Date.now() - fs.statSync(lockFile).mtimeMs;
    } catch {
      continue; // vanished between open and read
    }
    if (holder === process.pid || (!pidAlive(holder) && (holder > 0 || ageMs > 2000))) {
      fs.rmSync(lockFile, { force: true }); // stale lock
      continue;
    }
    if (Date.now() > until) fail(`another services.mjs (pid ${holder}) holds ${tilde(lockFile)}; giving up`);
    if (!announced) {
      console.log(`waiting for another services.mjs run (pid ${holder}) to finish…`);
      announced = true;
    }
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    try {
      if (fs.readFileSync(lockFile, 'utf8').trim() === String(process.pid)) fs.unlinkSync(lockFile);
    } catch {
      /* already gone */
    }
  }
}

// ------------------------------------------------------------------------------------ Kafka protocol

/**
 * Minimal Metadata request (v4, all topics) over raw TCP. Resolves
 * { brokers, controllerId, clusterId, topics } or null when the broker is not ready / not reachable.
 */
export function kafkaMetadata(host, port, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const clientId = Buffer.from('services.mjs');
    const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + 1);
    let o = 0;
    o = body.writeInt16BE(3, o); // api_key Metadata
    o = body.writeInt16BE(4, o); // api_version 4 (Kafka 4.x dropped v0–v3)
    o = body.writeInt32BE(7, o); // correlation_id
    o = body.writeInt16BE(clientId.length, o);
    o += clientId.copy(body, o);
    o = body.writeInt32BE(-1, o); // topics: null = all
    body.writeInt8(0, o); // allow_auto_topic_creation = false
    const frame = Buffer.concat([Buffer.alloc(4), body]);
    frame.writeInt32BE(body.length, 0);

    let buf = Buffer.alloc(0);
    let settled = false;
    const sock = net.connect({ host, port });
    const finish = (v) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => finish(null));
    sock.once('error', () => finish(null));
    sock.once('close', () => finish(null));
    sock.once('connect', () => sock.write(frame));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4 || buf.length < 4 + buf.readInt32BE(0)) return;
      try {
        finish(parseMetadataV4(buf.subarray(4, 4 + buf.readInt32BE(0))));
      } catch {
        finish(null);
      }
    });
  });
}

function parseMetadataV4(b) {
  let o = 0;
  const i8 = () => b.readInt8((o += 1) - 1);
  const i16 = () => b.readInt16BE((o += 2) - 2);
  const i32 = () => b.readInt32BE((o += 4) - 4);
  const str = () => {
    const n = i16();
    if (n < 0) return null;
    const s = b.toString('utf8', o, o + n);
    o += n;
    return s;
  };
  i32(); // correlation id
  i32(); // throttle_time_ms
  const brokers = [];
  for (let n = i32(); n > 0; n--) brokers.push({ nodeId: i32(), host: str(), port: i32(), rack: str() });
  const clusterId = str();
  const controllerId = i32();
  const topics = [];
  for (let n = i32(); n > 0; n--) {
    i16(); // error_code
    const name = str();
    const internal = i8() !== 0;
    const parts = [];
    for (let p = i32(); p > 0; p--) {
      i16(); // error_code
      const partition = i32();
      const leader = i32();
      const replicas = [];
      for (let r = i32(); r > 0; r--) replicas.push(i32());
      const isr = [];
      for (let r = i32(); r > 0; r--) isr.push(i32());
      parts.push({ partition, leader, replicas, isr });
    }
    topics.push({ name, internal, partitions: parts.length, parts });
  }
  return { brokers, controllerId, clusterId, topics };
}

// --------------------------------------------------------------------------------------------- MySQL

async function dbUp() {
  const { host, port } = parseDb();
  const where = `${host}:${port}`;
  if (await portOpen(host, port)) {
    const s = cleanStaleState();
    line('mysql', where, `already running${s.mysql ? ` (pid ${s.mysql.pid}, started by services.mjs)` : ''}`);
    dbConfigNote(s);
    return;
  }
  if (!isLocal(host)) fail(`MySQL at ${where} does not accept connections and is not local; start it yourself.`);

  const t0 = Date.now();
  // A server process may already exist and be starting up (or be stuck): wait for it instead of starting
  // a second one that would fail on the InnoDB lock.
  const existing = scanProcs(isDbServer);
  if (existing.length > 0) {
    if (await waitPort(host, port, READY_TIMEOUT_MS)) {
      line('mysql', where, `became ready after ${secs(t0)} s (existing server pid ${existing.join(', ')})`);
      dbConfigNote(cleanStaleState());
      return;
    }
    fail(`a MySQL/MariaDB server is running (pid ${existing.join(', ')}) but ${where} did not open within 60 s.`);
  }

  const bin =
    findExecutable('mariadbd', ['/usr/sbin', '/usr/local/sbin']) ||
    findExecutable('mysqld', ['/usr/sbin', '/usr/local/sbin']);
  if (!bin) {
    fail(
      `MySQL is not reachable at ${where} and no local mariadbd/mysqld is installed.\n` +
        `Start one, e.g. \`docker compose up -d mysql kafka\`, or point DATABASE_URL at a running server.`,
    );
  }
  if (port !== 3306) {
    fail(`MySQL is not reachable at ${where}; refusing to start ${bin} for a non-default port (${port}).`);
  }
  if (!fs.existsSync(DB_CONFIG)) fail(`the server settings file ${DB_CONFIG} is missing.`);
  const args = dbServerArgs();
  fs.mkdirSync(CACHE_ROOT, { recursive: true });
  ensureRunDir();

  let pid;
  const ssd = findExecutable('start-stop-daemon', ['/usr/sbin', '/sbin']);
  if (ssd) {
    fs.rmSync(DB_PIDFILE, { force: true });
    const r = spawnSync(
      ssd,
      [
        '--start',
        '--oknodo',
        '--background',
        '--make-pidfile',
        '--pidfile',
        DB_PIDFILE,
        '--output',
        DB_OUT,
        '--exec',
        bin,
        '--',
        ...args,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) fail(`start-stop-daemon could not start ${bin}: ${(r.stderr || r.stdout || '').trim()}`);
    for (let i = 0; i < 20 && !pid; i++) {
      try {
        pid = Number(fs.readFileSync(DB_PIDFILE, 'utf8').trim()) || undefined;
      } catch {
        /* not written yet */
      }
      if (!pid) await sleep(50);
    }
  } else {
    const out = fs.openSync(DB_OUT, 'a');
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', out, out] });
    child.unref();
    fs.closeSync(out);
    pid = child.pid;
  }
  if (pid)
    updateState('mysql', {
      pid,
      bin,
      config: DB_CONFIG,
      host,
      port,
      startedAt: new Date().toISOString(),
      startedBy: 'services.mjs',
    });

  while (Date.now() - t0 < READY_TIMEOUT_MS) {
    if (await portOpen(host, port)) {
      line('mysql', where, `started in ${secs(t0)} s (${path.basename(bin)} pid ${pid ?? '?'})`);
      return;
    }
    if (pid && !pidAlive(pid)) break;
    await sleep(250);
  }
  fail(`${bin} did not open ${where} within 60 s; see ${tilde(DB_OUT)} and the server's error log.`);
}

/** Debian's mariadbd needs /run/mysqld (socket, pid file) owned by the mysql user; it is on a tmpfs. */
export function ensureRunDir() {
  const dir = '/run/mysqld';
  if (fs.existsSync(dir) || process.getuid?.() !== 0) return;
  try {
    fs.mkdirSync(dir, { recursive: true });
    const pw = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('mysql:'));
    if (pw) {
      const [, , uid, gid] = pw.split(':');
      fs.chownSync(dir, Number(uid), Number(gid));
    }
  } catch {
    /* best effort; the server's own error will tell */
  }
}

/**
 * mariadbd/mysqld arguments: the project's settings. --defaults-extra-file must be the first argument. The file is
 * read after the system's option files (/etc/mysql/my.cnf), so its values win; datadir, socket and port stay the system's.
 */
function dbServerArgs() {
  return [DB_CONFIG_ARG];
}

/** One line when the server that answers was (as far as can be seen cheaply) not started with DB_CONFIG. */
function dbConfigNote(s) {
  const rel = path.relative(process.cwd(), DB_CONFIG) || DB_CONFIG;
  if (s.mysql) {
    if (s.mysql.config === DB_CONFIG) return;
    console.log(`       note: started by services.mjs without ${rel}; \`down\` then \`up\` applies it`);
    return;
  }
  // Started elsewhere: fine if its command line carries our file (a server that includes it from its own
  // config directory, as docker compose does, cannot be told apart cheaply).
  if (scanProcs(isDbServer).some((pid) => (cmdline(pid) || []).includes(DB_CONFIG_ARG))) return;
  console.log(`       note: not started by services.mjs; ${rel} applies only if this server's config includes it`);
}

async function waitPort(host, port, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await portOpen(host, port)) return true;
    await sleep(250);
  }
  return false;
}

async function dbDown() {
  const { host, port } = parseDb();
  const s = cleanStaleState();
  if (!s.mysql) {
    line('mysql', `${host}:${port}`, 'not started by services.mjs; left alone');
    return;
  }
  const t0 = Date.now();
  const how = await terminate(s.mysql.pid, DB_STOP_GRACE_MS);
  updateState('mysql', undefined);
  fs.rmSync(DB_PIDFILE, { force: true });
  line(
    'mysql',
    `${host}:${port}`,
    how === 'gone'
      ? 'was not running'
      : `stopped pid ${s.mysql.pid} in ${secs(t0)} s${how === 'kill' ? ' (SIGKILL)' : ''}`,
  );
}

// --------------------------------------------------------------------------------------------- Kafka

export function checkJava() {
  const java = findExecutable('java');
  const mvn = findExecutable('mvn');
  if (!java || !mvn) {
    fail(
      `Kafka is not running and ${[!java && 'java', !mvn && 'mvn'].filter(Boolean).join(' and ')} ` +
        `${!java && !mvn ? 'are' : 'is'} not installed, so it cannot be run from the Maven Central jars.\n` +
        `Install a JDK 17+ and Maven, or start the services with \`docker compose up -d mysql kafka\`.`,
    );
  }
  const v = spawnSync(java, ['-version'], { encoding: 'utf8' });
  const m = /version "(\d+)(?:\.(\d+))?/.exec(`${v.stderr}${v.stdout}`);
  if (m) {
    const major = m[1] === '1' ? Number(m[2]) : Number(m[1]);
    if (major < 17) fail(`Kafka ${KAFKA_VERSION} needs Java 17+, found Java ${major} at ${java}.`);
  }
  return { java, mvn };
}

function libComplete() {
  if (!fs.existsSync(KAFKA_LIB_MARKER)) return false;
  try {
    const jars = fs.readdirSync(KAFKA_LIB);
    return jars.includes(`kafka_2.13-${KAFKA_VERSION}.jar`) && jars.includes(`log4j-slf4j-impl-${LOG4J_VERSION}.jar`);
  } catch {
    return false;
  }
}

export function fetchJars(mvn) {
  if (libComplete()) return null;
  const t0 = Date.now();
  fs.rmSync(KAFKA_LIB_MARKER, { force: true });
  fs.rmSync(KAFKA_LIB, { recursive: true, force: true }); // a half download is redone from scratch
  fs.mkdirSync(KAFKA_HOME, { recursive: true });
  const dep = (g, a, v) =>
    `    <dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;
  const pom = `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services.mjs: collects the Kafka broker's runtime jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.event-trigger-platform</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>${KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
${dep('org.apache.kafka', 'kafka_2.13', KAFKA_VERSION)}
${dep('org.apache.logging.log4j', 'log4j-slf4j-impl', LOG4J_VERSION)}
${dep('org.apache.logging.log4j', 'log4j-core', LOG4J_VERSION)}
${dep('org.apache.logging.log4j', 'log4j-api', LOG4J_VERSION)}
  </dependencies>
</project>
`;
  const pomFile = path.join(KAFKA_HOME, 'pom.xml');
  fs.writeFileSync(pomFile, pom);
  console.log(`kafka  fetching Kafka ${KAFKA_VERSION} jars from Maven Central into ${tilde(KAFKA_LIB)} …`);
  const r = spawnSync(
    mvn,
    [
      '-q',
      '-B',
      '-f',
      pomFile,
      `${DEPENDENCY_PLUGIN}:copy-dependencies`,
      '-DincludeScope=runtime',
      `-DoutputDirectory=${KAFKA_LIB}`,
    ],
    { cwd: KAFKA_HOME, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.error || r.status !== 0) {
    const out = `${r.stdout || ''}${r.stderr || ''}`.trim().split('\n').slice(-30).join('\n');
    fail(`mvn could not fetch the Kafka jars (exit ${r.status ?? r.error?.message}):\n${out}`);
  }
  const jars = fs.readdirSync(KAFKA_LIB).filter((f) => f.endsWith('.jar'));
  fs.writeFileSync(KAFKA_LIB_MARKER, jars.sort().join('\n') + '\n');
  if (!libComplete()) fail(`mvn finished but ${tilde(KAFKA_LIB)} lacks the Kafka or log4j jars.`);
  const mb = jars.reduce((n, f) => n + fs.statSync(path.join(KAFKA_LIB, f)).size, 0) / 1e6;
  return `fetched ${jars.length} jars (${mb.toFixed(0)} MB) in ${secs(t0)} s`;
}

function writeKafkaConfig(port) {
  const controllerPort = port + 1;
  const props = `# Generated by scripts/services.mjs — single-node combined KRaft broker for development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${controllerPort}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${KAFKA_DATA}
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After an unclean stop (kill -9) the restarted broker cannot register until its old session expires
# (default 9 s); keep that short for fault tests.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=1000
num.network.threads=2
num.io.threads=4
log.retention.hours=24
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
`;
  const log4j = `# Generated by scripts/services.mjs. Console (captured in kafka.out) at WARN plus the start-up line;
# a small rolling file (kafka-logs/server.log) at INFO.
status = warn
name = event-trigger-platform-kafka
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = WARN
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${KAFKA_LOG_DIR}/server.log
appender.file.filePattern = ${KAFKA_LOG_DIR}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
rootLogger.appenderRef.file.ref = FILE
# Quieter INFO chatter that would fill the file quickly.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
# "Kafka Server started" also on the console, so readiness can be read from kafka.out.
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
logger.started.additivity = false
logger.started.appenderRef.stdout.ref = STARTED
logger.started.appenderRef.file.ref = FILE
appender.started.type = Console
appender.started.name = STARTED
appender.started.layout.type = PatternLayout
appender.started.layout.pattern = [%d] %p %m (%c)%n
`;
  writeIfChanged(KAFKA_CONFIG, props);
  writeIfChanged(LOG4J_CONFIG, log4j);
}

export function writeIfChanged(file, text) {
  try {
    if (fs.readFileSync(file, 'utf8') === text) return;
  } catch {
    /* new */
  }
  fs.writeFileSync(file, text);
}

function formatStorage(java) {
  if (fs.existsSync(path.join(KAFKA_DATA, 'meta.properties'))) return null;
  const t0 = Date.now();
  fs.mkdirSync(KAFKA_DATA, { recursive: true });
  const r = spawnSync(
    java,
    [
      '-Xmx256m',
      `-Dlog4j2.configurationFile=${LOG4J_CONFIG}`,
      `-Dkafka.logs.dir=${KAFKA_LOG_DIR}`,
      '-cp',
      `${KAFKA_LIB}/*`,
      'kafka.tools.StorageTool',
      'format',
      '--config',
      KAFKA_CONFIG,
      `--cluster-id=${CLUSTER_ID}`,
      '--ignore-formatted',
    ],
    { encoding: 'utf8' },
  );
  if (r.error || r.status !== 0) {
    fail(`formatting Kafka storage in ${tilde(KAFKA_DATA)} failed:\n${`${r.stdout}${r.stderr}`.trim()}`);
  }
  return `formatted storage in ${secs(t0)} s`;
}

/** Our broker process, from the state file or — if that was lost — from the process table. */
function findOurBroker() {
  const s = cleanStaleState();
  if (s.kafka) return s.kafka.pid;
  const found = scanProcs(isOurBroker);
  if (found.length > 0) {
    updateState('kafka', { pid: found[0], startedAt: null, startedBy: 'services.mjs', recovered: true });
    return found[0];
  }
  return null;
}

async function kafkaReady(host, port, logFrom) {
  const md = await kafkaMetadata(host, port);
  if (md && md.brokers.length > 0 && md.controllerId >= 0) return md;
  if (logFrom !== undefined && (await portOpen(host, port)) && logSays(logFrom, 'Kafka Server started')) {
    return md ?? { brokers: [], controllerId: -1, clusterId: null, topics: [] };
  }
  return null;
}

export function logSays(file, text) {
  try {
    return fs.readFileSync(file, 'utf8').includes(text);
  } catch {
    return false;
  }
}

export function tailLog(file, n = 25) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

async function kafkaUp() {
  const { host, port } = parseKafka();
  const where = `${host}:${port}`;
  let pid = findOurBroker();

  const owner = pid ? `pid ${pid}, started by services.mjs` : 'not managed by services.mjs';
  const t0 = Date.now();
  if (await portOpen(host, port)) {
    // Open is not ready: a restarting broker listens before it has registered (e.g. after a kill -9 it
    // waits for its old session to expire). Wait until Metadata lists a broker and a controller.
    let md = await kafkaReady(host, port);
    if (!md) md = await waitKafka(host, port, pid, READY_TIMEOUT_MS);
    if (!md) fail(`${where} accepts connections but did not answer a Kafka Metadata request within 60 s (${owner}).`);
    const waited = Date.now() - t0 > 500 ? `became ready after ${secs(t0)} s` : 'already running';
    line('kafka', where, `${waited} (${owner})`);
    return;
  }
  if (!isLocal(host)) fail(`Kafka at ${where} does not accept connections and is not local; start it yourself.`);

  if (pid) {
    // Our broker exists but the port is closed: it is starting (or stuck, e.g. on the data dir's .lock).
    const ready = await waitKafka(host, port, pid, READY_TIMEOUT_MS, KAFKA_OUT);
    if (ready) {
      line('kafka', where, `became ready after ${secs(t0)} s (pid ${pid}, started by services.mjs)`);
      return;
    }
    console.log(`kafka  broker pid ${pid} is alive but not serving ${where}; restarting it`);
    await terminate(pid, KAFKA_STOP_GRACE_MS);
    updateState('kafka', undefined);
  }

  const { java, mvn } = checkJava();
  const notes = [];
  const fetched = fetchJars(mvn);
  if (fetched) notes.push(fetched);
  writeKafkaConfig(port);
  // No broker of ours is alive, so a leftover .lock in the data dir is stale (Kafka uses an OS file lock,
  // the file itself is harmless, but remove it so nobody is misled).
  fs.rmSync(path.join(KAFKA_DATA, '.lock'), { force: true });
  const formatted = formatStorage(java);
  if (formatted) notes.push(formatted);

  fs.mkdirSync(KAFKA_LOG_DIR, { recursive: true });
  if (fs.existsSync(KAFKA_OUT)) fs.renameSync(KAFKA_OUT, `${KAFKA_OUT}.prev`);
  const out = fs.openSync(KAFKA_OUT, 'w');
  const tStart = Date.now();
  const child = spawn(
    java,
    [
      '-Xms256m',
      '-Xmx512m',
      '-XX:+UseG1GC',
      // KAFKA_FAST_START=1 keeps the JIT at C1 (a second faster start, but the broker then burns about twice
      // the CPU per message); the default lets C2 compile the hot paths, which is what benchmarks should see.
      ...(process.env.KAFKA_FAST_START === '1' ? ['-XX:TieredStopAtLevel=1'] : []),
      '-XX:+ExitOnOutOfMemoryError',
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${LOG4J_CONFIG}`,
      `-Dkafka.logs.dir=${KAFKA_LOG_DIR}`,
      '-cp',
      `${KAFKA_LIB}/*`,
      'kafka.Kafka',
      KAFKA_CONFIG,
    ],
    { cwd: CACHE_ROOT, detached: true, stdio: ['ignore', out, out] },
  );
  child.unref();
  fs.closeSync(out);
  child.once('error', () => {}); // reported through the readiness wait below
  pid = child.pid;
  if (!pid) fail(`could not spawn ${java}`);
  updateState('kafka', {
    pid,
    host,
    port,
    version: KAFKA_VERSION,
    dataDir: KAFKA_DATA,
    log: KAFKA_OUT,
    startedAt: new Date().toISOString(),
    startedBy: 'services.mjs',
  });

  const ready = await waitKafka(host, port, pid, READY_TIMEOUT_MS, KAFKA_OUT);
  if (!ready) {
    const alive = pidAlive(pid);
    if (alive) await terminate(pid, KAFKA_STOP_GRACE_MS);
    updateState('kafka', undefined);
    fail(
      `Kafka ${alive ? 'did not become ready within 60 s' : 'exited during start-up'}; last lines of ${tilde(KAFKA_OUT)}:\n` +
        tailLog(KAFKA_OUT),
    );
  }
  notes.unshift(`started in ${secs(tStart)} s (pid ${pid})`);
  line('kafka', where, notes.join('; '));
}

async function waitKafka(host, port, pid, ms, logFile) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (pid && !pidAlive(pid)) return null;
    const md = await kafkaReady(host, port, logFile);
    if (md) return md;
    await sleep(250);
  }
  return null;
}

async function kafkaDown(label = 'stopped') {
  const { host, port } = parseKafka();
  const where = `${host}:${port}`;
  const pid = findOurBroker();
  if (!pid) {
    const open = await portOpen(host, port);
    line('kafka', where, open ? 'not started by services.mjs; left alone' : 'not running');
    return;
  }
  const t0 = Date.now();
  const how = await terminate(pid, KAFKA_STOP_GRACE_MS);
  updateState('kafka', undefined);
  line(
    'kafka',
    where,
    how === 'gone'
      ? 'was not running'
      : `${label} pid ${pid} in ${secs(t0)} s${how === 'kill' ? ' (SIGKILL after 15 s)' : ''}`,
  );
}

// -------------------------------------------------------------------------------------------- status

async function status() {
  const s = cleanStaleState();
  const db = parseDb();
  const k = parseKafka();
  const dbOpen = await portOpen(db.host, db.port);
  line(
    'mysql',
    `${db.host}:${db.port}`,
    `${dbOpen ? 'up' : 'DOWN'}${s.mysql ? ` — started by services.mjs, pid ${s.mysql.pid}` : dbOpen ? ' — not managed by services.mjs' : ''}`,
  );
  const pid = findOurBroker();
  const md = await kafkaMetadata(k.host, k.port);
  const kOpen = md ? true : await portOpen(k.host, k.port);
  let detail = kOpen ? 'up' : 'DOWN';
  if (md) {
    const user = md.topics.filter((t) => !t.internal);
    detail += ` — cluster ${md.clusterId}, controller ${md.controllerId}, ${user.length} topic(s)`;
  } else if (kOpen) detail += ' — port open, metadata not ready';
  detail += pid ? `; started by services.mjs, pid ${pid}` : kOpen ? '; not managed by services.mjs' : '';
  line('kafka', `${k.host}:${k.port}`, detail);
  if (pid || fs.existsSync(KAFKA_DATA)) {
    console.log(`       data ${tilde(KAFKA_DATA)}, log ${tilde(KAFKA_OUT)}, state ${tilde(STATE_FILE)}`);
  }
  return dbOpen && kOpen;
}

// ---------------------------------------------------------------------------------------------- main

const USAGE =
  'usage: node scripts/services.mjs up|down|status|kafka-stop|kafka-start\n' +
  '       node scripts/services.mjs up|down|status --ha [--json]   (3 Kafka brokers + 3-node Galera behind HAProxy)\n' +
  '       node scripts/services.mjs ha-start|ha-stop galera|kafka|haproxy <n>';

async function main(cmd, args) {
  if (args.includes('--ha') || cmd.startsWith('ha-')) {
    const ha = await import('./services-ha.mjs');
    return ha.main(cmd, args);
  }
  switch (cmd) {
    case 'up':
      return withLock(async () => {
        await dbUp();
        await kafkaUp();
      });
    case 'down':
      return withLock(async () => {
        await kafkaDown();
        await dbDown();
      });
    case 'status':
      await status();
      return;
    case 'kafka-stop':
      return withLock(() => kafkaDown());
    case 'kafka-start':
      return withLock(() => kafkaUp());
    default:
      console.error(USAGE);
      process.exitCode = 2;
  }
}

// Run only as a script: services-ha.mjs imports the helpers above.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv[2] ?? '', process.argv.slice(3)).catch((e) => {
    if (e instanceof Fatal) console.error(`services: ${e.message}`);
    else console.error(e);
    process.exitCode = 1;
  });
}
