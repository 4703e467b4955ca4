/**
 * Pieces shared by the webhook benchmarks (ingest.bench.ts, e2e.bench.ts): the sample trigger schema and
 * payload, spawned platform processes and their ports, webhook trigger creation over the API, a typed
 * wrapper of autocannon's programmatic API, and what an interrupted run must clean up.
 */
import http from 'node:http';
import { postJson } from '../test/helpers/post-json';
import { spawnRole, type RoleProcess } from '../test/helpers/proc';
import { fmtCpuPerEvent, Live, progress, fmtInt, type CpuUse } from './lib';

// ------------------------------------------------------------------------------------- trigger, payload

/** A small JSON Schema, as a real webhook trigger would carry (ajv-compiled once per trigger version). */
export const SCHEMA = {
  type: 'object',
  required: ['order_id', 'amount', 'currency'],
  properties: {
    order_id: { type: 'string', maxLength: 64 },
    amount: { type: 'number', minimum: 0 },
    currency: { type: 'string', pattern: '^[A-Z]{3}$' },
    customer: { type: 'object', properties: { id: { type: 'string' }, email: { type: 'string' } } },
    items: {
      type: 'array',
      maxItems: 100,
      items: { type: 'object', required: ['sku', 'qty'], properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } } },
    },
    channel: { type: 'string' },
  },
};

/** A ≈200-byte order event matching SCHEMA. */
export function samplePayload(i = 1234): Record<string, unknown> {
  return {
    order_id: `ord_${String(i).padStart(10, '0')}`,
    amount: 129.95,
    currency: 'EUR',
    customer: { id: 'cus_8f3a2b71', email: 'jane.doe@example.com' },
    items: [
      { sku: 'SKU-100123', qty: 2 },
      { sku: 'SKU-200456', qty: 1 },
    ],
    channel: 'web',
  };
}

export const PAYLOAD_BODY = JSON.stringify(samplePayload());

// --------------------------------------------------------------------------------------- processes

/** Processes and environments an interrupted run must clean up. */
export const live = new Live();

export async function spawnTracked(role: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<RoleProcess> {
  const p = await spawnRole(role, env, 90_000, nodeArgs);
  live.procs.add(p);
  return p;
}

export async function stopTracked(procs: RoleProcess[]): Promise<void> {
  await Promise.all(
    procs.map(async (p) => {
      live.procs.delete(p);
      const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
      await p.kill('SIGTERM');
      clearTimeout(t);
    }),
  );
}

/** The api's bound port, from its "started" log line (`"ports":{"api":<port>}`). */
export function apiPortOf(p: RoleProcess): number {
  const m = /"ports":\{[^}]*"api":(\d+)/.exec(p.output());
  if (!m) throw new Error(`no api port in the process output:\n${p.output().slice(0, 2000)}`);
  return Number(m[1]);
}

/** Ctrl-C (or run.mjs passing a signal on): kill the spawned processes, drop the databases and topics. */
// ------------------------------------------------------------------------------------------- HTTP

export { postJson };
export type { JsonAnswer } from '../test/helpers/post-json';

/** Creates `n` webhook triggers with SCHEMA over the API; returns their ids. */
export async function createWebhookTriggers(apiBase: string, n: number, endpoint: string): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  try {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await postJson(agent, `${apiBase}/api/v1/triggers`, {
        name: `bench-webhook-${i}`,
        type: 'webhook',
        config: { endpoint, schema: SCHEMA, retry: { max_attempts: 3, backoff_ms: 1000 } },
      });
      if (r.status !== 201) throw new Error(`creating a webhook trigger: ${r.status} ${JSON.stringify(r.body)}`);
      ids.push((r.body as { id: string }).id);
    }
    return ids;
  } finally {
    agent.destroy();
  }
}

// ------------------------------------------------------------------------------------- autocannon

/** The part of an hdr-histogram-percentiles-obj that the benchmarks read (latency in ms). */
export interface Histogram {
  average: number;
  mean: number;
  stddev: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p97_5: number;
  p99: number;
  p99_9: number;
}

export interface AutocannonResult {
  duration: number;
  latency: Histogram;
  requests: Histogram & { total: number; sent: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  statusCodeStats: Record<string, { count: number }>;
}

export interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  overallRate?: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  requests?: Array<{ method?: string; path?: string; headers?: Record<string, string>; body?: string }>;
  timeout?: number;
}

interface AutocannonInstance {
  on(event: 'response', fn: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): void;
  stop(): void;
}

type AutocannonFn = (opts: AutocannonOptions, cb: (err: Error | null, result: AutocannonResult) => void) => AutocannonInstance;

// autocannon ships no type declarations: its programmatic API, as far as used here, is typed above.
const autocannon = require('autocannon') as AutocannonFn;

/** One autocannon run with a progress line; 2xx/s is computed from the 2xx count and the run's duration. */
export function runAutocannon(label: string, opts: AutocannonOptions): Promise<AutocannonResult & { okPerSecond: number }> {
  let responses = 0;
  const t0 = Date.now();
  const stop = progress(() => `${label}: ${fmtInt(responses)} responses in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return new Promise((resolve, reject) => {
    const inst = autocannon({ timeout: 10, ...opts }, (err, result) => {
      stop();
      if (err) return reject(err);
      resolve({ ...result, okPerSecond: result['2xx'] / result.duration });
    });
    inst.on('response', () => void responses++);
  });
}

// ------------------------------------------------------------------------------------------ report

export function verdict(ok: boolean): string {
  return ok ? 'met' : 'NOT met';
}

/** CPU seconds and machine share per process group; with `events`, a second line of CPU µs per event. */
export function cpuLine(label: string, c: CpuUse, events?: number): string {
  const parts = Object.entries(c.cpuSeconds)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v.toFixed(1)} s (${Math.round((c.machineShare[k] ?? 0) * 100)}%)`);
  const line = `  ${label.padEnd(26)} wall ${c.wallSeconds.toFixed(1)} s; CPU ${parts.join(', ')}`;
  return events === undefined ? line : `${line}\n  ${''.padEnd(26)} ${fmtCpuPerEvent(c, events)}`;
}
