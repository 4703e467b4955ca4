/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header, parsed and written
 * without the OpenTelemetry SDK. Pure functions and one small id source: this is all the platform runs per
 * event when no exporter is configured, so it must cost next to nothing.
 *
 *   traceparent = version "-" trace-id "-" parent-id "-" trace-flags     e.g.
 *   00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
 */
import { randomFillSync } from 'node:crypto';

/** The parts of a valid traceparent: lower-case hex, trace id 32 digits, span id 16, flags 2. */
export interface TraceContext {
  traceId: string;
  spanId: string;
  /** `01` sampled, `00` not (only the sampled bit is kept). */
  flags: string;
}

/** Length of a version 00 traceparent, which is what this platform writes and stores (CHAR(55)). */
export const TRACEPARENT_LENGTH = 55;

const SHAPE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/**
 * A traceparent header as the spec says to read it, or null when it is not valid (the caller then starts
 * a new trace; a bad header is never an error for the request). Version 00 must be exactly 55 characters;
 * a later version may be longer, with its first 55 characters in the version 00 layout followed by `-`
 * (read as version 00, as the spec asks); version ff, upper-case hex and all-zero ids are invalid. Several
 * headers joined by a proxy (`a, b`) are invalid too.
 */
export function parseTraceparent(header: string | null | undefined): TraceContext | null {
  if (!header) return null;
  let h = header.trim();
  if (h.length < TRACEPARENT_LENGTH) return null;
  if (h.length > TRACEPARENT_LENGTH) {
    if (h.startsWith('00') || h[TRACEPARENT_LENGTH] !== '-') return null;
    h = h.slice(0, TRACEPARENT_LENGTH);
  }
  const m = SHAPE.exec(h);
  if (!m || m[1] === 'ff' || m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return null;
  return { traceId: m[2]!, spanId: m[3]!, flags: (parseInt(m[4]!, 16) & 1) === 1 ? '01' : '00' };
}

export function formatTraceparent(c: TraceContext): string {
  return `00-${c.traceId}-${c.spanId}-${c.flags}`;
}

/** The trace id of a stored traceparent (what the API shows), or null. */
export function traceIdOf(traceparent: string | null | undefined): string | null {
  return traceparent && traceparent.length >= 35 ? traceparent.slice(3, 35) : null;
}

/**
 * The trace id of a trace the platform starts for one of its own events (a scheduled firing, a test run, a
 * replay): the event id's 32 hex digits. A scheduled occurrence fired twice (a relay retrying its fire
 * transaction after Kafka already had the message) so keeps one trace, as it keeps one event id.
 */
export function traceIdForEvent(eventId: string): string {
  return eventId.replace(/-/g, '').toLowerCase();
}

/** Random bytes drawn in blocks: one call into the CSPRNG per 512 span ids instead of one per id. */
const BLOCK_BYTES = 4096;

/**
 * Random trace and span ids, hex, from a pooled buffer (the per-event cost is a slice and a hex encode).
 * One per Tracing instance; also the SDK's id generator when spans are recorded.
 */
export class RandomIds {
  private pool = Buffer.alloc(0);
  private at = 0;

  private hex(bytes: number): string {
    if (this.at + bytes > this.pool.length) {
      this.pool = randomFillSync(Buffer.allocUnsafe(BLOCK_BYTES));
      this.at = 0;
    }
    const s = this.pool.toString('hex', this.at, this.at + bytes);
    this.at += bytes;
    // All zeros is invalid; with 64 random bits it does not happen, but the check is one comparison.
    return s === ZERO_SPAN || s === ZERO_TRACE ? this.hex(bytes) : s;
  }

  traceId(): string {
    return this.hex(16);
  }

  spanId(): string {
    return this.hex(8);
  }
}
