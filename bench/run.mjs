#!/usr/bin/env node
// Runs the benchmarks: `npm run bench` runs every bench/*.bench.ts, `npm run bench -- relay` one of them,
// `npm run bench -- relay --quick` passes the flags through. `npm run bench -- --list` lists them.
// Plain Node ESM with built-ins only. The package.json script builds first (relay processes run dist/).
// Each benchmark runs as `node -r ts-node/register/transpile-only bench/<name>.bench.ts <flags>`, one after
// the other (they measure the machine, so never two at once); results go to bench/results/.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);

const available = fs
  .readdirSync(BENCH_DIR)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length))
  .sort();

const argv = process.argv.slice(2);
const names = argv.filter((a) => !a.startsWith('-'));
const flags = argv.filter((a) => a.startsWith('-'));

if (flags.includes('--list')) {
  process.stdout.write(`${available.join('\n')}\n`);
  process.exit(0);
}
if (available.length === 0) {
  process.stderr.write('no benchmarks in bench/*.bench.ts\n');
  process.exit(2);
}
// A value of a "--flag value" pair is not a benchmark name: only names that exist are taken as names.
const unknown = names.filter((n) => !available.includes(n) && !isFlagValue(n));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; available: ${available.join(', ')}\n`);
  process.exit(2);
}
const selected = names.filter((n) => available.includes(n));
const toRun = selected.length > 0 ? selected : available;
const passThrough = argv.filter((a) => !toRun.includes(a) || a.startsWith('-'));

function isFlagValue(arg) {
  const i = argv.indexOf(arg);
  return i > 0 && argv[i - 1].startsWith('--') && !argv[i - 1].includes('=');
}

// Services first: MariaDB and Kafka (started if installed but stopped; a no-op when they are up).
const services = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'services.mjs'), 'up'], { cwd: ROOT, stdio: 'inherit' });
if (services.status !== 0) {
  process.stderr.write('bench: could not bring the services up (node scripts/services.mjs up)\n');
  process.exit(services.status ?? 1);
}

let current = null;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current) current.kill(sig);
    else process.exit(130);
  });
}

const failed = [];
for (const name of toRun) {
  process.stderr.write(`\n=== bench: ${name} ${passThrough.join(' ')}\n`);
  const t0 = Date.now();
  const code = await new Promise((resolve) => {
    current = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join('bench', `${name}.bench.ts`), ...passThrough], {
      cwd: ROOT,
      stdio: 'inherit',
      env: { ...process.env, TS_NODE_PROJECT: path.join(ROOT, 'tsconfig.json') },
    });
    current.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  current = null;
  process.stderr.write(`=== bench: ${name} ${code === 0 ? 'done' : `FAILED (exit ${code})`} in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  if (code !== 0) failed.push(name);
}
if (failed.length > 0) {
  process.stderr.write(`\nfailed: ${failed.join(', ')}\n`);
  process.exit(1);
}
