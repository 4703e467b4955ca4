/**
 * Where MariaDB's CPU goes when a relay fires a batch of due occurrences.
 *
 *   npm run bench -- fire-cost [--quick] [--events=N] [--rounds=R]
 *
 * Fills N time triggers due at once (full 50,000, quick 10,000) and fires them in batches of the relay's
 * size on one connection, with the relay's own statements (the claim with its triggers, the counted event
 * insert and its rollups, the fired schedule rows deleted and the batch's fire lags), one statement per round trip. Around each statement it
 * reads the database server's CPU time from /proc (every thread's schedstat, in nanoseconds), so each phase
 * gets the server's CPU per fired event. Background threads (purge, page flushing) count in the phase they
 * run during: compare runs of one bench, and rounds against each other for the spread.
 *
 * It also measures, in the same run and alternating with the product's statements, how the claimed rows'
 * triggers were read before: the claim alone, then a statement of its own reading the triggers by id,
 * where the product's claim joins them (a plain read beside the locking claim) and saves the fire
 * transaction a round trip.
 *
 * The server must run on this machine (its pid file is read). Results: bench/results/<date>-fire-cost.json.
 */
import { randomBytes } from 'node:crypto';
import {
  intArg,
  Live,
  log,
  parseArgs,
  round,
  runBench,
  serverCpuNs,
  table,
  withMeasuredServer,
  writeResults,
  type BenchEnv,
  type ConnQuery,
} from './lib';
import { insertScheduledTriggers } from '../test/helpers/fixtures';
import { CLAIM_DUE_SQL, claimedOf, deleteFiredStatement, type Claimed } from '../src/db/schedules';
import { insertFireLagsStatement } from '../src/db/fire-lags';
import { fireTriggerOf } from '../src/db/triggers';
import { insertCountedEventsStatements, type EventInsert } from '../src/db/events';
import { scheduledEventId } from '../src/triggers/event-id';

const args = parseArgs();
const QUICK = args.flags.has('quick');
const EVENTS = intArg(args, 'events', QUICK ? 10_000 : 50_000);
const ROUNDS = intArg(args, 'rounds', QUICK ? 2 : 3);
const BATCH = intArg(args, 'batch', 500);

const PHASES = ['claim', 'triggers', 'event_logs', 'event_counts', 'trigger_event_counts', 'schedule rows', 'begin + commit'] as const;
type Phase = (typeof PHASES)[number];
const PRODUCT = 'claim joins its triggers (the product)';
const BEFORE = 'claim, then the triggers read (before)';

/** The statements of before: the claim alone, then its rows' triggers by id. */
const CLAIM_ALONE_SQL = `SELECT id, trigger_id, fire_at, scheduled_for FROM trigger_schedules
      WHERE status = 'pending' AND fire_at <= UTC_TIMESTAMP(3)
      ORDER BY fire_at
      LIMIT ? FOR UPDATE SKIP LOCKED`;
const TRIGGERS_SQL = 'SELECT id, type, status, config, version FROM triggers WHERE id IN (?)';
const VARIANTS = [PRODUCT, BEFORE] as const;
type Variant = (typeof VARIANTS)[number];

const live = new Live();

/** The phase of one of insertCountedEventsStatements' statements, by the table it writes. */
function countedPhase(sql: string): Phase {
  if (sql.startsWith('INSERT INTO trigger_event_counts')) return 'trigger_event_counts';
  if (sql.startsWith('INSERT INTO event_counts')) return 'event_counts';
  return 'event_logs'; // the INSERT, and the session flag set before it and cleared after
}

/** Fires every due occurrence in batches; returns the server's ns per phase and the events fired. */
async function fireAll(q: ConnQuery, pid: number, variant: Variant): Promise<{ ns: Record<Phase, number>; fired: number }> {
  const ns = Object.fromEntries(PHASES.map((p) => [p, 0])) as Record<Phase, number>;
  let fired = 0;
  for (;;) {
    let t = serverCpuNs(pid);
    const step = async <T>(phase: Phase, sql: string, values: unknown[] = []): Promise<T> => {
      const r = (await q(sql, values)) as T;
      const n = serverCpuNs(pid);
      ns[phase] += n - t;
      t = n;
      return r;
    };
    await step('begin + commit', 'BEGIN');
    let claim: Claimed;
    if (variant === PRODUCT) {
      claim = claimedOf(await step<Array<Record<string, unknown>>>('claim', CLAIM_DUE_SQL, [BATCH]));
    } else {
      const due = await step<Claimed['due']>('claim', CLAIM_ALONE_SQL, [BATCH]);
      const rows =
        due.length === 0 ? [] : await step<Array<Record<string, unknown>>>('triggers', TRIGGERS_SQL, [due.map((d) => d.trigger_id)]);
      claim = { due, triggers: new Map(rows.map((r) => [r.id as string, fireTriggerOf(r.id as string, r)])) };
    }
    const due = claim.due;
    if (due.length === 0) {
      await step('begin + commit', 'COMMIT');
      return { ns, fired };
    }
    const now = new Date();
    // What the direct path logs: published events with their payload and a trace parent of their own.
    const events: EventInsert[] = due.map((d) => {
      const tr = claim.triggers.get(d.trigger_id)!;
      return {
        id: scheduledEventId(tr.id, d.fire_at),
        trigger_id: tr.id,
        trigger_type: tr.type,
        source: 'scheduler',
        is_test_run: false,
        payload: (tr.config as { payload?: unknown }).payload ?? null,
        scheduled_for: d.fire_at,
        fired_at: now,
        published_at: now,
        trace_parent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`,
      };
    });
    for (const st of insertCountedEventsStatements(events, now)) await step(countedPhase(st.sql), st.sql, st.values);
    const del = deleteFiredStatement(due.map((d) => d.id));
    await step('schedule rows', del.sql, del.values as unknown[]);
    const lags = insertFireLagsStatement(
      due.map((d) => Math.max(0, now.getTime() - d.fire_at.getTime())),
      now,
    );
    await step('schedule rows', lags.sql, lags.values as unknown[]);
    await step('begin + commit', 'COMMIT');
    fired += events.length;
  }
}

async function clear(e: BenchEnv): Promise<void> {
  for (const t of ['event_logs', 'event_counts', 'trigger_event_counts', 'trigger_schedules', 'triggers'])
    await e.db.raw('DELETE FROM ??', [t]);
}

async function main(): Promise<void> {
  await withMeasuredServer('fire-cost', live, async ({ e, pid, q }) => {
    log(
      `fire-cost: ${EVENTS.toLocaleString()} due occurrences, batches of ${BATCH}, ${ROUNDS} round(s) of each variant, server pid ${pid}`,
    );
    const runs: Array<{ variant: Variant; round: number; fired: number; usPerEvent: Record<Phase, number>; total: number }> = [];
    for (let r = 1; r <= ROUNDS; r++) {
      // Alternating which goes first, so a drift of the machine does not favour one.
      for (const variant of r % 2 === 1 ? VARIANTS : [...VARIANTS].reverse()) {
        await clear(e);
        await insertScheduledTriggers(e.db, EVENTS, { fireAt: new Date(Date.now() - 1000) });
        const { ns, fired } = await fireAll(q, pid, variant);
        if (fired !== EVENTS) throw new Error(`${variant}: fired ${fired} of ${EVENTS}`);
        const usPerEvent = Object.fromEntries(PHASES.map((p) => [p, round(ns[p] / fired / 1000, 2)])) as Record<Phase, number>;
        const total = round(PHASES.reduce((a, p) => a + ns[p], 0) / fired / 1000, 1);
        runs.push({ variant, round: r, fired, usPerEvent, total });
        log(`  round ${r}, ${variant}: ${total} µs of server CPU per fired event`);
      }
    }
    const mean = (v: Variant, f: (run: (typeof runs)[number]) => number) => {
      const xs = runs.filter((x) => x.variant === v).map(f);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    const spread = (v: Variant) => {
      const xs = runs.filter((x) => x.variant === v).map((x) => x.total);
      return `${Math.min(...xs)}–${Math.max(...xs)}`;
    };
    const rows = PHASES.map((p) => [
      p,
      ...VARIANTS.map((v) =>
        String(
          round(
            mean(v, (x) => x.usPerEvent[p]),
            1,
          ),
        ),
      ),
    ]);
    rows.push([
      'whole batch',
      ...VARIANTS.map(
        (v) =>
          `${round(
            mean(v, (x) => x.total),
            1,
          )} (${spread(v)})`,
      ),
    ]);
    process.stdout.write(`\nServer CPU µs per fired event, by phase (mean of ${ROUNDS} rounds; whole batch: mean (min–max))\n`);
    process.stdout.write(`${table(['phase', PRODUCT, BEFORE], rows)}\n`);
    const totalRatio = mean(PRODUCT, (x) => x.total) / mean(BEFORE, (x) => x.total);
    log(`whole batch, the product ÷ before: ${round(totalRatio, 2)}×`);
    writeResults(QUICK ? 'fire-cost-quick' : 'fire-cost', {
      events: EVENTS,
      batch: BATCH,
      rounds: ROUNDS,
      runs,
      ratio: { total: totalRatio },
    });
  });
}

runBench('fire-cost', main, () => live.abandon());
