#!/usr/bin/env node
// Housekeeping for the peers benchmark, run by bench/peers.bench.ts (one JSON document on stdout):
//   node bench/peers/admin.mjs pg-facts <postgres url>          server version and durability settings
//   node bench/peers/admin.mjs pg-create <postgres url> <db>    a fresh database for one run
//   node bench/peers/admin.mjs pg-drop <postgres url> <db>      drop it (WITH (FORCE): no lingering sessions)
//   node bench/peers/admin.mjs redis-facts <port>               version, persistence and eviction settings
//   node bench/peers/admin.mjs redis-flush <port>               empty the bench's own Redis before a run
//   node bench/peers/admin.mjs versions                         installed versions of the peers' packages
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const [cmd, a, b] = process.argv.slice(2);

async function withPg(url, fn) {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function withRedis(port, fn) {
  const r = new Redis({ host: '127.0.0.1', port: Number(port), lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  await r.connect();
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

const ident = (s) => `"${String(s).replace(/"/g, '')}"`;

const commands = {
  'pg-facts': () =>
    withPg(a, async (c) => {
      const version = (await c.query('show server_version')).rows[0].server_version;
      const names = [
        'synchronous_commit',
        'fsync',
        'full_page_writes',
        'wal_sync_method',
        'shared_buffers',
        'max_connections',
        'wal_level',
      ];
      const settings = {};
      for (const n of names) settings[n] = (await c.query(`show ${n}`)).rows[0][n];
      return { version, settings };
    }),
  'pg-create': () =>
    withPg(a, async (c) => {
      await c.query(`create database ${ident(b)}`);
      return { created: b };
    }),
  'pg-drop': () =>
    withPg(a, async (c) => {
      await c.query(`drop database if exists ${ident(b)} with (force)`);
      return { dropped: b };
    }),
  'redis-facts': () =>
    withRedis(a, async (r) => {
      const info = await r.info('server');
      const version = /redis_version:(\S+)/.exec(info)?.[1] ?? null;
      const config = {};
      for (const k of ['appendonly', 'appendfsync', 'maxmemory-policy', 'save', 'dir']) {
        const [, v] = await r.config('GET', k);
        config[k] = v;
      }
      return { version, config };
    }),
  'redis-flush': () =>
    withRedis(a, async (r) => {
      await r.flushall();
      return { flushed: true };
    }),
  versions: async () => {
    const out = {};
    for (const p of ['graphile-worker', 'pg-boss', 'bullmq', 'ioredis', 'pg']) {
      try {
        out[p] = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', p, 'package.json'), 'utf8')).version;
      } catch {
        out[p] = null;
      }
    }
    return out;
  },
};

const fn = commands[cmd];
if (!fn) {
  process.stderr.write(`unknown command ${cmd}; one of ${Object.keys(commands).join(', ')}\n`);
  process.exit(2);
}
fn().then(
  (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
  (e) => {
    process.stderr.write(`${e?.message ?? e}\n`);
    process.exit(1);
  },
);
