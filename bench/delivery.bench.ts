/**
 * CPU of one HTTP delivery in the worker process: `npm run bench -- delivery [--n=5000] [--concurrency=50]`.
 *
 * `deliver` (node:http, keep-alive agents, the SSRF guard in the socket's lookup) against the fetch-based
 * delivery it replaced (kept below as `fetchDeliver`, the same headers, signature and body prefix), both to
 * a receiver answering 200 "ok" in a child process, so process.cpuUsage() counts the client alone.
 * Each round is n sequential deliveries, then n with `concurrency` in flight; the two clients alternate
 * (fetch, http, fetch, http) so a busy neighbour on the shared machine hits both. Private networks are
 * allowed (the receiver is on 127.0.0.1, an address literal), so the old per-delivery dns.lookup of the
 * guard is not in the fetch numbers: with a host name it would add one lookup per delivery there.
 */
import { spawn } from 'node:child_process';
import { deliver, RESPONSE_BODY_KEEP_BYTES, signStandardWebhook, type DeliveryRequest } from '../src/worker/delivery';
import { numArg, parseArgs, runBench } from './lib';

const RECEIVER = `
  const http = require('node:http');
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

/** The delivery as it was before node:http (fetch with redirect manual and AbortSignal.timeout). */
async function fetchDeliver(req: DeliveryRequest): Promise<number> {
  const body = JSON.stringify(req.payload ?? null);
  const ts = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    ...req.config.headers,
    'content-type': 'application/json',
    'user-agent': 'event-trigger-platform/0.1',
    'webhook-id': req.eventId,
    'webhook-timestamp': String(ts),
    'idempotency-key': req.eventId,
  };
  if (req.config.secret) headers['webhook-signature'] = signStandardWebhook(req.config.secret, req.eventId, ts, body);
  const res = await fetch(req.config.endpoint, {
    method: req.config.http_method,
    headers,
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(req.config.timeout_ms),
  });
  await readWebBodyPrefix(res.body, RESPONSE_BODY_KEEP_BYTES);
  return res.status;
}

/** The old body reader, over the web stream fetch returns (the drain bound left out: bodies here are 2 bytes). */
async function readWebBodyPrefix(body: ReadableStream<Uint8Array> | null, keep: number): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let kept = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (kept < keep) {
      const part = Buffer.from(value.buffer, value.byteOffset, Math.min(value.byteLength, keep - kept));
      chunks.push(Buffer.from(part));
      kept += part.byteLength;
    }
  }
  return Buffer.concat(chunks);
}

async function httpDeliver(req: DeliveryRequest): Promise<number> {
  const r = await deliver(req, true);
  if (r.outcome.kind !== 'success') throw new Error(JSON.stringify(r.outcome));
  return r.outcome.status;
}

async function run(client: (r: DeliveryRequest) => Promise<number>, endpoint: string, n: number, concurrency: number) {
  const req = (i: number): DeliveryRequest => ({
    eventId: `evt_${i}`,
    payload: { order: i, items: [{ sku: 'A-1', qty: 2 }], note: 'benchmark' },
    config: {
      endpoint,
      http_method: 'POST',
      headers: { 'x-team': 'bench' },
      timeout_ms: 10_000,
      retry: { max_attempts: 1, backoff_ms: 1000 },
      secret: 'bench-secret-0123456789',
    },
  });
  const measure = async (body: () => Promise<void>) => {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await body();
    const cpu = process.cpuUsage(cpu0);
    return { cpuUsPer: (cpu.user + cpu.system) / n, wallMs: Number(process.hrtime.bigint() - t0) / 1e6 };
  };
  const sequential = await measure(async () => {
    for (let i = 0; i < n; i++) if ((await client(req(i))) !== 200) throw new Error('not 200');
  });
  const concurrent = await measure(async () => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) if ((await client(req(next++))) !== 200) throw new Error('not 200');
      }),
    );
  });
  return { sequential, concurrent };
}

async function main(): Promise<void> {
  const args = parseArgs();
  const n = numArg(args, 'n', 5000);
  const concurrency = numArg(args, 'concurrency', 50);
  const receiver = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => receiver.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))));
  const endpoint = `http://127.0.0.1:${port}/hook`;
  try {
    const clients = { fetch: fetchDeliver, 'node:http': httpDeliver } as const;
    for (const c of Object.values(clients)) await run(c, endpoint, 500, concurrency); // warm-up (JIT, sockets)
    const results: Record<string, { seq: number[]; conc: number[]; wall: number[] }> = {};
    for (let round = 0; round < 2; round++) {
      for (const [name, c] of Object.entries(clients)) {
        const r = await run(c, endpoint, n, concurrency);
        const acc = (results[name] ??= { seq: [], conc: [], wall: [] });
        acc.seq.push(r.sequential.cpuUsPer);
        acc.conc.push(r.concurrent.cpuUsPer);
        acc.wall.push(r.sequential.wallMs + r.concurrent.wallMs);
      }
    }
    const best = (xs: number[]) => Math.min(...xs);
    console.log(`CPU µs per delivery in the worker process (best of 2 rounds; n=${n}, concurrency ${concurrency})`);
    console.log('client      sequential  concurrent  wall ms (both, best)');
    for (const [name, r] of Object.entries(results)) {
      console.log(
        `${name.padEnd(10)}  ${best(r.seq).toFixed(1).padStart(10)}  ${best(r.conc).toFixed(1).padStart(10)}  ${best(r.wall).toFixed(0).padStart(8)}`,
      );
    }
    const f = results.fetch!;
    const h = results['node:http']!;
    console.log(
      `node:http / fetch: sequential ${(best(h.seq) / best(f.seq)).toFixed(2)}×, concurrent ${(best(h.conc) / best(f.conc)).toFixed(2)}×`,
    );
  } finally {
    receiver.kill();
  }
}

runBench('delivery', main);
