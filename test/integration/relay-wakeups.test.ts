import { expect } from 'chai';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { until } from '../helpers/until';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';

/*
 * A relay's publish lane that keeps finding its outbox empty polls less and less often, up to
 * SCHEDULER_INTERVAL. An API in the relay's own process wakes it when it commits webhook events, so they are
 * published at once; an API in another process (here another platform in the test's process, which shares
 * nothing with the relay's) leaves them to the relay's next poll. The polls here are a
 * minute apart (OUTBOX_POLL_INTERVAL 30 s, doubled after the first empty one), so which of the two published
 * an event cannot be mistaken.
 */
describe('relay wake-ups: webhook events and a quiet outbox', function () {
  this.timeout(120_000);
  const quiet = createLogger('error', 'test');
  let t: TestEnv;
  const running: Platform[] = [];

  before(async () => {
    t = await createTestEnv('wakeups', { OUTBOX_POLL_INTERVAL: '30s', SCHEDULER_INTERVAL: '60s' });
  });
  afterEach(async () => {
    for (const p of running.splice(0)) await p.stop();
  });
  after(() => t?.cleanup());

  /** A webhook trigger created and called through the API on `port`: the event id of the 202. */
  async function webhookEvent(port: number): Promise<string> {
    const base = `http://127.0.0.1:${port}/api/v1`;
    const created = await fetch(`${base}/triggers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'wake', type: 'webhook', config: { endpoint: 'http://127.0.0.1:9/x', schema: { type: 'object' } } }),
    });
    expect(created.status).to.equal(201);
    const { id } = (await created.json()) as { id: string };
    const fired = await fetch(`${base}/webhook/${id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(fired.status).to.equal(202);
    return ((await fired.json()) as { event_id: string }).event_id;
  }

  const publishedAt = async (id: string): Promise<Date | null> =>
    ((await t.db('event_logs').where({ id }).first('published_at')) as { published_at: Date | null } | undefined)?.published_at ?? null;

  it('publishes a webhook event at once when the API runs in the relay’s process', async () => {
    const p = await startPlatform(t.config, ['api', 'relay'], { logger: quiet, migrate: false });
    running.push(p);
    const id = await webhookEvent(p.ports.api!);
    await until(async () => (await publishedAt(id)) !== null, { timeoutMs: 5000, message: 'published by the woken lane' });
  });

  it('leaves the event to the relay’s next poll when the API is another platform, as in another process (the control)', async () => {
    const relay = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
    running.push(relay);
    const api = await startPlatform(t.config, ['api'], { logger: quiet, migrate: false });
    running.push(api);
    const id = await webhookEvent(api.ports.api!);
    // Nothing wakes the relay: its lane 0 sleeps out the minute it chose after its first empty poll.
    const waited = await until(async () => (await publishedAt(id)) !== null, { timeoutMs: 5000, message: 'published' }).then(
      () => 'published',
      () => 'still queued',
    );
    expect(waited).to.equal('still queued');
    expect(await t.db('outbox').where({ event_id: id }).count({ n: '*' }).first()).to.deep.equal({ n: 1 });
  });
});
