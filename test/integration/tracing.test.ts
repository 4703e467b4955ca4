import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { createTestEnv } from '../helpers/env';
import { KafkaReader } from '../helpers/kafka';
import { Receiver } from '../helpers/receiver';
import { until } from '../helpers/until';
import { startPlatform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import { loadConfig } from '../../src/config';
import { recordingTracing, tracingFromConfig } from '../../src/tracing/sdk';
import { parseTraceparent, traceIdForEvent } from '../../src/tracing/traceparent';
import { endSpan, SpanKind, type Tracing } from '../../src/tracing/tracing';

/**
 * Tracing end to end, on the real api, relay and worker (one process), MariaDB, Kafka and an HTTP
 * receiver: the trace a webhook call brings (or the one the platform starts) is kept with the event, is the
 * Kafka message's `traceparent` header and the delivery request's, and is the event's trace_id in the API.
 */

const quiet = createLogger('error', 'test');

/** A fresh, valid traceparent of a random trace (the caller's span id fixed, to tell it from ours). */
function callerTrace(): { header: string; traceId: string; spanId: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { header: `00-${traceId}-${spanId}-01`, traceId, spanId };
}

/** One platform (api + relay + worker) on its own database and topics, with a receiver and a Kafka reader. */
async function startStack(label: string, tracing?: Tracing) {
  const t = await createTestEnv(label, { RATE_LIMIT_PER_WEBHOOK: '0' });
  const platform = await startPlatform(t.config, ['api', 'relay', 'worker'], { logger: quiet, migrate: false, tracing });
  const receiver = await new Receiver().start();
  const reader = await new KafkaReader([t.topic]).start();
  const base = `http://127.0.0.1:${platform.ports.api!}/api/v1`;
  const api = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const stop = async () => {
    await platform.stop();
    await reader.stop();
    await receiver.stop();
    await t.cleanup();
  };
  return { t, platform, receiver, reader, api, stop };
}

type Stack = Awaited<ReturnType<typeof startStack>>;

async function webhookTrigger(s: Stack, path: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await s.api('POST', '/triggers', {
    name: path,
    type: 'webhook',
    config: { endpoint: s.receiver.url(path), schema: { type: 'object' }, ...extra },
  });
  expect(res.status).to.equal(201);
  return res.body.id as string;
}

/** The delivery requests that reached `path`, once there are `n`. */
function delivered(s: Stack, path: string, n = 1) {
  return until(() => s.receiver.forPath(path).length >= n && s.receiver.forPath(path), {
    timeoutMs: 30_000,
    message: `${n} delivery request(s) at ${path}`,
  });
}

function traceOf(header: string | string[] | undefined) {
  const c = parseTraceparent(typeof header === 'string' ? header : undefined);
  expect(c, `a valid traceparent, got ${String(header)}`).to.not.equal(null);
  return c!;
}

describe('tracing without an exporter: the traceparent is kept and forwarded', function () {
  this.timeout(120_000);
  let s: Stack;

  before(async () => {
    s = await startStack('tracingoff');
  });
  after(async () => {
    await s?.stop();
  });

  it('delivers a webhook event with a traceparent of the trace sent with the POST, via the Kafka header, shown as trace_id', async () => {
    const id = await webhookTrigger(s, '/fast');
    const caller = callerTrace();
    const res = await s.api('POST', `/webhook/${id}`, { n: 1 }, { traceparent: caller.header });
    expect(res.status).to.equal(202);
    const eventId = res.body.event_id as string;
    const [req] = await delivered(s, '/fast');
    const sent = traceOf(req!.headers.traceparent);
    expect(sent.traceId).to.equal(caller.traceId);
    expect(sent.spanId, 'the delivery is a new span of the trace').to.not.equal(caller.spanId);
    const msg = await until(() => s.reader.byEventId(eventId)[0], { timeoutMs: 20_000, message: 'the event on Kafka' });
    expect(traceOf(msg.headers.traceparent).traceId).to.equal(caller.traceId);
    expect(msg.value).to.not.have.property('traceparent');
    const event = await s.api('GET', `/events/${eventId}`);
    expect(event.body.trace_id).to.equal(caller.traceId);
  });

  it('keeps the trace on the one-transaction path too (a request with an Idempotency-Key)', async () => {
    const id = await webhookTrigger(s, '/keyed');
    const caller = callerTrace();
    const res = await s.api('POST', `/webhook/${id}`, { n: 2 }, { traceparent: caller.header, 'idempotency-key': 'k-1' });
    expect(res.status).to.equal(202);
    const [req] = await delivered(s, '/keyed');
    expect(traceOf(req!.headers.traceparent).traceId).to.equal(caller.traceId);
    expect((await s.api('GET', `/events/${res.body.event_id as string}`)).body.trace_id).to.equal(caller.traceId);
  });

  it('gives the events of a batch call the trace of the call', async () => {
    const id = await webhookTrigger(s, '/batch');
    const caller = callerTrace();
    const res = await s.api('POST', `/webhook/${id}/batch`, { events: [{ n: 1 }, { n: 2 }] }, { traceparent: caller.header });
    expect(res.status).to.equal(202);
    const reqs = await delivered(s, '/batch', 2);
    expect(reqs.map((r) => traceOf(r.headers.traceparent).traceId)).to.deep.equal([caller.traceId, caller.traceId]);
    for (const r of res.body.results as Array<{ event_id: string }>) {
      expect((await s.api('GET', `/events/${r.event_id}`)).body.trace_id).to.equal(caller.traceId);
    }
  });

  it('ignores an invalid traceparent: 202, and the event gets a new trace that its delivery carries', async () => {
    const id = await webhookTrigger(s, '/invalid');
    const zeros = `00-${'0'.repeat(32)}-${'a'.repeat(16)}-01`;
    const upper = callerTrace().header.toUpperCase();
    const ids: string[] = [];
    for (const bad of ['garbage', zeros, upper, `ff-${'a'.repeat(32)}-${'b'.repeat(16)}-01`]) {
      const res = await s.api('POST', `/webhook/${id}`, { bad }, { traceparent: bad });
      expect(res.status, bad).to.equal(202);
      ids.push(res.body.event_id as string);
    }
    const reqs = await delivered(s, '/invalid', ids.length);
    for (const eventId of ids) {
      const traceId = (await s.api('GET', `/events/${eventId}`)).body.trace_id as string;
      expect(traceId).to.match(/^[0-9a-f]{32}$/);
      expect(traceId).to.not.equal('0'.repeat(32));
      expect(traceId, 'the version ff header was not taken').to.not.equal('a'.repeat(32));
      const req = reqs.find((r) => r.headers['webhook-id'] === eventId);
      expect(traceOf(req!.headers.traceparent).traceId).to.equal(traceId);
    }
    expect(new Set(ids.map((eventId) => reqs.find((r) => r.headers['webhook-id'] === eventId)!.headers.traceparent)).size).to.equal(
      ids.length,
    );
  });

  it("carries the scheduled event's own trace (trace_id in the API) on its delivery request", async () => {
    const runAt = new Date(Math.ceil((Date.now() + 1000) / 1000) * 1000);
    const created = await s.api('POST', '/triggers', {
      name: 'traced-once',
      type: 'time_scheduled',
      config: { endpoint: s.receiver.url('/scheduled'), run_at: runAt.toISOString(), payload: { at: 'once' } },
    });
    expect(created.status).to.equal(201);
    const [req] = await delivered(s, '/scheduled');
    const list = await s.api('GET', `/events?trigger_id=${created.body.id as string}`);
    const event = (list.body.events as Array<Record<string, unknown>>)[0]!;
    expect(event.trace_id).to.equal(traceOf(req!.headers.traceparent).traceId);
    expect(event.trace_id).to.equal(traceIdForEvent(event.id as string));
  });

  it('keeps the trace on a retry: every attempt of the event carries it', async () => {
    s.receiver.respond = (r) => ({ status: r.path === '/flaky' && s.receiver.forPath('/flaky').length === 1 ? 500 : 200 });
    const id = await webhookTrigger(s, '/flaky', { retry: { max_attempts: 3, backoff_ms: 10 } });
    const caller = callerTrace();
    const res = await s.api('POST', `/webhook/${id}`, { n: 3 }, { traceparent: caller.header });
    expect(res.status).to.equal(202);
    const reqs = await delivered(s, '/flaky', 2);
    expect(reqs.map((r) => traceOf(r.headers.traceparent).traceId)).to.deep.equal([caller.traceId, caller.traceId]);
    expect(reqs[0]!.headers.traceparent).to.not.equal(reqs[1]!.headers.traceparent);
  });
});

describe('tracing with an exporter: the spans of one event are linked', function () {
  this.timeout(120_000);
  let s: Stack;
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;

  before(async () => {
    tracing = recordingTracing(new SimpleSpanProcessor(exporter), 'etp-test');
    s = await startStack('tracingon', tracing);
  });
  after(async () => {
    await s?.stop();
    await tracing?.shutdown();
  });

  const spansOf = (traceId: string) => exporter.getFinishedSpans().filter((sp) => sp.spanContext().traceId === traceId);
  const named = (spans: ReadableSpan[], name: string) => {
    const found = spans.filter((sp) => sp.name === name);
    expect(found, `one ${name} span`).to.have.length(1);
    return found[0]!;
  };
  const parentOf = (sp: ReadableSpan) => sp.parentSpanContext?.spanId;

  it('records ingest → publish → deliver for a webhook event, in the caller’s trace, with event and trigger ids', async () => {
    const triggerId = await webhookTrigger(s, '/spans');
    const caller = callerTrace();
    const res = await s.api('POST', `/webhook/${triggerId}`, { n: 1 }, { traceparent: caller.header });
    const eventId = res.body.event_id as string;
    const [req] = await delivered(s, '/spans');
    const spans = await until(() => spansOf(caller.traceId).length >= 3 && spansOf(caller.traceId), { message: 'three spans' });
    const ingest = named(spans, 'ingest');
    const publish = named(spans, 'publish');
    const deliver = named(spans, 'deliver');
    expect(parentOf(ingest)).to.equal(caller.spanId);
    expect(parentOf(publish)).to.equal(ingest.spanContext().spanId);
    expect(parentOf(deliver)).to.equal(publish.spanContext().spanId);
    // The endpoint is told the delivery span's context: its own spans become children of it.
    expect(traceOf(req!.headers.traceparent).spanId).to.equal(deliver.spanContext().spanId);
    for (const sp of [ingest, publish, deliver]) {
      expect(sp.attributes['etp.event.id'], sp.name).to.equal(eventId);
      expect(sp.attributes['etp.trigger.id'], sp.name).to.equal(triggerId);
    }
    expect(deliver.attributes['http.response.status_code']).to.equal(200);
    expect(deliver.attributes['etp.delivery.attempt']).to.equal(1);
    // The stored context is the ingest span's.
    expect((await s.api('GET', `/events/${eventId}`)).body.trace_id).to.equal(caller.traceId);
  });

  it('starts a trace of its own for a scheduled event: fire (root) → publish → deliver, trace id = the event id', async () => {
    const runAt = new Date(Math.ceil((Date.now() + 1000) / 1000) * 1000);
    const created = await s.api('POST', '/triggers', {
      name: 'spans-once',
      type: 'time_scheduled',
      config: { endpoint: s.receiver.url('/scheduled-spans'), run_at: runAt.toISOString() },
    });
    const [req] = await delivered(s, '/scheduled-spans');
    const list = await s.api('GET', `/events?trigger_id=${created.body.id as string}`);
    const event = (list.body.events as Array<Record<string, unknown>>)[0]!;
    const traceId = event.trace_id as string;
    expect(traceId).to.equal(traceIdForEvent(event.id as string));
    const spans = await until(() => spansOf(traceId).length >= 3 && spansOf(traceId), { message: 'three spans' });
    const fire = named(spans, 'fire');
    const publish = named(spans, 'publish');
    const deliver = named(spans, 'deliver');
    expect(parentOf(fire)).to.equal(undefined);
    expect(parentOf(publish)).to.equal(fire.spanContext().spanId);
    expect(parentOf(deliver)).to.equal(publish.spanContext().spanId);
    expect(traceOf(req!.headers.traceparent)).to.deep.include({ traceId, spanId: deliver.spanContext().spanId });
    expect(fire.attributes['etp.event.id']).to.equal(event.id);
    expect(fire.attributes['etp.trigger.id']).to.equal(created.body.id);
  });

  it('starts a test run’s own trace, and links a replay’s new trace to the original one', async () => {
    const triggerId = await webhookTrigger(s, '/replayed');
    const run = await s.api('POST', `/triggers/${triggerId}/test`, { payload: { n: 4 } });
    expect(run.status).to.equal(202);
    const original = run.body.event_id as string;
    await delivered(s, '/replayed');
    const originalTrace = traceIdForEvent(original);
    const ended = await until(async () => {
      const e = await s.api('GET', `/events/${original}`);
      return e.body.execution_status === 'success' && e.body;
    });
    expect(ended.trace_id).to.equal(originalTrace);
    const first = await until(() => spansOf(originalTrace).length >= 3 && spansOf(originalTrace), { message: 'the test run spans' });
    expect(parentOf(named(first, 'test run'))).to.equal(undefined);
    const replay = await s.api('POST', `/events/${original}/replay`);
    expect(replay.status).to.equal(202);
    const replayId = replay.body.event_id as string;
    const reqs = await delivered(s, '/replayed', 2);
    const replayTrace = traceIdForEvent(replayId);
    expect(traceOf(reqs[1]!.headers.traceparent).traceId).to.equal(replayTrace);
    expect((await s.api('GET', `/events/${replayId}`)).body.trace_id).to.equal(replayTrace);
    const spans = await until(() => spansOf(replayTrace).length >= 3 && spansOf(replayTrace), { message: 'the replay spans' });
    const root = named(spans, 'replay');
    expect(parentOf(root)).to.equal(undefined);
    expect(root.links.map((l) => l.context.traceId)).to.deep.equal([originalTrace]);
  });
});

describe('tracing: the OTLP/HTTP exporter configured by the OTEL_* settings', function () {
  this.timeout(30_000);
  let collector: Receiver;

  before(async () => {
    collector = await new Receiver().start();
  });
  after(async () => {
    await collector?.stop();
  });

  it('posts the spans to <endpoint>/v1/traces with the configured headers and service name', async () => {
    const tracing = tracingFromConfig(
      loadConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url(''),
        OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-key=s3cret',
        OTEL_SERVICE_NAME: 'etp-otlp-test',
      }),
    );
    expect(tracing.recording).to.equal(true);
    const caller = callerTrace();
    const begun = tracing.child('deliver', SpanKind.CLIENT, caller.header, { 'etp.event.id': 'e-1' });
    endSpan(begun.span);
    await tracing.shutdown(); // flushes the batch
    const [req] = await until(() => collector.forPath('/v1/traces').length === 1 && collector.forPath('/v1/traces'), {
      message: 'one export',
    });
    expect(req!.method).to.equal('POST');
    expect(req!.headers['x-collector-key']).to.equal('s3cret');
    const body = JSON.parse(req!.body) as {
      resourceSpans: Array<{
        resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
        scopeSpans: Array<{ spans: Array<{ traceId: string; parentSpanId: string; name: string }> }>;
      }>;
    };
    const resource = body.resourceSpans[0]!;
    expect(resource.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue).to.equal('etp-otlp-test');
    const span = resource.scopeSpans[0]!.spans[0]!;
    expect(span).to.include({ name: 'deliver', traceId: caller.traceId, parentSpanId: caller.spanId });
  });

  it('records nothing and makes no exporter without an endpoint', () => {
    expect(tracingFromConfig(loadConfig({})).recording).to.equal(false);
  });
});
