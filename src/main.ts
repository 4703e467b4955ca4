import { ConfigError, loadConfig, type Config } from './config';
import { createDb, ensureDatabase, migrateLatest } from './db/knex';
import { createLogger } from './logger';
import { startPlatform, type Role } from './platform';

/** Entry point: only wiring. `node dist/main.js api|relay|worker|all|migrate`. */
const USAGE = 'usage: node dist/main.js api|relay|worker|all|migrate';

async function main(): Promise<void> {
  const command = process.argv[2] ?? 'all';
  let config: Config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`configuration error: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  const logger = createLogger(config.logLevel, command);

  if (command === 'migrate') {
    await ensureDatabase(config.databaseUrl);
    const db = createDb(config.databaseUrl, 2);
    try {
      const applied = await migrateLatest(db);
      logger.info('migrations up to date', { applied });
    } finally {
      await db.destroy();
    }
    return;
  }

  const roles: Role[] | null =
    command === 'all' ? ['api', 'relay', 'worker'] : command === 'api' || command === 'relay' || command === 'worker' ? [command] : null;
  if (!roles) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  const platform = await startPlatform(config, roles, { logger });

  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals > 1) {
      logger.warn('second signal: exiting now', { signal: sig });
      process.exit(1);
    }
    logger.info('signal received, shutting down', { signal: sig });
    const force = setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    platform.stop().then(
      () => process.exit(0),
      (e) => {
        logger.error('shutdown failed', { error: String(e) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

main().catch((e: unknown) => {
  process.stderr.write(`fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
