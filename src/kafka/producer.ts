import Kafka from 'node-rdkafka';
import type { Span } from '@opentelemetry/api';
import type { KafkaCompression } from '../config';
import { coerceError } from '../logger';
import { Attr, endSpan, SpanKind, type Tracing } from '../tracing/tracing';

export interface OutgoingMessage {
  topic: string;
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

export interface ProducerOptions {
  brokers: string;
  messageTimeoutMs: number;
  /** compression.codec (default lz4). */
  compression?: KafkaCompression;
  clientId?: string;
  /** When it records spans, each message with a `traceparent` header gets a publish span (docs/tracing.md). */
  tracing?: Tracing;
}

/**
 * One publish() call's messages: their outcomes filled in as delivery reports come (by index), the
 * caller answered once, when the last report is in or the deadline passes. One promise per call, not per
 * message; the delivery report's opaque is `{ batch, index }`.
 */
class Batch {
  readonly outcomes: Array<Error | null | undefined>;
  private left: number;
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    size: number,
    private readonly answer: (outcomes: Array<Error | null>) => void,
    deadlineMs?: number,
  ) {
    this.outcomes = new Array<Error | null | undefined>(size);
    this.left = size;
    // With a deadline, a message whose report has not come by then counts as failed here. It may still
    // be delivered later (the caller must treat it as "maybe sent": at-least-once, same event id).
    if (deadlineMs !== undefined)
      this.timer = setTimeout(() => this.finish(new Error(`no delivery report within ${deadlineMs} ms`)), deadlineMs);
  }

  report(index: number, err: Error | null): void {
    if (this.done || this.outcomes[index] !== undefined) return;
    this.outcomes[index] = err;
    if (--this.left === 0) this.finish(null);
  }

  private finish(late: Error | null): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.answer(this.outcomes.map((o) => (o === undefined ? late : o)));
  }
}

interface Pending {
  batch: Batch;
  index: number;
}

/**
 * node-rdkafka producer with delivery reports awaited per message. Idempotent (no duplicates or
 * reordering from librdkafka's own retries), acks=all, and a bounded message.timeout.ms so a dead broker
 * fails a publish in seconds instead of minutes.
 */
export class EventProducer {
  private readonly producer: Kafka.Producer;
  private connected = false;
  private closing: Promise<void> | null = null;
  /** Messages produced whose delivery report has not come yet: polling for reports runs only while > 0. */
  private inFlight = 0;
  private pollTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ProducerOptions) {
    this.producer = new Kafka.Producer(
      {
        'client.id': opts.clientId ?? 'etp-producer',
        'metadata.broker.list': opts.brokers,
        'enable.idempotence': true,
        acks: 'all',
        dr_cb: true,
        'linger.ms': 2,
        'batch.num.messages': 10_000,
        'queue.buffering.max.messages': 500_000,
        'compression.codec': opts.compression ?? 'lz4',
        'socket.keepalive.enable': true,
        'reconnect.backoff.max.ms': 2000,
      } as Kafka.ProducerGlobalConfig,
      // message.timeout.ms must be set in the topic config: set globally, node-rdkafka's producer never
      // timed a message out while the broker was down (measured here), so a publish hung instead of failing.
      { 'message.timeout.ms': opts.messageTimeoutMs },
    );
    this.producer.on('delivery-report', (err, report) => {
      const p = report.opaque as Pending | undefined;
      if (!p) return;
      this.settled();
      p.batch.report(p.index, err ? new Error(`kafka delivery failed: ${err.message}`) : null);
    });
    // Errors are surfaced through delivery reports; swallow the event so it never becomes an uncaught throw.
    this.producer.on('event.error', () => undefined);
  }

  async connect(timeoutMs = 15_000): Promise<void> {
    if (this.connected) return;
    await new Promise<void>((resolve, reject) => {
      this.producer.connect({ timeout: timeoutMs }, (err) => (err ? reject(new Error(`kafka connect: ${err.message}`)) : resolve()));
    });
    this.connected = true;
  }

  get isConnected(): boolean {
    return this.connected && this.producer.isConnected();
  }

  /**
   * Produces every message and resolves with one outcome per message (in input order) once all delivery
   * reports are in. Never throws for a single failed message: the caller decides what a failure means.
   */
  publish(messages: OutgoingMessage[], deadlineMs?: number): Promise<Array<Error | null>> {
    if (messages.length === 0) return Promise.resolve([]);
    const spans = this.opts.tracing?.recording ? this.publishSpans(this.opts.tracing, messages) : null;
    return new Promise((resolve) => {
      const answer = spans
        ? (outcomes: Array<Error | null>) => {
            spans.forEach((span, i) => endSpan(span, outcomes[i]?.message));
            resolve(outcomes);
          }
        : resolve;
      const batch = new Batch(messages.length, answer, deadlineMs);
      this.inFlight += messages.length;
      this.pollWhileInFlight();
      messages.forEach((m, index) => this.produceOne(m, { batch, index }, 0));
    });
  }

  /**
   * A publish span per message that carries a traceparent, child of it; the message then carries the
   * span's own traceparent, so the consumer's work is the publish span's child. Only when spans are recorded.
   */
  private publishSpans(tracing: Tracing, messages: OutgoingMessage[]): Array<Span | null> {
    return messages.map((m) => {
      const parent = m.headers.traceparent;
      if (!parent) return null;
      const eventId = m.headers['event-id'];
      const begun = tracing.child('publish', SpanKind.PRODUCER, parent, {
        [Attr.eventId]: eventId,
        ...(m.key && m.key !== eventId ? { [Attr.triggerId]: m.key } : {}),
        'messaging.system': 'kafka',
        'messaging.operation.type': 'send',
        'messaging.destination.name': m.topic,
      });
      m.headers = { ...m.headers, traceparent: begun.traceparent };
      return begun.span;
    });
  }

  private produceOne(m: OutgoingMessage, pending: Pending, tries: number): void {
    try {
      // Header values as strings: node-rdkafka converts each value to a string anyway (a Buffer through
      // its toString(), called back from C++), so a Buffer would cost one allocation and one call more.
      const headers: Kafka.MessageHeader[] = [];
      for (const k in m.headers) headers.push({ [k]: m.headers[k]! });
      this.producer.produce(m.topic, null, m.value, m.key ?? undefined, Date.now(), pending, headers);
    } catch (e) {
      const err = coerceError(e);
      // Local queue full: let librdkafka drain a little and try again, bounded.
      if (/queue full/i.test(err.message) && tries < 200) {
        setTimeout(() => this.produceOne(m, pending, tries + 1), 5);
        return;
      }
      this.settled();
      pending.batch.report(pending.index, err);
    }
  }

  /**
   * Delivery reports reach JS only through poll(). Polling every 5 ms keeps a batch's wait for its reports
   * short, but an idle process would wake 200 times a second for nothing (a tenth of a relay's idle CPU),
   * so the timer runs only while a message awaits its report.
   */
  private pollWhileInFlight(): void {
    if (this.pollTimer || this.inFlight === 0) return;
    this.pollTimer = setInterval(() => {
      try {
        this.producer.poll();
      } catch {
        // Not connected (closing, or a broker outage): the reports come with a later poll or time out.
      }
    }, 5);
    this.pollTimer.unref();
  }

  /** One message's report came (or its produce failed): stop polling when none is left. */
  private settled(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (this.inFlight === 0 && this.pollTimer) {
      clearInterval(this.pollTimer);
      this.pollTimer = undefined;
    }
  }

  /** Broker metadata within a timeout: the health check. */
  async ping(timeoutMs = 2000): Promise<void> {
    if (!this.connected) throw new Error('producer not connected');
    await new Promise<void>((resolve, reject) => {
      this.producer.getMetadata({ timeout: timeoutMs, allTopics: false }, (err) => (err ? reject(new Error(err.message)) : resolve()));
    });
  }

  /** The cluster's metadata (brokers; topics with their partitions' replicas and in-sync replicas). */
  async metadata(timeoutMs = 5000, topic?: string): Promise<Kafka.Metadata> {
    if (!this.connected) throw new Error('producer not connected');
    return new Promise<Kafka.Metadata>((resolve, reject) => {
      this.producer.getMetadata({ timeout: timeoutMs, allTopics: topic === undefined, topic }, (err, md) =>
        err ? reject(new Error(err.message)) : resolve(md),
      );
    });
  }

  /** Idempotent: flushes what is queued, then disconnects once. */
  close(timeoutMs = 5000): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      if (!this.connected) return;
      await new Promise<void>((resolve) => this.producer.flush(timeoutMs, () => resolve()));
      await new Promise<void>((resolve) => this.producer.disconnect(timeoutMs, () => resolve()));
      clearInterval(this.pollTimer);
      this.pollTimer = undefined;
      this.connected = false;
    })();
    return this.closing;
  }
}

/**
 * Creates topics that do not exist yet (already existing is fine, and is left as it is) with the given
 * replication factor and `min.insync.replicas`.
 */
export async function ensureTopics(
  brokers: string,
  topics: Array<{ name: string; partitions: number }>,
  timeoutMs = 15_000,
  replication: { replicationFactor: number; minInsyncReplicas: number } = { replicationFactor: 1, minInsyncReplicas: 1 },
): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'metadata.broker.list': brokers, 'client.id': 'etp-admin' });
  try {
    for (const t of topics) {
      await new Promise<void>((resolve, reject) => {
        admin.createTopic(
          {
            topic: t.name,
            num_partitions: t.partitions,
            replication_factor: replication.replicationFactor,
            config: { 'min.insync.replicas': String(replication.minInsyncReplicas) },
          },
          timeoutMs,
          (err) => {
            if (!err || err.code === Kafka.CODES.ERRORS.ERR_TOPIC_ALREADY_EXISTS) resolve();
            else reject(new Error(`create topic ${t.name}: ${err.message}`));
          },
        );
      });
    }
  } finally {
    admin.disconnect();
  }
}

/** Topics whose partitions have fewer replicas than wanted (created before, or by hand): what to warn about. */
export function underReplicated(md: Kafka.Metadata, names: string[], replicationFactor: number): string[] {
  return md.topics
    .filter((t) => names.includes(t.name) && t.partitions.some((p) => p.replicas.length < replicationFactor))
    .map((t) => `${t.name} (${Math.min(...t.partitions.map((p) => p.replicas.length))} replicas)`);
}
