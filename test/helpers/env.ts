import { randomBytes } from 'node:crypto';
import path from 'node:path';
import mysql from 'mysql2/promise';
import Kafka from 'node-rdkafka';
import { loadConfig, type Config } from '../../src/config';
import { createDb, ensureDatabase, migrateLatest, type Db } from '../../src/db/knex';

export const DATABASE_URL_BASE = process.env.TEST_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/';
export const KAFKA_BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';

export interface TestEnv {
  /** Environment for loadConfig / child processes: own database, own topic names. */
  env: Record<string, string>;
  config: Config;
  db: Db;
  dbName: string;
  topic: string;
  /** Runs `fn` in cleanup(), before the pool closes (last registered, first run). */
  defer(fn: () => Promise<void>): void;
  /** Runs what was deferred, closes the pool, drops the database (and, for a bench, deletes its topics). */
  cleanup(): Promise<void>;
  /** Closes the pool and leaves the database and topics for inspection (a bench's --keep). */
  keep(): Promise<void>;
}

/**
 * What differs between a test file's environment and a benchmark's; everything else is one set-up.
 * A test: `etp_test_*` names, 3 partitions, errors only in the logs, private endpoints allowed (the
 * receivers listen on 127.0.0.1). A bench: `etp_bench_*` names, production settings and partitions, a
 * bigger pool, and its topics deleted with the database (a full run leaves hundreds of MB on them).
 */
export type EnvKind = 'test' | 'bench';

const KINDS: Record<EnvKind, { poolMax: number; deleteTopics: boolean; env: () => Record<string, string> }> = {
  test: {
    poolMax: 10,
    deleteTopics: false,
    env: () => ({
      KAFKA_PARTITIONS: '3',
      ENVIRONMENT: 'test',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
      PUBLIC_BASE_URL: 'http://127.0.0.1:8080',
      DELIVERY_ALLOW_PRIVATE_NETWORKS: 'true',
    }),
  },
  bench: { poolMax: 12, deleteTopics: true, env: () => ({ ENVIRONMENT: 'production', LOG_LEVEL: 'warn' }) },
};

export interface EnvOptions {
  kind?: EnvKind;
  /** The server to create the database on (default TEST_DATABASE_URL or the local MariaDB). */
  databaseUrlBase?: string;
  /** A database to use (and migrate to the latest schema) instead of a new one: a bench's --reuse. */
  existingDb?: string;
}

/**
 * Each test file (and each benchmark phase) gets its own database (created and migrated here, dropped in
 * cleanup) and its own topic names, so runs never see each other's rows or messages.
 */
export async function createTestEnv(label: string, overrides: Record<string, string> = {}, opts: EnvOptions = {}): Promise<TestEnv> {
  const kind = KINDS[opts.kind ?? 'test'];
  const prefix = opts.kind ?? 'test';
  const base = opts.databaseUrlBase ?? DATABASE_URL_BASE;
  const suffix = `${label
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 20)
    .toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const dbName = opts.existingDb ?? `etp_${prefix}_${suffix}`;
  const topic = `etp-${prefix}-${suffix}`;
  const databaseUrl = `${base.replace(/\/?$/, '/')}${dbName}`;
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    KAFKA_BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_CONSUMER_GROUP: `${topic}-worker`,
    API_PORT: '0',
    RELAY_PORT: '0',
    WORKER_PORT: '0',
    MIGRATE_ON_START: 'false',
    ...kind.env(),
    ...overrides,
  };
  const config = loadConfig(env);
  await ensureDatabase(databaseUrl);
  const db = createDb(databaseUrl, kind.poolMax, config.outboxShards);
  await migrateLatest(db);
  const deferred: Array<() => Promise<void>> = [];
  return {
    env,
    config,
    db,
    dbName,
    topic,
    defer(fn) {
      deferred.push(fn);
    },
    async cleanup() {
      for (const fn of deferred.splice(0).reverse()) await fn();
      await db.destroy();
      await dropDatabase(dbName, base);
      if (kind.deleteTopics) await deleteTopics([topic, `${topic}.retry`, config.kafkaDlqTopic]).catch(() => undefined);
    },
    async keep() {
      for (const fn of deferred.splice(0).reverse()) await fn();
      await db.destroy();
    },
  };
}

export async function dropDatabase(dbName: string, base = DATABASE_URL_BASE): Promise<void> {
  const u = new URL(base);
  const conn = await mysql.createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password),
  });
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${dbName.replace(/`/g, '')}\``);
  } finally {
    await conn.end();
  }
}

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** Deletes topics (a bench's, with its database: they hold hundreds of MB after a full run). */
export async function deleteTopics(topics: string[], timeoutMs = 10_000): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': KAFKA_BROKERS, 'client.id': 'etp-env-admin' });
  try {
    for (const t of topics) {
      await new Promise<void>((resolve) => admin.deleteTopic(t, timeoutMs, () => resolve()));
    }
  } finally {
    admin.disconnect();
  }
}
