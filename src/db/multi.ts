import mysql from 'mysql2/promise';
import type { Knex } from 'knex';
import { EVENTS_COUNTED_BY_TRIGGER } from './events';
import { connectionOptions } from './knex';
import { chunksBySize, PACKET_MAX_BYTES, textBytes } from './packets';

/**
 * A small mysql2 pool whose connections accept several statements in one query (`multipleStatements`), for
 * the hot transactions that gain from sending their statements in as few round trips as possible: the
 * webhook group commit (db/ingest.ts) and the relay's fire and publish batches (relay/steps.ts,
 * relay/publisher.ts). The knex pool must not
 * have that flag; here only the fixed statement texts of db/ are sent, and every value is a bound `?` that
 * mysql2 escapes (a text with nothing to escape but double quotes is quoted as it is: quotedText), so user
 * text never becomes SQL. Sessions are set up as the knex pool's (db/knex.ts): UTC,
 * READ COMMITTED; values are typed alike (dates as Dates, numbers as numbers).
 */
export type MultiPool = mysql.Pool;

export function createMultiStatementPool(databaseUrl: string, connections: number): MultiPool {
  const pool = mysql.createPool({
    ...connectionOptions(databaseUrl),
    multipleStatements: true,
    connectionLimit: connections,
    maxIdle: connections,
    timezone: 'Z',
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    charset: 'utf8mb4',
    connectTimeout: 5000,
    // mysql2's promise API otherwise captures a stack trace per query (and per getConnection) to give an
    // error its caller's frames: a few per cent of the relay's main thread in the steady workload
    // (docs/performance-cpu.md). The errors keep their code and message, which is what callers test.
    trace: false,
  });
  // The listener gets the core (callback) connection; its first query runs before any of ours. If it
  // fails the connection is dropped, and the query that meets it fails and is retried by its caller.
  pool.on('connection', (conn) => {
    const core = conn as unknown as { query(sql: string, cb: (err: Error | null) => void): void; destroy(): void };
    core.query("SET time_zone = '+00:00'; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", (err) => {
      if (err) core.destroy();
    });
  });
  return pool;
}

/**
 * What a one-statement read needs of a connection: `raw(sql, values)` answering `[rows, …]`, as knex's
 * raw does on mysql2. Knex and its transactions have it; so does a MultiPool through `rawOf`.
 */
export interface RawQuery {
  raw(sql: string, values?: readonly unknown[]): PromiseLike<unknown>;
}

/**
 * A MultiPool as a RawQuery: one statement on one of its connections, without knex's query builder,
 * connection pool and events. For the idle relay's probes (several a second, each on code too cold to be
 * optimised), where knex's own work per statement was the larger share of the relay's CPU.
 */
export function rawOf(pool: MultiPool): RawQuery {
  return { raw: (sql, values = []) => pool.query(sql, values as Knex.RawBinding[]) };
}

/**
 * One statement in the caller's transaction, answering its rows: how claimInShards, readLargeConfigs and
 * readBoundedBatch reach the database, whichever transport the transaction runs on (knex, statementOn; a
 * ScriptTransaction, its sendOne).
 */
export type RunStatement = (statement: { sql: string; values: Knex.RawBinding[] }) => Promise<unknown[]>;

/** RunStatement over a knex transaction (or any RawQuery on mysql2, which answers [rows, fields]). */
export function statementOn(q: RawQuery): RunStatement {
  return async ({ sql, values }) => ((await q.raw(sql, values)) as [unknown[]])[0];
}

/** One statement of a script: text with `?` placeholders, and its values; `bytes`, its size if the builder knows it. */
export interface Statement {
  sql: string;
  values: readonly unknown[];
  bytes?: number;
}

/**
 * `statements` as one multi-statement query on `on` (a pool or one of its connections): one answer each, in
 * order. A script larger than PACKET_MAX_BYTES (large payloads) goes in several round trips, in order, on one
 * connection (a pool's next query could take another).
 */
async function queryScript(on: mysql.Pool | mysql.PoolConnection, statements: Statement[]): Promise<unknown[]> {
  const packets = chunksBySize(statements, statementBytes, PACKET_MAX_BYTES);
  if (packets.length <= 1) return queryPacket(on, statements);
  const conn = 'release' in on ? on : await on.getConnection();
  try {
    const results: unknown[] = [];
    for (const packet of packets) results.push(...(await queryPacket(conn, packet.items)));
    return results;
  } finally {
    if (conn !== on) conn.release();
  }
}

/** A statement's size: the builder's figure, else its text and each value at most (db/packets.ts). */
function statementBytes(s: Statement): number {
  if (s.bytes !== undefined) return s.bytes;
  let bytes = s.sql.length;
  for (const v of s.values) bytes += typeof v === 'string' ? textBytes(v) : Buffer.isBuffer(v) ? 2 * v.length + 3 : 24;
  return bytes;
}

/**
 * Each statement is formatted on its own (the connection's own format, with its time zone and escaping, as
 * query() would) and the texts are joined. One array of all the script's values (32,000 for a fire batch of
 * 2,000 events) took about 4 ms per batch to build with flatMap, on the relay's busiest thread. A statement
 * with no values is sent as it is.
 */
async function queryPacket(on: mysql.Pool | mysql.PoolConnection, statements: Statement[]): Promise<unknown[]> {
  const [results] = (await on.query(
    statements.map((s) => (s.values.length > 0 ? on.format(s.sql, quotedText(s.values) as Knex.RawBinding[]) : s.sql)).join(';\n'),
  )) as unknown as [unknown];
  // mysql2 nests the results only when there is more than one statement.
  return statements.length === 1 ? [results] : (results as unknown[]);
}

/** A character that a single-quoted literal must (or mysql2 would) escape, the double quote aside. */
// eslint-disable-next-line no-control-regex -- the control characters mysql2 escapes are what it looks for
const ESCAPED_BESIDES_DOUBLE_QUOTE = /[\0\b\t\n\r\x1a'\\]/;

/** A text bound as `'text'`, unchanged: for a text that holds nothing a single-quoted literal must escape. */
class QuotedText {
  constructor(private readonly text: string) {}
  toSqlString(): string {
    return `'${this.text}'`;
  }
}

/**
 * `values` with each text that holds a double quote and nothing else mysql2 escapes bound as it is, in single
 * quotes; every other value as given (the same array when there is none).
 *
 * mysql2 (sql-escaper) escapes `"` as `\"` inside a single-quoted literal, where it needs no escape: the
 * literal means the same text either way. JSON text (payloads, Kafka values and headers) is full of double
 * quotes, and escaping them cut each text into a piece per quote: about a fifth of what the api allocated
 * per webhook request. A text with a quote, a backslash or a control character that mysql2 escapes goes to
 * mysql2 as before.
 */
export function quotedText<T>(values: readonly T[]): (T | QuotedText)[] {
  let out: (T | QuotedText)[] | null = null;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'string' && v.includes('"') && !ESCAPED_BESIDES_DOUBLE_QUOTE.test(v)) (out ??= values.slice())[i] = new QuotedText(v);
  }
  return out ?? (values as T[]);
}

/**
 * Statements that each stand alone (no transaction between them), sent in one round trip on `pool`, or one
 * at a time through `q` (knex) without a pool: one answer per statement either way, in order.
 */
export async function sendStatements(pool: MultiPool | null, q: RawQuery, statements: Statement[]): Promise<unknown[]> {
  if (pool) return queryScript(pool, statements);
  const results: unknown[] = [];
  for (const s of statements) results.push(((await q.raw(s.sql, s.values)) as [unknown])[0]);
  return results;
}

/**
 * A transaction on one connection of a MultiPool whose statements go in batches: each `send` is one round
 * trip, and its answer holds one result per statement (rows for a SELECT, a header with affectedRows for the
 * rest). The first batch begins the transaction; `commit` ends it with the last batch (and may carry
 * statements that run after the commit, outside it). On any failure the transaction is rolled back before
 * the connection goes back to the pool (a failed statement of a multi-statement query leaves it open);
 * a connection whose rollback fails is destroyed.
 */
export class ScriptTransaction {
  private done = false;

  private constructor(private readonly conn: mysql.PoolConnection) {}

  /** Takes a connection and sends `START TRANSACTION` with `first`: the results of `first`. */
  static async begin(pool: MultiPool, first: Statement[]): Promise<{ tx: ScriptTransaction; results: unknown[] }> {
    const tx = new ScriptTransaction(await pool.getConnection());
    const results = await tx.send([{ sql: 'START TRANSACTION', values: [] }, ...first]);
    return { tx, results: results.slice(1) };
  }

  /** One round trip: the statements' results, in order. */
  async send(statements: Statement[]): Promise<unknown[]> {
    try {
      return await queryScript(this.conn, statements);
    } catch (e) {
      await this.rollback();
      throw e;
    }
  }

  /** One statement in its own round trip: its rows (a RunStatement). */
  readonly sendOne: RunStatement = async (statement) => (await this.send([statement]))[0] as unknown[];

  /** `statements`, COMMIT, then `after` (outside the transaction), in one round trip: the results of `after`. */
  async commit(statements: Statement[], after: Statement[] = []): Promise<unknown[]> {
    const all = await this.send([...statements, { sql: 'COMMIT', values: [] }, ...after]);
    this.release();
    return all.slice(statements.length + 1);
  }

  /**
   * Rolls back (if still open) and gives the connection back; a connection that cannot roll back is destroyed.
   * A script that failed part-way may have left the events-counted flag set (insertCountedEventsStatements):
   * it is cleared with the rollback, so the next user of the connection is counted by the trigger again.
   */
  async rollback(): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      await this.conn.query(`ROLLBACK; ${EVENTS_COUNTED_BY_TRIGGER}`);
      this.conn.release();
    } catch {
      this.conn.destroy();
    }
  }

  private release(): void {
    if (this.done) return;
    this.done = true;
    this.conn.release();
  }
}
