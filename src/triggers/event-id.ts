/**
 * Event ids: UUID strings whose first 48 bits are a time in Unix milliseconds (RFC 9562 layout), so ids
 * sort by time and the event_logs primary key, its clustered index, grows at its end: an insert, a status
 * update and a retention delete each touch the few pages of recent (or oldest) events instead of a random
 * page of the whole history.
 *  - A scheduled firing's id is version 8: the scheduled instant, then bits of the SHA-1 of the trigger id
 *    and that instant (in this project's namespace). However often a relay retries an occurrence it yields
 *    the same id: one event log row (primary key) and an id consumers can de-duplicate on.
 *  - Every other event (webhook, test run, replay) gets a version 7 id: the current time, then random bits.
 * Ids written before this scheme (v4 random, v5 name-based) stay valid everywhere; they only sort randomly.
 */
import * as crypto from 'node:crypto';

/** This project's namespace for scheduled ids. Fixed forever: changing it changes every scheduled event id. */
export const EVENT_ID_NAMESPACE = '9adebaab-8b0d-4bad-ac0d-bf0c1127a1e8';

/** Parsed once: every scheduled firing hashes it (a relay fires tens of thousands a second in a burst). */
const OUR_NAMESPACE_BYTES = Buffer.from(EVENT_ID_NAMESPACE.replace(/-/g, ''), 'hex');

function format(b: Buffer): string {
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Writes the 48-bit Unix millisecond time `ms` big-endian into b[0..5], and the version and variant bits. */
function stamp(b: Buffer, ms: number, version: 7 | 8): Buffer {
  if (!Number.isSafeInteger(ms) || ms < 0 || ms >= 2 ** 48) throw new RangeError(`time out of range for a UUID: ${ms}`);
  b.writeUIntBE(ms, 0, 6);
  b[6] = (b[6]! & 0x0f) | (version << 4);
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

/**
 * The id of the event for `triggerId`'s occurrence scheduled at `scheduledFor`: version 8, the scheduled
 * millisecond first, then 74 bits of SHA-1(namespace, `triggerId|ISO instant`).
 */
export function scheduledEventId(triggerId: string, scheduledFor: Date): string {
  const name = `${triggerId}|${scheduledFor.toISOString()}`;
  const data = Buffer.allocUnsafe(OUR_NAMESPACE_BYTES.length + Buffer.byteLength(name, 'utf8'));
  OUR_NAMESPACE_BYTES.copy(data, 0);
  data.write(name, OUR_NAMESPACE_BYTES.length, 'utf8');
  return format(stamp(sha1(data).subarray(0, 16), scheduledFor.getTime(), 8));
}

/**
 * SHA-1 of `data` in one call where Node has crypto.hash (20.12 on): a relay hashes every fired event's id,
 * and a Hash object per id (createHash, two updates, digest) cost about twice as much as the hashing.
 */
const sha1: (data: Buffer) => Buffer =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha1', data, 'buffer')
    : (data) => crypto.createHash('sha1').update(data).digest();

/** Random bytes are drawn in blocks: one call into the CSPRNG per 256 ids instead of one per id. */
const RANDOM_BLOCK = 16 * 256;
let random = Buffer.alloc(0);
let randomAt = RANDOM_BLOCK;

/** A time-ordered random (version 7) event id, for webhook firings, test runs and replays. */
export function newEventId(now: number = Date.now()): string {
  if (randomAt >= random.length) {
    random = crypto.randomFillSync(Buffer.allocUnsafe(RANDOM_BLOCK));
    randomAt = 0;
  }
  const b = Buffer.from(random.subarray(randomAt, randomAt + 16));
  randomAt += 16;
  return format(stamp(b, now, 7));
}

/**
 * A new trigger's id: version 7 as well. Every trigger-keyed index (idx_events_trigger_status_fired, the
 * per-trigger rollups, the schedule rows' unique key) then receives a new trigger's entries at its end, next
 * to the other recent ones, instead of on a random page of a history-sized index: a burst of new triggers
 * costs no more random reads on a full database than on an empty one. Older v4 trigger ids stay valid.
 */
export function newTriggerId(now: number = Date.now()): string {
  return newEventId(now);
}

/** The Unix millisecond time in a version 7 or 8 id's first 48 bits; null for other versions (v4, v5). */
export function eventIdTime(id: string): number | null {
  const v = id[14];
  if (v !== '7' && v !== '8') return null;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
