import { expect } from 'chai';
import { chunksBySize, ROW_BASE_BYTES, STATEMENT_MAX_BYTES, textBytes } from '../../src/db/packets';
import { insertEventsStatements, type EventInsert } from '../../src/db/events';

describe('statements cut by size (db/packets.ts)', () => {
  it('cuts items into runs within the bound, in order, and puts an item larger than the bound alone', () => {
    expect(chunksBySize([3, 3, 3, 3], (n) => n, 7)).to.deep.equal([
      { items: [3, 3], bytes: 6 },
      { items: [3, 3], bytes: 6 },
    ]);
    expect(chunksBySize([2, 10, 2, 2], (n) => n, 5)).to.deep.equal([
      { items: [2], bytes: 2 },
      { items: [10], bytes: 10 },
      { items: [2, 2], bytes: 4 },
    ]);
    expect(chunksBySize([], (n: number) => n, 5)).to.deep.equal([]);
  });

  it("counts a string's UTF-8 bytes, doubled for escaping", () => {
    expect(textBytes('abc')).to.equal(8);
    expect(textBytes('é')).to.equal(6);
    expect(textBytes(null)).to.equal(4);
  });

  const event = (i: number, text: string): EventInsert => ({
    id: `00000000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    trigger_id: null,
    trigger_type: 'webhook',
    source: 'webhook',
    is_test_run: false,
    payload: { text },
    scheduled_for: null,
    fired_at: new Date(0),
  });

  it('logs small events in one INSERT, and large ones in several, each within the bound, every row once in order', () => {
    const now = new Date(0);
    const small = Array.from({ length: 500 }, (_, i) => event(i, 'x'));
    expect(insertEventsStatements(small, now)).to.have.length(1);

    const large = Array.from({ length: 20 }, (_, i) => event(i, 'y'.repeat(900_000)));
    const statements = insertEventsStatements(large, now);
    expect(statements.length).to.be.greaterThan(1);
    expect(statements.reduce((n, s) => n + s.rows, 0)).to.equal(20);
    const ids = statements.flatMap((s) => s.values.filter((v, i) => i % 15 === 0));
    expect(ids).to.deep.equal(large.map((e) => e.id));
    for (const s of statements) {
      expect(s.values).to.have.length(s.rows * 15);
      if (s.rows > 1) expect(s.bytes).to.be.at.most(STATEMENT_MAX_BYTES);
      expect(s.bytes).to.be.at.least(s.rows * ROW_BASE_BYTES);
    }
  });
});
