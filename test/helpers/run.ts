import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './env';

/** Runs a command; resolves with its exit code and combined output. */
export function run(cmd: string, args: string[], cwd = REPO_ROOT): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

/** openapi-generator-cli from Maven Central, fetched once and cached (scripts/openapi-generator.mjs). */
export const GENERATOR = path.join(REPO_ROOT, 'scripts', 'openapi-generator.mjs');
