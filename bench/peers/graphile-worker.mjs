// graphile-worker adapter of the peers benchmark (see proc.mjs). Settings in cfg.settings (chosen and
// recorded by bench/peers.bench.ts): concurrentJobs, maxPoolSize, pollInterval, localQueueSize,
// completeJobBatchDelay, failJobBatchDelay — the configuration of graphile-worker's own performance page.
import { Logger, makeWorkerUtils, run } from 'graphile-worker';

const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`[graphile-worker] ${level}: ${message}\n`);
});

export default {
  async producer(cfg) {
    const utils = await makeWorkerUtils({ connectionString: cfg.pgUrl, logger });
    await utils.migrate();
    return {
      add: (items) =>
        utils.addJobs(
          items.map(({ i, due }) =>
            due === null ? { identifier: 'noop', payload: { i } } : { identifier: 'noop', payload: { i }, runAt: new Date(due) },
          ),
        ),
      // Finished jobs are deleted: whatever is left is queued, locked or failed.
      pending: () => utils.withPgClient(async (c) => (await c.query('select count(*)::int as n from graphile_worker.jobs')).rows[0].n),
      close: () => utils.release(),
    };
  },

  async worker(cfg, seen) {
    const s = cfg.settings;
    let runner = null;
    return {
      async start() {
        runner = await run({
          connectionString: cfg.pgUrl,
          concurrency: s.concurrentJobs,
          maxPoolSize: s.maxPoolSize,
          pollInterval: s.pollInterval,
          noHandleSignals: true,
          logger,
          parsedCronItems: [],
          taskList: {
            noop: async (payload) => {
              seen(payload.i, Date.now());
            },
          },
          preset: {
            worker: {
              localQueue: { size: s.localQueueSize },
              completeJobBatchDelay: s.completeJobBatchDelay,
              failJobBatchDelay: s.failJobBatchDelay,
            },
          },
        });
      },
      async stop() {
        await runner?.stop();
      },
    };
  },
};
