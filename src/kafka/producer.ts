import Kafka from 'node-rdkafka';
import { coerceError } from '../logger';

export interface OutgoingMessage {
  topic: string;
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

export interface ProducerOptions {
  brokers: string;
  messageTimeoutMs: number;
  clientId?: string;
}

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
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
        'compression.codec': 'lz4',
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
      if (err) p.reject(new Error(`kafka delivery failed: ${err.message}`));
      else p.resolve();
    });
    // Errors are surfaced through delivery reports; swallow the event so it never becomes an uncaught throw.
    this.producer.on('event.error', () => undefined);
  }

  async connect(timeoutMs = 15_000): Promise<void> {
    if (this.connected) return;
    await new Promise<void>((resolve, reject) => {
      this.producer.connect({ timeout: timeoutMs }, (err) => (err ? reject(new Error(`kafka connect: ${err.message}`)) : resolve()));
    });
    this.producer.setPollInterval(5);
    this.connected = true;
  }

  get isConnected(): boolean {
    return this.connected && this.producer.isConnected();
  }

  /**
   * Produces every message and resolves with one outcome per message (in input order) once all delivery
   * reports are in. Never throws for a single failed message: the caller decides what a failure means.
   */
  async publish(messages: OutgoingMessage[], deadlineMs?: number): Promise<Array<Error | null>> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Error>((resolve) => {
      // With a deadline, a message whose report has not come by then counts as failed here. It may still
      // be delivered later (the caller must treat it as "maybe sent": at-least-once, same event id).
      if (deadlineMs !== undefined) timer = setTimeout(() => resolve(new Error(`no delivery report within ${deadlineMs} ms`)), deadlineMs);
    });
    const outcomes = messages.map((m) => {
      const report = new Promise<Error | null>((resolve) => {
        const pending: Pending = { resolve: () => resolve(null), reject: (e) => resolve(e) };
        this.produceOne(m, pending, 0);
      });
      return deadlineMs === undefined ? report : Promise.race([report, late]);
    });
    try {
      return await Promise.all(outcomes);
    } finally {
      clearTimeout(timer);
    }
  }

  private produceOne(m: OutgoingMessage, pending: Pending, tries: number): void {
    try {
      const headers = Object.entries(m.headers).map(([k, v]) => ({ [k]: Buffer.from(v) }));
      this.producer.produce(m.topic, null, m.value, m.key ?? undefined, Date.now(), pending, headers);
    } catch (e) {
      const err = coerceError(e);
      // Local queue full: let librdkafka drain a little and try again, bounded.
      if (/queue full/i.test(err.message) && tries < 200) {
        setTimeout(() => this.produceOne(m, pending, tries + 1), 5);
        return;
      }
      pending.reject(err);
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
