import { expect } from 'chai';
import {
  compileCron,
  firstOccurrence,
  nextOccurrence,
  occurrenceAt,
  parseLocalDateTime,
  planDue,
  runsFrom,
} from '../../src/triggers/schedule';
import type {
  CommonConfig,
  CronConfig,
  IntervalConfig,
  MisfirePolicy,
  TimeConfig,
  TriggerConfig,
  TriggerType,
  WebhookConfig,
} from '../../src/triggers/types';

/** The nominal runs as the relay follows them from `from`: the first occurrence, then each next one (runsFrom). */
function runs(type: TriggerType, cfg: TriggerConfig, from: Date, count: number): Date[] {
  const first = firstOccurrence(type, cfg, from);
  return runsFrom(null, type, cfg, first ? occurrenceAt(null, type, cfg, first) : null, count).map((o) => o.scheduled_for);
}

const COMMON: CommonConfig = {
  endpoint: 'https://example.com/hook',
  http_method: 'POST',
  headers: {},
  timeout_ms: 10_000,
  retry: { max_attempts: 5, backoff_ms: 1000 },
};

function cronCfg(cron: string, timezone = 'UTC', extra: Partial<CronConfig> = {}): CronConfig {
  return { ...COMMON, cron, timezone, payload: null, misfire_policy: 'fire_once', max_backfill: 100, ...extra };
}

function intervalCfg(interval_seconds: number, extra: Partial<IntervalConfig> = {}): IntervalConfig {
  return {
    ...COMMON,
    interval_seconds,
    timezone: 'UTC',
    payload: null,
    misfire_policy: 'fire_once',
    max_backfill: 100,
    ...extra,
  };
}

function timeCfg(extra: Partial<TimeConfig>): TimeConfig {
  return { ...COMMON, timezone: 'UTC', payload: null, ...extra };
}

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);
const isos = (ds: Date[]): string[] => ds.map((d) => d.toISOString());
const at = (s: string): Date => new Date(s);

describe('schedule', () => {
  describe('parseLocalDateTime', () => {
    it('takes Z and explicit offsets as they are, whatever the zone', () => {
      expect(iso(parseLocalDateTime('2025-06-01T12:00:00Z', 'Asia/Tokyo'))).to.equal('2025-06-01T12:00:00.000Z');
      // 12:00 at +02:00 is 10:00 UTC
      expect(iso(parseLocalDateTime('2025-06-01T12:00:00+02:00', 'UTC'))).to.equal('2025-06-01T10:00:00.000Z');
      // 12:00 at -05:30 is 17:30 UTC; basic format offset
      expect(iso(parseLocalDateTime('2025-06-01T12:00:00-0530', 'UTC'))).to.equal('2025-06-01T17:30:00.000Z');
      // hour-only offset
      expect(iso(parseLocalDateTime('2025-06-01T12:00+05', 'UTC'))).to.equal('2025-06-01T07:00:00.000Z');
      // an offset does not need a valid zone
      expect(iso(parseLocalDateTime('2025-01-01T00:00:00+05:30', 'Not/AZone'))).to.equal('2024-12-31T18:30:00.000Z');
    });

    it('keeps fractional seconds to the millisecond', () => {
      // 00:00:00.123456789 at -08:00 is 08:00:00.123 UTC (digits past the millisecond dropped)
      expect(iso(parseLocalDateTime('2025-01-01T00:00:00.123456789-08:00', 'UTC'))).to.equal('2025-01-01T08:00:00.123Z');
      expect(iso(parseLocalDateTime('2025-01-01T00:00:00.5Z', 'UTC'))).to.equal('2025-01-01T00:00:00.500Z');
    });

    it('reads an offset-less time as wall time in the zone (standard and summer time)', () => {
      // New York in January is EST, UTC-5: 09:00 -> 14:00Z
      expect(iso(parseLocalDateTime('2025-01-15T09:00:00', 'America/New_York'))).to.equal('2025-01-15T14:00:00.000Z');
      // in July EDT, UTC-4: 09:00 -> 13:00Z
      expect(iso(parseLocalDateTime('2025-07-15T09:00', 'America/New_York'))).to.equal('2025-07-15T13:00:00.000Z');
      // Berlin in January is CET, UTC+1: 09:00 -> 08:00Z; a space separator is accepted
      expect(iso(parseLocalDateTime('2030-01-31 09:00:00', 'Europe/Berlin'))).to.equal('2030-01-31T08:00:00.000Z');
    });

    it('maps a wall time in the New York spring-forward gap to the first instant after it', () => {
      // 2025-03-09: 02:00 EST jumps to 03:00 EDT at 07:00Z. 02:30 does not exist -> 03:00 EDT = 07:00Z.
      expect(iso(parseLocalDateTime('2025-03-09T02:30:00', 'America/New_York'))).to.equal('2025-03-09T07:00:00.000Z');
      expect(iso(parseLocalDateTime('2025-03-09T02:00:00', 'America/New_York'))).to.equal('2025-03-09T07:00:00.000Z');
      // just before the gap: 01:59:59 EST = 06:59:59Z; just after: 03:00 EDT = 07:00Z, 03:30 EDT = 07:30Z
      expect(iso(parseLocalDateTime('2025-03-09T01:59:59', 'America/New_York'))).to.equal('2025-03-09T06:59:59.000Z');
      expect(iso(parseLocalDateTime('2025-03-09T03:00:00', 'America/New_York'))).to.equal('2025-03-09T07:00:00.000Z');
      expect(iso(parseLocalDateTime('2025-03-09T03:30:00', 'America/New_York'))).to.equal('2025-03-09T07:30:00.000Z');
    });

    it('maps an ambiguous New York fall-back wall time to the earlier instant', () => {
      // 2025-11-02: 02:00 EDT falls back to 01:00 EST at 06:00Z. 01:30 happens at 05:30Z (EDT) and 06:30Z (EST).
      expect(iso(parseLocalDateTime('2025-11-02T01:30:00', 'America/New_York'))).to.equal('2025-11-02T05:30:00.000Z');
      // 02:00 happens once, in EST: 07:00Z
      expect(iso(parseLocalDateTime('2025-11-02T02:00:00', 'America/New_York'))).to.equal('2025-11-02T07:00:00.000Z');
      // 00:59:59.999 EDT = 04:59:59.999Z
      expect(iso(parseLocalDateTime('2025-11-02T00:59:59.999', 'America/New_York'))).to.equal('2025-11-02T04:59:59.999Z');
    });

    it('handles the Europe/Berlin gap and overlap', () => {
      // 2025-03-30: 02:00 CET -> 03:00 CEST at 01:00Z. 02:30 -> 01:00Z; 03:30 CEST -> 01:30Z
      expect(iso(parseLocalDateTime('2025-03-30T02:30', 'Europe/Berlin'))).to.equal('2025-03-30T01:00:00.000Z');
      expect(iso(parseLocalDateTime('2025-03-30T03:30', 'Europe/Berlin'))).to.equal('2025-03-30T01:30:00.000Z');
      // 2025-10-26: 03:00 CEST -> 02:00 CET at 01:00Z. 02:30 is 00:30Z (CEST) or 01:30Z (CET): earlier wins.
      expect(iso(parseLocalDateTime('2025-10-26T02:30', 'Europe/Berlin'))).to.equal('2025-10-26T00:30:00.000Z');
      // 03:00 happens once, in CET (+1): 02:00Z
      expect(iso(parseLocalDateTime('2025-10-26T03:00', 'Europe/Berlin'))).to.equal('2025-10-26T02:00:00.000Z');
    });

    it('maps a time on a skipped calendar day to the end of the gap (Samoa, 2011-12-30)', () => {
      // Apia went from 2011-12-29 24:00 (-10) straight to 2011-12-31 00:00 (+14), at 2011-12-30T10:00Z.
      expect(iso(parseLocalDateTime('2011-12-30T12:00', 'Pacific/Apia'))).to.equal('2011-12-30T10:00:00.000Z');
    });

    it('accepts Feb 29 only in leap years', () => {
      expect(iso(parseLocalDateTime('2024-02-29T00:00:00', 'UTC'))).to.equal('2024-02-29T00:00:00.000Z');
      expect(parseLocalDateTime('2025-02-29T00:00:00', 'UTC')).to.equal(null);
    });

    it('returns null for text that is not an ISO 8601 date-time', () => {
      for (const bad of [
        'not a date',
        '2025-01-01',
        '2025-13-01T00:00',
        '2025-04-31T00:00',
        '2025-01-01T24:00',
        '2025-01-01T00:60',
        '2025-01-01T00:00:60',
        '2025-01-01T00:00:00+24:00',
        '2025-1-1T00:00',
        '',
      ]) {
        expect(parseLocalDateTime(bad, 'UTC'), bad).to.equal(null);
      }
    });

    it('returns null for an offset-less time in an unknown zone', () => {
      expect(parseLocalDateTime('2025-01-01T00:00:00', 'Mars/Olympus_Mons')).to.equal(null);
    });
  });

  describe('compileCron', () => {
    it('accepts 5 fields and 6 (leading seconds), normalising whitespace', () => {
      expect(compileCron('*/5 * * * *', 'UTC').ok).to.equal(true);
      expect(compileCron('  */5   *  * * * ', 'UTC').ok).to.equal(true);
      expect(compileCron('0 */5 * * * *', 'UTC').ok).to.equal(true);
    });

    it('rejects other field counts and nicknames', () => {
      for (const p of ['* * * *', '0 0 0 * * * 2030', '@daily', '']) {
        const r = compileCron(p, 'UTC');
        expect(r.ok, p).to.equal(false);
        if (!r.ok) expect(r.message).to.match(/5 fields/);
      }
    });

    it("passes croner's reason for a bad field", () => {
      const r = compileCron('61 * * * *', 'UTC');
      expect(r).to.deep.equal({ ok: false, message: 'Invalid value for minute: 61' });
    });
  });

  describe('cron occurrences', () => {
    it('fires a New York 02:30 job at 03:00 EDT on spring-forward day, once', () => {
      // Mar 8 is EST (02:30 = 07:30Z, already past at 12:00Z); Mar 9 02:30 is in the gap -> 03:00 EDT = 07:00Z;
      // Mar 10 02:30 EDT = 06:30Z
      const cfg = cronCfg('30 2 * * *', 'America/New_York');
      expect(isos(runs('cron_scheduled', cfg, at('2025-03-08T12:00:00Z'), 3))).to.deep.equal([
        '2025-03-09T07:00:00.000Z',
        '2025-03-10T06:30:00.000Z',
        '2025-03-11T06:30:00.000Z',
      ]);
    });

    it('fires a New York 01:30 job once on fall-back day, on the first pass', () => {
      // 01:30 EDT = 05:30Z (the EST repeat at 06:30Z is skipped); Nov 3 01:30 EST = 06:30Z
      const cfg = cronCfg('30 1 * * *', 'America/New_York');
      expect(isos(runs('cron_scheduled', cfg, at('2025-11-01T12:00:00Z'), 2))).to.deep.equal([
        '2025-11-02T05:30:00.000Z',
        '2025-11-03T06:30:00.000Z',
      ]);
    });

    it('treats a list of hours as fixed-time too (Vixie): 30 2,14 fires at 03:00 EDT in the gap', () => {
      // 14:30 EST Mar 8 = 19:30Z; 02:30 Mar 9 -> 03:00 EDT = 07:00Z; 14:30 EDT = 18:30Z; Mar 10 02:30 EDT = 06:30Z
      const cfg = cronCfg('30 2,14 * * *', 'America/New_York');
      expect(isos(runs('cron_scheduled', cfg, at('2025-03-08T12:00:00Z'), 4))).to.deep.equal([
        '2025-03-08T19:30:00.000Z',
        '2025-03-09T07:00:00.000Z',
        '2025-03-09T18:30:00.000Z',
        '2025-03-10T06:30:00.000Z',
      ]);
      // and fires once in the repeated hour: 01:30 EDT = 05:30Z, not again at 01:30 EST = 06:30Z; then 14:30 EST = 19:30Z
      const fall = cronCfg('30 1,14 * * *', 'America/New_York');
      expect(isos(runs('cron_scheduled', fall, at('2025-11-02T00:00:00Z'), 2))).to.deep.equal([
        '2025-11-02T05:30:00.000Z',
        '2025-11-02T19:30:00.000Z',
      ]);
    });

    it('runs a wild job through both passes of the repeated hour and skips the gap (New York)', () => {
      // fall back: 00:30 EDT 04:30Z, 01:00 EDT 05:00Z, 01:30 EDT 05:30Z, 01:00 EST 06:00Z, 01:30 EST 06:30Z, 02:00 EST 07:00Z
      const cfg = cronCfg('*/30 * * * *', 'America/New_York');
      expect(isos(runs('cron_scheduled', cfg, at('2025-11-02T04:00:00Z'), 6))).to.deep.equal([
        '2025-11-02T04:30:00.000Z',
        '2025-11-02T05:00:00.000Z',
        '2025-11-02T05:30:00.000Z',
        '2025-11-02T06:00:00.000Z',
        '2025-11-02T06:30:00.000Z',
        '2025-11-02T07:00:00.000Z',
      ]);
      // spring forward: 01:30 EST 06:30Z, then 02:00 and 02:30 do not exist, 03:00 EDT 07:00Z, 03:30 EDT 07:30Z
      expect(isos(runs('cron_scheduled', cfg, at('2025-03-09T06:00:00Z'), 3))).to.deep.equal([
        '2025-03-09T06:30:00.000Z',
        '2025-03-09T07:00:00.000Z',
        '2025-03-09T07:30:00.000Z',
      ]);
    });

    it('handles Europe/Berlin spring-forward and fall-back for a 02:30 job', () => {
      const cfg = cronCfg('30 2 * * *', 'Europe/Berlin');
      // Mar 30 02:30 is in the gap -> 03:00 CEST = 01:00Z; Mar 31 02:30 CEST = 00:30Z
      expect(isos(runs('cron_scheduled', cfg, at('2025-03-29T12:00:00Z'), 2))).to.deep.equal([
        '2025-03-30T01:00:00.000Z',
        '2025-03-31T00:30:00.000Z',
      ]);
      // Oct 26 02:30 happens twice: first pass 02:30 CEST = 00:30Z only; Oct 27 02:30 CET = 01:30Z
      expect(isos(runs('cron_scheduled', cfg, at('2025-10-25T12:00:00Z'), 2))).to.deep.equal([
        '2025-10-26T00:30:00.000Z',
        '2025-10-27T01:30:00.000Z',
      ]);
    });

    it('fires a 6-field every-second pattern each whole second, strictly after now', () => {
      const cfg = cronCfg('* * * * * *');
      expect(iso(firstOccurrence('cron_scheduled', cfg, at('2025-01-01T00:00:00.500Z')))).to.equal('2025-01-01T00:00:01.000Z');
      expect(iso(firstOccurrence('cron_scheduled', cfg, at('2025-01-01T00:00:01.000Z')))).to.equal('2025-01-01T00:00:02.000Z');
      expect(iso(nextOccurrence('cron_scheduled', cfg, at('2025-01-01T00:00:05Z')))).to.equal('2025-01-01T00:00:06.000Z');
    });

    it('fires 0 0 29 2 * only on Feb 29 of leap years', () => {
      expect(isos(runs('cron_scheduled', cronCfg('0 0 29 2 *'), at('2025-01-01T00:00:00Z'), 3))).to.deep.equal([
        '2028-02-29T00:00:00.000Z',
        '2032-02-29T00:00:00.000Z',
        '2036-02-29T00:00:00.000Z',
      ]);
    });

    it('fires 0 0 31 * * only in months with 31 days', () => {
      expect(isos(runs('cron_scheduled', cronCfg('0 0 31 * *'), at('2025-01-01T00:00:00Z'), 7))).to.deep.equal([
        '2025-01-31T00:00:00.000Z',
        '2025-03-31T00:00:00.000Z',
        '2025-05-31T00:00:00.000Z',
        '2025-07-31T00:00:00.000Z',
        '2025-08-31T00:00:00.000Z',
        '2025-10-31T00:00:00.000Z',
        '2025-12-31T00:00:00.000Z',
      ]);
    });

    it('ORs day-of-month and day-of-week when both are restricted', () => {
      // 2025-01-01 is a Wednesday: the 1st, then Mondays 6, 13, 20, 27, then Sat Feb 1 (the 1st), Mon Feb 3
      expect(isos(runs('cron_scheduled', cronCfg('0 12 1 * MON'), at('2025-01-01T00:00:00Z'), 7))).to.deep.equal([
        '2025-01-01T12:00:00.000Z',
        '2025-01-06T12:00:00.000Z',
        '2025-01-13T12:00:00.000Z',
        '2025-01-20T12:00:00.000Z',
        '2025-01-27T12:00:00.000Z',
        '2025-02-01T12:00:00.000Z',
        '2025-02-03T12:00:00.000Z',
      ]);
    });

    it("ANDs them with croner's explicit + modifier", () => {
      // a 1st that is a Monday: Jan 1 + 243 days = Sep 1 (243 % 7 = 5, Wed + 5 = Mon); Dec 1 (+334, 334 % 7 = 5)
      expect(isos(runs('cron_scheduled', cronCfg('0 12 1 * +MON'), at('2025-01-01T00:00:00Z'), 2))).to.deep.equal([
        '2025-09-01T12:00:00.000Z',
        '2025-12-01T12:00:00.000Z',
      ]);
    });

    it('counts from the previous scheduled time, not from now (no drift)', () => {
      const cfg = cronCfg('30 2 * * *', 'America/New_York');
      // the previous firing was the gap-shifted one at 03:00 EDT (07:00Z); the next is 02:30 EDT Mar 10 = 06:30Z
      expect(iso(nextOccurrence('cron_scheduled', cfg, at('2025-03-09T07:00:00Z')))).to.equal('2025-03-10T06:30:00.000Z');
      const hourly = cronCfg('0 * * * *');
      expect(iso(nextOccurrence('cron_scheduled', hourly, at('2025-01-01T10:00:00Z')))).to.equal('2025-01-01T11:00:00.000Z');
    });

    it('takes the first occurrence strictly after now', () => {
      const cfg = cronCfg('0 * * * *');
      expect(iso(firstOccurrence('cron_scheduled', cfg, at('2025-01-01T10:00:00Z')))).to.equal('2025-01-01T11:00:00.000Z');
      expect(iso(firstOccurrence('cron_scheduled', cfg, at('2025-01-01T09:59:59.999Z')))).to.equal('2025-01-01T10:00:00.000Z');
    });
  });

  describe('time_scheduled occurrences', () => {
    it('fires at run_at read in its timezone', () => {
      // 09:00 CET (+1) = 08:00Z
      const cfg = timeCfg({ run_at: '2030-01-31T09:00:00', timezone: 'Europe/Berlin' });
      expect(iso(firstOccurrence('time_scheduled', cfg, at('2029-01-01T00:00:00Z')))).to.equal('2030-01-31T08:00:00.000Z');
      expect(isos(runs('time_scheduled', cfg, at('2029-01-01T00:00:00Z'), 5))).to.deep.equal(['2030-01-31T08:00:00.000Z']);
    });

    it('rounds a run_at with milliseconds up to the whole second', () => {
      const cfg = timeCfg({ run_at: '2030-01-01T00:00:00.250Z' });
      expect(iso(firstOccurrence('time_scheduled', cfg, at('2029-01-01T00:00:00Z')))).to.equal('2030-01-01T00:00:01.000Z');
    });

    it('fires delay_seconds after now (rounded up to a whole second)', () => {
      const cfg = timeCfg({ delay_seconds: 600 });
      expect(iso(firstOccurrence('time_scheduled', cfg, at('2025-01-01T00:00:00.000Z')))).to.equal('2025-01-01T00:10:00.000Z');
      expect(iso(firstOccurrence('time_scheduled', cfg, at('2025-01-01T00:00:00.400Z')))).to.equal('2025-01-01T00:10:01.000Z');
    });

    it('has no next occurrence', () => {
      const cfg = timeCfg({ delay_seconds: 5 });
      expect(nextOccurrence('time_scheduled', cfg, at('2025-01-01T00:00:00Z'))).to.equal(null);
    });
  });

  describe('webhook', () => {
    const cfg: WebhookConfig = { ...COMMON, schema: true };
    it('is never scheduled', () => {
      expect(firstOccurrence('webhook', cfg, at('2025-01-01T00:00:00Z'))).to.equal(null);
      expect(nextOccurrence('webhook', cfg, at('2025-01-01T00:00:00Z'))).to.equal(null);
      expect(runs('webhook', cfg, at('2025-01-01T00:00:00Z'), 3)).to.deep.equal([]);
      expect(planDue('webhook', cfg, at('2025-01-01T00:00:00Z'), at('2025-01-01T00:00:00Z'), 1000)).to.deep.equal({
        fire: [],
        next: null,
      });
    });
  });

  describe('interval occurrences', () => {
    it('without start_at, first fires one interval after now rounded up to a whole second', () => {
      // ceil(00:00:00.300) = 00:00:01, + 60 s = 00:01:01
      const cfg = intervalCfg(60);
      expect(iso(firstOccurrence('interval_scheduled', cfg, at('2025-01-01T00:00:00.300Z')))).to.equal('2025-01-01T00:01:01.000Z');
      expect(iso(firstOccurrence('interval_scheduled', cfg, at('2025-01-01T00:00:00Z')))).to.equal('2025-01-01T00:01:00.000Z');
    });

    it('with start_at in the future, first fires at start_at (read in the timezone)', () => {
      // 09:00 CEST (+2) = 07:00Z
      const cfg = intervalCfg(3600, { start_at: '2025-06-01T09:00:00', timezone: 'Europe/Berlin' });
      expect(iso(firstOccurrence('interval_scheduled', cfg, at('2025-01-01T00:00:00Z')))).to.equal('2025-06-01T07:00:00.000Z');
    });

    it('with start_at in the past, first fires at the next grid point at or after now', () => {
      const cfg = intervalCfg(3600, { start_at: '2025-01-01T00:00:00Z' });
      // 05:30 is between grid points 05:00 and 06:00 -> 06:00
      expect(iso(firstOccurrence('interval_scheduled', cfg, at('2025-01-01T05:30:00Z')))).to.equal('2025-01-01T06:00:00.000Z');
      // exactly on a grid point -> that point
      expect(iso(firstOccurrence('interval_scheduled', cfg, at('2025-01-01T05:00:00Z')))).to.equal('2025-01-01T05:00:00.000Z');
    });

    it('adds the interval to the previous scheduled time (no drift)', () => {
      const cfg = intervalCfg(3600);
      expect(iso(nextOccurrence('interval_scheduled', cfg, at('2025-01-01T06:00:00Z')))).to.equal('2025-01-01T07:00:00.000Z');
    });

    it('lists the grid points from the first at or after from, one interval apart', () => {
      const cfg = intervalCfg(3600, { start_at: '2025-01-01T00:00:00Z' });
      expect(isos(runs('interval_scheduled', cfg, at('2025-01-01T05:30:00Z'), 3))).to.deep.equal([
        '2025-01-01T06:00:00.000Z',
        '2025-01-01T07:00:00.000Z',
        '2025-01-01T08:00:00.000Z',
      ]);
      expect(runs('interval_scheduled', cfg, at('2025-01-01T05:00:00Z'), 0)).to.deep.equal([]);
    });

    it('caps the runs at 1000 dates', () => {
      expect(runs('interval_scheduled', intervalCfg(1), at('2025-01-01T00:00:00Z'), 1e9)).to.have.length(1000);
    });
  });

  describe('planDue', () => {
    const GRACE = 60_000;
    const policyCfg = (policy: MisfirePolicy, max_backfill = 100) => ({ misfire_policy: policy, max_backfill });

    it('time_scheduled fires its one occurrence however late, with no next', () => {
      const cfg = timeCfg({ run_at: '2025-01-01T00:00:00Z' });
      const plan = planDue('time_scheduled', cfg, at('2025-01-01T00:00:00Z'), at('2025-01-03T00:00:00Z'), GRACE);
      expect(isos(plan.fire)).to.deep.equal(['2025-01-01T00:00:00.000Z']);
      expect(plan.next).to.equal(null);
    });

    it('fires just dueAt when only it is due, and schedules from dueAt, not from now (no drift)', () => {
      // the relay is 17 s late: next stays on the grid at 10:01:00, not 10:01:17
      for (const policy of ['fire_once', 'skip', 'fire_all'] as const) {
        const cfg = intervalCfg(60, policyCfg(policy));
        const plan = planDue('interval_scheduled', cfg, at('2025-01-01T10:00:00Z'), at('2025-01-01T10:00:17Z'), GRACE);
        expect(isos(plan.fire), policy).to.deep.equal(['2025-01-01T10:00:00.000Z']);
        expect(iso(plan.next), policy).to.equal('2025-01-01T10:01:00.000Z');
      }
    });

    it('treats a dueAt later than now (clock skew) as due now', () => {
      const cfg = cronCfg('0 * * * *');
      const plan = planDue('cron_scheduled', cfg, at('2025-01-01T10:00:00Z'), at('2025-01-01T09:59:59.900Z'), GRACE);
      expect(isos(plan.fire)).to.deep.equal(['2025-01-01T10:00:00.000Z']);
      expect(iso(plan.next)).to.equal('2025-01-01T11:00:00.000Z');
    });

    describe('interval after a pause', () => {
      // every second from 2020-01-01 to 2025-01-01T00:00:00.500Z: 1827 days = 157,852,800 missed occurrences
      const due = at('2020-01-01T00:00:00Z');
      const now = at('2025-01-01T00:00:00.500Z');

      it('fire_once fires only the latest due occurrence, fast, then returns to the grid', () => {
        const t0 = Date.now();
        const plan = planDue('interval_scheduled', intervalCfg(1, policyCfg('fire_once')), due, now, GRACE);
        expect(Date.now() - t0).to.be.below(50);
        expect(isos(plan.fire)).to.deep.equal(['2025-01-01T00:00:00.000Z']);
        expect(iso(plan.next)).to.equal('2025-01-01T00:00:01.000Z');
      });

      it('fire_all fires the most recent max_backfill occurrences, ascending', () => {
        const t0 = Date.now();
        const plan = planDue('interval_scheduled', intervalCfg(1, policyCfg('fire_all', 1000)), due, now, GRACE);
        expect(Date.now() - t0).to.be.below(100);
        expect(plan.fire).to.have.length(1000);
        // the last is 00:00:00; 999 s (16 min 39 s) earlier is 2024-12-31T23:43:21
        expect(iso(plan.fire[0])).to.equal('2024-12-31T23:43:21.000Z');
        expect(iso(plan.fire[999])).to.equal('2025-01-01T00:00:00.000Z');
        for (let i = 1; i < plan.fire.length; i++) {
          expect(plan.fire[i]!.getTime() - plan.fire[i - 1]!.getTime()).to.equal(1000);
        }
        expect(iso(plan.next)).to.equal('2025-01-01T00:00:01.000Z');
      });

      it('skip fires the latest only if it is within the grace period', () => {
        // latest 00:00:00 is 500 ms before now
        const within = planDue('interval_scheduled', intervalCfg(1, policyCfg('skip')), due, now, 1000);
        expect(isos(within.fire)).to.deep.equal(['2025-01-01T00:00:00.000Z']);
        expect(iso(within.next)).to.equal('2025-01-01T00:00:01.000Z');
        const beyond = planDue('interval_scheduled', intervalCfg(1, policyCfg('skip')), due, now, 100);
        expect(beyond.fire).to.deep.equal([]);
        expect(iso(beyond.next)).to.equal('2025-01-01T00:00:01.000Z');
      });

      it('keeps an irregular grid: 7 s from 00:00:00 to 01:00:00', () => {
        // 3600 / 7 = 514.28: the latest due is 514 * 7 = 3598 s = 00:59:58; next 01:00:05
        const plan = planDue(
          'interval_scheduled',
          intervalCfg(7, policyCfg('fire_all', 3)),
          at('2025-01-01T00:00:00Z'),
          at('2025-01-01T01:00:00Z'),
          GRACE,
        );
        expect(isos(plan.fire)).to.deep.equal(['2025-01-01T00:59:44.000Z', '2025-01-01T00:59:51.000Z', '2025-01-01T00:59:58.000Z']);
        expect(iso(plan.next)).to.equal('2025-01-01T01:00:05.000Z');
      });

      it('fire_all fires every due occurrence when there are fewer than max_backfill', () => {
        const plan = planDue(
          'interval_scheduled',
          intervalCfg(60, policyCfg('fire_all')),
          at('2025-01-01T10:00:00Z'),
          at('2025-01-01T10:02:30Z'),
          GRACE,
        );
        expect(isos(plan.fire)).to.deep.equal(['2025-01-01T10:00:00.000Z', '2025-01-01T10:01:00.000Z', '2025-01-01T10:02:00.000Z']);
        expect(iso(plan.next)).to.equal('2025-01-01T10:03:00.000Z');
      });
    });

    describe('cron after a pause', () => {
      // hourly, due at 00:00, relay back at 05:30: due 00:00, 01:00, 02:00, 03:00, 04:00, 05:00
      const due = at('2025-01-01T00:00:00Z');
      const now = at('2025-01-01T05:30:00Z');

      it('fire_once fires the latest due occurrence and resumes after it', () => {
        const plan = planDue('cron_scheduled', cronCfg('0 * * * *', 'UTC', policyCfg('fire_once')), due, now, GRACE);
        expect(isos(plan.fire)).to.deep.equal(['2025-01-01T05:00:00.000Z']);
        expect(iso(plan.next)).to.equal('2025-01-01T06:00:00.000Z');
      });

      it('skip fires nothing when the latest is older than the grace period', () => {
        // 05:30 - 05:00 = 30 min > 60 s
        const plan = planDue('cron_scheduled', cronCfg('0 * * * *', 'UTC', policyCfg('skip')), due, now, GRACE);
        expect(plan.fire).to.deep.equal([]);
        expect(iso(plan.next)).to.equal('2025-01-01T06:00:00.000Z');
      });

      it('skip fires the latest when it is within the grace period', () => {
        const plan = planDue('cron_scheduled', cronCfg('0 * * * *', 'UTC', policyCfg('skip')), due, at('2025-01-01T05:00:30Z'), GRACE);
        expect(isos(plan.fire)).to.deep.equal(['2025-01-01T05:00:00.000Z']);
        expect(iso(plan.next)).to.equal('2025-01-01T06:00:00.000Z');
      });

      it('skip drops a single occurrence that is later than the grace period', () => {
        // daily job missed by 5 h: only dueAt is due, but it is 5 h late
        const cfg = cronCfg('0 0 * * *', 'UTC', policyCfg('skip'));
        const plan = planDue('cron_scheduled', cfg, due, at('2025-01-01T05:00:00Z'), GRACE);
        expect(plan.fire).to.deep.equal([]);
        expect(iso(plan.next)).to.equal('2025-01-02T00:00:00.000Z');
        const onTime = planDue('cron_scheduled', cfg, due, at('2025-01-01T00:00:00.800Z'), GRACE);
        expect(isos(onTime.fire)).to.deep.equal(['2025-01-01T00:00:00.000Z']);
      });

      it('fire_all fires the most recent max_backfill due occurrences, ascending', () => {
        const plan = planDue('cron_scheduled', cronCfg('0 * * * *', 'UTC', policyCfg('fire_all', 3)), due, now, GRACE);
        expect(isos(plan.fire)).to.deep.equal(['2025-01-01T03:00:00.000Z', '2025-01-01T04:00:00.000Z', '2025-01-01T05:00:00.000Z']);
        expect(iso(plan.next)).to.equal('2025-01-01T06:00:00.000Z');
        const all = planDue('cron_scheduled', cronCfg('0 * * * *', 'UTC', policyCfg('fire_all', 100)), due, now, GRACE);
        expect(isos(all.fire)).to.deep.equal([
          '2025-01-01T00:00:00.000Z',
          '2025-01-01T01:00:00.000Z',
          '2025-01-01T02:00:00.000Z',
          '2025-01-01T03:00:00.000Z',
          '2025-01-01T04:00:00.000Z',
          '2025-01-01T05:00:00.000Z',
        ]);
      });

      it('an every-second cron missed for five years stays fast', () => {
        const cfg = cronCfg('* * * * * *', 'America/New_York', policyCfg('fire_all', 1000));
        const t0 = Date.now();
        const plan = planDue('cron_scheduled', cfg, at('2020-01-01T00:00:00Z'), at('2025-01-01T00:00:00.500Z'), GRACE);
        expect(Date.now() - t0).to.be.below(2000);
        expect(plan.fire).to.have.length(1000);
        expect(iso(plan.fire[0])).to.equal('2024-12-31T23:43:21.000Z');
        expect(iso(plan.fire[999])).to.equal('2025-01-01T00:00:00.000Z');
        expect(iso(plan.next)).to.equal('2025-01-01T00:00:01.000Z');
        const once = planDue(
          'cron_scheduled',
          { ...cfg, misfire_policy: 'fire_once' },
          at('2020-01-01T00:00:00Z'),
          at('2025-01-01T00:00:00.500Z'),
          GRACE,
        );
        expect(isos(once.fire)).to.deep.equal(['2025-01-01T00:00:00.000Z']);
      });

      it('backfills across a spring-forward gap (New York 02:30 job)', () => {
        // Mar 8 02:30 EST = 07:30Z; Mar 9 in the gap -> 03:00 EDT = 07:00Z; Mar 10 02:30 EDT = 06:30Z; next Mar 11 06:30Z
        const cfg = cronCfg('30 2 * * *', 'America/New_York', policyCfg('fire_all'));
        const plan = planDue('cron_scheduled', cfg, at('2025-03-08T07:30:00Z'), at('2025-03-10T12:00:00Z'), GRACE);
        expect(isos(plan.fire)).to.deep.equal(['2025-03-08T07:30:00.000Z', '2025-03-09T07:00:00.000Z', '2025-03-10T06:30:00.000Z']);
        expect(iso(plan.next)).to.equal('2025-03-11T06:30:00.000Z');
      });

      it('backfills both passes of the repeated hour for a wild job (New York fall back)', () => {
        // 01:00 EDT 05:00Z, 01:30 EDT 05:30Z, 01:00 EST 06:00Z, 01:30 EST 06:30Z; next 02:00 EST 07:00Z
        const cfg = cronCfg('*/30 * * * *', 'America/New_York', policyCfg('fire_all'));
        const plan = planDue('cron_scheduled', cfg, at('2025-11-02T05:00:00Z'), at('2025-11-02T06:45:00Z'), GRACE);
        expect(isos(plan.fire)).to.deep.equal([
          '2025-11-02T05:00:00.000Z',
          '2025-11-02T05:30:00.000Z',
          '2025-11-02T06:00:00.000Z',
          '2025-11-02T06:30:00.000Z',
        ]);
        expect(iso(plan.next)).to.equal('2025-11-02T07:00:00.000Z');
      });

      it('counts dueAt as due even when it is off the (since changed) pattern', () => {
        const cfg = cronCfg('0 * * * *', 'UTC', policyCfg('fire_all'));
        const plan = planDue('cron_scheduled', cfg, at('2025-01-01T00:30:00Z'), at('2025-01-01T02:10:00Z'), GRACE);
        expect(isos(plan.fire)).to.deep.equal(['2025-01-01T00:30:00.000Z', '2025-01-01T01:00:00.000Z', '2025-01-01T02:00:00.000Z']);
        expect(iso(plan.next)).to.equal('2025-01-01T03:00:00.000Z');
      });
    });
  });
});
