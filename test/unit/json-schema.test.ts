import { expect } from 'chai';
import { catastrophicRegexReason, compileWebhookSchema, type SchemaValidate } from '../../src/triggers/json-schema';

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

/** `{ not: { not: … {} } }` with `levels` objects in all, i.e. nesting depth `levels`. */
function nested(levels: number): unknown {
  let s: Record<string, unknown> = {};
  for (let i = 1; i < levels; i++) s = { not: s };
  return s;
}

describe('compileWebhookSchema', () => {
  describe('compiling', () => {
    it('compiles an object schema and validates with all errors', () => {
      const validate = compiled({
        type: 'object',
        required: ['id'],
        properties: { id: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } },
      });
      expect(validate({ id: 1, tags: ['a'] })).to.deep.equal({ valid: true });
      const r = validate({ id: 'x', tags: ['a', 2, 3] });
      expect(r.valid).to.equal(false);
      if (!r.valid) {
        expect(r.errors).to.deep.equal([
          { pointer: '/id', message: 'must be integer' },
          { pointer: '/tags/1', message: 'must be string' },
          { pointer: '/tags/2', message: 'must be string' },
        ]);
      }
    });

    it('accepts boolean schemas', () => {
      expect(compiled(true)(123)).to.deep.equal({ valid: true });
      const r = compiled(false)({});
      expect(r).to.deep.equal({ valid: false, errors: [{ pointer: '/', message: 'boolean schema is false' }] });
    });

    it('rejects a schema that is not an object or boolean', () => {
      for (const s of ['{"type":"object"}', 42, null, [], undefined]) {
        expect(rejection(s)).to.equal('must be a JSON Schema (an object or a boolean)');
      }
    });

    it("reports ajv's message for an invalid schema", () => {
      expect(rejection({ type: 'nope' })).to.match(/^schema is invalid: data\/type must be equal to one of the allowed values/);
      expect(rejection({ pattern: '[' })).to.match(/Invalid regular expression/);
    });

    it('does not resolve remote $refs', () => {
      expect(rejection({ $ref: 'https://example.com/schemas/order.json' })).to.equal(
        "can't resolve reference https://example.com/schemas/order.json from id #",
      );
    });

    it('resolves local $refs', () => {
      const validate = compiled({
        definitions: { id: { type: 'string', minLength: 3 } },
        type: 'object',
        properties: { id: { $ref: '#/definitions/id' } },
      });
      expect(validate({ id: 'abc' }).valid).to.equal(true);
      expect(validate({ id: 'ab' })).to.deep.equal({
        valid: false,
        errors: [{ pointer: '/id', message: 'must NOT have fewer than 3 characters' }],
      });
    });

    it('refuses $async schemas', () => {
      expect(rejection({ $async: true, type: 'object' })).to.equal('async schemas ($async) are not supported');
    });

    it('compiles two schemas with the same $id (nothing stays cached)', () => {
      const a = compiled({ $id: 'https://example.com/s', type: 'string' });
      const b = compiled({ $id: 'https://example.com/s', type: 'integer' });
      expect(a('x').valid).to.equal(true);
      expect(b('x').valid).to.equal(false);
      expect(b(1).valid).to.equal(true);
    });

    it('checks formats (ajv-formats)', () => {
      const validate = compiled({ type: 'string', format: 'email' });
      expect(validate('a@example.com').valid).to.equal(true);
      expect(validate('nope')).to.deep.equal({ valid: false, errors: [{ pointer: '/', message: 'must match format "email"' }] });
    });

    it('uses draft 2020-12 when $schema says so, else draft-07', () => {
      // prefixItems exists only in 2020-12; draft-07 (strict: false) ignores it
      const schema = { type: 'array', prefixItems: [{ type: 'string' }] };
      expect(compiled(schema)([1]).valid).to.equal(true);
      const v2020 = compiled({ $schema: 'https://json-schema.org/draft/2020-12/schema', ...schema });
      expect(v2020([1])).to.deep.equal({ valid: false, errors: [{ pointer: '/0', message: 'must be string' }] });
      expect(v2020(['a', 1]).valid).to.equal(true);
    });

    it('rejects an unsupported $schema dialect', () => {
      expect(rejection({ $schema: 'http://json-schema.org/draft-04/schema#' })).to.match(/no schema with key or ref/);
    });
  });

  describe('error pointers', () => {
    const validate = compiled({
      type: 'object',
      required: ['order'],
      properties: {
        order: {
          type: 'object',
          required: ['id', 'a/b', 'c~d'],
          properties: { lines: { type: 'array', items: { type: 'object', required: ['sku'] } } },
          additionalProperties: true,
        },
        meta: { type: 'object', additionalProperties: false, properties: { ok: { type: 'boolean' } } },
      },
    });

    it("is '/' for the root value", () => {
      expect(validate('text')).to.deep.equal({ valid: false, errors: [{ pointer: '/', message: 'must be object' }] });
    });

    it('appends the missing property for required errors', () => {
      expect(validate({})).to.deep.equal({
        valid: false,
        errors: [{ pointer: '/order', message: "must have required property 'order'" }],
      });
    });

    it('escapes ~ and / in property names and reaches into arrays', () => {
      const r = validate({ order: { lines: [{ sku: 'a' }, {}] } });
      expect(r).to.deep.equal({
        valid: false,
        errors: [
          { pointer: '/order/id', message: "must have required property 'id'" },
          { pointer: '/order/a~1b', message: "must have required property 'a/b'" },
          { pointer: '/order/c~0d', message: "must have required property 'c~d'" },
          { pointer: '/order/lines/1/sku', message: "must have required property 'sku'" },
        ],
      });
    });

    it('points at the extra property for additionalProperties errors', () => {
      const r = validate({ order: { id: 1, 'a/b': 1, 'c~d': 1 }, meta: { ok: true, extra: 1 } });
      expect(r).to.deep.equal({
        valid: false,
        errors: [{ pointer: '/meta/extra', message: 'must NOT have additional properties' }],
      });
    });
  });

  describe('guards against hostile schemas', () => {
    it('rejects a schema over 64 KiB', () => {
      expect(rejection({ type: 'string', description: 'x'.repeat(65 * 1024) })).to.equal('schema is larger than 65536 bytes');
      expect(compileWebhookSchema({ type: 'string', description: 'x'.repeat(60 * 1024) }).ok).to.equal(true);
    });

    it('rejects nesting deeper than 32 levels and accepts 32', () => {
      expect(compileWebhookSchema(nested(32)).ok).to.equal(true);
      expect(rejection(nested(33))).to.equal('schema nests deeper than 32 levels');
    });

    it('rejects catastrophic pattern regexes anywhere in the schema', () => {
      expect(rejection({ type: 'string', pattern: '^(a+)+$' })).to.equal('pattern "^(a+)+$" rejected: nested quantifier in (a+)+');
      expect(rejection({ type: 'object', properties: { deep: { type: 'array', items: { type: 'string', pattern: '(.*)*x' } } } })).to.match(
        /nested quantifier in \(\.\*\)\*/,
      );
      expect(rejection({ type: 'string', pattern: '^(a|aa)+$' })).to.match(/overlapping alternatives in \(a\|aa\)\+/);
    });

    it('rejects catastrophic patternProperties keys', () => {
      expect(rejection({ type: 'object', patternProperties: { '^(\\w+\\s?)+$': { type: 'string' } } })).to.match(
        /^patternProperties key .* rejected: nested quantifier/,
      );
    });

    it('ignores pattern-like strings in data keywords', () => {
      expect(compileWebhookSchema({ const: { pattern: '(a+)+' }, examples: [{ pattern: '(a+)+' }] }).ok).to.equal(true);
    });

    it('accepts ordinary patterns', () => {
      const validate = compiled({ type: 'string', pattern: '^[A-Z]{2}-\\d{4}$' });
      expect(validate('AB-1234').valid).to.equal(true);
      expect(validate('ab-1234')).to.deep.equal({
        valid: false,
        errors: [{ pointer: '/', message: 'must match pattern "^[A-Z]{2}-\\d{4}$"' }],
      });
    });
  });
});

describe('catastrophicRegexReason', () => {
  const unsafe = [
    '(a+)+',
    '(.*)*',
    '(a|aa)+',
    '(a|a)*',
    '^(\\w|\\d)+$',
    '(x+x+)+y',
    '^([a-z]+\\.)*$',
    '((a+)?)+',
    '(a{1,5})+',
    '(a|)+',
    '(?:a+)+b',
    '(?<n>a*)*',
    '(a+){2,}',
    '(\\w+\\s?)+$',
    'x'.repeat(1025),
  ];
  const safe = [
    '^[a-z]+$',
    '^\\d{3}-\\d{4}$',
    '(ab|ac)+',
    '^(foo|bar)+$',
    '([a-z]|\\d)+',
    '(-?\\d)+',
    '^\\S+@\\S+$',
    '(\\d{3}-)+',
    '[(a+)+]',
    '\\(a+\\)+',
    '^(?:[A-Z]{2}\\d{2})*$',
  ];
  for (const p of unsafe) {
    it(`flags ${p.length > 40 ? `a ${p.length}-character pattern` : p}`, () => {
      expect(catastrophicRegexReason(p)).to.be.a('string');
    });
  }
  for (const p of safe) {
    it(`accepts ${p}`, () => {
      expect(catastrophicRegexReason(p)).to.equal(null);
    });
  }
});
