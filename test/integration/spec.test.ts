import { expect } from 'chai';
import { createConfig, lint } from '@redocly/openapi-core';
import { Validator } from '@seriousme/openapi-schema-validator';
import { OPENAPI_PATH } from '../../src/api/app';
import { GENERATOR, run } from '../helpers/run';

describe('openapi.yaml passes the validators generated clients depend on', function () {
  // The first run fetches the generator jar from Maven Central.
  this.timeout(300_000);

  it('passes openapi-generator validate (no --skip-validate-spec)', async () => {
    const r = await run('node', [GENERATOR, 'validate', '-i', OPENAPI_PATH]);
    expect(r.code, r.output).to.equal(0);
    expect(r.output).to.include('No validation issues detected');
  });

  it("passes Redocly's recommended lint with zero errors", async () => {
    const problems = await lint({ ref: OPENAPI_PATH, config: await createConfig({ extends: ['recommended'] }) });
    const errors = problems
      .filter((p) => p.severity === 'error')
      .map((p) => `${p.ruleId}: ${p.message} at ${p.location.map((l) => l.pointer).join(', ')}`);
    expect(errors).to.deep.equal([]);
  });

  it('is a valid OpenAPI 3.1 document under the strict schema validator', async () => {
    const validator = new Validator();
    const result = await validator.validate(OPENAPI_PATH);
    expect(validator.version).to.equal('3.1');
    expect(result.valid, JSON.stringify(result.errors, null, 2)).to.equal(true);
  });
});
