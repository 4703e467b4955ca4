/**
 * Event ids. A scheduled firing's id is a name-based (RFC 4122 version 5, SHA-1) UUID of the trigger id and
 * the scheduled instant, so however often a relay retries an occurrence it yields the same event id: one
 * event log row (primary key) and an id consumers can de-duplicate on. Other events get a random v4 id.
 */
import { createHash, randomUUID } from 'node:crypto';

/** This project's namespace for v5 ids. Fixed forever: changing it changes every scheduled event id. */
export const EVENT_ID_NAMESPACE = '9adebaab-8b0d-4bad-ac0d-bf0c1127a1e8';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function namespaceBytes(namespace: string): Buffer {
  if (!UUID_RE.test(namespace)) throw new TypeError(`not a UUID: ${namespace}`);
  return Buffer.from(namespace.replace(/-/g, ''), 'hex');
}

/** Parsed once: every scheduled firing hashes it (a relay fires tens of thousands a second in a burst). */
const OUR_NAMESPACE_BYTES = namespaceBytes(EVENT_ID_NAMESPACE);

/** RFC 4122 §4.3: SHA-1 of namespace bytes + name (UTF-8), version nibble 5, variant bits 10. */
export function uuidV5(name: string, namespace: string): string {
  const ns = namespace === EVENT_ID_NAMESPACE ? OUR_NAMESPACE_BYTES : namespaceBytes(namespace);
  const hash = createHash('sha1').update(ns).update(name, 'utf8').digest();
  const b = hash.subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The id of the event for `triggerId`'s occurrence scheduled at `scheduledFor` (name: `id|ISO instant`). */
export function scheduledEventId(triggerId: string, scheduledFor: Date): string {
  return uuidV5(`${triggerId}|${scheduledFor.toISOString()}`, EVENT_ID_NAMESPACE);
}

/** A random (v4) event id, for webhook firings and test runs. */
export function newEventId(): string {
  return randomUUID();
}
