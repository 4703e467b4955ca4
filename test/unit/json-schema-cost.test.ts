import { expect } from 'chai';
import { compileWebhookSchema, MAX_REPORTED_ERRORS, VALIDATE_TIMEOUT_MS, type SchemaValidate } from '../../src/triggers/json-schema';

function compiled(schema: unknown): SchemaValidate {
  const r = compileWebhookSchema(schema);
  if (!r.ok) throw new Error(`expected the schema to compile: ${r.message}`);
  return r.validate;
}

function rejection(schema: unknown): string {
  const r = compileWebhookSchema(schema);
  if (r.ok) throw new Error('expected the schema to be rejected');
  return r.message;
}

describe('compileWebhookSchema: bounded cost', () => {
  it('matches patterns with RE2, in linear time on long strings', () => {
    const validate = compiled({ type: 'string', pattern: '^\\d+\\d+\\d+\\d+x$' });
    const started = Date.now();
    expect(validate('1'.repeat(200_000)).valid).to.equal(false);
    expect(Date.now() - started).to.be.below(1000);
    expect(validate('1234x').valid).to.equal(true);
  });

  it('keeps distinct patterns apart (ajv caches compiled patterns by their text)', () => {
    const validate = compiled({
      properties: { a: { pattern: '^a+$' }, b: { pattern: '^b+$' } },
      patternProperties: { '^x-': { type: 'string' } },
    });
    expect(validate({ a: 'aaa', b: 'bbb', 'x-1': 's' }).valid).to.equal(true);
    expect(validate({ a: 'bbb' }).valid).to.equal(false);
    expect(validate({ 'x-1': 1 }).valid).to.equal(false);
  });

  it('refuses patterns RE2 cannot run (lookaround, backreferences) when the schema is saved', () => {
    expect(rejection({ pattern: '(?=a)a' })).to.match(/not supported.*RE2/);
    expect(rejection({ pattern: '(a)\\1' })).to.match(/not supported/);
  });

  it('refuses uniqueItems over items that need pairwise comparison, unless maxItems is small', () => {
    expect(rejection({ type: 'array', uniqueItems: true })).to.match(/uniqueItems/);
    expect(rejection({ type: 'array', items: { type: 'object' }, uniqueItems: true })).to.match(/uniqueItems/);
    expect(compiled({ type: 'array', items: { type: ['string', 'integer'] }, uniqueItems: true })(['a', 1, 'a']).valid).to.equal(false);
    expect(compiled({ type: 'array', maxItems: 100, uniqueItems: true })([{}, {}]).valid).to.equal(false);
  });

  it(`stops a validation that would take more than ${VALIDATE_TIMEOUT_MS} ms and says why`, () => {
    const defs: Record<string, unknown> = {};
    for (let i = 0; i < 26; i++) defs[`d${i}`] = { anyOf: [{ $ref: `#/definitions/d${i + 1}` }, { $ref: `#/definitions/d${i + 1}` }] };
    defs.d26 = { const: 'x' };
    const validate = compiled({ definitions: defs, $ref: '#/definitions/d0' });
    const started = Date.now();
    const r = validate('y');
    expect(Date.now() - started).to.be.below(VALIDATE_TIMEOUT_MS + 500);
    expect(r).to.deep.include({ valid: false });
    if (!r.valid) expect(r.errors[0]!.message).to.match(/too costly.*over 500 ms/);
    // The validator stays usable.
    expect(compiled({ definitions: { a: { type: 'string' } }, $ref: '#/definitions/a' })('s').valid).to.equal(true);
  });

  it('stops a schema that recurses on the same value instead of overflowing the stack', () => {
    const r = compiled({ $ref: '#' })({});
    expect(r.valid).to.equal(false);
    if (!r.valid) expect(r.errors[0]!.message).to.match(/unbounded recursion/);
  });

  it(`reports at most ${MAX_REPORTED_ERRORS} errors`, () => {
    const r = compiled({ items: { type: 'string' } })(Array.from({ length: 1000 }, (_, i) => i));
    expect(r.valid).to.equal(false);
    if (!r.valid) expect(r.errors).to.have.length(MAX_REPORTED_ERRORS);
  });
});
