import { expect } from 'chai';
import { EVENT_ID_NAMESPACE, newEventId, scheduledEventId, uuidV5 } from '../../src/triggers/event-id';

const V5_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const V4_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('event ids', () => {
  describe('uuidV5', () => {
    it('matches the well-known RFC 4122 vector for www.example.com in the DNS namespace', () => {
      // Python: uuid.uuid5(uuid.NAMESPACE_DNS, 'www.example.com')
      expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).to.equal('2ed6657d-e927-568b-95e1-2665a8aea6a2');
    });

    it('rejects a namespace that is not a UUID', () => {
      expect(() => uuidV5('x', 'not-a-uuid')).to.throw(TypeError);
    });
  });

  describe('scheduledEventId', () => {
    const triggerId = '7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b';
    const at = new Date('2030-01-01T09:00:00.000Z');

    it('is the v5 UUID of "triggerId|ISO instant" in the project namespace', () => {
      // Python: uuid.uuid5(UUID('9adebaab-…'), '7f1c2a9e-…|2030-01-01T09:00:00.000Z')
      expect(scheduledEventId(triggerId, at)).to.equal('8047797a-9154-53c6-b7bd-d6b287863eff');
      expect(scheduledEventId(triggerId, at)).to.equal(uuidV5(`${triggerId}|${at.toISOString()}`, EVENT_ID_NAMESPACE));
    });

    it('hashes the name as UTF-8', () => {
      // Python: uuid.uuid5(ns, 'trigger-ü|2030-01-01T09:00:00.000Z')
      expect(scheduledEventId('trigger-ü', at)).to.equal('5dee778e-7671-54ae-8b92-0434c5fd8ef5');
    });

    it('is deterministic: the same occurrence always gets the same id', () => {
      const a = scheduledEventId(triggerId, new Date('2030-01-01T09:00:00Z'));
      const b = scheduledEventId(triggerId, new Date(Date.UTC(2030, 0, 1, 9)));
      expect(a).to.equal(b);
    });

    it('is well formed: version nibble 5 and variant bits 10xx', () => {
      for (let i = 0; i < 200; i++) {
        const id = scheduledEventId(`trigger-${i}`, new Date(1_900_000_000_000 + i * 1000));
        expect(id).to.match(V5_RE);
        expect(id[14]).to.equal('5');
        expect(parseInt(id[19]!, 16) & 0b1100).to.equal(0b1000);
      }
    });

    it('differs for another instant or another trigger', () => {
      const base = scheduledEventId(triggerId, at);
      expect(scheduledEventId(triggerId, new Date(at.getTime() + 1000))).to.not.equal(base);
      expect(scheduledEventId(triggerId, new Date(at.getTime() + 1))).to.not.equal(base);
      expect(scheduledEventId('another-trigger', at)).to.not.equal(base);
    });
  });

  describe('newEventId', () => {
    it('returns distinct random v4 UUIDs', () => {
      const ids = new Set(Array.from({ length: 1000 }, () => newEventId()));
      expect(ids.size).to.equal(1000);
      for (const id of ids) expect(id).to.match(V4_RE);
    });
  });
});
