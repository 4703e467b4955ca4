/**
 * GET /api/v1/overview: the platform at a glance, for the dashboard. JSON computed from the
 * database, not parsed from the Prometheus text: any api process answers the same, whichever roles it runs.
 */
import { Router } from 'express';
import type { Config } from '../config';
import type { Db } from '../db/knex';
import { statsFrom, type ExecutionStatus } from '../db/events';
import { activeFailures, eventsPerMinute, outboxState, outcomesSince, triggerCounts } from '../db/overview';
import { FIRE_LAG_WINDOW_SECONDS, recentFireLags } from '../db/fire-lags';
import { TRIGGER_TYPES, type TriggerType } from '../triggers/types';
import { windowOf } from './events';

const MINUTE_MS = 60_000;
/** The chart's span: 120 one-minute buckets. */
export const CHART_MINUTES = 120;
/** Fire lag: the newest scheduled firings of the last hour, at most this many. */
export const LAG_WINDOW_SECONDS = FIRE_LAG_WINDOW_SECONDS;
export const LAG_SAMPLE_MAX = 1000;
export const DELIVERY_WINDOW_HOURS = 48;
/**
 * One computation serves every request for this long: a dashboard polls every few seconds, and N open
 * dashboards need not mean N times the reads.
 */
export const OVERVIEW_CACHE_MS = 2000;

const STATUSES: ExecutionStatus[] = ['pending', 'published', 'success', 'failure'];

/** The q-quantile of ascending values by the nearest-rank method; null when there are none. */
export function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** The overview's queries, run at once, and the answer assembled from them (the shape of the JSON, field by field). */
export async function computeOverview(db: Db, config: Config, now: Date) {
  // Whole minutes: the last bucket is the current (partial) minute.
  const to = new Date(Math.floor(now.getTime() / MINUTE_MS) * MINUTE_MS + MINUTE_MS);
  const from = new Date(to.getTime() - CHART_MINUTES * MINUTE_MS);
  const w = windowOf(config, now);
  // The delivery counts cover the whole minutes of the last DELIVERY_WINDOW_HOURS (within retention), from
  // the next whole hour where that start falls in hours the sweep has folded (statsFrom).
  const deliveriesFrom = Math.max(now.getTime() - DELIVERY_WINDOW_HOURS * 3600_000, w.keepFrom.getTime());
  const since = statsFrom(new Date(Math.ceil(deliveriesFrom / MINUTE_MS) * MINUTE_MS), w);
  const t = config.readTimeoutMs;
  const [triggers, perMinute, lags, outbox, outcomes, failed] = await Promise.all([
    triggerCounts(db),
    eventsPerMinute(db, from, to, t),
    recentFireLags(db, new Date(now.getTime() - LAG_WINDOW_SECONDS * 1000), LAG_SAMPLE_MAX),
    outboxState(db),
    outcomesSince(db, since, t),
    activeFailures(db, w.activeFrom, t),
  ]);

  const byType = Object.fromEntries(TRIGGER_TYPES.map((t) => [t, { active: 0, inactive: 0 }])) as Record<
    TriggerType,
    { active: number; inactive: number }
  >;
  const byStatus = { active: 0, inactive: 0 };
  for (const r of triggers) {
    byType[r.type][r.status] += r.n;
    byStatus[r.status] += r.n;
  }

  const buckets = Array.from({ length: CHART_MINUTES }, (_, i) => ({
    at: new Date(from.getTime() + i * MINUTE_MS).toISOString(),
    ...(Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<ExecutionStatus, number>),
  }));
  for (const r of perMinute) {
    const b = buckets[r.minute];
    if (b) b[r.status] += r.n;
  }

  const sorted = [...lags].sort((a, b) => a - b);
  return {
    generated_at: now.toISOString(),
    triggers: { total: byStatus.active + byStatus.inactive, by_status: byStatus, by_type: byType },
    events_per_minute: { from: from.toISOString(), to: to.toISOString(), buckets },
    fire_lag: {
      window_seconds: LAG_WINDOW_SECONDS,
      sample_size: sorted.length,
      p50_ms: quantile(sorted, 0.5),
      p99_ms: quantile(sorted, 0.99),
      max_ms: sorted.length > 0 ? sorted[sorted.length - 1]! : null,
    },
    outbox: {
      backlog: outbox.backlog,
      waiting: outbox.waiting,
      oldest_backlog_age_seconds: outbox.oldestCreatedAt ? Math.max(0, (now.getTime() - outbox.oldestCreatedAt.getTime()) / 1000) : null,
    },
    deliveries: {
      window_hours: DELIVERY_WINDOW_HOURS,
      from: since.toISOString(),
      succeeded: outcomes.success,
      failed: outcomes.failure,
      in_flight: outcomes.fired - outcomes.success - outcomes.failure,
    },
    failed_events: failed,
  };
}

export type Overview = Awaited<ReturnType<typeof computeOverview>>;

export function overviewRoutes(deps: { db: Db; config: Config }): Router {
  const r = Router();
  let cached: { at: number; value: Promise<Overview> } | null = null;
  r.get('/overview', async (_req, res) => {
    const now = Date.now();
    if (!cached || now - cached.at >= OVERVIEW_CACHE_MS) {
      const value = computeOverview(deps.db, deps.config, new Date(now));
      cached = { at: now, value };
      // A failed computation is not kept: the next request tries again.
      value.catch(() => {
        if (cached?.value === value) cached = null;
      });
    }
    res.json(await cached.value);
  });
  return r;
}
