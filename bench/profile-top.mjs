// Top entries by self time of a V8 CPU profile (`node --cpu-prof`):
//   node bench/profile-top.mjs <file.cpuprofile> [n] [--skip=<seconds>]
// --skip leaves out the first seconds of the profile (start-up: module loading, schema compiling).
// Prints self-time % and ms per function (name, file:line), and the share of idle/GC/program time.
import fs from 'node:fs';

const argv = process.argv.slice(2);
const skipArg = argv.find((a) => a.startsWith('--skip='));
const skipUs = skipArg ? Number(skipArg.slice(7)) * 1e6 : 0;
const [file, nArg] = argv.filter((a) => !a.startsWith('--'));
if (!file) {
  process.stderr.write('usage: node bench/profile-top.mjs <file.cpuprofile> [n]\n');
  process.exit(2);
}
const n = Number(nArg ?? 25);
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((nd) => [nd.id, nd]));
const selfUs = new Map();
const dt = prof.timeDeltas;
let t = 0;
for (let i = 0; i < prof.samples.length; i++) {
  t += dt[i] ?? 0;
  if (t < skipUs) continue;
  const nd = byId.get(prof.samples[i]);
  const f = nd.callFrame;
  const short = f.url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, '').replace(/.*\/(dist|src)\//, '$1/');
  const key = `${f.functionName || '(anonymous)'} ${short ? `${short}:${f.lineNumber + 1}` : ''}`.trim();
  selfUs.set(key, (selfUs.get(key) ?? 0) + (dt[i] ?? 0));
}
let total = 0;
for (const v of selfUs.values()) total += v;
const idle = selfUs.get('(idle)') ?? 0;
const busy = total - idle;
process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (shares below are of busy time)\n`);
const rows = [...selfUs.entries()].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, n);
for (const [k, v] of rows) process.stdout.write(`${((100 * v) / busy).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(6)} ms  ${k}\n`);
