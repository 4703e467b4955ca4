import { expect } from 'chai';
import { countedPerTrigger, insertCountedEventsStatements, retentionWindow, rollupSpan, type EventInsert } from '../../src/db/events';
import type { TriggerType } from '../../src/triggers/types';

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

/** What a fire batch counts per trigger: every trigger but a one-shot one, whose few events are counted from its rows. */
describe('insertCountedEventsStatements: the per-trigger count of a batch', () => {
  const now = new Date('2026-12-06T03:00:00.000Z');
  const event = (trigger: string, type: TriggerType): EventInsert => ({
    id: `0192f000-0000-8000-8000-00000000000${trigger}`,
    trigger_id: `0192f000-0000-7000-8000-00000000000${trigger}`,
    trigger_type: type,
    source: 'scheduler',
    is_test_run: false,
    payload: null,
    scheduled_for: now,
    fired_at: now,
  });
  const perTrigger = (rows: EventInsert[]) =>
    insertCountedEventsStatements(rows, now).filter((s) => s.sql.startsWith('INSERT INTO trigger_event_counts'));

  it('counts recurring and webhook triggers per trigger, one-shot triggers not at all, and every event in event_counts', () => {
    expect(countedPerTrigger('time_scheduled')).to.equal(false);
    for (const type of ['webhook', 'cron_scheduled', 'interval_scheduled'] as const) expect(countedPerTrigger(type), type).to.equal(true);
    const rows = [event('1', 'cron_scheduled'), event('2', 'time_scheduled'), event('3', 'interval_scheduled')];
    const [counts] = perTrigger(rows);
    // (trigger, minute, source, n) per counted trigger: the one-shot trigger 2 is left out.
    expect(counts!.values.filter((_, i) => i % 4 === 0)).to.deep.equal([rows[0]!.trigger_id, rows[2]!.trigger_id]);
    const events = insertCountedEventsStatements(rows, now).find((s) => s.sql.startsWith('INSERT INTO event_counts'));
    expect(events!.values[1], 'every event of the minute in event_counts').to.equal(3);
    expect(perTrigger([event('2', 'time_scheduled')]), 'a batch of one-shot triggers writes no per-trigger row').to.deep.equal([]);
  });
});
