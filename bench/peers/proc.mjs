#!/usr/bin/env node
// One peer process of the peers benchmark (bench/peers.bench.ts forks it with an IPC channel):
//
//   node bench/peers/proc.mjs <peer> worker     a worker process of that job queue with a no-op handler
//   node bench/peers/proc.mjs <peer> producer   the process that enqueues jobs and counts the unfinished ones
//
// <peer> is an adapter in this folder (graphile-worker, pg-boss, bullmq). The configuration (connection,
// queue name, the peer's settings) comes as JSON in PEER_CONFIG. Messages (both directions, {t: type}):
//   child → bench: ready | seen {d: [i, ms, i, ms, …]} | progress {done} | reply {id, result | error} | stopped
//   bench → child: go (worker: start taking jobs) | stop (worker) | call {id, op, args} (producer) | close
// A worker notes Date.now() when the peer hands a job to its handler — the moment a job is "consumed", as the
// platform's Kafka consumer notes the moment a message arrives — and sends those times in batches.

const [peer, role] = process.argv.slice(2);
if (!peer || !['worker', 'producer'].includes(role) || !process.send) {
  process.stderr.write('usage: forked by bench/peers.bench.ts: proc.mjs <peer> worker|producer (PEER_CONFIG in the environment)\n');
  process.exit(2);
}
const cfg = JSON.parse(process.env.PEER_CONFIG ?? '{}');
const adapter = (await import(`./${peer}.mjs`)).default;

const send = (m) => new Promise((resolve) => process.send(m, () => resolve()));
// The bench went away (killed): do not linger.
process.on('disconnect', () => process.exit(0));

function fail(err) {
  process.stderr.write(`[${peer} ${role}] ${err?.stack ?? err}\n`);
  process.exit(1);
}
process.on('unhandledRejection', fail);

if (role === 'worker') {
  let buf = [];
  const seen = (i, ms) => {
    buf.push(i, ms);
  };
  const flush = async () => {
    if (buf.length === 0) return;
    const d = buf;
    buf = [];
    await send({ t: 'seen', d });
  };
  const timer = setInterval(() => void flush(), 20);
  const worker = await adapter.worker(cfg, seen).catch(fail);
  process.on('message', (m) => {
    if (m?.t === 'go') worker.start().catch(fail);
    else if (m?.t === 'stop') {
      void (async () => {
        const killer = setTimeout(() => process.exit(0), 15_000);
        await worker.stop().catch((e) => process.stderr.write(`[${peer} worker] stop: ${e?.message ?? e}\n`));
        clearInterval(timer);
        await flush();
        await send({ t: 'stopped' });
        clearTimeout(killer);
        process.exit(0);
      })();
    }
  });
  await send({ t: 'ready' });
} else {
  const producer = await adapter.producer(cfg).catch(fail);
  const ops = {
    /** Enqueues `count` jobs i = from … from+count−1 in batches of `batch`, `inflight` batches at a time. */
    async enqueue({ from = 0, count, batch, inflight, due }) {
      const dueOf =
        due.mode === 'at' ? () => due.at : due.mode === 'rate' ? (i) => due.start + Math.floor((i * 1000) / due.rate) : () => null;
      let next = from;
      let done = 0;
      const end = from + count;
      const t0 = performance.now();
      const ticker = setInterval(() => void send({ t: 'progress', done }), 500);
      try {
        await Promise.all(
          Array.from({ length: inflight }, async () => {
            for (;;) {
              const start = next;
              if (start >= end) return;
              next = Math.min(end, start + batch);
              const items = [];
              for (let i = start; i < next; i++) items.push({ i, due: dueOf(i) });
              await producer.add(items);
              done += items.length;
            }
          }),
        );
      } finally {
        clearInterval(ticker);
      }
      return { seconds: (performance.now() - t0) / 1000 };
    },
    pending: () => producer.pending(),
  };
  process.on('message', (m) => {
    if (m?.t === 'call') {
      const op = ops[m.op];
      Promise.resolve()
        .then(() => (op ? op(m.args ?? {}) : Promise.reject(new Error(`unknown op ${m.op}`))))
        .then(
          (result) => send({ t: 'reply', id: m.id, result }),
          (e) => send({ t: 'reply', id: m.id, error: String(e?.stack ?? e) }),
        );
    } else if (m?.t === 'close') {
      void producer
        .close()
        .catch(() => undefined)
        .finally(() => process.exit(0));
    }
  });
  await send({ t: 'ready' });
}
