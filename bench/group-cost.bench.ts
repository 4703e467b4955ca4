/**
 * What a webhook group commit costs the database server, per event: the group written under one guard
 * (webhookGroupSql, the product) against every item checked on its own (webhookCheckedGroupSql, the path of
 * a group with a stale trigger, and the product's only path before).
 *
 *   npm run bench -- group-cost [--quick] [--group=N] [--groups=N] [--rounds=R]
 *
 * Writes GROUPS groups of GROUP webhook events (full 300 × 64, quick 60 × 64) over 256 webhook triggers, one
 * group after another on one connection, each way in turn, ROUNDS times, after 20 unmeasured groups. Around
 * each run it reads the server's CPU time from /proc (every thread's schedstat), so each way gets the
 * server's CPU per event. Background threads (purge, page flushing) count in the run they fall in: compare
 * rounds. The server must run on this machine (its pid file is read). Results: bench/results/<date>-group-cost.json.
 */
import { randomUUID } from 'node:crypto';
import { intArg, Live, log, parseArgs, round, runBench, serverCpuNs, table, withMeasuredServer, writeResults } from './lib';
import { createMultiStatementPool, type MultiPool } from '../src/db/multi';
import { webhookCheckedGroupSql, webhookGroupSql, writeGroupScript, type WebhookEventWrite } from '../src/db/ingest';
import { newEventId, newTriggerId } from '../src/triggers/event-id';

const args = parseArgs();
const QUICK = args.flags.has('quick');
const GROUP = intArg(args, 'group', 64);
const GROUPS = intArg(args, 'groups', QUICK ? 60 : 300);
const ROUNDS = intArg(args, 'rounds', QUICK ? 1 : 3);

const WAYS = {
  'one guard per group (the product)': webhookGroupSql,
  'every item checked (a stale trigger; before)': webhookCheckedGroupSql,
} as const;
type Way = keyof typeof WAYS;

const live = new Live();

function groupOf(triggers: string[], topic: string): WebhookEventWrite[] {
  return Array.from({ length: GROUP }, (_, i) => {
    const eventId = newEventId();
    const payload = JSON.stringify({ order_id: `A-${i}`, amount: 12.5, note: 'x'.repeat(60) });
    return {
      eventId,
      triggerId: triggers[(i * 7) % triggers.length]!,
      version: 1,
      payload,
      firedAt: new Date(),
      traceParent: `00-${randomUUID().replace(/-/g, '')}-${eventId.replace(/-/g, '').slice(0, 16)}-01`,
      topic,
      value: `{"id":"${eventId}","payload":${payload}}`,
      headers: JSON.stringify({ 'event-id': eventId, 'trigger-type': 'webhook' }),
      shard: i % 64,
    };
  });
}

async function write(pool: MultiPool, way: Way, items: WebhookEventWrite[]): Promise<void> {
  const written = await writeGroupScript(pool, WAYS[way](items));
  if (written !== items.length) throw new Error(`${way}: ${written} of ${items.length} events written`);
}

runBench(
  'group-cost',
  () =>
    withMeasuredServer('group-cost', live, async ({ e, pid }) => {
      const now = new Date();
      const triggers = Array.from({ length: 256 }, (_, i) => newTriggerId(now.getTime() + i));
      await e
        .db('triggers')
        .insert(
          triggers.map((id, i) => ({
            id,
            name: `group-cost-${i}`,
            type: 'webhook',
            status: 'active',
            config: '{}',
            version: 1,
            created_at: now,
            updated_at: now,
          })),
        );
      const pool = createMultiStatementPool(e.config.databaseUrl, 1);
      try {
        log(`group-cost: ${GROUPS} groups of ${GROUP} per run, ${ROUNDS} round(s)`);
        const runs: Array<{ way: Way; round: number; serverUsPerEvent: number }> = [];
        for (let r = 1; r <= ROUNDS; r++) {
          for (const way of Object.keys(WAYS) as Way[]) {
            for (let g = 0; g < 20; g++) await write(pool, way, groupOf(triggers, e.topic));
            const groups = Array.from({ length: GROUPS }, () => groupOf(triggers, e.topic));
            const cpu0 = serverCpuNs(pid);
            for (const items of groups) await write(pool, way, items);
            runs.push({ way, round: r, serverUsPerEvent: round((serverCpuNs(pid) - cpu0) / 1000 / (GROUPS * GROUP), 1) });
          }
        }
        log(
          table(
            ['way', 'round', 'server µs per event'],
            runs.map((x) => [x.way, String(x.round), String(x.serverUsPerEvent)]),
          ),
        );
        const mean = (way: Way) => runs.filter((x) => x.way === way).reduce((a, x) => a + x.serverUsPerEvent, 0) / ROUNDS;
        const [guarded, checked] = Object.keys(WAYS) as Way[];
        const ratio = round(mean(guarded!) / mean(checked!), 2);
        log(`server CPU per event, one guard per group ÷ every item checked: ${ratio}`);
        log(
          `results: ${writeResults(QUICK ? 'group-cost-quick' : 'group-cost', { group: GROUP, groups: GROUPS, rounds: ROUNDS, runs, ratio })}`,
        );
      } finally {
        await pool.end();
      }
    }),
  () => live.abandon(),
);
