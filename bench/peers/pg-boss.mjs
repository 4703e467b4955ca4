// pg-boss adapter of the peers benchmark (see proc.mjs). Settings in cfg.settings (chosen and recorded by
// bench/peers.bench.ts): batchSize, pollingIntervalSeconds, workersPerProcess (work() calls per process:
// pg-boss 10 dropped teamSize, each work() is its own polling loop), poolMax.
import PgBoss from 'pg-boss';

function boss(cfg) {
  const b = new PgBoss({ connectionString: cfg.pgUrl, max: cfg.settings.poolMax });
  b.on('error', (e) => process.stderr.write(`[pg-boss] error: ${e?.message ?? e}\n`));
  return b;
}

export default {
  async producer(cfg) {
    const b = boss(cfg);
    await b.start();
    if (!(await b.getQueue(cfg.queue))) await b.createQueue(cfg.queue);
    return {
      add: (items) =>
        b.insert(
          items.map(({ i, due }) =>
            due === null ? { name: cfg.queue, data: { i } } : { name: cfg.queue, data: { i }, startAfter: new Date(due) },
          ),
        ),
      pending: async () =>
        (
          await b
            .getDb()
            .executeSql(`select count(*)::int as n from pgboss.job where name = $1 and state in ('created', 'retry', 'active')`, [
              cfg.queue,
            ])
        ).rows[0].n,
      close: () => b.stop({ graceful: false, wait: true }),
    };
  },

  async worker(cfg, seen) {
    const s = cfg.settings;
    const b = boss(cfg);
    await b.start();
    return {
      async start() {
        for (let w = 0; w < s.workersPerProcess; w++) {
          await b.work(cfg.queue, { batchSize: s.batchSize, pollingIntervalSeconds: s.pollingIntervalSeconds }, async (jobs) => {
            const now = Date.now();
            for (const j of jobs) seen(j.data.i, now);
          });
        }
      },
      async stop() {
        await b.stop({ graceful: true, wait: true, timeout: 10_000 });
      },
    };
  },
};
