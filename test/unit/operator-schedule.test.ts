import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  firstOccurrence,
  formatInZone,
  jitteredFireAt,
  nextOccurrence,
  occurrenceAt,
  planDue,
  planOccurrence,
  runsFrom,
} from '../../src/triggers/schedule';
import { validateTriggerConfig } from '../../src/triggers/validate';
import { readBodyPrefix } from '../../src/worker/delivery';
import type { CommonConfig, CronConfig, FieldError, IntervalConfig, TriggerConfig, TriggerType } from '../../src/triggers/types';

/** The nominal runs as the relay follows them from `from`: the first occurrence, then each next one (runsFrom). */
function runs(type: TriggerType, cfg: TriggerConfig, from: Date, count: number): Date[] {
  const first = firstOccurrence(type, cfg, from);
  return runsFrom(null, type, cfg, first ? occurrenceAt(null, type, cfg, first) : null, count).map((o) => o.scheduled_for);
}

/*
 * Issue 11, the pure parts: schedule windows (start_at, end_at), jitter, the relay's plan for a jittered
 * row, runs for the upcoming view and the preview, local times, and the new config fields.
 */

const COMMON: CommonConfig = {
  endpoint: 'https://example.com/hook',
  http_method: 'POST',
  headers: {},
  timeout_ms: 10_000,
  retry: { max_attempts: 5, backoff_ms: 1000 },
};
const cronCfg = (cron: string, extra: Partial<CronConfig> = {}): CronConfig => ({
  ...COMMON,
  cron,
  timezone: 'UTC',
  payload: null,
  misfire_policy: 'fire_once',
  max_backfill: 100,
  ...extra,
});
const intervalCfg = (interval_seconds: number, extra: Partial<IntervalConfig> = {}): IntervalConfig => ({
  ...COMMON,
  interval_seconds,
  timezone: 'UTC',
  payload: null,
  misfire_policy: 'fire_once',
  max_backfill: 100,
  ...extra,
});
const at = (s: string) => new Date(s);
const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
const isos = (ds: Date[]) => ds.map((d) => d.toISOString());
const TRIGGER = '0b6f4f6e-3d1c-4c1e-9a53-0c1d2e3f4a5b';

describe('schedule windows (start_at, end_at)', () => {
  it('starts a cron at its first occurrence at or after start_at, read in the timezone', () => {
    const cfg = cronCfg('0 9 * * *', { timezone: 'Europe/Berlin', start_at: '2030-03-10T09:00:00' });
    // start_at itself is an occurrence and counts.
    expect(iso(firstOccurrence('cron_scheduled', cfg, at('2030-01-01T00:00:00Z')))).to.equal('2030-03-10T08:00:00.000Z');
    // Once start_at has passed, it is the next occurrence after now.
    expect(iso(firstOccurrence('cron_scheduled', cfg, at('2030-04-01T12:00:00Z')))).to.equal('2030-04-02T07:00:00.000Z');
  });

  it('never schedules a cron or an interval occurrence after end_at', () => {
    const cron = cronCfg('0 * * * *', { end_at: '2030-01-01T02:00:00Z' });
    expect(isos(runs('cron_scheduled', cron, at('2030-01-01T00:00:00Z'), 10))).to.deep.equal([
      '2030-01-01T01:00:00.000Z',
      '2030-01-01T02:00:00.000Z',
    ]);
    expect(nextOccurrence('cron_scheduled', cron, at('2030-01-01T02:00:00Z'))).to.equal(null);
    expect(firstOccurrence('cron_scheduled', cron, at('2030-01-01T02:00:00Z'))).to.equal(null);

    const iv = intervalCfg(60, { start_at: '2030-01-01T00:00:00Z', end_at: '2030-01-01T00:02:30Z' });
    expect(isos(runs('interval_scheduled', iv, at('2029-12-31T00:00:00Z'), 10))).to.deep.equal([
      '2030-01-01T00:00:00.000Z',
      '2030-01-01T00:01:00.000Z',
      '2030-01-01T00:02:00.000Z',
    ]);
    expect(nextOccurrence('interval_scheduled', iv, at('2030-01-01T00:02:00Z'))).to.equal(null);
    expect(firstOccurrence('interval_scheduled', iv, at('2030-01-01T00:02:01Z'))).to.equal(null);
  });

  it('plans no next occurrence past end_at, and fires nothing scheduled after it', () => {
    const iv = intervalCfg(10, { end_at: '2030-01-01T00:00:25Z' });
    const onTime = planDue('interval_scheduled', iv, at('2030-01-01T00:00:20Z'), at('2030-01-01T00:00:20.100Z'), 60_000);
    expect(isos(onTime.fire)).to.deep.equal(['2030-01-01T00:00:20.000Z']);
    expect(onTime.next).to.equal(null);
    const beyond = planDue('interval_scheduled', iv, at('2030-01-01T00:00:30Z'), at('2030-01-01T00:00:30Z'), 60_000);
    expect(beyond).to.deep.equal({ fire: [], next: null });
  });

  it('backfills only occurrences inside the window when the relays come back after end_at', () => {
    const cron = cronCfg('0 * * * *', { end_at: '2030-01-01T03:30:00Z', misfire_policy: 'fire_all' });
    const plan = planDue('cron_scheduled', cron, at('2030-01-01T01:00:00Z'), at('2030-01-01T09:00:00Z'), 60_000);
    expect(isos(plan.fire)).to.deep.equal(['2030-01-01T01:00:00.000Z', '2030-01-01T02:00:00.000Z', '2030-01-01T03:00:00.000Z']);
    expect(plan.next).to.equal(null);
    const once = planDue(
      'cron_scheduled',
      { ...cron, misfire_policy: 'fire_once' },
      at('2030-01-01T01:00:00Z'),
      at('2030-01-01T09:00:00Z'),
      60_000,
    );
    expect(isos(once.fire)).to.deep.equal(['2030-01-01T03:00:00.000Z']);
    expect(once.next).to.equal(null);
  });
});

describe('jitter', () => {
  const hourly = cronCfg('0 * * * *', { jitter_seconds: 1800 });

  it('is the same instant every time it is computed for a trigger and nominal time', () => {
    const nominal = at('2030-01-01T10:00:00Z');
    const a = jitteredFireAt(TRIGGER, 'cron_scheduled', hourly, nominal);
    for (let i = 0; i < 5; i++) expect(iso(jitteredFireAt(TRIGGER, 'cron_scheduled', { ...hourly }, new Date(nominal)))).to.equal(iso(a));
    expect(occurrenceAt(TRIGGER, 'cron_scheduled', hourly, nominal)).to.deep.equal({ scheduled_for: nominal, fire_at: a });
  });

  it('stays within [nominal, nominal + jitter_seconds], in whole seconds, and spreads triggers over the window', () => {
    const nominal = at('2030-01-01T10:00:00Z');
    const offsets = Array.from(
      { length: 2000 },
      () => jitteredFireAt(randomUUID(), 'cron_scheduled', hourly, nominal).getTime() - nominal.getTime(),
    );
    for (const o of offsets) {
      expect(o).to.be.within(0, 1800_000);
      expect(o % 1000).to.equal(0);
    }
    // Roughly uniform: each sixth of the window gets a fair share of 2,000 triggers.
    const buckets = [0, 0, 0, 0, 0, 0];
    for (const o of offsets) buckets[Math.min(5, Math.floor(o / 300_000))]!++;
    for (const b of buckets) expect(b).to.be.within(200, 470);
  });

  it('differs between occurrences of one trigger', () => {
    const fireAts = Array.from({ length: 24 }, (_, h) => {
      const nominal = new Date(Date.UTC(2030, 0, 1, h));
      return jitteredFireAt(TRIGGER, 'cron_scheduled', hourly, nominal).getTime() - nominal.getTime();
    });
    expect(new Set(fireAts).size).to.be.greaterThan(20);
  });

  it('always fires before the next occurrence, so occurrences keep their order', () => {
    const everyMinute = cronCfg('* * * * *', { jitter_seconds: 3600 });
    let nominal = at('2030-01-01T00:00:00Z');
    let previous = 0;
    for (let i = 0; i < 200; i++) {
      const fire = jitteredFireAt(randomUUID(), 'cron_scheduled', everyMinute, nominal).getTime();
      expect(fire - nominal.getTime()).to.be.within(0, 59_000);
      expect(fire).to.be.greaterThan(previous);
      previous = fire;
      nominal = nextOccurrence('cron_scheduled', everyMinute, nominal)!;
    }
    // An interval as short as a second leaves no room to jitter at all.
    const second = intervalCfg(1, { jitter_seconds: 60 });
    expect(iso(jitteredFireAt(TRIGGER, 'interval_scheduled', second, at('2030-01-01T00:00:00Z')))).to.equal('2030-01-01T00:00:00.000Z');
  });

  it('never fires after end_at', () => {
    const cfg = cronCfg('0 * * * *', { jitter_seconds: 3600, end_at: '2030-01-01T10:00:05Z' });
    for (let i = 0; i < 50; i++) {
      const fire = jitteredFireAt(randomUUID(), 'cron_scheduled', cfg, at('2030-01-01T10:00:00Z'));
      expect(fire.getTime()).to.be.within(at('2030-01-01T10:00:00Z').getTime(), at('2030-01-01T10:00:05Z').getTime());
    }
  });

  it('is off without jitter_seconds, for one-shots, and without a trigger id (an unsaved preview)', () => {
    const nominal = at('2030-01-01T10:00:00Z');
    expect(iso(jitteredFireAt(TRIGGER, 'cron_scheduled', cronCfg('0 * * * *'), nominal))).to.equal(iso(nominal));
    expect(iso(jitteredFireAt(TRIGGER, 'cron_scheduled', cronCfg('0 * * * *', { jitter_seconds: 0 }), nominal))).to.equal(iso(nominal));
    expect(iso(jitteredFireAt(null, 'cron_scheduled', hourly, nominal))).to.equal(iso(nominal));
    const once = { ...COMMON, run_at: '2030-01-01T10:00:00Z', timezone: 'UTC', payload: null, jitter_seconds: 60 } as TriggerConfig;
    expect(iso(jitteredFireAt(TRIGGER, 'time_scheduled', once, nominal))).to.equal(iso(nominal));
  });
});

describe('planOccurrence (the relay, for a possibly jittered row)', () => {
  const hourly = cronCfg('0 * * * *', { jitter_seconds: 3000 });
  const nominal = at('2030-01-01T10:00:00Z');
  const row = occurrenceAt(TRIGGER, 'cron_scheduled', hourly, nominal);

  it('fires the nominal occurrence when its jittered row is claimed on time, and plans the next with its own jitter', () => {
    const plan = planOccurrence(TRIGGER, 'cron_scheduled', hourly, row, new Date(row.fire_at.getTime() + 200), 60_000);
    expect(plan.fire).to.deep.equal([row]);
    const next = at('2030-01-01T11:00:00Z');
    expect(plan.next).to.deep.equal(occurrenceAt(TRIGGER, 'cron_scheduled', hourly, next));
  });

  it('does not count the jitter offset as lateness under misfire_policy skip', () => {
    const skip = { ...hourly, misfire_policy: 'skip' as const };
    const r = occurrenceAt(TRIGGER, 'cron_scheduled', skip, nominal);
    expect(r.fire_at.getTime() - nominal.getTime(), 'this trigger is jittered by more than the grace').to.be.greaterThan(1000);
    const plan = planOccurrence(TRIGGER, 'cron_scheduled', skip, r, new Date(r.fire_at.getTime() + 500), 1000);
    expect(isos(plan.fire.map((o) => o.scheduled_for))).to.deep.equal([iso(nominal)]);
  });

  it('applies the misfire policy to nominal times when the relays were down', () => {
    const plan = planOccurrence(TRIGGER, 'cron_scheduled', hourly, row, at('2030-01-01T15:59:00Z'), 60_000);
    // fire_once: the latest nominal occurrence due by (now - this row's offset).
    const latest = plan.fire.map((o) => o.scheduled_for.getTime());
    expect(latest).to.have.length(1);
    expect(latest[0]).to.be.within(at('2030-01-01T14:00:00Z').getTime(), at('2030-01-01T15:00:00Z').getTime());
    expect(plan.next!.scheduled_for.getTime()).to.be.greaterThan(latest[0]!);
  });

  it('reads a row without scheduled_for (written before jitter existed) as nominal = fire_at', () => {
    const plain = cronCfg('0 * * * *');
    const plan = planOccurrence(
      TRIGGER,
      'cron_scheduled',
      plain,
      { fire_at: nominal, scheduled_for: null },
      new Date(nominal.getTime() + 50),
      60_000,
    );
    expect(plan.fire).to.deep.equal([{ scheduled_for: nominal, fire_at: nominal }]);
    expect(plan.next).to.deep.equal({ scheduled_for: at('2030-01-01T11:00:00Z'), fire_at: at('2030-01-01T11:00:00Z') });
  });
});

describe('runsFrom (upcoming and preview)', () => {
  it('follows the occurrences from the first, jittered, until the window ends', () => {
    const cfg = intervalCfg(600, { start_at: '2030-01-01T00:00:00Z', end_at: '2030-01-01T00:35:00Z', jitter_seconds: 120 });
    const first = occurrenceAt(TRIGGER, 'interval_scheduled', cfg, at('2030-01-01T00:00:00Z'));
    const runs = runsFrom(TRIGGER, 'interval_scheduled', cfg, first, 10);
    expect(isos(runs.map((r) => r.scheduled_for))).to.deep.equal([
      '2030-01-01T00:00:00.000Z',
      '2030-01-01T00:10:00.000Z',
      '2030-01-01T00:20:00.000Z',
      '2030-01-01T00:30:00.000Z',
    ]);
    for (const r of runs) {
      expect(r).to.deep.equal(occurrenceAt(TRIGGER, 'interval_scheduled', cfg, r.scheduled_for));
      expect(r.fire_at.getTime() - r.scheduled_for.getTime()).to.be.within(0, 120_000);
    }
    expect(runsFrom(TRIGGER, 'interval_scheduled', cfg, first, 2)).to.have.length(2);
    expect(runsFrom(TRIGGER, 'interval_scheduled', cfg, null, 5)).to.deep.equal([]);
  });

  it('gives weekdays at 09:00 New York time across the March DST change, with the offset changing', () => {
    const cfg = cronCfg('0 9 * * 1-5', { timezone: 'America/New_York' });
    const first = occurrenceAt(null, 'cron_scheduled', cfg, firstOccurrence('cron_scheduled', cfg, at('2030-03-06T00:00:00Z'))!);
    const runs = runsFrom(null, 'cron_scheduled', cfg, first, 6).map((r) => formatInZone(r.fire_at, 'America/New_York'));
    expect(runs).to.deep.equal([
      '2030-03-06T09:00:00-05:00',
      '2030-03-07T09:00:00-05:00',
      '2030-03-08T09:00:00-05:00',
      '2030-03-11T09:00:00-04:00', // DST began on Sunday the 10th
      '2030-03-12T09:00:00-04:00',
      '2030-03-13T09:00:00-04:00',
    ]);
  });
});

describe('formatInZone', () => {
  it('writes the wall time with the zone offset of that instant', () => {
    expect(formatInZone(at('2030-07-01T07:00:00Z'), 'Europe/Berlin')).to.equal('2030-07-01T09:00:00+02:00');
    expect(formatInZone(at('2030-01-01T07:00:00Z'), 'Europe/Berlin')).to.equal('2030-01-01T08:00:00+01:00');
    expect(formatInZone(at('2030-01-01T07:00:00Z'), 'UTC')).to.equal('2030-01-01T07:00:00+00:00');
    expect(formatInZone(at('2030-01-01T07:00:00Z'), 'Asia/Kolkata')).to.equal('2030-01-01T12:30:00+05:30');
    expect(formatInZone(at('2030-01-01T07:00:00.250Z'), 'America/St_Johns')).to.equal('2030-01-01T03:30:00.250-03:30');
  });
});

describe('config: windows, jitter and max age', () => {
  const NOW = new Date('2030-01-01T00:00:00Z');
  const ok = (type: TriggerType, config: Record<string, unknown>) => {
    const r = validateTriggerConfig(type, { endpoint: COMMON.endpoint, ...config }, NOW);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.config as unknown as Record<string, unknown>;
  };
  const fields = (type: TriggerType, config: Record<string, unknown>): FieldError[] => {
    const r = validateTriggerConfig(type, { endpoint: COMMON.endpoint, ...config }, NOW);
    return r.ok ? [] : r.errors;
  };

  it('keeps start_at, end_at and jitter_seconds of cron and interval triggers, and leaves them out when absent', () => {
    expect(
      ok('cron_scheduled', { cron: '0 * * * *', start_at: ' 2030-02-01T00:00:00 ', end_at: '2030-03-01T00:00:00Z', jitter_seconds: 600 }),
    ).to.include({
      start_at: '2030-02-01T00:00:00',
      end_at: '2030-03-01T00:00:00Z',
      jitter_seconds: 600,
    });
    const plain = ok('interval_scheduled', { interval_seconds: 60 });
    expect(plain).not.to.have.any.keys('end_at', 'jitter_seconds');
    expect(ok('interval_scheduled', { interval_seconds: 60, end_at: '2030-01-02T00:00:00Z', jitter_seconds: 0 })).to.include({
      jitter_seconds: 0,
    });
  });

  it('rejects end_at before start_at, naming config.end_at', () => {
    const errs = fields('cron_scheduled', { cron: '0 * * * *', start_at: '2030-02-01T00:00:00Z', end_at: '2030-01-15T00:00:00Z' });
    expect(errs.map((e) => e.field)).to.deep.equal(['config.end_at']);
    expect(errs[0]!.message).to.match(/before start_at/);
  });

  it('rejects a window with no occurrence left (end_at in the past, or before the first occurrence)', () => {
    expect(fields('interval_scheduled', { interval_seconds: 60, end_at: '2029-12-31T00:00:00Z' }).map((e) => e.field)).to.deep.equal([
      'config.end_at',
    ]);
    expect(fields('cron_scheduled', { cron: '0 9 * * *', end_at: '2030-01-01T08:00:00Z' }).map((e) => e.field)).to.deep.equal([
      'config.end_at',
    ]);
  });

  it('checks jitter_seconds is an integer 0-3600 and the dates are ISO 8601', () => {
    expect(fields('cron_scheduled', { cron: '0 * * * *', jitter_seconds: 3601 }).map((e) => e.field)).to.deep.equal([
      'config.jitter_seconds',
    ]);
    expect(fields('cron_scheduled', { cron: '0 * * * *', jitter_seconds: 1.5 }).map((e) => e.field)).to.deep.equal([
      'config.jitter_seconds',
    ]);
    expect(fields('cron_scheduled', { cron: '0 * * * *', end_at: 'tomorrow' }).map((e) => e.field)).to.deep.equal(['config.end_at']);
    expect(fields('interval_scheduled', { interval_seconds: 5, start_at: 'soon' }).map((e) => e.field)).to.deep.equal(['config.start_at']);
  });

  it('does not accept windows or jitter on one-shots and webhooks', () => {
    expect(fields('time_scheduled', { delay_seconds: 5, jitter_seconds: 5 }).map((e) => e.field)).to.deep.equal(['config.jitter_seconds']);
    expect(fields('webhook', { schema: {}, end_at: '2030-02-01T00:00:00Z' }).map((e) => e.field)).to.deep.equal(['config.end_at']);
  });

  it('keeps retry.max_age_seconds (1-31536000) for every type', () => {
    expect(ok('webhook', { schema: {}, retry: { max_age_seconds: 3600 } }).retry).to.deep.equal({
      max_attempts: 5,
      backoff_ms: 1000,
      max_age_seconds: 3600,
    });
    expect(ok('webhook', { schema: {} }).retry).to.deep.equal({ max_attempts: 5, backoff_ms: 1000 });
    expect(fields('webhook', { schema: {}, retry: { max_age_seconds: 0 } }).map((e) => e.field)).to.deep.equal([
      'config.retry.max_age_seconds',
    ]);
  });
});

describe('readBodyPrefix (the attempts history keeps the first 4 KiB)', () => {
  /** Hands out one chunk per read, then ends (or fails, as a reset connection does). */
  const streamOf = (chunks: Buffer[], fail = false) => {
    const queue = [...chunks];
    return new Readable({
      read() {
        const next = queue.shift();
        if (next) this.push(next);
        else if (fail) this.destroy(new Error('reset'));
        else this.push(null);
      },
    });
  };

  it('keeps the first bytes of a long body across chunks, and all of a short one', async () => {
    const big = Buffer.alloc(10_000, 'a');
    big.write('HEAD', 0);
    const kept = await readBodyPrefix(streamOf([big.subarray(0, 3000), big.subarray(3000)]), 4096);
    expect(kept.length).to.equal(4096);
    expect(kept.subarray(0, 4).toString()).to.equal('HEAD');
    expect((await readBodyPrefix(streamOf([Buffer.from('boom')]), 4096)).toString()).to.equal('boom');
    expect((await readBodyPrefix(null, 4096)).length).to.equal(0);
  });

  it('keeps what arrived when the body fails mid-way, and stops reading after the drain bound', async () => {
    expect((await readBodyPrefix(streamOf([Buffer.from('part')], true), 4096)).toString()).to.equal('part');
    let pulled = 0;
    const endless = new Readable({
      read() {
        pulled++;
        this.push(Buffer.alloc(1024));
      },
    });
    expect((await readBodyPrefix(endless, 100, 10_000)).length).to.equal(100);
    expect(pulled).to.be.lessThan(30);
    expect(endless.destroyed, 'a body beyond the drain bound is abandoned (its socket closed)').to.equal(true);
  });
});
