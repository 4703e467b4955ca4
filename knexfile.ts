import type { Knex } from 'knex';
import { loadConfig, databaseName } from './src/config';

/** For the knex CLI (`npm run seed`, `npx knex migrate:status`); the platform itself migrates via src/db/knex.ts. */
const config = loadConfig();
const u = new URL(config.databaseUrl);

const knexConfig: Knex.Config = {
  client: 'mysql2',
  connection: {
    host: u.hostname,
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password || ''),
    database: databaseName(config.databaseUrl),
    timezone: 'Z',
  },
  migrations: { directory: './migrations', extension: 'ts', loadExtensions: ['.ts'], tableName: 'knex_migrations' },
  seeds: { directory: './seeds', extension: 'ts', loadExtensions: ['.ts'] },
};

export default knexConfig;
module.exports = knexConfig;
