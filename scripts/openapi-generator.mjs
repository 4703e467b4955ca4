#!/usr/bin/env node
// Runs openapi-generator-cli from its Maven Central jar, fetched once and cached like the Kafka jars
// (scripts/services.mjs): `mvn dependency:copy` into ~/.cache/event-trigger-platform/.
//
//   node scripts/openapi-generator.mjs <openapi-generator arguments…>   e.g. validate -i openapi.yaml
//   node scripts/openapi-generator.mjs --jar                           prints the jar's path (fetching it)
//
// Plain Node ESM with built-ins only. Environment: EVENT_TRIGGER_CACHE_DIR (default ~/.cache/event-trigger-platform).

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const GENERATOR_VERSION = '7.25.0';
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';
const CACHE_ROOT =
  process.env.EVENT_TRIGGER_CACHE_DIR ||
  path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'event-trigger-platform');
const HOME = path.join(CACHE_ROOT, `openapi-generator-${GENERATOR_VERSION}`);
const JAR = path.join(HOME, `openapi-generator-cli-${GENERATOR_VERSION}.jar`);

/** The cached jar's path; fetches it from Maven Central first when missing (a half download never counts). */
export function generatorJar() {
  if (fs.existsSync(JAR)) return JAR;
  fs.mkdirSync(HOME, { recursive: true });
  // A download directory of this process's own: worktrees sharing the cache may fetch at the same time.
  const tmp = path.join(HOME, `download-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  console.error(`openapi-generator  fetching openapi-generator-cli ${GENERATOR_VERSION} from Maven Central into ${HOME} …`);
  const r = spawnSync(
    'mvn',
    [
      '-q',
      '-B',
      `${DEPENDENCY_PLUGIN}:copy`,
      `-Dartifact=org.openapitools:openapi-generator-cli:${GENERATOR_VERSION}:jar`,
      `-DoutputDirectory=${tmp}`,
    ],
    { cwd: HOME, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  const got = path.join(tmp, path.basename(JAR));
  if (r.error || r.status !== 0 || !fs.existsSync(got)) {
    const out = `${r.stdout || ''}${r.stderr || ''}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`mvn could not fetch openapi-generator-cli (exit ${r.status ?? r.error?.message}):\n${out}`);
  }
  fs.renameSync(got, JAR); // atomic: the jar exists only once complete
  fs.rmSync(tmp, { recursive: true, force: true });
  return JAR;
}

/** Runs the generator with `args`; returns { status, output }. */
export function runGenerator(args, options = {}) {
  const r = spawnSync('java', ['-jar', generatorJar(), ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    ...options,
  });
  return { status: r.status ?? 1, output: `${r.stdout || ''}${r.stderr || ''}` };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  try {
    if (args[0] === '--jar') {
      console.log(generatorJar());
    } else {
      const r = spawnSync('java', ['-jar', generatorJar(), ...args], { stdio: 'inherit' });
      process.exit(r.status ?? 1);
    }
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
}
