import Kafka from 'node-rdkafka';
import type { Config } from '../config';
import type { Db } from '../db/knex';
import { insertAttempts, type AttemptRow } from '../db/attempts';
import {
  eventsForDelivery,
  lockForOutcome,
  updateDeliveryOutcomes,
  type DeliveryOutcomeUpdate,
  type EventForDelivery,
  type ExecutionStatus,
} from '../db/events';
import { releaseSlots } from '../db/flow';
import { recordManyOnce } from '../db/idempotency';
import { insertOutbox, type OutboxInsert } from '../db/outbox';
import type { Lifecycle } from '../events';
import { TRACE_PARENT, toKafka, type RetryMessage } from '../kafka/message';
import { Tracing } from '../tracing/tracing';
import type { EventProducer } from '../kafka/producer';
import { coerceError, type Logger } from '../logger';
import { backoffMs, sleep, withDbRetry } from '../util';
import { CircuitBreakers, originOf } from './circuit';
import { type DeliveryResult, type Outcome } from './delivery';
import { orderWaitMs, type Hold, type HoldReason } from './flow';
import { FlowGate, ORDER_RUN_BUDGET_MS, type FlowPlan } from './flow-gate';
import { deliverInTrace } from './traced-delivery';
import { TriggerCache, type DeliveryConfig } from './trigger-cache';

/** The message as the worker reads it (attempt 1 unless it came from the retry topic), or null if unusable. */
function parseMessage(m: Kafka.Message): RetryMessage | null {
  if (!m.value) return null;
  try {
    const parsed = JSON.parse(m.value.toString('utf8')) as Partial<RetryMessage>;
    if (typeof parsed.event_id !== 'string') return null;
    const msg: RetryMessage = { ...(parsed as RetryMessage), delivery_attempt: parsed.delivery_attempt ?? 1 };
    // The trace context travels with the message (and with its retry's and dead letter's copies).
    const traceparent = m.headers?.find((h) => h.traceparent !== undefined)?.traceparent;
    if (traceparent !== undefined) msg[TRACE_PARENT] = traceparent.toString();
    return msg;
  } catch {
    return null;
  }
}

/**
 * Not attempted: the endpoint's circuit is open, or the trigger's flow control holds it (rate, concurrency,
 * order: worker/flow.ts); the same attempt is rescheduled after `retryInMs`.
 */
type Deferred = { kind: 'deferred'; status: null; error: string; retryInMs: number; reason: 'circuit' | HoldReason };

const HELD: Record<HoldReason, string> = {
  rate: "held by the trigger's delivery rate limit: not attempted, deferred",
  concurrency: "held by the trigger's delivery concurrency limit: not attempted, deferred",
  order: 'waiting for an earlier event of the trigger to end (ordered delivery): not attempted, deferred',
};

/** A message with its event and the delivery config it goes out with (null: its trigger was deleted). */
interface Item {
  msg: RetryMessage;
  event: EventForDelivery;
  cfg: DeliveryConfig | null;
}

/** One message's handling, decided (and its request made) before anything is written. */
interface Handled {
  msg: RetryMessage;
  /** The idempotency key recorded with the outcome: (event id, attempt[, deferral]). */
  key: string;
  outcome: Outcome | Deferred;
  durationMs: number;
  cfg: DeliveryConfig | null;
  /** The HTTP attempt, when a request was made. */
  tried: DeliveryResult | null;
}

/** A 5xx, timeout or network error: what counts towards opening an endpoint's circuit. */
function isCircuitFailure(o: Outcome): boolean {
  return o.kind === 'retry' && (o.status === null || o.status >= 500);
}

function isFinal(s: ExecutionStatus): boolean {
  return s === 'success' || s === 'failure';
}

/** The event log update of a recorded outcome. */
function outcomeUpdate(h: Handled, final: Outcome | Deferred, followUp: OutboxInsert | null, now: Date): DeliveryOutcomeUpdate {
  return {
    id: h.msg.event_id,
    // Ended without a request (trigger deleted, max age exceeded, deferred): this attempt was never made.
    attempts: h.tried ? h.msg.delivery_attempt : h.msg.delivery_attempt - 1,
    execution_status: final.kind === 'success' || final.kind === 'failure' ? final.kind : 'published',
    response_status: final.status,
    latency_ms: h.durationMs,
    error_message: final.kind === 'success' ? null : final.error,
    // A waiting retry or deferral: its due time, by which "retry now" finds its outbox row.
    next_attempt_at: followUp && followUp.available_at.getTime() > now.getTime() ? followUp.available_at : null,
  };
}

/** The attempts history row of a request that was made. */
function attemptRow(h: Handled): AttemptRow | null {
  if (!h.tried) return null;
  return {
    event_id: h.msg.event_id,
    attempt: h.msg.delivery_attempt,
    started_at: h.tried.startedAt,
    duration_ms: h.tried.durationMs,
    status_code: h.tried.outcome.status,
    error: h.tried.outcome.kind === 'success' ? null : h.tried.outcome.error,
    response_body: h.tried.responseBody,
    request_headers: h.tried.requestHeaders,
    response_headers: h.tried.responseHeaders,
  };
}

/**
 * How long the worker's loop waits for the first message of a batch: how often an idle worker wakes (4 a
 * second), and how long a stop waits for the loop at most. A message that arrives ends the wait at once.
 */
const FIRST_MESSAGE_WAIT_MS = 250;

/**
 * Once a batch has its first message, the gap that ends it: keep it short, or a quiet topic holds each
 * message back for up to n gaps (measured with a long one: p50 2.3 s at one message per 150 ms).
 */
const BATCH_GAP_MS = 15;

/**
 * The built-in consumer: Kafka → the trigger's HTTP endpoint. One consumer group; offsets are committed
 * only after a batch's outcomes are durable in MySQL, so a crash redelivers, and the (event id, attempt)
 * key recorded with each outcome makes a redelivered message a no-op.
 *
 * Per Kafka batch the database sees a fixed number of statements, not a number per event: one read of the
 * batch's events with their triggers' versions, one load of the trigger configs the cache lacks (only when
 * one was edited or is new), and one transaction writing every outcome (idempotency keys, event log
 * updates, attempt rows, retry / dead-letter outbox rows: one statement each).
 */
export class Worker {
  private consumer: Kafka.KafkaConsumer;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  private ready = false;
  private failures = 0;
  private lastError: string | null = null;
  private readonly triggers = new TriggerCache();
  private readonly circuits: CircuitBreakers;
  private readonly flow: FlowGate;

  private readonly tracing: Tracing;

  constructor(
    private readonly deps: { db: Db; producer: EventProducer; config: Config; events: Lifecycle; logger: Logger; tracing?: Tracing },
  ) {
    const { config } = deps;
    this.tracing = deps.tracing ?? new Tracing();
    this.consumer = new Kafka.KafkaConsumer(
      {
        'group.id': config.kafkaConsumerGroup,
        'metadata.broker.list': config.kafkaBrokers,
        'client.id': 'etp-worker',
        'enable.auto.commit': false,
        'socket.keepalive.enable': true,
        'session.timeout.ms': 10_000,
        'heartbeat.interval.ms': 1000,
        'reconnect.backoff.max.ms': 2000,
      },
      { 'auto.offset.reset': 'earliest' },
    );
    this.consumer.on('event.error', (e) => this.deps.events.emitEvent('worker:error', { error: new Error(e.message) }));
    this.circuits = new CircuitBreakers(
      { failureThreshold: config.deliveryCircuitFailures, cooldownMs: config.deliveryCircuitCooldownMs },
      (origin, open) => this.deps.events.emitEvent('worker:circuit', { origin, open }),
    );
    this.flow = new FlowGate(deps.db);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.consumer.connect({ timeout: 15_000 }, (err) => (err ? reject(new Error(`consumer connect: ${err.message}`)) : resolve())),
    );
    this.consumer.subscribe([this.deps.config.kafkaTopic, `${this.deps.config.kafkaTopic}.retry`]);
    this.ready = true;
    this.loop = this.run();
  }

  /** The consumer's state for /health: connected, not stopping, and its batches not failing repeatedly. */
  async check(): Promise<void> {
    if (!this.ready || !this.consumer.isConnected()) throw new Error('consumer not connected');
    if (this.stopping) throw new Error('consumer stopping');
    if (this.failures >= 3) throw new Error(`consumer batches failing (${this.failures} in a row): ${this.lastError ?? 'unknown'}`);
  }

  /**
   * Lag per assigned partition: the broker's high watermark − this group's committed offset (the low
   * watermark when nothing was committed yet: everything retained is still to be handled).
   */
  async lag(timeoutMs = 2000): Promise<Array<{ topic: string; partition: number; lag: number }>> {
    if (!this.ready || this.stopping || !this.consumer.isConnected()) return [];
    const assigned = this.consumer.assignments().map((a) => ({ topic: a.topic, partition: a.partition }));
    if (assigned.length === 0) return [];
    const committed = await new Promise<Kafka.TopicPartitionOffset[]>((resolve, reject) =>
      this.consumer.committed(assigned, timeoutMs, (err, tps) => (err ? reject(new Error(err.message)) : resolve(tps))),
    );
    return Promise.all(
      committed.map(async (tp) => {
        const wm = await new Promise<Kafka.WatermarkOffsets>((resolve, reject) =>
          this.consumer.queryWatermarkOffsets(tp.topic, tp.partition, timeoutMs, (err, o) =>
            err ? reject(new Error(err.message)) : resolve(o),
          ),
        );
        const from = tp.offset >= 0 ? tp.offset : wm.lowOffset;
        return { topic: tp.topic, partition: tp.partition, lag: Math.max(0, wm.highOffset - from) };
      }),
    );
  }

  /**
   * The next batch: up to `n` messages. The first is waited for up to FIRST_MESSAGE_WAIT_MS, so an idle
   * worker wakes a few times a second; the rest are gathered as consume(n) always did, until n or one empty
   * wait of BATCH_GAP_MS. One consume(n) with a single timeout cannot do both: node-rdkafka waits that
   * timeout for every message, so a long one holds a quiet topic's messages back and a short one wakes an
   * idle worker tens of times a second.
   */
  private async consume(n: number): Promise<Kafka.Message[]> {
    const first = await this.consumeUpTo(1, FIRST_MESSAGE_WAIT_MS);
    if (first.length === 0 || n === 1) return first;
    try {
      return first.concat(await this.consumeUpTo(n - 1, BATCH_GAP_MS));
    } catch {
      // No message was taken (node-rdkafka reports an error only for an empty answer): the next consume meets it.
      return first;
    }
  }

  private consumeUpTo(n: number, timeoutMs: number): Promise<Kafka.Message[]> {
    this.consumer.setDefaultConsumeTimeout(timeoutMs);
    return new Promise((resolve, reject) =>
      this.consumer.consume(n, (err, msgs) => (err ? reject(new Error(err.message)) : resolve(msgs))),
    );
  }

  private async run(): Promise<void> {
    // A batch that fails (database down) is handled again, not dropped: committing a later batch would
    // commit past it. Its requests may go out twice (same webhook-id); its outcome is recorded once.
    let pending: Kafka.Message[] | null = null;
    while (!this.stopping) {
      try {
        const batch: Kafka.Message[] = pending ?? (await this.consume(this.deps.config.workerConcurrency));
        pending = batch;
        if (batch.length > 0) {
          // All of a batch is handled concurrently, then committed: commits stay in order per partition.
          await this.process(this.unique(batch));
          this.commit(batch);
        }
        pending = null;
        this.failures = 0;
      } catch (e) {
        this.failures++;
        this.lastError = coerceError(e).message;
        this.deps.events.emitEvent('worker:error', { error: coerceError(e) });
        await sleep(backoffMs(this.failures, 200, 5000) + 50);
      }
    }
  }

  /**
   * Each message parsed once; one per event id. Copies of one (event, attempt) (a relay re-publish) are
   * handled once, and of an event's messages only the latest attempt (or deferral) is kept: a later one
   * exists only because the earlier one's outcome was recorded, so the earlier one is already handled.
   */
  private unique(batch: Kafka.Message[]): RetryMessage[] {
    const latest = new Map<string, RetryMessage>();
    for (const m of batch) {
      const msg = parseMessage(m);
      if (!msg) {
        if (m.value)
          this.deps.logger.warn('skipping a message that is not an event', { topic: m.topic, partition: m.partition, offset: m.offset });
        continue;
      }
      const cur = latest.get(msg.event_id);
      const later =
        !cur ||
        msg.delivery_attempt > cur.delivery_attempt ||
        (msg.delivery_attempt === cur.delivery_attempt && (msg.deferred ?? 0) > (cur.deferred ?? 0));
      if (cur) this.deps.events.emitEvent('worker:delivered', { outcome: 'skipped', durationMs: 0, status: null });
      if (later) latest.set(msg.event_id, msg);
    }
    return [...latest.values()];
  }

  private commit(batch: Kafka.Message[]): void {
    const next = new Map<string, Kafka.TopicPartitionOffset>();
    for (const m of batch) {
      const k = `${m.topic}:${m.partition}`;
      const cur = next.get(k);
      if (!cur || m.offset + 1 > cur.offset) next.set(k, { topic: m.topic, partition: m.partition, offset: m.offset + 1 });
    }
    this.consumer.commit([...next.values()]);
  }

  /** Reads the batch's state in one statement (+ stale trigger configs), delivers concurrently, records once. */
  private async process(msgs: RetryMessage[]): Promise<void> {
    if (msgs.length === 0) return;
    const { db } = this.deps;
    const events = await withDbRetry(() =>
      eventsForDelivery(
        db,
        msgs.map((m) => m.event_id),
      ),
    );
    await this.awaitUncommitted(msgs, events);
    const todo: Array<{ msg: RetryMessage; event: EventForDelivery }> = [];
    for (const msg of msgs) {
      const event = events.get(msg.event_id);
      if (
        !event ||
        event.execution_status === 'success' ||
        event.execution_status === 'failure' ||
        event.attempts >= msg.delivery_attempt
      ) {
        // Retention removed it, or this (event, attempt) was already handled.
        this.deps.events.emitEvent('worker:delivered', { outcome: 'skipped', durationMs: 0, status: null });
        continue;
      }
      todo.push({ msg, event });
    }
    if (todo.length === 0) return;
    const versions = new Map<string, number | null>();
    for (const { event } of todo) if (event.trigger_id) versions.set(event.trigger_id, event.trigger_version);
    const configs = await withDbRetry(() => this.triggers.resolve(db, versions));
    // A stored trigger's config comes from the cache (null: deleted); an unsaved test run carries its own.
    const items: Item[] = todo.map(({ msg, event }) => ({
      msg,
      event,
      cfg: event.trigger_id ? (configs.get(event.trigger_id) ?? null) : ((event.delivery_config as DeliveryConfig | null) ?? null),
    }));
    const plan = await this.flow.plan(
      items.map(({ msg, event, cfg }) => ({ eventId: msg.event_id, triggerId: event.trigger_id, cfg, held: msg.deferred ?? 0 })),
    );
    await this.record(await this.handleAll(items, plan), plan);
  }

  /** Every message at once, except an ordered trigger's run: one after another (worker/flow-gate.ts). */
  private async handleAll(items: Item[], plan: FlowPlan): Promise<Handled[]> {
    const inRun = new Set(plan.runs.flat());
    const byId = new Map(items.map((it) => [it.msg.event_id, it]));
    const single = items
      .filter((it) => !inRun.has(it.msg.event_id))
      .map((it) => this.handle(it.msg, it.event, it.cfg, plan.holds.get(it.msg.event_id)));
    const runs = plan.runs.map((run) => this.handleRun(run.map((id) => byId.get(id)!)));
    return [...(await Promise.all(single)), ...(await Promise.all(runs)).flat()];
  }

  /**
   * An ordered trigger's events, oldest first: the next goes only once the one before has ended (success,
   * or failure after its last attempt) and while the run's budget lasts; the rest wait.
   */
  private async handleRun(run: Item[]): Promise<Handled[]> {
    const started = Date.now();
    const out: Handled[] = [];
    let hold: Hold | undefined;
    for (const { msg, event, cfg } of run) {
      if (!hold && Date.now() - started > ORDER_RUN_BUDGET_MS) hold = { reason: 'order', waitMs: 0 };
      const h = await this.handle(msg, event, cfg, hold);
      out.push(h);
      const end = this.final(h).kind;
      if (!hold && end !== 'success' && end !== 'failure') hold = { reason: 'order', waitMs: orderWaitMs(null, 0, msg.deferred ?? 0) };
    }
    return out;
  }

  /**
   * A scheduled event fired on the relay's direct path is on Kafka a moment before its event log commits
   * (the fire transaction commits after the delivery reports). A young scheduler event with no log yet is
   * therefore waited for — briefly, with back-off, up to the producer's message timeout plus a margin: well
   * past the longest a fire transaction waits on reports (RELAY_DIRECT_TIMEOUT) before it commits. If the log
   * never appears, that transaction rolled back; the occurrence is fired again under the same event id and
   * its new message gets delivered.
   */
  private async awaitUncommitted(msgs: RetryMessage[], events: Map<string, EventForDelivery>): Promise<void> {
    const limitMs = this.deps.config.kafkaMessageTimeoutMs + 5000;
    const missing = () =>
      msgs.filter((m) => !events.has(m.event_id) && m.source === 'scheduler' && Date.now() - Date.parse(m.fired_at) < limitMs);
    let delayMs = 5;
    for (let wait = missing(); wait.length > 0 && !this.stopping; wait = missing()) {
      await sleep(delayMs);
      delayMs = Math.min(delayMs * 2, 500);
      const found = await withDbRetry(() =>
        eventsForDelivery(
          this.deps.db,
          wait.map((m) => m.event_id),
        ),
      );
      for (const [id, e] of found) events.set(id, e);
    }
  }

  /** Decides one message and makes its request, if any (not when flow control holds it). Writes nothing. */
  private async handle(msg: RetryMessage, event: EventForDelivery, stored: DeliveryConfig | null, hold?: Hold): Promise<Handled> {
    const attempt = msg.delivery_attempt;
    const key = msg.deferred ? `${msg.event_id}:${attempt}:d${msg.deferred}` : `${msg.event_id}:${attempt}`;
    const untried = (outcome: Outcome | Deferred, cfg: DeliveryConfig | null): Handled => ({
      msg,
      key,
      outcome,
      durationMs: 0,
      cfg,
      tried: null,
    });
    if (!stored) return untried({ kind: 'failure', status: null, error: 'trigger deleted' }, null);
    const cfg: DeliveryConfig =
      stored.http_method === undefined
        ? { ...stored, http_method: 'POST', headers: stored.headers ?? {}, timeout_ms: stored.timeout_ms ?? 10_000 }
        : stored;
    const maxAgeSeconds = cfg.retry?.max_age_seconds;
    if (maxAgeSeconds !== undefined && Date.now() - event.fired_at.getTime() > maxAgeSeconds * 1000) {
      // No attempt starts on an event older than its max age: it ends here, and goes to the dead letters.
      return untried({ kind: 'failure', status: null, error: 'max age exceeded' }, cfg);
    }
    if (hold)
      return untried({ kind: 'deferred', status: null, error: HELD[hold.reason], retryInMs: hold.waitMs, reason: hold.reason }, cfg);
    const origin = originOf(cfg.endpoint);
    const admission = this.circuits.admit(origin);
    if (!admission.allowed) {
      const error = `circuit open for ${origin}: not attempted, deferred`;
      return untried({ kind: 'deferred', status: null, error, retryInMs: admission.retryInMs, reason: 'circuit' }, cfg);
    }
    // Each attempt is a step of the event's trace: the message's context, else the one logged with the event.
    const result = await deliverInTrace(
      this.tracing,
      msg[TRACE_PARENT] ?? event.trace_parent,
      { eventId: msg.event_id, payload: event.payload, config: cfg, attempt, triggerId: event.trigger_id },
      this.deps.config.deliveryAllowPrivateNetworks,
    );
    this.circuits.report(origin, isCircuitFailure(result.outcome), admission.probe);
    return { msg, key, outcome: result.outcome, durationMs: result.durationMs, cfg, tried: result };
  }

  /** What a handled message ends as: a retry past max_attempts becomes the failure that goes to the DLQ. */
  private final(h: Handled): Outcome | Deferred {
    const maxAttempts = h.cfg?.retry?.max_attempts ?? 1;
    const o = h.outcome;
    if (o.kind === 'retry' && h.msg.delivery_attempt >= maxAttempts)
      return { kind: 'failure', status: o.status, error: `${o.error} (gave up after ${h.msg.delivery_attempt} attempts)` };
    return o;
  }

  /** The next attempt's outbox row (retry), the same attempt's (deferred), or the dead-letter row (failure). */
  private followUp(h: Handled, final: Outcome | Deferred, now: Date): OutboxInsert | null {
    const { config } = this.deps;
    const attempt = h.msg.delivery_attempt;
    if (final.kind === 'retry') {
      const delay = Math.max(final.retryAfterMs ?? 0, backoffMs(attempt, h.cfg?.retry?.backoff_ms ?? 1000, 3600_000));
      const next: RetryMessage = { ...h.msg, delivery_attempt: attempt + 1, deferred: undefined };
      return {
        event_id: h.msg.event_id,
        message: toKafka(`${config.kafkaTopic}.retry`, next),
        available_at: new Date(now.getTime() + delay),
      };
    }
    if (final.kind === 'deferred') {
      // An open circuit's: spread over half a cool-down, so they do not all come back at the same moment.
      // A flow hold's wait is already its turn (worker/flow.ts).
      const spread = final.reason === 'circuit' ? backoffMs(1, Math.ceil(config.deliveryCircuitCooldownMs / 2), 3600_000) : 0;
      const delay = final.retryInMs + spread;
      const next: RetryMessage = { ...h.msg, deferred: (h.msg.deferred ?? 0) + 1 };
      return {
        event_id: h.msg.event_id,
        message: toKafka(`${config.kafkaTopic}.retry`, next),
        available_at: new Date(now.getTime() + delay),
      };
    }
    if (final.kind === 'failure') {
      const dead = { ...h.msg, delivery_attempt: attempt, error: final.error };
      return { event_id: h.msg.event_id, message: toKafka(config.kafkaDlqTopic, dead), available_at: now };
    }
    return null;
  }

  /**
   * Every outcome of the batch in ONE transaction: the batch's event rows locked first (an operator's
   * cancel committed before is seen, one started after waits), the idempotency keys (a key already
   * recorded means another worker handled that attempt first, and nothing of it is written), the event log
   * updates, the attempts history rows (when a request was made) and the follow-up outbox rows — one
   * statement each. An event that ended meanwhile (cancelled by an operator while its request was in
   * flight) keeps its end: the request made is recorded in its history, nothing else. Kafka offsets are
   * committed only after it.
   */
  private async record(handled: Handled[], flow: FlowPlan): Promise<void> {
    const plan = handled.map((h) => ({ h, final: this.final(h) }));
    const written = await withDbRetry(() =>
      this.deps.db.transaction(async (trx) => {
        const now = new Date();
        const state = await lockForOutcome(
          trx,
          plan.map((p) => p.h.msg.event_id),
        );
        const fresh = await recordManyOnce(
          trx,
          'delivery',
          plan.map((p) => p.h.key),
          now,
        );
        const rows = plan.filter((p) => fresh.has(p.h.key) && state.has(p.h.msg.event_id));
        const live = rows
          .filter((p) => !isFinal(state.get(p.h.msg.event_id)!.execution_status))
          .map((p) => ({ ...p, followUp: this.followUp(p.h, p.final, now) }));
        await updateDeliveryOutcomes(
          trx,
          live.map((p) => outcomeUpdate(p.h, p.final, p.followUp, now)),
          now,
        );
        await insertAttempts(
          trx,
          rows.flatMap(({ h }) => attemptRow(h) ?? []),
        );
        await insertOutbox(
          trx,
          live.flatMap((p) => p.followUp ?? []),
          now,
        );
        // The batch's requests have ended: their slots free for other workers (flow-gate.ts).
        await releaseSlots(trx, flow.slots);
        return new Set(live.map((p) => p.h.key));
      }),
    );
    for (const { h, final } of plan) this.emitOutcome(h, final, written.has(h.key));
  }

  private emitOutcome(h: Handled, final: Outcome | Deferred, written: boolean): void {
    const { events } = this.deps;
    if (!written) return events.emitEvent('worker:delivered', { outcome: 'skipped', durationMs: h.durationMs, status: null });
    events.emitEvent('worker:delivered', { outcome: final.kind, durationMs: h.durationMs, status: final.status });
    if (h.tried && final.kind !== 'deferred') events.emitEvent('worker:attempt', { outcome: final.kind, status: h.tried.outcome.status });
    if (final.kind === 'failure') events.emitEvent('worker:dlq', { eventId: h.msg.event_id });
    if (final.kind === 'deferred' && final.reason !== 'circuit')
      events.emitEvent('worker:held', { reason: final.reason, waitMs: final.retryInMs });
  }

  /** Idempotent: stop fetching, let the batch in hand finish and commit, then unsubscribe and disconnect once. */
  stop(): Promise<void> {
    if (this.stopped) return this.stopped;
    this.stopping = true;
    this.stopped = (async () => {
      await this.loop?.catch(() => undefined);
      if (this.ready) {
        try {
          this.consumer.unsubscribe();
        } catch {
          /* already gone */
        }
        await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
      }
    })();
    return this.stopped;
  }
}
