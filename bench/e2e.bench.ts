/**
 * The end-to-end benchmark (`npm run bench -- e2e [--quick]`): webhook 202 → relay → Kafka →
 * worker → a local HTTP receiver. One fresh database and topic; 1 api, 1 relay and 1 worker process
 * (`node dist/main.js …`, RATE_LIMIT_PER_WEBHOOK=0, DELIVERY_ALLOW_PRIVATE_NETWORKS=true); the receiver is a
 * plain node:http server in this process on 127.0.0.1 answering 200. Webhook trigger(s) with a small JSON
 * Schema, a ≈200-byte payload.
 *   warm-up  a short burst at the steady rate, all delivered (the worker's consumer group has joined)
 *   (1) steady: an open-loop sender at RATE events/s (1,000) for SECONDS s (60; quick 10). Latency of each
 *       event = the receiver's arrival time − the webhook request's send time (both clocks in this process),
 *       matched by the delivery's `webhook-id` header = the event id of the 202 body: p50/p95/p99, plus the
 *       stages from the event log's own times (fired_at, published_at).
 *   (2) full speed: autocannon, 64 connections, FULL s (20; quick 5), then wait for every accepted event:
 *       deliveries/s while sending, while draining afterwards, and over the whole phase.
 * Target: p99 < 100 ms at 1k/s — printed met / NOT met.
 * Options: --quick, --rate=, --seconds=, --full-seconds=, --connections= (64), --triggers= (1), --only=1,2,
 * --keep (keep the database and topics).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { RoleProcess } from '../test/helpers/proc';
import {
  CpuMeter,
  createBenchEnv,
  fmtInt,
  fmtMs,
  log,
  machineFacts,
  closeBenchEnv,
  intArg,
  listArg,
  numArg,
  parseArgs,
  runBench,
  progress,
  round,
  servicePids,
  sleep,
  summarize,
  table,
  writeResults,
  type BenchEnv,
  type CpuUse,
  type Summary,
} from './lib';
import {
  PAYLOAD_BODY,
  apiPortOf,
  cpuLine,
  createWebhookTriggers,
  live,
  postJson,
  runAutocannon,
  spawnTracked,
  stopTracked,
  verdict,
} from './webhooks';

const args = parseArgs();
const QUICK = args.flags.has('quick');
const KEEP = args.flags.has('keep');
const RATE = intArg(args, 'rate', 1000);
const SECONDS = numArg(args, 'seconds', QUICK ? 10 : 60);
const FULL_SECONDS = numArg(args, 'full-seconds', QUICK ? 5 : 20);
const WARMUP_SECONDS = QUICK ? 1 : 3;
const CONNECTIONS = intArg(args, 'connections', 64);
const TRIGGERS = intArg(args, 'triggers', 1);
const ONLY = new Set(listArg(args, 'only', '1,2'));
/** Give up waiting for the remaining deliveries when none arrives for this long. */
const STALL_MS = 30_000;

const TARGET = { p99Ms: 100, rate: 1000 };

/** Wall-clock milliseconds with sub-millisecond resolution (same clock as Date.now()). */
const nowMs = () => performance.timeOrigin + performance.now();

// ------------------------------------------------------------------------------------------ receiver

/** The delivery target: notes the first arrival of each `webhook-id` and answers 200. */
class ArrivalReceiver {
  readonly arrivals = new Map<string, number>();
  duplicates = 0;
  withoutId = 0;
  private readonly server: http.Server;

  constructor() {
    this.server = http.createServer((req, res) => {
      const at = nowMs();
      const id = req.headers['webhook-id'];
      if (typeof id !== 'string') this.withoutId++;
      else if (this.arrivals.has(id)) this.duplicates++;
      else this.arrivals.set(id, at);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
    this.server.keepAliveTimeout = 65_000;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    return this;
  }

  url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Waits until every id has arrived, or no new one arrived for STALL_MS. Returns how many are missing. */
async function awaitDeliveries(receiver: ArrivalReceiver, ids: Iterable<string>, label: string): Promise<number> {
  const wanted = [...ids];
  let missing = wanted.filter((id) => !receiver.arrivals.has(id));
  let lastSize = receiver.arrivals.size;
  let lastProgress = Date.now();
  const stop = progress(() => `${label}: waiting for ${fmtInt(missing.length)} of ${fmtInt(wanted.length)} deliveries`);
  try {
    while (missing.length > 0) {
      await sleep(missing.length > 1000 ? 200 : 50);
      missing = missing.filter((id) => !receiver.arrivals.has(id));
      if (receiver.arrivals.size !== lastSize) {
        lastSize = receiver.arrivals.size;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > STALL_MS) break;
    }
  } finally {
    stop();
  }
  return missing.length;
}

// -------------------------------------------------------------------------------------------- sender

interface Sent {
  sentAt: number;
  ackAt: number;
}

interface OpenLoopResult {
  sends: Map<string, Sent>;
  attempted: number;
  seconds: number;
  achievedRate: number;
  /** 202s per second: accepted / (last 202 − first send); below `rate` when the api cannot keep up. */
  acceptedRate: number;
  statuses: Record<string, number>;
  errors: number;
}

/** Open loop: `rate` requests/s for `seconds`, whatever the answers take (round-robin over the triggers). */
async function openLoop(base: string, triggerIds: string[], rate: number, seconds: number, label: string): Promise<OpenLoopResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const sends = new Map<string, Sent>();
  const statuses: Record<string, number> = {};
  let errors = 0;
  let inFlight = 0;
  let drained: (() => void) | null = null;
  const total = Math.round(rate * seconds);
  let sent = 0;
  let lastAck = 0;
  const fire = (i: number) => {
    const sentAt = nowMs();
    inFlight++;
    postJson(agent, `${base}/api/v1/webhook/${triggerIds[i % triggerIds.length]}`, PAYLOAD_BODY)
      .then(
        (r) => {
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          lastAck = nowMs();
          if (r.status === 202) sends.set((r.body as { event_id: string }).event_id, { sentAt, ackAt: lastAck });
        },
        () => void errors++,
      )
      .finally(() => {
        if (--inFlight === 0 && drained) drained();
      });
  };
  const stop = progress(() => `${label}: sent ${fmtInt(sent)} / ${fmtInt(total)}, ${fmtInt(inFlight)} in flight`);
  const t0 = performance.now();
  const firstSend = nowMs();
  try {
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      while (sent < due) fire(sent++);
      await sleep(1);
    }
    const sendSeconds = (performance.now() - t0) / 1000;
    if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
    const acceptedRate = sends.size / Math.max(0.001, (lastAck - firstSend) / 1000);
    return { sends, attempted: total, seconds: sendSeconds, achievedRate: total / sendSeconds, acceptedRate, statuses, errors };
  } finally {
    stop();
    agent.destroy();
  }
}

// -------------------------------------------------------------------------------------------- phases

interface SteadyResult {
  rate: number;
  seconds: number;
  achievedSendRate: number;
  acceptedRate: number;
  accepted: number;
  delivered: number;
  missing: number;
  statuses: Record<string, number>;
  errors: number;
  endToEndMs: Summary;
  stagesMs: Record<string, Summary>;
  cpu: CpuUse;
}

async function steady(e: BenchEnv, base: string, triggerIds: string[], receiver: ArrivalReceiver, meter: CpuMeter): Promise<SteadyResult> {
  log(`(1) steady: ${fmtInt(RATE)} events/s for ${SECONDS} s`);
  meter.begin();
  const s = await openLoop(base, triggerIds, RATE, SECONDS, '(1) steady');
  const missing = await awaitDeliveries(receiver, s.sends.keys(), '(1) steady');
  const cpu = meter.end();
  const endToEnd: number[] = [];
  const ack: number[] = [];
  for (const [id, v] of s.sends) {
    ack.push(v.ackAt - v.sentAt);
    const at = receiver.arrivals.get(id);
    if (at !== undefined) endToEnd.push(at - v.sentAt);
  }
  // Stages from the event log's own times (ms resolution): the api's fired_at, the relay's published_at.
  const rows = (await e.db('event_logs').select('id', 'fired_at', 'published_at')) as Array<{
    id: string;
    fired_at: Date;
    published_at: Date | null;
  }>;
  const toPublish: number[] = [];
  const toReceiver: number[] = [];
  for (const r of rows) {
    if (!s.sends.has(r.id) || !r.published_at) continue;
    toPublish.push(r.published_at.getTime() - r.fired_at.getTime());
    const at = receiver.arrivals.get(r.id);
    if (at !== undefined) toReceiver.push(at - r.published_at.getTime());
  }
  return {
    rate: RATE,
    seconds: SECONDS,
    achievedSendRate: Math.round(s.achievedRate),
    acceptedRate: Math.round(s.acceptedRate),
    accepted: s.sends.size,
    delivered: endToEnd.length,
    missing,
    statuses: s.statuses,
    errors: s.errors,
    endToEndMs: roundSummary(summarize(endToEnd)),
    stagesMs: {
      'send → 202 (api: lookup, validation, commit)': roundSummary(summarize(ack)),
      'fired_at → published_at (relay: outbox → Kafka acked)': roundSummary(summarize(toPublish)),
      'published_at → receiver (Kafka → worker → HTTP)': roundSummary(summarize(toReceiver)),
    },
    cpu,
  };
}

interface FullSpeedResult {
  connections: number;
  seconds: number;
  accepted: number;
  acceptedPerSecond: number;
  non2xx: number;
  errors: number;
  ackLatencyMs: { p50: number; p99: number };
  delivered: number;
  missing: number;
  deliveredWhileSending: number;
  deliveredPerSecondWhileSending: number;
  drainSeconds: number;
  deliveredPerSecondDraining: number;
  wholePhaseSeconds: number;
  deliveredPerSecondWholePhase: number;
  /** Deliveries per whole second since the phase started. */
  timeline: number[];
  cpuSending: CpuUse;
  cpuDraining: CpuUse;
}

async function fullSpeed(base: string, triggerIds: string[], receiver: ArrivalReceiver, meter: CpuMeter): Promise<FullSpeedResult> {
  log(`(2) full speed: autocannon, ${CONNECTIONS} connections for ${FULL_SECONDS} s, then drain`);
  const before = new Set(receiver.arrivals.keys());
  const start = nowMs();
  meter.begin();
  const r = await runAutocannon('(2) full speed', {
    url: base,
    connections: CONNECTIONS,
    duration: FULL_SECONDS,
    requests: triggerIds.map((id) => ({
      method: 'POST',
      path: `/api/v1/webhook/${id}`,
      headers: { 'content-type': 'application/json' },
      body: PAYLOAD_BODY,
    })),
  });
  const sendEnd = nowMs();
  const cpuSending = meter.end();
  meter.begin();
  // Everything accepted in this phase is new to the receiver (phase 1 was drained first).
  let lastSize = receiver.arrivals.size;
  let lastProgress = Date.now();
  const newCount = () => receiver.arrivals.size - before.size;
  const stop = progress(() => `(2) draining: ${fmtInt(newCount())} / ${fmtInt(r['2xx'])} delivered`);
  try {
    while (newCount() < r['2xx']) {
      await sleep(100);
      if (receiver.arrivals.size !== lastSize) {
        lastSize = receiver.arrivals.size;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > STALL_MS) break;
    }
  } finally {
    stop();
  }
  const cpuDraining = meter.end();
  const times: number[] = [];
  for (const [id, at] of receiver.arrivals) if (!before.has(id)) times.push(at);
  times.sort((x, y) => x - y);
  const last = times.length ? times[times.length - 1]! : sendEnd;
  const whileSending = times.filter((t) => t <= sendEnd).length;
  const timeline: number[] = [];
  for (const t of times) {
    const sec = Math.floor((t - start) / 1000);
    while (timeline.length <= sec) timeline.push(0);
    timeline[sec]!++;
  }
  const drainSeconds = Math.max(0, (last - sendEnd) / 1000);
  const wholeSeconds = (last - start) / 1000;
  return {
    connections: CONNECTIONS,
    seconds: r.duration,
    accepted: r['2xx'],
    acceptedPerSecond: Math.round(r.okPerSecond),
    non2xx: r.non2xx,
    errors: r.errors,
    ackLatencyMs: { p50: r.latency.p50, p99: r.latency.p99 },
    delivered: times.length,
    missing: Math.max(0, r['2xx'] - times.length),
    deliveredWhileSending: whileSending,
    deliveredPerSecondWhileSending: Math.round(whileSending / ((sendEnd - start) / 1000)),
    drainSeconds: round(drainSeconds, 2),
    deliveredPerSecondDraining: drainSeconds > 0 ? Math.round((times.length - whileSending) / drainSeconds) : NaN,
    wholePhaseSeconds: round(wholeSeconds, 2),
    deliveredPerSecondWholePhase: Math.round(times.length / wholeSeconds),
    timeline,
    cpuSending,
    cpuDraining,
  };
}

function roundSummary(s: Summary): Summary {
  return {
    count: s.count,
    min: round(s.min, 1),
    p50: round(s.p50, 1),
    p95: round(s.p95, 1),
    p99: round(s.p99, 1),
    max: round(s.max, 1),
    mean: round(s.mean, 1),
  };
}

// ---------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const e = await createBenchEnv('e2e', { RATE_LIMIT_PER_WEBHOOK: '0', DELIVERY_ALLOW_PRIVATE_NETWORKS: 'true' });
  live.envs.add(e);
  const receiver = await new ArrivalReceiver().start();
  const procs: RoleProcess[] = [];
  try {
    const machine = await machineFacts(e.db);
    const settings = {
      quick: QUICK,
      rate: RATE,
      steadySeconds: SECONDS,
      fullSpeedSeconds: FULL_SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      connections: CONNECTIONS,
      triggers: TRIGGERS,
      payloadBytes: Buffer.byteLength(PAYLOAD_BODY),
      kafkaPartitions: e.config.kafkaPartitions,
      workerConcurrency: e.config.workerConcurrency,
      outboxPollIntervalMs: e.config.outboxPollIntervalMs,
      outboxOrdering: e.config.outboxOrdering,
      dbPoolMax: e.config.dbPoolMax,
      phases: [...ONLY],
    };
    log(`e2e benchmark ${QUICK ? '(quick) ' : ''}— ${JSON.stringify(settings)}`);
    log(
      `machine: ${machine.cpuCount}× ${machine.cpuModel}, ${machine.totalMemoryGiB} GiB, node ${machine.node}, ${machine.mariadb}, librdkafka ${machine.librdkafka}, load ${machine.loadAverageAtStart.join(' ')}`,
    );

    const t0 = Date.now();
    const spawned = await Promise.allSettled(['api', 'relay', 'worker'].map((role) => spawnTracked(role, e.env)));
    for (const s of spawned) if (s.status === 'fulfilled') procs.push(s.value);
    const failed = spawned.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const [api, relay, worker] = procs as [RoleProcess, RoleProcess, RoleProcess];
    const base = `http://127.0.0.1:${apiPortOf(api)}`;
    log(`api, relay and worker up in ${Date.now() - t0} ms; receiver at ${receiver.url()}`);
    const triggerIds = await createWebhookTriggers(base, TRIGGERS, receiver.url());

    const svc = servicePids();
    const meter = new CpuMeter(() => ({
      api: [api.child.pid ?? 0],
      relay: [relay.child.pid ?? 0],
      worker: [worker.child.pid ?? 0],
      mariadb: svc.mysqld ? [svc.mysqld] : [],
      kafka: svc.kafka ? [svc.kafka] : [],
      bench: [process.pid],
    }));

    // Warm-up: the consumer group joins, the JITs warm; all of it delivered before measuring.
    log(`warm-up: ${fmtInt(RATE)} events/s for ${WARMUP_SECONDS} s, until all are delivered`);
    const w0 = Date.now();
    const warm = await openLoop(base, triggerIds, RATE, WARMUP_SECONDS, 'warm-up');
    const warmMissing = await awaitDeliveries(receiver, warm.sends.keys(), 'warm-up');
    if (warmMissing > 0 || warm.sends.size === 0) throw new Error(`warm-up: ${warmMissing} of ${warm.sends.size} events never delivered`);
    log(`warm-up delivered in ${Date.now() - w0} ms`);
    await sleep(1000);

    const one = ONLY.has('1') ? await steady(e, base, triggerIds, receiver, meter) : null;
    if (one) await sleep(1000);
    const two = ONLY.has('2') ? await fullSpeed(base, triggerIds, receiver, meter) : null;

    // The last deliveries' outcomes may still be committing: wait (briefly) until no event is in flight.
    const inFlight = async () => {
      const [[r]] = (await e.db.raw("SELECT COUNT(*) AS n FROM event_logs WHERE execution_status IN ('pending', 'published')")) as [
        [{ n: number }],
      ];
      return Number(r.n);
    };
    for (let i = 0; i < 100 && (await inFlight()) > 0; i++) await sleep(100);
    const [statusRows] = (await e.db.raw('SELECT execution_status AS s, COUNT(*) AS n FROM event_logs GROUP BY execution_status')) as [
      Array<{ s: string; n: number }>,
    ];
    const executionStatus = Object.fromEntries(statusRows.map((r) => [r.s, Number(r.n)]));

    // ---------------------------------------------------------------------------------------- report
    const out: string[] = [];
    out.push('');
    out.push(
      `End-to-end benchmark${QUICK ? ' (QUICK — smoke run, short phases)' : ''}: ${machine.cpuCount}× ${machine.cpuModel}, ${machine.mariadb}, ` +
        `librdkafka ${machine.librdkafka}; 1 api + 1 relay + 1 worker; ${TRIGGERS} trigger(s), payload ${settings.payloadBytes} B; ` +
        `load at start ${machine.loadAverageAtStart.join(' ')}`,
    );
    const targets: string[][] = [];
    if (one) {
      out.push('');
      out.push(
        `(1) steady ${fmtInt(one.rate)} events/s × ${one.seconds} s: sent at ${fmtInt(one.achievedSendRate)}/s, ${fmtInt(one.accepted)} accepted (202) at ${fmtInt(one.acceptedRate)}/s, ` +
          `${fmtInt(one.delivered)} delivered${one.missing ? `, ${fmtInt(one.missing)} MISSING` : ''}` +
          `${one.errors ? `, ${one.errors} request errors` : ''}; statuses ${JSON.stringify(one.statuses)}`,
      );
      const lat = (label: string, s: Summary) => [label, ms(s.p50), ms(s.p95), ms(s.p99), ms(s.max)];
      out.push('');
      out.push(
        table(
          ['latency', 'p50', 'p95', 'p99', 'max'],
          [lat('webhook send → receiver (end to end)', one.endToEndMs), ...Object.entries(one.stagesMs).map(([k, v]) => lat(`  ${k}`, v))],
        ),
      );
      const sustained =
        one.achievedSendRate >= 0.97 * RATE &&
        one.acceptedRate >= 0.97 * RATE &&
        one.accepted === Math.round(RATE * SECONDS) &&
        one.missing === 0;
      targets.push([
        `(1) end-to-end p99 at ${fmtInt(RATE)}/s${sustained ? '' : ' (rate not sustained or events missing)'}`,
        ms(one.endToEndMs.p99),
        `< ${TARGET.p99Ms} ms at ${fmtInt(TARGET.rate)}/s`,
        verdict(sustained && RATE >= TARGET.rate && one.endToEndMs.p99 < TARGET.p99Ms),
      ]);
    }
    if (two) {
      out.push('');
      out.push(
        table(
          ['(2) full speed', 'value'],
          [
            [
              `accepted (202), ${two.connections} connections × ${two.seconds} s`,
              `${fmtInt(two.accepted)} (${fmtInt(two.acceptedPerSecond)}/s)`,
            ],
            ['  202 latency p50 / p99', `${two.ackLatencyMs.p50} ms / ${two.ackLatencyMs.p99} ms`],
            ['  non-2xx / errors', `${fmtInt(two.non2xx)} / ${fmtInt(two.errors)}`],
            ['delivered while sending', `${fmtInt(two.deliveredWhileSending)} (${fmtInt(two.deliveredPerSecondWhileSending)}/s)`],
            [
              'delivered after sending stopped (drain)',
              `${fmtInt(two.delivered - two.deliveredWhileSending)} in ${two.drainSeconds.toFixed(1)} s (${fmtInt(two.deliveredPerSecondDraining)}/s)`,
            ],
            [
              'deliveries/s, whole phase (first send → last delivery)',
              `${fmtInt(two.deliveredPerSecondWholePhase)}/s (${fmtInt(two.delivered)} in ${two.wholePhaseSeconds.toFixed(1)} s)`,
            ],
            ...(two.missing ? [['MISSING (never delivered)', fmtInt(two.missing)]] : []),
          ],
        ),
      );
      out.push(`  deliveries per second since the phase started: ${two.timeline.join(' ')}`);
    }
    if (targets.length) {
      out.push('');
      out.push(table(['measurement', 'measured', 'target', 'verdict'], targets));
    }
    out.push('');
    out.push(`Where the CPU went (${os.cpus().length} cores; % of the whole machine; bench = sender + receiver in this process):`);
    if (one) out.push(cpuLine('(1) steady', one.cpu, one.delivered));
    if (two) out.push(cpuLine('(2) full speed, sending', two.cpuSending, two.accepted));
    if (two) out.push(cpuLine('(2) full speed, draining', two.cpuDraining, Math.max(0, two.delivered - two.deliveredWhileSending)));
    const loadEnd = os.loadavg().map((l) => round(l, 2));
    out.push('');
    out.push(`Event logs by execution_status at the end: ${JSON.stringify(executionStatus)}; receiver duplicates ${receiver.duplicates}.`);
    out.push(
      `Load average: ${machine.loadAverageAtStart.join(' ')} at start, ${loadEnd.join(' ')} at end (other work shares this machine).`,
    );
    const warnings = [one?.cpu, two?.cpuSending, two?.cpuDraining].flatMap((u) =>
      u && u.lost.length ? [`${u.lost.join(', ')} went away during a phase: do not trust its figures`] : [],
    );
    if (receiver.withoutId) warnings.push(`${receiver.withoutId} deliveries without a webhook-id header`);
    if (warnings.length) out.push('', 'Warnings:', ...warnings.map((w) => `  - ${w}`));
    process.stdout.write(`${out.join('\n')}\n`);

    const partial = ['1', '2'].some((p) => !ONLY.has(p));
    const file = writeResults(`e2e${QUICK ? '-quick' : ''}${partial ? `-${[...ONLY].sort().join('')}` : ''}`, {
      command: `npm run bench -- e2e ${process.argv.slice(2).join(' ')}`.trim(),
      machine: { ...machine, loadAverageAtEnd: loadEnd },
      settings,
      targets: TARGET,
      verdicts: Object.fromEntries(targets.map((t) => [t[0], { measured: t[1], target: t[2], met: t[3] === 'met' }])),
      results: { steady: one, fullSpeed: two, executionStatus, receiverDuplicates: receiver.duplicates },
    });
    log(`results: ${file}`);
  } finally {
    await stopTracked(procs);
    await receiver.stop();
    live.envs.delete(e);
    await closeBenchEnv(e, KEEP);
  }
}

function ms(v: number): string {
  return Number.isFinite(v) ? (v >= 10_000 ? fmtMs(v) : `${v.toFixed(1)} ms`) : '—';
}

runBench('e2e', main, () => live.abandon());
