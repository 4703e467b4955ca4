import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { ApiError, api, query } from '../api';
import { Card, ErrorNotice, Facts, JsonBlock, Loading, Runs, Status, StatusBadge, Time } from '../components';
import { formatCount, shortId } from '../format';
import { href, navigate, usePoll } from '../hooks';
import { TYPE_LABELS, type EventPage, type Schedule, type Trigger, type TriggerStats, type WebhookCall } from '../types';
import { EventRows } from './events';

interface Loaded {
  trigger: Trigger;
  upcoming: Schedule | null;
  stats: TriggerStats;
  events: EventPage;
  calls: WebhookCall[] | null;
}

async function load(id: string): Promise<Loaded> {
  const trigger = await api<Trigger>('GET', `/triggers/${id}`);
  const [upcoming, stats, events, calls] = await Promise.all([
    trigger.type === 'webhook' ? Promise.resolve(null) : api<Schedule>('GET', `/triggers/${id}/upcoming?count=10`),
    api<TriggerStats>('GET', `/triggers/${id}/stats`),
    api<EventPage>('GET', `/events${query({ trigger_id: id, limit: 10 })}`),
    trigger.type === 'webhook'
      ? api<{ requests: WebhookCall[] }>('GET', `/triggers/${id}/requests?limit=20`).then((r) => r.requests)
      : Promise.resolve(null),
  ]);
  return { trigger, upcoming, stats, events, calls };
}

/** Copies with the Clipboard API where the page may (https, localhost), else by selecting the field's text. */
async function copyText(input: HTMLInputElement): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(input.value);
      return true;
    }
  } catch {
    /* fall back below */
  }
  input.select();
  return document.execCommand('copy');
}

function WebhookUrl({ url }: { url: string }) {
  const field = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<string | null>(null);
  return (
    <div class="copy-row">
      <label for="webhook-url">Webhook URL</label>
      <div class="copy-controls">
        <input id="webhook-url" ref={field} readOnly value={url} onFocus={(e) => e.currentTarget.select()} />
        <button
          type="button"
          onClick={async () => {
            const ok = field.current ? await copyText(field.current) : false;
            setCopied(ok ? 'Copied to the clipboard.' : 'Copy failed: select the URL and copy it by hand.');
          }}
        >
          Copy
        </button>
      </div>
      {copied ? <Status>{copied}</Status> : null}
    </div>
  );
}

export function TriggerPageView({ id }: { id: string }) {
  const { data, error, reload } = usePoll(() => load(id), [id]);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<ComponentChildren>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);

  if (error instanceof ApiError && error.status === 404) {
    return (
      <>
        <h1>Trigger not found</h1>
        <p>
          There is no trigger with id <code>{id}</code>. <a href={href('/triggers')}>All triggers</a>
        </p>
      </>
    );
  }
  if (!data) {
    return (
      <>
        <ErrorNotice error={error} what="Could not load the trigger" />
        <Loading what="the trigger" />
      </>
    );
  }
  const { trigger: t, upcoming, stats, events, calls } = data;

  async function act(what: () => Promise<ComponentChildren>) {
    setBusy(true);
    setActionError(null);
    setMessage(null);
    try {
      setMessage(await what());
      reload();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  }

  const testRun = () =>
    act(async () => {
      const r = await api<{ event_id: string }>('POST', `/triggers/${t.id}/test`, {});
      return (
        <>
          Test run fired: event <a href={href(`/events/${r.event_id}`)}>{shortId(r.event_id)}</a>.
        </>
      );
    });
  const setStatus = (status: 'active' | 'inactive') =>
    act(async () => {
      await api('PUT', `/triggers/${t.id}`, { status });
      return status === 'active' ? 'Resumed: the next run is scheduled.' : 'Paused: nothing fires until it is resumed.';
    });
  const remove = async () => {
    setBusy(true);
    try {
      await api('DELETE', `/triggers/${t.id}`);
      navigate('/triggers');
    } catch (e) {
      setActionError(e);
      setBusy(false);
    }
  };

  const { has_secret: hasSecret, ...shownConfig } = t.config;
  const s = stats.by_execution_status;
  return (
    <>
      <p class="crumbs">
        <a href={href('/triggers')}>Triggers</a> /
      </p>
      <div class="page-head">
        <h1 class="trigger-title">{t.name}</h1>
        <StatusBadge status={t.status} />
      </div>
      <div class="actions" role="group" aria-label="Trigger actions">
        <button type="button" class="button-primary" disabled={busy} onClick={testRun}>
          Test run
        </button>
        {t.status === 'active' ? (
          <button type="button" disabled={busy} onClick={() => setStatus('inactive')}>
            Pause
          </button>
        ) : (
          <button type="button" disabled={busy} onClick={() => setStatus('active')}>
            Resume
          </button>
        )}
        <a class="button" href={href(`/triggers/${t.id}/edit`)}>
          Edit
        </a>
        {confirmDelete ? (
          <span class="confirm" role="group" aria-label="Confirm delete">
            <span>Delete this trigger? Its event logs stay.</span>
            <button type="button" class="button-danger" disabled={busy} onClick={remove}>
              Yes, delete
            </button>
            <button type="button" onClick={() => setConfirmDelete(false)}>
              Cancel
            </button>
          </span>
        ) : (
          <button type="button" class="button-danger" disabled={busy} onClick={() => setConfirmDelete(true)}>
            Delete
          </button>
        )}
      </div>
      {message ? <Status>{message}</Status> : null}
      <ErrorNotice error={actionError} />
      <ErrorNotice error={error} what="Refresh failed" />

      <div class="cards cards-roomy">
        <Card title="Trigger">
          <Facts
            items={[
              ['Type', TYPE_LABELS[t.type] ?? t.type],
              ['Status', t.status],
              ['Next run', t.type === 'webhook' ? 'when its webhook URL is called' : <Time iso={t.next_scheduled_run} relative />],
              ['Tags', t.tags.length ? t.tags.join(', ') : '—'],
              ['Id', <code key="id">{t.id}</code>],
              ['Created', <Time key="c" iso={t.created_at} />],
              ['Updated', <Time key="u" iso={t.updated_at} />],
            ]}
          />
          {t.webhook_url ? <WebhookUrl url={t.webhook_url} /> : null}
        </Card>
        <Card title={`Last ${stats.window_hours} h`}>
          <Facts
            items={[
              ['Events', formatCount(stats.total)],
              ['Succeeded', formatCount(s.success ?? 0)],
              ['Failed', formatCount(s.failure ?? 0)],
              ['In flight', formatCount((s.pending ?? 0) + (s.published ?? 0))],
              ['Last fired', <Time key="l" iso={stats.last_fired_at} relative />],
            ]}
          />
          {(s.failure ?? 0) > 0 ? (
            <p>
              <a href={href('/failed', { trigger_id: t.id })}>Failed events of this trigger</a>
            </p>
          ) : null}
        </Card>
        {upcoming ? (
          <Card title={`Next runs (${String(t.config.timezone ?? 'UTC')})`}>
            {upcoming.status === 'inactive' ? <p class="muted">Paused: these are the runs resuming it now would give.</p> : null}
            {upcoming.occurrences.length === 0 ? (
              <p class="empty">Nothing left to fire.</p>
            ) : (
              <Runs occurrences={upcoming.occurrences} label="Next runs" />
            )}
          </Card>
        ) : null}
        <Card title="Config" wide>
          {t.type === 'webhook' ? <p class="muted">Secret: {hasSecret ? 'set (never shown)' : 'none'}</p> : null}
          <JsonBlock value={shownConfig} label="Trigger config" />
        </Card>
        {calls ? (
          <Card title="Recent calls" wide>
            {calls.length === 0 ? <p class="empty">No calls yet.</p> : <CallRows calls={calls} />}
          </Card>
        ) : null}
        <Card title="Recent events" wide>
          {events.events.length === 0 ? (
            <p class="empty">No events yet.</p>
          ) : (
            <EventRows events={events.events} showTrigger={false} caption="Recent events of this trigger" />
          )}
          <p>
            <a href={href('/events', { trigger_id: t.id })}>All events of this trigger</a>
          </p>
        </Card>
      </div>
    </>
  );
}

/** A webhook trigger's inbound calls, accepted and rejected, newest first: "my sender says it posted". */
function CallRows({ calls }: { calls: WebhookCall[] }) {
  return (
    <table class="list calls">
      <caption class="visually-hidden">Recent inbound calls of this webhook, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Received</th>
          <th scope="col">Answer</th>
          <th scope="col">Signature</th>
          <th scope="col" class="num">
            Body
          </th>
          <th scope="col">Reason / event</th>
        </tr>
      </thead>
      <tbody>
        {calls.map((c, i) => (
          <tr key={`${c.received_at}-${i}`} class={`call-row call-${c.outcome}`}>
            <td data-label="Received">
              <Time iso={c.received_at} relative />
            </td>
            <td data-label="Answer">
              {c.http_status}
              {c.code ? <span class="muted"> {c.code}</span> : null}
            </td>
            <td data-label="Signature">{c.signature.replace('_', ' ')}</td>
            <td data-label="Body" class="num">
              {formatCount(c.body_bytes)} B
            </td>
            <td data-label="Reason / event" class="error-cell">
              {c.event_id ? <a href={href(`/events/${c.event_id}`)}>{shortId(c.event_id)}</a> : c.reason}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
