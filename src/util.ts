import { dbErrorKind, type DbErrorKind } from './db/errors';

/** One back-off function for the whole codebase: exponential with full jitter, capped. */
/** Milliseconds since the epoch, as `Date.now` gives them; passed in where tests need to move time. */
export type Clock = () => number;

export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * exp);
}

export { isRetryableDbError } from './db/errors';

/** The wait before retry `attempt` + 1 of a transaction that failed with a transient error of this kind. */
export function dbRetryDelayMs(kind: DbErrorKind, attempt: number): number {
  return kind === 'conflict' ? backoffMs(attempt, 20, 1000) + 1 : backoffMs(attempt, 100, 2000) + 50;
}

/**
 * Runs fn, retrying transient database errors (the table in db/errors.ts) with jittered back-off: a lost
 * race at once, an unavailable server or cluster node (a failover in progress) after a longer wait.
 * `retried`: the kinds tried again; an error of another kind is thrown at once.
 */
export async function withDbRetry<T>(
  fn: () => Promise<T>,
  maxAttempts = 5,
  retried: readonly DbErrorKind[] = ['conflict', 'unavailable'],
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const kind = dbErrorKind(e);
      if (attempt >= maxAttempts || kind === null || !retried.includes(kind)) throw e;
      await sleep(dbRetryDelayMs(kind, attempt));
    }
  }
}

/**
 * Runs a transaction again when it lost a race (a deadlock, a lock wait timeout, a Galera certification
 * failure): such a transaction wrote nothing, so running it again is correct even where the write is not
 * idempotent by key (a new id drawn per request). An unavailable server is not retried here: a connection
 * lost during COMMIT leaves the outcome unknown, and the caller answers 503 instead of writing twice.
 */
export function withConflictRetry<T>(fn: () => Promise<T>, maxAttempts = 5): Promise<T> {
  return withDbRetry(fn, maxAttempts, ['conflict']);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A delay that can be cut short: loops wait on it and `wake()` makes them poll again at once. */
export class WakeableDelay {
  private timer: NodeJS.Timeout | null = null;
  private resolver: (() => void) | null = null;

  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.resolver = resolve;
      this.timer = setTimeout(() => this.wake(), Math.max(0, ms));
    });
  }

  wake(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const r = this.resolver;
    this.resolver = null;
    r?.();
  }
}
