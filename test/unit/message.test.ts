import { expect } from 'chai';
import { eventHeadersJson, eventMessage, eventMessageJson, MessageInstants, toKafka, type EventFacts } from '../../src/kafka/message';

describe('Kafka message text built around a serialised payload', () => {
  const base: EventFacts = {
    id: '0190d3a4-5b6c-7d8e-9f01-23456789abcd',
    trigger_id: '0190d3a4-0000-7000-8000-000000000001',
    trigger_type: 'webhook',
    payload: null,
    fired_at: new Date('2026-12-04T10:11:12.345Z'),
    scheduled_for: null,
    source: 'webhook',
    is_test_run: false,
  };
  const payloads: unknown[] = [
    { order_id: 'ord_1', amount: 129.95, items: [{ sku: 'A', qty: 2 }], nested: { a: [1, null, true] } },
    'a "quoted" string with \u2028 and \ud83d\ude00',
    42,
    null,
    [],
    { '': 'empty key', 'k\n': 'newline key' },
  ];

  it('equals JSON.stringify(eventMessage(…)) for every kind of payload', () => {
    for (const payload of payloads) {
      const e = { ...base, payload };
      expect(eventMessageJson(e, JSON.stringify(payload))).to.equal(JSON.stringify(eventMessage(e)));
    }
  });

  it('equals it too with a schedule time, a test run, a replay and no trigger', () => {
    const e: EventFacts = {
      ...base,
      trigger_id: null,
      scheduled_for: new Date('2026-12-05T00:00:00.000Z'),
      is_test_run: true,
      source: 'replay',
      replay_of: '0190d3a4-5b6c-7d8e-9f01-000000000000',
      payload: { x: 1 },
    };
    expect(eventMessageJson(e, JSON.stringify(e.payload))).to.equal(JSON.stringify(eventMessage(e)));
  });

  it('writes each message its own instants, whether they repeat or change from one message to the next', () => {
    const times = ['2026-12-04T10:11:12.345Z', '2026-12-04T10:11:12.345Z', '2026-12-04T10:11:12.346Z', '2026-12-04T10:11:12.345Z'];
    const instants = new MessageInstants();
    for (const [i, fired] of times.entries()) {
      const scheduled = times[times.length - 1 - i]!;
      // A new Date each time: an instant is remembered by its value, not by its object.
      const e = { ...base, fired_at: new Date(fired), scheduled_for: new Date(scheduled) };
      const m = eventMessage(e, instants);
      expect([m.fired_at, m.scheduled_for], `message ${i}`).to.deep.equal([fired, scheduled]);
      expect(JSON.stringify(m), `message ${i}, as without remembered instants`).to.equal(JSON.stringify(eventMessage(e)));
    }
    expect(() => eventMessage({ ...base, fired_at: new Date(NaN) }, instants), 'an invalid date').to.throw(RangeError);
  });

  it('gives the headers toKafka sets, as JSON', () => {
    const m = toKafka('t', eventMessage(base));
    expect(eventHeadersJson(base.id, 'webhook')).to.equal(JSON.stringify(m.headers));
  });

  it('carries the traceparent as a header, not in the value, and keeps it on a copy made by spreading', () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const msg = eventMessage({ ...base, trace_parent: tp });
    const m = toKafka('t', msg);
    expect(m.headers.traceparent).to.equal(tp);
    expect(JSON.parse(m.value.toString())).to.not.have.property('traceparent');
    expect(m.value.toString()).to.equal(toKafka('t', eventMessage(base)).value.toString());
    expect(eventHeadersJson(base.id, 'webhook', tp)).to.equal(JSON.stringify(m.headers));
    const retry = toKafka('t.retry', { ...msg, delivery_attempt: 2 });
    expect(retry.headers.traceparent).to.equal(tp);
  });
});
