/**
 * What tracing adds per event, in-process CPU (`npm run bench -- tracing [--quick]`): the steps the api, relay
 * and worker run per event, each repeated N times and timed with process.cpuUsage(), with no exporter
 * configured (the default: traceparents only) and with spans recorded (made and ended; a processor that
 * drops them, so the exporter's background work is not counted). Printed: µs per event for each step, and the no-exporter total next to the webhook lane's
 * ≈680 µs of api CPU per request (docs/performance-cpu.md). End-to-end figures: `npm run bench -- ingest`.
 */
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { eventHeadersJson } from '../src/kafka/message';
import { newEventId } from '../src/triggers/event-id';
import { recordingTracing } from '../src/tracing/sdk';
import { Attr, endSpan, SpanKind, Tracing } from '../src/tracing/tracing';
import { log, numArg, parseArgs, round, table, writeResults } from './lib';

const args = parseArgs();
const N = Math.round(numArg(args, 'n', args.flags.has('quick') ? 50_000 : 300_000));
const LANE_API_US = 680;
const HEADER = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** CPU µs per call of `fn` over N calls (after a warm-up of N/10). */
function perCall(fn: (i: number) => unknown): number {
  let sink = 0;
  for (let i = 0; i < N / 10; i++) if (fn(i)) sink++;
  const start = process.cpuUsage();
  for (let i = 0; i < N; i++) if (fn(i)) sink++;
  const used = process.cpuUsage(start);
  if (sink < 0) log('unreachable');
  return (used.user + used.system) / N;
}

function main(): void {
  const ids = Array.from({ length: 1024 }, () => newEventId());
  const off = new Tracing();
  // Not an in-memory exporter behind a SimpleSpanProcessor: it keeps a promise per span until the loop
  // yields, which this synchronous loop never does.
  const on = recordingTracing(new NoopSpanProcessor(), 'bench');
  const rows: Array<[string, number, number]> = [];
  const measure = (step: string, fn: (t: Tracing, i: number) => unknown) => {
    const offUs = perCall((i) => fn(off, i));
    const onUs = perCall((i) => fn(on, i));
    rows.push([step, offUs, onUs]);
  };
  // api: a webhook call with a traceparent, and one without (a new trace); the outbox headers with it.
  measure('ingest, caller sent a traceparent', (t) => {
    const b = t.child('ingest', SpanKind.SERVER, HEADER);
    endSpan(b.span);
    return b.traceparent;
  });
  measure('ingest, no traceparent (new trace)', (t) => {
    const b = t.child('ingest', SpanKind.SERVER, undefined);
    endSpan(b.span);
    return b.traceparent;
  });
  measure('outbox headers JSON: + traceparent', (_t, i) => eventHeadersJson(ids[i & 1023]!, 'webhook', HEADER).length);
  measure('outbox headers JSON: without (before)', (_t, i) => eventHeadersJson(ids[i & 1023]!, 'webhook').length);
  // relay: a scheduled firing's own trace; worker: one delivery attempt.
  measure('fire (own trace = event id)', (t, i) => {
    const b = t.own('fire', ids[i & 1023]!, t.recording ? { [Attr.eventId]: ids[i & 1023]! } : undefined);
    endSpan(b.span);
    return b.traceparent;
  });
  measure('deliver attempt', (t) => {
    const b = t.child('deliver', SpanKind.CLIENT, HEADER, t.recording ? { [Attr.attempt]: 1 } : undefined);
    endSpan(b.span);
    return b.traceparent;
  });
  const fmt = (us: number) => `${round(us, 3)} µs`;
  process.stdout.write(
    `\nTracing per event, ${N.toLocaleString()} calls each, CPU of this process\n\n` +
      table(
        ['step', 'no exporter', 'spans recorded'],
        rows.map(([s, a, b]) => [s, fmt(a), fmt(b)]),
      ) +
      '\n',
  );
  const headersAdded = rows[2]![1] - rows[3]![1];
  const lane = rows[1]![1] + Math.max(0, headersAdded);
  process.stdout.write(
    `\nNo exporter, api per webhook request (new trace + longer headers JSON): ${fmt(lane)} = ` +
      `${round((lane / LANE_API_US) * 100, 3)} % of the lane's ≈${LANE_API_US} µs\n`,
  );
  const file = writeResults(args.flags.has('quick') ? 'tracing-quick' : 'tracing', {
    calls: N,
    steps: rows.map(([step, offUs, onUs]) => ({ step, noExporterUs: round(offUs, 4), recordedUs: round(onUs, 4) })),
    laneAddedUs: round(lane, 4),
  });
  process.stdout.write(`results: ${file}\n`);
}

main();
