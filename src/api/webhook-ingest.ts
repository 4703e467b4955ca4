import { coerceError, type Logger } from '../logger';
import { loggedEventIds, writeWebhookGroup, type WebhookEventWrite } from '../db/ingest';
import { createMultiStatementPool, type MultiPool } from '../db/multi';
import { shardOf } from '../db/outbox';
import { eventHeadersJson, eventMessageJson } from '../kafka/message';
import { dbErrorKind } from '../db/errors';
import { dbRetryDelayMs, sleep } from '../util';
import { GroupCommit, type GroupCommitOptions } from './group-commit';

/** What became of one submitted event: committed, refused because the cached trigger is stale, or not written. */
export type IngestOutcome = 'logged' | 'stale' | 'failed';

export interface WebhookIngestOptions extends GroupCommitOptions {
  topic: string;
  /** OUTBOX_SHARDS: the shard of each event's outbox row. */
  outboxShards: number;
  /** Attempts per group for transient database errors (db/errors.ts: conflicts, failovers, lost connections). */
  maxAttempts?: number;
  logger?: Logger;
  /** Called once per flushed group (metrics). */
  onFlush?: (size: number, seconds: number) => void;
}

/**
 * The webhook receiver's group commit (see GroupCommit and db/ingest.ts): requests validated in memory
 * against a cached trigger are queued here; each group of them is one transaction and one round trip.
 * An item is answered 'logged' only after its group committed; 'stale' when the trigger's version, status
 * or type no longer matches (the route reloads it and tries again); 'failed' when the database kept failing
 * (the route answers 503) — never 'logged' without a commit, and a failed group leaves nothing behind.
 */
export class WebhookIngest {
  private readonly group: GroupCommit<WebhookEventWrite, IngestOutcome>;
  private closed: Promise<void> | null = null;

  constructor(
    private readonly pool: MultiPool,
    private readonly opts: WebhookIngestOptions,
  ) {
    this.group = new GroupCommit((items) => this.flush(items), opts);
  }

  static create(databaseUrl: string, opts: WebhookIngestOptions): WebhookIngest {
    // One connection per flush in flight, and one spare for the checks after a failure.
    return new WebhookIngest(createMultiStatementPool(databaseUrl, opts.maxInFlight + 1), opts);
  }

  get stats(): Readonly<{ flushes: number; items: number; largestGroup: number }> {
    return this.group.stats;
  }

  /** Queues one accepted webhook event (validated against `version` of the trigger) and waits for its group. */
  submit(e: {
    eventId: string;
    triggerId: string;
    version: number;
    payload: unknown;
    /** JSON.stringify(payload ?? null), when the caller has it already. */
    payloadJson?: string;
    firedAt: Date;
    traceParent?: string | null;
  }): Promise<IngestOutcome> {
    // Serialised once: the same text is the stored payload and part of the Kafka value (toKafka's message, byte for byte).
    const payload = e.payloadJson ?? JSON.stringify(e.payload ?? null);
    const value = eventMessageJson(
      {
        id: e.eventId,
        trigger_id: e.triggerId,
        trigger_type: 'webhook',
        payload: e.payload,
        fired_at: e.firedAt,
        scheduled_for: null,
        source: 'webhook',
        is_test_run: false,
      },
      payload,
    );
    const write: WebhookEventWrite = {
      eventId: e.eventId,
      triggerId: e.triggerId,
      version: e.version,
      payload,
      firedAt: e.firedAt,
      traceParent: e.traceParent ?? null,
      topic: this.opts.topic,
      value,
      headers: eventHeadersJson(e.eventId, 'webhook', e.traceParent),
      // The message key is the trigger id (toKafka).
      shard: shardOf(e.triggerId, this.opts.outboxShards),
    };
    return this.group.add(write, payload.length + value.length);
  }

  /** Answers what is queued, then closes the pool. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.group.close();
      await this.pool.end();
    })();
    return this.closed;
  }

  private async flush(items: WebhookEventWrite[]): Promise<IngestOutcome[]> {
    const started = process.hrtime.bigint();
    try {
      return await this.write(items, false);
    } finally {
      this.opts.onFlush?.(items.length, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  /**
   * One group: retried as a whole on retryable errors; on any other error (say, one item the server
   * refuses) each item is written on its own, so one bad item fails alone. After a failure the next try
   * first asks which events are logged already — a connection lost during COMMIT may have committed.
   */
  private async write(items: WebhookEventWrite[], afterFailure: boolean): Promise<IngestOutcome[]> {
    const maxAttempts = this.opts.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        const already = afterFailure || attempt > 1 ? await loggedEventIds(this.pool, ids(items)) : new Set<string>();
        const todo = items.filter((it) => !already.has(it.eventId));
        const inserted = todo.length > 0 ? await writeWebhookGroup(this.pool, todo) : 0;
        // The common case: every trigger check passed. Otherwise ask which ones (a second round trip,
        // only when some cached trigger was stale).
        const logged = inserted === todo.length ? null : await loggedEventIds(this.pool, ids(todo));
        return items.map((it) => (already.has(it.eventId) || !logged || logged.has(it.eventId) ? 'logged' : 'stale'));
      } catch (e) {
        const kind = dbErrorKind(e);
        if (kind !== null && attempt < maxAttempts) {
          await sleep(dbRetryDelayMs(kind, attempt));
          continue;
        }
        if (kind === null && items.length > 1) {
          this.opts.logger?.warn('webhook group failed; writing its items one by one', {
            size: items.length,
            error: coerceError(e).message,
          });
          const out: IngestOutcome[] = [];
          for (const it of items) out.push(...(await this.write([it], true)));
          return out;
        }
        this.opts.logger?.error('webhook events not written', { size: items.length, error: coerceError(e).message });
        return items.map(() => 'failed');
      }
    }
  }
}

function ids(items: WebhookEventWrite[]): string[] {
  return items.map((it) => it.eventId);
}
