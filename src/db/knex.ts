import path from 'node:path';
import knexFactory, { Knex } from 'knex';
import mysql from 'mysql2/promise';
import { databaseName, DEFAULT_OUTBOX_SHARDS } from '../config';

export type Db = Knex;

export function connectionOptions(databaseUrl: string) {
  const u = new URL(databaseUrl);
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password || ''),
    database: databaseName(databaseUrl),
  };
}

/** Creates the database named in DATABASE_URL when it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const { database, ...server } = connectionOptions(databaseUrl);
  const conn = await mysql.createConnection({ ...server, connectTimeout: 5000 });
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${database.replace(/`/g, '``')}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await conn.end();
  }
}

/** Settings of a database handle that its writers need, fixed when the handle is made (see createDb). */
export interface DbSettings {
  /** OUTBOX_SHARDS: every outbox row written through the handle gets its shard from it (db/outbox.ts). */
  readonly outboxShards: number;
}

/** knex's client config, which a handle shares with its transactions, carries our settings too. */
type ConfigWithSettings = Knex.Config & { etpSettings: DbSettings };

/** The settings of the handle `q` (or of the handle a transaction `q` came from). */
export function dbSettings(q: Knex | Knex.Transaction): DbSettings {
  const settings = (q.client as { config: Partial<ConfigWithSettings> }).config.etpSettings;
  if (!settings) throw new Error('a database handle made outside createDb has no settings');
  return settings;
}

/**
 * A pool on the database. `outboxShards` (the config's OUTBOX_SHARDS) travels with the handle and its
 * transactions, so every writer of the outbox agrees on it without module-level state or passing it along.
 */
export function createDb(databaseUrl: string, poolMax = 10, outboxShards = DEFAULT_OUTBOX_SHARDS): Db {
  const config: ConfigWithSettings = {
    etpSettings: Object.freeze({ outboxShards }),
    client: 'mysql2',
    connection: {
      ...connectionOptions(databaseUrl),
      // Times are stored and read in UTC; DATETIME(3) columns come back as JS Dates.
      timezone: 'Z',
      dateStrings: false,
      supportBigNumbers: true,
      bigNumberStrings: false,
      connectTimeout: 5000,
      charset: 'utf8mb4',
    },
    pool: {
      min: 0,
      max: poolMax,
      afterCreate(conn: { query: (sql: string, cb: (err: Error | null) => void) => void }, done: (err: Error | null, c: unknown) => void) {
        // UTC session, and READ COMMITTED for every transaction: claims lock only the rows they return.
        conn.query("SET time_zone = '+00:00'", (err) => {
          if (err) return done(err, conn);
          conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (err2) => done(err2, conn));
        });
      },
    },
    acquireConnectionTimeout: 10_000,
  };
  return knexFactory(config);
}

/** Where the migrations are: compiled JS next to dist/, or the TypeScript sources when run under ts-node. */
export function migrationConfig(): Knex.MigratorConfig {
  const compiled = !__filename.endsWith('.ts');
  return compiled
    ? { directory: path.join(__dirname, '..', 'migrations'), loadExtensions: ['.js'], tableName: 'knex_migrations' }
    : { directory: path.join(__dirname, '..', '..', 'migrations'), loadExtensions: ['.ts'], tableName: 'knex_migrations' };
}

export async function migrateLatest(db: Db): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migrationConfig())) as [number, string[]];
  return applied;
}

/** MariaDB returns JSON columns as text, MySQL as parsed values: accept both. */
export function parseJson<T = unknown>(v: unknown): T {
  if (v === null || v === undefined) return null as T;
  if (Buffer.isBuffer(v)) return JSON.parse(v.toString('utf8')) as T;
  if (typeof v === 'string') return JSON.parse(v) as T;
  return v as T;
}

/** DATETIME(3) text of an instant, in UTC (the sessions' time zone): a bound value mysql2 need not format. */
export function dbTime(d: Date): string {
  return d.toISOString().slice(0, 23).replace('T', ' ');
}

/** The key types rowsByKeys joins on: an auto-increment id, or an event id (CHAR(36), ascii_bin as the column). */
const KEY_COLUMN = { bigint: 'BIGINT UNSIGNED', eventId: 'CHAR(36) CHARACTER SET ascii COLLATE ascii_bin' } as const;

/**
 * The rows of `table` (as `alias`) whose primary keys come as one JSON list (the statement's first binding),
 * for a batch's DELETE or UPDATE: each found by its primary key (eq_ref), the list driving the join. A plain
 * `WHERE id IN (…)` is left to the optimizer, which plans it as a scan when the ids are much of what the
 * table's statistics show (a table that drains as it goes, one freshly analysed), and a locking scan waits on
 * the rows other transactions hold: two batches doing that to each other deadlocked, for the fire batch's
 * schedule rows and for the publish batch's outbox rows alike. The join order and the index are fixed, so
 * no statistics make it a scan.
 */
export function rowsByKeys(table: string, alias: string, key: keyof typeof KEY_COLUMN): string {
  return `JSON_TABLE(?, '$[*]' COLUMNS (id ${KEY_COLUMN[key]} PATH '$')) AS k
  STRAIGHT_JOIN ${table} AS ${alias} FORCE INDEX (PRIMARY) ON ${alias}.id = k.id`;
}
