import { expect } from 'chai';
import type { EventInsert } from '../../src/db/events';
import { Lifecycle } from '../../src/events';
import type { OutgoingMessage } from '../../src/kafka/producer';
import { DirectFire } from '../../src/relay/direct-fire';
import { BatchBackoff, OutboxPublisher, ShardBackoff, Throttle } from '../../src/relay/publisher';
import {
  ClaimSize,
  FIRE_SLOT_BATCH_MS,
  FIRE_WINDOW_TARGET_BATCH,
  FireWindow,
  fireSlotMs,
  fireSlotWaitMs,
  idleTurnWaitMs,
  QuietBackoff,
  watched,
} from '../../src/relay/relay';
import { createDb, dbSettings, type Db } from '../../src/db/knex';
import { boundedBatch, OUTBOX_INLINE_MAX_BYTES, outboxShardsOf, shardOf, withOutboxValues, type ClaimedOutbox } from '../../src/db/outbox';
import { claimedOf, claimEnd, largeConfigsToRead, withLargeConfigs, type Claimed } from '../../src/db/schedules';
import { CLAIM_RESCAN_MS, ClaimCursor } from '../../src/relay/claim-cursor';
import { FIRE_BATCH_MAX_CHARS, planFiring } from '../../src/relay/steps';
import type { TriggerConfig } from '../../src/triggers/types';

/**
 * The relay's run-time state, each piece on its own object with the clock passed in: the direct fire
 * path's pause after a failed produce, the back-off of a failed shard (ordered) or batch (unordered), the
 * promotion throttle and the shards a publish lane claims. The database and Kafka parts of these steps
 * are covered by the integration tests (relay, ordering, broker faults); here only the decisions.
 */

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

function event(id: string, triggerId: string): EventInsert {
  return {
    id,
    trigger_id: triggerId,
    trigger_type: 'cron_scheduled',
    source: 'scheduler',
    is_test_run: false,
    payload: null,
    scheduled_for: new Date(0),
    fired_at: new Date(0),
  };
}

/** A producer whose delivery reports are given by the test: `fail` names the event ids whose report is an error. */
function producer(fail: Set<string> = new Set()) {
  const calls: Array<{ keys: Array<string | null>; deadlineMs: number | undefined }> = [];
  return {
    calls,
    fail,
    publish(messages: OutgoingMessage[], deadlineMs?: number): Promise<Array<Error | null>> {
      calls.push({ keys: messages.map((m) => m.key), deadlineMs });
      return Promise.resolve(
        messages.map((m) => (fail.has(m.headers['event-id'] ?? '') ? new Error('no delivery report within 500 ms') : null)),
      );
    },
  };
}

const CONFIG = { kafkaTopic: 'trigger-events', relayDirectTimeoutMs: 500, outboxOrdering: false };

describe('relay state: the direct fire path (DirectFire)', () => {
  it('stamps every acknowledged event as published, waits at most RELAY_DIRECT_TIMEOUT and stays open', async () => {
    const clock = manualClock();
    const p = producer();
    const direct = new DirectFire(p, CONFIG, { clock: clock.now });
    const events = [event('e1', 't1'), event('e2', 't2')];
    await direct.send(events);
    expect(p.calls).to.deep.equal([{ keys: ['t1', 't2'], deadlineMs: 500 }]);
    expect(events.map((e) => e.published_at?.getTime())).to.deep.equal([clock.now(), clock.now()]);
    expect(direct.isOpen()).to.equal(true);
  });

  it("leaves a failed event, and its trigger's later events, to the outbox; other triggers' acknowledged events are published", async () => {
    const direct = new DirectFire(producer(new Set(['e1'])), CONFIG, { clock: manualClock().now });
    const events = [event('e1', 't1'), event('e2', 't1'), event('e3', 't2')];
    await direct.send(events);
    expect(events.map((e) => e.published_at !== undefined)).to.deep.equal([false, false, true]);
  });

  it('pauses after a failure for 1 s plus a back-off that grows with consecutive failures, and a success resets it', async () => {
    const clock = manualClock();
    const p = producer(new Set(['e1']));
    const direct = new DirectFire(p, CONFIG, { clock: clock.now, random: () => 0.5 });
    await direct.send([event('e1', 't1')]);
    // 1,000 ms + half of min(30 s, 1 s × 2^0)
    clock.advance(1499);
    expect(direct.isOpen()).to.equal(false);
    clock.advance(1);
    expect(direct.isOpen()).to.equal(true);

    await direct.send([event('e1', 't1')]); // the second failure in a row: half of 2 s
    clock.advance(1999);
    expect(direct.isOpen()).to.equal(false);
    clock.advance(1);
    expect(direct.isOpen()).to.equal(true);

    p.fail.clear();
    await direct.send([event('e1', 't1')]);
    expect(direct.isOpen()).to.equal(true);
    p.fail.add('e1');
    await direct.send([event('e1', 't1')]); // counted from one again
    clock.advance(1499);
    expect(direct.isOpen()).to.equal(false);
    clock.advance(1);
    expect(direct.isOpen()).to.equal(true);
  });

  it('caps the pause at 31 s however long the outage', async () => {
    const clock = manualClock();
    const direct = new DirectFire(producer(new Set(['e1'])), CONFIG, { clock: clock.now, random: () => 0.999999 });
    for (let i = 0; i < 20; i++) {
      await direct.send([event('e1', 't1')]);
      clock.advance(31_000);
      expect(direct.isOpen(), `after failure ${i + 1}`).to.equal(true);
    }
  });

  it('keeps its pause to itself: another relay in the same process is not paused', async () => {
    const clock = manualClock();
    const a = new DirectFire(producer(new Set(['e1'])), CONFIG, { clock: clock.now });
    const b = new DirectFire(producer(), CONFIG, { clock: clock.now });
    await a.send([event('e1', 't1')]);
    expect(a.isOpen()).to.equal(false);
    expect(b.isOpen()).to.equal(true);
  });
});

describe('relay state: publish back-off', () => {
  it('blocks only the failed shard, for 200 ms plus a back-off growing with its failures, until a delivery resets it', () => {
    const clock = manualClock();
    const backoff = new ShardBackoff(clock.now, () => 0.5);
    backoff.failed(3);
    expect(backoff.isBlocked(3)).to.equal(true);
    expect(backoff.isBlocked(4)).to.equal(false);
    clock.advance(449); // 200 + half of 500
    expect(backoff.isBlocked(3)).to.equal(true);
    clock.advance(1);
    expect(backoff.isBlocked(3)).to.equal(false);
    backoff.failed(3); // second in a row: 200 + half of 1,000
    clock.advance(699);
    expect(backoff.isBlocked(3)).to.equal(true);
    clock.advance(1);
    expect(backoff.isBlocked(3)).to.equal(false);
    backoff.delivered(3);
    backoff.failed(3); // reset: 200 + half of 500 again
    clock.advance(450);
    expect(backoff.isBlocked(3)).to.equal(false);
  });

  it('retries an unordered batch later after each consecutive failure, up to 15.5 s, and from the start after a success', () => {
    const clock = manualClock();
    const backoff = new BatchBackoff(clock.now, () => 0.5);
    const delays = () => backoff.failed().getTime() - clock.now();
    expect([delays(), delays(), delays()]).to.deep.equal([750, 1000, 1500]);
    for (let i = 0; i < 10; i++) delays();
    expect(delays()).to.equal(500 + 7500);
    backoff.succeeded();
    expect(delays()).to.equal(750);
  });

  it('throttles promotion to once per period of its clock', () => {
    const clock = manualClock();
    const throttle = new Throttle(100, clock.now);
    expect(throttle.due()).to.equal(true);
    expect(throttle.due()).to.equal(false);
    clock.advance(99);
    expect(throttle.due()).to.equal(false);
    clock.advance(1);
    expect(throttle.due()).to.equal(true);
  });
});

describe('relay state: publish lanes', () => {
  it('gives a lane the held shards with shard % lanes = lane, leaving out those waiting after a failure', () => {
    const clock = manualClock();
    const backoff = new ShardBackoff(clock.now);
    const leases = { owned: () => [0, 1, 2, 3, 4, 5, 6, 7], verify: () => Promise.resolve([]), ours: () => [] };
    const publisher = new OutboxPublisher({
      db: {} as Db,
      producer: producer(),
      config: { relayBatchSize: 500 },
      events: new Lifecycle(),
      ordering: { leases, backoff },
      clock: clock.now,
    });
    expect(publisher.lane(0, 3).shards()).to.deep.equal([0, 3, 6]);
    expect(publisher.lane(2, 3).shards()).to.deep.equal([2, 5]);
    backoff.failed(3);
    expect(publisher.lane(0, 3).shards()).to.deep.equal([0, 6]);
    clock.advance(16_000);
    expect(publisher.lane(0, 3).shards()).to.deep.equal([0, 3, 6]);
  });
});

describe('outbox shard count', () => {
  it('belongs to each database handle: two handles in one process keep their own counts', async () => {
    // No connection is opened: knex connects on the first query.
    const a = createDb('mysql://root@127.0.0.1:1/none', 1, 8);
    const b = createDb('mysql://root@127.0.0.1:1/none', 1, 256);
    try {
      expect(outboxShardsOf(a)).to.equal(8);
      expect(outboxShardsOf(b)).to.equal(256);
      expect(() => outboxShardsOf(createDb('mysql://root@127.0.0.1:1/none', 1))).not.to.throw();
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
  });

  it('refuses a handle made outside createDb instead of guessing a count', () => {
    expect(() => dbSettings({ client: { config: {} } } as unknown as Db)).to.throw(/outside createDb/);
  });

  it('puts one key in one shard below the count, spreading keys over every shard', () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `trigger-${i}`);
    for (const shards of [1, 7, 64]) {
      const seen = new Set(keys.map((k) => shardOf(k, shards)));
      expect([...seen].every((s) => s >= 0 && s < shards)).to.equal(true);
      expect(seen.size).to.equal(shards);
      expect(shardOf('same', shards)).to.equal(shardOf('same', shards));
    }
  });
});

describe('several relays take turns in fire slots', () => {
  /** The instants (ms) at which relay `rank` of `relays` claims from `start` on, `n` times, each batch taking `batchMs`. */
  function claims(rank: number, relays: number, slotMs: number, start: number, n: number, batchMs: number): number[] {
    const at: number[] = [];
    let now = start;
    for (let i = 0; i < n; i++) {
      now += fireSlotWaitMs(now, 0, slotMs, relays, rank);
      at.push(now);
      now += batchMs;
    }
    return at;
  }

  it('relay k of N claims at the start of slots k, k + N, k + 2N, …', () => {
    for (const relays of [2, 3, 4]) {
      for (let rank = 0; rank < relays; rank++) {
        for (const t of claims(rank, relays, 20, 1_765_000_000_003, 50, 8)) {
          expect(t % 20).to.equal(0);
          expect((t / 20) % relays).to.equal(rank);
        }
      }
    }
  });

  it('so the platform claims once a slot, evenly spaced, whatever the number of relays', () => {
    for (const relays of [2, 4, 7]) {
      const all = Array.from({ length: relays }, (_, rank) => claims(rank, relays, 20, 1_765_000_000_000, 40, 8))
        .flat()
        .sort((x, y) => x - y);
      const gaps = all.slice(1).map((t, i) => t - all[i]!);
      expect(new Set(gaps)).to.deep.equal(new Set([20]));
    }
  });

  it('waits for the next due occurrence, and then for the relay whose slot comes first after it', () => {
    const now = 1_765_000_000_000; // a slot boundary: slot 88,250,000,000
    const due = 1_234; // ms from now
    const waits = [0, 1, 2, 3].map((rank) => fireSlotWaitMs(now, due, 20, 4, rank));
    for (const w of waits) expect(w).to.be.at.least(due);
    // One relay claims within a slot of the due time; each other one a slot after the last.
    expect([...waits].sort((x, y) => x - y).map((w) => w - Math.min(...waits))).to.deep.equal([0, 20, 40, 60]);
    expect(Math.min(...waits) - due).to.be.below(20);
  });

  it('never claims at once after its own batch: the next own slot starts later, an overdue occurrence included', () => {
    for (const now of [1_765_000_000_000, 1_765_000_000_007, 1_765_000_000_019]) {
      for (let rank = 0; rank < 3; rank++) {
        const w = fireSlotWaitMs(now, -50, 20, 3, rank);
        expect(w).to.be.above(0);
        expect(w).to.be.at.most(60);
      }
    }
  });

  it('slots are the window in whole RELAY_FIRE_WINDOW steps and a batch allowance, so relays agree on them', () => {
    expect(fireSlotMs(10, 10)).to.equal(10 + FIRE_SLOT_BATCH_MS);
    expect(fireSlotMs(23.7, 10)).to.equal(20 + FIRE_SLOT_BATCH_MS);
    expect(fireSlotMs(26.1, 10)).to.equal(30 + FIRE_SLOT_BATCH_MS);
    expect(fireSlotMs(40, 10)).to.equal(40 + FIRE_SLOT_BATCH_MS);
    expect(fireSlotMs(3, 10)).to.equal(10 + FIRE_SLOT_BATCH_MS);
  });
});

describe('idle relays take turns at the fire probe (idleTurnWaitMs)', () => {
  /** The instants (ms) at which relay `rank` of `relays` probes an idle platform from `start` on, `n` times. */
  function probes(rank: number, relays: number, idleMs: number, start: number, n: number): number[] {
    const at: number[] = [];
    let now = start;
    for (let i = 0; i < n; i++) {
      now += idleTurnWaitMs(now, undefined, idleMs, relays, rank, 20);
      at.push(now);
      now += 2; // the probe's round trip
    }
    return at;
  }

  it('N idle relays probe as one: once an idle interval, evenly spaced, each every N intervals', () => {
    for (const relays of [2, 3, 5]) {
      const each = Array.from({ length: relays }, (_, rank) => probes(rank, relays, 250, 1_765_000_000_017, 20));
      for (const own of each) {
        const gaps = own.slice(1).map((t, i) => t - own[i]!);
        expect(new Set(gaps)).to.deep.equal(new Set([250 * relays]));
      }
      const all = each.flat().sort((x, y) => x - y);
      expect(new Set(all.slice(1).map((t, i) => t - all[i]!))).to.deep.equal(new Set([250]));
    }
  });

  it('a relay that saw the next occurrence wakes for it when that comes before its turn: at its slot after the due time', () => {
    const now = 1_765_000_000_000; // a turn boundary for 250 ms turns and a slot boundary for 20 ms slots
    // 4 relays, rank 3: its next turn is 3 idle intervals away; an occurrence due in 400 ms comes first.
    expect(idleTurnWaitMs(now, 400, 250, 4, 3, 20)).to.equal(fireSlotWaitMs(now, 400, 20, 4, 3));
    expect(idleTurnWaitMs(now, 400, 250, 4, 3, 20)).to.be.within(400, 400 + 4 * 20);
    // Due after its turn: the turn (it probes again then, and may learn of an earlier one).
    expect(idleTurnWaitMs(now, 5_000, 250, 4, 3, 20)).to.equal(750);
    // No fire slots (RELAY_FIRE_WINDOW=0): the due time itself.
    expect(idleTurnWaitMs(now, 400, 250, 4, 3, 0)).to.equal(400);
  });
});

describe('the fire window widens while fire batches are small (FireWindow)', () => {
  /** The window after `n` batches of `events` each. */
  function after(window: FireWindow, events: number, n = 40): number {
    for (let i = 0; i < n; i++) window.after(events);
    return window.ms;
  }

  it('is RELAY_FIRE_WINDOW at the start and while batches hold the target or more (high rates keep the lowest lag)', () => {
    expect(new FireWindow(10, 40).ms).to.equal(10);
    expect(after(new FireWindow(10, 40), FIRE_WINDOW_TARGET_BATCH)).to.equal(10);
    expect(after(new FireWindow(10, 40), 500)).to.equal(10);
  });

  it('widens in inverse proportion to the average batch, up to RELAY_FIRE_WINDOW_MAX', () => {
    expect(after(new FireWindow(10, 40), FIRE_WINDOW_TARGET_BATCH / 2)).to.be.closeTo(20, 0.01);
    expect(after(new FireWindow(10, 40), FIRE_WINDOW_TARGET_BATCH / 4)).to.be.closeTo(40, 0.01);
    expect(after(new FireWindow(10, 40), 1)).to.equal(40);
    expect(after(new FireWindow(10, 10), 1), 'RELAY_FIRE_WINDOW_MAX = RELAY_FIRE_WINDOW: no widening').to.equal(10);
    expect(after(new FireWindow(0, 40), 1), 'RELAY_FIRE_WINDOW=0: each occurrence claimed as soon as it is due').to.equal(0);
  });

  it('follows the rate both ways, on an average (one odd batch moves it only a little)', () => {
    const window = new FireWindow(10, 40);
    after(window, 1);
    expect(window.ms).to.equal(40);
    window.after(FIRE_WINDOW_TARGET_BATCH);
    expect(window.ms, 'one batch of the target after small ones').to.be.within(20, 39);
    expect(after(window, 64), 'the rate went up: back to the least window').to.equal(10);
    expect(after(window, 1), 'and down again').to.equal(40);
  });

  it('ignores claims that found nothing (an idle probe says nothing of the rate)', () => {
    const window = new FireWindow(10, 40);
    after(window, 64);
    for (let i = 0; i < 100; i++) window.after(0);
    expect(window.ms).to.equal(10);
  });
});

describe('a poll that keeps finding nothing comes further apart (QuietBackoff)', () => {
  it('doubles the wait after each quiet poll up to its ceiling, and is back at the base after one that found work', () => {
    const b = new QuietBackoff(20, 250);
    expect([1, 2, 3, 4, 5].map(() => b.after(false))).to.deep.equal([40, 80, 160, 250, 250]);
    expect(b.after(true)).to.equal(20);
    expect(b.after(false)).to.equal(40);
  });

  it('keeps the waits within the recent ceiling until that long after work was last found, then backs off to the full ceiling', () => {
    let now = 1_000_000;
    const b = new QuietBackoff(20, 250, { ceilingMs: 80, forMs: 30_000 }, () => now);
    expect(b.after(false), 'never found work: not recent').to.equal(40);
    expect([1, 2, 3].map(() => b.after(false))).to.deep.equal([80, 160, 250]);
    expect(b.after(true)).to.equal(20);
    now += 29_000;
    expect(
      [1, 2, 3, 4].map(() => b.after(false)),
      'within 30 s of the last work',
    ).to.deep.equal([40, 80, 80, 80]);
    now += 1_000;
    expect(
      [1, 2].map(() => b.after(false)),
      '30 s after it',
    ).to.deep.equal([250, 250]);
    expect(b.after(false, true), 'work seen, not done: recent again, still backing off').to.equal(80);
  });

  it('stays at its ceiling however long it is quiet (no overflow)', () => {
    const b = new QuietBackoff(5000, 30_000);
    for (let i = 0; i < 1000; i++) b.after(false);
    expect(b.after(false)).to.equal(30_000);
  });
});

describe("lane 0's watched step", () => {
  /** A step the test finishes by hand, and a count of the wake-ups of the other lanes. */
  function heldStep() {
    let finish: () => void = () => undefined;
    const step = () => new Promise<{ full: boolean }>((resolve) => (finish = () => resolve({ full: false })));
    return { step, finish: () => finish() };
  }

  it('wakes the other lanes when the step runs longer than its idle interval, once, and passes its answer on', async () => {
    const held = heldStep();
    let wakes = 0;
    const run = watched(held.step, 20, () => wakes++)();
    const t0 = Date.now();
    while (wakes === 0 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
    expect(wakes).to.equal(1);
    expect(Date.now() - t0).to.be.at.least(15);
    held.finish();
    expect(await run).to.deep.equal({ full: false });
    await new Promise((r) => setTimeout(r, 40));
    expect(wakes).to.equal(1);
  });

  it('leaves them asleep when the step ends in time, or fails in time', async () => {
    let wakes = 0;
    expect(
      await watched(
        () => Promise.resolve({ full: true }),
        30,
        () => wakes++,
      )(),
    ).to.deep.equal({ full: true });
    const failing = watched(
      () => Promise.reject(new Error('deadlock')),
      30,
      () => wakes++,
    );
    await failing().then(
      () => expect.fail('the step failed'),
      (e: Error) => expect(e.message).to.equal('deadlock'),
    );
    await new Promise((r) => setTimeout(r, 60));
    expect(wakes).to.equal(0);
  });
});

describe('a fire batch bounded by its payload text (planFiring)', () => {
  const now = new Date('2030-01-01T00:00:10Z');
  /** A claim of `sizes.length` one-shot triggers due now, trigger i with a stored config of sizes[i] characters. */
  function claimOf(sizes: number[]): Claimed {
    const due = sizes.map((_, i) => ({ id: i + 1, trigger_id: `t${i}`, fire_at: new Date('2030-01-01T00:00:00Z'), scheduled_for: null }));
    const triggers = new Map(
      sizes.map((chars, i) => [
        `t${i}`,
        {
          id: `t${i}`,
          type: 'time_scheduled' as const,
          status: 'active' as const,
          config: { endpoint: 'https://example.com/h', run_at: '2030-01-01T00:00:00Z', timezone: 'UTC' } as TriggerConfig,
          version: 1,
          configChars: chars,
        },
      ]),
    );
    return { due, triggers };
  }

  it('fires rows while their payload text fits, and leaves the rest pending (neither completed nor cancelled)', () => {
    const plan = planFiring(claimOf([10, 10, 10, 10]), now, 60_000, 25);
    expect(plan.toLog.map((e) => e.trigger_id)).to.deep.equal(['t0', 't1']);
    expect(plan.completed).to.deep.equal([1, 2]);
    expect(plan.cancelled).to.deep.equal([]);
    expect(plan.left).to.equal(2);
  });

  it('always fires the first row, however large, and everything when under the bound', () => {
    expect(planFiring(claimOf([100, 10]), now, 60_000, 25).toLog).to.have.length(1);
    const all = planFiring(claimOf([10, 10, 10]), now, 60_000);
    expect(all.toLog).to.have.length(3);
    expect(all.left).to.equal(0);
    expect(FIRE_BATCH_MAX_CHARS).to.be.at.least(16 * 1024 * 1024);
  });
});

describe('a fire claim that grows while a burst lasts (ClaimSize)', () => {
  it('doubles after each full claim up to the most, and is back at the base after one that was not full', () => {
    const size = new ClaimSize(500, 2000);
    expect(size.current).to.equal(500);
    size.after(500, 0);
    expect(size.current).to.equal(1000);
    size.after(1000, 0);
    expect(size.current).to.equal(2000);
    size.after(2000, 0);
    expect(size.current).to.equal(2000);
    size.after(1999, 0);
    expect(size.current).to.equal(500);
  });

  it("grows only while the batch's produce took at most a quarter of the direct timeout, and halves after one that took over half", () => {
    const size = new ClaimSize(500, 4000, 500);
    size.after(500, 0, 100);
    expect(size.current, 'a produce of 100 ms: well inside 500 ms').to.equal(1000);
    size.after(1000, 0, 200);
    expect(size.current, 'a produce of 200 ms: twice as many might not fit').to.equal(1000);
    size.after(1000, 0, 300);
    expect(size.current, 'a produce of 300 ms: over half the timeout').to.equal(500);
    size.after(500, 0, 400);
    expect(size.current, 'never below the base').to.equal(500);
    size.after(500, 0, undefined);
    expect(size.current, 'nothing produced (outbox mode): grows on the claim alone').to.equal(1000);
  });

  it('does not grow after a claim the payload bound cut short, nor past a most that is not a power of two of the base', () => {
    const size = new ClaimSize(500, 1500);
    size.after(500, 3);
    expect(size.current).to.equal(500);
    size.after(500, 0);
    size.after(1000, 0);
    expect(size.current).to.equal(1500);
    expect(new ClaimSize(500, 500).current).to.equal(500);
  });
});

describe('large trigger configs are read after the claim, within the fire batch bound', () => {
  const at = new Date('2030-01-01T00:00:00Z');
  const config = JSON.stringify({ endpoint: 'https://example.com/h', run_at: '2030-01-01T00:00:00Z', timezone: 'UTC' });
  /** Claim rows as CLAIM_DUE_SQL returns them: trigger i's config inline when `sizes[i]` is null, else left on the server at that many bytes. */
  function rowsOf(sizes: Array<number | null>, status = 'active') {
    return sizes.map((bytes, i) => ({
      id: i + 1,
      trigger_id: `t${i}`,
      fire_at: at,
      scheduled_for: null,
      type: 'time_scheduled',
      status,
      version: 1,
      config: bytes === null ? config : null,
      config_bytes: bytes ?? config.length,
    }));
  }

  it('keeps a trigger whose config did not come with the claim apart, with its size and status', () => {
    const claim = claimedOf(rowsOf([null, 100_000]));
    expect([...claim.triggers.keys()]).to.deep.equal(['t0']);
    expect(claim.unread!.get('t1')).to.deep.equal({ status: 'active', bytes: 100_000 });
  });

  it('reads the large configs that fit the bound in claim order (the first row always), and the batch leaves the others pending', () => {
    const claim = claimedOf(rowsOf([null, 100_000, 100_000, 100_000]));
    const ids = largeConfigsToRead(claim, 250_000);
    expect(ids).to.deep.equal(['t1', 't2']);
    const read = withLargeConfigs(
      claim,
      ids.map((id) => ({ id, type: 'time_scheduled', status: 'active', config, version: 1 })),
    );
    const plan = planFiring(read, new Date('2030-01-01T00:00:05Z'), 60_000);
    expect(plan.toLog.map((e) => e.trigger_id)).to.deep.equal(['t0', 't1', 't2']);
    expect(plan.completed).to.deep.equal([1, 2, 3]);
    expect(plan.cancelled).to.deep.equal([]);
    expect(plan.left).to.equal(1);
    expect(largeConfigsToRead(claimedOf(rowsOf([5_000_000, 100_000])), 1000)).to.deep.equal(['t0']);
  });

  it('reads no config for an inactive trigger: its row is cancelled, as with a small config', () => {
    const claim = claimedOf(rowsOf([100_000], 'paused'));
    expect(largeConfigsToRead(claim, FIRE_BATCH_MAX_CHARS)).to.deep.equal([]);
    const plan = planFiring(claim, new Date('2030-01-01T00:00:05Z'), 60_000);
    expect(plan.cancelled).to.deep.equal([1]);
    expect(plan.left).to.equal(0);
  });
});

describe('an outbox batch bounded by its messages’ bytes (boundedBatch)', () => {
  /** Claimed rows of `sizes` bytes each; those over 16 KiB came without their message, as the claim reads them. */
  function claimed(sizes: number[]): ClaimedOutbox[] {
    return sizes.map((bytes, i) => ({
      id: i + 1,
      event_id: `e${i}`,
      attempts: 0,
      shard: i % 2,
      valueBytes: bytes,
      ...(bytes > OUTBOX_INLINE_MAX_BYTES ? { unread: true as const } : {}),
      message: { topic: 't', key: `k${i}`, value: bytes > OUTBOX_INLINE_MAX_BYTES ? Buffer.alloc(0) : Buffer.alloc(bytes), headers: {} },
    }));
  }

  it('takes the longest prefix within the bound (the first row always), and names the large messages to read', () => {
    const b = boundedBatch(claimed([100, 20_000, 100, 20_000, 100]), 40_000);
    expect(b.rows.map((r) => r.id)).to.deep.equal([1, 2, 3]);
    expect(b.cut).to.equal(true);
    expect(b.unread).to.deep.equal([2]);
    const first = boundedBatch(claimed([50_000, 100]), 1000);
    expect(first.rows.map((r) => r.id)).to.deep.equal([1]);
    expect(first.unread).to.deep.equal([1]);
    const all = boundedBatch(claimed([100, 100]));
    expect(all.cut).to.equal(false);
    expect(all.rows).to.have.length(2);
  });

  it('fills the messages read after the claim, and refuses a batch whose message could not be read', () => {
    const rows = claimed([100, 20_000]);
    withOutboxValues(rows, [{ id: 2, value: Buffer.from('large') }]);
    expect(rows[1]!.message.value.toString()).to.equal('large');
    expect(rows[1]!.unread).to.equal(undefined);
    expect(() => withOutboxValues(claimed([20_000]), [])).to.throw(/outbox row 1/);
  });
});

describe("a fire lane's claims start past its own earlier claims (ClaimCursor)", () => {
  const at = (ms: number, id: number) => ({ fire_at: new Date(1_700_000_000_000 + ms), id });
  const HEAD_EVERY = 250;

  it('orders claim points by fire_at, then id (claimEnd)', () => {
    expect(claimEnd([at(5, 9), at(7, 2), at(7, 1), at(6, 50)])).to.deep.equal(at(7, 2));
    expect(claimEnd([])).to.equal(null);
  });

  it('starts at the head until a committed claim is CLAIM_RESCAN_MS old, then past the newest such claim', () => {
    const c = new ClaimCursor(HEAD_EVERY);
    expect(c.start(0), 'the first claim').to.equal(null);
    c.fromHead(0, 1);
    c.committed(0, at(10, 100));
    expect(c.start(CLAIM_RESCAN_MS - 1), 'no claim old enough yet: its range may hold rows another claim held').to.equal(null);
    c.committed(20, at(30, 300));
    c.committed(40, at(50, 500));
    expect(c.start(CLAIM_RESCAN_MS)).to.deep.equal(at(10, 100));
    expect(c.start(CLAIM_RESCAN_MS + 20), 'the newest claim at least CLAIM_RESCAN_MS old').to.deep.equal(at(30, 300));
    expect(c.start(CLAIM_RESCAN_MS + 45)).to.deep.equal(at(50, 500));
  });

  it('claims from the head every SCHEDULER_INTERVAL, or ten times as long as the last claim from the head took', () => {
    const c = new ClaimCursor(HEAD_EVERY);
    expect(c.start(0)).to.equal(null);
    c.fromHead(0, 2);
    c.committed(0, at(10, 100));
    expect(c.start(HEAD_EVERY - 1)).to.deep.equal(at(10, 100));
    expect(c.start(HEAD_EVERY), 'the periodic claim from the head: rows left behind the point are claimed').to.equal(null);
    // A claim from the head that took 100 ms (entries of fired rows piled up while purge was held): the next
    // one waits ten times as long.
    c.fromHead(HEAD_EVERY, 100);
    c.committed(HEAD_EVERY, at(20, 200));
    expect(c.start(HEAD_EVERY + 999)).to.deep.equal(at(20, 200));
    expect(c.start(HEAD_EVERY + 1000)).to.equal(null);
  });

  it('starts at the head after a claim that came back empty, left rows pending, or failed', () => {
    const c = new ClaimCursor(10_000); // no periodic claim from the head within this test
    c.fromHead(0, 1);
    c.committed(0, at(10, 100));
    expect(c.start(100)).to.deep.equal(at(10, 100));
    c.committed(100, null); // empty, or rows left pending
    expect(c.start(200)).to.equal(null);
    c.committed(200, at(20, 200));
    expect(c.start(240)).to.equal(null);
    expect(c.start(CLAIM_RESCAN_MS + 200)).to.deep.equal(at(20, 200));
    c.reset(); // the fire transaction failed
    expect(c.start(CLAIM_RESCAN_MS + 201)).to.equal(null);
  });
});
