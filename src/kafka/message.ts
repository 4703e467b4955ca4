import type { TriggerType } from '../triggers/types';
import type { OutgoingMessage } from './producer';

export type EventSource = 'webhook' | 'scheduler' | 'manual-test' | 'replay';

/**
 * The W3C traceparent a message travels with, sent as its Kafka header `traceparent` (docs/tracing.md).
 * A symbol key: JSON.stringify leaves it out of the message value, and an object spread (a retry's or a
 * dead letter's copy of the message it was read from) keeps it, so every copy stays in the event's trace.
 */
export const TRACE_PARENT = Symbol('traceparent');

/**
 * The largest event payload the platform accepts, as serialised JSON in UTF-8 bytes. The event's Kafka
 * message is the payload in an envelope of ids, instants and headers (under 1 KiB), and it must fit both
 * librdkafka's `message.max.bytes` (1,000,000 by default; the producer keeps it) and the broker's (1,048,588
 * by default). A larger message is refused by Kafka on every retry, so it would never leave the outbox.
 * Checked where payloads enter: a webhook call (413), a scheduled trigger's `config.payload` and a test
 * run's payload (400).
 */
export const PAYLOAD_MAX_BYTES = 1_000_000 - 1024;

/**
 * The UTF-8 size of a serialised payload when it is over PAYLOAD_MAX_BYTES, else null. A string of n UTF-16
 * units is at most 3n bytes, so small payloads (every hot-path one) skip the count.
 */
export function payloadOverLimit(json: string): number | null {
  if (json.length * 3 <= PAYLOAD_MAX_BYTES) return null;
  const bytes = Buffer.byteLength(json);
  return bytes > PAYLOAD_MAX_BYTES ? bytes : null;
}

/** The field error of a payload over PAYLOAD_MAX_BYTES once serialised, or null when it fits. */
export function payloadTooLarge(payload: unknown): string | null {
  const over = payloadOverLimit(JSON.stringify(payload ?? null));
  return over === null ? null : payloadLimitMessage(over);
}

/** The words of the limit, for the field error a refused payload gets. */
export function payloadLimitMessage(bytes: number): string {
  return `is ${bytes} bytes as JSON; an event payload is at most ${PAYLOAD_MAX_BYTES} bytes, so that its Kafka message fits the broker's message size`;
}

/** What the platform puts on `trigger-events` (and what any consumer, in any language, reads). */
export interface EventMessage {
  event_id: string;
  trigger_id: string | null;
  type: TriggerType;
  payload: unknown;
  fired_at: string;
  scheduled_for: string | null;
  source: EventSource;
  is_test_run: boolean;
  replay_of: string | null;
  [TRACE_PARENT]?: string;
}

/** Retries of a delivery travel on a side topic that only the worker reads, so other consumers see each event once. */
export interface RetryMessage extends EventMessage {
  delivery_attempt: number;
  /**
   * How many times this attempt was put off because the endpoint's circuit was open (absent: never).
   * Deferrals are not attempts; the count keeps each deferred copy's idempotency key distinct.
   */
  deferred?: number;
}

export interface EventFacts {
  id: string;
  trigger_id: string | null;
  trigger_type: TriggerType;
  payload: unknown;
  fired_at: Date;
  scheduled_for: Date | null;
  source: EventSource;
  is_test_run: boolean;
  replay_of?: string | null;
  trace_parent?: string | null;
}

/**
 * toISOString with the last instant remembered, one per field of the message: the events of one fire batch
 * share their fired_at (and, in a burst, their scheduled_for), and two date formats per event were a fifth
 * of building its message. A caller that builds many messages passes one (DirectFire: one per batch).
 */
export class MessageInstants {
  private readonly fired = new IsoText();
  private readonly scheduled = new IsoText();

  firedAt(d: Date): string {
    return this.fired.of(d);
  }

  scheduledFor(d: Date): string {
    return this.scheduled.of(d);
  }
}

class IsoText {
  private time = NaN;
  private text = '';

  of(d: Date): string {
    const t = d.getTime();
    if (t !== this.time) {
      this.text = d.toISOString(); // throws for an invalid date, as before (NaN is never remembered)
      this.time = t;
    }
    return this.text;
  }
}

export function eventMessage(e: EventFacts, instants?: MessageInstants): EventMessage {
  const msg: EventMessage = {
    event_id: e.id,
    trigger_id: e.trigger_id,
    type: e.trigger_type,
    payload: e.payload ?? null,
    fired_at: instants ? instants.firedAt(e.fired_at) : e.fired_at.toISOString(),
    scheduled_for: e.scheduled_for ? (instants ? instants.scheduledFor(e.scheduled_for) : e.scheduled_for.toISOString()) : null,
    source: e.source,
    is_test_run: e.is_test_run,
    replay_of: e.replay_of ?? null,
  };
  if (e.trace_parent) msg[TRACE_PARENT] = e.trace_parent;
  return msg;
}

/**
 * JSON.stringify(eventMessage(e)), for a payload already serialised as `payloadJson` (the same text,
 * key for key): the webhook receiver stores that text in the event log and puts it in the Kafka value,
 * and need not serialise the payload twice.
 */
export function eventMessageJson(e: EventFacts, payloadJson: string): string {
  return (
    `{"event_id":${JSON.stringify(e.id)},"trigger_id":${JSON.stringify(e.trigger_id)},"type":${JSON.stringify(e.trigger_type)}` +
    `,"payload":${payloadJson},"fired_at":"${e.fired_at.toISOString()}"` +
    `,"scheduled_for":${e.scheduled_for ? `"${e.scheduled_for.toISOString()}"` : 'null'}` +
    `,"source":${JSON.stringify(e.source)},"is_test_run":${e.is_test_run},"replay_of":${JSON.stringify(e.replay_of ?? null)}}`
  );
}

/** The headers toKafka sets, as JSON text (what the outbox stores). A traceparent is hex and dashes: no escaping. */
export function eventHeadersJson(eventId: string, source: EventSource, traceparent?: string | null): string {
  const trace = traceparent ? `,"traceparent":"${traceparent}"` : '';
  return `{"event-id":${JSON.stringify(eventId)},"content-type":"application/json","event-source":${JSON.stringify(source)}${trace}}`;
}

/** Key = trigger id (one trigger's events stay in one partition); headers let consumers route without parsing. */
export function toKafka(topic: string, msg: EventMessage | RetryMessage): OutgoingMessage {
  const headers: Record<string, string> = { 'event-id': msg.event_id, 'content-type': 'application/json', 'event-source': msg.source };
  const traceparent = msg[TRACE_PARENT];
  if (traceparent) headers.traceparent = traceparent;
  return { topic, key: msg.trigger_id ?? msg.event_id, value: Buffer.from(JSON.stringify(msg)), headers };
}
