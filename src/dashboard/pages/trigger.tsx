import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, query } from '../api';
import { Card, ErrorNotice, Facts, JsonBlock, Loading, Runs, Status, StatusBadge, Time } from '../components';
import { exampleFromSchema } from '../example';
import { formatCount, plural, pretty, shortId } from '../format';
import { href, navigate, usePoll } from '../hooks';
import { TYPE_LABELS, isCompleted, type EventPage, type Schedule, type Trigger, type TriggerStats, type WebhookCall } from '../types';
import { formatInZone, useZoneChoice, zoneFor } from '../zone';
import { EventRows } from './events';

/** What pausing means for this type of trigger, in the operator's words. */
function pausedMeaning(t: Trigger): string {
  switch (t.type) {
    case 'webhook':
      return 'Calls to its webhook URL are answered 409 Conflict and their payloads are not kept: senders must send again after it is resumed.';
    case 'time_scheduled':
      return 'It will not fire at its run time unless it is resumed before then; a run time that passes while paused is not made up.';
    default:
      return 'No runs fire while it is paused; the runs due meanwhile are skipped, not made up when it is resumed.';
  }
}

/** What resuming did, from the trigger as the API answered the resume. */
function resumedMeaning(t: Trigger, zone: string): string {
  if (t.type === 'webhook') return 'Resumed: calls to its webhook URL are accepted again.';
  if (!t.next_scheduled_run) {
    return t.type === 'time_scheduled'
      ? 'Resumed, but its run time has passed: it will not fire. Edit its run time to schedule it again.'
      : 'Resumed, but its schedule has no run left (its end time has passed).';
  }
  return `Resumed: the next run is at ${formatInZone(t.next_scheduled_run, zone)}.`;
}

/** A test run's payload error in plain words: "/payload/order/id" as "order.id". */
function payloadField(field: string): string {
  const path = field
    .replace(/^\/payload\/?/, '')
    .split('/')
    .filter(Boolean)
    .join('.');
  return path ? `${path}: ` : '';
}

/** The payload box of a test run: pre-filled, checked as JSON before it is sent, errors shown on the box. */
function TestRunForm({ t, onFired, onClose }: { t: Trigger; onFired: (eventId: string) => void; onClose: () => void }) {
  const initial = () => {
    if (t.type === 'webhook') return pretty(exampleFromSchema(t.config.schema));
    return pretty(t.config.payload ?? null);
  };
  const [text, setText] = useState(initial);
  const [error, setError] = useState<string[] | null>(null);
  const [busy, setBusy] = useState(false);
  const box = useRef<HTMLTextAreaElement>(null);
  useEffect(() => box.current?.focus(), []);
  const hasExample = t.type === 'webhook' && typeof t.config.schema === 'object' && t.config.schema !== null;

  const submit = async (e: Event) => {
    e.preventDefault();
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch (err) {
      setError([`Not valid JSON: ${(err as Error).message}`]);
      box.current?.focus();
      return;
    }
    setBusy(true);
    try {
      const r = await api<{ event_id: string }>('POST', `/triggers/${t.id}/test`, { payload });
      setError(null);
      onFired(r.event_id);
    } catch (err) {
      const fields = err instanceof ApiError ? (err.problem.errors ?? []) : [];
      setError(
        fields.length > 0 ? fields.map((f) => `${payloadField(f.field)}${f.message}`) : [err instanceof Error ? err.message : String(err)],
      );
      box.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="test-run" aria-label="Test run" onSubmit={submit}>
      <div class="field field-wide">
        <label for="test-payload">Test payload (JSON)</label>
        <span id="test-payload-hint" class="hint">
          {t.type === 'webhook'
            ? hasExample
              ? 'Started from the schema’s example, defaults and required fields: edit it to what a sender would post. It is checked against the schema.'
              : 'What a sender would post.'
            : 'The trigger’s configured payload; a test run may send another.'}
        </span>
        <textarea
          id="test-payload"
          ref={box}
          rows={8}
          spellcheck={false}
          value={text}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={error ? 'test-payload-hint test-payload-error' : 'test-payload-hint'}
          onInput={(e) => {
            setText(e.currentTarget.value);
            // An error about the old text no longer applies to the new one.
            if (error) setError(null);
          }}
        />
        {error ? (
          <div id="test-payload-error" class="field-error" role="alert">
            {error.length === 1 ? (
              error[0]
            ) : (
              <ul>
                {error.map((m, i) => (
                  <li key={i}>{m}</li>
                ))}
              </ul>
            )}
          </div>
        ) : null}
      </div>
      <div class="actions">
        <button type="submit" class="button-primary" disabled={busy}>
          Send test run
        </button>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </form>
  );
}

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
  const [testing, setTesting] = useState(false);
  const { choice } = useZoneChoice();
  // Focus follows the confirmation and the test-run box: into them when they open, back to the button
  // that opened them when they close (never to the page's body).
  const deleteButton = useRef<HTMLButtonElement>(null);
  const keepButton = useRef<HTMLButtonElement>(null);
  const testButton = useRef<HTMLButtonElement>(null);
  const wasOpen = useRef({ confirm: false, testing: false });
  useEffect(() => {
    if (confirmDelete) keepButton.current?.focus();
    else if (wasOpen.current.confirm) deleteButton.current?.focus();
    if (!testing && wasOpen.current.testing) testButton.current?.focus();
    wasOpen.current = { confirm: confirmDelete, testing };
  }, [confirmDelete, testing]);

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

  const zone = typeof t.config.timezone === 'string' ? t.config.timezone : null;
  const shownZone = zoneFor(choice, zone);
  const completed = isCompleted(t);
  const fired = (eventId: string) => {
    setActionError(null);
    setMessage(
      <>
        Test run fired: event <a href={href(`/events/${eventId}`)}>{shortId(eventId)}</a>.
      </>,
    );
    reload();
  };
  const setStatus = (status: 'active' | 'inactive') =>
    act(async () => {
      const updated = await api<Trigger>('PUT', `/triggers/${t.id}`, { status });
      return status === 'active' ? resumedMeaning(updated, shownZone) : `Paused. ${pausedMeaning(t)}`;
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
        <StatusBadge status={completed ? 'completed' : t.status} />
      </div>
      <div class="actions" role="group" aria-label="Trigger actions">
        <button
          type="button"
          class="button-primary"
          ref={testButton}
          disabled={busy}
          aria-expanded={testing}
          aria-controls={testing ? 'test-run' : undefined}
          onClick={() => setTesting(!testing)}
        >
          Test run
        </button>
        {completed ? null : t.status === 'active' ? (
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
            <button type="button" ref={keepButton} onClick={() => setConfirmDelete(false)}>
              Cancel
            </button>
          </span>
        ) : (
          <button type="button" class="button-danger" ref={deleteButton} disabled={busy} onClick={() => setConfirmDelete(true)}>
            Delete
          </button>
        )}
      </div>
      {testing ? (
        <div id="test-run">
          <TestRunForm t={t} onFired={fired} onClose={() => setTesting(false)} />
        </div>
      ) : null}
      {completed ? (
        <p class="notice">
          Completed: a one-shot trigger fires once, and this one has nothing left to fire. Edit its run time to schedule it again.
        </p>
      ) : t.status === 'inactive' ? (
        <p class="notice paused-note">Paused. {pausedMeaning(t)}</p>
      ) : null}
      {message ? <Status>{message}</Status> : null}
      <ErrorNotice error={actionError} />
      <ErrorNotice error={error} what="Refresh failed" />

      <div class="cards cards-roomy">
        <Card title="Trigger">
          <Facts
            items={[
              ['Type', TYPE_LABELS[t.type] ?? t.type],
              ['Status', completed ? 'completed (fired)' : t.status === 'inactive' ? 'paused' : 'active'],
              [
                'Next run',
                t.type === 'webhook' ? (
                  'when its webhook URL is called'
                ) : t.next_scheduled_run ? (
                  <Time key="n" iso={t.next_scheduled_run} relative zone={zone} />
                ) : completed ? (
                  'none: it has fired'
                ) : t.status === 'inactive' ? (
                  'none while paused'
                ) : (
                  'none left'
                ),
              ],
              ...(zone ? ([['Time zone', zone]] as Array<[string, ComponentChildren]>) : []),
              ['Tags', t.tags.length ? t.tags.join(', ') : '—'],
              ['Id', <code key="id">{t.id}</code>],
              ['Created', <Time key="c" iso={t.created_at} zone={zone} />],
              ['Updated', <Time key="u" iso={t.updated_at} zone={zone} />],
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
              ['Last fired', <Time key="l" iso={stats.last_fired_at} relative zone={zone} />],
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
              {plural(c.body_bytes, 'byte')}
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
