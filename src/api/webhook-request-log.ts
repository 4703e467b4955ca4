import type { Request } from 'express';
import type { Db } from '../db/knex';
import {
  insertRejections,
  REJECTIONS_KEPT_PER_TRIGGER,
  trimRejections,
  type Rejection,
  type SignatureVerdict,
} from '../db/webhook-requests';
import type { Lifecycle } from '../events';
import { coerceError, type Logger } from '../logger';
import type { ApiError } from './errors';

/** The rejections a webhook call's problem document is logged for (404 and 429 are not: see below). */
const LOGGED_STATUSES = new Set([400, 401, 409, 413, 415]);

/** /api/v1/webhook/<uuid> and /api/v1/webhook/<uuid>/batch. */
const WEBHOOK_URL = /^\/api\/v1\/webhook\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\/batch)?\/?(\?|$)/i;

export interface WebhookRequestLogOptions {
  /** How long the first rejection of a group waits for others before the group is written. */
  flushDelayMs: number;
  /** Rejections waiting to be written at most; beyond it they are counted (metric) and not logged. */
  maxQueued: number;
  /** Rejections written per INSERT at most. */
  maxBatch: number;
  /** A trigger's rejections are trimmed to REJECTIONS_KEPT_PER_TRIGGER after this many were written for it. */
  trimEvery: number;
  /** Age limit of the log (RETENTION_DELETE_AFTER): older rejections are trimmed too. */
  keepSeconds: number;
}

export const REQUEST_LOG_DEFAULTS: Omit<WebhookRequestLogOptions, 'keepSeconds'> = {
  flushDelayMs: 100,
  maxQueued: 1000,
  maxBatch: 500,
  trimEvery: Math.ceil(REJECTIONS_KEPT_PER_TRIGGER / 4),
};

/** What the webhook routes found about the signature of a request (kept on res.locals). */
export type SignatureNote = Exclude<SignatureVerdict, 'passed' | 'not_checked'>;

/**
 * The log of rejected webhook calls. Accepted calls cost nothing here: the event log has them.
 * A rejection is queued in memory as its answer is sent and written later with others in one INSERT, off
 * the request's path; the queue is bounded (a flood of bad calls costs at most one INSERT per flush delay
 * and a bounded amount of memory; what does not fit is counted, not logged), and each trigger's rows are
 * trimmed to the newest REJECTIONS_KEPT_PER_TRIGGER every `trimEvery` rows written for it.
 *
 * Not logged: 404 (no such webhook trigger: nothing to attach the call to, and an unbounded key space) and
 * 429 (the rate limit answers those without looking at the trigger; logging them would let a flood write
 * as fast as it is refused).
 */
export class WebhookRequestLog {
  private queue: Rejection[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private closed = false;
  /** Rows written per trigger since its last trim (bounded: cleared as it grows past 10,000 triggers). */
  private sinceTrim = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly opts: WebhookRequestLogOptions,
    private readonly events: Lifecycle,
    private readonly logger: Logger | null,
  ) {}

  /** Called with every problem document the API sends; keeps the webhook rejections of the catalogue above. */
  note(req: Request, signature: SignatureNote | undefined, err: ApiError): void {
    if (!LOGGED_STATUSES.has(err.status)) return;
    const m = WEBHOOK_URL.exec(req.originalUrl);
    if (!m || req.method !== 'POST') return;
    const recorded = !this.closed && this.queue.length < this.opts.maxQueued;
    this.events.emitEvent('api:webhook_rejected', { code: err.code, recorded });
    if (!recorded) return;
    const declared = Number(req.headers['content-length']);
    const raw = (req as Request & { rawBody?: Buffer }).rawBody;
    this.queue.push({
      trigger_id: m[1]!.toLowerCase(),
      received_at: new Date(),
      http_status: err.status,
      code: err.code,
      reason: err.errors.length > 0 ? `${err.message}: ${err.errors.map((e) => `${e.field} ${e.message}`).join('; ')}` : err.message,
      body_bytes: Number.isFinite(declared) ? declared : (raw?.length ?? 0),
      signature: signature ?? 'not_checked',
    });
    if (!this.timer && !this.flushing) this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.flush(), this.opts.flushDelayMs).unref();
  }

  /** Writes what is queued (one flush at a time); never throws. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flushing ??= (async () => {
      try {
        while (this.queue.length > 0) {
          const batch = this.queue.splice(0, this.opts.maxBatch);
          await this.write(batch);
        }
      } catch (e) {
        this.logger?.warn('webhook request log: could not write rejections', { error: coerceError(e).message });
      } finally {
        this.flushing = null;
        // Rejections noted while the last write ran, after its timer had fired: a timer of their own.
        if (this.queue.length > 0 && !this.timer && !this.closed) this.schedule();
      }
    })();
    return this.flushing;
  }

  private async write(batch: Rejection[]): Promise<void> {
    await insertRejections(this.db, batch);
    const due: string[] = [];
    for (const r of batch) {
      const n = (this.sinceTrim.get(r.trigger_id) ?? 0) + 1;
      if (n >= this.opts.trimEvery) due.push(r.trigger_id);
      this.sinceTrim.set(r.trigger_id, n);
    }
    if (this.sinceTrim.size > 10_000) this.sinceTrim.clear();
    const keepFrom = new Date(Date.now() - this.opts.keepSeconds * 1000);
    for (const id of new Set(due)) {
      this.sinceTrim.delete(id);
      await trimRejections(this.db, id, REJECTIONS_KEPT_PER_TRIGGER, keepFrom);
    }
  }

  /** Writes what is queued and takes no more. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }
}
