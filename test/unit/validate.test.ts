import { expect } from 'chai';
import { validateTriggerConfig } from '../../src/triggers/validate';
import type { FieldError, TriggerConfig, TriggerType } from '../../src/triggers/types';

const NOW = new Date('2030-01-01T00:00:00Z');
const ENDPOINT = 'https://example.com/hook';

const BASE: Record<TriggerType, Record<string, unknown>> = {
  webhook: { endpoint: ENDPOINT, schema: { type: 'object' } },
  time_scheduled: { endpoint: ENDPOINT, run_at: '2030-06-01T09:00:00Z' },
  cron_scheduled: { endpoint: ENDPOINT, cron: '*/5 * * * *' },
  interval_scheduled: { endpoint: ENDPOINT, interval_seconds: 60 },
};
const TYPES = Object.keys(BASE) as TriggerType[];

function valid(type: TriggerType, config: unknown, now = NOW): TriggerConfig {
  const r = validateTriggerConfig(type, config, now);
  if (!r.ok) throw new Error(`expected valid, got ${JSON.stringify(r.errors)}`);
  return r.config;
}

function errors(type: TriggerType, config: unknown, now = NOW): FieldError[] {
  const r = validateTriggerConfig(type, config, now);
  if (r.ok) throw new Error(`expected errors for ${JSON.stringify(config)}`);
  return r.errors;
}

/** The config is rejected with exactly one error, on `field`, whose message matches. */
function expectOnly(type: TriggerType, config: unknown, field: string, message?: RegExp | string): void {
  const errs = errors(type, config);
  expect(
    errs.map((e) => e.field),
    JSON.stringify(errs),
  ).to.deep.equal([field]);
  if (typeof message === 'string') expect(errs[0]!.message).to.equal(message);
  else if (message) expect(errs[0]!.message).to.match(message);
}

const DEFAULT_COMMON = {
  endpoint: ENDPOINT,
  http_method: 'POST',
  headers: {},
  timeout_ms: 10_000,
  retry: { max_attempts: 5, backoff_ms: 1000 },
};

describe('validateTriggerConfig', () => {
  describe('defaults', () => {
    it('fills in every default for a webhook', () => {
      expect(valid('webhook', BASE.webhook)).to.deep.equal({ ...DEFAULT_COMMON, schema: { type: 'object' } });
    });

    it('fills in every default for a time trigger with delay_seconds', () => {
      expect(valid('time_scheduled', { endpoint: ENDPOINT, delay_seconds: 600 })).to.deep.equal({
        ...DEFAULT_COMMON,
        delay_seconds: 600,
        timezone: 'UTC',
        payload: null,
      });
    });

    it('fills in every default for a cron trigger and single-spaces the pattern', () => {
      expect(valid('cron_scheduled', { endpoint: ENDPOINT, cron: '  */5   * * *  * ' })).to.deep.equal({
        ...DEFAULT_COMMON,
        cron: '*/5 * * * *',
        timezone: 'UTC',
        payload: null,
        misfire_policy: 'fire_once',
        max_backfill: 100,
      });
    });

    it('fills in every default for an interval trigger', () => {
      expect(valid('interval_scheduled', BASE.interval_scheduled)).to.deep.equal({
        ...DEFAULT_COMMON,
        interval_seconds: 60,
        timezone: 'UTC',
        payload: null,
        misfire_policy: 'fire_once',
        max_backfill: 100,
      });
    });

    it('keeps given values', () => {
      const config = {
        endpoint: 'http://localhost:8080/x?y=1',
        http_method: 'PUT',
        headers: { Authorization: 'Bearer t', 'X-Trace': 'abc' },
        timeout_ms: 100,
        retry: { max_attempts: 20, backoff_ms: 3_600_000 },
        interval_seconds: 31_536_000,
        start_at: '2030-01-01T09:00:00',
        timezone: 'Europe/Berlin',
        payload: { a: [1, 'two', null, true] },
        misfire_policy: 'fire_all',
        max_backfill: 1000,
      };
      expect(valid('interval_scheduled', config)).to.deep.equal(config);
    });

    it('treats null as absent for optional fields, but keeps a null payload', () => {
      const c = valid('time_scheduled', { endpoint: ENDPOINT, delay_seconds: 5, run_at: null, timezone: null, payload: null });
      expect(c).to.deep.equal({ ...DEFAULT_COMMON, delay_seconds: 5, timezone: 'UTC', payload: null });
    });

    it('stores the canonical spelling of a zone given in another case', () => {
      expect((valid('cron_scheduled', { ...BASE.cron_scheduled, timezone: 'europe/berlin' }) as { timezone: string }).timezone).to.equal(
        'Europe/Berlin',
      );
      expect((valid('cron_scheduled', { ...BASE.cron_scheduled, timezone: 'Asia/Kolkata' }) as { timezone: string }).timezone).to.equal(
        'Asia/Kolkata',
      );
    });
  });

  describe('the config as a whole', () => {
    it("rejects a config that is not an object on 'config'", () => {
      for (const c of [null, undefined, [], 'x', 42]) {
        expect(errors('webhook', c)).to.deep.equal([{ field: 'config', message: 'must be an object' }]);
      }
    });

    it("rejects an unknown type on 'type'", () => {
      expect(errors('nope' as TriggerType, {})).to.deep.equal([
        { field: 'type', message: 'must be one of webhook, time_scheduled, cron_scheduled, interval_scheduled' },
      ]);
    });

    it('names every unknown property', () => {
      expect(errors('webhook', { ...BASE.webhook, foo: 1, cron: '* * * * *' })).to.deep.equal([
        { field: 'config.foo', message: 'unknown property' },
        { field: 'config.cron', message: 'only cron_scheduled triggers have this property, not webhook' },
      ]);
    });

    it('rejects properties that belong to another type, naming the types they belong to', () => {
      const only = (type: string, ...owners: string[]) => `only ${owners.join(', ')} triggers have this property, not ${type}`;
      expectOnly(
        'cron_scheduled',
        { ...BASE.cron_scheduled, interval_seconds: 5 },
        'config.interval_seconds',
        only('cron_scheduled', 'interval_scheduled'),
      );
      expectOnly(
        'interval_scheduled',
        { ...BASE.interval_scheduled, run_at: '2030-01-01T00:00Z' },
        'config.run_at',
        only('interval_scheduled', 'time_scheduled'),
      );
      expectOnly(
        'time_scheduled',
        { ...BASE.time_scheduled, misfire_policy: 'skip' },
        'config.misfire_policy',
        only('time_scheduled', 'cron_scheduled', 'interval_scheduled'),
      );
      expectOnly(
        'webhook',
        { ...BASE.webhook, payload: {} },
        'config.payload',
        only('webhook', 'time_scheduled', 'cron_scheduled', 'interval_scheduled'),
      );
    });

    it('reads an explicit null as absent for every field, payload included, and ignores a webhook has_secret', () => {
      expect(validateTriggerConfig('webhook', { ...BASE.webhook, payload: null, secret: null, has_secret: true }, NOW).ok).to.equal(true);
      const r = validateTriggerConfig(
        'time_scheduled',
        { ...BASE.time_scheduled, payload: null, timeout_ms: null, retry: { max_attempts: null } },
        NOW,
      );
      expect(r.ok && r.config).to.include({ payload: null, timeout_ms: 10_000 });
    });

    it('collects all errors, not just the first', () => {
      const errs = errors('cron_scheduled', {
        endpoint: 'ftp://x',
        http_method: 'FETCH',
        timeout_ms: 5,
        retry: { max_attempts: 0, backoff_ms: 1.5, jitter: true },
        cron: '* * *',
        timezone: 'Mars/Base',
        misfire_policy: 'sometimes',
        max_backfill: 0,
        extra: 1,
      });
      expect(errs.map((e) => e.field).sort()).to.deep.equal(
        [
          'config.extra',
          'config.endpoint',
          'config.http_method',
          'config.timeout_ms',
          'config.retry.jitter',
          'config.retry.max_attempts',
          'config.retry.backoff_ms',
          'config.cron',
          'config.timezone',
          'config.misfire_policy',
          'config.max_backfill',
        ].sort(),
      );
    });
  });

  describe('common fields (every type)', () => {
    for (const type of TYPES) {
      describe(type, () => {
        const base = BASE[type];
        const without = (key: string) => Object.fromEntries(Object.entries(base).filter(([k]) => k !== key));

        it('requires endpoint', () => {
          expectOnly(type, without('endpoint'), 'config.endpoint', 'is required');
        });

        it('requires endpoint to be an absolute http(s) URL of at most 2048 characters', () => {
          for (const e of [
            'ftp://example.com/x',
            'not a url',
            '/relative/path',
            'example.com/hook',
            'mailto:a@b.c',
            'file:///etc/passwd',
          ]) {
            expectOnly(type, { ...base, endpoint: e }, 'config.endpoint', 'must be an absolute http or https URL');
          }
          expectOnly(type, { ...base, endpoint: 42 }, 'config.endpoint', 'must be a string');
          const long = 'https://example.com/' + 'a'.repeat(2049 - 'https://example.com/'.length);
          expect(long).to.have.length(2049);
          expectOnly(type, { ...base, endpoint: long }, 'config.endpoint', 'must be at most 2048 characters');
          expect(valid(type, { ...base, endpoint: long.slice(0, 2048) }).endpoint).to.have.length(2048);
        });

        it('checks http_method', () => {
          for (const m of ['FETCH', 'post', 'HEAD', 1]) {
            expectOnly(type, { ...base, http_method: m }, 'config.http_method', 'must be one of POST, PUT, PATCH, GET, DELETE');
          }
          for (const m of ['POST', 'PUT', 'PATCH', 'GET', 'DELETE']) {
            expect(valid(type, { ...base, http_method: m }).http_method).to.equal(m);
          }
        });

        it('checks headers', () => {
          expectOnly(type, { ...base, headers: ['X-A: 1'] }, 'config.headers', /must be an object/);
          expectOnly(type, { ...base, headers: 'X-A: 1' }, 'config.headers', /must be an object/);
          const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`X-H${i}`, 'v']));
          expectOnly(type, { ...base, headers: many }, 'config.headers', 'must have at most 50 headers');
          expect(
            Object.keys(valid(type, { ...base, headers: Object.fromEntries(Object.entries(many).slice(0, 50)) }).headers),
          ).to.have.length(50);
          expectOnly(type, { ...base, headers: { 'Bad Name': 'v' } }, 'config.headers.Bad Name', 'is not a valid HTTP header name');
          expectOnly(type, { ...base, headers: { 'X:A': 'v' } }, 'config.headers.X:A', 'is not a valid HTTP header name');
          expectOnly(type, { ...base, headers: { 'X-A': 5 } }, 'config.headers.X-A', 'must be a string');
          expectOnly(type, { ...base, headers: { 'X-A': 'a\r\nX-Injected: 1' } }, 'config.headers.X-A', 'must not contain CR, LF or NUL');
          expectOnly(type, { ...base, headers: { 'X-A': 'a\nb' } }, 'config.headers.X-A', 'must not contain CR, LF or NUL');
          expectOnly(type, { ...base, headers: { 'X-A': 'v'.repeat(4097) } }, 'config.headers.X-A', 'must be at most 4096 characters');
          expect(valid(type, { ...base, headers: { 'X-A': 'v'.repeat(4096) } }).headers['X-A']).to.have.length(4096);
          expectOnly(type, { ...base, headers: { 'X-A': '1', 'x-a': '2' } }, 'config.headers.x-a', /duplicates another header/);
        });

        it('checks timeout_ms is an integer 100-60000', () => {
          for (const t of [99, 60_001, -1, 1e308]) {
            expectOnly(type, { ...base, timeout_ms: t }, 'config.timeout_ms', 'must be between 100 and 60000');
          }
          for (const t of [1.5, '5000', Infinity, NaN, true, {}]) {
            expectOnly(type, { ...base, timeout_ms: t }, 'config.timeout_ms', 'must be an integer');
          }
          expect(valid(type, { ...base, timeout_ms: 100 }).timeout_ms).to.equal(100);
          expect(valid(type, { ...base, timeout_ms: 60_000 }).timeout_ms).to.equal(60_000);
        });

        it('checks retry', () => {
          expectOnly(type, { ...base, retry: 3 }, 'config.retry', 'must be an object');
          expectOnly(type, { ...base, retry: { max_attempts: 0 } }, 'config.retry.max_attempts', 'must be between 1 and 20');
          expectOnly(type, { ...base, retry: { max_attempts: 21 } }, 'config.retry.max_attempts', 'must be between 1 and 20');
          expectOnly(type, { ...base, retry: { max_attempts: 2.5 } }, 'config.retry.max_attempts', 'must be an integer');
          expectOnly(type, { ...base, retry: { backoff_ms: 9 } }, 'config.retry.backoff_ms', 'must be between 10 and 3600000');
          expectOnly(type, { ...base, retry: { backoff_ms: 3_600_001 } }, 'config.retry.backoff_ms', 'must be between 10 and 3600000');
          expectOnly(type, { ...base, retry: { backoff_ms: '100' } }, 'config.retry.backoff_ms', 'must be an integer');
          expectOnly(type, { ...base, retry: { tries: 3 } }, 'config.retry.tries', 'unknown property');
          expect(valid(type, { ...base, retry: { max_attempts: 1 } }).retry).to.deep.equal({ max_attempts: 1, backoff_ms: 1000 });
        });

        it('checks the flow-control fields: rate 1-10000, concurrency 1-1000, ordered a boolean', () => {
          for (const v of [0, 10_001, -5]) {
            expectOnly(type, { ...base, delivery_rate_per_second: v }, 'config.delivery_rate_per_second', 'must be between 1 and 10000');
          }
          for (const v of [2.5, '10', true]) {
            expectOnly(type, { ...base, delivery_rate_per_second: v }, 'config.delivery_rate_per_second', 'must be an integer');
          }
          for (const v of [0, 1001]) {
            expectOnly(type, { ...base, delivery_max_concurrency: v }, 'config.delivery_max_concurrency', 'must be between 1 and 1000');
          }
          expectOnly(type, { ...base, delivery_max_concurrency: '2' }, 'config.delivery_max_concurrency', 'must be an integer');
          for (const v of ['true', 1, {}]) {
            expectOnly(type, { ...base, ordered_delivery: v }, 'config.ordered_delivery', 'must be a boolean');
          }
          const all = valid(type, { ...base, delivery_rate_per_second: 10_000, delivery_max_concurrency: 1, ordered_delivery: true });
          expect(all).to.include({ delivery_rate_per_second: 10_000, delivery_max_concurrency: 1, ordered_delivery: true });
          // Absent, null and false all mean "no limit, unordered": nothing is stored.
          const none = valid(type, { ...base, delivery_rate_per_second: null, ordered_delivery: false });
          expect(none).to.not.have.any.keys('delivery_rate_per_second', 'delivery_max_concurrency', 'ordered_delivery');
        });
      });
    }
  });

  describe('webhook', () => {
    it('requires schema', () => {
      expectOnly('webhook', { endpoint: ENDPOINT }, 'config.schema', 'is required');
    });

    it('accepts a boolean schema', () => {
      expect((valid('webhook', { endpoint: ENDPOINT, schema: true }) as { schema: unknown }).schema).to.equal(true);
    });

    it("rejects a schema that does not compile, with ajv's message", () => {
      expectOnly(
        'webhook',
        { endpoint: ENDPOINT, schema: { type: 'nope' } },
        'config.schema',
        /^schema is invalid: data\/type must be equal/,
      );
      expectOnly('webhook', { endpoint: ENDPOINT, schema: 'object' }, 'config.schema', /must be a JSON Schema/);
    });

    it('rejects a catastrophic pattern and a deep schema', () => {
      expectOnly('webhook', { endpoint: ENDPOINT, schema: { type: 'string', pattern: '(a+)+$' } }, 'config.schema', /nested quantifier/);
      let deep: Record<string, unknown> = {};
      for (let i = 0; i < 40; i++) deep = { not: deep };
      expectOnly('webhook', { endpoint: ENDPOINT, schema: deep }, 'config.schema', 'schema nests deeper than 32 levels');
    });

    it('checks secret is a string of 16-256 characters', () => {
      expectOnly('webhook', { ...BASE.webhook, secret: 'x'.repeat(15) }, 'config.secret', 'must be 16 to 256 characters');
      expectOnly('webhook', { ...BASE.webhook, secret: 'x'.repeat(257) }, 'config.secret', 'must be 16 to 256 characters');
      expectOnly('webhook', { ...BASE.webhook, secret: 1234567890123456 }, 'config.secret', 'must be a string');
      expect((valid('webhook', { ...BASE.webhook, secret: 's'.repeat(16) }) as { secret?: string }).secret).to.equal('s'.repeat(16));
      expect(valid('webhook', BASE.webhook)).to.not.have.property('secret');
    });
  });

  describe('time_scheduled', () => {
    it('requires exactly one of run_at and delay_seconds', () => {
      expectOnly('time_scheduled', { endpoint: ENDPOINT }, 'config.run_at', 'run_at or delay_seconds is required');
      expectOnly(
        'time_scheduled',
        { endpoint: ENDPOINT, run_at: '2030-06-01T09:00:00Z', delay_seconds: 10 },
        'config.run_at',
        'give either run_at or delay_seconds, not both',
      );
    });

    it('requires run_at to be an ISO 8601 date-time', () => {
      for (const r of ['tomorrow', '2030-06-01', '2030-02-30T00:00:00', 1_900_000_000_000]) {
        expectOnly('time_scheduled', { endpoint: ENDPOINT, run_at: r }, 'config.run_at', /ISO 8601/);
      }
    });

    it('rejects a run_at more than 60 s before now, and allows one just within', () => {
      // now is 2030-01-01T00:00:00Z
      expectOnly('time_scheduled', { endpoint: ENDPOINT, run_at: '2029-12-31T23:58:59Z' }, 'config.run_at', 'run_at is in the past');
      expect(valid('time_scheduled', { endpoint: ENDPOINT, run_at: '2029-12-31T23:59:30Z' })).to.include({
        run_at: '2029-12-31T23:59:30Z',
      });
    });

    it('reads an offset-less run_at in the timezone when checking the past', () => {
      // 2030-01-01T00:30 in New York (EST, -5) is 05:30Z: future. In Tokyo (+9) it is 2029-12-31T15:30Z: past.
      const ny = valid('time_scheduled', { endpoint: ENDPOINT, run_at: '2030-01-01T00:30:00', timezone: 'America/New_York' });
      expect(ny).to.include({ run_at: '2030-01-01T00:30:00', timezone: 'America/New_York' });
      expectOnly(
        'time_scheduled',
        { endpoint: ENDPOINT, run_at: '2030-01-01T00:30:00', timezone: 'Asia/Tokyo' },
        'config.run_at',
        'run_at is in the past',
      );
    });

    it('checks delay_seconds is an integer 0-31536000', () => {
      expect(valid('time_scheduled', { endpoint: ENDPOINT, delay_seconds: 0 })).to.include({ delay_seconds: 0 });
      expect(valid('time_scheduled', { endpoint: ENDPOINT, delay_seconds: 31_536_000 })).to.include({ delay_seconds: 31_536_000 });
      for (const d of [-1, 31_536_001, 1e21]) {
        expectOnly('time_scheduled', { endpoint: ENDPOINT, delay_seconds: d }, 'config.delay_seconds', 'must be between 0 and 31536000');
      }
      for (const d of [1.5, '5', Infinity]) {
        expectOnly('time_scheduled', { endpoint: ENDPOINT, delay_seconds: d }, 'config.delay_seconds', 'must be an integer');
      }
    });

    it('checks timezone', () => {
      expectOnly('time_scheduled', { ...BASE.time_scheduled, timezone: 'Mars/Olympus_Mons' }, 'config.timezone', /IANA time zone/);
      expectOnly('time_scheduled', { ...BASE.time_scheduled, timezone: '+05:00' }, 'config.timezone', /IANA time zone/);
      expectOnly('time_scheduled', { ...BASE.time_scheduled, timezone: 5 }, 'config.timezone', /IANA time zone/);
    });

    it('reports only the timezone when an offset-less run_at cannot be placed', () => {
      expectOnly('time_scheduled', { endpoint: ENDPOINT, run_at: '2030-06-01T09:00:00', timezone: 'Nowhere/Land' }, 'config.timezone');
    });

    it('requires payload to be JSON', () => {
      expectOnly('time_scheduled', { ...BASE.time_scheduled, payload: { n: NaN } }, 'config.payload', 'must be a JSON value');
      expectOnly('time_scheduled', { ...BASE.time_scheduled, payload: () => 1 }, 'config.payload', 'must be a JSON value');
      expect(valid('time_scheduled', { ...BASE.time_scheduled, payload: [1, { a: 'b' }] })).to.deep.include({
        payload: [1, { a: 'b' }],
      });
    });
  });

  describe('cron_scheduled', () => {
    it('requires cron', () => {
      expectOnly('cron_scheduled', { endpoint: ENDPOINT }, 'config.cron', 'is required');
      expectOnly('cron_scheduled', { endpoint: ENDPOINT, cron: 5 }, 'config.cron', 'must be a string');
    });

    it('accepts 5 fields and 6 with leading seconds', () => {
      expect(valid('cron_scheduled', { endpoint: ENDPOINT, cron: '0 9 * * MON-FRI' })).to.include({ cron: '0 9 * * MON-FRI' });
      expect(valid('cron_scheduled', { endpoint: ENDPOINT, cron: '*/10 * * * * *' })).to.include({ cron: '*/10 * * * * *' });
    });

    it('rejects other field counts, nicknames and 7-field patterns', () => {
      for (const c of ['* * * *', '0 0 0 1 1 * 2031', '@daily', '']) {
        expectOnly('cron_scheduled', { endpoint: ENDPOINT, cron: c }, 'config.cron', /must have 5 fields/);
      }
    });

    it("rejects what croner rejects, with croner's reason", () => {
      expectOnly('cron_scheduled', { endpoint: ENDPOINT, cron: '61 * * * *' }, 'config.cron', 'Invalid value for minute: 61');
      expectOnly('cron_scheduled', { endpoint: ENDPOINT, cron: '*/0 * * * *' }, 'config.cron', /illegal stepping/);
      expectOnly('cron_scheduled', { endpoint: ENDPOINT, cron: '0 0 * * FOO' }, 'config.cron');
      expectOnly('cron_scheduled', { endpoint: ENDPOINT, cron: '0 25 * * *' }, 'config.cron', /hour/);
    });

    it('rejects a pattern that never fires', () => {
      expectOnly('cron_scheduled', { endpoint: ENDPOINT, cron: '0 0 30 2 *' }, 'config.cron', 'never fires (no matching date)');
    });

    it('checks misfire_policy and max_backfill', () => {
      expectOnly(
        'cron_scheduled',
        { ...BASE.cron_scheduled, misfire_policy: 'sometimes' },
        'config.misfire_policy',
        'must be one of fire_once, skip, fire_all',
      );
      expectOnly('cron_scheduled', { ...BASE.cron_scheduled, max_backfill: 0 }, 'config.max_backfill', 'must be between 1 and 1000');
      expectOnly('cron_scheduled', { ...BASE.cron_scheduled, max_backfill: 1001 }, 'config.max_backfill', 'must be between 1 and 1000');
      expectOnly('cron_scheduled', { ...BASE.cron_scheduled, max_backfill: 10.5 }, 'config.max_backfill', 'must be an integer');
      for (const p of ['fire_once', 'skip', 'fire_all']) {
        expect(valid('cron_scheduled', { ...BASE.cron_scheduled, misfire_policy: p })).to.include({ misfire_policy: p });
      }
    });

    it('checks timezone, and still checks the pattern when the zone is bad', () => {
      expectOnly('cron_scheduled', { ...BASE.cron_scheduled, timezone: 'Europe/Atlantis' }, 'config.timezone', /IANA/);
      const errs = errors('cron_scheduled', { endpoint: ENDPOINT, cron: '61 * * * *', timezone: 'Europe/Atlantis' });
      expect(errs.map((e) => e.field)).to.deep.equal(['config.timezone', 'config.cron']);
    });
  });

  describe('interval_scheduled', () => {
    it('requires interval_seconds, an integer 1-31536000', () => {
      expectOnly('interval_scheduled', { endpoint: ENDPOINT }, 'config.interval_seconds', 'is required');
      for (const s of [0, -5, 31_536_001]) {
        expectOnly(
          'interval_scheduled',
          { endpoint: ENDPOINT, interval_seconds: s },
          'config.interval_seconds',
          'must be between 1 and 31536000',
        );
      }
      for (const s of [1.5, '60', Infinity]) {
        expectOnly('interval_scheduled', { endpoint: ENDPOINT, interval_seconds: s }, 'config.interval_seconds', 'must be an integer');
      }
      expect(valid('interval_scheduled', { endpoint: ENDPOINT, interval_seconds: 1 })).to.include({ interval_seconds: 1 });
    });

    it('checks start_at is an ISO 8601 date-time (past values are fine)', () => {
      expectOnly('interval_scheduled', { ...BASE.interval_scheduled, start_at: 'soon' }, 'config.start_at', /ISO 8601/);
      expectOnly('interval_scheduled', { ...BASE.interval_scheduled, start_at: 5 }, 'config.start_at', /ISO 8601/);
      expect(valid('interval_scheduled', { ...BASE.interval_scheduled, start_at: '2020-01-01T00:00:00Z' })).to.include({
        start_at: '2020-01-01T00:00:00Z',
      });
      expect(valid('interval_scheduled', BASE.interval_scheduled)).to.not.have.property('start_at');
    });

    it('checks misfire_policy, max_backfill and timezone', () => {
      expectOnly('interval_scheduled', { ...BASE.interval_scheduled, misfire_policy: 'all' }, 'config.misfire_policy');
      expectOnly('interval_scheduled', { ...BASE.interval_scheduled, max_backfill: 0 }, 'config.max_backfill');
      expectOnly('interval_scheduled', { ...BASE.interval_scheduled, timezone: 'UTC+2' }, 'config.timezone');
    });
  });
});
