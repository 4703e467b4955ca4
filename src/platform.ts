import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { topicReplication, type Config } from './config';
import { createDb, ensureDatabase, migrateLatest, type Db } from './db/knex';
import { Lifecycle } from './events';
import { EventProducer, ensureTopics, underReplicated } from './kafka/producer';
import { coerceError, createLogger, type Logger } from './logger';
import { Metrics } from './metrics';
import type { WebhookRequestLog } from './api/webhook-request-log';
import { WebhookIngest } from './api/webhook-ingest';
import { dbCheck, runChecks, type Check } from './api/health';
import { Relay } from './relay/relay';
import { Worker } from './worker/worker';
import { dbErrorKind } from './db/errors';
import { dbRetryDelayMs, sleep } from './util';
import { Tracing } from './tracing/tracing';

export type Role = 'api' | 'relay' | 'worker';

export interface Platform {
  /** Bound ports of the HTTP servers started (api, or the relay's / worker's health endpoints). */
  ports: Partial<Record<Role, number>>;
  db: Db;
  stop(): Promise<void>;
}

/** Connect with retries: a broker that is still starting (or briefly down) is waited for, not fatal. */
async function connectProducer(producer: EventProducer, logger: Logger, deadlineMs: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await producer.connect(10_000);
      return;
    } catch (e) {
      if (Date.now() > deadlineMs) throw e;
      logger.warn('kafka not reachable yet, retrying', { attempt, error: coerceError(e).message });
      await sleep(Math.min(5000, 250 * attempt));
    }
  }
}

/**
 * Start-up steps that need the database are retried while it is unavailable (a failover, a restart, the
 * server not up yet), so a process started meanwhile waits instead of exiting into a restart loop.
 */
async function whileDbUnavailable<T>(what: string, fn: () => Promise<T>, logger: Logger, deadlineMs: number): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (dbErrorKind(e) === null || Date.now() > deadlineMs) throw e;
      logger.warn('database unavailable at start-up, retrying', { step: what, attempt, error: coerceError(e).message });
      await sleep(dbRetryDelayMs('unavailable', Math.min(attempt, 5)));
    }
  }
}

/** A start-up step against Kafka, retried (a broker down, a controller moving) until the deadline. */
async function untilKafka<T>(what: string, logger: Logger, deadlineMs: number, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadlineMs) throw e;
      logger.warn('kafka not ready at start-up, retrying', { step: what, attempt, error: coerceError(e).message });
      await sleep(Math.min(5000, 250 * attempt));
    }
  }
}

/** Migrations from several processes at once: knex's lock makes the others wait, then find nothing to do. */
async function migrateWithLock(db: Db, logger: Logger): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const applied = await migrateLatest(db);
      if (applied.length > 0) logger.info('migrations applied', { applied });
      return;
    } catch (e) {
      const msg = coerceError(e).message;
      if (!/already locked/i.test(msg) || attempt > 60) throw e;
      await sleep(500);
    }
  }
}

function listen(app: http.RequestListener, port: number): Promise<http.Server> {
  return new Promise((resolve, reject) => {
    const server = http.createServer(app);
    server.keepAliveTimeout = 65_000;
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve(server));
  });
}

/** A small server for the relay's / worker's own /health and /metrics when they run alone. */
function sideApp(role: string, metrics: Metrics, checks: Record<string, Check>): express.Express {
  const app = express();
  app.get('/health', (_req, res) => void runChecks(role, checks).then((r) => res.status(r.status === 'healthy' ? 200 : 503).json(r)));
  app.get(
    '/metrics',
    (_req, res, next) => void metrics.registry.metrics().then((t) => res.type(metrics.registry.contentType).send(t), next),
  );
  return app;
}

/**
 * The webhook receiver's group commit, its size and time reported to the metrics. `afterFlush`: called after
 * each group (a relay in the same process publishes its rows at once: Relay.wakeOutbox).
 */
export function webhookIngest(config: Config, logger: Logger | null, metrics: Metrics | null, afterFlush?: () => void): WebhookIngest {
  return WebhookIngest.create(config.databaseUrl, {
    topic: config.kafkaTopic,
    outboxShards: config.outboxShards,
    maxItems: config.webhookGroupMaxItems,
    maxBytes: config.webhookGroupMaxBytes,
    maxInFlight: config.webhookGroupFlushes,
    logger: logger ?? undefined,
    onFlush:
      metrics || afterFlush
        ? (size, seconds) => {
            metrics?.webhookGroupSize.observe(size);
            metrics?.webhookGroupDuration.observe(seconds);
            afterFlush?.();
          }
        : undefined,
  });
}

/**
 * Wires the chosen roles: config → logger → pools → Kafka → roles. Entry points only call this;
 * tests call it too (with port 0) to run real roles in-process. Long because it is the one ordered list of
 * start-up steps (and their stop in reverse); each step is a call.
 */
// eslint-disable-next-line max-lines-per-function -- the one ordered list of start-up steps, as said above
export async function startPlatform(
  config: Config,
  roles: Role[],
  opts: { logger?: Logger; migrate?: boolean; tracing?: Tracing } = {},
): Promise<Platform> {
  const logger = opts.logger ?? createLogger(config.logLevel, roles.join('+'));
  // Given by a test (its own exporter, which it flushes and stops), else from the OTEL_* settings. The
  // OpenTelemetry SDK is loaded only when spans are exported (a relay or worker pod without an exporter
  // never loads it).
  const tracing =
    opts.tracing ?? (config.otelTracesEndpoint ? (await import('./tracing/sdk')).tracingFromConfig(config) : new Tracing(null));
  if (tracing.recording && !opts.tracing) logger.info('exporting trace spans', { endpoint: config.otelTracesEndpoint });
  const startDeadline = Date.now() + 120_000;
  await whileDbUnavailable('create database', () => ensureDatabase(config.databaseUrl), logger, startDeadline);
  const db = createDb(config.databaseUrl, config.dbPoolMax, config.outboxShards);
  if (opts.migrate ?? config.migrateOnStart) await whileDbUnavailable('migrate', () => migrateWithLock(db, logger), logger, startDeadline);

  const events = new Lifecycle();
  const metrics = new Metrics(db, { activeSeconds: config.retentionActiveSeconds, keepSeconds: config.retentionDeleteAfterSeconds });
  metrics.subscribe(events);
  events.onEvent('relay:error', (e) => logger.warn('relay step failed', { step: e.step, error: e.error.message }));
  events.onEvent('relay:publish_failed', (e) => logger.warn('publish failed; rows stay in the outbox', { count: e.count, error: e.error }));
  events.onEvent('relay:swept', (e) => logger.info('retention sweep', e));
  events.onEvent('relay:slices', (e) => logger.info('event time slices', e));
  events.onEvent('worker:error', (e) => logger.warn('worker error', { error: e.error.message }));
  events.onEvent('worker:dlq', (e) => logger.warn('event dead-lettered', { event_id: e.eventId }));
  events.onEvent('worker:circuit', (e) =>
    logger.warn(e.open ? 'endpoint circuit opened' : 'endpoint circuit closed', { origin: e.origin }),
  );

  const producer = new EventProducer({
    brokers: config.kafkaBrokers,
    messageTimeoutMs: config.kafkaMessageTimeoutMs,
    compression: config.kafkaCompression,
    clientId: `etp-${roles.join('-')}`,
    tracing,
  });
  const needsKafkaNow = roles.includes('relay') || roles.includes('worker');
  if (needsKafkaNow) {
    await connectProducer(producer, logger, Date.now() + 120_000);
    const topics = [config.kafkaTopic, `${config.kafkaTopic}.retry`, config.kafkaDlqTopic];
    // Only missing topics are created: the admin request needs the controller, and a process started while
    // a broker is down (a cluster fault) must not exit over topics that exist already. Retried until the
    // start-up deadline.
    const replication = await untilKafka('create topics', logger, Date.now() + 120_000, async () => {
      const md = await producer.metadata();
      const have = new Set(md.topics.map((t) => t.name));
      const wanted = topicReplication(config, md.brokers.length);
      const missing = topics.filter((name) => !have.has(name));
      if (missing.length > 0) {
        await ensureTopics(
          config.kafkaBrokers,
          missing.map((name) => ({ name, partitions: config.kafkaPartitions })),
          15_000,
          wanted,
        );
      }
      return wanted;
    });
    const short = underReplicated(await producer.metadata(), topics, replication.replicationFactor);
    if (short.length > 0) {
      logger.warn('topics have fewer replicas than KAFKA_REPLICATION_FACTOR asks; a broker failure can lose or stop them', {
        topics: short,
        wanted: replication.replicationFactor,
      });
    }
  } else {
    // The api never produces; it keeps a client only for the health check, connected in the background.
    void connectProducer(producer, logger, Number.POSITIVE_INFINITY).catch(() => undefined);
  }
  const checks: Record<string, Check> = { database: dbCheck(db), kafka: () => producer.ping() };

  const servers: http.Server[] = [];
  const ports: Platform['ports'] = {};
  let relay: Relay | null = null;
  let worker: Worker | null = null;

  if (roles.includes('relay')) {
    const created = new Relay({ db, producer, config, events, tracing });
    relay = created;
    await whileDbUnavailable('relay start', () => created.start(), logger, startDeadline);
  }
  if (roles.includes('worker')) {
    worker = new Worker({ db, producer, config, events, logger, tracing });
    await worker.start();
    checks.consumer = () => worker!.check();
    metrics.watchConsumerLag(() => worker!.lag());
  }
  let ingest: WebhookIngest | null = null;
  let requestLog: WebhookRequestLog | null = null;
  if (roles.includes('api')) {
    // The API's stack (Express routes, the OpenAPI validator, the dashboard) is loaded only in a process
    // that serves it: a relay or worker alone starts with about a quarter less CPU and a smaller heap.
    const { createApp, webhookRequestLog } = await import('./api/app');
    // A relay in the same process publishes the webhook events at once when their transaction commits.
    const sameProcessRelay = relay;
    const outboxWritten = sameProcessRelay ? () => sameProcessRelay.wakeOutbox() : undefined;
    ingest = config.webhookGroupCommit ? webhookIngest(config, logger, metrics, outboxWritten) : null;
    requestLog = webhookRequestLog(db, config, metrics, logger);
    const app = createApp({ config, db, logger, metrics, checks, ingest, requestLog, role: roles.join('+'), tracing, outboxWritten });
    const server = await listen(app, config.apiPort);
    servers.push(server);
    ports.api = (server.address() as AddressInfo).port;
    logger.info('api listening', { port: ports.api });
  } else {
    const role = roles.includes('relay') ? 'relay' : 'worker';
    const port = role === 'relay' ? config.relayPort : config.workerPort;
    const server = await listen(sideApp(roles.join('+'), metrics, checks), port);
    servers.push(server);
    ports[role] = (server.address() as AddressInfo).port;
  }
  logger.info('started', { roles, ports });

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('stopping', { roles });
      // Order: stop accepting → finish in-flight work → flush and close Kafka → close pools last.
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeIdleConnections();
            }),
        ),
      );
      await Promise.all([relay?.stop(), worker?.stop(), ingest?.close(), requestLog?.close()]);
      await producer.close();
      // The last spans (the publishes just flushed) are exported before the process goes.
      if (!opts.tracing)
        await tracing.shutdown().catch((e: unknown) => logger.warn('trace export failed at shutdown', { error: coerceError(e).message }));
      await db.destroy();
      logger.info('stopped', { roles });
    })();
    return stopping;
  };
  return { ports, db, stop };
}
