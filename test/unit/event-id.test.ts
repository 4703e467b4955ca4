import { expect } from 'chai';
import { createHash, randomUUID } from 'node:crypto';
import { EVENT_ID_NAMESPACE, eventIdTime, newEventId, scheduledEventId } from '../../src/triggers/event-id';

const V8_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const V7_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('event ids', () => {
  describe('scheduledEventId', () => {
    const triggerId = '7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b';
    const at = new Date('2030-01-01T09:00:00.000Z');

    it('is the scheduled millisecond, then SHA-1 bits of "triggerId|ISO instant" in the project namespace', () => {
      // Python: h = sha1(UUID('9adebaab-…').bytes + b'7f1c2a9e-…|2030-01-01T09:00:00.000Z').digest()[:16];
      // h[0:6] = ms.to_bytes(6, 'big'); version nibble 8; variant bits 10
      expect(scheduledEventId(triggerId, at)).to.equal('01b8dcb4-1680-83c6-b7bd-d6b287863eff');
    });

    it('hashes the name as UTF-8', () => {
      expect(scheduledEventId('trigger-ü', at)).to.equal('01b8dcb4-1680-84ae-8b92-0434c5fd8ef5');
    });

    it('is deterministic: the same occurrence always gets the same id', () => {
      const a = scheduledEventId(triggerId, new Date('2030-01-01T09:00:00Z'));
      const b = scheduledEventId(triggerId, new Date(Date.UTC(2030, 0, 1, 9)));
      expect(a).to.equal(b);
    });

    it('is well formed: version nibble 8 and variant bits 10xx, and carries its instant', () => {
      for (let i = 0; i < 200; i++) {
        const when = 1_900_000_000_000 + i * 1000;
        const id = scheduledEventId(`trigger-${i}`, new Date(when));
        expect(id).to.match(V8_RE);
        expect(eventIdTime(id)).to.equal(when);
      }
    });

    it('sorts by scheduled time whatever the trigger', () => {
      const ids = Array.from({ length: 500 }, (_, i) => scheduledEventId(`trigger-${(i * 7919) % 500}`, new Date(1_900_000_000_000 + i)));
      expect([...ids].sort()).to.deep.equal(ids);
    });

    it('differs for another instant or another trigger', () => {
      const base = scheduledEventId(triggerId, at);
      expect(scheduledEventId(triggerId, new Date(at.getTime() + 1000))).to.not.equal(base);
      expect(scheduledEventId(triggerId, new Date(at.getTime() + 1))).to.not.equal(base);
      expect(scheduledEventId('another-trigger', at)).to.not.equal(base);
    });

    it('equals the RFC 9562 construction from the SHA-1 digest, for any trigger id and instant, in any order', () => {
      // The reference: the digest's first 16 bytes, the time written over bytes 0–5, version and variant set.
      const reference = (trigger: string, when: Date): string => {
        const ns = Buffer.from(EVENT_ID_NAMESPACE.replace(/-/g, ''), 'hex');
        const b = createHash('sha1').update(ns).update(`${trigger}|${when.toISOString()}`, 'utf8').digest().subarray(0, 16);
        b.writeUIntBE(when.getTime(), 0, 6);
        b[6] = (b[6]! & 0x0f) | 0x80;
        b[8] = (b[8]! & 0x3f) | 0x80;
        const hex = b.toString('hex');
        return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
      };
      // Instants repeat and alternate (a batch shares one; the next batch another), and trigger ids include
      // non-ASCII text and one longer than any buffer kept between calls.
      const triggers = [
        triggerId,
        'trigger-ü',
        '触发器',
        'x'.repeat(700),
        '\ud800 lone surrogate',
        ...Array.from({ length: 50 }, () => randomUUID()),
      ];
      const instants = [0, 1, 999, 1_700_000_000_123, 1_700_000_000_124, 2 ** 48 - 1].map((ms) => new Date(ms));
      for (let i = 0; i < 2000; i++) {
        const trigger = triggers[(i * 7) % triggers.length]!;
        const when = instants[Math.floor(i / 3) % instants.length]!;
        expect(scheduledEventId(trigger, when), `${trigger} at ${when.getTime()}`).to.equal(reference(trigger, when));
      }
    });

    it('refuses an instant a UUID cannot carry', () => {
      expect(() => scheduledEventId(triggerId, new Date(-1))).to.throw(RangeError);
    });
  });

  describe('newEventId', () => {
    it('returns distinct version 7 UUIDs carrying the current millisecond', () => {
      const before = Date.now();
      const ids = new Set(Array.from({ length: 1000 }, () => newEventId()));
      const after = Date.now();
      expect(ids.size).to.equal(1000);
      for (const id of ids) {
        expect(id).to.match(V7_RE);
        expect(eventIdTime(id)).to.be.within(before, after);
      }
    });

    it('sorts by time across milliseconds', () => {
      const ids = Array.from({ length: 300 }, (_, i) => newEventId(1_800_000_000_000 + i));
      expect([...ids].sort()).to.deep.equal(ids);
    });

    it('has no time to read in an id of the old formats', () => {
      expect(eventIdTime('2ed6657d-e927-568b-95e1-2665a8aea6a2')).to.equal(null);
      expect(eventIdTime('3b241101-e2bb-4255-8caf-4136c566a962')).to.equal(null);
    });
  });
});
