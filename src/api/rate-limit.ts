import { createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../config';
import { presentedApiKey } from './auth';
import { ApiError } from './errors';

/**
 * Token buckets, one per key: `ratePerSecond` tokens refill each second up to `burst`; a request takes
 * one. In memory and per process — N API instances allow N times the rate (see README, Limitations).
 * The map is bounded: when it reaches `maxKeys`, buckets that have refilled (indistinguishable from new
 * ones) are dropped, then the oldest half if a flood of distinct keys keeps it full.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly maxKeys = 100_000,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Takes a token for `key`: 0 when the request may go ahead, else the milliseconds until a token is due. */
  take(key: string): number {
    const now = this.nowMs();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.atMs) / 1000) * this.ratePerSecond);
      b.atMs = now;
    } else {
      if (this.buckets.size >= this.maxKeys) this.prune(now);
      b = { tokens: this.burst, atMs: now };
      this.buckets.set(key, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.ratePerSecond) * 1000);
  }

  get size(): number {
    return this.buckets.size;
  }

  private prune(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.atMs) / 1000) * this.ratePerSecond >= this.burst) this.buckets.delete(k);
    }
    let drop = this.buckets.size >= this.maxKeys ? Math.ceil(this.buckets.size / 2) : 0;
    for (const k of this.buckets.keys()) {
      if (drop-- <= 0) break;
      this.buckets.delete(k);
    }
  }
}

const WEBHOOK_PATH = /^\/webhook\/([^/]+)/;

/**
 * Per-API-key and per-webhook-trigger rate limits for everything under /api/v1, answering 429 with
 * `Retry-After` (whole seconds). Mounted before the body parser, so a refused request costs no parsing.
 * The per-key limit counts only configured keys (a wrong key gets its 401 from auth), so it applies only
 * when API_KEYS is set; the webhook limit counts by the trigger id in the path, valid or not.
 */
export function rateLimits(config: Pick<Config, 'apiKeys' | 'rateLimitPerKey' | 'rateLimitPerWebhook'>) {
  const digest = (s: string) => createHash('sha256').update(s).digest('hex');
  const known = new Set(config.apiKeys.map(digest));
  const perKey = config.rateLimitPerKey > 0 && known.size > 0 ? new TokenBuckets(config.rateLimitPerKey, 2 * config.rateLimitPerKey) : null;
  const perWebhook = config.rateLimitPerWebhook > 0 ? new TokenBuckets(config.rateLimitPerWebhook, 2 * config.rateLimitPerWebhook) : null;
  const refuse = (waitMs: number, what: string) => {
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    return new ApiError('RATE_LIMITED', `Too many requests for ${what}; retry in ${seconds} s`, [], { 'Retry-After': String(seconds) });
  };

  /** The webhook limit for one trigger id (as written in the path): null, or the 429 to answer. */
  const forWebhook = (triggerId: string): ApiError | null => {
    const waitMs = perWebhook ? perWebhook.take(triggerId.toLowerCase()) : 0;
    return waitMs === 0 ? null : refuse(waitMs, `this webhook (${config.rateLimitPerWebhook}/s)`);
  };

  const middleware = (req: Request, _res: Response, next: NextFunction): void => {
    const webhook = WEBHOOK_PATH.exec(req.path);
    if (webhook) return void next(forWebhook(webhook[1]!) ?? undefined);
    let waitMs = 0;
    if (perKey) {
      const presented = presentedApiKey(req);
      const d = presented ? digest(presented) : null;
      if (d && known.has(d)) waitMs = perKey.take(d);
    }
    if (waitMs === 0) return next();
    next(refuse(waitMs, `this API key (${config.rateLimitPerKey}/s)`));
  };
  // The webhook lane (webhooks.ts) takes its calls before this middleware and asks forWebhook itself.
  return Object.assign(middleware, { forWebhook });
}
