import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config';
import { TokenBuckets } from '../../src/api/rate-limit';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from '../../src/api/json-depth';

describe('rate limits: token buckets', () => {
  it('allows a burst, then one request per 1/rate seconds, and says how long to wait', () => {
    let now = 0;
    const b = new TokenBuckets(10, 20, 100, () => now);
    for (let i = 0; i < 20; i++) expect(b.take('k')).to.equal(0);
    expect(b.take('k')).to.equal(100); // one token every 100 ms
    now += 50;
    expect(b.take('k')).to.equal(50);
    now += 50;
    expect(b.take('k')).to.equal(0);
    expect(b.take('other')).to.equal(0); // keys are independent
  });

  it('refills up to the burst and no further', () => {
    let now = 0;
    const b = new TokenBuckets(1, 2, 100, () => now);
    b.take('k');
    b.take('k');
    now += 3_600_000;
    expect(b.take('k')).to.equal(0);
    expect(b.take('k')).to.equal(0);
    expect(b.take('k')).to.be.greaterThan(0);
  });

  it('stays bounded under a flood of distinct keys', () => {
    let now = 0;
    const b = new TokenBuckets(1, 1, 1000, () => now);
    for (let i = 0; i < 10_000; i++) {
      b.take(`key-${i}`);
      now += 1;
    }
    expect(b.size).to.be.at.most(1000);
  });
});

describe('rate limits: configuration', () => {
  it('defaults to 100/s per API key and 1000/s per webhook', () => {
    const c = loadConfig({});
    expect(c.rateLimitPerKey).to.equal(100);
    expect(c.rateLimitPerWebhook).to.equal(1000);
  });
  it('accepts 0 to disable a limit', () => {
    const c = loadConfig({ RATE_LIMIT_PER_KEY: '0', RATE_LIMIT_PER_WEBHOOK: '0' });
    expect([c.rateLimitPerKey, c.rateLimitPerWebhook]).to.deep.equal([0, 0]);
  });
  for (const [name, value] of [
    ['RATE_LIMIT_PER_KEY', '-1'],
    ['RATE_LIMIT_PER_WEBHOOK', 'fast'],
  ]) {
    it(`rejects ${name}=${value} naming the variable`, () => {
      expect(() => loadConfig({ [name!]: value })).to.throw(ConfigError, new RegExp(name!));
    });
  }
});

describe('request bodies: JSON nesting depth', () => {
  const deep = (d: number) => Buffer.from('['.repeat(d) + ']'.repeat(d));
  it(`allows ${MAX_JSON_DEPTH} levels and refuses one more`, () => {
    expect(jsonDepthExceeds(deep(MAX_JSON_DEPTH))).to.equal(false);
    expect(jsonDepthExceeds(deep(MAX_JSON_DEPTH + 1))).to.equal(true);
    expect(jsonDepthExceeds(Buffer.from('{"a":'.repeat(MAX_JSON_DEPTH + 1) + '1' + '}'.repeat(MAX_JSON_DEPTH + 1)))).to.equal(true);
  });
  it('does not count brackets inside strings, escaped quotes included', () => {
    const text = JSON.stringify({ s: '['.repeat(500), t: '\\"[[[[' + '{'.repeat(500), u: '"]]]' });
    expect(jsonDepthExceeds(Buffer.from(text))).to.equal(false);
  });
  it('counts depth, not the number of containers', () => {
    expect(jsonDepthExceeds(Buffer.from(JSON.stringify(Array.from({ length: 10_000 }, () => [{}]))))).to.equal(false);
  });
});
