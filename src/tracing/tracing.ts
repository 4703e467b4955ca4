/**
 * Tracing of an event's way through the platform (docs/tracing.md). Every event keeps a W3C trace context
 * (event_logs.trace_parent, the Kafka header `traceparent`, the delivery request's `traceparent`); spans are
 * recorded only when an exporter is configured (tracing/sdk.ts builds the recorder).
 *
 * Without a recorder the per-event work is parsing a header and writing one: a span id from a pooled
 * random buffer, no SDK object. With one, each step is a span, parented explicitly from the stored or
 * received traceparent: no context manager is installed (AsyncLocalStorage would put async hooks on every
 * promise of the process; see docs/performance-cpu.md), so nothing depends on an "active" span.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { formatTraceparent, parseTraceparent, RandomIds, traceIdForEvent, type TraceContext } from './traceparent';

export { SpanKind };

/** The spans the platform records (docs/tracing.md lists them with their attributes). */
export type SpanName = 'ingest' | 'fire' | 'test run' | 'replay' | 'publish' | 'deliver';

/** Attribute names of our own (the OpenTelemetry conventions have none for these). */
export const Attr = {
  eventId: 'etp.event.id',
  triggerId: 'etp.trigger.id',
  source: 'etp.event.source',
  eventCount: 'etp.event.count',
  attempt: 'etp.delivery.attempt',
  outcome: 'etp.delivery.outcome',
} as const;

/**
 * The SDK's id generator with one addition: the trace id of the next root span can be given (an own
 * event's trace id is its event id, see traceIdForEvent). Set and used synchronously inside one
 * startSpan call, so no other span can take it.
 */
export class EventTraceIds {
  private next: string | null = null;
  constructor(readonly random: RandomIds) {}

  withTraceId<T>(traceId: string, fn: () => T): T {
    this.next = traceId;
    try {
      return fn();
    } finally {
      this.next = null;
    }
  }

  generateTraceId(): string {
    const given = this.next;
    this.next = null;
    return given ?? this.random.traceId();
  }

  generateSpanId(): string {
    return this.random.spanId();
  }
}

/** What records spans: the SDK's tracer, its id generator and how to flush it (tracing/sdk.ts). */
export interface SpanRecorder {
  tracer: Tracer;
  ids: EventTraceIds;
  shutdown(): Promise<void>;
}

/** A step begun: the traceparent to keep or send on, and its span when one is recorded. */
export interface Begun {
  traceparent: string;
  span: Span | null;
}

const HEX32 = /^[0-9a-f]{32}$/;

export class Tracing {
  private readonly ids: RandomIds;

  constructor(private readonly recorder: SpanRecorder | null = null) {
    this.ids = recorder ? recorder.ids.random : new RandomIds();
  }

  /** Whether spans are recorded (an exporter is configured). */
  get recording(): boolean {
    return this.recorder !== null;
  }

  /**
   * A step that continues the trace of `parent` (a traceparent header, stored or received); an invalid or
   * missing one starts a new trace. Without a recorder: the parent's trace id and flags with a new span id,
   * or a new sampled trace (so a receiver that samples by its parent records its side).
   */
  child(name: SpanName, kind: SpanKind, parent: string | null | undefined, attributes?: Attributes): Begun {
    const p = parseTraceparent(parent);
    if (!this.recorder) {
      return { traceparent: `00-${p ? p.traceId : this.ids.traceId()}-${this.ids.spanId()}-${p ? p.flags : '01'}`, span: null };
    }
    const ctx = p ? trace.setSpanContext(ROOT_CONTEXT, remote(p)) : ROOT_CONTEXT;
    const span = this.recorder.tracer.startSpan(name, { kind, attributes }, ctx);
    return { traceparent: traceparentOf(span), span };
  }

  /**
   * The first step of an event the platform starts itself (a scheduled firing, a test run, a replay): a new
   * trace whose id is the event id (traceIdForEvent). `link`: a traceparent this trace is linked to (a
   * replay links to the original event's trace).
   */
  own(name: SpanName, eventId: string, attributes?: Attributes, link?: string | null): Begun {
    const hex = traceIdForEvent(eventId);
    const traceId = HEX32.test(hex) && hex !== '0'.repeat(32) ? hex : this.ids.traceId();
    if (!this.recorder) return { traceparent: `00-${traceId}-${this.ids.spanId()}-01`, span: null };
    const linked = parseTraceparent(link);
    const links: Link[] | undefined = linked ? [{ context: remote(linked) }] : undefined;
    const { tracer, ids } = this.recorder;
    const span = ids.withTraceId(traceId, () =>
      tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes, links, root: true }, ROOT_CONTEXT),
    );
    return { traceparent: traceparentOf(span), span };
  }

  /** Flushes recorded spans and stops the exporter. Idempotent (the SDK's shutdown is). */
  async shutdown(): Promise<void> {
    await this.recorder?.shutdown();
  }
}

/** Ends a span (a no-op for null): an error message sets the ERROR status, attributes are added first. */
export function endSpan(span: Span | null, error?: string | null, attributes?: Attributes): void {
  if (!span) return;
  if (attributes) span.setAttributes(attributes);
  if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  span.end();
}

function remote(c: TraceContext) {
  return { traceId: c.traceId, spanId: c.spanId, traceFlags: c.flags === '01' ? 1 : 0, isRemote: true };
}

function traceparentOf(span: Span): string {
  const c = span.spanContext();
  return formatTraceparent({ traceId: c.traceId, spanId: c.spanId, flags: (c.traceFlags & 1) === 1 ? '01' : '00' });
}
