import type { Db } from '../db/knex';
import { coerceError } from '../logger';

export type Check = () => Promise<void>;

export function dbCheck(db: Db, timeoutMs = 2000): Check {
  return () =>
    withTimeout(
      db.raw('SELECT 1').then(() => undefined),
      timeoutMs,
      'database did not answer',
    );
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}

export interface HealthReport {
  status: 'healthy' | 'unhealthy';
  timestamp: string;
  role: string;
  checks: Record<string, string>;
}

/** Runs every check concurrently; "ok" or the failure's message per check. */
export async function runChecks(role: string, checks: Record<string, Check>): Promise<HealthReport> {
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map(async (n) => {
      try {
        await withTimeout(checks[n](), 3000, `${n} check timed out`);
        return 'ok';
      } catch (e) {
        return `error: ${coerceError(e).message}`;
      }
    }),
  );
  const out: Record<string, string> = {};
  names.forEach((n, i) => (out[n] = results[i]));
  return { status: results.every((r) => r === 'ok') ? 'healthy' : 'unhealthy', timestamp: new Date().toISOString(), role, checks: out };
}
