import { expect } from 'chai';
import { retentionWindow, rollupSpan } from '../../src/db/events';

/** Which part of a list view a page total takes from the rollups: the pure rule, at its edges. */
describe('rollupSpan: the part of a view the rollups count', () => {
  // 2 h active, 48 h kept; the instant is not on a minute, so both boundaries cut one.
  const now = new Date('2026-12-05T12:34:56.789Z');
  const w = retentionWindow(now, 2 * 3600, 48 * 3600);

  it('starts the active view at its next whole minute and leaves it open at the end', () => {
    expect(rollupSpan({ retention: 'active', window: w })).to.deep.equal({
      kind: 'fired',
      trigger_id: undefined,
      source: undefined,
      from: new Date('2026-12-05T10:35:00.000Z'),
      to: null,
    });
  });

  it('starts the archived view at the next whole hour (its first hour is folded) and ends it at the last whole minute', () => {
    const span = rollupSpan({ retention: 'archived', window: w, execution_status: 'failure' });
    expect(span).to.include({ kind: 'failure' });
    expect(span!.from.toISOString()).to.equal('2026-12-03T13:00:00.000Z');
    expect(span!.to!.toISOString()).to.equal('2026-12-05T10:34:00.000Z');
  });

  it("keeps a trigger and its source for the trigger's rollups", () => {
    const trigger_id = '0192f000-0000-7000-8000-000000000001';
    expect(rollupSpan({ retention: 'active', window: w, trigger_id, source: 'scheduler', execution_status: 'success' })).to.include({
      kind: 'success',
      trigger_id,
      source: 'scheduler',
    });
  });

  it('is null for what the rollups do not count: pending or published, test runs, a time range, a source without a trigger', () => {
    const active = { retention: 'active' as const, window: w };
    expect(rollupSpan({ ...active, execution_status: 'pending' })).to.equal(null);
    expect(rollupSpan({ ...active, execution_status: 'published' })).to.equal(null);
    expect(rollupSpan({ ...active, is_test_run: false })).to.equal(null);
    expect(rollupSpan({ ...active, from: new Date(now.getTime() - 60_000) })).to.equal(null);
    expect(rollupSpan({ ...active, to: now })).to.equal(null);
    expect(rollupSpan({ ...active, source: 'webhook' })).to.equal(null);
  });

  it('is null for an archived view too short to hold a whole minute', () => {
    // Kept 2 h 30 s: the archived view is 30 s long.
    const short = retentionWindow(now, 2 * 3600, 2 * 3600 + 30);
    expect(rollupSpan({ retention: 'archived', window: short })).to.equal(null);
  });
});
