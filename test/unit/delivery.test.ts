import { expect } from 'chai';
import { createHmac } from 'node:crypto';
import { classify, isPrivateAddress, parseRetryAfter, signStandardWebhook } from '../../src/worker/delivery';
import { backoffMs } from '../../src/util';
import { eventMessage, toKafka } from '../../src/kafka/message';

describe('delivery: response classification', () => {
  it('treats 2xx as delivered', () => {
    for (const s of [200, 201, 204, 299]) expect(classify(s, null).kind).to.equal('success');
  });
  it('treats 4xx as permanent except 408 and 429', () => {
    for (const s of [400, 401, 403, 404, 410, 422]) expect(classify(s, null).kind).to.equal('failure');
    for (const s of [408, 429]) expect(classify(s, null).kind).to.equal('retry');
  });
  it('retries 5xx and honours Retry-After', () => {
    for (const s of [500, 502, 503, 504, 599]) expect(classify(s, null), `status ${s}`).to.deep.include({ kind: 'retry', status: s });
    const o = classify(503, '7');
    expect(o).to.deep.include({ kind: 'retry', status: 503, retryAfterMs: 7000 });
  });
  it('parses Retry-After as seconds or an HTTP date, capped at one hour', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('120', now)).to.equal(120_000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).to.equal(30_000);
    expect(parseRetryAfter('999999', now)).to.equal(3600_000);
    expect(parseRetryAfter('soon', now)).to.equal(null);
    expect(parseRetryAfter(null, now)).to.equal(null);
  });
});

describe('delivery: SSRF address ranges', () => {
  const privateOnes = [
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    'fd00::1',
    'fe80::1',
    '::ffff:127.0.0.1',
    '224.0.0.1',
  ];
  const publicOnes = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700::1111', '::ffff:8.8.8.8'];
  for (const ip of privateOnes) it(`refuses ${ip}`, () => expect(isPrivateAddress(ip)).to.equal(true));
  for (const ip of publicOnes) it(`allows ${ip}`, () => expect(isPrivateAddress(ip)).to.equal(false));
});

describe('delivery: Standard Webhooks signature', () => {
  it('is v1, base64 HMAC-SHA256 over "id.timestamp.body"', () => {
    const sig = signStandardWebhook('secret', 'msg_1', 1700000000, '{"a":1}');
    const expected = createHmac('sha256', 'secret').update('msg_1.1700000000.{"a":1}').digest('base64');
    expect(sig).to.equal(`v1,${expected}`);
  });
});

describe('back-off with full jitter', () => {
  it('stays within [0, min(cap, base * 2^(attempt-1)))', () => {
    expect(backoffMs(1, 1000, 60_000, () => 0.999)).to.equal(999);
    expect(backoffMs(3, 1000, 60_000, () => 0.5)).to.equal(2000);
    expect(backoffMs(20, 1000, 60_000, () => 0.5)).to.equal(30_000);
    expect(backoffMs(4, 1000, 60_000, () => 0)).to.equal(0);
  });
});

describe('Kafka message building', () => {
  it('builds the design message, keyed by trigger id, with routing headers', () => {
    const fired = new Date('2026-01-01T09:00:00.012Z');
    const m = eventMessage({
      id: 'e1',
      trigger_id: 't1',
      trigger_type: 'cron_scheduled',
      payload: { x: 1 },
      fired_at: fired,
      scheduled_for: new Date('2026-01-01T09:00:00Z'),
      source: 'scheduler',
      is_test_run: false,
    });
    expect(m).to.deep.equal({
      event_id: 'e1',
      trigger_id: 't1',
      type: 'cron_scheduled',
      payload: { x: 1 },
      fired_at: '2026-01-01T09:00:00.012Z',
      scheduled_for: '2026-01-01T09:00:00.000Z',
      source: 'scheduler',
      is_test_run: false,
      replay_of: null,
    });
    const k = toKafka('trigger-events', m);
    expect(k.key).to.equal('t1');
    expect(JSON.parse(k.value.toString())).to.deep.equal(m);
    expect(k.headers).to.deep.equal({ 'event-id': 'e1', 'content-type': 'application/json', 'event-source': 'scheduler' });
  });
  it('keys an unsaved test run (no trigger) by its event id', () => {
    const m = eventMessage({
      id: 'e2',
      trigger_id: null,
      trigger_type: 'webhook',
      payload: null,
      fired_at: new Date(0),
      scheduled_for: null,
      source: 'manual-test',
      is_test_run: true,
    });
    expect(toKafka('x', m).key).to.equal('e2');
  });
});
