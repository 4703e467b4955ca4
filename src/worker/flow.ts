/**
 * The arithmetic of per-trigger delivery flow control (docs/delivery-flow.md): how many of a trigger's
 * deliveries may go now under its rate and concurrency limits, how long the others wait, and which of an
 * ordered trigger's events may go, in which order. Pure: the caller passes the state read from the database
 * and the database's clock, so it is unit-tested with a fake clock.
 */
import { backoffMs } from '../util';

export type HoldReason = 'rate' | 'concurrency' | 'order';

/** A delivery that may not go now: it waits `waitMs` (through the outbox) and is not an attempt. */
export interface Hold {
  reason: HoldReason;
  waitMs: number;
}

/** The rate limit's burst: 1 up to 199/s, then 1 % of the rate, so a one-second window holds at most rate + burst. */
export function rateBurst(ratePerSecond: number): number {
  return Math.max(1, Math.floor(ratePerSecond / 100));
}

/**
 * A rate limit as GCRA ("virtual scheduling"): `tatUs` is the theoretical arrival time of the next delivery.
 * A delivery may go at `nowUs` when tat − tolerance ≤ now, and moves tat on by one emission interval
 * (rounded up, so the rate is never exceeded). Tolerance = (burst − 1) intervals, so n deliveries in a
 * window of w seconds are at most burst + rate × w. Refused deliveries get the wait until their turn if the
 * ones before them went on time: spread one interval apart, so they do not all come back at once.
 */
export function admitRate(
  tatUs: number,
  nowUs: number,
  ratePerSecond: number,
  wanted: number,
): { admitted: number; tatUs: number; waitsMs: number[] } {
  const intervalUs = Math.ceil(1_000_000 / ratePerSecond);
  const toleranceUs = (rateBurst(ratePerSecond) - 1) * intervalUs;
  let tat = Math.max(tatUs, nowUs);
  let admitted = 0;
  while (admitted < wanted && tat - toleranceUs <= nowUs) {
    tat += intervalUs;
    admitted++;
  }
  const waitsMs: number[] = [];
  for (let j = 0; j < wanted - admitted; j++) waitsMs.push(Math.ceil((tat - toleranceUs + j * intervalUs - nowUs) / 1000));
  return { admitted, tatUs: tat, waitsMs };
}

/** How many more requests may start: the limit minus the live slots (never below 0). */
export function admitConcurrency(inFlight: number, max: number, wanted: number): number {
  return Math.max(0, Math.min(wanted, max - inFlight));
}

/**
 * How long a delivery refused by a concurrency limit waits: nobody knows when a slot frees, so it backs off
 * (jittered, growing with the times it was held) — short first, as a request usually ends soon.
 */
export function concurrencyWaitMs(held: number, timeoutMs: number, random: () => number = Math.random): number {
  return 20 + backoffMs(held + 1, 50, Math.min(timeoutMs, 2000), random);
}

/**
 * How long a later event of an ordered trigger waits while an earlier one has not ended: until the earlier
 * one's next attempt is due (when it waits for one) plus a margin for that attempt, else a growing back-off.
 */
export function orderWaitMs(headNextAttemptMs: number | null, nowMs: number, held: number, random: () => number = Math.random): number {
  const backoff = 50 + backoffMs(held + 1, 100, 3000, random);
  return headNextAttemptMs !== null && headNextAttemptMs > nowMs ? headNextAttemptMs - nowMs + backoff : backoff;
}

/**
 * Which events of an ordered trigger may go in this batch: `oldest` lists the trigger's events that have
 * not ended, oldest first (firing order); the batch may send the longest run of them from the start that
 * it holds, one after another. Everything else it holds waits: an older event has not ended.
 */
export function orderedRun(oldest: readonly string[], inBatch: ReadonlySet<string>): string[] {
  const run: string[] = [];
  for (const id of oldest) {
    if (!inBatch.has(id)) break;
    run.push(id);
  }
  return run;
}
