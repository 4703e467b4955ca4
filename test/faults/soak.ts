import { execFile, execFileSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTestEnv, REPO_ROOT, type TestEnv } from '../helpers/env';
import { OwnBroker } from '../helpers/broker';
import { logOutboxInserts } from '../helpers/outbox-log';
import { KafkaReader } from '../helpers/kafka';
import { Receiver } from '../helpers/receiver';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { OwnMariaDb } from '../helpers/mariadb';
import { withDbRetry } from '../../src/util';
import { until } from '../helpers/until';
import { scheduledEventId } from '../../src/triggers/event-id';
import { ensureTopics } from '../../src/kafka/producer';

export interface SoakOptions {
  seconds: number;
  kafkaOutageSeconds: number;
  killEverySeconds: number;
  /**
   * The database and the cluster faults:
   *  - 'shared': the machine's MariaDB (TEST_DATABASE_URL), never restarted;
   *  - 'own': a MariaDB of the soak's own (own datadir and port), kill -9'd and restarted mid-run;
   *  - 'ha': the cluster of `npm run services -- up --ha` (Galera behind HAProxy, three brokers): the Galera
   *    node that takes the writes and a broker that leads partitions are kill -9'd in turn, and each is
   *    restarted `clusterRestartAfterSeconds` later. No single-broker outage then (kafkaOutageSeconds is ignored).
   */
  database?: 'shared' | 'own' | 'ha';
  /** own: a database restart this often (the first at half this, or half the run); ha: a writer or broker kill this often. */
  databaseFaultEverySeconds?: number;
  /** own: how long the killed server stays down. */
  databaseDownSeconds?: number;
  /** ha: how long a killed Galera node or broker stays down. */
  clusterRestartAfterSeconds?: number;
  log?: (line: string) => void;
}

/** A kill of the database, the Galera writer or a broker: seconds until a webhook sent after it was answered 202. */
export interface Recovery {
  kind: 'database' | 'writer' | 'broker';
  target: string;
  seconds: number | null;
}

export interface SoakFigures {
  seconds: number;
  webhooksAccepted: number;
  webhooksRejectedByServer: number;
  scheduledOccurrences: number;
  eventLogs: number;
  kills: number;
  relayKills: number;
  /** Measured: from the broker process having exited (port closed) to it serving metadata again. */
  kafkaOutageSeconds: number;
  onKafka: number;
  /** Extra copies on Kafka of logged events (counted by event id). */
  kafkaDuplicates: number;
  /** What the at-least-once contract allows (see kafkaDuplicateBound()). */
  kafkaDuplicateBound: number;
  /** Messages on the topic that are not a copy of a logged event (unknown id, or same id with other content). */
  kafkaStrays: number;
  lost: number;
  deliveriesSuccess: number;
  deliveriesFailure: number;
  deliveriesUnfinished: number;
  receiverRequests: number;
  receiverDuplicateRequests: number;
  /** Repeats that are retries after the receiver's injected 500s. */
  receiverRetriesAfter500: number;
  /** Repeats of a request after a worker kill (same webhook-id): allowed by the at-least-once contract. */
  receiverResends: number;
  /** What the contract allows (see receiverResendBound()). */
  receiverResendBound: number;
  /** Events recorded `success` although the receiver never answered 2xx for them: must be 0. */
  successWithout2xx: number;
  stuckProcessing: number;
  brokenChains: number;
  databaseRestarts: number;
  writerKills: number;
  brokerKills: number;
  recoveries: Recovery[];
  databaseNote: string;
}

const execFileAsync = promisify(execFile);

function postJson(url: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': data.length }, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end(data);
  });
}

/**
 * Extra Kafka copies the at-least-once contract allows, from the soak's faults:
 *  - a relay killed -9 re-publishes at most what its lanes had in flight: per lane one fire batch
 *    (produced, not committed) and one outbox batch;
 *  - a database killed -9 (a server restarted, or the Galera node taking the writes) rolls back every
 *    relay's transactions in flight, as if each relay had been killed: per relay and lane one fire batch
 *    and one outbox batch, already on Kafka, fired or published again once the database is back;
 *  - a broker that goes away may have written a batch it could not acknowledge: each relay's outbox lanes
 *    publish that batch again;
 *  - a scheduled event whose delivery report came later than RELAY_DIRECT_TIMEOUT went through the outbox
 *    as well, one more copy (every scheduled event in the outbox is counted: a generous upper bound).
 */
export function kafkaDuplicateBound(f: {
  relayKills: number;
  /** Database restarts and Galera writer kills. */
  databaseKills: number;
  relays: number;
  outages: number;
  relayConcurrency: number;
  relayBatchSize: number;
  /** A fire claim grows up to this while claims come back full (RELAY_BATCH_MAX). */
  relayBatchMax: number;
  scheduledViaOutbox: number;
}): number {
  const publishBatches = f.relayConcurrency * f.relayBatchSize;
  const fireBatches = f.relayConcurrency * f.relayBatchMax;
  return (
    (f.relayKills + f.databaseKills * f.relays) * (fireBatches + publishBatches) +
    f.outages * f.relays * publishBatches +
    f.scheduledViaOutbox
  );
}

/**
 * Re-sends to a receiver (same webhook-id) the at-least-once contract allows: a worker records a batch's
 * outcomes together, so a worker killed -9 may have sent up to a batch (WORKER_CONCURRENCY messages) whose
 * outcomes were never recorded, and its replacement joining moves partitions away from the other workers
 * while they hold a batch of their own, which the new owner may consume and send again.
 */
export function receiverResendBound(f: { workerKills: number; workers: number; workerConcurrency: number }): number {
  return f.workerKills * (1 + f.workers) * f.workerConcurrency;
}

/**
 * The fault soak: 3 relays + 2 workers + 1 api as separate processes under a mixed load of webhooks,
 * time, cron and interval triggers, while relays and workers are killed -9 and restarted, and the Kafka
 * broker is stopped once and started again — or, with `database`, the database is killed too (a server of
 * its own restarted, or the Galera writer and partition-leading brokers of the --ha cluster). The broker
 * stopped is one the soak starts for itself, so the outage is real (stop() returns only once the process
 * has exited) and the shared broker is left alone. Then it waits for quiescence and checks, from the
 * database and from an independent Kafka consumer, that nothing was lost and that duplicates stay within
 * what the at-least-once contract allows.
 */
export async function runSoak(opts: SoakOptions): Promise<SoakFigures> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const services = path.join(REPO_ROOT, 'scripts', 'services.mjs');
  const mode = opts.database ?? 'shared';
  const ownDb = mode === 'own' ? new OwnMariaDb('etp-soak-db') : null;
  const cluster = mode === 'ha' ? haStatus(services) : null;
  if (cluster && (!cluster.haproxy.pid || cluster.galera.some((g) => !g.pid) || cluster.kafka.some((k) => !k.serving))) {
    throw new Error('the --ha soak needs the cluster: npm run services -- up --ha');
  }
  // A broker of the soak's own when it is to be stopped; the cluster's brokers with --ha; else the shared one.
  const broker = !cluster && opts.kafkaOutageSeconds > 0 ? await OwnBroker.start('soak') : null;
  const brokers = cluster?.kafkaBrokers ?? broker?.brokers;
  let t: TestEnv;
  try {
    await ownDb?.start();
    t = await createTestEnv(
      'soak',
      {
        // The soak's load (~100 webhooks/s) seldom fills a batch of 50; small batches keep the duplicate bound
        // (a kill may re-publish RELAY_CONCURRENCY × (RELAY_BATCH_MAX + RELAY_BATCH_SIZE)) close to what a kill
        // can really do.
        RELAY_BATCH_SIZE: '50',
        RELAY_BATCH_MAX: '100',
        KAFKA_MESSAGE_TIMEOUT_MS: '3000',
        RELAY_LEASE_MS: '2000',
        RETENTION_SWEEP_INTERVAL: '1h',
        WORKER_CONCURRENCY: '16',
        ...(brokers ? { KAFKA_BROKERS: brokers } : {}),
      },
      { databaseUrlBase: ownDb?.url ?? (cluster ? cluster.databaseUrl.replace(/[^/]*$/, '') : undefined) },
    );
  } catch (e) {
    await ownDb?.destroy();
    await broker?.destroy();
    throw e;
  }
  const outboxInserts = await logOutboxInserts(t.db);
  const receiver = await new Receiver().start();
  // 5 % of first attempts fail with a 500, so retries travel through the outbox under faults too.
  const answered500 = new Set<string>();
  const answered2xx = new Set<string>();
  receiver.respond = (r) => {
    const id = `${r.headers['webhook-id']}`;
    const fail = receiver.requests.filter((x) => x.headers['webhook-id'] === r.headers['webhook-id']).length === 1 && Math.random() < 0.05;
    (fail ? answered500 : answered2xx).add(id);
    return { status: fail ? 500 : 200 };
  };
  if (broker) await ensureTopics(broker.brokers, [{ name: t.topic, partitions: t.config.kafkaPartitions }]);
  const reader = await new KafkaReader([t.topic], brokers).start();
  const procs: { relays: RoleProcess[]; workers: RoleProcess[]; api: RoleProcess | null } = { relays: [], workers: [], api: null };
  let kills = 0;
  let relayKills = 0;
  let workerKills = 0;
  let outageMs = 0;
  let databaseRestarts = 0;
  let writerKills = 0;
  let brokerKills = 0;
  const faultsAt: Array<{ kind: Recovery['kind']; target: string; at: number }> = [];
  // Webhooks answered 202: when each was sent and answered (the recovery times are read from these).
  const answered202: Array<{ sentAt: number; doneAt: number }> = [];
  const restarts: Array<Promise<unknown>> = [];
  try {
    const api = await spawnRole('api', t.env);
    procs.api = api;
    const port = Number(/"port":(\d+)/.exec(api.output())?.[1]);
    const base = `http://127.0.0.1:${port}/api/v1`;
    procs.relays = await Promise.all([1, 2, 3].map(() => spawnRole('relay', t.env)));
    procs.workers = await Promise.all([1, 2].map(() => spawnRole('worker', t.env)));

    const endpoint = receiver.url('/soak');
    const create = async (body: unknown) => {
      const r = await postJson(`${base}/triggers`, body);
      if (r.status !== 201) throw new Error(`create failed: ${r.status} ${r.body}`);
      return JSON.parse(r.body) as { id: string; next_scheduled_run: string | null };
    };
    const webhooks = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        create({
          name: `wh-${i}`,
          type: 'webhook',
          config: { endpoint, schema: { type: 'object' }, retry: { max_attempts: 5, backoff_ms: 100 } },
        }),
      ),
    );
    // While the database is down nothing can fire; on its return the default policy (fire_once) would fire
    // only the latest missed occurrence. With database faults the chains catch up instead, so a gap means
    // an occurrence was lost, not skipped by policy.
    const catchUp = mode === 'shared' ? {} : { misfire_policy: 'fire_all' };
    const crons = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        create({
          name: `cron-${i}`,
          type: 'cron_scheduled',
          config: { endpoint, cron: '* * * * * *', retry: { max_attempts: 5, backoff_ms: 100 }, ...catchUp },
        }),
      ),
    );
    const intervals = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        create({
          name: `int-${i}`,
          type: 'interval_scheduled',
          config: { endpoint, interval_seconds: 2, retry: { max_attempts: 5, backoff_ms: 100 }, ...catchUp },
        }),
      ),
    );
    const started = Date.now();
    const endAt = started + opts.seconds * 1000;
    const timeTriggers: Array<{ id: string; at: string }> = [];
    const accepted: string[] = [];
    let rejected = 0;

    // Load: webhooks at ~100/s, a one-shot time trigger every 200 ms due 1–3 s later.
    const load = (async () => {
      let n = 0;
      while (Date.now() < endAt) {
        const wh = webhooks[n % webhooks.length];
        const sentAt = Date.now();
        const batch = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            postJson(`${base}/webhook/${wh.id}`, { n: n * 10 + i }).then((r) => ({ ...r, doneAt: Date.now() })),
          ),
        );
        for (const r of batch) {
          if (r.status === 202) {
            accepted.push((JSON.parse(r.body) as { event_id: string }).event_id);
            answered202.push({ sentAt, doneAt: r.doneAt });
          } else rejected++;
        }
        if (n % 2 === 0) {
          const at = new Date(Math.ceil((Date.now() + 1000 + Math.random() * 2000) / 1000) * 1000).toISOString();
          const r = await postJson(`${base}/triggers`, { name: `once-${n}`, type: 'time_scheduled', config: { endpoint, run_at: at } });
          if (r.status === 201) timeTriggers.push({ id: (JSON.parse(r.body) as { id: string }).id, at });
        }
        n++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    /**
     * ha: kill -9 the Galera node HAProxy sends the writes to, or the broker leading the most partitions of
     * the soak's topic, and start it again later in the background. Only when every member is up (two
     * members down would stop the cluster, not test it); returns false to try again at the next tick.
     */
    const killClusterMember = async (kind: 'writer' | 'broker'): Promise<boolean> => {
      const st = haStatus(services);
      if (st.galera.some((g) => !g.pid || g.state !== 'Synced') || st.kafka.some((k) => !k.serving)) return false;
      let target: { name: string; pid: number; n: number; kind: 'galera' | 'kafka' };
      if (kind === 'writer') {
        const rows = (await withDbRetry(() => t.db.raw('SELECT @@wsrep_node_name AS node'), 10)) as unknown as [Array<{ node: string }>];
        const node = st.galera.find((g) => g.name === rows[0][0]!.node);
        if (!node?.pid) return false;
        target = { name: node.name, pid: node.pid, n: node.n, kind: 'galera' };
      } else {
        const topic = st.topics.find((x) => x.name === t.topic);
        if (!topic || topic.minIsrNow < 3) return false;
        const leads = (n: number) => topic.leaders.filter((l) => l === n).length;
        const node = [...st.kafka].sort((a, b) => leads(b.n) - leads(a.n))[0]!;
        if (!node.pid || leads(node.n) === 0) return false;
        target = {
          name: `${node.name} (leads ${leads(node.n)} of ${topic.partitions} partitions)`,
          pid: node.pid,
          n: node.n,
          kind: 'kafka',
        };
      }
      const at = Date.now();
      process.kill(target.pid, 'SIGKILL');
      faultsAt.push({ kind, target: target.name, at });
      if (kind === 'writer') writerKills++;
      else brokerKills++;
      log(
        `  kill -9 ${kind} ${target.name} (${writerKills} writer kills, ${brokerKills} broker kills, ${accepted.length} webhooks accepted)`,
      );
      const restartAfterMs = (opts.clusterRestartAfterSeconds ?? 10) * 1000;
      restarts.push(
        new Promise((r) => setTimeout(r, restartAfterMs))
          .then(() => execFileAsync(process.execPath, [services, 'ha-start', target.kind, String(target.n)], { timeout: 600_000 }))
          .then(
            () => log(`  ${target.kind} ${target.n} is back ${((Date.now() - at) / 1000).toFixed(1)} s after its kill`),
            (e: unknown) => log(`  restarting ${target.kind} ${target.n} failed: ${e instanceof Error ? e.message : String(e)}`),
          ),
      );
      return true;
    };

    // Faults: kill -9 a random relay or worker every few seconds and start a new one; once, stop Kafka.
    const faults = (async () => {
      let outageDone = !broker;
      const dbEveryMs = (opts.databaseFaultEverySeconds ?? (mode === 'ha' ? 30 : 40)) * 1000;
      let nextDbFaultAt = started + Math.min(dbEveryMs / 2, (opts.seconds * 1000) / 2);
      let nextClusterKind: 'writer' | 'broker' = 'writer';
      // Kills on a fixed grid: the time a restart or the outage takes is not added to the interval.
      let nextAt = Date.now() + opts.killEverySeconds * 1000;
      while (Date.now() < endAt - 2000) {
        await new Promise((r) => setTimeout(r, Math.max(0, nextAt - Date.now())));
        nextAt = Math.max(nextAt + opts.killEverySeconds * 1000, Date.now() + 1000);
        if (ownDb && Date.now() >= nextDbFaultAt) {
          nextDbFaultAt += dbEveryMs;
          const at = Date.now();
          await ownDb.kill9();
          faultsAt.push({ kind: 'database', target: `mariadbd :${ownDb.port}`, at });
          await new Promise((r) => setTimeout(r, (opts.databaseDownSeconds ?? 2) * 1000));
          await ownDb.start();
          databaseRestarts++;
          log(`  kill -9 the database and restarted it after ${((Date.now() - at) / 1000).toFixed(1)} s (${databaseRestarts} restarts)`);
          continue;
        }
        if (cluster && Date.now() >= nextDbFaultAt) {
          const kind: 'writer' | 'broker' = nextClusterKind;
          const done = await killClusterMember(kind);
          if (done) {
            nextDbFaultAt += dbEveryMs;
            nextClusterKind = kind === 'writer' ? 'broker' : 'writer';
            continue;
          }
        }
        if (!outageDone && Date.now() - started > (opts.seconds * 1000) / 3) {
          outageDone = true;
          log(`  stopping the Kafka broker for ${opts.kafkaOutageSeconds} s`);
          await broker!.stop(); // throws unless the process has exited and its port is closed
          const down = Date.now();
          // The outage's length is the fault itself, not a wait for a condition.
          await new Promise((r) => setTimeout(r, opts.kafkaOutageSeconds * 1000));
          await broker!.run();
          outageMs = Date.now() - down;
          log(`  Kafka broker serving again after ${(outageMs / 1000).toFixed(1)} s`);
          continue;
        }
        const pool = Math.random() < 0.6 ? procs.relays : procs.workers;
        const role = pool === procs.relays ? 'relay' : 'worker';
        const i = Math.floor(Math.random() * pool.length);
        await pool[i].kill('SIGKILL');
        kills++;
        if (role === 'relay') relayKills++;
        else workerKills++;
        pool[i] = await spawnRole(role, t.env);
        log(`  kill -9 ${role} #${i + 1} and restarted (${kills} kills, ${accepted.length} webhooks accepted)`);
      }
    })();
    await Promise.all([load, faults]);
    // Every killed cluster member back before the checks (their queries must not meet a failover). Then a
    // fresh pool: HAProxy cuts the sessions on a backup node when the first node is healthy again, which
    // leaves this pool's idle connections dead.
    await Promise.all(restarts);
    if (cluster) {
      await new Promise((r) => setTimeout(r, 3000));
      await t.db.destroy();
      t.db.initialize();
    }
    // Stop the recurring triggers at a known instant, so their expected grids are finite.
    const stopAt = Date.now();
    await t
      .db('triggers')
      .whereIn(
        'id',
        [...crons, ...intervals].map((x) => x.id),
      )
      .update({ status: 'inactive' });
    log('  load stopped; waiting for quiescence');

    // Quiescence: every time trigger fired, the outbox drained, every delivery finished.
    await until(
      async () =>
        Number(
          (
            (
              await withDbRetry(() =>
                t
                  .db('trigger_schedules')
                  .where('status', 'pending')
                  .whereIn(
                    'trigger_id',
                    timeTriggers.map((x) => x.id),
                  )
                  .count({ n: '*' }),
              )
            )[0] as { n: number }
          ).n,
        ) === 0,
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        message: 'all time triggers fired',
      },
    );
    await until(
      async () =>
        Number(((await withDbRetry(() => t.db('outbox').whereNot('published', 1).count({ n: '*' })))[0] as { n: number }).n) === 0,
      {
        timeoutMs: 180_000,
        intervalMs: 500,
        message: 'outbox drained',
      },
    );
    await until(
      async () =>
        Number(
          (
            (await withDbRetry(() => t.db('event_logs').whereIn('execution_status', ['pending', 'published']).count({ n: '*' })))[0] as {
              n: number;
            }
          ).n,
        ) === 0,
      {
        timeoutMs: 180_000,
        intervalMs: 500,
        message: 'every delivery finished',
      },
    ).catch(async (e: unknown) => {
      // Say what is stuck, so a failure here can be diagnosed from the CI log alone.
      const stuck = (await t
        .db('event_logs')
        .whereIn('execution_status', ['pending', 'published'])
        .select('id', 'source', 'execution_status', 'attempts', 'error_message', 'fired_at', 'published_at')
        .limit(5)) as unknown[];
      const byStatus = (await t
        .db('event_logs')
        .select('execution_status', 'source')
        .count({ n: '*' })
        .groupBy('execution_status', 'source')) as unknown[];
      const outbox = (await t.db('outbox').select('topic', 'published').count({ n: '*' }).groupBy('topic', 'published')) as unknown[];
      process.stderr.write(
        `  stuck: ${JSON.stringify(stuck)}\n  by status: ${JSON.stringify(byStatus)}\n  outbox: ${JSON.stringify(outbox)}`,
      );
      process.stderr.write(`  worker output (tail): ${procs.workers.map((w) => w.output().slice(-3000)).join('\n---\n')}`);
      throw e;
    });

    // Checks.
    const logs = (await withDbRetry(() =>
      t.db('event_logs').select('id', 'trigger_id', 'scheduled_for', 'execution_status', 'source'),
    )) as Array<{
      id: string;
      trigger_id: string;
      scheduled_for: Date | null;
      execution_status: string;
      source: string;
    }>;
    const logIds = new Set(logs.map((l) => l.id));
    const expectedIds = new Set<string>(accepted);
    for (const tt of timeTriggers) expectedIds.add(scheduledEventId(tt.id, new Date(tt.at)));
    let brokenChains = 0;
    let scheduled = timeTriggers.length;
    for (const tr of [...crons, ...intervals]) {
      const times = logs
        .filter((l) => l.trigger_id === tr.id)
        .map((l) => new Date(l.scheduled_for as Date).getTime())
        .sort((a, b) => a - b);
      const step = crons.includes(tr) ? 1000 : 2000;
      for (let i = 1; i < times.length; i++) if (times[i] - times[i - 1] !== step) brokenChains++;
      // The chain must reach the moment the trigger was stopped (no occurrence silently dropped at the end).
      if (times.length === 0 || times[times.length - 1] < stopAt - step - 1500) brokenChains++;
      scheduled += times.length;
      times.forEach((ms) => expectedIds.add(scheduledEventId(tr.id, new Date(ms))));
    }
    await until(() => [...logIds].every((id) => reader.byEventId(id).length > 0), {
      timeoutMs: 120_000,
      intervalMs: 500,
      message: 'every event on Kafka',
    }).catch(() => undefined);
    const onKafkaIds = new Set(reader.messages.map((m) => m.value.event_id as string));
    const lost = [...expectedIds].filter((id) => !logIds.has(id) || !onKafkaIds.has(id)).length;
    const kafkaDuplicates =
      reader.messages.filter((m) => logIds.has(m.value.event_id as string)).length - [...logIds].filter((id) => onKafkaIds.has(id)).length;
    // A copy is the same event: same id, and the same trigger, time, source and payload as its first copy
    // (fired_at may differ: a re-fired occurrence is stamped when it fires again).
    const first = new Map<string, string>();
    let kafkaStrays = 0;
    for (const m of reader.messages) {
      const id = m.value.event_id as string;
      const { fired_at: _firedAt, ...rest } = m.value;
      const same = JSON.stringify([m.key, rest]);
      if (!logIds.has(id)) kafkaStrays++;
      else if (!first.has(id)) first.set(id, same);
      else if (first.get(id) !== same) kafkaStrays++;
    }
    const scheduledViaOutbox = new Set(
      (await outboxInserts.rows())
        .filter((r) => r.topic === t.topic && (JSON.parse(r.value.toString('utf8')) as { source?: string }).source === 'scheduler')
        .map((r) => r.event_id),
    ).size;
    const webhookIds = receiver.requests.map((r) => `${r.headers['webhook-id']}`);
    const receiverDuplicateRequests = webhookIds.length - new Set(webhookIds).size;
    const stuck = Number(
      ((await withDbRetry(() => t.db('trigger_schedules').where('status', 'processing').count({ n: '*' })))[0] as { n: number }).n,
    );
    return {
      seconds: opts.seconds,
      webhooksAccepted: accepted.length,
      webhooksRejectedByServer: rejected,
      scheduledOccurrences: scheduled,
      eventLogs: logs.length,
      kills,
      relayKills,
      kafkaOutageSeconds: Math.round(outageMs / 1000),
      onKafka: [...logIds].filter((id) => onKafkaIds.has(id)).length,
      kafkaDuplicates,
      kafkaDuplicateBound: kafkaDuplicateBound({
        relayKills,
        databaseKills: databaseRestarts + writerKills,
        relays: procs.relays.length,
        // A killed cluster broker may also leave each relay's batch unacknowledged.
        outages: (outageMs > 0 ? 1 : 0) + brokerKills,
        relayConcurrency: t.config.relayConcurrency,
        relayBatchSize: t.config.relayBatchSize,
        relayBatchMax: t.config.relayBatchMax,
        scheduledViaOutbox,
      }),
      kafkaStrays,
      lost,
      deliveriesSuccess: logs.filter((l) => l.execution_status === 'success').length,
      deliveriesFailure: logs.filter((l) => l.execution_status === 'failure').length,
      deliveriesUnfinished: logs.filter((l) => l.execution_status !== 'success' && l.execution_status !== 'failure').length,
      receiverRequests: receiver.requests.length,
      receiverDuplicateRequests,
      receiverRetriesAfter500: answered500.size,
      receiverResends: receiverDuplicateRequests - answered500.size,
      receiverResendBound: receiverResendBound({
        workerKills,
        workers: procs.workers.length,
        workerConcurrency: t.config.workerConcurrency,
      }),
      successWithout2xx: logs.filter((l) => l.execution_status === 'success' && !answered2xx.has(l.id)).length,
      stuckProcessing: stuck,
      brokenChains,
      databaseRestarts,
      writerKills,
      brokerKills,
      recoveries: faultsAt.map((f) => {
        const back = answered202.filter((a) => a.sentAt >= f.at).reduce((m, a) => Math.min(m, a.doneAt), Number.POSITIVE_INFINITY);
        return { kind: f.kind, target: f.target, seconds: Number.isFinite(back) ? (back - f.at) / 1000 : null };
      }),
      databaseNote:
        mode === 'shared'
          ? 'not restarted: the shared server belongs to the machine (the one-node soak restarts one of its own)'
          : mode === 'own'
            ? `a server of the soak's own (port ${ownDb?.port}), kill -9 and restart`
            : `Galera behind HAProxy (${cluster?.databaseUrl}), brokers ${cluster?.kafkaBrokers}`,
    };
  } finally {
    await Promise.all([...procs.relays, ...procs.workers, ...(procs.api ? [procs.api] : [])].map((p) => p.kill('SIGKILL')));
    await Promise.allSettled(restarts);
    await outboxInserts.stop();
    await reader.stop();
    await receiver.stop();
    await ownDb?.start().catch(() => undefined); // cleanup drops the database on it
    await t.cleanup().catch(() => undefined);
    await ownDb?.destroy();
    await broker?.destroy();
  }
}

export function printFigures(f: SoakFigures, print: (l: string) => void = (l) => process.stdout.write(`${l}\n`)): void {
  print(
    `soak ${f.seconds}s: ${f.webhooksAccepted} webhooks accepted (${f.webhooksRejectedByServer} not accepted), ${f.scheduledOccurrences} scheduled occurrences`,
  );
  print(
    `  kills: ${f.kills} (${f.relayKills} relays), Kafka outage (measured, broker process stopped): ${f.kafkaOutageSeconds}s, database restarts: ${f.databaseRestarts} (${f.databaseNote})`,
  );
  if (f.writerKills + f.brokerKills > 0) print(`  writer kills: ${f.writerKills}, broker kills: ${f.brokerKills}`);
  for (const kind of ['database', 'writer', 'broker'] as const) {
    const r = f.recoveries.filter((x) => x.kind === kind);
    if (r.length === 0) continue;
    const s = r.map((x) => x.seconds).filter((x): x is number => x !== null);
    const list = r.map((x) => (x.seconds === null ? 'never' : `${x.seconds.toFixed(2)}`)).join(', ');
    print(
      `  recovery after a ${kind} kill (kill → webhooks answered 202 again): max ${s.length ? Math.max(...s).toFixed(2) : '-'} s, p50 ${s.length ? percentile(s, 0.5).toFixed(2) : '-'} s [${list}]`,
    );
  }
  print(
    `  event logs: ${f.eventLogs}, on Kafka: ${f.onKafka}, Kafka duplicates (same event id): ${f.kafkaDuplicates} (bound ${f.kafkaDuplicateBound}), other messages: ${f.kafkaStrays}`,
  );
  print(
    `  deliveries: ${f.deliveriesSuccess} success, ${f.deliveriesFailure} failure, ${f.deliveriesUnfinished} unfinished, ${f.successWithout2xx} success without a 2xx; receiver saw ${f.receiverRequests} requests, ${f.receiverDuplicateRequests} repeats of an id: ${f.receiverRetriesAfter500} retries after its 500s, ${f.receiverResends} re-sends after worker kills (bound ${f.receiverResendBound}, at-least-once)`,
  );
  print(`  lost: ${f.lost}, stuck in processing: ${f.stuckProcessing}, broken cron/interval chains: ${f.brokenChains}`);
}

function percentile(xs: number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** What `services.mjs status --ha --json` reports (the parts the soak reads). */
interface HaStatus {
  databaseUrl: string;
  kafkaBrokers: string;
  haproxy: { pid: number | null; writer: string | null };
  galera: Array<{ n: number; name: string; pid: number | null; state: string }>;
  kafka: Array<{ n: number; name: string; pid: number | null; serving: boolean }>;
  topics: Array<{ name: string; partitions: number; leaders: number[]; replicas: number; minIsrNow: number }>;
}

function haStatus(services: string): HaStatus {
  return JSON.parse(execFileSync(process.execPath, [services, 'status', '--ha', '--json'], { encoding: 'utf8' })) as HaStatus;
}
