import type { Config } from '../config';
import type { EventInsert } from '../db/events';
import { shardOf } from '../db/outbox';
import type { EventProducer } from '../kafka/producer';
import { eventMessage, MessageInstants, toKafka } from '../kafka/message';
import { backoffMs, type Clock } from '../util';

/** The least pause of the direct path after a failed produce, before the jittered back-off is added. */
const PAUSE_BASE_MS = 1000;
/** The jittered part of the pause grows from this … */
const PAUSE_BACKOFF_BASE_MS = 1000;
/** … up to this, so a long broker outage costs one `RELAY_DIRECT_TIMEOUT` every 1–31 s at most. */
const PAUSE_BACKOFF_CAP_MS = 30_000;

/**
 * The direct fire path of one relay (RELAY_FIRE_MODE=direct): a due event is produced to Kafka inside its
 * fire transaction instead of going through an outbox row. Whatever Kafka does not acknowledge within
 * RELAY_DIRECT_TIMEOUT stays for the outbox (in the same commit), and the path pauses with back-off, so an
 * outage delays firing by one timeout, not one per batch. The pause is this relay's state, not the process's:
 * two relays in one process (tests) do not pause each other.
 */
export class DirectFire {
  private pausedUntil = 0;
  private failures = 0;
  private readonly clock: Clock;
  private readonly random: () => number;

  constructor(
    private readonly producer: Pick<EventProducer, 'publish'>,
    private readonly config: Pick<Config, 'kafkaTopic' | 'relayDirectTimeoutMs' | 'outboxOrdering'>,
    options: { clock?: Clock; random?: () => number } = {},
  ) {
    this.clock = options.clock ?? Date.now;
    this.random = options.random ?? Math.random;
  }

  /** False while the path is paused after a failure: due events then go through the outbox. */
  isOpen(): boolean {
    return this.clock() >= this.pausedUntil;
  }

  /**
   * Produces the events that may skip the outbox and sets `published_at` on those Kafka acknowledged; the
   * rest keep `published_at` unset and get outbox rows from the caller. In ordered mode an event whose shard
   * still has queued outbox rows (a test run, a replay, an outage's backlog) is not sent: it queues behind them.
   * `backlog` says which of the given shards (of `shards`) have queued rows, read in the fire transaction.
   * Returns how long it took, in ms (the backlog read and the delivery reports included).
   */
  async produce(toLog: EventInsert[], shards: number, backlog: (shards: number[]) => Promise<Set<number>>): Promise<number> {
    const started = performance.now();
    let sendable = toLog;
    if (this.config.outboxOrdering) {
      const busy = await backlog([...new Set(toLog.map((e) => shardOf(e.trigger_id, shards)))]);
      if (busy.size > 0) sendable = toLog.filter((e) => !busy.has(shardOf(e.trigger_id, shards)));
    }
    await this.send(sendable);
    return performance.now() - started;
  }

  /** Produces `events`, stamps the acknowledged ones, and pauses the path (or resets the pause) by the outcome. */
  async send(events: EventInsert[]): Promise<void> {
    if (events.length === 0) return;
    // Bounded: a fire transaction never waits out a broker outage (a late chain would misfire). What is not
    // acknowledged in time goes through the outbox; a late report then only makes a duplicate.
    const instants = new MessageInstants();
    const outcomes = await this.producer.publish(
      events.map((e) => toKafka(this.config.kafkaTopic, eventMessage(e, instants))),
      this.config.relayDirectTimeoutMs,
    );
    const at = new Date(this.clock());
    // A trigger with a failed event (fire_all backfill) sends its later ones through the outbox too, behind it.
    const failedTriggers = new Set(events.filter((_, i) => outcomes[i] !== null).map((e) => e.trigger_id));
    events.forEach((e, i) => {
      if (outcomes[i] === null && !failedTriggers.has(e.trigger_id)) e.published_at = at;
    });
    if (failedTriggers.size > 0) {
      this.failures++;
      this.pausedUntil = this.clock() + PAUSE_BASE_MS + backoffMs(this.failures, PAUSE_BACKOFF_BASE_MS, PAUSE_BACKOFF_CAP_MS, this.random);
    } else {
      this.failures = 0;
    }
  }
}
