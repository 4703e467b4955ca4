import { expect } from 'chai';
import { admitConcurrency, admitRate, concurrencyWaitMs, orderWaitMs, orderedRun, rateBurst } from '../../src/worker/flow';

const S = 1_000_000; // one second in microseconds

/** Drives admitRate with a fake clock: `wantedAt` deliveries wanted at each instant (µs); returns the admission times. */
function simulate(rate: number, wantedAt: Array<[number, number]>): number[] {
  let tat = 0;
  const admitted: number[] = [];
  for (const [now, wanted] of wantedAt) {
    const r = admitRate(tat, now, rate, wanted);
    tat = r.tatUs;
    for (let i = 0; i < r.admitted; i++) admitted.push(now);
  }
  return admitted;
}

/** The most admissions in any closed window [t, t + 1 s]. */
function busiestSecond(times: number[]): number {
  // times are in order: two pointers over them.
  let best = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (j < times.length && times[j]! <= times[i]! + S) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

describe('delivery flow arithmetic', () => {
  describe('rate limit (GCRA)', () => {
    it('admits one at a time at 10/s: a full queue gets one delivery per 100 ms', () => {
      const first = admitRate(0, 5 * S, 10, 50);
      expect(first.admitted).to.equal(1);
      expect(first.tatUs).to.equal(5 * S + 100_000);
      // The 49 refused get their turns one interval apart, starting at the next one.
      expect(first.waitsMs.slice(0, 3)).to.deep.equal([100, 200, 300]);
      expect(first.waitsMs).to.have.length(49);
      expect(admitRate(first.tatUs, 5 * S + 99_999, 10, 5).admitted).to.equal(0);
      expect(admitRate(first.tatUs, 5 * S + 100_000, 10, 5).admitted).to.equal(1);
    });

    it('never lets a one-second window hold more than rate + burst, however the requests come', () => {
      for (const rate of [1, 10, 150, 1000, 10_000]) {
        // A request batch every 7 ms for 3 s, each wanting more than the rate allows.
        const wanted: Array<[number, number]> = [];
        for (let t = 0; t <= 3 * S; t += 7000) wanted.push([t, rate]);
        const times = simulate(rate, wanted);
        expect(busiestSecond(times), `rate ${rate}`).to.be.at.most(rate + rateBurst(rate));
        // …and does not fall far short of it either (3 s of demand, asked every 7 ms).
        expect(times.length, `rate ${rate}`).to.be.at.least(Math.floor(0.9 * 3 * rate));
      }
    });

    it('allows a burst of 1 % of the rate from 200/s up, and 1 below', () => {
      expect([1, 10, 199, 200, 10_000].map(rateBurst)).to.deep.equal([1, 1, 1, 2, 100]);
      expect(admitRate(0, 10 * S, 10_000, 1000).admitted).to.equal(100);
    });

    it('does not bank unused time: after a quiet minute a 10/s trigger still gets one delivery at once', () => {
      const r = admitRate(S, 61 * S, 10, 20);
      expect(r.admitted).to.equal(1);
      expect(r.tatUs).to.equal(61 * S + 100_000);
    });

    it('rounds the interval up, so a rate that does not divide a second is never exceeded', () => {
      const r = admitRate(0, 0, 3, 1);
      expect(r.tatUs).to.equal(333_334);
    });
  });

  describe('concurrency limit', () => {
    it('opens only the slots left, never a negative number', () => {
      expect(admitConcurrency(0, 2, 5)).to.equal(2);
      expect(admitConcurrency(1, 2, 5)).to.equal(1);
      expect(admitConcurrency(2, 2, 5)).to.equal(0);
      expect(admitConcurrency(3, 2, 5)).to.equal(0); // expired leases not yet counted out
      expect(admitConcurrency(0, 10, 3)).to.equal(3);
    });

    it('backs off longer the more often a delivery was held, within the timeout', () => {
      const max = () => 0.999;
      expect(concurrencyWaitMs(0, 10_000, max)).to.be.below(concurrencyWaitMs(3, 10_000, max));
      expect(concurrencyWaitMs(20, 500, max)).to.be.at.most(20 + 500);
      expect(concurrencyWaitMs(0, 10_000, () => 0)).to.equal(20);
    });
  });

  describe('ordered delivery', () => {
    const unended = ['e1', 'e2', 'e3', 'e4'];

    it('sends the run of the oldest unended events the batch holds, from the oldest on', () => {
      expect(orderedRun(unended, new Set(['e1', 'e2', 'e4']))).to.deep.equal(['e1', 'e2']);
      expect(orderedRun(unended, new Set(['e4', 'e3', 'e2', 'e1']))).to.deep.equal(['e1', 'e2', 'e3', 'e4']);
    });

    it('sends nothing while an older event is not in the batch (being retried elsewhere)', () => {
      expect(orderedRun(unended, new Set(['e2', 'e3']))).to.deep.equal([]);
      expect(orderedRun([], new Set(['e2']))).to.deep.equal([]);
    });

    it("waits for the older event's next attempt when it has one, else backs off", () => {
      const now = 1_000_000;
      expect(orderWaitMs(now + 5000, now, 0, () => 0)).to.equal(5000 + 50);
      expect(orderWaitMs(null, now, 0, () => 0)).to.equal(50);
      expect(orderWaitMs(now - 10, now, 0, () => 0)).to.equal(50); // due already: it is being tried
      expect(orderWaitMs(null, now, 4, () => 0.999)).to.be.greaterThan(orderWaitMs(null, now, 0, () => 0.999));
    });
  });
});
