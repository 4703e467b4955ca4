import knex from 'knex';
import { PartitionKeeper, readLayout } from '../../src/db/partitions';
import { newEventId } from '../../src/triggers/event-id';
(async () => {
  const db = knex({ client: 'mysql2', connection: { host: '127.0.0.1', user: 'root', database: 'scratch2', timezone: 'Z' } });
  const now = Date.now();
  const mk = (idMs: number, firedMs: number) => ({ id: newEventId(idMs), trigger_type: 'webhook', source: 'webhook', fired_at: new Date(firedMs), created_at: new Date(firedMs), updated_at: new Date(firedMs) });
  const rows = [mk(now - 60 * 3600e3, now - 60 * 3600e3), mk(now - 60 * 3600e3, now - 1000), mk(now - 47 * 3600e3, now - 47 * 3600e3), mk(now, now)];
  await db('event_logs').insert(rows);
  await db('delivery_attempts').insert(rows.map((r) => ({ event_id: r.id, attempt: 1, started_at: r.fired_at, duration_ms: 1 })));
  const k = new PartitionKeeper('me');
  const keepFrom = now - 48 * 3600e3;
  let t0 = Date.now();
  let r = await k.maintain(db, now, keepFrom, 5);
  console.log(r, Date.now() - t0, 'ms');
  console.log(await db('event_logs').pluck('id'), rows.map((r) => r.id));
  console.log(await db('delivery_attempts').pluck('event_id'));
  // A long pause: 3 days later.
  t0 = Date.now();
  r = await k.maintain(db, now + 72 * 3600e3, keepFrom + 72 * 3600e3, 100);
  console.log(r, Date.now() - t0, 'ms');
  console.log(await db('event_logs').pluck('id'));
  console.log(await db('delivery_attempts').pluck('event_id'));
  console.log((await readLayout(db, 'event_logs')).slices.map((s) => s.name).join(' '));
  console.log((await readLayout(db, 'delivery_attempts')).slices.map((s) => s.name).join(' '));
  await db.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
