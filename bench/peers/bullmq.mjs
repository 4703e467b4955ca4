// BullMQ adapter of the peers benchmark (see proc.mjs). Settings in cfg.settings (chosen and recorded by
// bench/peers.bench.ts): concurrency, removeOnComplete, removeOnFail — BullMQ's "going to production" and
// concurrency guides. Redis is the bench's own instance with AOF (appendfsync everysec) and noeviction.
import { Queue, Worker } from 'bullmq';

const connection = (cfg) => ({ host: cfg.redis.host, port: cfg.redis.port, maxRetriesPerRequest: null });

export default {
  async producer(cfg) {
    const q = new Queue(cfg.queue, { connection: connection(cfg) });
    q.on('error', (e) => process.stderr.write(`[bullmq] queue error: ${e?.message ?? e}\n`));
    await q.waitUntilReady();
    return {
      add: (items) => {
        const now = Date.now();
        return q.addBulk(
          items.map(({ i, due }) => ({
            name: 'noop',
            data: { i },
            opts: {
              removeOnComplete: cfg.settings.removeOnComplete,
              removeOnFail: cfg.settings.removeOnFail,
              ...(due === null ? {} : { delay: Math.max(0, due - now), timestamp: now }),
            },
          })),
        );
      },
      pending: async () => {
        const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused');
        return Object.values(c).reduce((a, b) => a + b, 0);
      },
      close: () => q.close(),
    };
  },

  async worker(cfg, seen) {
    const s = cfg.settings;
    const w = new Worker(
      cfg.queue,
      async (job) => {
        seen(job.data.i, Date.now());
      },
      {
        connection: connection(cfg),
        concurrency: s.concurrency,
        removeOnComplete: s.removeOnComplete,
        removeOnFail: s.removeOnFail,
        autorun: false,
      },
    );
    w.on('error', (e) => process.stderr.write(`[bullmq] worker error: ${e?.message ?? e}\n`));
    await w.waitUntilReady();
    return {
      async start() {
        void w.run();
      },
      async stop() {
        await w.close();
      },
    };
  },
};
