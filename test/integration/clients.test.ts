import { expect } from 'chai';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { OPENAPI_PATH } from '../../src/api/app';
import { testApp } from '../helpers/app';
import { createTestEnv, REPO_ROOT, type TestEnv } from '../helpers/env';
import { GENERATOR, run } from '../helpers/run';

/**
 * Clients generated from openapi.yaml, used unmodified, run the whole API flow against the real app, database
 * and all (test/clients/*.flow.ts): openapi-generator's typescript-fetch, and openapi-typescript's types with
 * openapi-fetch. Generated fresh into build/clients/ (gitignored) on every run; the flows are type-checked
 * against them (strict) before they run.
 */
const OUT = path.join(REPO_ROOT, 'build', 'clients');

type Flow = { run: (baseUrl: string, tag: string) => Promise<void> };
/** A flow module, loaded by a computed path: the root type check must not follow it into build/ (absent before this test). */
const loadFlow = (name: string): Flow => require(path.join(REPO_ROOT, 'test', 'clients', `${name}.flow`)) as Flow;

async function generate(): Promise<void> {
  fs.rmSync(OUT, { recursive: true, force: true });
  const [tsFetch, openapiTs] = await Promise.all([
    run('node', [GENERATOR, 'generate', '-g', 'typescript-fetch', '-i', OPENAPI_PATH, '-o', path.join(OUT, 'typescript-fetch')]),
    run('node', [
      path.join(REPO_ROOT, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'),
      OPENAPI_PATH,
      '-o',
      path.join(OUT, 'openapi-typescript', 'schema.d.ts'),
    ]),
  ]);
  expect(tsFetch.code, tsFetch.output).to.equal(0);
  expect(openapiTs.code, openapiTs.output).to.equal(0);
  const tsc = await run('node', [path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'test/clients/tsconfig.json']);
  expect(tsc.code, tsc.output).to.equal(0);
}

describe('generated clients run the whole flow unmodified', function () {
  // The first run fetches the generator jar from Maven Central.
  this.timeout(300_000);
  const envs: TestEnv[] = [];

  before(generate);
  after(async () => {
    for (const t of envs) await t.cleanup();
  });

  /** A fresh database and app per client, so each flow's counts are its own. */
  async function server(label: string): Promise<string> {
    const t = await createTestEnv(label);
    envs.push(t);
    const listening = testApp(t).listen(0, '127.0.0.1');
    t.defer(() => new Promise((resolve) => listening.close(() => resolve())));
    await new Promise((resolve) => listening.once('listening', resolve));
    return `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
  }

  it('typescript-fetch (openapi-generator)', async function () {
    this.timeout(60_000);
    await loadFlow('typescript-fetch').run(await server('client tsfetch'), 'flow-typescript-fetch');
  });

  it('openapi-fetch with openapi-typescript types', async function () {
    this.timeout(60_000);
    await loadFlow('openapi-fetch').run(await server('client openapifetch'), 'flow-openapi-fetch');
  });
});
