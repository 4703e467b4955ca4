/**
 * The whole API flow through openapi-fetch, typed by the declarations openapi-typescript generates from
 * openapi.yaml (build/clients/openapi-typescript, written by test/integration/clients.test.ts).
 */
import assert from 'node:assert/strict';
import createClient from 'openapi-fetch';
import type { components, paths } from '../../build/clients/openapi-typescript/schema';

type Trigger = components['schemas']['Trigger'];
type TriggerUpdate = components['schemas']['TriggerUpdate'];

const ENDPOINT = 'https://example.com/hooks/flow';

/** The data of a successful call; fails with the problem document otherwise. */
function ok<T>(r: { data?: T; error?: unknown; response: Response }): T {
  assert.ok(r.response.ok, `${r.response.status} ${JSON.stringify(r.error)}`);
  return r.data as T;
}

/** A PUT body that sends a trigger's settings back as GET returned them. */
function asUpdate(t: Trigger): TriggerUpdate {
  switch (t.type) {
    case 'webhook':
      return { type: t.type, name: t.name, status: t.status, config: t.config, tags: t.tags };
    case 'time_scheduled':
      return { type: t.type, name: t.name, status: t.status, config: t.config, tags: t.tags };
    case 'cron_scheduled':
      return { type: t.type, name: t.name, status: t.status, config: t.config, tags: t.tags };
    case 'interval_scheduled':
      return { type: t.type, name: t.name, status: t.status, config: t.config, tags: t.tags };
  }
}

export async function run(baseUrl: string, tag: string): Promise<void> {
  const client = createClient<paths>({ baseUrl });
  const byId = (id: string) => ({ params: { path: { id } } });
  const create = async (body: components['schemas']['TriggerCreate']) => ok(await client.POST('/api/v1/triggers', { body }));

  // Create all four types, each with non-default settings.
  const webhook = await create({
    name: 'orders',
    type: 'webhook',
    tags: [tag],
    config: {
      endpoint: ENDPOINT,
      http_method: 'PUT',
      timeout_ms: 5000,
      headers: { 'X-Env': 'flow' },
      retry: { max_attempts: 2, backoff_ms: 500 },
      schema: {
        type: 'object',
        required: ['order_id'],
        properties: { order_id: { type: 'string' }, amount: { type: 'number', minimum: 0 } },
      },
    },
  });
  const once = await create({
    name: 'reminder',
    type: 'time_scheduled',
    tags: [tag],
    config: { endpoint: ENDPOINT, delay_seconds: 3600, timezone: 'Europe/Berlin', payload: { campaign: 'winter' } },
  });
  const cron = await create({
    name: 'daily-report',
    type: 'cron_scheduled',
    tags: [tag],
    config: {
      endpoint: ENDPOINT,
      cron: '0 9 * * 1-5',
      timezone: 'America/New_York',
      payload: { report: 'daily' },
      misfire_policy: 'skip',
      max_backfill: 10,
      jitter_seconds: 30,
      start_at: '2030-01-01T00:00:00',
      end_at: '2031-01-01T00:00:00',
      retry: { max_attempts: 3, backoff_ms: 2000, max_age_seconds: 600 },
    },
  });
  const interval = await create({
    name: 'sync',
    type: 'interval_scheduled',
    tags: [tag],
    config: { endpoint: ENDPOINT, interval_seconds: 1800, timeout_ms: 2000 },
  });
  assert.equal(webhook.type === 'webhook' && webhook.config.has_secret, false);
  const all = [webhook, once, cron, interval];

  // List with filters, by page and by cursor.
  const list = async (query: NonNullable<paths['/api/v1/triggers']['get']['parameters']['query']>) =>
    ok(await client.GET('/api/v1/triggers', { params: { query } }));
  assert.deepEqual(
    (await list({ tag: [tag], type: 'cron_scheduled' })).triggers.map((t) => t.id),
    [cron.id],
  );
  const page1 = await list({ tag: [tag], limit: 3, page: 1 });
  const page2 = await list({ tag: [tag], limit: 3, page: 2 });
  assert.equal(page1.pagination.total_records, 4);
  assert.ok(page1.pagination.next_cursor);
  const byCursor = await list({ tag: [tag], limit: 3, cursor: page1.pagination.next_cursor });
  assert.deepEqual(
    byCursor.triggers.map((t) => t.id),
    page2.triggers.map((t) => t.id),
  );

  // GET → PUT round trip keeps every setting.
  for (const created of all) {
    const before = ok(await client.GET('/api/v1/triggers/{id}', byId(created.id)));
    const after = ok(await client.PUT('/api/v1/triggers/{id}', { ...byId(created.id), body: asUpdate(before) }));
    assert.deepEqual(after.config, before.config, `${before.type} config after a round trip`);
  }

  // Fire the webhook: valid, invalid (the problem names the field), batch.
  const hook = { params: { path: { trigger_id: webhook.id } } };
  const accepted = ok(await client.POST('/api/v1/webhook/{trigger_id}', { ...hook, body: { order_id: '1001', amount: 25 } }));
  const invalid = await client.POST('/api/v1/webhook/{trigger_id}', { ...hook, body: { amount: -1 } });
  assert.equal(invalid.response.status, 400);
  assert.deepEqual(invalid.error?.errors?.map((e) => e.field).sort(), ['/amount', '/order_id']);
  const batch = await client.POST('/api/v1/webhook/{trigger_id}/batch', {
    ...hook,
    body: { events: [{ order_id: '1002' }, { amount: 1 }] },
  });
  assert.equal(batch.response.status, 207);
  assert.equal(batch.data?.accepted, 1);

  // Test runs: stored (given payload, then the configured one) and unsaved.
  const stored = ok(await client.POST('/api/v1/triggers/{id}/test', { ...byId(once.id), body: { payload: { dry: true } } }));
  const storedDefault = ok(await client.POST('/api/v1/triggers/{id}/test', { ...byId(once.id), body: { payload: null } }));
  const unsaved = ok(
    await client.POST('/api/v1/triggers/test', {
      body: { type: 'time_scheduled', config: { endpoint: ENDPOINT, delay_seconds: 0, payload: { hi: 1 } } },
    }),
  );
  const event = async (id: string) => ok(await client.GET('/api/v1/events/{id}', byId(id)));
  assert.deepEqual((await event(stored.event_id)).payload, { dry: true });
  assert.deepEqual((await event(storedDefault.event_id)).payload, { campaign: 'winter' });
  assert.equal((await event(unsaved.event_id)).trigger_id, null);

  // Events: filter, cursor paging, a date-time filter, attempts.
  const events = async (query: NonNullable<paths['/api/v1/events']['get']['parameters']['query']>) =>
    ok(await client.GET('/api/v1/events', { params: { query } }));
  const first = await events({ trigger_id: webhook.id, limit: 1 });
  assert.ok(first.pagination.next_cursor);
  const second = await events({ trigger_id: webhook.id, limit: 1, cursor: first.pagination.next_cursor });
  assert.notEqual(second.events[0].id, first.events[0].id);
  assert.equal((await events({ from: new Date(Date.now() - 3_600_000).toISOString(), source: 'manual-test' })).events.length, 3);
  assert.deepEqual(ok(await client.GET('/api/v1/events/{id}/attempts', byId(accepted.event_id))).attempts, []);

  // Only an ended event can be replayed, and no worker runs here: cancel the webhook trigger's two events
  // (they end failure), replay one, then every event of the trigger — the replayed one and the new replay
  // (not ended) are skipped.
  for (const e of (await events({ trigger_id: webhook.id })).events) {
    const cancelled = ok(await client.POST('/api/v1/events/{id}/cancel', { ...byId(e.id), body: { reason: 'client flow' } }));
    assert.equal(cancelled.execution_status, 'failure');
  }
  const replay = ok(await client.POST('/api/v1/events/{id}/replay', byId(accepted.event_id)));
  assert.equal(replay.replay_of, accepted.event_id);
  const bulk = ok(await client.POST('/api/v1/events/replay', { body: { trigger_id: webhook.id } }));
  assert.equal(bulk.replayed, 1);
  assert.equal(bulk.skipped?.already_replayed, 1);
  assert.equal(bulk.skipped?.not_final, 1);

  // Stats, upcoming runs, preview.
  assert.equal(ok(await client.GET('/api/v1/triggers/{id}/stats', byId(webhook.id))).total, 4);
  const upcoming = ok(await client.GET('/api/v1/triggers/{id}/upcoming', { params: { path: { id: cron.id }, query: { count: 3 } } }));
  assert.equal(upcoming.occurrences.length, 3);
  const preview = ok(
    await client.POST('/api/v1/schedules/preview', {
      body: { type: 'interval_scheduled', config: { endpoint: ENDPOINT, interval_seconds: 60 }, count: 2 },
    }),
  );
  assert.equal(preview.occurrences.length, 2);

  // Bulk pause and resume by tag (an empty id list is no id filter).
  assert.equal(ok(await client.POST('/api/v1/triggers/pause', { body: { tag, ids: [] } })).updated, 4);
  assert.equal(ok(await client.POST('/api/v1/triggers/resume', { body: { tag } })).updated, 4);

  // Delete.
  for (const t of all) assert.equal((await client.DELETE('/api/v1/triggers/{id}', byId(t.id))).response.status, 204);
  assert.equal((await client.GET('/api/v1/triggers/{id}', byId(webhook.id))).response.status, 404);
}
