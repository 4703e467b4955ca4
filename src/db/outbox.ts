import type { Knex } from 'knex';
import type { OutgoingMessage } from '../kafka/producer';
import { errorText } from './errors';
import { statementOn, type RawQuery, type RunStatement, type Statement } from './multi';
import { chunksBySize, ROW_BASE_BYTES, STATEMENT_MAX_BYTES } from './packets';
import { dbSettings, dbTime, parseJson, rowsByKeys } from './knex';

type Q = Knex | Knex.Transaction;

export interface OutboxInsert {
  event_id: string;
  message: OutgoingMessage;
  available_at: Date;
}

/**
 * The state of an outbox row, kept in the column `published` (a TINYINT: its historical name, see
 * docs/decisions/outbox-row-state.md). A number because the claim index orders by it:
 * idx_outbox_shard_claim (shard, published, id) puts a shard's ready rows right before its fence, so a
 * claim that reads all of them stops on its own fence; waiting rows sort after both. A published row is
 * deleted, so no state means "published".
 */
export const OutboxState = {
  /** Ready to publish: what the claims read. */
  Ready: 0,
  /** A shard's fence row (event_id SHARD_FENCE): never published, never counted as queued. */
  Fence: 1,
  /** Waiting for available_at (a delivery retry, a deferral, a failed publish in unordered mode): see promoteDue. */
  Waiting: 2,
} as const;
export type OutboxState = (typeof OutboxState)[keyof typeof OutboxState];

/**
 * OUTBOX_SHARDS of a database handle: fixed when the handle is made (createDb, from the config) and shared
 * by its transactions, so every writer of the outbox through it agrees without passing the count along.
 * Every process must agree on it too: a row's shard is fixed when it is written. Changing it needs an
 * empty outbox (stop writers, drain, restart all with the new value).
 */
export function outboxShardsOf(q: Q): number {
  return dbSettings(q).outboxShards;
}

/** FNV-1a of the message key (the trigger id) mod the shard count: one trigger, one shard. */
export function shardOf(key: string | null, shards: number): number {
  let h = 0x811c9dc5;
  const s = key ?? '';
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}

export async function insertOutbox(q: Q, rows: OutboxInsert[], now: Date): Promise<void> {
  for (const { sql, values } of insertOutboxStatements(rows, now, outboxShardsOf(q))) await q.raw(sql, values);
}

/**
 * The INSERTs of `rows` into the outbox, each with its key's shard of `shards` (as text rather than knex's
 * builder: see insertEvents): one statement, or several where large messages would pass STATEMENT_MAX_BYTES
 * (db/packets.ts). None for no rows.
 */
export function insertOutboxStatements(rows: OutboxInsert[], now: Date, shards: number): OutboxStatement[] {
  const nowText = dbTime(now);
  const statements: OutboxStatement[] = [];
  for (const { items: chunk, bytes } of chunksBySize(rows, outboxRowBytes, STATEMENT_MAX_BYTES)) {
    const values: Knex.RawBinding[] = [];
    for (const r of chunk) {
      const m = r.message;
      values.push(
        r.event_id,
        m.topic,
        m.key,
        shardOf(m.key, shards),
        m.value,
        JSON.stringify(m.headers),
        r.available_at.getTime() === now.getTime() ? nowText : dbTime(r.available_at),
        r.available_at.getTime() > now.getTime() ? OutboxState.Waiting : OutboxState.Ready,
        nowText,
      );
    }
    statements.push({ sql: insertOutboxSql(chunk.length), values, bytes });
  }
  return statements;
}

/** One INSERT of insertOutboxStatements, about `bytes` of text. */
interface OutboxStatement extends Statement {
  values: Knex.RawBinding[];
  bytes: number;
}

/** At most what an outbox row adds to its INSERT's text: the message value goes as hex (two characters a byte). */
function outboxRowBytes(r: OutboxInsert): number {
  return ROW_BASE_BYTES + 2 * r.message.value.length + 3;
}

const OUTBOX_COLUMNS = 'event_id, topic, msg_key, shard, value, headers, available_at, published, created_at';

/** Placeholders only: every value is bound. */
function insertOutboxSql(n: number): string {
  return `INSERT INTO outbox (${OUTBOX_COLUMNS}) VALUES ${Array.from({ length: n }, () => '(?,?,?,?,?,?,?,?,?)').join(',')}`;
}

export interface ClaimedOutbox {
  id: number;
  event_id: string;
  message: OutgoingMessage;
  attempts: number;
  shard: number;
  /** The message's size in bytes as stored. */
  valueBytes: number;
  /** The message was too large to come with the claim (OUTBOX_INLINE_MAX_BYTES): `message.value` is empty until boundedBatch's read fills it. */
  unread?: true;
}

type OutboxDbRow = {
  id: number;
  event_id: string;
  topic: string;
  msg_key: string | null;
  shard: number;
  value: Buffer | null;
  value_bytes: number;
  headers: string | null;
  attempts: number;
};

const NO_VALUE = Buffer.alloc(0);

function fromDb(r: OutboxDbRow): ClaimedOutbox {
  return {
    id: Number(r.id),
    event_id: r.event_id,
    attempts: r.attempts,
    shard: Number(r.shard),
    valueBytes: Number(r.value_bytes),
    ...(r.value === null ? { unread: true as const } : {}),
    message: { topic: r.topic, key: r.msg_key, value: r.value ?? NO_VALUE, headers: parseJson<Record<string, string>>(r.headers) ?? {} },
  };
}

/**
 * The largest message an outbox claim reads with its rows (bytes). A larger one (up to about 1 MB, the
 * payload limit) stays on the server: the claim reads its size, and the batch reads those it publishes
 * afterwards (boundedBatch), so a claim of RELAY_BATCH_SIZE rows holds at most that many × 16 KiB.
 */
export const OUTBOX_INLINE_MAX_BYTES = 16_384;
/** The most message bytes one publish batch holds and produces; the first row always goes. */
export const OUTBOX_BATCH_MAX_BYTES = 32 * 1024 * 1024;
/** The claim statements' columns: the message only when small, and its size. */
const CLAIM_COLUMNS = `id, event_id, topic, msg_key, shard, IF(LENGTH(value) <= ${OUTBOX_INLINE_MAX_BYTES}, value, NULL) AS value,
      LENGTH(value) AS value_bytes, headers, attempts`;

/**
 * The claimed rows a publish batch takes (pure): the longest prefix, in claim order, whose messages come to
 * at most `maxBytes` (the first row always). A prefix keeps each shard's id order: the rows after the cut
 * stay ready, locked until the commit, and the next batch claims them. `unread`: the ids of the prefix's
 * messages to read before producing.
 */
export function boundedBatch(
  rows: ClaimedOutbox[],
  maxBytes = OUTBOX_BATCH_MAX_BYTES,
): { rows: ClaimedOutbox[]; cut: boolean; unread: number[] } {
  const kept = chunksBySize(rows, (r) => r.valueBytes, maxBytes)[0]?.items ?? [];
  return { rows: kept, cut: kept.length < rows.length, unread: kept.filter((r) => r.unread).map((r) => r.id) };
}

/**
 * A publish batch of claimed rows (boundedBatch) with its large messages read, over any transport (`run`
 * sends one statement in the claim's transaction and returns its rows). `cut`: rows were left for the next batch.
 */
export async function readBoundedBatch(rows: ClaimedOutbox[], run: RunStatement): Promise<{ rows: ClaimedOutbox[]; cut: boolean }> {
  const batch = boundedBatch(rows);
  if (batch.unread.length > 0)
    withOutboxValues(batch.rows, (await run(readOutboxValuesStatement(batch.unread))) as Array<{ id: number; value: Buffer }>);
  return batch;
}

/** The statement that reads the messages of `ids` (boundedBatch's `unread`), rows the claim has locked. */
export function readOutboxValuesStatement(ids: number[]): { sql: string; values: Knex.RawBinding[] } {
  return { sql: `SELECT id, value FROM outbox WHERE id IN (${ids.map(() => '?').join(',')})`, values: ids };
}

/** Fills the unread messages of `rows` from the rows of readOutboxValuesStatement. */
export function withOutboxValues(rows: ClaimedOutbox[], read: Array<{ id: number; value: Buffer }>): void {
  const values = new Map(read.map((r) => [Number(r.id), r.value]));
  for (const row of rows) {
    if (!row.unread) continue;
    const value = values.get(row.id);
    if (!value) throw new Error(`outbox row ${row.id}: its message could not be read after the claim`);
    row.message.value = value;
    delete row.unread;
  }
}

/**
 * Claims ready rows in id order. idx_outbox_claim (published, id) gives the order without a sort; rows
 * that must wait (a delivery retry's future available_at) are Waiting until promoteDue() moves
 * them, so the claim never walks past them. SKIP LOCKED: relays never wait for each other.
 */
export async function claimUnpublished(trx: Knex.Transaction, limit: number): Promise<ClaimedOutbox[]> {
  const { sql, values } = claimUnpublishedStatement(limit);
  const [rows] = (await trx.raw(sql, values)) as [OutboxDbRow[]];
  return claimedOf(rows);
}

/** claimUnpublished's statement. */
export function claimUnpublishedStatement(limit: number): { sql: string; values: Knex.RawBinding[] } {
  return {
    sql: `SELECT ${CLAIM_COLUMNS} FROM outbox
      WHERE published = ?
      ORDER BY id
      LIMIT ? FOR UPDATE SKIP LOCKED`,
    values: [OutboxState.Ready, limit],
  };
}

/** Claimed rows as the publisher uses them, from the rows of a claim statement. */
export function claimedOf(rows: unknown[]): ClaimedOutbox[] {
  return (rows as OutboxDbRow[]).map(fromDb);
}

/**
 * The ordered claim: only rows of the shards this relay holds a lease on, each shard in id order. One
 * range scan of idx_outbox_shard_claim (shard, published, id) over `shard IN (…) AND published = Ready` in
 * (shard, id) order: no sort, and no row of another relay's shard is read or locked (the record past each
 * shard's range is that shard's own fence, see ensureShardFences). No SKIP LOCKED: the lease (verified in
 * this transaction) makes this relay the only claimer of these rows, and skipping one would let the rows
 * behind it overtake it.
 *
 * Fairness comes from rotation rather than per-shard quotas: the scan starts at `cursor.next` and wraps
 * around, and the cursor moves past the last shard this batch reached. A hot shard gets at most one batch
 * per turn, and every other shard with rows gets its turn within a few batches. Why one scan and not a
 * part per shard: docs/decisions/ordered-claim-range-scan.md.
 *
 * `full` says the batch was filled, so the caller should claim again at once.
 */
export async function claimUnpublishedInShards(
  trx: Knex.Transaction,
  limit: number,
  shards: number[],
  cursor: { next: number } = { next: 0 },
): Promise<{ rows: ClaimedOutbox[]; full: boolean }> {
  return claimInShards(statementOn(trx), limit, shards, cursor);
}

/**
 * The ordered claim over any transport (`run` sends one statement in the claim's transaction and returns its
 * rows): the part from `cursor.next` on, then, only while the batch is short, the part before it.
 */
export async function claimInShards(
  run: RunStatement,
  limit: number,
  shards: number[],
  cursor: { next: number },
): Promise<{ rows: ClaimedOutbox[]; full: boolean }> {
  if (shards.length === 0) return { rows: [], full: false };
  const rows: ClaimedOutbox[] = [];
  for (const part of [shards.filter((s) => s >= cursor.next), shards.filter((s) => s < cursor.next)]) {
    if (part.length === 0 || rows.length >= limit) continue;
    rows.push(...claimedOf(await run(claimShardsStatement(part, limit - rows.length))));
  }
  if (rows.length > 0) cursor.next = rows[rows.length - 1]!.shard + 1;
  return { rows, full: rows.length >= limit };
}

/**
 * One part of the ordered claim. Named index: whatever the statistics say (an outbox grows from empty fast),
 * the scan must read and lock only these shards' rows; on (published, id) an ORDER BY id LIMIT would lock
 * other shards'.
 */
export function claimShardsStatement(shards: number[], limit: number): { sql: string; values: Knex.RawBinding[] } {
  return {
    sql: `SELECT ${CLAIM_COLUMNS} FROM outbox FORCE INDEX (idx_outbox_shard_claim)
        WHERE shard IN (?) AND published = ? ORDER BY shard, id LIMIT ? FOR UPDATE`,
    values: [shards, OutboxState.Ready, limit] as unknown as Knex.RawBinding[],
  };
}

/** event_id of a shard's fence row (see ensureShardFences). */
export const SHARD_FENCE = 'shard-fence';

/**
 * One fence row per shard (Fence), which sorts right after the shard's ready rows (Ready)
 * in idx_outbox_shard_claim (shard, published, id). A locking range scan in InnoDB also locks the first
 * record past its range; with a fence that record is the shard's own, locked only by the shard's owner, so
 * a claim never locks or waits for a neighbouring shard's row (docs/decisions/shard-fences.md). Nothing else
 * reads Fence rows. Idempotent; a race between relays can add a second fence to a shard, which is harmless.
 */
export async function ensureShardFences(q: Q, shards: number): Promise<void> {
  const have = (await q('outbox').distinct('shard').where({ published: OutboxState.Fence, event_id: SHARD_FENCE })) as Array<{
    shard: number;
  }>;
  const fenced = new Set(have.map((r) => Number(r.shard)));
  const missing = Array.from({ length: shards }, (_, s) => s).filter((s) => !fenced.has(s));
  if (missing.length === 0) return;
  const now = new Date();
  await q('outbox').insert(
    missing.map((shard) => ({
      event_id: SHARD_FENCE,
      topic: '',
      msg_key: null,
      shard,
      value: Buffer.alloc(0),
      headers: null,
      available_at: new Date(1000),
      published: OutboxState.Fence,
      created_at: now,
    })),
  );
}

/**
 * A delivered row leaves the outbox: it is deleted in the transaction that records the publish. The event
 * log keeps when it was published. A delete costs InnoDB one delete-mark per index and leaves nothing to
 * clean up (docs/decisions/delete-on-publish.md).
 */
export async function markPublished(trx: Knex.Transaction, rows: ClaimedOutbox[], now: Date): Promise<void> {
  for (const { sql, values } of markPublishedStatements(rows, now)) await trx.raw(sql, values);
}

/**
 * A publish batch's outbox rows (`o`) and its events (`e`), each by its primary key (rowsByKeys). An outbox
 * drains as it goes, so its statistics are mostly an empty table's: a plain `WHERE id IN (…)` of a batch's
 * ids was planned as a scan, two publish lanes' deletes waited on each other's claimed rows and deadlocked,
 * and the victim's delivered rows had to be marked again in a transaction of their own.
 */
const BATCH_ROWS = rowsByKeys('outbox', 'o', 'bigint');
const BATCH_EVENTS = rowsByKeys('event_logs', 'e', 'eventId');

/** markPublished's statements (none for no rows): the rows deleted, their events stamped. */
export function markPublishedStatements(rows: ClaimedOutbox[], now: Date): Array<{ sql: string; values: Knex.RawBinding[] }> {
  if (rows.length === 0) return [];
  return [
    { sql: `DELETE o FROM ${BATCH_ROWS}`, values: [JSON.stringify(rows.map((r) => r.id))] },
    // Only the first publish of an event moves it to `published` (delivery retries reuse the outbox).
    {
      sql: `UPDATE ${BATCH_EVENTS}
             SET e.published_at = ?, e.execution_status = IF(e.execution_status = 'pending', 'published', e.execution_status), e.updated_at = ?
             WHERE e.published_at IS NULL`,
      values: [JSON.stringify([...new Set(rows.map((r) => r.event_id))]), now, now] as unknown as Knex.RawBinding[],
    },
  ];
}

/** Records a failed publish. retryAt null keeps the row where it is (ordered mode: the shard waits instead). */
export async function markFailed(trx: Knex.Transaction, ids: number[], error: string, retryAt: Date | null): Promise<void> {
  if (ids.length === 0) return;
  const { sql, values } = markFailedStatement(ids, error, retryAt);
  await trx.raw(sql, values);
}

/** markFailed's statement. */
export function markFailedStatement(ids: number[], error: string, retryAt: Date | null): { sql: string; values: Knex.RawBinding[] } {
  return retryAt
    ? {
        sql: `UPDATE ${BATCH_ROWS} SET o.attempts = o.attempts + 1, o.last_error = ?, o.available_at = ?, o.published = ?`,
        values: [JSON.stringify(ids), errorText(error), retryAt, OutboxState.Waiting] as unknown as Knex.RawBinding[],
      }
    : {
        sql: `UPDATE ${BATCH_ROWS} SET o.attempts = o.attempts + 1, o.last_error = ?`,
        values: [JSON.stringify(ids), errorText(error)] as unknown as Knex.RawBinding[],
      };
}

/**
 * Moves waiting rows whose time has come into the ready range (Waiting → Ready), in bounded batches, via
 * idx_outbox_waiting (published, available_at). Idempotent: several relays may run it at once. With
 * `shards` (ordered mode) only those shards' rows move: a relay promotes the shards it leases, so it never
 * takes locks on rows in another relay's claim range (promoting across shards deadlocked with claims).
 */
export async function promoteDue(q: Q, limit = 1000, shards?: number[]): Promise<number> {
  if (shards && shards.length === 0) return 0;
  // Named index: on idx_outbox_waiting the scan is in available_at order and stops after `limit` rows (of
  // these shards); given a shard list MariaDB would otherwise sort every waiting row of those shards
  // (docs/decisions/outbox-named-indexes.md).
  const sql =
    'UPDATE outbox FORCE INDEX (idx_outbox_waiting) SET published = ? WHERE published = ? AND available_at <= UTC_TIMESTAMP(3)' +
    (shards ? ' AND shard IN (?)' : '') +
    ' ORDER BY available_at LIMIT ?';
  const [res] = (await q.raw(sql, [OutboxState.Ready, OutboxState.Waiting, ...(shards ? [shards] : []), limit])) as [
    { affectedRows: number },
  ];
  return res.affectedRows;
}

/**
 * Which of `shards` still have rows to publish (ready or waiting). The direct fire path sends a due event
 * past the outbox only when its trigger's shard has nothing queued, so it never overtakes an older event
 * of the same trigger (a manual test run, a replay) that is still in the outbox.
 */
export async function shardsWithBacklog(q: Q, shards: number[]): Promise<Set<number>> {
  if (shards.length === 0) return new Set();
  // Usually the outbox holds nothing queued at all (scheduled events bypass it): one probe of
  // idx_outbox_claim says so, cheaper than the per-shard statement below in every fire transaction.
  const [any] = (await q.raw(ANY_QUEUED.sql, ANY_QUEUED.values)) as [unknown[]];
  if (any.length === 0) return new Set();
  const { sql, values } = queuedShardsStatement(shards);
  const [rows] = (await q.raw(sql, values)) as [unknown[]];
  return queuedShardsOf(rows);
}

/** The shards with queued rows, from the rows of queuedShardsStatement. */
export function queuedShardsOf(rows: unknown[]): Set<number> {
  return new Set((rows as Array<{ shard: number }>).map((r) => Number(r.shard)));
}

/** Whether the outbox holds any queued row at all (a row back means yes): one dive into idx_outbox_claim. Fences never match. */
export const ANY_QUEUED = {
  sql: 'SELECT id FROM outbox FORCE INDEX (idx_outbox_claim) WHERE published IN (?, ?) LIMIT 1',
  values: [OutboxState.Ready, OutboxState.Waiting] as Knex.RawBinding[],
};

/**
 * Which of `shards` hold queued rows: a loose index scan of idx_outbox_shard_claim per state ("Using index
 * for group-by"), one dive per shard and state, not a read of every queued row
 * (docs/decisions/outbox-named-indexes.md).
 */
export function queuedShardsStatement(shards: number[]): { sql: string; values: Knex.RawBinding[] } {
  return {
    sql: `SELECT DISTINCT shard FROM outbox FORCE INDEX (idx_outbox_shard_claim) WHERE shard IN (?) AND published = ?
     UNION SELECT DISTINCT shard FROM outbox FORCE INDEX (idx_outbox_shard_claim) WHERE shard IN (?) AND published = ?`,
    values: [shards, OutboxState.Ready, shards, OutboxState.Waiting] as unknown as Knex.RawBinding[],
  };
}

/**
 * An idle publish lane's one question, without a transaction or a lock: is any row ready to publish, and
 * has any waiting row (a retry, a deferral) come due for promotion — in `shards`, or anywhere when null.
 * Two index dives in one statement. Each names its index: on (published, id) MariaDB would walk other
 * shards' ready rows to find one of these.
 */
export async function probeOutbox(q: Q | RawQuery, shards: number[] | null): Promise<{ ready: boolean; due: boolean }> {
  const inShards = shards ? ' AND shard IN (?)' : '';
  const sql =
    `SELECT EXISTS (SELECT id FROM outbox FORCE INDEX (${shards ? 'idx_outbox_shard_claim' : 'idx_outbox_claim'})` +
    ` WHERE published = ?${inShards}) AS ready,` +
    ` EXISTS (SELECT id FROM outbox FORCE INDEX (idx_outbox_waiting) WHERE published = ? AND available_at <= UTC_TIMESTAMP(3)${inShards}) AS due`;
  const bindings = shards ? [OutboxState.Ready, shards, OutboxState.Waiting, shards] : [OutboxState.Ready, OutboxState.Waiting];
  const [rows] = (await q.raw(sql, bindings)) as [Array<{ ready: number; due: number }>];
  return { ready: Number(rows[0]?.ready) === 1, due: Number(rows[0]?.due) === 1 };
}

/** Rows ready to publish (the etp_outbox_backlog gauge). */
export async function countReady(q: Q): Promise<number> {
  const [rows] = (await q.raw('SELECT COUNT(*) AS n FROM outbox WHERE published = ?', [OutboxState.Ready])) as [Array<{ n: number }>];
  return Number(rows[0]?.n ?? 0);
}

/**
 * The worker's waiting follow-up of an event (a retry or a deferral: Waiting), found without an
 * index on event_id: its available_at is the event's next_attempt_at, so it is one key of
 * idx_outbox_waiting (published, available_at) — a handful of rows at most — checked for the event id.
 * Makes it Ready now (as promoteDue would at its time): the same message, so the attempt
 * keeps its number and is made once. Returns whether a waiting row was moved; none when the relay has
 * promoted or published it already (the attempt is on its way).
 */
export async function releaseWaiting(trx: Knex.Transaction, eventId: string, dueAt: Date, now: Date): Promise<boolean> {
  const [res] = (await trx.raw(
    'UPDATE outbox FORCE INDEX (idx_outbox_waiting) SET published = ?, available_at = ? WHERE published = ? AND available_at = ? AND event_id = ?',
    [OutboxState.Ready, now, OutboxState.Waiting, dueAt, eventId],
  )) as [{ affectedRows: number }];
  return res.affectedRows > 0;
}

/**
 * Deletes an event's waiting follow-up (found as releaseWaiting finds it): a cancelled event's. (No index
 * hint: single-table DELETE takes none; the equality on both columns of idx_outbox_waiting is its key.)
 */
export async function deleteWaiting(trx: Knex.Transaction, eventId: string, dueAt: Date): Promise<number> {
  const [res] = (await trx.raw('DELETE FROM outbox WHERE published = ? AND available_at = ? AND event_id = ?', [
    OutboxState.Waiting,
    dueAt,
    eventId,
  ])) as [{ affectedRows: number }];
  return res.affectedRows;
}
