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
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CACHE_ROOT,
  DB_CONFIG,
  DB_STOP_GRACE_MS,
  Fatal,
  KAFKA_STOP_GRACE_MS,
  KAFKA_VERSION,
  READY_TIMEOUT_MS,
  checkJava,
  cmdline,
  ensureRunDir,
  fail,
  fetchJars,
  findExecutable,
  formatKafkaStorage,
  jsonStateFile,
  kafkaBrokerArgs,
  kafkaMetadata,
  line,
  logSays,
  pidAlive,
  pidMatches,
  pollUntil,
  portOpen,
  scanProcs,
  secs,
  sleep,
  spawnDetached,
  tailLog,
  terminate,
  tilde,
  withLock,
  writeIfChanged,
} from './services-common.mjs';

const KAFKA_DATA = path.join(CACHE_ROOT, 'kafka-data');
const KAFKA_CONFIG = path.join(CACHE_ROOT, 'kafka-server.properties');
const LOG4J_CONFIG = path.join(CACHE_ROOT, 'kafka-log4j2.properties');
const KAFKA_OUT = path.join(CACHE_ROOT, 'kafka.out'); // broker stdout/stderr of the current run
const KAFKA_LOG_DIR = path.join(CACHE_ROOT, 'kafka-logs'); // rolling server.log (INFO)
const DB_OUT = path.join(CACHE_ROOT, 'mariadb.out');
const DB_PIDFILE = path.join(CACHE_ROOT, 'mariadb.pid');
const STATE_FILE = path.join(CACHE_ROOT, 'services.json');
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

const isOurBroker = (args) => args.includes('kafka.Kafka') && args.includes(KAFKA_CONFIG);
const isDbServer = (args) => args.slice(0, 2).some((a) => /(^|\/)(mariadbd|mysqld)$/.test(a));

// ------------------------------------------------------------------------------------- state and lock

const stateFile = jsonStateFile(STATE_FILE, () => ({}));
const readState = stateFile.read;
const writeState = stateFile.write;

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

// ------------------------------------------------------------------------------------ Kafka protocol

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

function formatStorage(java) {
  const t0 = Date.now();
  const formatted = formatKafkaStorage(java, { data: KAFKA_DATA, props: KAFKA_CONFIG, log4j: LOG4J_CONFIG, logDir: KAFKA_LOG_DIR });
  return formatted ? `formatted storage in ${secs(t0)} s` : null;
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
  const tStart = Date.now();
  const jvm = [
    '-Xms256m',
    '-Xmx512m',
    '-XX:+UseG1GC',
    // KAFKA_FAST_START=1 keeps the JIT at C1 (a second faster start, but the broker then burns about twice
    // the CPU per message); the default lets C2 compile the hot paths, which is what benchmarks should see.
    ...(process.env.KAFKA_FAST_START === '1' ? ['-XX:TieredStopAtLevel=1'] : []),
  ];
  pid = spawnDetached(java, kafkaBrokerArgs({ props: KAFKA_CONFIG, log4j: LOG4J_CONFIG, logDir: KAFKA_LOG_DIR, jvm }), KAFKA_OUT, CACHE_ROOT);
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

function waitKafka(host, port, pid, ms, logFile) {
  return pollUntil(() => kafkaReady(host, port, logFile), { ms, pid });
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
      }, LOCK_FILE);
    case 'down':
      return withLock(async () => {
        await kafkaDown();
        await dbDown();
      }, LOCK_FILE);
    case 'status':
      await status();
      return;
    case 'kafka-stop':
      return withLock(() => kafkaDown(), LOCK_FILE);
    case 'kafka-start':
      return withLock(() => kafkaUp(), LOCK_FILE);
    default:
      console.error(USAGE);
      process.exitCode = 2;
  }
}

// Run only as a script (services-ha.mjs is loaded from main for --ha).
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv[2] ?? '', process.argv.slice(3)).catch((e) => {
    if (e instanceof Fatal) console.error(`services: ${e.message}`);
    else console.error(e);
    process.exitCode = 1;
  });
}
