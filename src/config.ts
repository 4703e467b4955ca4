/**
 * The one place that reads the environment. Every variable is parsed once into a frozen, typed object
 * with units in the names; a bad value stops start-up with one line naming the variable and what it
 * accepts. Defaults live here and nowhere else (the README's configuration table mirrors this list).
 */

/** OUTBOX_SHARDS when unset; also what a database handle made without a config uses (db/knex.ts createDb). */
export const DEFAULT_OUTBOX_SHARDS = 64;

/** librdkafka's compression.codec values. */
export type KafkaCompression = 'none' | 'lz4' | 'snappy' | 'zstd' | 'gzip';
/** Every KafkaCompression value, as KAFKA_COMPRESSION accepts them. */
export const KAFKA_COMPRESSIONS: readonly KafkaCompression[] = ['none', 'lz4', 'snappy', 'zstd', 'gzip'];

export type Environment = 'development' | 'test' | 'production';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface Config {
  readonly environment: Environment;
  readonly logLevel: LogLevel;
  readonly databaseUrl: string;
  readonly dbPoolMax: number;
  readonly kafkaBrokers: string;
  readonly kafkaTopic: string;
  readonly kafkaDlqTopic: string;
  readonly kafkaPartitions: number;
  readonly kafkaConsumerGroup: string;
  readonly kafkaMessageTimeoutMs: number;
  /** The producer's compression codec (librdkafka compression.codec). */
  readonly kafkaCompression: KafkaCompression;
  /**
   * Replication factor of the topics the platform creates (an existing topic is left as it is). 'auto': 3,
   * or the number of brokers when the cluster has fewer (1 on a one-broker development setup).
   */
  readonly kafkaReplicationFactor: number | 'auto';
  /**
   * `min.insync.replicas` of the topics the platform creates: with acks=all a write succeeds only once this
   * many replicas have it. 'auto': 2 when the replication factor is 3 or more (one broker may die without
   * losing an acknowledged write or stopping writes), else 1.
   */
  readonly kafkaMinInsyncReplicas: number | 'auto';
  readonly apiPort: number;
  readonly relayPort: number;
  readonly workerPort: number;
  readonly publicBaseUrl: string;
  readonly corsOrigins: readonly string[];
  readonly apiKeys: readonly string[];
  readonly webhookMaxBodyBytes: number;
  /** Group commit of webhook events (one transaction per group of concurrent requests); off = one each, via knex. */
  readonly webhookGroupCommit: boolean;
  /** At most this many events per group commit. */
  readonly webhookGroupMaxItems: number;
  /** At most about this many bytes (payload + Kafka value) per group commit; a larger single event goes alone. */
  readonly webhookGroupMaxBytes: number;
  /** Group commits in flight at once (each on its own connection of the ingest pool). */
  readonly webhookGroupFlushes: number;
  /** Requests per second per API key (burst: twice that); 0 disables. In memory, per API process. */
  readonly rateLimitPerKey: number;
  /** Requests per second per webhook trigger (burst: twice that); 0 disables. In memory, per API process. */
  readonly rateLimitPerWebhook: number;
  readonly schedulerIntervalMs: number;
  readonly outboxPollIntervalMs: number;
  readonly relayBatchSize: number;
  /** The most rows a fire claim grows to while claims come back full (a burst); RELAY_BATCH_SIZE again after one that is not. */
  readonly relayBatchMax: number;
  readonly relayConcurrency: number;
  readonly outboxOrdering: boolean;
  /** direct: a due schedule is produced to Kafka inside its fire transaction; outbox: it goes through the outbox table. */
  readonly relayFireMode: 'direct' | 'outbox';
  /** How long the direct fire path waits for delivery reports before sending the rest through the outbox. */
  readonly relayDirectTimeoutMs: number;
  /** After a fire batch that was not full, the least time before the next claim (events due close together share a transaction). */
  readonly relayFireWindowMs: number;
  /** The most the fire window widens to while fire batches are small (moderate rates): fewer, larger batches. */
  readonly relayFireWindowMaxMs: number;
  readonly outboxShards: number;
  readonly relayLeaseMs: number;
  readonly misfireGraceSeconds: number;
  readonly retentionActiveSeconds: number;
  readonly retentionDeleteAfterSeconds: number;
  readonly retentionSweepIntervalMs: number;
  /** The longest a read route's query may run; past it the query is killed and the route answers 503. */
  readonly readTimeoutMs: number;
  readonly workerConcurrency: number;
  readonly deliveryAllowPrivateNetworks: boolean;
  /** Consecutive retryable failures (5xx, timeout, network) to one endpoint origin that open its circuit; 0 = off. */
  readonly deliveryCircuitFailures: number;
  /** How long an open circuit defers deliveries to its origin before one probe is let through. */
  readonly deliveryCircuitCooldownMs: number;
  readonly migrateOnStart: boolean;
  readonly shutdownTimeoutMs: number;
  /**
   * Where spans are exported (OTLP over HTTP): OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, or
   * OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`. null: no spans are recorded (traceparents are still kept
   * and forwarded; docs/tracing.md).
   */
  readonly otelTracesEndpoint: string | null;
  /** OTEL_EXPORTER_OTLP_HEADERS: sent with every export (an API key of the tracing backend, say). */
  readonly otelExporterHeaders: Readonly<Record<string, string>>;
  readonly otelServiceName: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly accepts: string,
    readonly value: string,
  ) {
    super(`${variable}=${JSON.stringify(value)} is invalid: expected ${accepts}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, def: string): string {
  const v = env[name];
  return v === undefined || v.trim() === '' ? def : v.trim();
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const accepts = `an integer from ${min} to ${max}`;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, accepts, raw);
  const n = Number(raw.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigError(name, accepts, raw);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(name, 'true or false', raw);
}

function oneOf<T extends string>(env: Env, name: string, def: T, allowed: readonly T[]): T {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const v = raw.trim().toLowerCase() as T;
  if (!allowed.includes(v)) throw new ConfigError(name, `one of ${allowed.join(', ')}`, raw);
  return v;
}

/** A duration: plain milliseconds ("250") or with a unit ("250ms", "5s", "1m"). */
export function parseDurationMs(raw: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) return null;
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  const ms = Math.round(n * factor);
  return Number.isFinite(ms) ? ms : null;
}

function duration(env: Env, name: string, defMs: number, minMs: number, maxMs: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return defMs;
  const ms = parseDurationMs(raw);
  if (ms === null || ms < minMs || ms > maxMs) {
    throw new ConfigError(name, `a duration from ${minMs}ms to ${maxMs}ms (e.g. 250ms, 5s)`, raw);
  }
  return ms;
}

function url(env: Env, name: string, def: string, protocols: readonly string[]): string {
  const raw = str(env, name, def);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `a URL (${protocols.join(' or ')})`, raw);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `a URL (${protocols.join(' or ')})`, raw);
  }
  return raw.replace(/\/+$/, '');
}

/** `key=value,key2=value2`, values percent-decoded (the OpenTelemetry spec's form of OTEL_EXPORTER_OTLP_HEADERS). */
function keyValues(env: Env, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of list(env, name)) {
    const eq = part.indexOf('=');
    const key = eq > 0 ? part.slice(0, eq).trim() : '';
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(key)) throw new ConfigError(name, 'comma-separated key=value pairs', '<redacted>');
    try {
      out[key] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      throw new ConfigError(name, 'comma-separated key=value pairs (values percent-encoded)', '<redacted>');
    }
  }
  return out;
}

/** The OTLP/HTTP traces URL from the OTEL_* variables, or null when tracing export is off. */
function otlpTracesEndpoint(env: Env): string | null {
  if (bool(env, 'OTEL_SDK_DISABLED', false)) return null;
  const signal = str(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', '');
  if (signal !== '') return url(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', signal, ['http:', 'https:']);
  const base = str(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', '');
  if (base === '') return null;
  return `${url(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', base, ['http:', 'https:'])}/v1/traces`;
}

function list(env: Env, name: string): string[] {
  return str(env, name, '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function brokers(env: Env, name: string, def: string): string {
  const raw = str(env, name, def);
  const parts = raw.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/.test(p))) {
    throw new ConfigError(name, 'comma-separated host:port pairs', raw);
  }
  return parts.join(',');
}

function countOrAuto(env: Env, name: string, min: number, max: number): number | 'auto' {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '' || raw.trim().toLowerCase() === 'auto') return 'auto';
  if (!/^\d+$/.test(raw.trim()) || Number(raw.trim()) < min || Number(raw.trim()) > max) {
    throw new ConfigError(name, `auto or an integer from ${min} to ${max}`, raw);
  }
  return Number(raw.trim());
}

function topic(env: Env, name: string, def: string): string {
  const raw = str(env, name, def);
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(raw)) {
    throw new ConfigError(name, 'a Kafka topic name ([A-Za-z0-9._-], up to 200 chars)', raw);
  }
  return raw;
}

/** Long as a table is long: one line per variable, each parsed and checked by the helpers above. */
// eslint-disable-next-line max-lines-per-function -- one line per variable, as said above
export function loadConfig(env: Env = process.env): Config {
  const apiPort = int(env, 'API_PORT', 8080, 0, 65535);
  const kafkaTopic = topic(env, 'KAFKA_TOPIC', 'trigger-events');
  const apiKeys = list(env, 'API_KEYS');
  const relayBatchSize = int(env, 'RELAY_BATCH_SIZE', 500, 1, 10_000);
  const relayFireWindowMs = duration(env, 'RELAY_FIRE_WINDOW', 10, 0, 1000);
  if (apiKeys.some((k) => k.length < 8)) {
    throw new ConfigError('API_KEYS', 'comma-separated keys of at least 8 characters', '<redacted>');
  }
  const cfg: Config = {
    environment: oneOf<Environment>(env, 'ENVIRONMENT', 'development', ['development', 'test', 'production']),
    logLevel: oneOf<LogLevel>(env, 'LOG_LEVEL', 'info', ['error', 'warn', 'info', 'debug']),
    databaseUrl: url(env, 'DATABASE_URL', 'mysql://root@127.0.0.1:3306/event_triggers', ['mysql:', 'mariadb:']),
    dbPoolMax: int(env, 'DB_POOL_MAX', 20, 2, 200),
    kafkaBrokers: brokers(env, 'KAFKA_BROKERS', '127.0.0.1:9092'),
    kafkaTopic,
    kafkaDlqTopic: topic(env, 'KAFKA_DLQ_TOPIC', `${kafkaTopic}.dlq`),
    kafkaPartitions: int(env, 'KAFKA_PARTITIONS', 6, 1, 1000),
    kafkaConsumerGroup: str(env, 'KAFKA_CONSUMER_GROUP', 'etp-delivery-worker'),
    kafkaMessageTimeoutMs: duration(env, 'KAFKA_MESSAGE_TIMEOUT_MS', 10_000, 1000, 300_000),
    kafkaCompression: oneOf<KafkaCompression>(env, 'KAFKA_COMPRESSION', 'lz4', KAFKA_COMPRESSIONS),
    kafkaReplicationFactor: countOrAuto(env, 'KAFKA_REPLICATION_FACTOR', 1, 32),
    kafkaMinInsyncReplicas: countOrAuto(env, 'KAFKA_MIN_INSYNC_REPLICAS', 1, 32),
    apiPort,
    relayPort: int(env, 'RELAY_PORT', 8081, 0, 65535),
    workerPort: int(env, 'WORKER_PORT', 8082, 0, 65535),
    publicBaseUrl: url(env, 'PUBLIC_BASE_URL', `http://127.0.0.1:${apiPort}`, ['http:', 'https:']),
    corsOrigins: list(env, 'CORS_ORIGINS'),
    apiKeys,
    webhookMaxBodyBytes: int(env, 'WEBHOOK_MAX_BODY_BYTES', 1_048_576, 1024, 64 * 1_048_576),
    webhookGroupCommit: oneOf(env, 'WEBHOOK_GROUP_COMMIT', 'on', ['on', 'off']) === 'on',
    webhookGroupMaxItems: int(env, 'WEBHOOK_GROUP_MAX_ITEMS', 500, 1, 5000),
    webhookGroupMaxBytes: int(env, 'WEBHOOK_GROUP_MAX_BYTES', 4_194_304, 1024, 64 * 1_048_576),
    webhookGroupFlushes: int(env, 'WEBHOOK_GROUP_FLUSHES', 2, 1, 32),
    rateLimitPerKey: int(env, 'RATE_LIMIT_PER_KEY', 100, 0, 1_000_000),
    rateLimitPerWebhook: int(env, 'RATE_LIMIT_PER_WEBHOOK', 1000, 0, 1_000_000),
    schedulerIntervalMs: duration(env, 'SCHEDULER_INTERVAL', 250, 10, 60_000),
    outboxPollIntervalMs: duration(env, 'OUTBOX_POLL_INTERVAL', 20, 5, 60_000),
    relayBatchSize,
    relayBatchMax: int(env, 'RELAY_BATCH_MAX', Math.min(4 * relayBatchSize, 10_000), relayBatchSize, 10_000),
    relayConcurrency: int(env, 'RELAY_CONCURRENCY', 3, 1, 32),
    outboxOrdering: oneOf(env, 'OUTBOX_ORDERING', 'on', ['on', 'off']) === 'on',
    relayFireMode: oneOf(env, 'RELAY_FIRE_MODE', 'direct', ['direct', 'outbox']),
    relayDirectTimeoutMs: duration(env, 'RELAY_DIRECT_TIMEOUT', 500, 10, 60_000),
    relayFireWindowMs,
    relayFireWindowMaxMs: duration(env, 'RELAY_FIRE_WINDOW_MAX', Math.min(4 * relayFireWindowMs, 1000), relayFireWindowMs, 1000),
    outboxShards: int(env, 'OUTBOX_SHARDS', DEFAULT_OUTBOX_SHARDS, 1, 4096),
    relayLeaseMs: duration(env, 'RELAY_LEASE_MS', 5000, 500, 600_000),
    misfireGraceSeconds: int(env, 'MISFIRE_GRACE_SECONDS', 60, 1, 86_400),
    retentionActiveSeconds: int(env, 'RETENTION_ACTIVE_SECONDS', 7200, 1, 365 * 86_400),
    retentionDeleteAfterSeconds: int(env, 'RETENTION_DELETE_AFTER_SECONDS', 172_800, 1, 3650 * 86_400),
    retentionSweepIntervalMs: duration(env, 'RETENTION_SWEEP_INTERVAL', 5000, 100, 3_600_000),
    readTimeoutMs: duration(env, 'READ_TIMEOUT', 5000, 50, 600_000),
    workerConcurrency: int(env, 'WORKER_CONCURRENCY', 32, 1, 1000),
    deliveryAllowPrivateNetworks: bool(env, 'DELIVERY_ALLOW_PRIVATE_NETWORKS', false),
    deliveryCircuitFailures: int(env, 'DELIVERY_CIRCUIT_FAILURES', 5, 0, 10_000),
    deliveryCircuitCooldownMs: duration(env, 'DELIVERY_CIRCUIT_COOLDOWN', 30_000, 100, 3_600_000),
    migrateOnStart: bool(env, 'MIGRATE_ON_START', true),
    shutdownTimeoutMs: duration(env, 'SHUTDOWN_TIMEOUT', 10_000, 100, 600_000),
    otelTracesEndpoint: otlpTracesEndpoint(env),
    otelExporterHeaders: Object.freeze(keyValues(env, 'OTEL_EXPORTER_OTLP_HEADERS')),
    otelServiceName: str(env, 'OTEL_SERVICE_NAME', 'event-trigger-platform'),
  };
  if (cfg.retentionDeleteAfterSeconds <= cfg.retentionActiveSeconds) {
    throw new ConfigError(
      'RETENTION_DELETE_AFTER_SECONDS',
      `a number of seconds greater than RETENTION_ACTIVE_SECONDS (${cfg.retentionActiveSeconds})`,
      String(cfg.retentionDeleteAfterSeconds),
    );
  }
  if (
    typeof cfg.kafkaReplicationFactor === 'number' &&
    typeof cfg.kafkaMinInsyncReplicas === 'number' &&
    cfg.kafkaMinInsyncReplicas > cfg.kafkaReplicationFactor
  ) {
    throw new ConfigError(
      'KAFKA_MIN_INSYNC_REPLICAS',
      `auto or at most KAFKA_REPLICATION_FACTOR (${cfg.kafkaReplicationFactor}); more would refuse every write`,
      String(cfg.kafkaMinInsyncReplicas),
    );
  }
  return Object.freeze(cfg);
}

/** The settings of the topics the platform creates on a cluster of `brokers` brokers ('auto' resolved, see Config). */
export function topicReplication(
  config: Pick<Config, 'kafkaReplicationFactor' | 'kafkaMinInsyncReplicas'>,
  brokers: number,
): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = config.kafkaReplicationFactor === 'auto' ? Math.max(1, Math.min(3, brokers)) : config.kafkaReplicationFactor;
  const minInsyncReplicas =
    config.kafkaMinInsyncReplicas === 'auto' ? Math.max(1, Math.min(2, replicationFactor - 1)) : config.kafkaMinInsyncReplicas;
  return { replicationFactor, minInsyncReplicas };
}

/** The database name in DATABASE_URL (created at start-up when missing). */
export function databaseName(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  return name === '' ? 'event_triggers' : name;
}
