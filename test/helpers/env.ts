import { randomBytes } from 'node:crypto';
import path from 'node:path';
import mysql from 'mysql2/promise';
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
  cleanup(): Promise<void>;
}

/**
 * Each test file gets its own database (created and migrated here, dropped in cleanup) and its own
 * topic names, so files never see each other's rows or messages.
 */
export async function createTestEnv(
  label: string,
  overrides: Record<string, string> = {},
  opts: { databaseUrlBase?: string } = {},
): Promise<TestEnv> {
  const base = opts.databaseUrlBase ?? DATABASE_URL_BASE;
  const suffix = `${label
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 20)
    .toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const dbName = `etp_test_${suffix}`;
  const topic = `etp-test-${suffix}`;
  const databaseUrl = `${base.replace(/\/?$/, '/')}${dbName}`;
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl,
    KAFKA_BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_CONSUMER_GROUP: `${topic}-worker`,
    KAFKA_PARTITIONS: '3',
    ENVIRONMENT: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    API_PORT: '0',
    RELAY_PORT: '0',
    WORKER_PORT: '0',
    PUBLIC_BASE_URL: 'http://127.0.0.1:8080',
    DELIVERY_ALLOW_PRIVATE_NETWORKS: 'true',
    MIGRATE_ON_START: 'false',
    ...overrides,
  };
  const config = loadConfig(env);
  await ensureDatabase(databaseUrl);
  const db = createDb(databaseUrl, 10, config.outboxShards);
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
