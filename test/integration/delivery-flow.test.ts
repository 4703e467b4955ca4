import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import request from 'supertest';
import type { Express } from 'express';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { Receiver, type Received } from '../helpers/receiver';
import { spawnRole, type RoleProcess } from '../helpers/proc';
import { until } from '../helpers/until';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';
import { FlowGate, type FlowItem } from '../../src/worker/flow-gate';
import type { DeliveryConfig } from '../../src/worker/trigger-cache';

/*
 * Per-trigger delivery flow control (docs/delivery-flow.md) against the real MariaDB, a real Kafka broker,
 * a relay, THREE worker processes (the built dist/main.js; `npm run build` first) and local HTTP receivers.
 * Assertions are on counts and order at the receivers, never on how long things took.
 */

const quiet = createLogger('error', 'test');

type Answer = { status: number; delayMs?: number };

describe('delivery flow control: rate, concurrency and order across three workers', function () {
  this.timeout(300_000);
  let t: TestEnv;
  let app: Express;
  let relay: Platform;
  const workers: RoleProcess[] = [];
  const receivers: Receiver[] = [];

  before(async () => {
    t = await createTestEnv('flow', { WORKER_CONCURRENCY: '16' });
    app = testApp(t);
    // The relay creates the topics; then three workers share the consumer group.
    relay = await startPlatform(t.config, ['relay'], { logger: quiet, migrate: false });
    workers.push(...(await Promise.all([1, 2, 3].map(() => spawnRole('worker', t.env)))));
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.kill('SIGKILL')));
    await relay?.stop();
    for (const r of receivers) await r.stop();
    await t?.cleanup();
  });

  async function receiver(answer: (r: Received, nthOfEvent: number) => Answer = () => ({ status: 200 })): Promise<Receiver> {
    const r = await new Receiver().start();
    receivers.push(r);
    r.respond = (req) => answer(req, r.requests.filter((x) => x.headers['webhook-id'] === req.headers['webhook-id']).length - 1);
    return r;
  }
  async function trigger(name: string, endpoint: string, extra: Record<string, unknown>): Promise<string> {
    const config = { endpoint, schema: { type: 'object' }, retry: { max_attempts: 5, backoff_ms: 100 }, ...extra };
    const res = await request(app).post('/api/v1/triggers').send({ name, type: 'webhook', config });
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    return res.body.id as string;
  }
  /** `n` events in one batch request (one commit: queued at once). */
  async function fireBatch(triggerId: string, n: number): Promise<string[]> {
    const events = Array.from({ length: n }, (_, i) => ({ n: i }));
    const res = await request(app).post(`/api/v1/webhook/${triggerId}/batch`).send({ events }).expect(202);
    return (res.body.results as Array<{ event_id: string }>).map((r) => r.event_id);
  }
  /** `n` events one after another: the order they fired in is the order of the returned ids. */
  async function fireInOrder(triggerId: string, n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await request(app).post(`/api/v1/webhook/${triggerId}`).send({ n: i }).expect(202);
      ids.push(res.body.event_id as string);
    }
    return ids;
  }
  const idOf = (r: Received) => r.headers['webhook-id'] as string;
  /** The worker process whose socket sent `r` (by its local port, as `ss` shows it), if still connected. */
  function workerOf(r: Received): RoleProcess | undefined {
    const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( sport = :${r.remotePort} )`]).toString();
    const pid = Number(/pid=(\d+)/.exec(out)?.[1]);
    return workers.find((w) => w.child.pid === pid);
  }
  const distinct = (r: Receiver) => new Set(r.requests.map(idOf)).size;
  async function statuses(ids: string[]): Promise<Map<string, { execution_status: string; attempts: number }>> {
    const rows = (await t.db('event_logs').whereIn('id', ids).select('id', 'execution_status', 'attempts')) as Array<{
      id: string;
      execution_status: string;
      attempts: number;
    }>;
    return new Map(rows.map((r) => [r.id, r]));
  }
  const allEnded = async (ids: string[]) => {
    const s = await statuses(ids);
    return ids.every((id) => ['success', 'failure'].includes(s.get(id)?.execution_status ?? ''));
  };

  /**
   * The ordered-delivery property at a receiver: the first arrivals follow `fired`, and no event arrives
   * (even once) before the event fired just before it got its ending answer (a 200, or its last attempt's).
   * Re-sends of an event that already succeeded (after a worker kill) are allowed.
   */
  function checkOrdered(r: Receiver, fired: string[], endingAnswer: (id: string) => Received | undefined): void {
    const firsts: string[] = [];
    for (const req of r.requests) if (!firsts.includes(idOf(req))) firsts.push(idOf(req));
    expect(firsts).to.deep.equal(fired);
    for (let k = 1; k < fired.length; k++) {
      const ended = endingAnswer(fired[k - 1]!);
      const first = r.requests.find((req) => idOf(req) === fired[k]);
      expect(ended, `event ${k - 1} ended before event ${k} went out`).to.not.equal(undefined);
      expect(first!.at, `event ${k} went out after event ${k - 1} ended`).to.be.at.least(ended!.answeredAt!);
    }
  }
  const firstOk = (r: Receiver) => (id: string) => r.requests.find((req) => idOf(req) === id && req.status === 200);

  it('rate 10/s: all of 200 queued events arrive, and no one-second window at the receiver holds more than 10 (+1 for its edges)', async () => {
    const rx = await receiver();
    const id = await trigger('rate-10', rx.url('/rate'), { delivery_rate_per_second: 10 });
    const events = await fireBatch(id, 200);
    await until(() => distinct(rx) === 200, { timeoutMs: 180_000, intervalMs: 250, message: '200 events at the receiver' });
    const at = rx.requests.map((r) => r.at).sort((a, b) => a - b);
    let busiest = 0;
    for (let i = 0, j = 0; i < at.length; i++) {
      while (j < at.length && at[j]! <= at[i]! + 1000) j++;
      busiest = Math.max(busiest, j - i);
    }
    console.log(`      200 events, ${rx.requests.length} requests; busiest one-second window: ${busiest}`);
    expect(busiest).to.be.at.most(11);
    // Waiting for the limit was never an attempt: one attempt each, and the held ones were deferred.
    await until(() => allEnded(events), { timeoutMs: 30_000, message: 'all recorded' });
    const s = await statuses(events);
    expect([...s.values()].filter((e) => e.execution_status === 'success' && e.attempts === 1)).to.have.length(200);
    expect(Number((await t.db('delivery_attempts').whereIn('event_id', events).count({ n: '*' }))[0]!.n)).to.equal(200);
  });

  it('concurrency 2: the receiver never has more than 2 requests in flight, and all 40 events arrive', async () => {
    const rx = await receiver(() => ({ status: 200, delayMs: 150 }));
    const id = await trigger('concurrency-2', rx.url('/conc'), { delivery_max_concurrency: 2 });
    const events = await fireBatch(id, 40);
    await until(() => distinct(rx) === 40 && rx.requests.every((r) => r.answeredAt !== undefined), {
      timeoutMs: 120_000,
      intervalMs: 250,
      message: '40 events answered',
    });
    // In flight at each arrival: requests that arrived earlier (or then) and were not answered yet.
    const most = Math.max(...rx.requests.map((a) => rx.requests.filter((b) => b.at <= a.at && b.answeredAt! > a.at).length));
    console.log(`      40 events, ${rx.requests.length} requests; most in flight at once: ${most}`);
    expect(most).to.be.at.most(2);
    await until(() => allEnded(events), { timeoutMs: 30_000, message: 'all recorded' });
    const s = await statuses(events);
    expect([...s.values()].filter((e) => e.execution_status === 'success' && e.attempts === 1)).to.have.length(40);
  });

  describe('ordered delivery', () => {
    /** A receiver that answers 500 to the trigger's first event twice, then 200; every other request 200. */
    async function failingFirstTwice(first: () => string | undefined): Promise<Receiver> {
      return receiver((req, nth) => ({ status: idOf(req) === first() && nth < 2 ? 500 : 200 }));
    }

    it('delivers in firing order: no later event before the first one, answered 500 twice, succeeds', async () => {
      const sent: { first?: string } = {};
      const rx = await failingFirstTwice(() => sent.first);
      const id = await trigger('ordered', rx.url('/ordered'), { ordered_delivery: true });
      const fired: string[] = [];
      sent.first = (await fireInOrder(id, 1))[0];
      fired.push(sent.first!, ...(await fireInOrder(id, 14)));
      await until(() => allEnded(fired), { timeoutMs: 120_000, intervalMs: 250, message: 'all 15 ended' });
      const s = await statuses(fired);
      expect(fired.map((e) => s.get(e)!.execution_status)).to.deep.equal(fired.map(() => 'success'));
      expect(s.get(sent.first!)!.attempts).to.equal(3);
      expect(rx.requests.slice(0, 3).map((r) => [idOf(r), r.status])).to.deep.equal([
        [sent.first, 500],
        [sent.first, 500],
        [sent.first, 200],
      ]);
      checkOrdered(rx, fired, firstOk(rx));
    });

    it('keeps firing order when the worker delivering the trigger is kill -9ed mid-run', async () => {
      const sent: { first?: string } = {};
      // Slower answers, so the run is still going when the kill comes.
      const rx = await receiver((req, nth) => ({ status: idOf(req) === sent.first && nth < 2 ? 500 : 200, delayMs: 50 }));
      const id = await trigger('ordered-kill', rx.url('/ordered-kill'), { ordered_delivery: true });
      const fired = await fireInOrder(id, 1);
      sent.first = fired[0];
      fired.push(...(await fireInOrder(id, 29)));
      // Once a few events got through, kill the worker that sent the latest one (its socket's owner), and
      // start another so three share the group again.
      await until(() => distinct(rx) >= 5, { timeoutMs: 60_000, message: 'five events at the receiver' });
      const sender = workerOf(rx.requests[rx.requests.length - 1]!);
      const victim = sender ?? workers[0]!;
      workers.splice(workers.indexOf(victim), 1);
      await victim.kill('SIGKILL');
      const atKill = distinct(rx);
      workers.push(await spawnRole('worker', t.env));
      await until(() => allEnded(fired), { timeoutMs: 180_000, intervalMs: 250, message: 'all 30 ended' });
      const s = await statuses(fired);
      expect(fired.map((e) => s.get(e)!.execution_status)).to.deep.equal(fired.map(() => 'success'));
      console.log(
        `      killed ${sender ? 'the sender' : 'a worker (the sender was not found)'} after ${atKill} of 30 events; ` +
          `${rx.requests.length} requests (2 answered 500; the rest re-sends)`,
      );
      expect(atKill, 'the kill came mid-run').to.be.below(30);
      checkOrdered(rx, fired, firstOk(rx));
    });

    it('keeps firing order under a rate limit too (ordered + 5/s): in order, and no one-second window above 6', async () => {
      const rx = await receiver();
      const id = await trigger('ordered-rate', rx.url('/ordered-rate'), { ordered_delivery: true, delivery_rate_per_second: 5 });
      const fired = await fireInOrder(id, 20);
      await until(() => allEnded(fired), { timeoutMs: 120_000, intervalMs: 250, message: 'all 20 ended' });
      const at = rx.requests.map((r) => r.at);
      const busiest = Math.max(...at.map((a) => at.filter((b) => b >= a && b <= a + 1000).length));
      expect(busiest).to.be.at.most(6);
      checkOrdered(rx, fired, firstOk(rx));
    });

    it('releases the next event when the earlier one fails after its last attempt', async () => {
      const sent: { first?: string } = {};
      const rx = await receiver((req) => ({ status: idOf(req) === sent.first ? 500 : 200 }));
      const id = await trigger('ordered-fail', rx.url('/ordered-fail'), {
        ordered_delivery: true,
        retry: { max_attempts: 2, backoff_ms: 100 },
      });
      const fired = await fireInOrder(id, 1);
      sent.first = fired[0];
      fired.push(...(await fireInOrder(id, 5)));
      await until(() => allEnded(fired), { timeoutMs: 120_000, intervalMs: 250, message: 'all 6 ended' });
      const s = await statuses(fired);
      expect(fired.map((e) => s.get(e)!.execution_status)).to.deep.equal([
        'failure',
        'success',
        'success',
        'success',
        'success',
        'success',
      ]);
      expect(s.get(sent.first!)!.attempts).to.equal(2);
      // Its last attempt's answer (the second 500) is what releases the next.
      const lastAttempt = (e: string) => (e === sent.first ? rx.requests.filter((r) => idOf(r) === e)[1] : firstOk(rx)(e));
      checkOrdered(rx, fired, lastAttempt);
    });
  });

  it('a limited or ordered trigger does not hold up an unlimited trigger fired after it', async () => {
    const slow = await receiver();
    const blocked = await receiver((req) => ({ status: req.body.includes('"n":0') ? 500 : 200 }));
    const free = await receiver();
    const limited = await trigger('limited-1', slow.url('/slow'), { delivery_rate_per_second: 1 });
    const ordered = await trigger('ordered-stuck', blocked.url('/stuck'), {
      ordered_delivery: true,
      retry: { max_attempts: 5, backoff_ms: 60_000 },
    });
    const unlimited = await trigger('unlimited', free.url('/free'), {});
    await fireBatch(limited, 40);
    await fireInOrder(ordered, 10);
    await fireBatch(unlimited, 40);
    await until(() => distinct(free) === 40, { timeoutMs: 60_000, intervalMs: 100, message: 'the unlimited trigger delivered' });
    console.log(`      when all 40 unlimited arrived: limited ${distinct(slow)} of 40, ordered ${distinct(blocked)} of 10`);
    // At 1/s the limited trigger cannot have sent its 40 yet, and the ordered one is stuck on its first event.
    expect(distinct(slow)).to.be.below(40);
    expect(distinct(blocked)).to.equal(1);
  });

  describe('API', () => {
    const base = { endpoint: 'https://example.com/hook', cron: '*/5 * * * *' };
    const cases: Array<[string, unknown, string]> = [
      ['delivery_rate_per_second', 0, 'config.delivery_rate_per_second'],
      ['delivery_rate_per_second', 10_001, 'config.delivery_rate_per_second'],
      ['delivery_rate_per_second', 'fast', 'config.delivery_rate_per_second'],
      ['delivery_max_concurrency', 1001, 'config.delivery_max_concurrency'],
      ['delivery_max_concurrency', 1.5, 'config.delivery_max_concurrency'],
      ['ordered_delivery', 'yes', 'config.ordered_delivery'],
    ];
    for (const [key, value, field] of cases) {
      it(`answers 400 naming ${field} for ${JSON.stringify(value)}, on create and on edit`, async () => {
        const created = await request(app)
          .post('/api/v1/triggers')
          .send({ name: 'bad', type: 'cron_scheduled', config: { ...base, [key]: value } });
        expect(created.status).to.equal(400);
        expect(created.headers['content-type']).to.match(/^application\/problem\+json/);
        expect((created.body.errors as Array<{ field: string }>).map((e) => e.field)).to.include(field);
        const ok = await request(app).post('/api/v1/triggers').send({ name: 'ok', type: 'cron_scheduled', config: base }).expect(201);
        const edited = await request(app)
          .put(`/api/v1/triggers/${ok.body.id}`)
          .send({ config: { ...base, [key]: value } });
        expect(edited.status).to.equal(400);
        expect((edited.body.errors as Array<{ field: string }>).map((e) => e.field)).to.include(field);
        await request(app).delete(`/api/v1/triggers/${ok.body.id}`).expect(204);
      });
    }

    it('stores and shows the three fields on every trigger type', async () => {
      const flow = { delivery_rate_per_second: 50, delivery_max_concurrency: 4, ordered_delivery: true };
      const configs: Record<string, Record<string, unknown>> = {
        webhook: { endpoint: base.endpoint, schema: { type: 'object' } },
        time_scheduled: { endpoint: base.endpoint, delay_seconds: 3600 },
        cron_scheduled: base,
        interval_scheduled: { endpoint: base.endpoint, interval_seconds: 3600 },
      };
      for (const [type, config] of Object.entries(configs)) {
        const res = await request(app)
          .post('/api/v1/triggers')
          .send({ name: `flow-${type}`, type, config: { ...config, ...flow } })
          .expect(201);
        const shown = await request(app).get(`/api/v1/triggers/${res.body.id}`).expect(200);
        expect(shown.body.config, type).to.include(flow);
        await request(app).delete(`/api/v1/triggers/${res.body.id}`).expect(204);
      }
    });
  });

  describe('cost', () => {
    const plain = {
      endpoint: 'http://127.0.0.1:9/x',
      http_method: 'POST',
      headers: {},
      timeout_ms: 1000,
      retry: { max_attempts: 1, backoff_ms: 10 },
    };
    async function statementsOf(items: FlowItem[]): Promise<number> {
      let n = 0;
      const count = (q: { sql: string }) => {
        if (!/^\s*(BEGIN|START TRANSACTION|COMMIT|ROLLBACK|SET )/i.test(q.sql)) n++;
      };
      t.db.on('query', count);
      try {
        await new FlowGate(t.db).plan(items);
      } finally {
        t.db.off('query', count);
      }
      return n;
    }
    const item = (i: number, cfg: DeliveryConfig): FlowItem => ({ eventId: `e${i}`, triggerId: `t${i % 4}`, cfg, held: 0 });

    it('makes no statement for a batch whose triggers have no flow settings', async () => {
      expect(await statementsOf(Array.from({ length: 32 }, (_, i) => item(i, plain as DeliveryConfig)))).to.equal(0);
    });

    it('makes a fixed number of statements for limited triggers, however many events the batch holds', async () => {
      // Limits high enough that every event is admitted, so every step runs.
      const limited = { ...plain, delivery_rate_per_second: 10_000, delivery_max_concurrency: 1000 } as DeliveryConfig;
      const first = await statementsOf(Array.from({ length: 8 }, (_, i) => item(i, limited)));
      const later = await statementsOf(Array.from({ length: 32 }, (_, i) => ({ ...item(i, limited), eventId: `f${i}` })));
      // Lock and read the flow rows, save the rate limiters, take the slots; the first batch also creates the rows.
      expect(later).to.equal(3);
      expect(first).to.equal(5);
    });
  });
});
