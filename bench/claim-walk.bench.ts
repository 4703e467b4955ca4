/**
 * Where a fire lane's claim starts, and what the server pays for it (src/relay/claim-cursor.ts).
 *
 *   npm run bench -- claim-walk [--quick] [--rate=N] [--seconds=N] [--rounds=R]
 *
 * A fired schedule row is deleted, but its entry in idx_schedules_claim stays, delete-marked, until InnoDB's
 * purge removes it, at the head of the pending range where a claim from the head starts. This bench writes
 * occurrences due at RATE a second for SECONDS (full 2,000 for 10 s, quick 2,000 for 4 s) and claims them as
 * one relay's fire lane does at that rate: a claim of up to 500 every 20 ms (the fire window and about a
 * batch's time), the claimed rows deleted and committed, with the product's statements. Two ways, alternating
 * round by round:
 *   - from the head: every claim is CLAIM_DUE_SQL (the relay before the claim cursor);
 *   - the product: the lane's ClaimCursor chooses, claims past its own earlier claims and from the head every
 *     SCHEDULER_INTERVAL (250 ms).
 * Each way runs twice: with the purge running, and with another connection holding a read view open for the
 * whole run (a backup, a long report), which holds the purge up. Around each claim it reads the database
 * server's CPU time from /proc (every thread's schedstat), and over the whole run the server's CPU per fired
 * row (claims, deletes, commits, and whatever the purge does meanwhile).
 *
 * The server must run on this machine (its pid file is read). Results: bench/results/<date>-claim-walk.json.
 */
import {
  heldConnection,
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
import { claimDueStatement, claimEnd, deleteFiredStatement, type ClaimPoint } from '../src/db/schedules';
import { ClaimCursor } from '../src/relay/claim-cursor';
import { sleep } from '../src/util';

const args = parseArgs();
const QUICK = args.flags.has('quick');
const RATE = intArg(args, 'rate', 2000);
const SECONDS = intArg(args, 'seconds', QUICK ? 4 : 10);
const ROUNDS = intArg(args, 'rounds', QUICK ? 1 : 2);
const LIMIT = 500;
const GAP_MS = 20;
/** SCHEDULER_INTERVAL's default: how often the product's lane claims from the head. */
const HEAD_EVERY_MS = 250;

const WAYS = ['from the head', 'past its claims (the product)'] as const;
type Way = (typeof WAYS)[number];
const PURGE = ['purge running', 'purge held (a read view open)'] as const;
type Purge = (typeof PURGE)[number];

const live = new Live();

interface Run {
  way: Way;
  purge: Purge;
  round: number;
  claims: number;
  headClaims: number;
  fired: number;
  /** Server CPU per claim statement (µs). */
  claimUs: number;
  /** Server CPU per fired row over the whole run (µs). */
  perRowUs: number;
}

/** Writes RATE × SECONDS occurrences due from `startMs` on, RATE a second, in id order. */
async function writeStream(e: BenchEnv, startMs: number): Promise<void> {
  const n = RATE * SECONDS;
  await insertScheduledTriggers(e.db, n, { fireAt: new Date(startMs + 3600_000) });
  // One statement spreads them over the stream: the row with the i-th id from the first due at start + i / RATE s.
  const [[{ first }]] = (await e.db.raw('SELECT MIN(id) AS first FROM trigger_schedules')) as [[{ first: number }]];
  await e.db.raw('UPDATE trigger_schedules SET fire_at = ? + INTERVAL (id - ?) * ? MICROSECOND', [
    new Date(startMs),
    first,
    Math.round(1e6 / RATE),
  ]);
}

/** Claims the stream as a lane does at a steady rate, one claim every GAP_MS; the server's CPU meanwhile. */
async function claimStream(q: ConnQuery, pid: number, way: Way): Promise<Omit<Run, 'way' | 'purge' | 'round'>> {
  const total = RATE * SECONDS;
  const cursor = way === WAYS[1] ? new ClaimCursor(HEAD_EVERY_MS) : null;
  let claimNs = 0;
  let claims = 0;
  let headClaims = 0;
  let fired = 0;
  const t0 = serverCpuNs(pid);
  while (fired < total) {
    const atMs = Date.now();
    const from: ClaimPoint | null = cursor ? cursor.start(atMs) : null;
    await q('BEGIN');
    const s0 = serverCpuNs(pid);
    const { sql, values } = claimDueStatement(LIMIT, from);
    const rows = (await q(sql, values as unknown[])) as Array<{ id: number; fire_at: Date }>;
    claimNs += serverCpuNs(pid) - s0;
    claims++;
    if (from === null) {
      headClaims++;
      cursor?.fromHead(Date.now(), Date.now() - atMs);
    }
    if (rows.length > 0) {
      const del = deleteFiredStatement(rows.map((r) => r.id));
      await q(del.sql, del.values as unknown[]);
    }
    await q('COMMIT');
    cursor?.committed(atMs, rows.length > 0 ? claimEnd(rows) : null);
    fired += rows.length;
    if (rows.length < LIMIT) await sleep(GAP_MS);
  }
  return {
    claims,
    headClaims,
    fired,
    claimUs: round(claimNs / claims / 1000, 0),
    perRowUs: round((serverCpuNs(pid) - t0) / fired / 1000, 1),
  };
}

async function main(): Promise<void> {
  await withMeasuredServer('claim-walk', live, async ({ e, pid, q }) => {
    log(`claim-walk: ${RATE.toLocaleString()} occurrences a second for ${SECONDS} s, a claim every ${GAP_MS} ms, server pid ${pid}`);
    const runs: Run[] = [];
    await q('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    for (let r = 1; r <= ROUNDS; r++) {
      for (const purge of PURGE) {
        // Alternating which goes first, so a drift of the machine does not favour one.
        for (const way of r % 2 === 1 ? WAYS : [...WAYS].reverse()) {
          await e.db.raw('DELETE FROM trigger_schedules');
          await e.db.raw('DELETE FROM triggers');
          const start = Date.now() + 3000 + SECONDS * 400;
          await writeStream(e, start);
          const holder = purge === PURGE[1] ? await heldConnection(e.db) : null;
          try {
            if (holder) {
              // REPEATABLE READ, as a backup's or a report's: the pool's connections read committed, whose read
              // view lasts one statement and would not hold the purge up.
              await holder.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
              await holder.query('START TRANSACTION WITH CONSISTENT SNAPSHOT');
              await holder.query('SELECT COUNT(*) FROM triggers');
            }
            const wait = start - Date.now();
            if (wait < 0) throw new Error(`the stream was written ${-wait} ms after it fell due`);
            await sleep(wait);
            const run = { way, purge, round: r, ...(await claimStream(q, pid, way)) };
            runs.push(run);
            log(
              `  round ${r}, ${purge}, ${way}: ${run.claims} claims (${run.headClaims} from the head), ` +
                `${run.claimUs} µs of server CPU per claim, ${run.perRowUs} per fired row`,
            );
          } finally {
            if (holder) {
              await holder.query('ROLLBACK');
              await holder.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
              holder.release();
            }
          }
        }
      }
    }
    const mean = (way: Way, purge: Purge, f: (x: Run) => number) => {
      const xs = runs.filter((x) => x.way === way && x.purge === purge).map(f);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    const rows = PURGE.flatMap((purge) =>
      WAYS.map((way) => [
        purge,
        way,
        String(
          round(
            mean(way, purge, (x) => x.claimUs),
            0,
          ),
        ),
        String(
          round(
            mean(way, purge, (x) => x.perRowUs),
            1,
          ),
        ),
      ]),
    );
    process.stdout.write(`\nServer CPU (µs), mean of ${ROUNDS} round(s)\n`);
    process.stdout.write(`${table(['purge', 'claims start', 'per claim', 'per fired row (whole run)'], rows)}\n`);
    const ratios = Object.fromEntries(
      PURGE.map((purge) => [
        purge,
        {
          perClaim: round(mean(WAYS[1], purge, (x) => x.claimUs) / mean(WAYS[0], purge, (x) => x.claimUs), 2),
          perRow: round(mean(WAYS[1], purge, (x) => x.perRowUs) / mean(WAYS[0], purge, (x) => x.perRowUs), 2),
        },
      ]),
    );
    for (const purge of PURGE)
      log(`${purge}: the product ÷ from the head: ${ratios[purge]!.perClaim}× per claim, ${ratios[purge]!.perRow}× per fired row`);
    writeResults(QUICK ? 'claim-walk-quick' : 'claim-walk', { rate: RATE, seconds: SECONDS, rounds: ROUNDS, runs, ratios });
  });
}

runBench('claim-walk', main, () => live.abandon());
