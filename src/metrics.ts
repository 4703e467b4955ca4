import client from 'prom-client';
import type { Db } from './db/knex';
import { countReady } from './db/outbox';
import { firedByRetention, triggerCounts } from './db/overview';
import { retentionWindow, statsFrom } from './db/events';
import { countDue } from './db/schedules';
import type { Lifecycle } from './events';

/** How often the event-loop lag histogram (etp_nodejs_eventloop_lag_*) samples the loop's delay. */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** Every metric of the platform, on one registry per process; roles subscribe them to lifecycle events. */
export class Metrics {
  readonly registry = new client.Registry();
  readonly httpDuration: client.Histogram<'method' | 'route' | 'status'>;
  readonly fireLag: client.Histogram;
  readonly published: client.Counter;
  readonly publishFailures: client.Counter;
  readonly batchSize: client.Histogram<'kind'>;
  readonly webhookGroupSize: client.Histogram;
  readonly webhookGroupDuration: client.Histogram;
  readonly deliveries: client.Counter<'outcome'>;
  readonly deliveryDuration: client.Histogram;
  readonly deliveryRetries: client.Counter;
  readonly dlq: client.Counter;
  readonly deleted: client.Counter;
  readonly slicesRetired: client.Counter;
  readonly replays: client.Counter;
  readonly deliveryControls: client.Counter;
  readonly webhookRejections: client.Counter;
  readonly deliveryAttempts: client.Counter<'outcome'>;
  readonly fireWindow: client.Gauge;
  readonly probes: client.Counter<'kind'>;
  readonly circuitOpen: client.Gauge<'origin'>;
  readonly flowWait: client.Histogram<'reason'>;
  private consumerLag: client.Gauge<'topic' | 'partition'> | null = null;

  // eslint-disable-next-line max-lines-per-function -- a table: each metric declared once, with its help text
  constructor(
    private db: Db | null,
    private retention: { activeSeconds: number; keepSeconds: number } = { activeSeconds: 7200, keepSeconds: 172_800 },
  ) {
    // The event-loop lag histogram samples every EVENT_LOOP_SAMPLE_MS (prom-client's default, 10 ms, woke an
    // idle process 100 times a second for it: the largest part of an idle relay's wake-ups).
    client.collectDefaultMetrics({ register: this.registry, prefix: 'etp_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    const r = [this.registry];
    this.httpDuration = new client.Histogram({
      name: 'etp_http_request_duration_seconds',
      help: 'HTTP request duration by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: r,
    });
    this.fireLag = new client.Histogram({
      name: 'etp_fire_lag_seconds',
      help: 'fired_at minus scheduled_for of scheduled events',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: r,
    });
    this.published = new client.Counter({ name: 'etp_events_published_total', help: 'Outbox rows published to Kafka', registers: r });
    this.probes = new client.Counter({
      name: 'etp_relay_probes_total',
      help: "Idle relay lanes' probes: one statement asking whether anything is due (kind schedules) or queued (kind outbox)",
      labelNames: ['kind'],
      registers: r,
    });
    this.publishFailures = new client.Counter({
      name: 'etp_outbox_publish_failures_total',
      help: 'Outbox rows whose publish failed (left unpublished for a retry)',
      registers: r,
    });
    this.batchSize = new client.Histogram({
      name: 'etp_relay_batch_size',
      help: 'Rows claimed per relay batch',
      labelNames: ['kind'],
      buckets: [1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000],
      registers: r,
    });
    // _count = group commits, _sum = webhook events in them: their ratio is the mean group size.
    this.webhookGroupSize = new client.Histogram({
      name: 'etp_webhook_group_size',
      help: 'Webhook events per group commit',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
      registers: r,
    });
    this.webhookGroupDuration = new client.Histogram({
      name: 'etp_webhook_group_duration_seconds',
      help: 'Time to write one webhook group commit (all attempts)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: r,
    });
    this.deliveries = new client.Counter({
      name: 'etp_deliveries_total',
      help: 'Delivery attempts by outcome',
      labelNames: ['outcome'],
      registers: r,
    });
    this.deliveryDuration = new client.Histogram({
      name: 'etp_delivery_duration_seconds',
      help: 'Duration of HTTP delivery attempts',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: r,
    });
    this.deliveryRetries = new client.Counter({
      name: 'etp_delivery_retries_total',
      help: 'Deliveries scheduled for a retry',
      registers: r,
    });
    this.dlq = new client.Counter({ name: 'etp_dlq_total', help: 'Events sent to the dead-letter topic', registers: r });
    this.deleted = new client.Counter({
      name: 'etp_events_deleted_total',
      help: 'Event logs deleted one by one by retention (rows no retired time slice held)',
      registers: r,
    });
    this.slicesRetired = new client.Counter({
      name: 'etp_event_slices_retired_total',
      help: 'Time slices of event_logs retired whole by retention (four hours of events each)',
      registers: r,
    });
    this.replays = new client.Counter({ name: 'etp_replays_total', help: 'Events replayed through the API', registers: r });
    this.deliveryControls = new client.Counter({
      name: 'etp_delivery_controls_total',
      help: "Operator actions on an event's delivery: retry now, cancel retries",
      labelNames: ['action'],
      registers: r,
    });
    this.webhookRejections = new client.Counter({
      name: 'etp_webhook_rejections_total',
      help: 'Webhook calls answered with an error, by code; recorded="false": left out of the request log (its buffer was full)',
      labelNames: ['code', 'recorded'],
      registers: r,
    });
    this.deliveryAttempts = new client.Counter({
      name: 'etp_delivery_attempts_total',
      help: 'HTTP delivery attempts recorded in the attempts history, by the outcome they led to',
      labelNames: ['outcome'],
      registers: r,
    });
    this.fireWindow = new client.Gauge({
      name: 'etp_relay_fire_window_seconds',
      help: 'The least wait of the fire loop after a batch that was not full: RELAY_FIRE_WINDOW, wider (up to RELAY_FIRE_WINDOW_MAX) while batches are small',
      registers: r,
    });
    this.circuitOpen = new client.Gauge({
      name: 'etp_circuit_open',
      help: "1 while a delivery endpoint origin's circuit is open (deliveries deferred), 0 once it closed again",
      labelNames: ['origin'],
      registers: r,
    });
    // Observed once per hold with the wait it schedules: _sum is the time deliveries were held, by reason.
    this.flowWait = new client.Histogram({
      name: 'etp_delivery_flow_wait_seconds',
      help: "Waits of deliveries held by their trigger's flow control (reason: rate, concurrency, order), one per hold; not attempts",
      labelNames: ['reason'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    });
    // Every reason's series exists from the start (at 0), so a dashboard shows "no holds" rather than no data.
    for (const reason of ['rate', 'concurrency', 'order']) this.flowWait.zero({ reason });

    const db0 = this.db;
    if (db0) {
      const gauge = (name: string, help: string, labelNames: string[], collect: (g: client.Gauge) => Promise<void>) =>
        new client.Gauge({
          name,
          help,
          labelNames,
          registers: r,
          async collect() {
            try {
              await collect(this);
            } catch {
              /* a scrape during a DB outage reports the previous values */
            }
          },
        });
      gauge('etp_outbox_backlog', 'Unpublished outbox rows', [], async (g) => g.set(await countReady(db0)));
      gauge('etp_schedules_due', 'Pending schedule rows whose fire_at has passed', [], async (g) => g.set(await countDue(db0)));
      gauge('etp_triggers', 'Triggers by type and status', ['type', 'status'], async (g) => {
        const rows = await triggerCounts(db0);
        g.reset();
        for (const row of rows) g.set({ type: row.type, status: row.status }, row.n);
      });
      // From the rollups, by whole minutes of fired_at (whole hours where the sweep has folded them): a read
      // of the window's hours and last minutes, not of its events.
      const retention = this.retention;
      gauge('etp_event_logs', 'Event logs by retention status (whole minutes of fired_at)', ['retention_status'], async (g) => {
        const w = retentionWindow(new Date(), retention.activeSeconds, retention.keepSeconds);
        const minute = (d: Date) => new Date(Math.ceil(d.getTime() / 60_000) * 60_000);
        const counts = await firedByRetention(db0, minute(w.activeFrom), statsFrom(minute(w.keepFrom), w));
        g.reset();
        g.set({ retention_status: 'active' }, counts.active);
        g.set({ retention_status: 'archived' }, counts.archived);
      });
    }
  }

  /**
   * etp_consumer_lag{topic,partition}: high watermark − committed offset of each partition the worker's
   * consumer holds, asked of the broker at scrape time (`source`, see Worker.lag()).
   */
  watchConsumerLag(source: () => Promise<Array<{ topic: string; partition: number; lag: number }>>): void {
    if (this.consumerLag) return;
    this.consumerLag = new client.Gauge({
      name: 'etp_consumer_lag',
      help: 'Messages not yet committed by the delivery worker: high watermark minus committed offset, per assigned partition',
      labelNames: ['topic', 'partition'],
      registers: [this.registry],
      async collect() {
        try {
          const lags = await source();
          this.reset();
          for (const l of lags) this.set({ topic: l.topic, partition: String(l.partition) }, l.lag);
        } catch {
          /* broker unreachable: the scrape reports the previous values */
        }
      },
    });
  }

  /** Lifecycle events become metric updates here, and only here. */
  subscribe(events: Lifecycle): void {
    events.onEvent('relay:fired', (e) => e.lagsSeconds.forEach((l) => this.fireLag.observe(Math.max(0, l))));
    events.onEvent('relay:claimed', (e) => this.batchSize.observe({ kind: e.kind }, e.count));
    events.onEvent('relay:fire_window', (e) => this.fireWindow.set(e.ms / 1000));
    events.onEvent('relay:published', (e) => this.published.inc(e.count));
    events.onEvent('relay:probed', (e) => this.probes.inc({ kind: e.kind }));
    events.onEvent('relay:publish_failed', (e) => this.publishFailures.inc(e.count));
    events.onEvent('relay:swept', (e) => {
      this.deleted.inc(e.deleted);
    });
    events.onEvent('relay:slices', (e) => this.slicesRetired.inc(e.retired));
    events.onEvent('worker:delivered', (e) => {
      this.deliveries.inc({ outcome: e.outcome });
      if (e.outcome !== 'skipped' && e.outcome !== 'deferred') this.deliveryDuration.observe(e.durationMs / 1000);
      if (e.outcome === 'retry') this.deliveryRetries.inc();
    });
    events.onEvent('worker:dlq', () => this.dlq.inc());
    events.onEvent('worker:circuit', (e) => this.circuitOpen.set({ origin: e.origin }, e.open ? 1 : 0));
    events.onEvent('worker:held', (e) => this.flowWait.observe({ reason: e.reason }, e.waitMs / 1000));
    events.onEvent('worker:attempt', (e) => this.deliveryAttempts.inc({ outcome: e.outcome }));
    events.onEvent('api:replayed', (e) => this.replays.inc(e.count));
    events.onEvent('api:delivery_control', (e) => this.deliveryControls.inc({ action: e.action }));
    events.onEvent('api:webhook_rejected', (e) => this.webhookRejections.inc({ code: e.code, recorded: String(e.recorded) }));
  }
}
