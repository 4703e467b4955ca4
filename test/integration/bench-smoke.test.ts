import { expect } from 'chai';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');

/** Runs `node bench/run.mjs <args>` with its results written into `dir`; resolves with its exit code and output. */
function runBench(args: string[], dir: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bench', 'run.mjs'), ...args], {
      cwd: ROOT,
      env: { ...process.env, BENCH_RESULTS_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out }));
  });
}

/**
 * The short version of the ingest benchmark (the full one is `npm run bench -- ingest`): it runs against the
 * built api, real MariaDB and real HTTP, and prints and writes the figures its target is read from. Speed is
 * not asserted here; that the bench still measures what it says is.
 */
describe('benchmarks: the ingest bench, short', function () {
  this.timeout(180_000);
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etp-bench-smoke-'));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('measures the durable route against its floors in rounds and writes every figure it prints', async () => {
    const { code, out } = await runBench(['ingest', '--quick', '--only=b,f', '--seconds=2', '--rounds=2'], dir);
    expect(code, out).to.equal(0);
    expect(out).to.match(/Ratio durable POST \/webhook\/\{id\} ÷ do-nothing Express route \(median of 2 rounds\): \d+\.\d\d×/);
    expect(out).to.match(/The api's CPU per request: \d+ µs, against \d+ µs for an Express first middleware/);
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('-ingest-quick-bf.json'));
    expect(files, out).to.have.length(1);
    const written = JSON.parse(fs.readFileSync(path.join(dir, files[0]!), 'utf8')) as {
      results: {
        fullSpeed: { ok: number; non2xx: number };
        rounds: Array<{ ratio: number; apiMicrosPerRequest: number | null; expressMicrosPerRequest: number | null }>;
        cpuMicrosPerEvent: Record<string, Record<string, number> | null>;
      };
    };
    const r = written.results;
    expect(r.fullSpeed.ok, 'the durable route answered').to.be.greaterThan(0);
    expect(r.fullSpeed.non2xx).to.equal(0);
    expect(r.rounds).to.have.length(2);
    for (const round of r.rounds) {
      expect(round.ratio).to.be.greaterThan(0);
      expect(round.apiMicrosPerRequest).to.be.greaterThan(0);
      expect(round.expressMicrosPerRequest).to.be.greaterThan(0);
    }
    for (const floor of ['floorBareHttp', 'floorExpress', 'floorExpressFirstMiddleware']) {
      expect(r.cpuMicrosPerEvent[floor]?.total, floor).to.be.greaterThan(0);
    }
    expect(r.cpuMicrosPerEvent.fullSpeed?.mariadb, "MariaDB's CPU counted").to.be.greaterThan(0);
  });
});
