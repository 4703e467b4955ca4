import type { Knex } from 'knex';
import { quotedText, type MultiPool } from './multi';
import { dbTime } from './knex';
import { OutboxState } from './outbox';

/**
 * The webhook receiver's write path: a group of accepted webhook events written as ONE multi-statement
 * query (START TRANSACTION; event logs; outbox rows; COMMIT) — one round trip per group of requests, on a
 * pool of its own with `multipleStatements` (createMultiStatementPool in db/multi.ts).
 */
/** One accepted webhook request, everything precomputed in the API process. */
export interface WebhookEventWrite {
  eventId: string;
  triggerId: string;
  /** The trigger version the payload was validated against (and the signature checked with). */
  version: number;
  /** The payload as stored (JSON text). */
  payload: string;
  firedAt: Date;
  /** The event's W3C traceparent (event_logs.trace_parent; also in `headers`). */
  traceParent: string | null;
  topic: string;
  /** The Kafka message value and headers (JSON text) and the outbox shard, as insertOutbox would store them. */
  value: string;
  headers: string;
  shard: number;
}

const EVENT_PART = `SELECT ?, id, 'webhook', 'webhook', 0, ?, NULL, ?, ?, ?, ? FROM triggers
  WHERE id = ? AND version = ? AND status = 'active' AND type = 'webhook'`;
const OUTBOX_PART = `SELECT id, ?, trigger_id, ?, ?, ?, fired_at, ${OutboxState.Ready}, fired_at FROM event_logs WHERE id = ?`;

/**
 * The text and bindings of one group's transaction when every item is checked on its own: the path of a
 * group whose one-guard write (webhookGroupSql) found a trigger changed since the API cached it.
 *
 * The event log INSERT…SELECT takes each item's row from `triggers` only while the trigger still has the
 * version the API validated against, is active and is a webhook trigger (a primary-key lookup per part).
 * An item whose trigger was edited, deactivated or deleted since the API cached it inserts nothing, and the
 * caller learns so from the affected-rows count. The outbox INSERT…SELECT then reads the event logs just
 * inserted (same transaction), so only a logged event gets an outbox row.
 *
 * Locking: our sessions are READ COMMITTED, where InnoDB reads the SELECT side of INSERT…SELECT as a
 * consistent (non-locking) read — measured: it does not wait for an uncommitted trigger edit. So the check
 * sees the trigger as last committed when the statement runs: an edit committed before a request arrived
 * is always seen (the request goes the slow path), while an edit committing concurrently with a group may
 * land just after it — those requests raced the edit and were accepted under the version before it, as a
 * read-then-insert would. Not taking a shared lock keeps groups from ever waiting on (or deadlocking with)
 * trigger edits. UNION ALL of per-item parts rather than a join with a derived table of the items: each
 * part is a const primary-key lookup, with no temporary table and no collation coercion between a
 * utf8mb4 literal column and the ascii_bin id.
 */
export function webhookCheckedGroupSql(items: WebhookEventWrite[]): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  for (const it of items) {
    const at = dbTime(it.firedAt);
    values.push(it.eventId, it.payload, at, at, at, it.traceParent, it.triggerId, it.version);
  }
  for (const it of items) values.push(it.topic, it.shard, it.value, it.headers, it.eventId);
  const sql =
    'START TRANSACTION;\n' +
    'INSERT INTO event_logs (id, trigger_id, trigger_type, source, is_test_run, payload, scheduled_for, fired_at, created_at, updated_at, trace_parent)\n' +
    items.map(() => EVENT_PART).join('\nUNION ALL ') +
    ';\n' +
    'INSERT INTO outbox (event_id, topic, msg_key, shard, value, headers, available_at, published, created_at)\n' +
    items.map(() => OUTBOX_PART).join('\nUNION ALL ') +
    ';\nCOMMIT';
  return { sql, values };
}

/**
 * The text and bindings of one group's transaction, all or nothing under one guard: the group's events are
 * inserted only if every (trigger, version) pair of the group is still current (active, a webhook trigger,
 * the version the API validated against: one statement over the group's distinct triggers, usually a few),
 * and its outbox rows only if every event was inserted (ROW_COUNT() of the event insert). The items come as
 * a derived table of constant rows (a CTE with named columns: `INSERT … WITH … SELECT`, which MySQL 8.0
 * documents and MariaDB runs; a `VALUES` row list would need MySQL's `ROW(…)` spelling, which MariaDB
 * lacks) rather than one SELECT per item against `triggers` and `event_logs` (webhookCheckedGroupSql): the server
 * parses and plans two statements instead of two per item. On the bench machine, groups of 64 written back
 * to back: 70–73 µs of server CPU per event against 84–97 with a SELECT per item (docs/performance-cpu.md).
 * A group whose guard fails inserts nothing and is written again by webhookCheckedGroupSql, item by item.
 * The guard's read is the same consistent read as the per-item check's (see there).
 */
export function webhookGroupSql(items: WebhookEventWrite[]): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  const firedAt = items.map((it) => dbTime(it.firedAt));
  items.forEach((it, i) => values.push(it.eventId, it.triggerId, it.payload, firedAt[i], it.traceParent));
  const pairs = new Map<string, WebhookEventWrite>();
  for (const it of items) pairs.set(`${it.triggerId} ${it.version}`, it);
  for (const it of pairs.values()) values.push(it.triggerId, it.version);
  values.push(pairs.size);
  items.forEach((it, i) => values.push(it.eventId, it.topic, it.triggerId, it.shard, it.value, it.headers, firedAt[i]));
  values.push(items.length);
  const sql =
    'START TRANSACTION;\n' +
    'INSERT INTO event_logs (id, trigger_id, trigger_type, source, is_test_run, payload, scheduled_for, fired_at, created_at, updated_at, trace_parent)\n' +
    'WITH w (w_id, w_trigger, w_payload, w_at, w_trace) AS (' +
    items.map(() => 'SELECT ?, ?, ?, ?, ?').join(' UNION ALL ') +
    ")\nSELECT w_id, w_trigger, 'webhook', 'webhook', 0, w_payload, NULL, w_at, w_at, w_at, w_trace FROM w\n" +
    'WHERE (SELECT COUNT(*) FROM triggers WHERE (' +
    [...pairs.values()].map(() => '(id = ? AND version = ?)').join(' OR ') +
    ") AND status = 'active' AND type = 'webhook') = ?;\n" +
    `SET ${GROUP_LOGGED} = ROW_COUNT();\n` +
    'INSERT INTO outbox (event_id, topic, msg_key, shard, value, headers, available_at, published, created_at)\n' +
    'WITH o (o_id, o_topic, o_key, o_shard, o_value, o_headers, o_at) AS (' +
    items.map(() => 'SELECT ?, ?, ?, ?, ?, ?, ?').join(' UNION ALL ') +
    `)\nSELECT o_id, o_topic, o_key, o_shard, o_value, o_headers, o_at, ${OutboxState.Ready}, o_at FROM o WHERE ${GROUP_LOGGED} = ?;\n` +
    'COMMIT';
  return { sql, values };
}

/** The session variable that carries the group's event insert count to its outbox insert. */
const GROUP_LOGGED = '@etp_group_logged';

/**
 * Writes one group and returns how many event logs were inserted (= items whose trigger check passed):
 * one round trip when every trigger of the group is current, two when one is not. On any error the
 * transaction is rolled back before the connection goes back to the pool (a failed statement in a
 * multi-statement query leaves the transaction open); a connection whose rollback fails is destroyed instead.
 */
export async function writeWebhookGroup(pool: MultiPool, items: WebhookEventWrite[]): Promise<number> {
  const guarded = await writeGroupScript(pool, webhookGroupSql(items));
  if (guarded === items.length) return guarded;
  // A trigger of the group changed since the API cached it: nothing was written; each item is checked on its own.
  return writeGroupScript(pool, webhookCheckedGroupSql(items));
}

/**
 * One group script (webhookGroupSql or webhookCheckedGroupSql) in one round trip: the affected rows of its event
 * insert (the script's second statement).
 */
export async function writeGroupScript(pool: MultiPool, { sql, values }: { sql: string; values: unknown[] }): Promise<number> {
  const conn = await pool.getConnection();
  try {
    const [results] = (await conn.query(sql, quotedText(values) as Knex.RawBinding[])) as unknown as [Array<{ affectedRows: number }>];
    conn.release();
    return results[1]!.affectedRows;
  } catch (e) {
    try {
      await conn.query('ROLLBACK');
      conn.release();
    } catch {
      conn.destroy();
    }
    throw e;
  }
}

/** Which of these event ids are logged (after an ambiguous failure, or to tell stale items from inserted ones). */
export async function loggedEventIds(pool: MultiPool, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const [rows] = (await pool.query(`SELECT id FROM event_logs WHERE id IN (${ids.map(() => '?').join(',')})`, ids)) as unknown as [
    Array<{ id: string }>,
  ];
  return new Set(rows.map((r) => r.id));
}
