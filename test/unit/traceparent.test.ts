import { expect } from 'chai';
import {
  formatTraceparent,
  parseTraceparent,
  RandomIds,
  traceIdForEvent,
  traceIdOf,
  TRACEPARENT_LENGTH,
} from '../../src/tracing/traceparent';
import { Tracing, SpanKind } from '../../src/tracing/tracing';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${SPAN}-01`;

describe('traceparent (W3C Trace Context)', () => {
  describe('parseTraceparent', () => {
    it('reads a version 00 header into trace id, span id and the sampled flag', () => {
      expect(parseTraceparent(VALID)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: '01' });
      expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: '00' });
    });

    it('keeps only the sampled bit of the flags', () => {
      expect(parseTraceparent(`00-${TRACE}-${SPAN}-03`)!.flags).to.equal('01');
      expect(parseTraceparent(`00-${TRACE}-${SPAN}-02`)!.flags).to.equal('00');
    });

    it('ignores white space around the value', () => {
      expect(parseTraceparent(`  ${VALID}\t`)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: '01' });
    });

    it('reads a later version by its first 55 characters when a dash follows them', () => {
      expect(parseTraceparent(`cc-${TRACE}-${SPAN}-01-what-the-future-adds`)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: '01' });
      expect(parseTraceparent(`01-${TRACE}-${SPAN}-01`)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: '01' });
    });

    const invalid: Array<[string, string | null | undefined]> = [
      ['nothing', undefined],
      ['null', null],
      ['an empty string', ''],
      ['garbage', 'not-a-traceparent'],
      ['version ff', `ff-${TRACE}-${SPAN}-01`],
      ['version 00 with trailing data', `${VALID}-extra`],
      ['a later version with trailing data not after a dash', `01-${TRACE}-${SPAN}-01x`],
      ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
      ['an all-zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
      ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
      ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
      ['a long span id', `00-${TRACE}-${SPAN}0-01`],
      ['a non-hex flag', `00-${TRACE}-${SPAN}-0g`],
      ['a non-hex version', `0x-${TRACE}-${SPAN}-01`],
      ['wrong separators', `00_${TRACE}_${SPAN}_01`],
      ['two headers joined by a proxy', `${VALID}, 00-${'a'.repeat(32)}-${SPAN}-01`],
    ];
    for (const [what, value] of invalid) {
      it(`answers null for ${what}`, () => {
        expect(parseTraceparent(value)).to.equal(null);
      });
    }
  });

  describe('formatting and ids', () => {
    it('formats a context as a version 00 header that parses back to it', () => {
      const text = formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: '01' });
      expect(text).to.equal(VALID);
      expect(text).to.have.length(TRACEPARENT_LENGTH);
      expect(parseTraceparent(text)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: '01' });
    });

    it('gives the trace id of a stored traceparent, and null for none', () => {
      expect(traceIdOf(VALID)).to.equal(TRACE);
      expect(traceIdOf(null)).to.equal(null);
      expect(traceIdOf(undefined)).to.equal(null);
    });

    it("uses an event id's hex digits as the trace id of a trace the platform starts", () => {
      expect(traceIdForEvent('0193A1B2-C3D4-7E5F-8a9b-0c1d2e3f4a5b')).to.equal('0193a1b2c3d47e5f8a9b0c1d2e3f4a5b');
    });

    it('draws distinct, valid random ids across refills of its pool', () => {
      const ids = new RandomIds();
      const traces = new Set<string>();
      const spans = new Set<string>();
      for (let i = 0; i < 2000; i++) {
        traces.add(ids.traceId());
        spans.add(ids.spanId());
      }
      expect(traces.size).to.equal(2000);
      expect(spans.size).to.equal(2000);
      for (const t of traces) expect(t).to.match(/^[0-9a-f]{32}$/);
      for (const s of spans) expect(s).to.match(/^[0-9a-f]{16}$/);
    });
  });

  describe('Tracing without an exporter (no spans, traceparents only)', () => {
    const tracing = new Tracing();

    it('continues a valid parent: same trace id and flags, a new span id, no span object', () => {
      const b = tracing.child('ingest', SpanKind.SERVER, `00-${TRACE}-${SPAN}-00`);
      expect(b.span).to.equal(null);
      const c = parseTraceparent(b.traceparent)!;
      expect(c.traceId).to.equal(TRACE);
      expect(c.flags).to.equal('00');
      expect(c.spanId).to.not.equal(SPAN);
    });

    it('starts a new sampled trace for an invalid or missing parent', () => {
      for (const parent of ['nonsense', undefined, `00-${'0'.repeat(32)}-${SPAN}-01`]) {
        const c = parseTraceparent(tracing.child('ingest', SpanKind.SERVER, parent).traceparent)!;
        expect(c, String(parent)).to.not.equal(null);
        expect(c.traceId).to.not.equal(TRACE);
        expect(c.flags).to.equal('01');
      }
    });

    it("starts an own event's trace with the event id as trace id", () => {
      const id = '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
      const b = tracing.own('fire', id);
      expect(b.span).to.equal(null);
      expect(parseTraceparent(b.traceparent)!.traceId).to.equal('0193a1b2c3d47e5f8a9b0c1d2e3f4a5b');
    });
  });
});
