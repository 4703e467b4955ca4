import type { Config } from '../config';
import { randomUUID } from 'node:crypto';
import { PartitionKeeper } from '../db/partitions';
import type { Db } from '../db/knex';
import type { Lifecycle } from '../events';
import type { EventProducer } from '../kafka/producer';
import { coerceError } from '../logger';
import { dbErrorKind } from '../db/errors';
import { backoffMs, WakeableDelay, withDbRetry, type Clock } from '../util';
import { RelayRoster, ShardLeases, type CountedRelay } from './leases';
import { ensureShardFences } from '../db/outbox';
import { DirectFire } from './direct-fire';
import { ClaimCursor } from './claim-cursor';
import { OutboxPublisher, ShardBackoff, type Ordering } from './publisher';
import { fireDue, sweep } from './steps';
import { Tracing } from '../tracing/tracing';
import { createMultiStatementPool, type MultiPool } from '../db/multi';

export type Step = () => Promise<{ full: boolean; nextInMs?: number }>;

/**
 * A follower lane's idle ceiling, in idle intervals (SCHEDULER_INTERVAL): 10 s at the default 250 ms. Lane 0
 * wakes the followers when it finds work and when one of its steps runs longer than its idle interval
 * (`watched`), so a follower's own poll is only a safety net.
 */
const FOLLOWER_IDLE_FACTOR = 40;

/**
 * The sweep's idle ceiling, in RETENTION_SWEEP_INTERVAL: 30 s at the default 5 s. Sweeps that change nothing
 * (nothing aged out, no slice to make or retire) come twice as far apart each time up to it. Retention is
 * counted in hours, so a row may outlive its window by that much more on a platform that had been idle.
 */
const SWEEP_IDLE_FACTOR = 6;

/**
 * How long after publish lane 0 last found rows its quiet polls stay within 4 × OUTBOX_POLL_INTERVAL (80 ms),
 * as they always did; only an outbox quiet for longer is polled up to SCHEDULER_INTERVAL apart. Webhook
 * events a second or a few apart are so published as promptly as before (docs/decisions/relay-wakeups.md).
 */
const OUTBOX_RECENT_MS = 30_000;

/**
 * A poll that keeps finding nothing: each quiet one asks for the next twice as far off, from `baseMs` up to
 * `ceilingMs`; one that finds work brings it back to `baseMs`. With `recent`, the waits stay within
 * `recent.ceilingMs` until `recent.forMs` have passed since work was last found: a source that is merely
 * slow (work every second or so) keeps the short polls, one that has gone quiet gets the long ones.
 */
export class QuietBackoff {
  private quiet = 0;
  private foundAt = -Infinity;

  constructor(
    private readonly baseMs: number,
    private readonly ceilingMs: number,
    private readonly recent?: { ceilingMs: number; forMs: number },
    private readonly clock: Clock = Date.now,
  ) {}

  /**
   * The wait before the next poll, after one that did work (`found`) or not. `seen`: it saw work, done or
   * not (a publish lane 0 whose probe found rows in the other lanes' shards): it counts as recent.
   */
  after(found: boolean, seen = found): number {
    const now = this.clock();
    if (seen) this.foundAt = now;
    this.quiet = found ? 0 : Math.min(this.quiet + 1, 30);
    const ceiling =
      this.recent && now - this.foundAt < this.recent.forMs ? Math.min(this.ceilingMs, this.recent.ceilingMs) : this.ceilingMs;
    return Math.min(ceiling, this.baseMs * 2 ** this.quiet);
  }
}

/**
 * Lane 0's step, which wakes the other lanes of its loop when it runs longer than `afterMs`: lane 0 held up
 * in a long batch (a slow claim, Kafka slow to acknowledge) then does not hold up their work, and they need
 * no frequent polls of their own to make sure of it.
 */
export function watched(step: Step, afterMs: number, wakeOthers: () => void): Step {
  return async () => {
    const timer = setTimeout(wakeOthers, afterMs);
    try {
      return await step();
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * RELAY_FIRE_WINDOW: after a fire batch that was not full, waiting at least the window lets events due
 * close together share one transaction, for at most that much more lag. A relay alone so claims about once
 * per window plus the time its batch took (the claim, Kafka's acknowledgements, the commit).
 *
 * The window is the platform's, not each relay's: with N relays alive (counted and ranked by relay id in the
 * shard leases' refresh, or in unordered mode the roster's: relay/leases.ts) the relays take turns. Time is
 * cut into fire slots of `fireSlotMs` (the window and about a batch's time), and relay k claims at the start
 * of slots k, k + N, k + 2N, … (`fireSlotWaitMs`). The platform then claims once a slot, evenly spaced,
 * whatever N: as often as one relay does, and with its lag.
 * Before, each relay waited N windows, jittered 0.5–1.5× so that relays woken together would drift apart; their
 * claims fell at random moments, so the gaps between them were as uneven as random arrivals (two relays at 500
 * fires/s: 2 to 34 ms apart, against 15 to 25 in slots of 20), and four claimed half as often again as one relay
 * (docs/decisions/relay-wakeups.md). The slots are read from each relay's own clock: clocks apart by more than
 * a slot make some claims fall close together, which costs batch size, not correctness (every claim takes
 * whatever is due, SKIP LOCKED). A window of 0 (claim each occurrence as soon as it is due) has no slots.
 */
export function fireSlotWaitMs(nowMs: number, earliestMs: number, slotMs: number, relays: number, rank: number): number {
  let slot = Math.ceil((nowMs + Math.max(0, earliestMs)) / slotMs);
  if (slot * slotMs <= nowMs) slot++;
  slot += (((rank - slot) % relays) + relays) % relays;
  return slot * slotMs - nowMs;
}

/**
 * The idle probe's turn: with nothing due within the idle interval (SCHEDULER_INTERVAL), N relays take turns
 * at the fire lane's probe, as they take turns at claims (fireSlotWaitMs). Time is cut into turns of the idle
 * interval and relay k probes at the start of turns k, k + N, k + 2N, …, so the platform probes once an idle
 * interval whatever N, as one relay does: an occurrence that falls due unannounced (a trigger created
 * "in 0 seconds", a relay's clock behind) is found as soon as with one relay, and an idle platform's probes do
 * not grow with its relays. A relay whose probe saw the next occurrence wakes for it (its slot after the due
 * time) if that comes before its next turn. Turns, like slots, are read from each relay's clock.
 */
export function idleTurnWaitMs(
  nowMs: number,
  untilDueMs: number | undefined,
  idleMs: number,
  relays: number,
  rank: number,
  slotMs: number,
): number {
  const turn = fireSlotWaitMs(nowMs, 0, idleMs, relays, rank);
  if (untilDueMs === undefined) return turn;
  return Math.min(turn, slotMs > 0 ? fireSlotWaitMs(nowMs, untilDueMs, slotMs, relays, rank) : Math.max(0, untilDueMs));
}

/** What a fire slot adds to the window for the batch itself: about a batch's time at 2,000 fires/s on the bench machine. */
export const FIRE_SLOT_BATCH_MS = 10;

/**
 * A fire slot: the window (in whole RELAY_FIRE_WINDOW steps, so that relays whose widened windows differ a
 * little still agree on the slots) and FIRE_SLOT_BATCH_MS.
 */
export function fireSlotMs(windowMs: number, baseWindowMs: number): number {
  return Math.max(1, Math.round(windowMs / baseWindowMs)) * baseWindowMs + FIRE_SLOT_BATCH_MS;
}

/** The fire batch size (events) the window aims at while it widens: below it, a batch's fixed cost is most of its cost. */
export const FIRE_WINDOW_TARGET_BATCH = 16;
/** How much of each batch's size goes into the running average (the rest is the history's). */
const FIRE_WINDOW_SMOOTHING = 0.25;

/**
 * The platform's fire window (with several relays, fireSlotMs makes their turns of it), after the batches the
 * lane fired. Each fire batch has a fixed cost whatever its size: two round trips and a commit on MariaDB,
 * a Kafka produce request per partition it touches, the relay's own wake-ups. At a moderate rate (a few
 * hundred fires a second) a window of RELAY_FIRE_WINDOW holds a few events, and that fixed cost is almost
 * all of the platform's CPU: 200 fires/s cost about as much as 2,000/s (docs/performance-cpu.md). So while
 * batches are small the window widens, in inverse proportion to the average batch (about
 * FIRE_WINDOW_TARGET_BATCH events a batch), up to RELAY_FIRE_WINDOW_MAX; at high rates batches are large
 * and it stays at RELAY_FIRE_WINDOW, the lowest lag. It costs lag only where it merges: after a batch the
 * relay sleeps until the next due occurrence anyway, so a trickle whose events lie further apart than the
 * window is fired as promptly as before. RELAY_FIRE_WINDOW=0 (claim each as soon as it is due) stays 0.
 */
export class FireWindow {
  private average = FIRE_WINDOW_TARGET_BATCH;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {}

  get ms(): number {
    return Math.min(this.maxMs, Math.max(this.minMs, (this.minMs * FIRE_WINDOW_TARGET_BATCH) / this.average));
  }

  /** After a fire batch (not full) that fired `events`; a claim that found nothing says nothing of the rate. */
  after(events: number): void {
    if (events <= 0) return;
    this.average += FIRE_WINDOW_SMOOTHING * (events - this.average);
  }
}

/**
 * A fire lane's claim size: RELAY_BATCH_SIZE, doubled after each claim that came back full (up to
 * RELAY_BATCH_MAX), back to RELAY_BATCH_SIZE after one that did not. A burst is fired in fewer, larger
 * transactions (MariaDB's cost per event falls with the batch: docs/performance-cpu.md), while a steady
 * trickle, and the duplicates a relay killed mid-batch can leave on Kafka, stay at the base size whenever
 * nothing is behind. A claim stopped by the payload bound (rows `left`) does not grow it.
 *
 * The direct path's produce must be acknowledged within RELAY_DIRECT_TIMEOUT, and a larger batch takes
 * longer (on the bench machine 71–381 ms for 2,000 events, under 120 ms for 500). So the claim grows only
 * while its batch's produce took at most a quarter of `kafkaBudgetMs` (the timeout: a batch twice as large
 * then stays within half of it), and is halved after a produce that took more than half.
 */
export class ClaimSize {
  private size: number;

  constructor(
    private readonly base: number,
    private readonly max: number,
    private readonly kafkaBudgetMs = Infinity,
  ) {
    this.size = base;
  }

  get current(): number {
    return this.size;
  }

  /**
   * After a claim at the current size that took `claimed` rows and left `left` of them for later; `kafkaMs`:
   * how long its produce took (undefined when it produced nothing: outbox mode, the direct path paused).
   */
  after(claimed: number, left: number, kafkaMs?: number): void {
    if (claimed < this.size || left > 0) this.size = this.base;
    else if (kafkaMs !== undefined && kafkaMs > this.kafkaBudgetMs / 2) this.size = Math.max(this.base, Math.floor(this.size / 2));
    else if (kafkaMs === undefined || kafkaMs <= this.kafkaBudgetMs / 4) this.size = Math.min(this.size * 2, this.max);
  }
}

/**
 * A relay: three independent loops over the same database, no leader, any number of instances.
 *   schedules → Kafka (direct) or outbox rows, + event logs + next occurrence, one transaction per batch;
 *   outbox    → Kafka, delivery reports awaited, then marked published, one transaction per batch;
 *   sweep     → retention (active → archived → deleted) and clean-up of finished rows.
 */
export class Relay {
  private stopping = false;
  private loops: Promise<void>[] = [];
  private readonly delays = { sweep: new WakeableDelay(), leases: new WakeableDelay() };
  private readonly fireDelays: WakeableDelay[] = [];
  private readonly publishDelays: WakeableDelay[] = [];
  /** Publish lane 0's last step found nothing: it polls at its backed-off interval (wakeOutbox). */
  private outboxQuiet = false;
  /** wakeOutbox was called since publish lane 0's current step began. */
  private outboxRung = false;
  private leases: ShardLeases | undefined;
  /**
   * The relays alive and this one's rank, for the fire slots: the shard leases, or without them (unordered
   * mode) a roster of its own.
   */
  private roster: CountedRelay | undefined;
  private stopped: Promise<void> | null = null;
  /** The multi-statement connections of the fire and publish lanes (one per lane): see fireDue and PublishLane. */
  private script: MultiPool | null = null;

  private readonly tracing: Tracing;
  /** The event tables' time slices: made ahead and retired whole by the sweep (db/partitions.ts). */
  private readonly partitions = new PartitionKeeper(`relay-${process.pid}-${randomUUID().slice(0, 8)}`);

  /** `tracing`: the fire spans (and trace contexts) of scheduled events; without it traceparents only. */
  constructor(private readonly deps: { db: Db; producer: EventProducer; config: Config; events: Lifecycle; tracing?: Tracing }) {
    this.tracing = deps.tracing ?? new Tracing();
  }

  /** Long because it wires every loop of the relay in one place; each loop's body is a few lines. */
  // eslint-disable-next-line max-lines-per-function -- every loop wired in one place, as said above
  async start(): Promise<void> {
    const { db, producer, config, events } = this.deps;
    const idleMs = config.schedulerIntervalMs;
    // Lanes other than 0 poll on their own only this seldom while they find nothing: lane 0 wakes them when
    // it finds work or is held up in a step (docs/decisions/relay-wakeups.md).
    const followerIdleMs = idleMs * FOLLOWER_IDLE_FACTOR;
    // One connection per fire lane and per publish lane, and one for the lease refresh.
    const script = (this.script = createMultiStatementPool(config.databaseUrl, 2 * config.relayConcurrency + 1));
    if (config.outboxOrdering) {
      const leases = new ShardLeases(db, config.outboxShards, config.relayLeaseMs, script);
      await withDbRetry(() => leases.init());
      await withDbRetry(() => ensureShardFences(db, config.outboxShards));
      await withDbRetry(() => leases.refresh());
      this.leases = leases;
      this.roster = leases;
    } else {
      const roster = new RelayRoster(db, config.relayLeaseMs, script);
      await withDbRetry(() => roster.refresh());
      this.roster = roster;
    }
    const ordering: Ordering | undefined = this.leases && { leases: this.leases, backoff: new ShardBackoff() };
    const direct = config.relayFireMode === 'direct' ? new DirectFire(producer, config) : null;
    const publisher = new OutboxPublisher({ db, producer, config, events, ordering, script });
    const publishLanes = Array.from({ length: config.relayConcurrency }, (_, lane) => publisher.lane(lane, config.relayConcurrency));
    // Publish lanes from `from` on: claim at once (no probe first), now rather than at their next poll.
    const wakePublishLanes = (from: number) => {
      for (let i = from; i < publishLanes.length; i++) {
        publishLanes[i]!.markBusy();
        this.publishDelays[i]?.wake();
      }
    };
    const wakeFireLanes = () => this.fireDelays.forEach((d) => d.wake());
    // Lane 0 held up: the others poll on their own now (a probe first), not at their idle ceiling.
    const wakeFireFollowers = () => this.fireDelays.slice(1).forEach((d) => d.wake());
    const wakePublishFollowers = () => this.publishDelays.slice(1).forEach((d) => d.wake());
    // Lane 0 of the publish loop wakes its followers when one of its steps runs longer than this.
    const publishHeldUpMs = Math.min(idleMs, config.outboxPollIntervalMs * 4);
    this.loops = [];
    // RELAY_CONCURRENCY lanes of each claim loop: one relay keeps several batches in flight, so the time a
    // batch waits on MySQL or on Kafka's delivery reports is overlapped by the other lanes (the loop is
    // latency-bound, not CPU-bound). Fire lanes claim disjoint rows (SKIP LOCKED); in ordered mode each
    // publish lane takes the held shards with shard % lanes = lane, so a shard is still published by one
    // lane, in id order. After a step that found nothing, a lane's next poll is one probe statement
    // without a transaction; lane 0 polls at the short intervals and wakes the others when it finds work or
    // is held up in a step, the others poll only at the idle ceiling (docs/decisions/relay-wakeups.md).
    for (let lane = 0; lane < config.relayConcurrency; lane++) {
      const fireDelay = new WakeableDelay();
      const publishDelay = new WakeableDelay();
      const publishLane = publishLanes[lane]!;
      const leader = lane === 0;
      const publishBackoff = new QuietBackoff(config.outboxPollIntervalMs, idleMs, {
        ceilingMs: publishHeldUpMs,
        forMs: OUTBOX_RECENT_MS,
      });
      let fireIdle = false;
      const claimSize = new ClaimSize(config.relayBatchSize, config.relayBatchMax, config.relayDirectTimeoutMs);
      const fireWindow = new FireWindow(config.relayFireWindowMs, config.relayFireWindowMaxMs);
      // Where the lane's claims start: past its last claim, from the head at least every idle interval.
      const claimCursor = new ClaimCursor(idleMs);
      this.fireDelays.push(fireDelay);
      this.publishDelays.push(publishDelay);
      const fire: Step = async () => {
        const limit = claimSize.current;
        const r = await withDbRetry(() =>
          fireDue(db, config, events, direct, this.tracing, { probeFirst: fireIdle, script, limit, cursor: claimCursor }),
        );
        fireIdle = r.claimed === 0;
        claimSize.after(r.claimed, r.left, r.kafkaMs);
        if (r.queued > 0) wakePublishLanes(0); // new outbox rows: publish them now, not at the next poll
        // Lane 0 wakes the other lanes when it finds more than a batch due, so a steady trickle of fires
        // does not cost an empty claim per lane.
        if (r.full) wakeFireLanes();
        // A follower that found nothing polls at its own ceiling; one that found work, at the idle interval.
        if (!leader) return { ...r, nextInMs: r.claimed > 0 ? idleMs : undefined };
        if (!r.full && r.claimed > r.left) {
          fireWindow.after(r.claimed - r.left);
          events.emitEvent('relay:fire_window', { ms: fireWindow.ms });
        }
        const untilDue = r.nextInMs ?? idleMs;
        const turns = this.turns();
        const slotMs = config.relayFireWindowMs > 0 ? fireSlotMs(fireWindow.ms, config.relayFireWindowMs) : 0;
        // Nothing due within the idle interval: the relays take turns at the probe (idleTurnWaitMs).
        if (turns && (r.nextInMs === undefined || r.nextInMs > idleMs)) {
          return { ...r, nextInMs: idleTurnWaitMs(Date.now(), r.nextInMs, idleMs, turns.relays, turns.rank, slotMs) };
        }
        const waitMs =
          turns && slotMs > 0 ? fireSlotWaitMs(Date.now(), untilDue, slotMs, turns.relays, turns.rank) : Math.max(untilDue, fireWindow.ms);
        return { ...r, nextInMs: Math.min(idleMs, waitMs) };
      };
      const publish: Step = async () => {
        if (leader) this.outboxRung = false;
        const r = await publishLane.publish(leader);
        if (leader && r.found) wakePublishLanes(1);
        // A lane that keeps finding nothing polls less often: OUTBOX_POLL_INTERVAL while rows come, twice as
        // far apart after each quiet poll, up to 4× that within OUTBOX_RECENT_MS of the last row seen and up
        // to SCHEDULER_INTERVAL, the relay's idle ceiling, after that (scheduled events bypass the outbox, so
        // it is often empty). Any row resets it. An API in the same process wakes a quiet lane 0 when it
        // commits rows (wakeOutbox). The other lanes, after a claim that found nothing, wait for lane 0 (which
        // wakes them when it finds rows, or when one of its steps is held up) or their idle ceiling.
        const nextInMs = publishBackoff.after(r.claimed > 0, r.found);
        if (leader) {
          this.outboxQuiet = r.claimed === 0;
          // Woken while this step ran: the rows may have come after its probe, so it polls again now.
          if (this.outboxRung) return { ...r, nextInMs: 0 };
          // Unordered mode, quiet at the idle interval: any relay may publish any row, so one relay's probe
          // stands in for all of them and the relays take turns at it, as at the fire probe. (Ordered: a
          // relay publishes only the shards it leases, and only its own probe can tell it they hold rows.)
          const turns = this.turns();
          if (!config.outboxOrdering && turns && !r.found && nextInMs >= idleMs) {
            return { ...r, nextInMs: idleTurnWaitMs(Date.now(), undefined, idleMs, turns.relays, turns.rank, 0) };
          }
        }
        if (!leader && r.claimed === 0) return { ...r, nextInMs: undefined };
        return { ...r, nextInMs };
      };
      this.loops.push(
        this.loop(
          `schedules-${lane}`,
          fireDelay,
          leader ? idleMs : followerIdleMs,
          leader ? watched(fire, idleMs, wakeFireFollowers) : fire,
          // Lane 0 always says how long to wait: up to its idle turn among N relays (N idle intervals).
          followerIdleMs,
        ),
        this.loop(
          `outbox-${lane}`,
          publishDelay,
          leader ? idleMs : followerIdleMs,
          leader ? watched(publish, publishHeldUpMs, wakePublishFollowers) : publish,
          // Lane 0 always says how long to wait: in unordered mode up to its idle turn among N relays.
          followerIdleMs,
        ),
      );
    }
    // A sweep that changed nothing (an idle platform, or one with no history yet) asks for the next one
    // twice as far off, up to SWEEP_IDLE_FACTOR × RETENTION_SWEEP_INTERVAL; any change resets it. A failed
    // sweep is also tried again at that ceiling (30 s at the defaults): nothing waits on it.
    const sweepEvery = config.retentionSweepIntervalMs;
    const sweepBackoff = new QuietBackoff(sweepEvery, sweepEvery * SWEEP_IDLE_FACTOR);
    this.loops.push(
      this.loop('sweep', this.delays.sweep, sweepEvery * SWEEP_IDLE_FACTOR, async () => {
        const r = await withDbRetry(() => sweep(db, config, events, this.partitions));
        return { full: r.full, nextInMs: sweepBackoff.after(!r.quiet) };
      }),
    );
    // Renew well inside the lease time, so a live relay never loses a shard to a slow tick; the roster alone
    // (unordered mode) is refreshed as often, so both modes count the relays alike.
    const every = Math.max(100, Math.floor(config.relayLeaseMs / 4));
    const refreshed = this.roster;
    if (refreshed) {
      this.loops.push(
        this.loop(this.leases ? 'leases' : 'roster', this.delays.leases, every, async () => {
          await refreshed.refresh();
          return { full: false };
        }),
      );
    }
  }

  /** The live relays and this relay's rank among them, when it takes turns with others (more than one counted); else null. */
  private turns(): { relays: number; rank: number } | null {
    const relays = this.roster?.liveRelays() ?? 1;
    return this.roster && relays > 1 ? { relays, rank: this.roster.rank() } : null;
  }

  /**
   * An API in the same process committed outbox rows: a publish lane 0 that found nothing at its last poll
   * (so may be waiting up to SCHEDULER_INTERVAL) polls now. Its probe covers every lane's shards, and it
   * wakes the lane whose shards hold the rows; one woken in the middle of a step polls again as it ends (its
   * probe may have run before the commit). A lane 0 that is publishing already is left to its poll, so
   * commits coming fast do not split its batches.
   */
  wakeOutbox(): void {
    if (!this.outboxQuiet) return;
    this.outboxQuiet = false;
    this.outboxRung = true;
    this.publishDelays[0]?.wake();
  }

  /**
   * The one loop shape: run the step; go again at once after a full batch; otherwise wait until the step's
   * hint (e.g. the next due fire_at; at most `ceilingMs`) or the idle ceiling; back off with jitter while the
   * step keeps failing.
   */
  private async loop(name: string, delay: WakeableDelay, idleMs: number, step: Step, ceilingMs = idleMs): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      let waitMs: number;
      try {
        const r = await step();
        failures = 0;
        waitMs = r.full ? 0 : Math.max(0, Math.min(ceilingMs, r.nextInMs ?? idleMs));
      } catch (e) {
        failures++;
        this.deps.events.emitEvent('relay:error', { step: name, error: coerceError(e) });
        // A database failover (a few seconds) is waited out in short steps, so the loop is back within a
        // couple of seconds of the database; anything else backs off further.
        waitMs = Math.max(idleMs, backoffMs(failures, 200, dbErrorKind(e) === null ? 10_000 : 2000));
      }
      if (waitMs > 0 && !this.stopping) await delay.wait(waitMs);
    }
  }

  /** Idempotent: stop claiming, let the batch in hand finish (its transaction commits or rolls back). */
  stop(): Promise<void> {
    if (this.stopped) return this.stopped;
    this.stopping = true;
    [...Object.values(this.delays), ...this.fireDelays, ...this.publishDelays].forEach((d) => d.wake());
    this.stopped = Promise.all(this.loops).then(async () => {
      // Hand our shards over at once rather than making the others wait for the leases to expire.
      await this.roster?.release().catch(() => undefined);
      await this.script?.end().catch(() => undefined);
    });
    return this.stopped;
  }
}
