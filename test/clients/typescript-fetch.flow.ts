/**
 * The whole API flow through the client openapi-generator's `typescript-fetch` generates from openapi.yaml,
 * used as generated (build/clients/typescript-fetch, written by test/integration/clients.test.ts).
 */
import assert from 'node:assert/strict';
import {
  Configuration,
  EventsApi,
  OperatorApi,
  ProblemFromJSON,
  ResponseError,
  TriggersApi,
  WebhooksApi,
  type Problem,
  type Trigger,
  type TriggerUpdate,
} from '../../build/clients/typescript-fetch';

const ENDPOINT = 'https://example.com/hooks/flow';

/** The problem document of a failed call (the generated client throws ResponseError with the raw response). */
async function problemOf(call: Promise<unknown>): Promise<{ status: number; problem: Problem }> {
  try {
    await call;
  } catch (e) {
    if (!(e instanceof ResponseError)) throw e;
    return { status: e.response.status, problem: ProblemFromJSON(await e.response.json()) };
  }
  throw new Error('expected the call to fail');
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

export async function run(basePath: string, tag: string): Promise<void> {
  const configuration = new Configuration({ basePath });
  const triggers = new TriggersApi(configuration);
  const webhooks = new WebhooksApi(configuration);
  const events = new EventsApi(configuration);
  const operator = new OperatorApi(configuration);
  const tags = new Set([tag]);

  // Create all four types, each with non-default settings.
  const webhook = await triggers.createTrigger({
    triggerCreate: {
      name: 'orders',
      type: 'webhook',
      tags,
      config: {
        endpoint: ENDPOINT,
        httpMethod: 'PUT',
        timeoutMs: 5000,
        headers: { 'X-Env': 'flow' },
        retry: { maxAttempts: 2, backoffMs: 500 },
        schema: {
          type: 'object',
          required: ['order_id'],
          properties: { order_id: { type: 'string' }, amount: { type: 'number', minimum: 0 } },
        },
      },
    },
  });
  const once = await triggers.createTrigger({
    triggerCreate: {
      name: 'reminder',
      type: 'time_scheduled',
      tags,
      config: { endpoint: ENDPOINT, delaySeconds: 3600, timezone: 'Europe/Berlin', payload: { campaign: 'winter' } },
    },
  });
  const cron = await triggers.createTrigger({
    triggerCreate: {
      name: 'daily-report',
      type: 'cron_scheduled',
      tags,
      config: {
        endpoint: ENDPOINT,
        cron: '0 9 * * 1-5',
        timezone: 'America/New_York',
        payload: { report: 'daily' },
        misfirePolicy: 'skip',
        maxBackfill: 10,
        jitterSeconds: 30,
        startAt: '2030-01-01T00:00:00',
        endAt: '2031-01-01T00:00:00',
        retry: { maxAttempts: 3, backoffMs: 2000, maxAgeSeconds: 600 },
      },
    },
  });
  const interval = await triggers.createTrigger({
    triggerCreate: {
      name: 'sync',
      type: 'interval_scheduled',
      tags,
      config: { endpoint: ENDPOINT, intervalSeconds: 1800, timeoutMs: 2000 },
    },
  });
  assert.equal(webhook.type, 'webhook');
  assert.equal(webhook.config.httpMethod, 'PUT');
  assert.equal(webhook.config.hasSecret, false);
  assert.equal(once.type === 'time_scheduled' && once.config.delaySeconds, 3600);
  assert.ok(webhook.webhookUrl?.endsWith(`/api/v1/webhook/${webhook.id}`));
  const all = [webhook, once, cron, interval];

  // List with filters, by page and by cursor.
  const crons = await triggers.listTriggers({ tag: [tag], type: 'cron_scheduled' });
  assert.deepEqual(
    crons.triggers.map((t) => t.id),
    [cron.id],
  );
  const page1 = await triggers.listTriggers({ tag: [tag], limit: 3, page: 1 });
  const page2 = await triggers.listTriggers({ tag: [tag], limit: 3, page: 2 });
  assert.equal(page1.pagination.totalRecords, 4);
  assert.equal(page1.triggers.length + page2.triggers.length, 4);
  assert.ok(page1.pagination.nextCursor);
  const byCursor = await triggers.listTriggers({ tag: [tag], limit: 3, cursor: page1.pagination.nextCursor! });
  assert.deepEqual(
    byCursor.triggers.map((t) => t.id),
    page2.triggers.map((t) => t.id),
  );
  assert.equal(byCursor.pagination.nextCursor, null);

  // GET → PUT round trip keeps every setting.
  for (const created of all) {
    const before = await triggers.getTrigger({ id: created.id });
    const after = await triggers.updateTrigger({ id: created.id, triggerUpdate: asUpdate(before) });
    assert.deepEqual(after.config, before.config, `${before.type} config after a round trip`);
    assert.deepEqual(after.tags, before.tags);
  }
  const renamed = await triggers.updateTrigger({ id: cron.id, triggerUpdate: { type: 'cron_scheduled', name: 'daily-report-2' } });
  assert.equal(renamed.name, 'daily-report-2');

  // Fire the webhook: valid, invalid (the problem names the field), batch.
  const accepted = await webhooks.fireWebhook({ triggerId: webhook.id, body: { order_id: '1001', amount: 25 } });
  assert.equal(accepted.status, 'accepted');
  const invalid = await problemOf(webhooks.fireWebhook({ triggerId: webhook.id, body: { amount: -1 } }));
  assert.equal(invalid.status, 400);
  assert.deepEqual(invalid.problem.errors?.map((e) => e.field).sort(), ['/amount', '/order_id']);
  const batch = await webhooks.fireWebhookBatch({
    triggerId: webhook.id,
    fireWebhookBatchRequest: { events: [{ order_id: '1002' }, { amount: 1 }] },
  });
  assert.equal(batch.accepted, 1);
  assert.equal(batch.rejected, 1);
  assert.equal(batch.results[1].errors?.[0].field, '/events/1/order_id');

  // Test runs: stored (given payload, then the configured one) and unsaved.
  const stored = await triggers.testTrigger({ id: once.id, testTriggerRequest: { payload: { dry: true } } });
  const storedDefault = await triggers.testTrigger({ id: once.id });
  const unsaved = await triggers.testUnsavedTrigger({
    unsavedTestRun: { type: 'time_scheduled', config: { endpoint: ENDPOINT, delaySeconds: 0, payload: { hi: 1 } } },
  });
  assert.deepEqual((await events.getEvent({ id: stored.eventId })).payload, { dry: true });
  assert.deepEqual((await events.getEvent({ id: storedDefault.eventId })).payload, { campaign: 'winter' });
  const unsavedEvent = await events.getEvent({ id: unsaved.eventId });
  assert.equal(unsavedEvent.triggerId, null);
  assert.deepEqual(unsavedEvent.payload, { hi: 1 });

  // Events: filter, cursor paging, one event, its attempts.
  const first = await events.listEvents({ triggerId: webhook.id, limit: 1 });
  assert.equal(first.events.length, 1);
  assert.ok(first.pagination.nextCursor);
  const second = await events.listEvents({ triggerId: webhook.id, limit: 1, cursor: first.pagination.nextCursor! });
  assert.equal(second.events.length, 1);
  assert.notEqual(second.events[0].id, first.events[0].id);
  const recent = await events.listEvents({ from: new Date(Date.now() - 3_600_000), source: 'manual-test' });
  assert.equal(recent.events.length, 3);
  const attempts = await operator.listDeliveryAttempts({ id: accepted.eventId });
  assert.deepEqual(attempts.attempts, []);

  // Only an ended event can be replayed, and no worker runs here: cancel the webhook trigger's two events
  // (they end failure), replay one, then every event of the trigger — the replayed one and the new replay
  // (not ended) are skipped.
  for (const e of (await events.listEvents({ triggerId: webhook.id })).events) {
    const cancelled = await operator.cancelEvent({ id: e.id, cancelRequest: { reason: 'client flow' } });
    assert.equal(cancelled.executionStatus, 'failure');
  }
  const replay = await operator.replayEvent({ id: accepted.eventId });
  assert.equal(replay.replayOf, accepted.eventId);
  assert.equal((await events.getEvent({ id: replay.eventId })).source, 'replay');
  const bulk = await operator.replayEvents({ bulkReplayRequest: { triggerId: webhook.id } });
  assert.equal(bulk.replayed, 1);
  assert.equal(bulk.skipped?.alreadyReplayed, 1);
  assert.equal(bulk.skipped?.notFinal, 1);

  // Stats, upcoming runs, preview.
  const stats = await events.getTriggerStats({ id: webhook.id });
  assert.equal(stats.total, 4);
  const upcoming = await operator.getUpcomingRuns({ id: cron.id, count: 3 });
  assert.equal(upcoming.occurrences.length, 3);
  const preview = await operator.previewSchedule({
    schedulePreviewRequest: { type: 'interval_scheduled', config: { endpoint: ENDPOINT, intervalSeconds: 60 }, count: 2 },
  });
  assert.equal(preview.status, 'preview');
  assert.equal(preview.occurrences.length, 2);

  // Bulk pause and resume by tag.
  assert.equal((await operator.pauseTriggers({ bulkStatusChange: { tag } })).updated, 4);
  assert.equal((await triggers.getTrigger({ id: interval.id })).status, 'inactive');
  assert.equal((await operator.resumeTriggers({ bulkStatusChange: { tag } })).updated, 4);

  // Delete.
  for (const t of all) await triggers.deleteTrigger({ id: t.id });
  assert.equal((await problemOf(triggers.getTrigger({ id: webhook.id }))).status, 404);
}
