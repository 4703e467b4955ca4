import { expect } from 'chai';
import request from 'supertest';
import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '../helpers/env';
import { testApp } from '../helpers/app';
import { insertOutbox } from '../../src/db/outbox';
import { insertFireLags } from '../../src/db/fire-lags';
import { CHART_MINUTES, computeOverview, quantile } from '../../src/api/overview';
import { windowOf } from '../../src/api/events';
import { foldBefore, foldCountsBefore, FOLD_MAX_ROWS, ROLLUPS } from '../../src/db/events';
import { DASHBOARD_CSP, DASHBOARD_DIR } from '../../src/api/dashboard';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from '../helpers/env';
import { until } from '../helpers/until';

/*
 * Issue 12, the API side of the dashboard: GET /api/v1/overview (exact numbers from rows written straight
 * into a database of its own), the name search on GET /triggers, and how /dashboard is served. Every
 * response is checked against openapi.yaml.
 */

const MINUTE = 60_000;
const HOUR = 3_600_000;

interface OverviewBody {
  generated_at: string;
  triggers: { total: number; by_status: Record<string, number>; by_type: Record<string, Record<string, number>> };
  events_per_minute: { from: string; to: string; buckets: Array<Record<string, number | string>> };
  fire_lag: { window_seconds: number; sample_size: number; p50_ms: number | null; p99_ms: number | null; max_ms: number | null };
  outbox: { backlog: number; waiting: number; oldest_backlog_age_seconds: number | null };
  deliveries: { window_hours: number; from: string; succeeded: number; failed: number; in_flight: number };
  failed_events: number;
}

describe('overview, name search and the dashboard files', function () {
  this.timeout(120_000);
  let t: TestEnv;

  before(async () => {
    t = await createTestEnv('overview');
  });
  after(async () => {
    await t?.cleanup();
  });

  /** A fresh app each time: the overview is cached per app for 2 s. */
  const overview = async () => (await request(testApp(t)).get('/api/v1/overview').expect(200)).body as OverviewBody;

  /** What each type's stored config holds beside the endpoint, so listed triggers match the spec's Trigger. */
  const CONFIG_OF: Record<string, Record<string, unknown>> = {
    webhook: { schema: { type: 'object' } },
    time_scheduled: { run_at: '2030-01-01T00:00:00.000Z' },
    cron_scheduled: { cron: '0 * * * *', timezone: 'UTC' },
    interval_scheduled: { interval_seconds: 60 },
  };
  async function insertTrigger(name: string, type: string, status: 'active' | 'inactive', tags: string[] = []): Promise<string> {
    const id = randomUUID();
    const now = new Date();
    await t.db('triggers').insert({
      id,
      name,
      type,
      status,
      config: JSON.stringify({ endpoint: 'https://example.com/x', ...CONFIG_OF[type] }),
      version: 1,
      created_at: now,
      updated_at: now,
    });
    if (tags.length) await t.db('trigger_tags').insert(tags.map((tag) => ({ trigger_id: id, tag })));
    return id;
  }

  async function insertEvent(firedAt: Date, status: string): Promise<void> {
    await t.db('event_logs').insert({
      id: randomUUID(),
      trigger_id: null,
      trigger_type: 'webhook',
      source: 'webhook',
      is_test_run: 0,
      payload: '{}',
      fired_at: firedAt,
      execution_status: status,
      created_at: firedAt,
      updated_at: firedAt,
    });
  }

  describe('GET /api/v1/overview', () => {
    it('answers zeros, 120 empty minutes and null lags on an empty platform', async () => {
      const o = await overview();
      expect(o.triggers).to.deep.equal({
        total: 0,
        by_status: { active: 0, inactive: 0 },
        by_type: {
          webhook: { active: 0, inactive: 0 },
          time_scheduled: { active: 0, inactive: 0 },
          cron_scheduled: { active: 0, inactive: 0 },
          interval_scheduled: { active: 0, inactive: 0 },
        },
      });
      expect(o.events_per_minute.buckets).to.have.length(CHART_MINUTES);
      expect(o.events_per_minute.buckets.every((b) => b.success === 0 && b.failure === 0 && b.pending === 0 && b.published === 0)).to.equal(
        true,
      );
      expect(o.fire_lag).to.include({ sample_size: 0, p50_ms: null, p99_ms: null, max_ms: null });
      expect(o.outbox).to.deep.equal({ backlog: 0, waiting: 0, oldest_backlog_age_seconds: null });
      expect(o.deliveries).to.deep.include({ window_hours: 48, succeeded: 0, failed: 0, in_flight: 0 });
      expect(o.failed_events).to.equal(0);
    });

    it('counts triggers by type and status, events per minute by outcome, fire lag percentiles, the outbox and 48 h outcomes', async () => {
      await insertTrigger('w1', 'webhook', 'active');
      await insertTrigger('w2', 'webhook', 'inactive');
      const cronId = await insertTrigger('c1', 'cron_scheduled', 'active');
      await insertTrigger('i1', 'interval_scheduled', 'inactive');

      // Not in the last seconds of a minute: the server's "now" must fall in the same minute as ours.
      await until(() => Date.now() % MINUTE < 45_000, { timeoutMs: 20_000, message: 'the first 45 s of a minute' });
      const now = Date.now();
      const minuteStart = Math.floor(now / MINUTE) * MINUTE;
      // 3 successes and a failure 10 minutes ago, a pending event in the current minute,
      // an archived failure 5 h ago (outside the chart and the active view, inside 48 h), one 3 days ago.
      const tenAgo = new Date(minuteStart - 10 * MINUTE + 1000);
      for (let i = 0; i < 3; i++) await insertEvent(tenAgo, 'success');
      await insertEvent(tenAgo, 'failure');
      await insertEvent(new Date(Math.max(minuteStart, now - 100)), 'pending');
      await insertEvent(new Date(now - 5 * 3600_000), 'failure');
      await insertEvent(new Date(now - 72 * 3600_000), 'success');

      // 100 scheduled firings of the last hour in ten fire batches, late by 1..100 ms; a batch two hours ago
      // (outside the window).
      for (let b = 0; b < 10; b++) {
        const lags = Array.from({ length: 10 }, (_, i) => b * 10 + i + 1);
        await insertFireLags(t.db, lags, new Date(now - 30 * MINUTE + b * MINUTE));
      }
      await insertFireLags(t.db, [99_000], new Date(now - 2 * 3600_000));

      // Outbox: 2 ready rows, 1 waiting for a retry, 1 published.
      const msg = { topic: 't', key: cronId, value: Buffer.from('{}'), headers: {} };
      const at = new Date(now - 30_000);
      await insertOutbox(
        t.db,
        [
          { event_id: randomUUID(), message: msg, available_at: at },
          { event_id: randomUUID(), message: msg, available_at: at },
          { event_id: randomUUID(), message: msg, available_at: new Date(now + 3600_000) },
        ],
        at,
      );
      await t.db('outbox').insert({
        event_id: randomUUID(),
        topic: 't',
        msg_key: cronId,
        value: Buffer.from('{}'),
        available_at: at,
        published: 1,
        published_at: at,
        created_at: at,
      });

      const o = await overview();
      expect(o.triggers.total).to.equal(4);
      expect(o.triggers.by_status).to.deep.equal({ active: 2, inactive: 2 });
      expect(o.triggers.by_type.webhook).to.deep.equal({ active: 1, inactive: 1 });
      expect(o.triggers.by_type.cron_scheduled).to.deep.equal({ active: 1, inactive: 0 });
      expect(o.triggers.by_type.interval_scheduled).to.deep.equal({ active: 0, inactive: 1 });

      const buckets = o.events_per_minute.buckets;
      expect(new Date(o.events_per_minute.to).getTime()).to.equal(minuteStart + MINUTE);
      expect(buckets[CHART_MINUTES - 11]).to.include({ at: new Date(minuteStart - 10 * MINUTE).toISOString(), success: 3, failure: 1 });
      expect(buckets[CHART_MINUTES - 1]).to.include({ at: new Date(minuteStart).toISOString(), pending: 1 });
      const sum = (k: string) => buckets.reduce((n, b) => n + Number(b[k]), 0);
      expect([sum('success'), sum('failure'), sum('pending'), sum('published')]).to.deep.equal([3, 1, 1, 0]);

      expect(o.fire_lag).to.deep.equal({ window_seconds: 3600, sample_size: 100, p50_ms: 50, p99_ms: 99, max_ms: 100 });
      expect(o.outbox.backlog).to.equal(2);
      expect(o.outbox.waiting).to.equal(1);
      expect(o.outbox.oldest_backlog_age_seconds).to.be.within(25, 120);
      expect(o.deliveries).to.deep.include({ window_hours: 48, succeeded: 3, failed: 2, in_flight: 1 });
      // 48 h back falls in hours the sweep folds (older than the active view by an hour): the span starts at
      // the next whole hour.
      const from = new Date(o.deliveries.from).getTime();
      expect(from % HOUR, o.deliveries.from).to.equal(0);
      expect(from).to.be.within(now - 48 * HOUR, now - 47 * HOUR + 1000);
      expect(o.failed_events).to.equal(1);
      const gauge = async () => {
        const text = (await request(testApp(t)).get('/metrics').expect(200)).text;
        return ['active', 'archived'].map((r) => Number(new RegExp(`etp_event_logs\\{retention_status="${r}"\\} (\\d+)`).exec(text)?.[1]));
      };
      // active: the four events 10 minutes ago and the pending one; archived: the failure 5 h ago.
      expect(await gauge()).to.deep.equal([5, 1]);

      // The sweep's fold moves the minutes before its point into hours (the failure 5 h ago, the success
      // 3 days ago); the counts read from both stay the same.
      const folded = foldBefore(windowOf(t.config, new Date()));
      for (const rollup of ROLLUPS) while ((await foldCountsBefore(t.db, rollup, folded, FOLD_MAX_ROWS)) > 0);
      const [[left]] = (await t.db.raw('SELECT COUNT(*) AS n FROM event_counts WHERE minute < ?', [folded])) as [[{ n: number }]];
      expect(Number(left.n), 'minute rows before the fold point').to.equal(0);
      const [hours] = (await t.db.raw('SELECT kind, SUM(n) AS n FROM event_hours GROUP BY kind ORDER BY kind')) as [
        Array<{ kind: string; n: number }>,
      ];
      expect(hours.map((h) => [h.kind, Number(h.n)])).to.deep.equal([
        ['fired', 2],
        ['success', 1],
        ['failure', 1],
      ]);
      const after = await computeOverview(t.db, t.config, new Date());
      expect(after.deliveries).to.deep.include({ window_hours: 48, succeeded: 3, failed: 2, in_flight: 1 });
      expect(await gauge()).to.deep.equal([5, 1]);
    });

    it('serves requests within 2 s from one computation', async () => {
      const app = testApp(t);
      const [a, b] = await Promise.all([request(app).get('/api/v1/overview'), request(app).get('/api/v1/overview')]);
      expect(a.body.generated_at).to.equal(b.body.generated_at);
    });

    it('takes nearest-rank percentiles', () => {
      expect(quantile([], 0.5)).to.equal(null);
      expect(quantile([7], 0.99)).to.equal(7);
      expect(quantile([1, 2, 3, 4], 0.5)).to.equal(2);
      expect(quantile([1, 2, 3, 4], 0.99)).to.equal(4);
    });
  });

  describe('GET /api/v1/triggers?q=', () => {
    before(async () => {
      await insertTrigger('Billing Sync', 'webhook', 'active', ['team:billing']);
      await insertTrigger('billing-report', 'cron_scheduled', 'active');
      await insertTrigger('100% done_now', 'webhook', 'active', ['team:billing']);
      await insertTrigger('1000 done now', 'webhook', 'active');
    });
    const names = async (qs: string) =>
      ((await request(testApp(t)).get(`/api/v1/triggers?${qs}`).expect(200)).body.triggers as Array<{ name: string }>)
        .map((x) => x.name)
        .sort();

    it('finds names containing the text, whatever the case', async () => {
      expect(await names('q=BILLING')).to.deep.equal(['Billing Sync', 'billing-report']);
      expect(await names('q=sync&type=webhook')).to.deep.equal(['Billing Sync']);
    });
    it('matches % and _ literally', async () => {
      expect(await names(`q=${encodeURIComponent('0%')}`)).to.deep.equal(['100% done_now']);
      expect(await names('q=done_')).to.deep.equal(['100% done_now']);
    });
    it('combines with the tag filter and counts the matches in the pagination', async () => {
      const res = await request(testApp(t)).get('/api/v1/triggers?q=bill&tag=team:billing').expect(200);
      expect(res.body.triggers.map((x: { name: string }) => x.name)).to.deep.equal(['Billing Sync']);
      expect(res.body.pagination.total_records).to.equal(1);
    });
    it('refuses an empty search', async () => {
      await request(testApp(t)).get('/api/v1/triggers?q=').expect(400);
    });
  });

  describe('/dashboard', () => {
    before(function () {
      this.timeout(120_000);
      // `npm test` builds first; a lone run of this file builds the dashboard itself.
      if (!fs.existsSync(path.join(DASHBOARD_DIR, 'index.html'))) {
        execFileSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build-dashboard.mjs')], { stdio: 'inherit' });
      }
    });

    it('redirects /dashboard to /dashboard/ and serves index.html with no-cache and the strict CSP', async () => {
      const app = testApp(t);
      const r = await request(app).get('/dashboard').expect(301);
      expect(r.headers.location).to.equal('/dashboard/');
      const res = await request(app).get('/dashboard/').expect(200);
      expect(res.headers['content-type']).to.match(/text\/html/);
      expect(res.headers['cache-control']).to.equal('no-cache');
      expect(res.headers['content-security-policy']).to.equal(DASHBOARD_CSP);
      expect(DASHBOARD_CSP).to.include("script-src 'self'").and.include("frame-ancestors 'none'").and.not.include('unsafe');
      expect(res.text).to.not.match(/<script>|<style|style=|https?:\/\//);
    });

    it('serves the hashed assets for a year, and nothing from outside', async () => {
      const app = testApp(t);
      const html = (await request(app).get('/dashboard/').expect(200)).text;
      const assets = [...html.matchAll(/(?:src|href)="(assets\/[^"]+)"/g)].map((m) => m[1]!);
      expect(assets).to.have.length(3);
      for (const a of assets) {
        const res = await request(app).get(`/dashboard/${a}`).expect(200);
        expect(res.headers['cache-control']).to.equal('public, max-age=31536000, immutable');
        expect(res.headers['content-security-policy']).to.equal(DASHBOARD_CSP);
        // No fonts, scripts or styles fetched from elsewhere (the source-map comment aside).
        const body = res.text ?? String(res.body);
        expect(body.replace(/\/[/*]# sourceMappingURL=\S+/g, '')).to.not.match(/(?:url\(|import\s*\(|@import\s+)['"]?https?:/);
      }
    });

    it('sets the CSP on /dashboard only', async () => {
      const app = testApp(t);
      const api = await request(app).get('/api/v1/triggers').expect(200);
      expect(api.headers['content-security-policy']).to.equal(undefined);
      const missing = await request(app).get('/dashboard/assets/nope.js').expect(404);
      expect(missing.headers['content-security-policy']).to.equal(DASHBOARD_CSP);
    });
  });
});
