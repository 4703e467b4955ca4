// What the one-node services (services.mjs) and the cluster on one machine (services-ha.mjs) share:
// process and file helpers, the lock, a JSON state file, the Kafka jars from Maven Central, starting and
// formatting a broker, and the bits of the Kafka protocol they speak over raw TCP.
// Plain Node ESM with built-ins only, like the scripts that import it.

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

export const CACHE_ROOT =
  process.env.EVENT_TRIGGER_CACHE_DIR ||
  path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'event-trigger-platform');

const KAFKA_HOME = path.join(CACHE_ROOT, `kafka-${KAFKA_VERSION}`);

export const KAFKA_LIB = path.join(KAFKA_HOME, 'lib');

const KAFKA_LIB_MARKER = path.join(KAFKA_HOME, 'lib.complete');

// The project's server settings (buffer pool, redo log, isolation, binlog format, ...), see the file itself.
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const DB_CONFIG = path.join(REPO_ROOT, 'deploy', 'mysql', 'etp.cnf');

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

/** Serialises concurrent runs (two `npm test` at once); a lock left by a dead process is taken over. */
export async function withLock(fn, lockFile) {
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

/**
 * Minimal Metadata request (v4, all topics) over raw TCP. Resolves
 * { brokers, controllerId, clusterId, topics } or null when the broker is not ready / not reachable.
 */
export async function kafkaMetadata(host, port, timeoutMs = 2000) {
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
  const res = await kafkaExchange(host, port, body, timeoutMs);
  try {
    return res && parseMetadataV4(res);
  } catch {
    return null;
  }
}

/** One request/response exchange with a broker over the Kafka protocol (size-prefixed frames); null on any failure. */
export function kafkaExchange(host, port, body, timeoutMs = 10_000) {
  return new Promise((resolve) => {
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
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) finish(buf.subarray(4, 4 + buf.readInt32BE(0)));
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
  const dep = (g, a, v) => `    <dependency><groupId>${g}</groupId><artifactId>${a}</artifactId><version>${v}</version></dependency>`;
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
    ['-q', '-B', '-f', pomFile, `${DEPENDENCY_PLUGIN}:copy-dependencies`, '-DincludeScope=runtime', `-DoutputDirectory=${KAFKA_LIB}`],
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

export function writeIfChanged(file, text) {
  try {
    if (fs.readFileSync(file, 'utf8') === text) return;
  } catch {
    /* new */
  }
  fs.writeFileSync(file, text);
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

/** A JSON state file (what a script started), written atomically; `empty()` when it is missing or unreadable. */
export function jsonStateFile(file, empty) {
  return {
    read() {
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch {
        return empty();
      }
    },
    write(state) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
      fs.renameSync(tmp, file);
    },
  };
}

/** Starts a process that outlives this script, its output in `outFile` (the previous run's kept as .prev). */
export function spawnDetached(bin, args, outFile, cwd) {
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  if (fs.existsSync(outFile)) fs.renameSync(outFile, `${outFile}.prev`);
  const out = fs.openSync(outFile, 'w');
  const child = spawn(bin, args, { cwd, detached: true, stdio: ['ignore', out, out] });
  child.unref();
  child.once('error', () => {}); // reported through the caller's readiness wait
  fs.closeSync(out);
  if (!child.pid) fail(`could not spawn ${bin}`);
  return child.pid;
}

/** Polls `probe` until it gives a value (returned), `ms` pass, or process `pid` dies (null for both). */
export async function pollUntil(probe, { ms, pid, intervalMs = 250 }) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (pid && !pidAlive(pid)) return null;
    const v = await probe();
    if (v) return v;
    await sleep(intervalMs);
  }
  return null;
}

/**
 * Formats a KRaft broker's storage (once: false when `data` holds a formatted store already) with the
 * fixed CLUSTER_ID. `jvm`: extra JVM options.
 */
export function formatKafkaStorage(java, { data, props, log4j, logDir, jvm = [] }) {
  if (fs.existsSync(path.join(data, 'meta.properties'))) return false;
  fs.mkdirSync(data, { recursive: true });
  const r = spawnSync(
    java,
    [
      '-Xmx256m',
      ...jvm,
      `-Dlog4j2.configurationFile=${log4j}`,
      `-Dkafka.logs.dir=${logDir}`,
      '-cp',
      `${KAFKA_LIB}/*`,
      'kafka.tools.StorageTool',
      'format',
      '--config',
      props,
      `--cluster-id=${CLUSTER_ID}`,
      '--ignore-formatted',
    ],
    { encoding: 'utf8' },
  );
  if (r.error || r.status !== 0) fail(`formatting Kafka storage in ${tilde(data)} failed:\n${`${r.stdout}${r.stderr}`.trim()}`);
  return true;
}

/** The command line of a broker: `jvm` options, then the log settings, the jars and its properties file. */
export function kafkaBrokerArgs({ props, log4j, logDir, jvm }) {
  return [
    ...jvm,
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4j}`,
    `-Dkafka.logs.dir=${logDir}`,
    '-cp',
    `${KAFKA_LIB}/*`,
    'kafka.Kafka',
    props,
  ];
}
