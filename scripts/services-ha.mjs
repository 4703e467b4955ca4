// The production topology on one machine, for fault tests: three Kafka brokers (KRaft, combined
// broker+controller, the same Maven Central jars as the one-node broker) and a three-node MariaDB Galera
// cluster behind HAProxy, which sends every connection to one healthy node at a time.
//
//   node scripts/services.mjs up --ha | down --ha | status --ha [--json]
//   node scripts/services.mjs ha-start galera|kafka|haproxy <n>    (start one member again, wait until it serves)
//   node scripts/services.mjs ha-stop  galera|kafka|haproxy <n>    (SIGTERM one member)
//
// The platform connects exactly as to one MySQL and to a list of brokers:
//   DATABASE_URL=mysql://root@127.0.0.1:3310/event_triggers
//   KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096
//   (KAFKA_REPLICATION_FACTOR / KAFKA_MIN_INSYNC_REPLICAS default to 3 / 2 on three brokers)
//
// Loopback only; its own ports and data (ETP_HA_DIR, default /var/tmp/etp-ha). It never touches the
// one-node services (127.0.0.1:3306 / :9092) nor their state file. What it starts, `down --ha` stops.
// Needs: mariadbd + Debian's galera-4 (/usr/lib/galera/libgalera_smm.so), mariadb-backup (state transfer to a
// node that lost its data) and haproxy (`apt-get install -y mariadb-backup haproxy`), Java 17 + Maven.
//
// Ports: Galera SQL 3311-3313, group communication 4571-4573, IST 4581-4583, SST 4591-4593; HAProxy
// 3310 (writes), 8406 (stats page); Kafka 19092/19094/19096, controllers 19093/19095/19097.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  DB_CONFIG,
  KAFKA_STOP_GRACE_MS,
  DB_STOP_GRACE_MS,
  checkJava,
  ensureRunDir,
  fail,
  fetchJars,
  findExecutable,
  formatKafkaStorage,
  jsonStateFile,
  kafkaBrokerArgs,
  kafkaExchange,
  kafkaMetadata,
  line,
  pidAlive,
  pidMatches,
  pollUntil,
  portOpen,
  secs,
  sleep,
  spawnDetached,
  tailLog,
  terminate,
  tilde,
  withLock,
  writeIfChanged,
} from './services-common.mjs';

const HA_ROOT = path.resolve(process.env.ETP_HA_DIR || '/var/tmp/etp-ha');
const STATE_FILE = path.join(HA_ROOT, 'state.json');
const LOCK_FILE = path.join(HA_ROOT, 'services.lock');
const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';
const HAPROXY_PORT = 3310;
const HAPROXY_STATS_PORT = 8406;
const GALERA_READY_TIMEOUT_MS = 300_000; // a full state transfer under load on 2 cores takes a while
const KAFKA_READY_TIMEOUT_MS = 120_000;

const GALERA = [1, 2, 3].map((n) => ({
  n,
  name: `galera${n}`,
  port: 3310 + n,
  gcomm: 4570 + n,
  ist: 4580 + n,
  sst: 4590 + n,
  dir: path.join(HA_ROOT, `galera${n}`),
  data: path.join(HA_ROOT, `galera${n}`, 'data'),
  cnf: path.join(HA_ROOT, `galera${n}`, 'node.cnf'),
  log: path.join(HA_ROOT, `galera${n}`, 'mariadbd.err'),
  out: path.join(HA_ROOT, `galera${n}`, 'mariadbd.out'),
}));
const KAFKA = [1, 2, 3].map((n) => ({
  n,
  name: `kafka${n}`,
  port: 19090 + 2 * n,
  controller: 19091 + 2 * n,
  dir: path.join(HA_ROOT, `kafka${n}`),
  data: path.join(HA_ROOT, `kafka${n}`, 'data'),
  props: path.join(HA_ROOT, `kafka${n}`, 'server.properties'),
  log4j: path.join(HA_ROOT, `kafka${n}`, 'log4j2.properties'),
  logDir: path.join(HA_ROOT, `kafka${n}`, 'logs'),
  out: path.join(HA_ROOT, `kafka${n}`, 'kafka.out'),
}));
const HAPROXY = {
  cfg: path.join(HA_ROOT, 'haproxy', 'haproxy.cfg'),
  check: path.join(HA_ROOT, 'haproxy', 'galera-check.sh'),
  sock: path.join(HA_ROOT, 'haproxy', 'haproxy.sock'),
  out: path.join(HA_ROOT, 'haproxy', 'haproxy.out'),
};
export const HA_DATABASE_URL = `mysql://root@127.0.0.1:${HAPROXY_PORT}/event_triggers`;
export const HA_KAFKA_BROKERS = KAFKA.map((k) => `127.0.0.1:${k.port}`).join(',');

// ----------------------------------------------------------------------------------------------- state

const stateFile = jsonStateFile(STATE_FILE, () => ({ galera: {}, kafka: {}, haproxy: null }));
const readState = stateFile.read;
const writeState = stateFile.write;

function setState(kind, n, value) {
  const s = readState();
  if (kind === 'haproxy') s.haproxy = value ?? null;
  else {
    s[kind] ??= {};
    if (value === undefined) delete s[kind][n];
    else s[kind][n] = value;
  }
  writeState(s);
}

const isGaleraNode = (g) => (args) => args.some((a) => /(^|\/)mariadbd$/.test(a)) && args.includes(`--defaults-file=${g.cnf}`);
const isKafkaNode = (k) => (args) => args.includes('kafka.Kafka') && args.includes(k.props);
const isHaproxy = (args) => args.some((a) => /(^|\/)haproxy$/.test(a)) && args.includes(HAPROXY.cfg);

/** The pid of a member we started, if it is still that process. */
function livePid(kind, n) {
  const s = readState();
  const rec = kind === 'haproxy' ? s.haproxy : s[kind]?.[n];
  if (!rec) return null;
  const pred = kind === 'galera' ? isGaleraNode(GALERA[n - 1]) : kind === 'kafka' ? isKafkaNode(KAFKA[n - 1]) : isHaproxy;
  return pidMatches(rec.pid, pred) ? rec.pid : null;
}

// ---------------------------------------------------------------------------------------------- Galera

/** One query through the mariadb client (no npm dependency here): rows of tab-separated columns, or null. */
function sql(port, query, timeoutS = 3) {
  const r = spawnSync(
    'mariadb',
    ['--no-defaults', '--protocol=tcp', '-h', '127.0.0.1', '-P', String(port), '-uroot', `--connect-timeout=${timeoutS}`, '-N', '-B', '-e', query],
    { encoding: 'utf8', timeout: (timeoutS + 5) * 1000 },
  );
  if (r.status !== 0) return null;
  return r.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

/** wsrep state of one node: { state: 'Synced' | 'Donor/Desynced' | …, ready, clusterSize, primary } or null when it does not answer. */
function galeraStatus(g) {
  const rows = sql(
    g.port,
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment','wsrep_ready','wsrep_cluster_size','wsrep_cluster_status')",
  );
  if (!rows) return null;
  const v = Object.fromEntries(rows.map(([k, val]) => [k.toLowerCase(), val]));
  return {
    state: v.wsrep_local_state_comment ?? '?',
    ready: v.wsrep_ready === 'ON',
    clusterSize: Number(v.wsrep_cluster_size ?? 0),
    primary: v.wsrep_cluster_status === 'Primary',
  };
}

function writeGaleraConfig(g) {
  const cluster = GALERA.map((x) => `127.0.0.1:${x.gcomm}`).join(',');
  const provider = [
    `gmcast.listen_addr=tcp://127.0.0.1:${g.gcomm}`,
    `ist.recv_addr=127.0.0.1:${g.ist}`,
    'gcache.size=256M',
    // A killed node is noticed within ~2 s instead of 5 s (the others stall commits until it is evicted).
    'evs.keepalive_period=PT0.5S',
    'evs.inactive_check_period=PT0.5S',
    'evs.suspect_timeout=PT2S',
    'evs.inactive_timeout=PT4S',
    'evs.install_timeout=PT3S',
  ].join(';');
  const cnf = `# Generated by scripts/services-ha.mjs: Galera node ${g.n} of 3 on loopback.
# The project's settings first (deploy/mysql/etp.cnf), then what a cluster node of a dev box needs.
!include ${DB_CONFIG}

[mysqld]
user = root
datadir = ${g.data}
port = ${g.port}
bind-address = 127.0.0.1
socket = ${path.join(g.dir, 'mysqld.sock')}
pid-file = ${path.join(g.dir, 'mariadbd.pid')}
log-error = ${g.log}
slow_query_log_file = ${path.join(g.dir, 'slow.log')}
# Three servers on two cores: small pools.
innodb_buffer_pool_size = 256M
max_connections = 300

[mariadb]
innodb_log_file_size = 128M
# Galera: row events, no AUTO-INC table lock (both also in etp.cnf), InnoDB only, every table has a primary key.
binlog_format = ROW
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = ${GALERA_PROVIDER}
wsrep_cluster_name = etp-ha
wsrep_cluster_address = gcomm://${cluster}
wsrep_node_name = ${g.name}
wsrep_node_address = 127.0.0.1
wsrep_provider_options = "${provider}"
wsrep_sst_method = mariabackup
wsrep_sst_auth = root:
wsrep_sst_receive_address = 127.0.0.1:${g.sst}
wsrep_slave_threads = 2
`;
  fs.mkdirSync(g.dir, { recursive: true });
  writeIfChanged(g.cnf, cnf);
  fs.chmodSync(g.cnf, 0o644);
}

function grastate(g) {
  try {
    const t = fs.readFileSync(path.join(g.data, 'grastate.dat'), 'utf8');
    return {
      uuid: /uuid:\s*(\S+)/.exec(t)?.[1] ?? null,
      seqno: Number(/seqno:\s*(-?\d+)/.exec(t)?.[1] ?? -1),
      safe: /safe_to_bootstrap:\s*1/.test(t),
    };
  } catch {
    return null;
  }
}

/**
 * After a crash grastate.dat says seqno -1: ask InnoDB (mariadbd --wsrep-recover) for the last committed
 * position, "uuid:seqno", or null.
 */
function recoveredPosition(g, bin) {
  const log = path.join(g.dir, 'wsrep-recover.log');
  fs.rmSync(log, { force: true });
  spawnSync(bin, [`--defaults-file=${g.cnf}`, '--wsrep-recover', `--log-error=${log}`], { encoding: 'utf8', timeout: 120_000 });
  const m = /Recovered position:\s*([0-9a-f-]+:-?\d+)/.exec(fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '');
  return m ? m[1] : null;
}

function recoveredSeqno(g, bin) {
  const pos = recoveredPosition(g, bin);
  return pos ? Number(pos.split(':')[1]) : -1;
}

function markSafeToBootstrap(g) {
  const f = path.join(g.data, 'grastate.dat');
  fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace(/safe_to_bootstrap:\s*0/, 'safe_to_bootstrap: 1'));
}

function initDatadir(g) {
  fs.mkdirSync(g.data, { recursive: true });
  const r = spawnSync(
    'mariadb-install-db',
    ['--no-defaults', `--datadir=${g.data}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db'],
    { encoding: 'utf8', timeout: 180_000 },
  );
  if (r.status !== 0) fail(`mariadb-install-db for ${g.name} failed:\n${`${r.stdout}${r.stderr}`.trim().split('\n').slice(-15).join('\n')}`);
}

function mariadbd() {
  const bin = findExecutable('mariadbd', ['/usr/sbin', '/usr/local/sbin']);
  if (!bin) fail('mariadbd is not installed (apt-get install mariadb-server).');
  if (!fs.existsSync(GALERA_PROVIDER)) fail(`${GALERA_PROVIDER} is missing (apt-get install galera-4).`);
  return bin;
}

/** Starts one node: bootstrapping a new primary component, or joining the running ones (IST, or SST by mariabackup). */
async function galeraStart(g, { bootstrap = false, timeoutMs = GALERA_READY_TIMEOUT_MS } = {}) {
  const where = `127.0.0.1:${g.port}`;
  if (livePid('galera', g.n)) {
    const st = await waitGalera(g, timeoutMs);
    line(g.name, where, st ? `running (${st.state}, cluster of ${st.clusterSize})` : 'running but not synced');
    return;
  }
  const bin = mariadbd();
  ensureRunDir();
  writeGaleraConfig(g);
  if (!findExecutable('mariabackup') && !findExecutable('mariadb-backup') && !bootstrap) {
    console.log(`${g.name.padEnd(6)} note: mariadb-backup is not installed; a node without data cannot receive a state transfer`);
  }
  fs.mkdirSync(g.data, { recursive: true });
  const t0 = Date.now();
  const args = [`--defaults-file=${g.cnf}`];
  if (bootstrap) args.push('--wsrep-new-cluster');
  // A node killed -9 has no position in grastate.dat, and would get a full copy (SST). Its InnoDB knows
  // the position: start from it, so the cluster sends only what it missed (IST, from the gcache).
  const saved = grastate(g);
  if (!bootstrap && saved?.uuid && saved.seqno < 0) {
    const pos = recoveredPosition(g, bin);
    if (pos) args.push(`--wsrep-start-position=${pos}`);
  }
  const pid = spawnDetached(bin, args, g.out, g.dir);
  setState('galera', g.n, { pid, port: g.port, startedAt: new Date().toISOString(), bootstrap });
  const st = await waitGalera(g, timeoutMs, pid);
  if (!st) {
    const alive = pidAlive(pid);
    fail(`${g.name} ${alive ? 'did not reach Synced' : 'exited'} within ${secs(t0)} s; last lines of ${tilde(g.log)}:\n${tailLog(g.log)}`);
  }
  line(g.name, where, `${bootstrap ? 'bootstrapped' : 'joined'} in ${secs(t0)} s (pid ${pid}, ${st.state}, cluster of ${st.clusterSize})`);
}

function waitGalera(g, ms, pid) {
  const synced = async () => {
    if (!(await portOpen('127.0.0.1', g.port, 500))) return null;
    const st = galeraStatus(g);
    return st && st.ready && st.primary && st.state === 'Synced' ? st : null;
  };
  return pollUntil(synced, { ms, pid, intervalMs: 500 });
}

async function galeraStop(g) {
  const pid = livePid('galera', g.n);
  const where = `127.0.0.1:${g.port}`;
  if (!pid) {
    setState('galera', g.n, undefined);
    line(g.name, where, 'not running');
    return;
  }
  const t0 = Date.now();
  const how = await terminate(pid, DB_STOP_GRACE_MS);
  setState('galera', g.n, undefined);
  line(g.name, where, `stopped pid ${pid} in ${secs(t0)} s${how === 'kill' ? ' (SIGKILL)' : ''}`);
}

/**
 * Brings the cluster up. If a node already runs in a primary component, the others join it. Otherwise the
 * node with the most recent state bootstraps (safe_to_bootstrap from a clean stop, else the highest
 * committed seqno, recovered from InnoDB after a crash), or node 1 with a fresh datadir.
 */
async function galeraUp() {
  const bin = mariadbd();
  const running = GALERA.filter((g) => livePid('galera', g.n));
  let first = running.find((g) => galeraStatus(g)?.primary);
  if (!first) {
    if (running.length > 0) {
      fail(`Galera nodes ${running.map((g) => g.name).join(', ')} run but none is in a primary component; \`down --ha\` first.`);
    }
    for (const g of GALERA) writeGaleraConfig(g);
    const states = GALERA.map((g) => ({ g, st: grastate(g) })).filter((x) => x.st && x.st.uuid);
    if (states.length === 0) {
      first = GALERA[0];
      fs.rmSync(first.data, { recursive: true, force: true });
      initDatadir(first);
    } else {
      let pick = states.find((x) => x.st.safe);
      if (!pick) {
        for (const x of states) if (x.st.seqno < 0) x.st.seqno = recoveredSeqno(x.g, bin);
        pick = states.reduce((a, b) => (b.st.seqno > a.st.seqno ? b : a));
        markSafeToBootstrap(pick.g);
        console.log(`${pick.g.name.padEnd(6)} bootstraps the cluster again from seqno ${pick.st.seqno} (no clean last stop recorded)`);
      }
      first = pick.g;
    }
    await galeraStart(first, { bootstrap: true });
  } else {
    line(first.name, `127.0.0.1:${first.port}`, 'running (primary component)');
  }
  for (const g of GALERA) if (g !== first) await galeraStart(g);
}

// --------------------------------------------------------------------------------------------- HAProxy

function writeHaproxyConfig() {
  fs.mkdirSync(path.dirname(HAPROXY.cfg), { recursive: true });
  // The health check: a node takes writes only when it is in the primary component, its state is Synced
  // (or Donor: a mariabackup donor keeps serving), wsrep_ready is ON and it is not read-only.
  const check = `#!/bin/sh
# Generated by scripts/services-ha.mjs. HAProxy external check: $3 = server address, $4 = server port.
out=$(mariadb --no-defaults --protocol=tcp -h "$3" -P "$4" -uroot --connect-timeout=1 -N -B -e "
  SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE') IN ('2', '4')
     AND (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_READY') = 'ON'
     AND (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS') = 'Primary'
     AND @@global.read_only = 0" 2>/dev/null) || exit 1
[ "$out" = "1" ]
`;
  writeIfChanged(HAPROXY.check, check);
  fs.chmodSync(HAPROXY.check, 0o755);
  const servers = GALERA.map((g) =>
    g.n === 1 ? `  server ${g.name} 127.0.0.1:${g.port} check on-marked-up shutdown-backup-sessions` : `  server ${g.name} 127.0.0.1:${g.port} check backup`,
  ).join('\n');
  const cfg = `# Generated by scripts/services-ha.mjs: one writer at a time in front of the Galera cluster.
global
  maxconn 4000
  external-check
  insecure-fork-wanted
  stats socket ${HAPROXY.sock} mode 600 level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  timeout check 2s
  retries 2
  option redispatch

# All connections go to ONE node: galera1 while it is healthy, else the first healthy backup. When galera1
# is healthy again the sessions on the backup are cut (on-marked-up shutdown-backup-sessions), so pools
# reconnect to galera1 instead of writing to two nodes at once. (A one-entry stick table on dst, the
# usual "no fail-back" recipe, kept existing connections on the backup while new ones went back to
# galera1: two writers, measured here.) A node marked down has its sessions cut, so pools reconnect to the
# new writer at once instead of waiting on a dead one.
listen galera-writer
  bind 127.0.0.1:${HAPROXY_PORT}
  balance first
  option external-check
  external-check path "/usr/bin:/bin:/usr/sbin:/sbin"
  external-check command ${HAPROXY.check}
  default-server inter 500 fall 2 rise 3 on-marked-down shutdown-sessions
${servers}

listen stats
  mode http
  bind 127.0.0.1:${HAPROXY_STATS_PORT}
  stats enable
  stats uri /
  stats refresh 2s
`;
  writeIfChanged(HAPROXY.cfg, cfg);
}

async function haproxyStart() {
  const where = `127.0.0.1:${HAPROXY_PORT}`;
  const bin = findExecutable('haproxy', ['/usr/sbin', '/usr/local/sbin']);
  if (!bin) fail('haproxy is not installed (apt-get install -y haproxy).');
  writeHaproxyConfig();
  if (livePid('haproxy', 0)) {
    line('haproxy', where, `running (pid ${livePid('haproxy', 0)})`);
    return;
  }
  const v = spawnSync(bin, ['-c', '-f', HAPROXY.cfg], { encoding: 'utf8' });
  if (v.status !== 0) fail(`haproxy refuses ${tilde(HAPROXY.cfg)}:\n${`${v.stdout}${v.stderr}`.trim()}`);
  const t0 = Date.now();
  const pid = spawnDetached(bin, ['-db', '-f', HAPROXY.cfg], HAPROXY.out, path.dirname(HAPROXY.cfg));
  setState('haproxy', 0, { pid, port: HAPROXY_PORT, startedAt: new Date().toISOString() });
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (!pidAlive(pid)) fail(`haproxy exited; see ${tilde(HAPROXY.out)}:\n${tailLog(HAPROXY.out)}`);
    const rows = (await portOpen('127.0.0.1', HAPROXY_PORT, 500)) ? sql(HAPROXY_PORT, 'SELECT @@wsrep_node_name', 2) : null;
    if (rows?.[0]?.[0]) {
      line('haproxy', where, `started in ${secs(t0)} s (pid ${pid}); writes go to ${rows[0][0]}; stats http://127.0.0.1:${HAPROXY_STATS_PORT}/`);
      return;
    }
    await sleep(300);
  }
  fail(`haproxy did not route to a healthy Galera node within 30 s; see ${tilde(HAPROXY.out)}`);
}

async function haproxyStop() {
  const pid = livePid('haproxy', 0);
  if (!pid) {
    setState('haproxy', 0, undefined);
    line('haproxy', `127.0.0.1:${HAPROXY_PORT}`, 'not running');
    return;
  }
  await terminate(pid, 5000);
  setState('haproxy', 0, undefined);
  line('haproxy', `127.0.0.1:${HAPROXY_PORT}`, `stopped pid ${pid}`);
}

/** The Galera node HAProxy sends a new connection to now (its wsrep_node_name), or null. */
function currentWriter() {
  return sql(HAPROXY_PORT, 'SELECT @@wsrep_node_name', 2)?.[0]?.[0] ?? null;
}

// ----------------------------------------------------------------------------------------------- Kafka

function writeKafkaConfig(k) {
  const voters = KAFKA.map((x) => `${x.n}@127.0.0.1:${x.controller}`).join(',');
  const props = `# Generated by scripts/services-ha.mjs: broker ${k.n} of a 3-node KRaft cluster (combined broker + controller).
process.roles=broker,controller
node.id=${k.n}
controller.quorum.voters=${voters}
listeners=PLAINTEXT://127.0.0.1:${k.port},CONTROLLER://127.0.0.1:${k.controller}
advertised.listeners=PLAINTEXT://127.0.0.1:${k.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${k.data}
num.partitions=6
# Every topic on all three brokers; an acks=all write needs two of them, so one broker may die at any time
# without losing an acknowledged write or refusing new ones.
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=true
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
# A killed broker is fenced (and its partitions get new leaders) ~3 s after its last heartbeat.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=1000
replica.lag.time.max.ms=10000
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
log.retention.hours=24
log.segment.bytes=67108864
log.retention.check.interval.ms=60000
`;
  const log4j = `# Generated by scripts/services-ha.mjs. Console at WARN plus the start-up line; rolling file at INFO.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = WARN
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${k.logDir}/server.log
appender.file.filePattern = ${k.logDir}/server.log.%i
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
logger.request.name = kafka.request.logger
logger.request.level = WARN
`;
  fs.mkdirSync(k.dir, { recursive: true });
  writeIfChanged(k.props, props);
  writeIfChanged(k.log4j, log4j);
}

function formatKafka(java, k) {
  formatKafkaStorage(java, { data: k.data, props: k.props, log4j: k.log4j, logDir: k.logDir, jvm: ['-XX:TieredStopAtLevel=1'] });
}

/** A broker serves when its own Metadata answer lists it (KRaft lists only registered, unfenced brokers). */
async function kafkaServes(k) {
  const md = await kafkaMetadata('127.0.0.1', k.port, 1500);
  return md && md.brokers.some((b) => b.nodeId === k.n) && md.controllerId >= 0 ? md : null;
}

async function kafkaStart(k, { wait = true } = {}) {
  const where = `127.0.0.1:${k.port}`;
  if (livePid('kafka', k.n)) {
    if (wait && !(await waitKafka(k, KAFKA_READY_TIMEOUT_MS))) fail(`${k.name} runs but does not serve ${where}`);
    line(k.name, where, `running (pid ${livePid('kafka', k.n)})`);
    return;
  }
  const { java, mvn } = checkJava();
  fetchJars(mvn);
  writeKafkaConfig(k);
  fs.rmSync(path.join(k.data, '.lock'), { force: true });
  formatKafka(java, k);
  fs.mkdirSync(k.logDir, { recursive: true });
  const jvm = [
    '-Xms256m',
    '-Xmx512m',
    '-XX:+UseG1GC',
    '-XX:ParallelGCThreads=1',
    '-XX:ConcGCThreads=1',
    // Three brokers on two cores: C1 only starts faster and costs little at the soak's message rates.
    '-XX:TieredStopAtLevel=1',
  ];
  const pid = spawnDetached(java, kafkaBrokerArgs({ props: k.props, log4j: k.log4j, logDir: k.logDir, jvm }), k.out, k.dir);
  setState('kafka', k.n, { pid, port: k.port, startedAt: new Date().toISOString() });
  if (!wait) return;
  const t0 = Date.now();
  if (!(await waitKafka(k, KAFKA_READY_TIMEOUT_MS, pid))) {
    fail(`${k.name} ${pidAlive(pid) ? 'did not serve' : 'exited'} within ${secs(t0)} s; last lines of ${tilde(k.out)}:\n${tailLog(k.out)}`);
  }
  line(k.name, where, `started in ${secs(t0)} s (pid ${pid})`);
}

function waitKafka(k, ms, pid) {
  return pollUntil(() => kafkaServes(k), { ms, pid, intervalMs: 300 });
}

async function kafkaStop(k) {
  const pid = livePid('kafka', k.n);
  if (!pid) {
    setState('kafka', k.n, undefined);
    line(k.name, `127.0.0.1:${k.port}`, 'not running');
    return;
  }
  const t0 = Date.now();
  const how = await terminate(pid, KAFKA_STOP_GRACE_MS);
  setState('kafka', k.n, undefined);
  line(k.name, `127.0.0.1:${k.port}`, `stopped pid ${pid} in ${secs(t0)} s${how === 'kill' ? ' (SIGKILL)' : ''}`);
}

/**
 * CreateTopics v4 (not flexible; Kafka 4.x serves v2+): the platform's topics at replication factor 3 and
 * min.insync.replicas=2. Returns { name: errorCode } (0 created, 36 already exists).
 */
async function createTopics(port, topics) {
  const clientId = Buffer.from('services-ha.mjs');
  const str = (s) => {
    const b = Buffer.from(s);
    const h = Buffer.alloc(2);
    h.writeInt16BE(b.length);
    return Buffer.concat([h, b]);
  };
  const i16 = (n) => {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    return b;
  };
  const i32 = (n) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  };
  const parts = [i16(19), i16(4), i32(11), str(clientId.toString()), i32(topics.length)];
  for (const t of topics) {
    parts.push(str(t.name), i32(t.partitions), i16(t.replicationFactor), i32(0), i32(1), str('min.insync.replicas'), str(String(t.minIsr)));
  }
  parts.push(i32(30_000), Buffer.from([0]));
  const res = await kafkaExchange('127.0.0.1', port, Buffer.concat(parts), 40_000);
  if (!res) return null;
  let o = 4 + 4; // correlation id, throttle time
  const out = {};
  let n = res.readInt32BE(o);
  o += 4;
  for (; n > 0; n--) {
    const len = res.readInt16BE(o);
    const name = res.toString('utf8', o + 2, o + 2 + len);
    o += 2 + len;
    out[name] = res.readInt16BE(o);
    o += 2;
    const mlen = res.readInt16BE(o);
    o += 2 + Math.max(0, mlen);
  }
  return out;
}

function platformTopics() {
  const topic = (process.env.KAFKA_TOPIC || 'trigger-events').trim();
  const partitions = Number(process.env.KAFKA_PARTITIONS || 6);
  return [topic, `${topic}.retry`, (process.env.KAFKA_DLQ_TOPIC || `${topic}.dlq`).trim()].map((name) => ({
    name,
    partitions,
    replicationFactor: 3,
    minIsr: 2,
  }));
}

async function kafkaUp() {
  const { java, mvn } = checkJava();
  const fetched = fetchJars(mvn);
  if (fetched) console.log(`kafka  ${fetched}`);
  for (const k of KAFKA) {
    writeKafkaConfig(k);
    formatKafka(java, k);
  }
  // Started together: a controller quorum needs two voters before any broker can register.
  for (const k of KAFKA) await kafkaStart(k, { wait: false });
  const t0 = Date.now();
  for (const k of KAFKA) {
    const pid = livePid('kafka', k.n);
    if (!(await waitKafka(k, KAFKA_READY_TIMEOUT_MS, pid))) {
      fail(`${k.name} did not serve within ${secs(t0)} s; last lines of ${tilde(k.out)}:\n${tailLog(k.out)}`);
    }
    line(k.name, `127.0.0.1:${k.port}`, `serving after ${secs(t0)} s (pid ${pid})`);
  }
  const wanted = platformTopics();
  const until = Date.now() + 60_000;
  for (;;) {
    const codes = await createTopics(KAFKA[0].port, wanted);
    const bad = codes ? Object.entries(codes).filter(([, c]) => c !== 0 && c !== 36) : [['(no answer)', -1]];
    if (bad.length === 0) break;
    if (Date.now() > until) fail(`creating topics failed: ${bad.map(([n, c]) => `${n}: error ${c}`).join(', ')}`);
    await sleep(1000);
  }
  line('topics', wanted.map((t) => t.name).join(', '), 'replication factor 3, min.insync.replicas=2');
}

// ---------------------------------------------------------------------------------------------- status

async function statusReport() {
  const s = readState();
  const galera = GALERA.map((g) => {
    const pid = livePid('galera', g.n);
    return { n: g.n, name: g.name, port: g.port, pid, ...(pid ? (galeraStatus(g) ?? { state: 'not answering' }) : { state: 'down' }) };
  });
  const kafka = [];
  let topics = [];
  for (const k of KAFKA) {
    const pid = livePid('kafka', k.n);
    const md = pid ? await kafkaMetadata('127.0.0.1', k.port, 1500) : null;
    const serving = !!md && md.brokers.some((b) => b.nodeId === k.n);
    if (md && topics.length === 0) topics = md.topics.filter((t) => !t.internal);
    kafka.push({ n: k.n, name: k.name, port: k.port, pid, serving, controller: md?.controllerId ?? null });
  }
  const haproxyPid = livePid('haproxy', 0);
  return {
    dir: HA_ROOT,
    databaseUrl: HA_DATABASE_URL,
    kafkaBrokers: HA_KAFKA_BROKERS,
    haproxy: { pid: haproxyPid, port: HAPROXY_PORT, writer: haproxyPid ? currentWriter() : null, stats: `http://127.0.0.1:${HAPROXY_STATS_PORT}/` },
    galera,
    kafka,
    topics: topics.map((t) => ({
      name: t.name,
      partitions: t.partitions,
      leaders: t.parts.map((p) => p.leader),
      replicas: Math.min(...t.parts.map((p) => p.replicas.length)),
      minIsrNow: Math.min(...t.parts.map((p) => p.isr.length)),
    })),
    started: s,
  };
}

async function status(json) {
  const r = await statusReport();
  if (json) {
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  line('haproxy', `127.0.0.1:${HAPROXY_PORT}`, r.haproxy.pid ? `up (pid ${r.haproxy.pid}); writes go to ${r.haproxy.writer ?? 'NO HEALTHY NODE'}` : 'DOWN');
  for (const g of r.galera) {
    line(g.name, `127.0.0.1:${g.port}`, g.pid ? `${g.state}${g.clusterSize ? `, cluster of ${g.clusterSize}` : ''} (pid ${g.pid})` : 'DOWN');
  }
  for (const k of r.kafka) {
    line(k.name, `127.0.0.1:${k.port}`, k.pid ? `${k.serving ? 'serving' : 'not serving'} (pid ${k.pid})${k.controller ? `, controller ${k.controller}` : ''}` : 'DOWN');
  }
  for (const t of r.topics) {
    line('topic', t.name, `${t.partitions} partitions, ${t.replicas} replicas, smallest ISR now ${t.minIsrNow}, leaders ${t.leaders.join(',')}`);
  }
  console.log(`       DATABASE_URL=${r.databaseUrl} KAFKA_BROKERS=${r.kafkaBrokers}`);
  console.log(`       data and logs under ${tilde(HA_ROOT)}`);
}

// ------------------------------------------------------------------------------------------------ main

function member(kind, nRaw) {
  const n = Number(nRaw);
  if (kind === 'haproxy') return null;
  const list = kind === 'galera' ? GALERA : kind === 'kafka' ? KAFKA : null;
  if (!list || !(n >= 1 && n <= 3)) fail('usage: services.mjs ha-start|ha-stop galera|kafka|haproxy <1-3>');
  return list[n - 1];
}

export async function main(cmd, args) {
  const locked = (fn) => withLock(fn, LOCK_FILE);
  switch (cmd) {
    case 'up':
      return locked(async () => {
        const t0 = Date.now();
        await galeraUp();
        await haproxyStart();
        await kafkaUp();
        console.log(`HA services up in ${secs(t0)} s. Use:\n  DATABASE_URL=${HA_DATABASE_URL}\n  KAFKA_BROKERS=${HA_KAFKA_BROKERS}`);
      });
    case 'down':
      return locked(async () => {
        for (const k of [...KAFKA].reverse()) await kafkaStop(k);
        await haproxyStop();
        // Node 1 last: it records safe_to_bootstrap, and the next `up --ha` starts from it.
        for (const g of [...GALERA].reverse()) await galeraStop(g);
      });
    case 'status':
      return status(args.includes('--json'));
    case 'ha-start': {
      const [kind, n] = args;
      return locked(async () => {
        if (kind === 'haproxy') return haproxyStart();
        const m = member(kind, n);
        if (kind === 'galera') {
          // Joins the running cluster; if none runs (all were killed), the whole cluster is brought up again.
          const others = GALERA.filter((g) => g !== m && livePid('galera', g.n) && galeraStatus(g)?.primary);
          return others.length > 0 ? galeraStart(m) : galeraUp();
        }
        return kafkaStart(m);
      });
    }
    case 'ha-stop': {
      const [kind, n] = args;
      return locked(async () => {
        if (kind === 'haproxy') return haproxyStop();
        const m = member(kind, n);
        return kind === 'galera' ? galeraStop(m) : kafkaStop(m);
      });
    }
    default:
      console.error('usage: node scripts/services.mjs up|down|status --ha [--json] | ha-start|ha-stop galera|kafka|haproxy <n>');
      process.exitCode = 2;
  }
}
