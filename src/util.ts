/** One back-off function for the whole codebase: exponential with full jitter, capped. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * exp);
}

/** MySQL/MariaDB errors that mean "try the transaction again", not "the request is wrong". */
const RETRYABLE_DB_ERRNOS = new Set([1213 /* deadlock */, 1205 /* lock wait timeout */, 2006, 2013, 1927 /* conn killed */]);
const RETRYABLE_DB_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'PROTOCOL_CONNECTION_LOST', 'ETIMEDOUT', 'EPIPE']);

export function isRetryableDbError(e: unknown): boolean {
  const err = e as { errno?: number; code?: string; name?: string } | null;
  if (!err) return false;
  if (typeof err.errno === 'number' && RETRYABLE_DB_ERRNOS.has(err.errno)) return true;
  if (typeof err.code === 'string' && RETRYABLE_DB_CODES.has(err.code)) return true;
  return err.name === 'KnexTimeoutError';
}

/** Runs fn, retrying deadlocks / lock timeouts / lost connections with jittered back-off. */
export async function withDbRetry<T>(fn: () => Promise<T>, maxAttempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= maxAttempts || !isRetryableDbError(e)) throw e;
      await sleep(backoffMs(attempt, 20, 1000) + 1);
    }
  }
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
