import Kafka from 'node-rdkafka';
import { randomBytes } from 'node:crypto';
import { KAFKA_BROKERS } from './env';

export interface ReadMessage {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: Record<string, unknown>;
  headers: Record<string, string>;
}

/**
 * An independent consumer (its own group, from the earliest offset) that collects every message of the
 * given topics: the tests' view of what really reached Kafka.
 */
export class KafkaReader {
  readonly messages: ReadMessage[] = [];
  private consumer: Kafka.KafkaConsumer;
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(
    private topics: string[],
    brokers = KAFKA_BROKERS,
  ) {
    this.consumer = new Kafka.KafkaConsumer(
      {
        'group.id': `etp-test-reader-${randomBytes(4).toString('hex')}`,
        'metadata.broker.list': brokers,
        'enable.auto.commit': false,
        'topic.metadata.refresh.interval.ms': 1000,
      },
      { 'auto.offset.reset': 'earliest' },
    );
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => this.consumer.connect({ timeout: 15_000 }, (err) => (err ? reject(err) : resolve())));
    this.consumer.subscribe(this.topics);
    this.consumer.setDefaultConsumeTimeout(100);
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const batch = await new Promise<Kafka.Message[]>((resolve) => this.consumer.consume(1000, (err, msgs) => resolve(err ? [] : msgs)));
        for (const m of batch) {
          const headers: Record<string, string> = {};
          for (const h of m.headers ?? [])
            for (const [k, v] of Object.entries(h)) headers[k] = Buffer.isBuffer(v) ? v.toString() : String(v);
          this.messages.push({
            topic: m.topic,
            partition: m.partition,
            offset: m.offset,
            key: m.key ? m.key.toString() : null,
            value: JSON.parse((m.value as Buffer).toString('utf8')) as Record<string, unknown>,
            headers,
          });
        }
      }
    })();
    return this;
  }

  byEventId(id: string): ReadMessage[] {
    return this.messages.filter((m) => m.value.event_id === id);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    try {
      this.consumer.unsubscribe();
    } catch {
      /* ignore */
    }
    await new Promise<void>((resolve) => this.consumer.disconnect(() => resolve()));
  }
}
