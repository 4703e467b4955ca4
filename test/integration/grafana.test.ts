import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { createTestEnv, REPO_ROOT, type TestEnv } from '../helpers/env';
import { Receiver } from '../helpers/receiver';
import { until } from '../helpers/until';
import { startPlatform, type Platform } from '../../src/platform';
import { createLogger } from '../../src/logger';

/*
 * docs/grafana/dashboard.json must not rot: every metric it queries, and every label it groups or names a
 * series by, exists in the /metrics output of the real platform (api + relay + worker in this process, on
 * a database and topics of its own) once it has fired, published, delivered, retried, dead-lettered and
 * replayed something — labelled series only appear once they have a value.
 */

const DASHBOARD = path.join(REPO_ROOT, 'docs', 'grafana', 'dashboard.json');

interface Target {
  expr: string;
  legendFormat?: string;
  refId: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}

/** Sample names of a Prometheus text exposition, each with the label names seen on it. */
function parseExposition(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s/.exec(line);
    if (!m) continue;
    const labels = out.get(m[1]!) ?? new Set<string>();
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l[1]!);
    out.set(m[1]!, labels);
  }
  return out;
}

/** What a dashboard target needs from /metrics: its metric names, and the labels it groups by or names series with. */
function requirements(t: Target): { metrics: string[]; labels: string[] } {
  const metrics = [...new Set([...t.expr.matchAll(/\b(etp_[a-z0-9_]+)\b/g)].map((m) => m[1]!))];
  const labels = new Set<string>();
  for (const m of t.expr.matchAll(/\bby\s*\(([^)]*)\)/g)) m[1]!.split(',').forEach((l) => l.trim() && labels.add(l.trim()));
  for (const m of t.expr.matchAll(/\{([^}]*)\}/g)) for (const l of m[1]!.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)/g)) labels.add(l[1]!);
  for (const m of (t.legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) labels.add(m[1]!);
  return { metrics, labels: [...labels] };
}

/** The problems of one target against the exposition: missing metrics, labels no queried metric carries. */
function missing(t: Target, samples: Map<string, Set<string>>): string[] {
  const { metrics, labels } = requirements(t);
  const problems = metrics.filter((m) => !samples.has(m)).map((m) => `metric ${m}`);
  for (const l of labels) {
    if (!metrics.some((m) => samples.get(m)?.has(l))) problems.push(`label ${l} on ${metrics.join(', ')}`);
  }
  return problems;
}

describe('Grafana dashboard (docs/grafana/dashboard.json)', function () {
  this.timeout(180_000);
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as {
    uid: string;
    title: string;
    panels: Panel[];
    templating: { list: Array<{ name: string; type: string; query: string }> };
  };
  const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));

  it('is an importable dashboard: a uid, a Prometheus datasource variable, panels with unique ids and a place on the grid', () => {
    expect(dashboard.uid).to.match(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.templating.list).to.deep.include({
      ...dashboard.templating.list[0],
      name: 'datasource',
      type: 'datasource',
      query: 'prometheus',
    });
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).to.equal(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos.w, p.title).to.be.within(1, 24);
      expect(p.gridPos.x + p.gridPos.w, p.title).to.be.at.most(24);
      if (p.type === 'row') continue;
      expect(p.datasource, p.title).to.deep.equal({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets ?? [], p.title).to.not.be.empty;
    }
    // What the issue asks to see.
    const queried = new Set(targets.flatMap((t) => requirements(t).metrics));
    for (const m of [
      'etp_fire_lag_seconds_bucket',
      'etp_events_published_total',
      'etp_outbox_backlog',
      'etp_deliveries_total',
      'etp_dlq_total',
      'etp_relay_batch_size_bucket',
    ]) {
      expect([...queried], m).to.include(m);
    }
  });

  it('finds a made-up metric or label missing (the check below can fail)', () => {
    const samples = parseExposition('# TYPE etp_x_total counter\netp_x_total{outcome="success"} 1\netp_y 2\n');
    expect(missing({ refId: 'A', expr: 'sum by (outcome) (rate(etp_x_total[5m]))' }, samples)).to.deep.equal([]);
    expect(missing({ refId: 'A', expr: 'rate(etp_not_a_metric[5m])' }, samples)).to.deep.equal(['metric etp_not_a_metric']);
    expect(missing({ refId: 'A', expr: 'etp_y', legendFormat: '{{kind}}' }, samples)).to.deep.equal(['label kind on etp_y']);
  });

  describe('against the /metrics of the running platform', () => {
    let t: TestEnv;
    let platform: Platform;
    let receiver: Receiver;
    let samples: Map<string, Set<string>>;

    before(async function () {
      this.timeout(180_000);
      t = await createTestEnv('grafana');
      platform = await startPlatform(t.config, ['api', 'relay', 'worker'], { logger: createLogger('error', 'test'), migrate: false });
      receiver = await new Receiver().start();
      receiver.respond = (r) => (r.path === '/down' ? { status: 500, body: 'down' } : { status: 200 });
      const api = async (method: string, p: string, body?: unknown) => {
        const res = await fetch(`http://127.0.0.1:${platform.ports.api}/api/v1${p}`, {
          method,
          headers: body === undefined ? {} : { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        expect(res.status, `${method} ${p}`).to.be.within(200, 299);
        return (await res.json()) as Record<string, string>;
      };

      // A scheduled firing (fire lag, relay batches, publishing) delivered with success …
      const scheduled = await api('POST', '/triggers', {
        name: 'due-now',
        type: 'time_scheduled',
        config: { endpoint: receiver.url('/ok'), delay_seconds: 0 },
      });
      // … and a webhook event whose endpoint fails: a retry, then failure and a dead letter; then a replay.
      const failing = await api('POST', '/triggers', {
        name: 'down',
        type: 'webhook',
        config: { endpoint: receiver.url('/down'), schema: {}, retry: { max_attempts: 2, backoff_ms: 20 } },
      });
      const fired = await api('POST', `/webhook/${failing.id}`, { n: 1 });
      const outcome = async (where: Record<string, string>) =>
        ((await t.db('event_logs').where(where).first()) as { execution_status: string } | undefined)?.execution_status;
      await until(async () => (await outcome({ trigger_id: scheduled.id! })) === 'success', {
        timeoutMs: 60_000,
        message: 'scheduled event delivered',
      });
      await until(async () => (await outcome({ id: fired.event_id! })) === 'failure', {
        timeoutMs: 60_000,
        message: 'webhook event failed',
      });
      await api('POST', `/events/${fired.event_id}/replay`);

      const text = await until(
        async () => {
          const res = await fetch(`http://127.0.0.1:${platform.ports.api}/metrics`);
          const body = await res.text();
          // The dead letter goes out through the outbox: wait until the worker has counted it.
          return /^etp_dlq_total [1-9]/m.test(body) ? body : null;
        },
        { timeoutMs: 60_000, message: 'the dead letter counted' },
      );
      samples = parseExposition(text);
    });

    after(async () => {
      await platform?.stop();
      await receiver?.stop();
      await t?.cleanup();
    });

    it('exposes every metric and label each panel queries', () => {
      const problems = targets.flatMap((t) => missing(t, samples).map((p) => `${t.panel} (${t.refId}): ${p}`));
      expect(problems).to.deep.equal([]);
      expect(targets.length).to.be.greaterThan(10);
    });
  });
});
