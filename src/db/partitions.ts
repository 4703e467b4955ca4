/**
 * The time slices of event_logs, delivery_attempts and event_replays (migration
 * 20261205000004_event_partitions.ts): RANGE COLUMNS partitions of the event id, four hours of the id's time
 * each. Ids are time-ordered, so an id's first 12 hex digits place it in time and a slice's bound is that
 * prefix. The relays' sweep keeps the slices (PartitionKeeper.maintain):
 *
 * - **Ahead**: slices exist up to SLICES_AHEAD past now, split off p_later, which is empty in the normal run
 *   (after relays were down longer than that, the split copies what p_later took meanwhile, once).
 * - **Retire**: the oldest slice whose whole range is older than the retention window, in five steps that
 *   never lose a row and never hold a lock for long:
 *   1. its rows are swapped out to an empty table `<table>_retiring` (EXCHANGE PARTITION: metadata only);
 *   2. the rows of that table still inside the window are put back (normally none: an occurrence fired
 *      days late keeps its scheduled time in its id and so sits in an old slice);
 *   3. `<table>_retiring` is dropped (its file deleted, with no lock on the live table);
 *   4. the emptied slice is merged into p_late (REORGANIZE of p_late and the slice: copies only the rows
 *      they hold, which are the few put back or fired late). A row that arrives in the slice between step 1
 *      and step 4 is copied too, so none is lost. While p_late holds more than LATE_MERGE_MAX_ROWS (after an
 *      outage of days), the slice is renamed to a retired slice `r<yyyymmddhh>` instead, kept beside p_late
 *      until a later retirement merges them all (mergeLate).
 *   Attempts and replay rows are retired the same way after their events; the rows put back there are
 *   those whose event still exists.
 * - p_late, the retired slices, p_later and p_legacy are never retired: their rows (late occurrences, rows
 *   older than the layout, version 4 ids) are deleted one by one by deleteBefore once past the window and a
 *   slice's width.
 *
 * One relay at a time changes partitions (a lease row in maintenance_leases, on the database's clock), and
 * every DDL statement waits at most LOCK_WAIT_SECONDS for the table's metadata lock: a long read delays the
 * step to a later sweep rather than queueing the table's writers behind it.
 */
import type { Knex } from 'knex';

type Q = Knex | Knex.Transaction;

export const SLICE_MS = 4 * 3600_000;
/** Slices kept ready past now: 12 h. */
export const SLICES_AHEAD = 3;
/** A slice is retired when its end is this far before the window's start (a clock-skew margin). */
export const RETIRE_MARGIN_MS = 5 * 60_000;
const LOCK_WAIT_SECONDS = 2;
/**
 * The most rows p_late (with the retired slices beside it) may hold for a retirement to merge into it: the
 * copy then takes about a tenth of a second (about 120k rows/s measured on the bench's machine).
 */
export const LATE_MERGE_MAX_ROWS = 10_000;
const LEASE_SECONDS = 120;
/** How long a keeper trusts its copy of the layout before reading it again (another relay may have changed it). */
const LAYOUT_TTL_MS = 5 * 60_000;

/** The tables sliced alike, each by the column holding the event id; events first. */
export const SLICED_TABLES = [
  { table: 'event_logs', column: 'id' },
  { table: 'delivery_attempts', column: 'event_id' },
  { table: 'event_replays', column: 'event_id' },
] as const;
type SlicedTable = (typeof SLICED_TABLES)[number];

/** The bound text of instant `ms`: an id's first 12 hex digits, dashed as in the id ('019ae2c0-7a00'). */
export function idBound(ms: number): string {
  const h = Math.floor(ms).toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8)}`;
}

/** The instant of a bound written by idBound. */
export function boundTime(bound: string): number {
  return parseInt(bound.replace('-', ''), 16);
}

export function sliceName(startMs: number): string {
  return `p${new Date(startMs).toISOString().slice(0, 13).replace(/[-T]/g, '')}`;
}

const SLICE_NAME = /^p\d{10}$/;

export interface Slice {
  name: string;
  /** Start and end instants of the id times it holds (the start is the bound of the partition below). */
  start: number;
  end: number;
}

export interface Layout {
  /** The time slices, oldest first. */
  slices: Slice[];
}

/** The partitions of `table`, read from information_schema. */
export async function readLayout(q: Q, table: string): Promise<Layout> {
  const [rows] = (await q.raw(
    `SELECT PARTITION_NAME AS name, PARTITION_DESCRIPTION AS bound FROM information_schema.PARTITIONS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY PARTITION_ORDINAL_POSITION`,
    [table],
  )) as [Array<{ name: string | null; bound: string | null }>];
  const slices: Slice[] = [];
  let below: number | null = null;
  for (const r of rows) {
    const b = r.bound === null || r.bound === 'MAXVALUE' ? null : boundTime(r.bound.replace(/'/g, ''));
    if (r.name !== null && SLICE_NAME.test(r.name) && below !== null && b !== null) slices.push({ name: r.name, start: below, end: b });
    below = b;
  }
  return { slices };
}

export interface MaintainResult {
  created: number;
  retired: number;
  /** A slice is still due: call again at once. */
  more: boolean;
}

/**
 * Keeps the slices of one database; a relay holds one. Between changes it answers from its copy of the
 * layout, so a sweep with nothing to do costs no statement.
 */
export class PartitionKeeper {
  private layout: { newestEnd: number; oldestEnd: number; readAt: number } | null = null;

  constructor(private readonly owner: string) {}

  /** Creates the slices due by `now` and retires (at most `maxRetire`) whose range ended before `keepFrom`. */
  async maintain(db: Knex, now: number, keepFrom: number, maxRetire = 1): Promise<MaintainResult> {
    try {
      return await this.maintainOnce(db, now, keepFrom, maxRetire);
    } catch (e) {
      // Every step can be run again from where it stopped (a leftover <table>_retiring is put back first).
      if (isLockConflict(e)) return { created: 0, retired: 0, more: false };
      throw e;
    }
  }

  private async maintainOnce(db: Knex, now: number, keepFrom: number, maxRetire: number): Promise<MaintainResult> {
    const l = this.layout;
    const fresh = l !== null && now - l.readAt < LAYOUT_TTL_MS;
    if (fresh && l.newestEnd >= now + SLICES_AHEAD * SLICE_MS && l.oldestEnd > keepFrom - RETIRE_MARGIN_MS) {
      return { created: 0, retired: 0, more: false };
    }
    const done = await withPartitionLease(db, this.owner, async (c) => {
      const created = await ensureAhead(c, now);
      let retired = 0;
      // The lease is renewed before each slice, so a long catch-up never outlives it.
      while (retired < maxRetire && (await takeLease(db, this.owner)) && (await retireOldest(c, keepFrom - RETIRE_MARGIN_MS, keepFrom))) {
        retired++;
      }
      const events = await readLayout(c, 'event_logs');
      const oldest = events.slices[0];
      const more = oldest !== undefined && oldest.end <= keepFrom - RETIRE_MARGIN_MS;
      this.layout = { newestEnd: events.slices.at(-1)?.end ?? 0, oldestEnd: oldest?.end ?? Number.POSITIVE_INFINITY, readAt: now };
      return { created, retired, more };
    });
    return done ?? { created: 0, retired: 0, more: false };
  }
}

/** A lock wait (a metadata lock held past LOCK_WAIT_SECONDS) or deadlock: the step is left to a later sweep. */
function isLockConflict(e: unknown): boolean {
  const errno = (e as { errno?: unknown } | null)?.errno;
  return errno === 1205 || errno === 1213;
}

/**
 * Runs `fn` on one connection (each DDL in it commits on its own) while holding the partitions lease, with
 * short metadata-lock waits. Returns null when another relay holds the lease.
 */
export async function withPartitionLease<T>(db: Knex, owner: string, fn: (c: Knex.Transaction) => Promise<T>): Promise<T | null> {
  if (!(await takeLease(db, owner))) return null;
  try {
    return await db.transaction(async (c) => {
      await c.raw('SET SESSION lock_wait_timeout = ?', [LOCK_WAIT_SECONDS]);
      try {
        return await fn(c);
      } finally {
        await c.raw('SET SESSION lock_wait_timeout = DEFAULT');
      }
    });
  } finally {
    await releaseLease(db, owner);
  }
}

async function takeLease(db: Knex, owner: string): Promise<boolean> {
  const [res] = (await db.raw(
    `UPDATE maintenance_leases SET owner = ?, expires_at = UTC_TIMESTAMP(3) + INTERVAL ? SECOND
      WHERE name = 'partitions' AND (owner IS NULL OR owner = ? OR expires_at <= UTC_TIMESTAMP(3))`,
    [owner, LEASE_SECONDS, owner],
  )) as [{ affectedRows: number }];
  return res.affectedRows === 1;
}

async function releaseLease(db: Knex, owner: string): Promise<void> {
  await db.raw("UPDATE maintenance_leases SET owner = NULL, expires_at = '1970-01-01 00:00:01' WHERE name = 'partitions' AND owner = ?", [
    owner,
  ]);
}

/** Splits p_later into the slices missing up to now + SLICES_AHEAD, in every sliced table. Returns the slices made. */
export async function ensureAhead(c: Q, now: number): Promise<number> {
  let created = 0;
  const until = Math.floor(now / SLICE_MS) * SLICE_MS + (SLICES_AHEAD + 1) * SLICE_MS;
  for (const t of SLICED_TABLES) {
    const { slices } = await readLayout(c, t.table);
    const newest = slices.at(-1);
    if (newest === undefined) continue;
    const parts: string[] = [];
    const bindings: Array<string> = [t.table];
    for (let s = newest.end; s < until; s += SLICE_MS) {
      parts.push('PARTITION ?? VALUES LESS THAN (?)');
      bindings.push(sliceName(s), idBound(s + SLICE_MS));
    }
    if (parts.length === 0) continue;
    const sql = ['ALTER TABLE ?? REORGANIZE PARTITION p_later INTO (', parts.join(', '), ", PARTITION p_later VALUES LESS THAN ('02'))"];
    await c.raw(sql.join(' '), bindings);
    created += parts.length;
  }
  return created;
}

/**
 * Retires the oldest slice of each table whose end is at or before `cutoff`, events first; an attempts or
 * replay slice only once its events' slice is gone. Rows of event_logs fired at or after `keepFrom` are put
 * back. Returns whether a slice was retired.
 */
export async function retireOldest(c: Q, cutoff: number, keepFrom: number, lateMergeMax = LATE_MERGE_MAX_ROWS): Promise<boolean> {
  let any = false;
  let eventsFrom = 0;
  for (const t of SLICED_TABLES) {
    await rescueLeftover(c, t, keepFrom);
    const { slices } = await readLayout(c, t.table);
    const oldest = slices[0];
    if (t.table === 'event_logs') eventsFrom = oldest?.start ?? Number.POSITIVE_INFINITY;
    if (oldest === undefined || oldest.end > cutoff) continue;
    if (t.table !== 'event_logs' && oldest.end > eventsFrom) continue;
    await retireSlice(c, t, oldest, keepFrom, lateMergeMax);
    if (t.table === 'event_logs') eventsFrom = oldest.end;
    any = true;
  }
  return any;
}

async function retireSlice(c: Q, t: SlicedTable, slice: Slice, keepFrom: number, lateMergeMax: number): Promise<void> {
  const twin = `${t.table}_retiring`;
  await c.raw('CREATE TABLE ?? LIKE ??', [twin, t.table]);
  await c.raw('ALTER TABLE ?? REMOVE PARTITIONING', [twin]);
  await c.raw('ALTER TABLE ?? EXCHANGE PARTITION ?? WITH TABLE ??', [t.table, slice.name, twin]);
  await rescue(c, t, twin, keepFrom);
  await c.raw('DROP TABLE ??', [twin]);
  await mergeLate(c, t.table, slice, lateMergeMax);
}

/**
 * Step 4 of a retirement: the emptied slice leaves the slices. A REORGANIZE copies every row of the
 * partitions it names, with the table's writes waiting, so the slice is merged into p_late only while
 * p_late (and the retired slices kept beside it) hold at most `lateMergeMax` rows; otherwise it is renamed
 * to a retired slice (`r<yyyymmddhh>`, copying only its own few rows) and stays beside p_late until a later
 * retirement finds p_late small again and merges them all. p_late is large only after an outage of days
 * (occurrences fired late with fire_all); its rows leave row by row as they pass the window.
 */
async function mergeLate(c: Q, table: string, slice: Slice, lateMergeMax: number): Promise<void> {
  const late = await latePartitions(c, table);
  const bound = idBound(slice.end);
  if (await holdsAtMost(c, table, late, lateMergeMax)) {
    const names = [...late, slice.name];
    const sql = `ALTER TABLE ?? REORGANIZE PARTITION ${names.map(() => '??').join(', ')} INTO (PARTITION p_late VALUES LESS THAN (?))`;
    await c.raw(sql, [table, ...names, bound]);
    return;
  }
  await c.raw('ALTER TABLE ?? REORGANIZE PARTITION ?? INTO (PARTITION ?? VALUES LESS THAN (?))', [
    table,
    slice.name,
    retiredName(slice.name),
    bound,
  ]);
}

/** The name of a retired slice kept beside p_late: 'p2026120512' → 'r2026120512'. */
export function retiredName(sliceName: string): string {
  return `r${sliceName.slice(1)}`;
}

const RETIRED_NAME = /^r\d{10}$/;

/** p_late and the retired slices beside it, in order. */
export async function latePartitions(q: Q, table: string): Promise<string[]> {
  const [rows] = (await q.raw(
    `SELECT PARTITION_NAME AS name FROM information_schema.PARTITIONS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY PARTITION_ORDINAL_POSITION`,
    [table],
  )) as [Array<{ name: string | null }>];
  return rows.map((r) => r.name ?? '').filter((n) => n === 'p_late' || RETIRED_NAME.test(n));
}

/** Whether the partitions `names` of `table` hold at most `max` rows (reads at most max + 1 index entries). */
async function holdsAtMost(c: Q, table: string, names: string[], max: number): Promise<boolean> {
  const sql = `SELECT COUNT(*) AS n FROM (SELECT 1 FROM ?? PARTITION (${names.map(() => '??').join(', ')}) LIMIT ?) AS x`;
  const [[{ n }]] = (await c.raw(sql, [table, ...names, max + 1])) as [[{ n: number | string }]];
  return Number(n) <= max;
}

/** A `<table>_retiring` left by a job that stopped part-way: its rows still inside the window go back, then it goes. */
async function rescueLeftover(c: Q, t: SlicedTable, keepFrom: number): Promise<void> {
  const twin = `${t.table}_retiring`;
  const [rows] = (await c.raw('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [twin])) as [
    unknown[],
  ];
  if (rows.length === 0) return;
  await rescue(c, t, twin, keepFrom);
  await c.raw('DROP TABLE ??', [twin]);
}

/** Puts back the rows of `twin` that must stay: events fired at or after `keepFrom`; attempts and replay rows of events that exist. */
async function rescue(c: Q, t: SlicedTable, twin: string, keepFrom: number): Promise<void> {
  if (t.table === 'event_logs') {
    // Counted in the rollups when first written: the insert trigger must not count them again.
    await c.raw('SET @etp_events_counted = 1');
    try {
      // IGNORE: a job that stopped after this insert but before dropping the table put these rows back
      // already; they are copies of rows the table held, so a duplicate is the same row.
      await c.raw('INSERT IGNORE INTO event_logs SELECT * FROM ?? WHERE fired_at >= ?', [twin, new Date(keepFrom)]);
    } finally {
      await c.raw('SET @etp_events_counted = NULL');
    }
    return;
  }
  const [[span]] = (await c.raw('SELECT MIN(event_id) AS lo, MAX(event_id) AS hi FROM ??', [twin])) as [
    [{ lo: string | null; hi: string | null }],
  ];
  if (span.lo === null || span.hi === null) return;
  await c.raw('INSERT IGNORE INTO ?? SELECT x.* FROM event_logs e JOIN ?? x ON x.event_id = e.id WHERE e.id BETWEEN ? AND ?', [
    t.table,
    twin,
    span.lo,
    span.hi,
  ]);
}
