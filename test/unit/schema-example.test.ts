import { expect } from 'chai';
import { exampleFromSchema } from '../../src/dashboard/example';

describe("a test run's starting payload from a webhook schema", () => {
  it("takes the schema's own examples[0] first", () => {
    expect(exampleFromSchema({ type: 'object', examples: [{ a: 1 }, { a: 2 }], properties: { a: { default: 9 } } })).to.deep.equal({
      a: 1,
    });
  });

  it('fills properties from their example, default, const or enum, and a typed blank for each required one', () => {
    const schema = {
      type: 'object',
      required: ['id', 'amount', 'paid', 'lines', 'customer', 'note'],
      properties: {
        id: { type: 'string' },
        amount: { type: 'integer', minimum: 1 },
        paid: { type: 'boolean' },
        lines: { type: 'array', items: { type: 'string' } },
        customer: { type: 'object', required: ['email'], properties: { email: { type: 'string', examples: ['a@example.com'] } } },
        currency: { type: 'string', default: 'EUR' },
        kind: { const: 'order' },
        channel: { enum: ['web', 'shop'] },
        optional: { type: 'string' },
      },
    };
    expect(exampleFromSchema(schema)).to.deep.equal({
      id: '',
      amount: 1,
      paid: false,
      lines: [],
      customer: { email: 'a@example.com' },
      currency: 'EUR',
      kind: 'order',
      channel: 'web',
      note: null,
    });
  });

  it('starts from an empty object for a schema that says nothing (true, {}, or not an object)', () => {
    expect(exampleFromSchema(true)).to.deep.equal({});
    expect(exampleFromSchema({})).to.deep.equal({});
    expect(exampleFromSchema({ type: 'object' })).to.deep.equal({});
  });

  it('stops at a bounded depth on a deeply nested schema', () => {
    let s: Record<string, unknown> = { type: 'string', default: 'leaf' };
    for (let i = 0; i < 50; i++) s = { type: 'object', required: ['n'], properties: { n: s } };
    let v = exampleFromSchema(s) as Record<string, unknown>;
    let depth = 0;
    while (v && typeof v === 'object' && 'n' in v) {
      v = v.n as Record<string, unknown>;
      depth++;
    }
    expect(depth).to.be.below(20);
  });
});
