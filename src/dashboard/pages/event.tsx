import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, api, newKey } from '../api';
import { Card, ErrorNotice, Facts, JsonBlock, Loading, RetryState, Status, StatusBadge, Time, TriggerRef } from '../components';
import { formatMs, shortId } from '../format';
import { href, usePoll } from '../hooks';
import { TYPE_LABELS, deliveryState, isFinal, type Attempt, type TriggerEvent } from '../types';

/** One direction's headers as a name/value list (masked by the worker before they were stored). */
function HeaderList({ headers, label }: { headers: Record<string, string> | null; label: string }) {
  if (!headers) return <p class="muted">{label}: not recorded.</p>;
  return (
    <>
      <h3 class="headers-title">{label}</h3>
      <dl class="headers" aria-label={label}>
        {Object.entries(headers).map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
    </>
  );
}

async function load(id: string): Promise<{ event: TriggerEvent; attempts: Attempt[] }> {
  const [event, attempts] = await Promise.all([
    api<TriggerEvent>('GET', `/events/${id}`),
    api<{ attempts: Attempt[] }>('GET', `/events/${id}/attempts`),
  ]);
  return { event, attempts: attempts.attempts };
}

export function EventPageView({ id }: { id: string }) {
  const { data, error, reload } = usePoll(() => load(id), [id]);
  // One key per visit: pressing Replay twice (or a retried request) replays once.
  const replayKey = useMemo(() => newKey(), [id]);
  const [replay, setReplay] = useState<{ event_id: string } | null>(null);
  const [replayError, setReplayError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const [confirmCancel, setConfirmCancel] = useState(false);
  // Focus follows the confirmation: to its safe choice when it opens, back to the button that opened it
  // when it closes (or, after the event ended, to the Replay button that is now the next step).
  const cancelButton = useRef<HTMLButtonElement>(null);
  const keepButton = useRef<HTMLButtonElement>(null);
  const replayButton = useRef<HTMLButtonElement>(null);
  const confirmWasOpen = useRef(false);
  const focusReplay = useRef(false);
  useEffect(() => {
    if (confirmCancel) keepButton.current?.focus();
    else if (confirmWasOpen.current && !focusReplay.current) cancelButton.current?.focus();
    confirmWasOpen.current = confirmCancel;
  }, [confirmCancel]);
  // After a confirmed cancel the retry buttons go; focus moves to Replay once the ended event enables it.
  useEffect(() => {
    if (focusReplay.current && replayButton.current && !replayButton.current.disabled) {
      focusReplay.current = false;
      replayButton.current.focus();
    }
  });

  if (error instanceof ApiError && error.status === 404) {
    return (
      <>
        <h1>Event not found</h1>
        <p>
          There is no event with id <code>{id}</code> (retention deletes events after their window).{' '}
          <a href={href('/events')}>All events</a>
        </p>
      </>
    );
  }
  if (!data) {
    return (
      <>
        <ErrorNotice error={error} what="Could not load the event" />
        <Loading what="the event" />
      </>
    );
  }
  const { event: e, attempts } = data;
  const zone = e.trigger_timezone;

  const act = async (what: () => Promise<string>) => {
    setBusy(true);
    setReplayError(null);
    setDone(null);
    try {
      setDone(await what());
      reload();
    } catch (err) {
      setReplayError(err);
      reload();
    } finally {
      setBusy(false);
    }
  };
  const doReplay = () =>
    act(async () => {
      setReplay(await api<{ event_id: string }>('POST', `/events/${e.id}/replay`, undefined, { 'Idempotency-Key': replayKey }));
      return '';
    });
  const doRetry = () =>
    act(async () => {
      const r = await api<{ attempt: number }>('POST', `/events/${e.id}/retry`);
      return `Attempt ${r.attempt} is being made now.`;
    });
  const doCancel = () =>
    act(async () => {
      focusReplay.current = true;
      setConfirmCancel(false);
      await api('POST', `/events/${e.id}/cancel`, {});
      return 'Retries cancelled: the event ended as failure.';
    });

  // Replay once, and only an event that has ended: a replay of one still being retried would deliver it twice.
  const final = isFinal(e);
  const replayedAs = replay?.event_id ?? e.replayed_as ?? null;
  const replayNote = !final
    ? 'Replay is possible once the event has ended (delivered, or given up): cancel its retries first to replay it now.'
    : replayedAs
      ? 'Replayed already: see the replay.'
      : null;

  return (
    <>
      <p class="crumbs">
        <a href={href('/events')}>Events</a> /
      </p>
      <div class="page-head">
        <h1>Event {shortId(e.id)}</h1>
        <StatusBadge status={deliveryState(e)} />
      </div>
      <p class="subtitle">
        of <TriggerRef e={e} /> <RetryState e={e} />
      </p>
      <div class="actions">
        <button
          type="button"
          class="button-primary"
          ref={replayButton}
          disabled={busy || !final || replayedAs !== null}
          title={replayNote ?? undefined}
          aria-describedby={replayNote ? 'replay-note' : undefined}
          onClick={doReplay}
        >
          Replay
        </button>
        {final ? null : (
          <>
            <button
              type="button"
              disabled={busy || !e.next_attempt_at}
              title={e.next_attempt_at ? undefined : 'No attempt is waiting: one is being made, or the event is not on Kafka yet'}
              onClick={doRetry}
            >
              Retry now
            </button>
            {confirmCancel ? (
              <span class="confirm" role="group" aria-label="Confirm cancel">
                <span>Stop delivering this event? It ends as failure.</span>
                <button type="button" class="button-danger" disabled={busy} onClick={doCancel}>
                  Yes, cancel retries
                </button>
                <button type="button" ref={keepButton} onClick={() => setConfirmCancel(false)}>
                  Keep retrying
                </button>
              </span>
            ) : (
              <button type="button" ref={cancelButton} disabled={busy} onClick={() => setConfirmCancel(true)}>
                Cancel retries
              </button>
            )}
          </>
        )}
      </div>
      {replayNote && !replayedAs ? (
        <p id="replay-note" class="muted">
          {replayNote}
        </p>
      ) : null}
      {replayedAs ? (
        <Status>
          Replayed as event{' '}
          <a class="replay-link" href={href(`/events/${replayedAs}`)}>
            {shortId(replayedAs)}
          </a>
          {(e.replay_count ?? 0) > 1 ? ` (replayed ${e.replay_count} times)` : ''}.
        </Status>
      ) : null}
      {done ? <Status>{done}</Status> : null}
      <ErrorNotice error={replayError} what="The action failed" />
      <ErrorNotice error={error} what="Refresh failed" />
      <div class="cards cards-roomy">
        <Card title="Event">
          <Facts
            items={[
              ['Status', deliveryState(e)],
              ['Trigger', <TriggerRef key="t" e={e} />],
              ['Type', TYPE_LABELS[e.trigger_type] ?? e.trigger_type],
              ['Source', `${e.source}${e.is_test_run ? ' (test run)' : ''}`],
              ['Fired', <Time key="f" iso={e.fired_at} relative zone={zone} />],
              ['Scheduled for', <Time key="s" iso={e.scheduled_for} zone={zone} />],
              ['Published to Kafka', <Time key="p" iso={e.published_at} zone={zone} />],
              ['Attempts made', e.max_attempts ? `${e.attempts} of ${e.max_attempts}` : String(e.attempts)],
              [
                'Next attempt',
                e.next_attempt_at && !final ? (
                  <span key="n">
                    attempt {e.attempts + 1} at <Time iso={e.next_attempt_at} relative zone={zone} />
                  </span>
                ) : (
                  '—'
                ),
              ],
              ['Last response', e.response_status === null ? '—' : String(e.response_status)],
              ['Latency', formatMs(e.latency_ms)],
              [
                'Kept as',
                e.retention_status === 'active' ? 'active (recent: the Events page’s default view)' : 'archived (older: the Archived view)',
              ],
              ['Id', <code key="id">{e.id}</code>],
              // The trace to look up in a tracing backend; the delivery requests carry it as `traceparent`.
              ['Trace id', e.trace_id ? <code key="tr">{e.trace_id}</code> : '—'],
              [
                'Replay of',
                e.replay_of ? (
                  <a key="r" href={href(`/events/${e.replay_of}`)}>
                    {shortId(e.replay_of)}
                  </a>
                ) : (
                  '—'
                ),
              ],
            ]}
          />
          {e.error_message ? (
            <div class="notice notice-error">
              <p class="error-message">{e.error_message}</p>
            </div>
          ) : null}
        </Card>
        <Card title="Payload">
          <JsonBlock value={e.payload} label="Event payload" />
        </Card>
        <Card title="Delivery attempts" wide>
          {attempts.length === 0 ? (
            <p class="empty">No delivery attempt yet.</p>
          ) : (
            <table class="list attempts">
              <caption class="visually-hidden">Delivery attempts, in order</caption>
              <thead>
                <tr>
                  <th scope="col" class="num">
                    #
                  </th>
                  <th scope="col">Started</th>
                  <th scope="col" class="num">
                    Duration
                  </th>
                  <th scope="col">Status</th>
                  <th scope="col">Error</th>
                  <th scope="col">Response body</th>
                  <th scope="col">Headers</th>
                </tr>
              </thead>
              <tbody>
                {attempts.map((a) => (
                  <tr key={a.attempt} class="attempt-row">
                    <td data-label="#" class="num">
                      {a.attempt}
                    </td>
                    <td data-label="Started">
                      <Time iso={a.started_at} zone={zone} />
                    </td>
                    <td data-label="Duration" class="num">
                      {formatMs(a.duration_ms)}
                    </td>
                    <td data-label="Status">{a.status_code === null ? 'no response' : String(a.status_code)}</td>
                    <td data-label="Error" class="error-cell">
                      {a.error}
                    </td>
                    <td data-label="Response body">
                      {a.response_body ? <pre class="body">{a.response_body}</pre> : <span class="muted">—</span>}
                    </td>
                    <td data-label="Headers">
                      {a.request_headers || a.response_headers ? (
                        <details class="attempt-headers">
                          <summary>Headers of attempt {a.attempt}</summary>
                          <HeaderList headers={a.request_headers} label="Request headers sent" />
                          <HeaderList headers={a.response_headers} label="Response headers received" />
                          <p class="muted">Secrets (signatures, authorization, cookies, keys) are masked before they are stored.</p>
                        </details>
                      ) : (
                        <span class="muted">not recorded</span>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Card>
      </div>
    </>
  );
}
