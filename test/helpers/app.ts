import { createApp } from '../../src/api/app';
import { dbCheck } from '../../src/api/health';
import { createLogger } from '../../src/logger';
import { Metrics } from '../../src/metrics';
import type { TestEnv } from './env';

/** The real Express app on the test database, with every response checked against openapi.yaml. */
export function testApp(t: TestEnv, extra: { checks?: Record<string, () => Promise<void>> } = {}) {
  return createApp({
    config: t.config,
    db: t.db,
    logger: createLogger('error', 'test'),
    metrics: new Metrics(t.db),
    checks: extra.checks ?? { database: dbCheck(t.db) },
    validateResponses: true,
  });
}
