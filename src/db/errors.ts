/**
 * The one table of MySQL / MariaDB errors the platform treats as transient — on one server, and on a
 * cluster behind a proxy (Galera, InnoDB Cluster) where a failover throws a few more of them.
 *
 * Two kinds:
 *  - `conflict`: the transaction lost a race (a deadlock, a lock wait, a Galera certification failure at
 *    COMMIT, which MariaDB reports as 1213). Nothing of it was written; running it again is correct.
 *  - `unavailable`: the server, or the cluster node the proxy sent us to, cannot serve writes now (shutting
 *    down, read-only, not yet synced into the primary component, the connection was lost or refused).
 *    Retried after a short wait; where a client waits, the API answers 503 with Retry-After.
 *
 * A lost connection during COMMIT leaves the outcome unknown (it may have committed). Retrying is still
 * correct everywhere this table is used because every write is idempotent by key: event ids are primary
 * keys, the webhook group checks which ids committed before it writes again, outcome rows carry
 * (event id, attempt) idempotency keys, and claimed rows are re-read under their lock.
 */
import type { Knex } from 'knex';

export type DbErrorKind = 'conflict' | 'unavailable';

interface Entry {
  kind: DbErrorKind;
  /** What it means here (the server's name for it, and when a failover throws it). */
  why: string;
}

/** By server error number (`errno`). */
export const DB_ERRNOS: ReadonlyMap<number, Entry> = new Map<number, Entry>([
  [1213, { kind: 'conflict', why: 'ER_LOCK_DEADLOCK: a deadlock, or a Galera certification failure / brute-force abort at COMMIT' }],
  [1205, { kind: 'conflict', why: 'ER_LOCK_WAIT_TIMEOUT' }],
  [
    3101,
    { kind: 'conflict', why: 'ER_TRANSACTION_ROLLBACK_DURING_COMMIT: a MySQL Group Replication (InnoDB Cluster) certification failure' },
  ],
  [3100, { kind: 'unavailable', why: "ER_RUN_HOOK_ERROR: Group Replication refused the commit (the member left the group's majority)" }],
  [
    1047,
    {
      kind: 'unavailable',
      why: "ER_UNKNOWN_COM_ERROR: Galera's 'WSREP has not yet prepared node for application use' (node not synced / non-primary)",
    },
  ],
  [
    1290,
    {
      kind: 'unavailable',
      why: 'ER_OPTION_PREVENTS_STATEMENT with --read-only: a replica or a node being demoted (other options are not transient)',
    },
  ],
  [1836, { kind: 'unavailable', why: 'ER_READ_ONLY_MODE' }],
  [1792, { kind: 'unavailable', why: 'ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION' }],
  [1053, { kind: 'unavailable', why: 'ER_SERVER_SHUTDOWN: the server is shutting down' }],
  [1927, { kind: 'unavailable', why: 'ER_CONNECTION_KILLED' }],
  [1040, { kind: 'unavailable', why: 'ER_CON_COUNT_ERROR: too many connections' }],
  [4031, { kind: 'unavailable', why: 'ER_CLIENT_INTERACTION_TIMEOUT (MariaDB): an idle connection was closed by the server' }],
  [2002, { kind: 'unavailable', why: "CR_CONNECTION_ERROR: can't connect" }],
  [2003, { kind: 'unavailable', why: "CR_CONN_HOST_ERROR: can't connect" }],
  [2006, { kind: 'unavailable', why: 'CR_SERVER_GONE_ERROR' }],
  [2013, { kind: 'unavailable', why: 'CR_SERVER_LOST: lost connection during a query' }],
]);

/** By Node / mysql2 error code, for errors that carry no server errno (the socket went away). */
export const DB_ERROR_CODES: ReadonlyMap<string, Entry> = new Map<string, Entry>([
  ['ECONNRESET', { kind: 'unavailable', why: 'connection reset (a killed node, or the proxy closed it)' }],
  ['ECONNREFUSED', { kind: 'unavailable', why: 'nothing listens (the server or the proxy is down)' }],
  ['EPIPE', { kind: 'unavailable', why: 'wrote to a closed connection' }],
  ['ETIMEDOUT', { kind: 'unavailable', why: 'connect timeout' }],
  ['EHOSTUNREACH', { kind: 'unavailable', why: 'no route to the server' }],
  ['PROTOCOL_CONNECTION_LOST', { kind: 'unavailable', why: 'the server closed the connection (mid-transaction on a failover)' }],
  ['PROTOCOL_SEQUENCE_TIMEOUT', { kind: 'unavailable', why: 'no answer in time' }],
]);

/** mysql2 throws this, without a code, for a query on a connection that has already been closed. */
const CLOSED_CONNECTION = /connection is in closed state/i;

/** The kind of a transient database error, or null when the error is not transient (or not a database error). */
export function dbErrorKind(e: unknown): DbErrorKind | null {
  const err = e as { errno?: unknown; code?: unknown; name?: unknown; message?: unknown } | null;
  if (!err || typeof err !== 'object') return null;
  if (typeof err.errno === 'number') {
    const entry = DB_ERRNOS.get(err.errno);
    if (entry) {
      // 1290 is "running with --<option>": only read-only is a state that passes.
      if (err.errno === 1290 && typeof err.message === 'string' && !/read.only/i.test(err.message)) return null;
      return entry.kind;
    }
  }
  if (typeof err.code === 'string') {
    const entry = DB_ERROR_CODES.get(err.code);
    if (entry) return entry.kind;
  }
  // knex: no pooled connection could be had in time (every connect failed or hung).
  if (err.name === 'KnexTimeoutError') return 'unavailable';
  if (typeof err.message === 'string' && CLOSED_CONNECTION.test(err.message)) return 'unavailable';
  return null;
}

/** "Try the transaction again", not "the request is wrong". */
export function isRetryableDbError(e: unknown): boolean {
  return dbErrorKind(e) !== null;
}

/** MySQL's duplicate-key error (1062): an INSERT met an existing primary or unique key. */
export const ER_DUP_ENTRY = 1062;

export function isDuplicateKey(e: unknown): boolean {
  return (e as { errno?: number } | null)?.errno === ER_DUP_ENTRY;
}

/**
 * Runs a multi-row INSERT in the caller's transaction under a savepoint; on a duplicate key it rolls back
 * to the savepoint and returns false (the caller then inserts row by row, INSERT IGNORE). The savepoint is
 * what takes the failed statement's rows out of the transaction's replication events when the table has
 * an insert trigger: on Galera, relying on the statement's own rollback after a duplicate in an
 * `event_logs` batch shipped the rows inserted before it, the other nodes met them again from the
 * row-by-row inserts (duplicate key), and the cluster voted the writer out (reproduced on the three-node
 * loopback cluster, docs/topology.md). Tables without triggers (idempotency keys, replay rows) replicated
 * correctly without it and skip its two round trips.
 */
export async function insertUnlessDuplicate(trx: Knex.Transaction, insert: () => Promise<unknown>): Promise<boolean> {
  await trx.raw('SAVEPOINT etp_batch_insert');
  try {
    await insert();
  } catch (e) {
    if (!isDuplicateKey(e)) throw e;
    await trx.raw('ROLLBACK TO SAVEPOINT etp_batch_insert');
    return false;
  }
  await trx.raw('RELEASE SAVEPOINT etp_batch_insert');
  return true;
}

/**
 * The most of an error text kept in a row (an event's error_message, an attempt's error, an outbox row's
 * last_error): enough to read the cause, bounded so a receiver's huge error page cannot bloat the tables.
 */
export const ERROR_TEXT_MAX_CHARS = 2000;

export function errorText(message: string): string {
  return message.slice(0, ERROR_TEXT_MAX_CHARS);
}
