import { expect } from 'chai';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { OPENAPI_PATH } from '../../src/api/app';
import { testApp } from '../helpers/app';
import { createTestEnv, REPO_ROOT, type TestEnv } from '../helpers/env';
import { GENERATOR, run } from '../helpers/run';

/**
 * `npm run test:clients`: the Java client openapi-generator's `java` generator (native library) makes from
 * openapi.yaml, generated fresh into build/clients/java, built with Maven as generated, runs the whole API
 * flow (test/clients/java/Flow.java) against the real app and database. Not in `npm test`: the first Maven
 * build downloads the client's dependencies and takes about a minute.
 */
const OUT = path.join(REPO_ROOT, 'build', 'clients', 'java');

describe('the generated Java client runs the whole flow unmodified', function () {
  this.timeout(600_000);
  let t: TestEnv;
  let server: ReturnType<ReturnType<typeof testApp>['listen']>;

  before(async () => {
    t = await createTestEnv('client java');
    server = testApp(t).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
  });
  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await t?.cleanup();
  });

  it('java (native library), built with Maven', async () => {
    fs.rmSync(OUT, { recursive: true, force: true });
    const packages = 'invokerPackage=local.etp.client,apiPackage=local.etp.client.api,modelPackage=local.etp.client.model';
    const gen = await run('node', [
      GENERATOR,
      'generate',
      '-g',
      'java',
      '--library',
      'native',
      '-i',
      OPENAPI_PATH,
      '-o',
      OUT,
      `--additional-properties=groupId=local.etp,artifactId=etp-client,artifactVersion=0.1.0,${packages}`,
    ]);
    expect(gen.code, gen.output).to.equal(0);
    const build = await run(
      'mvn',
      ['-q', '-B', '-DskipTests', '-Dmaven.javadoc.skip=true', 'package', 'dependency:build-classpath', '-Dmdep.outputFile=cp.txt'],
      OUT,
    );
    expect(build.code, build.output).to.equal(0);
    const classpath = [path.join(OUT, 'target', 'etp-client-0.1.0.jar'), fs.readFileSync(path.join(OUT, 'cp.txt'), 'utf8').trim()].join(
      path.delimiter,
    );
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const flow = await run('java', ['-cp', classpath, path.join(REPO_ROOT, 'test', 'clients', 'java', 'Flow.java'), baseUrl, 'flow-java']);
    expect(flow.code, flow.output).to.equal(0);
    expect(flow.output).to.include('java flow ok');
  });
});
