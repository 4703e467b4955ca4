import { createApp } from '../../src/api/app';
import type { Config } from '../../src/config';
import { dbCheck } from '../../src/api/health';
import type { WebhookIngest } from '../../src/api/webhook-ingest';
import { createLogger } from '../../src/logger';
import { Metrics } from '../../src/metrics';
import { webhookIngest } from '../../src/platform';
import type { TestEnv } from './env';

const ingests = new WeakMap<TestEnv, WebhookIngest>();

/**
 * The webhook group commit of a test environment, as the api role has one per process: created on first
 * use (when WEBHOOK_GROUP_COMMIT is on), shared by the apps of the file, closed by t.cleanup().
 */
export function ingestOf(t: TestEnv): WebhookIngest | null {
  if (!t.config.webhookGroupCommit) return null;
  let ingest = ingests.get(t);
  if (!ingest) {
    const created = webhookIngest(t.config, null, null);
    ingests.set(t, created);
    t.defer(() => created.close());
    ingest = created;
  }
  return ingest;
}

/** The real Express app on the test database, with every response checked against openapi.yaml. */
export function testApp(
  t: TestEnv,
  extra: {
    checks?: Record<string, () => Promise<void>>;
    ingest?: WebhookIngest | null;
    validateResponses?: boolean;
    /** Settings other than the environment's (e.g. retention windows of seconds). */
    config?: Config;
  } = {},
) {
  return createApp({
    config: extra.config ?? t.config,
    db: t.db,
    logger: createLogger('error', 'test'),
    metrics: new Metrics(t.db),
    checks: extra.checks ?? { database: dbCheck(t.db) },
    ingest: extra.ingest === undefined ? ingestOf(t) : extra.ingest,
    validateResponses: extra.validateResponses ?? true,
  });
}
