/**
 * Per-endpoint circuit breaking, by origin (scheme://host:port), in memory per worker process.
 *
 * closed     every delivery goes out; consecutive retryable failures (5xx, timeout, network error) are
 *            counted, and any other answer (2xx, 4xx, 408, 429: the endpoint is up) resets the count.
 * open       after `failureThreshold` of them in a row: for `cooldownMs` no request goes to the origin;
 *            the worker defers those deliveries through the outbox retry path instead.
 * half-open  once the cool-down has passed, ONE delivery goes through as a probe (the others stay
 *            deferred): success closes the circuit, failure opens it for another cool-down.
 *
 * Pure state and a clock, no I/O, so it is unit-tested with a fake clock.
 */
export interface CircuitOptions {
  /** Consecutive retryable failures that open a circuit; 0 turns circuit breaking off. */
  failureThreshold: number;
  cooldownMs: number;
  now?: () => number;
}

export type Admission = { allowed: true; probe: boolean } | { allowed: false; retryInMs: number };

interface Circuit {
  failures: number;
  /** null while closed. */
  openUntil: number | null;
  /** While half-open: when the probe in flight stops blocking another probe (a lost probe must not wedge it). */
  probeUntil: number | null;
}

const ADMITTED: Admission = { allowed: true, probe: false };

export class CircuitBreakers {
  private readonly circuits = new Map<string, Circuit>();
  private readonly now: () => number;

  constructor(
    private readonly opts: CircuitOptions,
    private readonly onChange: (origin: string, open: boolean) => void = () => undefined,
  ) {
    this.now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.opts.failureThreshold > 0;
  }

  /** May a delivery to this origin go out now? If not, how long until it is worth trying again. */
  admit(origin: string): Admission {
    const c = this.enabled ? this.circuits.get(origin) : undefined;
    if (!c || c.openUntil === null) return ADMITTED;
    const now = this.now();
    if (now < c.openUntil) return { allowed: false, retryInMs: c.openUntil - now };
    if (c.probeUntil !== null && now < c.probeUntil) return { allowed: false, retryInMs: this.opts.cooldownMs };
    c.probeUntil = now + this.opts.cooldownMs;
    return { allowed: true, probe: true };
  }

  /** The result of a delivery that went out: `failed` = a retryable failure (5xx, timeout, network). */
  report(origin: string, failed: boolean, probe = false): void {
    if (!this.enabled) return;
    const c = this.circuits.get(origin);
    if (!failed) {
      // The endpoint answered: forget the origin (closed circuits with no failures are not kept).
      if (c?.openUntil !== null && c !== undefined) this.onChange(origin, false);
      this.circuits.delete(origin);
      return;
    }
    const now = this.now();
    const s = c ?? { failures: 0, openUntil: null, probeUntil: null };
    s.failures++;
    if (s.openUntil !== null) {
      // A failed probe opens it again; a late failure of a request sent before it opened extends it.
      s.openUntil = now + this.opts.cooldownMs;
      if (probe) s.probeUntil = null;
    } else if (s.failures >= this.opts.failureThreshold) {
      s.openUntil = now + this.opts.cooldownMs;
      this.onChange(origin, true);
    }
    this.circuits.set(origin, s);
  }

  /** Origins whose circuit is open or half-open. */
  openOrigins(): string[] {
    return [...this.circuits].filter(([, c]) => c.openUntil !== null).map(([o]) => o);
  }
}

/** The circuit key of an endpoint URL: its origin, or the string itself if it does not parse. */
export function originOf(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return endpoint;
  }
}
