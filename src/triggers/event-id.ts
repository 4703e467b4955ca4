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

/** Throws unless `ms` fits a UUID's 48-bit Unix millisecond time field. */
function checkUuidTime(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0 || ms >= 2 ** 48) throw new RangeError(`time out of range for a UUID: ${ms}`);
}

/** Writes the 48-bit Unix millisecond time `ms` big-endian into b[0..5], and the version and variant bits. */
function stamp(b: Buffer, ms: number, version: 7 | 8): Buffer {
  checkUuidTime(ms);
  b.writeUIntBE(ms, 0, 6);
  b[6] = (b[6]! & 0x0f) | (version << 4);
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

/**
 * The id of the event for `triggerId`'s occurrence scheduled at `scheduledFor`: version 8, the scheduled
 * millisecond first, then 74 bits of SHA-1(namespace, `triggerId|ISO instant`).
 *
 * A relay computes one per fired event (tens of thousands a second in a burst, most of a batch sharing its
 * instant), so the work that depends on the instant alone (its ISO text, the id's time digits) is done once
 * per instant, the name is hashed from one reused buffer, and the id is cut from the hash's hex digits:
 * about a third of the CPU of building it from Buffers each time, and the same ids (test/unit/event-id.test.ts).
 */
export function scheduledEventId(triggerId: string, scheduledFor: Date): string {
  const instant = scheduledInstant(scheduledFor);
  // A UTF-16 unit is at most 3 bytes of UTF-8: room for the whole name, so write() never truncates it.
  const most = OUR_NAMESPACE_BYTES.length + 3 * triggerId.length + 1 + instant.iso.length;
  if (most > nameBuffer.length) nameBuffer = namespacedBuffer(2 * most);
  let end = OUR_NAMESPACE_BYTES.length + nameBuffer.write(triggerId, OUR_NAMESPACE_BYTES.length, 'utf8');
  nameBuffer[end++] = 0x7c; // '|'
  end += nameBuffer.write(instant.iso, end, 'latin1'); // ISO text is ASCII
  const h = sha1Hex(nameBuffer.subarray(0, end));
  // Hex digits 0–12 are the time and the version (instant.head); 13–15 the hash's; digit 16 keeps the
  // hash's two low bits under the variant bits 10; then the hash's again.
  return `${instant.head}${h.slice(13, 16)}-${VARIANT_DIGIT[parseInt(h[16]!, 16)]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A hex digit's two low bits under the variant bits 10 (RFC 9562): 8, 9, a or b. */
const VARIANT_DIGIT = '89ab89ab89ab89ab';

/*
 * nameBuffer and lastInstant are module-level on purpose: a scratch buffer and a one-entry memo, not state of
 * the process. scheduledEventId stays a pure function (the same occurrence gives the same id, whatever was
 * asked before), and it is synchronous, so no two calls share the buffer at once.
 */

/** The namespace bytes, then room for the name: reused by every scheduledEventId call. */
let nameBuffer = namespacedBuffer(256);

function namespacedBuffer(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  OUR_NAMESPACE_BYTES.copy(b, 0);
  return b;
}

/** The last instant's ISO text and the id's first 13 hex digits with their dashes (time, version 8). */
let lastInstant = { ms: NaN, iso: '', head: '' };

function scheduledInstant(at: Date): { iso: string; head: string } {
  const ms = at.getTime();
  if (ms === lastInstant.ms) return lastInstant;
  const iso = at.toISOString(); // throws for an invalid date, as before (NaN is never remembered)
  checkUuidTime(ms);
  const t = ms.toString(16).padStart(12, '0');
  lastInstant = { ms, iso, head: `${t.slice(0, 8)}-${t.slice(8, 12)}-8` };
  return lastInstant;
}

/**
 * SHA-1 of `data` as hex, in one call where Node has crypto.hash (20.12 on): a relay hashes every fired
 * event's id, and a Hash object per id (createHash, two updates, digest) cost about twice as much as the hashing.
 */
const sha1Hex: (data: Buffer) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha1', data, 'hex')
    : (data) => crypto.createHash('sha1').update(data).digest('hex');

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
