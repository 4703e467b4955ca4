import { useState } from 'preact/hooks';
import { ApiError, api, newKey, query } from '../api';
import { ErrorNotice, Loading, Status, StatusBadge, Time } from '../components';
import { shortId } from '../format';
import { href, navigate, usePoll, type Route } from '../hooks';
import { EVENT_SOURCES, EXECUTION_STATUSES, isFinal, type EventPage, type TriggerEvent } from '../types';

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
                <Time iso={e.fired_at} relative />
              </a>
            </td>
            <td data-label="Status">
              <StatusBadge status={e.execution_status} />
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
                {e.trigger_id ? (
                  <a href={href(`/triggers/${e.trigger_id}`)}>{shortId(e.trigger_id)}</a>
                ) : (
                  <span class="muted">unsaved</span>
                )}
              </td>
            ) : null}
            <td data-label="Attempts" class="num">
              {e.attempts}
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
  trigger_id: string;
  execution_status: string;
  source: string;
  retention_status: string;
}

/**
 * The events list, and (failedOnly) the failed-events view with "replay all shown". Filters live in the
 * URL; pages go back in time by the API's keyset cursor (the cursors of the pages seen are kept, for "Newer").
 */
export function EventsPage({ route, failedOnly = false }: { route: Route; failedOnly?: boolean }) {
  const p = route.params;
  const base = failedOnly ? '/failed' : '/events';
  const filters: Filters = {
    trigger_id: p.get('trigger_id') ?? '',
    execution_status: failedOnly ? 'failure' : (p.get('execution_status') ?? ''),
    source: p.get('source') ?? '',
    retention_status: p.get('retention_status') === 'archived' ? 'archived' : 'active',
  };
  const [draft, setDraft] = useState(filters);
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const badTrigger = draft.trigger_id.trim() !== '' && !UUID.test(draft.trigger_id.trim());

  const { data, error, reload } = usePoll(
    () =>
      api<EventPage>(
        'GET',
        `/events${query({
          trigger_id: filters.trigger_id,
          execution_status: filters.execution_status,
          source: filters.source,
          retention_status: filters.retention_status,
          limit: PAGE_SIZE,
          cursor,
        })}`,
      ),
    [filters.trigger_id, filters.execution_status, filters.source, filters.retention_status, cursor],
  );

  const apply = (e: Event) => {
    e.preventDefault();
    if (badTrigger) return;
    const next = { ...draft, trigger_id: draft.trigger_id.trim() };
    navigate(base, {
      ...next,
      execution_status: failedOnly ? undefined : next.execution_status,
      retention_status: next.retention_status === 'active' ? undefined : next.retention_status,
    });
  };

  return (
    <>
      <h1>{failedOnly ? 'Failed events' : 'Events'}</h1>
      {failedOnly ? <p class="muted">Events whose delivery gave up. Fix the endpoint, then replay them.</p> : null}
      <form class="filters" onSubmit={apply} aria-label="Filter events">
        <div class="field">
          <label for="f-trigger">Trigger id</label>
          <input
            id="f-trigger"
            value={draft.trigger_id}
            aria-invalid={badTrigger ? 'true' : undefined}
            aria-describedby={badTrigger ? 'f-trigger-error' : undefined}
            onInput={(e) => setDraft({ ...draft, trigger_id: e.currentTarget.value })}
          />
          {badTrigger ? (
            <span id="f-trigger-error" class="field-error">
              A trigger id is a UUID
            </span>
          ) : null}
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
            <option value="active">Active</option>
            <option value="archived">Archived</option>
          </select>
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
            {data.pagination.total_records}
            {data.pagination.total_is_exact === false ? '+' : ''} events
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
          <span>Replay the {eligible.length} events shown?</span>
          <button type="button" class="button-primary" onClick={run}>
            Yes, replay {eligible.length}
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </span>
      ) : (
        <button
          type="button"
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
