import { expect } from 'chai';
import { GroupCommit, takeGroup } from '../../src/api/group-commit';

/** A flush the test answers by hand: each call is recorded with its items and a resolver. */
function manualFlush() {
  const calls: Array<{ items: number[]; done: (err?: Error) => void }> = [];
  const flush = (items: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({ items, done: (err) => (err ? reject(err) : resolve(items.map((i) => `ok:${i}`))) });
    });
  return { calls, flush };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('group commit (GroupCommit, takeGroup)', () => {
  it('flushes a lone item at once, as a group of one', async () => {
    const { calls, flush } = manualFlush();
    const g = new GroupCommit(flush, { maxItems: 10, maxBytes: 1000, maxInFlight: 1 });
    const p = g.add(1);
    await tick();
    expect(calls.map((c) => c.items)).to.deep.equal([[1]]);
    calls[0]!.done();
    expect(await p).to.equal('ok:1');
  });

  it('puts items added in the same turn into one group, and items arriving during a flush into the next', async () => {
    const { calls, flush } = manualFlush();
    const g = new GroupCommit(flush, { maxItems: 100, maxBytes: 1e9, maxInFlight: 1 });
    const first = [1, 2, 3].map((i) => g.add(i));
    await tick();
    const second = [4, 5, 6, 7].map((i) => g.add(i));
    await tick();
    expect(calls).to.have.length(1);
    expect(g.pending).to.equal(4);
    calls[0]!.done();
    expect(await Promise.all(first)).to.deep.equal(['ok:1', 'ok:2', 'ok:3']);
    await tick();
    expect(calls.map((c) => c.items)).to.deep.equal([
      [1, 2, 3],
      [4, 5, 6, 7],
    ]);
    calls[1]!.done();
    expect(await Promise.all(second)).to.deep.equal(['ok:4', 'ok:5', 'ok:6', 'ok:7']);
    expect(g.stats).to.deep.equal({ flushes: 2, items: 7, largestGroup: 4 });
  });

  it('caps a group at maxItems and runs at most maxInFlight flushes at once', async () => {
    const { calls, flush } = manualFlush();
    const g = new GroupCommit(flush, { maxItems: 2, maxBytes: 1e9, maxInFlight: 2 });
    const all = [1, 2, 3, 4, 5].map((i) => g.add(i));
    await tick();
    expect(calls.map((c) => c.items)).to.deep.equal([
      [1, 2],
      [3, 4],
    ]);
    calls[1]!.done();
    await tick();
    expect(calls.map((c) => c.items)).to.deep.equal([[1, 2], [3, 4], [5]]);
    calls[0]!.done();
    calls[2]!.done();
    expect(await Promise.all(all)).to.have.length(5);
  });

  it('rejects only the items of a failed group', async () => {
    const { calls, flush } = manualFlush();
    const g = new GroupCommit(flush, { maxItems: 2, maxBytes: 1e9, maxInFlight: 2 });
    const results = [1, 2, 3].map((i) =>
      g.add(i).then(
        (v) => v,
        (e: Error) => `failed:${e.message}`,
      ),
    );
    await tick();
    calls[0]!.done(new Error('boom'));
    calls[1]!.done();
    expect(await Promise.all(results)).to.deep.equal(['failed:boom', 'failed:boom', 'ok:3']);
  });

  it('fails the group when the flush answers a different number of items', async () => {
    const g = new GroupCommit<number, string>(() => Promise.resolve(['only one']), { maxItems: 10, maxBytes: 1e9, maxInFlight: 1 });
    const results = await Promise.allSettled([g.add(1), g.add(2)]);
    expect(results.map((r) => r.status)).to.deep.equal(['rejected', 'rejected']);
  });

  it('close() answers what is queued, then refuses new items', async () => {
    const { calls, flush } = manualFlush();
    const g = new GroupCommit(flush, { maxItems: 10, maxBytes: 1e9, maxInFlight: 1 });
    const p = g.add(1);
    await tick();
    let closed = false;
    const closing = g.close().then(() => (closed = true));
    await tick();
    expect(closed).to.equal(false);
    calls[0]!.done();
    await closing;
    expect(await p).to.equal('ok:1');
    await g.add(2).then(
      () => expect.fail('accepted after close'),
      (e: Error) => expect(e.message).to.match(/closed/),
    );
  });

  it('takeGroup stops at maxBytes, but always takes at least one item', () => {
    const q = [{ bytes: 600 }, { bytes: 300 }, { bytes: 200 }, { bytes: 5000 }, { bytes: 1 }];
    expect(takeGroup(q, 10, 1000)).to.deep.equal([{ bytes: 600 }, { bytes: 300 }]);
    expect(takeGroup(q, 10, 1000)).to.deep.equal([{ bytes: 200 }]);
    expect(takeGroup(q, 10, 1000)).to.deep.equal([{ bytes: 5000 }]);
    expect(takeGroup(q, 10, 1000)).to.deep.equal([{ bytes: 1 }]);
    expect(q).to.deep.equal([]);
  });
});
