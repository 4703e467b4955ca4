import { Attr, endSpan, SpanKind, type Tracing } from '../tracing/tracing';
import { deliver, type DeliveryRequest, type DeliveryResult } from './delivery';

/**
 * One delivery attempt as a step of the event's trace (docs/tracing.md): the request carries a
 * `traceparent` of `parent`'s trace (the message's header, else the one logged with the event; none: a new
 * trace) with a span id of its own, and when spans are recorded the attempt is the `deliver` span.
 * Without a recorder no attribute object is built: the cost is one header parsed and one written.
 */
export async function deliverInTrace(
  tracing: Tracing,
  parent: string | null | undefined,
  req: Omit<DeliveryRequest, 'traceparent'> & { attempt: number; triggerId: string | null },
  allowPrivate: boolean,
): Promise<DeliveryResult> {
  const attributes = tracing.recording
    ? { [Attr.eventId]: req.eventId, [Attr.attempt]: req.attempt, ...(req.triggerId ? { [Attr.triggerId]: req.triggerId } : {}) }
    : undefined;
  const trace = tracing.child('deliver', SpanKind.CLIENT, parent, attributes);
  const result = await deliver(
    { eventId: req.eventId, payload: req.payload, config: req.config, traceparent: trace.traceparent },
    allowPrivate,
  );
  if (trace.span) {
    const o = result.outcome;
    endSpan(trace.span, o.kind === 'success' ? null : o.error, {
      [Attr.outcome]: o.kind,
      ...(o.status !== null ? { 'http.response.status_code': o.status } : {}),
    });
  }
  return result;
}
