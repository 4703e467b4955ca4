import { api } from '../api';
import { EventsChart } from '../chart';
import { Card, ErrorNotice, Loading } from '../components';
import { formatCount, formatMs, plural } from '../format';
import { href, usePoll } from '../hooks';
import { TRIGGER_TYPES, TYPE_LABELS, type Overview } from '../types';
import { useZoneChoice, zoneFor } from '../zone';

function Big({ value, label, tone }: { value: string; label: string; tone?: 'good' | 'bad' | 'warn' }) {
  return (
    <div class={`big${tone ? ` big-${tone}` : ''}`}>
      <span class="big-value">{value}</span>
      <span class="big-label">{label}</span>
    </div>
  );
}

export function OverviewPage() {
  const { data, error } = usePoll(() => api<Overview>('GET', '/overview'), []);
  // The chart mixes every trigger: "each trigger's zone" draws it in the browser's.
  const chartZone = zoneFor(useZoneChoice().choice, null);
  return (
    <>
      <h1>Overview</h1>
      <ErrorNotice error={error} what="Could not load the overview" />
      {!data ? (
        <Loading what="the overview" />
      ) : (
        <div class="cards">
          <Card title="Triggers">
            <p class="card-note">The triggers defined, by type; paused ones fire nothing until resumed.</p>
            <div class="bigs">
              <Big value={formatCount(data.triggers.total)} label="total" />
              <Big value={formatCount(data.triggers.by_status.active)} label="active" tone="good" />
              <Big value={formatCount(data.triggers.by_status.inactive)} label="paused" />
            </div>
            <table class="compact">
              <caption class="visually-hidden">Triggers by type and status</caption>
              <thead>
                <tr>
                  <th scope="col">Type</th>
                  <th scope="col" class="num">
                    Active
                  </th>
                  <th scope="col" class="num">
                    Paused
                  </th>
                </tr>
              </thead>
              <tbody>
                {TRIGGER_TYPES.map((t) => (
                  <tr key={t}>
                    <th scope="row">
                      <a href={href('/triggers', { type: t })}>{TYPE_LABELS[t]}</a>
                    </th>
                    <td class="num">{formatCount(data.triggers.by_type[t].active)}</td>
                    <td class="num">{formatCount(data.triggers.by_type[t].inactive)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Card>
          <Card title="Schedule punctuality">
            <p class="card-note">How late scheduled runs fired after their planned time (any configured jitter included).</p>
            <div class="bigs">
              <Big value={formatMs(data.fire_lag.p50_ms)} label="typical (median)" />
              <Big
                value={formatMs(data.fire_lag.p99_ms)}
                label="worst 1 in 100"
                tone={(data.fire_lag.p99_ms ?? 0) > 1000 ? 'warn' : undefined}
              />
            </div>
            <p class="muted">
              {data.fire_lag.sample_size === 0
                ? 'No scheduled run fired in the past hour.'
                : `Over the last ${plural(data.fire_lag.sample_size, 'scheduled run')} of the past hour (latest: ${formatMs(data.fire_lag.max_ms)}).`}
            </p>
          </Card>
          <Card title="Waiting to be sent">
            <p class="card-note">
              Events are written to the database first, then handed to Kafka for delivery; retries wait there for their time.
            </p>
            <div class="bigs">
              <Big
                value={formatCount(data.outbox.backlog)}
                label="not yet handed to Kafka"
                tone={data.outbox.backlog > 1000 ? 'warn' : undefined}
              />
              <Big value={formatCount(data.outbox.waiting)} label="retries waiting for their time" />
            </div>
            <p class="muted">
              {data.outbox.oldest_backlog_age_seconds === null
                ? 'Nothing is waiting to be handed over.'
                : `The oldest has waited ${formatMs(data.outbox.oldest_backlog_age_seconds * 1000)}.`}
            </p>
          </Card>
          <Card title={`Deliveries (${data.deliveries.window_hours} h)`}>
            <p class="card-note">What became of the events fired in the last {data.deliveries.window_hours} hours.</p>
            <div class="bigs">
              <Big value={formatCount(data.deliveries.succeeded)} label="succeeded" tone="good" />
              <Big value={formatCount(data.deliveries.failed)} label="failed" tone={data.deliveries.failed > 0 ? 'bad' : undefined} />
              <Big value={formatCount(data.deliveries.in_flight)} label="still being delivered or retried" />
            </div>
          </Card>
          <Card title="Failed events">
            <p class="card-note">
              Recent events whose delivery gave up (those on the Failed page; older ones are archived). They can be replayed once the
              endpoint is fixed.
            </p>
            <div class="bigs">
              <Big value={formatCount(data.failed_events)} label="gave up, recent" tone={data.failed_events > 0 ? 'bad' : undefined} />
            </div>
            <p>
              <a href={href('/failed')}>Review and replay failed events</a>
            </p>
          </Card>
          <Card title="Events per minute (2 h)" wide>
            <p class="card-note">Events fired each minute of the last two hours, by where their delivery stands now.</p>
            <EventsChart buckets={data.events_per_minute.buckets} zone={chartZone} />
          </Card>
        </div>
      )}
    </>
  );
}
