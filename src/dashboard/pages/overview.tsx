import { api } from '../api';
import { EventsChart } from '../chart';
import { Card, ErrorNotice, Loading } from '../components';
import { formatCount, formatMs } from '../format';
import { href, usePoll } from '../hooks';
import { TRIGGER_TYPES, TYPE_LABELS, type Overview } from '../types';

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
  return (
    <>
      <h1>Overview</h1>
      <ErrorNotice error={error} what="Could not load the overview" />
      {!data ? (
        <Loading what="the overview" />
      ) : (
        <div class="cards">
          <Card title="Triggers">
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
          <Card title="Fire lag">
            <div class="bigs">
              <Big value={formatMs(data.fire_lag.p50_ms)} label="p50" />
              <Big value={formatMs(data.fire_lag.p99_ms)} label="p99" tone={(data.fire_lag.p99_ms ?? 0) > 1000 ? 'warn' : undefined} />
            </div>
            <p class="muted">
              Over the last {formatCount(data.fire_lag.sample_size)} scheduled firings of the past hour (max{' '}
              {formatMs(data.fire_lag.max_ms)}).
            </p>
          </Card>
          <Card title="Outbox">
            <div class="bigs">
              <Big value={formatCount(data.outbox.backlog)} label="to publish" tone={data.outbox.backlog > 1000 ? 'warn' : undefined} />
              <Big value={formatCount(data.outbox.waiting)} label="waiting (retries)" />
            </div>
            <p class="muted">
              {data.outbox.oldest_backlog_age_seconds === null
                ? 'Nothing waits to be published.'
                : `Oldest row waiting ${formatMs(data.outbox.oldest_backlog_age_seconds * 1000)}.`}
            </p>
          </Card>
          <Card title={`Deliveries (${data.deliveries.window_hours} h)`}>
            <div class="bigs">
              <Big value={formatCount(data.deliveries.succeeded)} label="succeeded" tone="good" />
              <Big value={formatCount(data.deliveries.failed)} label="failed" tone={data.deliveries.failed > 0 ? 'bad' : undefined} />
              <Big value={formatCount(data.deliveries.in_flight)} label="in flight" />
            </div>
          </Card>
          <Card title="Failed events">
            <div class="bigs">
              <Big value={formatCount(data.failed_events)} label="in the active view" tone={data.failed_events > 0 ? 'bad' : undefined} />
            </div>
            <p>
              <a href={href('/failed')}>Review and replay failed events</a>
            </p>
          </Card>
          <Card title="Events per minute (2 h)" wide>
            <EventsChart buckets={data.events_per_minute.buckets} />
          </Card>
        </div>
      )}
    </>
  );
}
