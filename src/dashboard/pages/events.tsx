import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, newKey, query } from '../api';
import { ErrorNotice, Loading, RetryState, Status, StatusBadge, Time, TriggerRef } from '../components';
import { plural, shortId } from '../format';
import { href, navigate, usePoll, type Route } from '../hooks';
import { EVENT_SOURCES, EXECUTION_STATUSES, deliveryState, isFinal, type EventPage, type TriggerEvent } from '../types';
import { browserZone, useZoneChoice } from '../zone';

const PAGE_SIZE = 25;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function EventRows({ events, showTrigger = true, caption }: { events: TriggerEvent[]; showTrigger?: boolean; caption: string }) {
  return (
    <table class="list">
      <caption class="visually-hidden">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Fired</th>
          <th scope="col">Status</th>
          <th scope="col">Source</th>
          {showTrigger ? <th scope="col">Trigger</th> : null}
          <th scope="col" class="num">
            Attempts
          </th>
          <th scope="col">Error</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.id} class="event-row" data-event-id={e.id}>
            <td data-label="Fired">
              <a href={href(`/events/${e.id}`)} aria-label={`Event ${shortId(e.id)}`}>
                <Time iso={e.fired_at} relative zone={e.trigger_timezone} />
              </a>
            </td>
            <td data-label="Status">
              <StatusBadge status={deliveryState(e)} /> <RetryState e={e} />
              {e.replayed_as ? (
                <span class="replayed-mark">
                  {' '}
                  replayed as <a href={href(`/events/${e.replayed_as}`)}>{shortId(e.replayed_as)}</a>
                </span>
              ) : null}
            </td>
            <td data-label="Source">
              {e.source}
              {e.is_test_run ? <span class="muted"> (test)</span> : null}
            </td>
            {showTrigger ? (
              <td data-label="Trigger">
                <TriggerRef e={e} />
              </td>
            ) : null}
            <td data-label="Attempts" class="num">
              {e.attempts}
              {e.max_attempts ? <span class="muted"> of {e.max_attempts}</span> : null}
            </td>
            <td data-label="Error" class="error-cell">
              {e.error_message}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface Filters {
  /** A trigger id, or a trigger's name. */
  trigger: string;
  execution_status: string;
  source: string;
  retention_status: string;
  /** datetime-local text, read in the zone the inputs name. */
  from: string;
  to: string;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** An ISO instant as datetime-local text in UTC or in the browser's zone. */
function toLocalInput(iso: string | null, utc: boolean): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  if (utc) return d.toISOString().slice(0, 16);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** datetime-local text (read in UTC or the browser's zone) as an ISO instant; null when empty or not a time. */
function fromLocalInput(text: string, utc: boolean): string | null {
  if (!text) return null;
  const d = new Date(utc ? `${text}Z` : text);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/**
 * The events list, and (failedOnly) the failed-events view with "replay all shown". Filters live in the
 * URL; pages go back in time by the API's keyset cursor (the cursors of the pages seen are kept, for "Newer").
 * The trigger filter takes an id or a name; the time range is typed in the zone the page shows times in
 * (UTC, or this browser's zone: a list mixes triggers, so "each trigger's zone" reads it in the browser's).
 */
export function EventsPage({ route, failedOnly = false }: { route: Route; failedOnly?: boolean }) {
  const p = route.params;
  const base = failedOnly ? '/failed' : '/events';
  const utc = useZoneChoice().choice === 'utc';
  const inputZone = utc ? 'UTC' : browserZone();
  const query0 = {
    trigger_id: p.get('trigger_id') ?? '',
    trigger_name: p.get('trigger_name') ?? '',
    execution_status: failedOnly ? 'failure' : (p.get('execution_status') ?? ''),
    source: p.get('source') ?? '',
    retention_status: p.get('retention_status') === 'archived' ? 'archived' : 'active',
    from: p.get('from') ?? '',
    to: p.get('to') ?? '',
  };
  const [draft, setDraft] = useState<Filters>({
    trigger: query0.trigger_id || query0.trigger_name,
    execution_status: query0.execution_status,
    source: query0.source,
    retention_status: query0.retention_status,
    from: toLocalInput(query0.from || null, utc),
    to: toLocalInput(query0.to || null, utc),
  });
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const badRange = Boolean(draft.from && draft.to && draft.from >= draft.to);

  const { data, error, reload } = usePoll(
    () =>
      api<EventPage>(
        'GET',
        `/events${query({
          trigger_id: query0.trigger_id,
          trigger_name: query0.trigger_name,
          execution_status: query0.execution_status,
          source: query0.source,
          retention_status: query0.retention_status,
          from: query0.from,
          to: query0.to,
          limit: PAGE_SIZE,
          cursor,
        })}`,
      ),
    [...Object.values(query0), cursor],
  );

  const apply = (e: Event) => {
    e.preventDefault();
    if (badRange) return;
    const trigger = draft.trigger.trim();
    const isId = UUID.test(trigger);
    navigate(base, {
      trigger_id: isId ? trigger : undefined,
      trigger_name: isId ? undefined : trigger,
      execution_status: failedOnly ? undefined : draft.execution_status,
      source: draft.source,
      retention_status: draft.retention_status === 'active' ? undefined : draft.retention_status,
      from: fromLocalInput(draft.from, utc),
      to: fromLocalInput(draft.to, utc),
    });
  };

  return (
    <>
      <h1>{failedOnly ? 'Failed events' : 'Events'}</h1>
      {failedOnly ? <p class="muted">Events whose delivery gave up. Fix the endpoint, then replay them.</p> : null}
      <form class="filters" onSubmit={apply} aria-label="Filter events">
        <div class="field">
          <label for="f-trigger">Trigger name or id</label>
          <input
            id="f-trigger"
            value={draft.trigger}
            maxLength={255}
            onInput={(e) => setDraft({ ...draft, trigger: e.currentTarget.value })}
          />
        </div>
        {failedOnly ? null : (
          <div class="field">
            <label for="f-exec">Execution status</label>
            <select
              id="f-exec"
              value={draft.execution_status}
              onChange={(e) => setDraft({ ...draft, execution_status: e.currentTarget.value })}
            >
              <option value="">Any</option>
              {EXECUTION_STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </div>
        )}
        <div class="field">
          <label for="f-source">Source</label>
          <select id="f-source" value={draft.source} onChange={(e) => setDraft({ ...draft, source: e.currentTarget.value })}>
            <option value="">Any</option>
            {EVENT_SOURCES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-view">View</label>
          <select
            id="f-view"
            value={draft.retention_status}
            onChange={(e) => setDraft({ ...draft, retention_status: e.currentTarget.value })}
          >
            <option value="active">Active (recent)</option>
            <option value="archived">Archived (older)</option>
          </select>
        </div>
        <div class="field">
          <label for="f-from">Fired from ({inputZone})</label>
          <input
            id="f-from"
            type="datetime-local"
            value={draft.from}
            onInput={(e) => setDraft({ ...draft, from: e.currentTarget.value })}
          />
        </div>
        <div class="field">
          <label for="f-to">Fired before ({inputZone})</label>
          <input
            id="f-to"
            type="datetime-local"
            value={draft.to}
            aria-invalid={badRange ? 'true' : undefined}
            aria-describedby={badRange ? 'f-to-error' : undefined}
            onInput={(e) => setDraft({ ...draft, to: e.currentTarget.value })}
          />
          {badRange ? (
            <span id="f-to-error" class="field-error">
              Must be later than “Fired from”
            </span>
          ) : null}
        </div>
        <div class="field field-actions">
          <button type="submit">Filter</button>
        </div>
      </form>
      <ErrorNotice error={error} what="Could not load events" />
      {failedOnly && data && data.events.length > 0 ? <ReplayShown events={data.events} onDone={reload} /> : null}
      {!data ? (
        <Loading what="events" />
      ) : data.events.length === 0 ? (
        <p class="empty">{failedOnly ? 'No failed events.' : 'No events match.'}</p>
      ) : (
        <EventRows events={data.events} caption={failedOnly ? 'Failed events, newest first' : 'Events, newest first'} />
      )}
      <nav class="pager" aria-label="Pages">
        {cursors.length > 0 ? (
          <button type="button" onClick={() => setCursors(cursors.slice(0, -1))}>
            ← Newer
          </button>
        ) : (
          <span />
        )}
        {data?.pagination.total_records !== null && data?.pagination.total_records !== undefined ? (
          <span>
            {data.pagination.total_is_exact === false
              ? `${data.pagination.total_records.toLocaleString()}+ events`
              : plural(data.pagination.total_records, 'event')}
          </span>
        ) : (
          <span />
        )}
        {data?.pagination.next_cursor ? (
          <button type="button" onClick={() => setCursors([...cursors, data.pagination.next_cursor!])}>
            Older →
          </button>
        ) : (
          <span />
        )}
      </nav>
    </>
  );
}

/**
 * "Replay all shown": each event on the page that has ended and was never replayed, replayed once (an
 * Idempotency-Key per event and click). The API refuses a second replay of an event (409
 * EVENT_ALREADY_REPLAYED) and one still being retried (409 EVENT_NOT_FINAL): those count as skipped.
 */
function ReplayShown({ events, onDone }: { events: TriggerEvent[]; onDone: () => void }) {
  const [confirming, setConfirming] = useState(false);
  // Focus follows the confirmation: to its Cancel when it opens, back to the button when it closes.
  const openButton = useRef<HTMLButtonElement>(null);
  const cancelButton = useRef<HTMLButtonElement>(null);
  const wasOpen = useRef(false);
  useEffect(() => {
    if (confirming) cancelButton.current?.focus();
    else if (wasOpen.current) openButton.current?.focus();
    wasOpen.current = confirming;
  }, [confirming]);
  const [progress, setProgress] = useState<{ done: number; skipped: number; failed: number; total: number; running: boolean } | null>(null);
  const eligible = events.filter((e) => isFinal(e) && !e.replayed_as);
  const left = events.length - eligible.length;

  const run = async () => {
    setConfirming(false);
    const batch = eligible.map((e) => ({ id: e.id, key: newKey() }));
    let done = 0;
    let skipped = 0;
    let failed = 0;
    setProgress({ done, skipped, failed, total: batch.length, running: true });
    // Four at a time: quick for a page of 25, gentle on the API's rate limit.
    const queue = [...batch];
    const workers = Array.from({ length: 4 }, async () => {
      for (let item = queue.shift(); item; item = queue.shift()) {
        try {
          await api('POST', `/events/${item.id}/replay`, undefined, { 'Idempotency-Key': item.key });
          done++;
        } catch (e) {
          const code = e instanceof ApiError ? e.problem.code : undefined;
          if (code === 'EVENT_ALREADY_REPLAYED' || code === 'EVENT_NOT_FINAL') skipped++;
          else failed++;
        }
        setProgress({ done, skipped, failed, total: batch.length, running: true });
      }
    });
    await Promise.all(workers);
    setProgress({ done, skipped, failed, total: batch.length, running: false });
    onDone();
  };

  return (
    <div class="actions">
      {confirming ? (
        <span class="confirm" role="group" aria-label="Confirm replay">
          <span>Replay the {eligible.length === 1 ? 'event' : `${eligible.length} events`} shown?</span>
          <button type="button" class="button-primary" onClick={run}>
            Yes, replay {eligible.length}
          </button>
          <button type="button" ref={cancelButton} onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </span>
      ) : (
        <button
          type="button"
          ref={openButton}
          class="button-primary"
          disabled={progress?.running || eligible.length === 0}
          onClick={() => setConfirming(true)}
        >
          Replay all shown ({eligible.length})
        </button>
      )}
      {left > 0 ? (
        <span class="muted">
          {left} shown {left === 1 ? 'is' : 'are'} left out: replayed already, or not ended yet.
        </span>
      ) : null}
      {progress ? (
        <Status>
          {progress.running ? 'Replaying: ' : 'Replayed '}
          {progress.done} of {progress.total}
          {progress.skipped > 0 ? `, ${progress.skipped} skipped (replayed already, or not ended)` : ''}
          {progress.failed > 0 ? `, ${progress.failed} could not be replayed (trigger deleted?)` : ''}.
          {progress.running ? null : (
            <>
              {' '}
              <a href={href('/events', { source: 'replay' })}>See the replays</a>
            </>
          )}
        </Status>
      ) : null}
    </div>
  );
}
