import type { ClaimPoint } from '../db/schedules';

/**
 * How long after a claim its range is looked at again by the lane's next claims (ms): a row that claim
 * skipped (SKIP LOCKED) because another transaction held it is claimed by this lane once that transaction
 * ends, if it ends within this time. Another claim's transaction (claim, Kafka's acknowledgements, commit)
 * takes 10–50 ms at a steady rate on the bench machine. Seen in the steady bench before this rescan: the row
 * right after a follower lane's claim from the head was skipped by lane 0's claim while that transaction ran,
 * once every few hundred milliseconds, and waited for lane 0's next claim from the head.
 */
export const CLAIM_RESCAN_MS = 50;

/**
 * A claim from the head costs what it walks: with InnoDB's purge held up (a long transaction's read view: a
 * backup, a report) the fired rows' entries pile up at the head, and each such claim walks all of them. So a
 * lane's periodic claim from the head waits at least this many times as long as its last one took.
 */
export const HEAD_CLAIM_COST_FACTOR = 10;

/**
 * Where a fire lane's next claim starts (pure state, one per lane).
 *
 * A claim from the head of the pending rows walks the delete-marked index entries of the rows fired in the
 * last few hundred milliseconds (until InnoDB's purge removes them), at a cost per entry, and many more of
 * them while a long transaction holds the purge up (db/schedules.ts, CLAIM_DUE_AFTER_SQL). So the lane's
 * claims start past the end of its own claim made CLAIM_RESCAN_MS before (the newest that old), in the
 * index's order (fire_at, then id): what lies behind that point was in the range of that claim or of an
 * earlier one, which either took it or found it held by another transaction for longer than
 * CLAIM_RESCAN_MS.
 *
 * Rows can still be left behind the point: one held that long (a batch that rolled back, a slow Kafka), or
 * one inserted after the claim with a time already behind the point (an occurrence due at once, committed a
 * moment after a claim passed its instant; a recurring trigger's next occurrence when it catches up is
 * handled by the fire batch, which then starts the lane at the head). So the lane claims from the head every
 * `headEveryMs` (SCHEDULER_INTERVAL, the relay's idle poll ceiling: such a row waits about that much more),
 * or HEAD_CLAIM_COST_FACTOR times as long as its last claim from the head took if that is longer, and at once
 * after a claim that came back empty, that left rows pending, or that failed.
 */
export class ClaimCursor {
  /** The lane's committed claims since the cursor was last reset: when each started and where it ended, oldest first. */
  private claims: Array<{ atMs: number; end: ClaimPoint }> = [];
  /** When the next periodic claim from the head is due. */
  private headDueAtMs = -Infinity;

  constructor(
    private readonly headEveryMs: number,
    private readonly rescanMs: number = CLAIM_RESCAN_MS,
  ) {}

  /** Where the claim starting now starts: past a point, or (null) at the head. */
  start(nowMs: number = Date.now()): ClaimPoint | null {
    if (nowMs >= this.headDueAtMs) return null;
    const before = nowMs - this.rescanMs;
    while (this.claims.length > 1 && this.claims[1]!.atMs <= before) this.claims.shift();
    const c = this.claims[0];
    return c && c.atMs <= before ? c.end : null;
  }

  /** After a claim from the head (start gave null) that took `tookMs` to come back: when the next one is due. */
  fromHead(nowMs: number, tookMs: number): void {
    this.headDueAtMs = nowMs + Math.max(this.headEveryMs, HEAD_CLAIM_COST_FACTOR * tookMs);
  }

  /**
   * After a committed claim that started at `atMs`: `end` is the point past its rows when all of them left
   * the pending state, else null (it came back empty or left rows pending), and the next claims start at the
   * head until a claim is CLAIM_RESCAN_MS old.
   */
  committed(atMs: number, end: ClaimPoint | null): void {
    if (end === null) this.reset();
    else this.claims.push({ atMs, end });
  }

  /** After a claim that failed: the next claims start at the head. */
  reset(): void {
    this.claims = [];
  }
}
