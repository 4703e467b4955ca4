import { expect } from 'chai';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { OPENAPI_PATH } from '../../src/api/app';
import { testApp } from '../helpers/app';
import { createTestEnv, REPO_ROOT, type TestEnv } from '../helpers/env';
import { GENERATOR, run } from '../helpers/run';

/**
 * `npm run test:clients`: the Python client openapi-generator's `python-pydantic-v1` generator makes from
 * openapi.yaml, generated fresh into build/clients/python and used as generated (on PYTHONPATH), runs the
 * whole API flow (test/clients/python/flow.py) against the real app and database. It needs pydantic 1,
 * python-dateutil and urllib3 (Debian: python3-pydantic python3-dateutil python3-urllib3) and aenum:
 * PYTHON (default /usr/bin/python3) and AENUM_PATH (a directory or wheel put on PYTHONPATH) say where.
 */
const OUT = path.join(REPO_ROOT, 'build', 'clients', 'python');
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const AENUM_PATH = process.env.AENUM_PATH ?? '/opt/pypi/files/aenum-3.1.17-py3-none-any.whl';

describe('the generated Python client runs the whole flow unmodified', function () {
  this.timeout(300_000);
  let t: TestEnv;
  let server: ReturnType<ReturnType<typeof testApp>['listen']>;

  before(async () => {
    t = await createTestEnv('client python');
    server = testApp(t).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
  });
  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await t?.cleanup();
  });

  it('python-pydantic-v1', async () => {
    fs.rmSync(OUT, { recursive: true, force: true });
    const gen = await run('node', [
      GENERATOR,
      'generate',
      '-g',
      'python-pydantic-v1',
      '-i',
      OPENAPI_PATH,
      '-o',
      OUT,
      '--additional-properties=packageName=etp_client',
    ]);
    expect(gen.code, gen.output).to.equal(0);
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    process.env.PYTHONPATH = [OUT, AENUM_PATH].join(path.delimiter);
    try {
      const flow = await run(PYTHON, [path.join(REPO_ROOT, 'test', 'clients', 'python', 'flow.py'), baseUrl, 'flow-python']);
      expect(flow.code, flow.output).to.equal(0);
      expect(flow.output).to.include('python flow ok');
    } finally {
      delete process.env.PYTHONPATH;
    }
  });
});
