import { useMemo, useState } from 'preact/hooks';
import { ApiError, api, newKey } from '../api';
import { Card, ErrorNotice, Facts, JsonBlock, Loading, Status, StatusBadge, Time } from '../components';
import { formatMs, shortId } from '../format';
import { href, usePoll } from '../hooks';
import { TYPE_LABELS, isFinal, type Attempt, type TriggerEvent } from '../types';

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
        <StatusBadge status={e.execution_status} />
      </div>
      <div class="actions">
        <button
          type="button"
          class="button-primary"
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
                <button type="button" onClick={() => setConfirmCancel(false)}>
                  Keep retrying
                </button>
              </span>
            ) : (
              <button type="button" disabled={busy} onClick={() => setConfirmCancel(true)}>
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
              ['Status', e.execution_status],
              [
                'Trigger',
                e.trigger_id ? (
                  <a key="t" href={href(`/triggers/${e.trigger_id}`)}>
                    {shortId(e.trigger_id)}
                  </a>
                ) : (
                  'unsaved test run'
                ),
              ],
              ['Type', TYPE_LABELS[e.trigger_type] ?? e.trigger_type],
              ['Source', `${e.source}${e.is_test_run ? ' (test run)' : ''}`],
              ['Fired', <Time key="f" iso={e.fired_at} relative />],
              ['Scheduled for', <Time key="s" iso={e.scheduled_for} />],
              ['Published', <Time key="p" iso={e.published_at} />],
              ['Attempts', String(e.attempts)],
              ['Next attempt', e.next_attempt_at ? <Time key="n" iso={e.next_attempt_at} relative /> : '—'],
              ['Last response', e.response_status === null ? '—' : String(e.response_status)],
              ['Latency', formatMs(e.latency_ms)],
              ['View', e.retention_status],
              ['Id', <code key="id">{e.id}</code>],
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
                </tr>
              </thead>
              <tbody>
                {attempts.map((a) => (
                  <tr key={a.attempt} class="attempt-row">
                    <td data-label="#" class="num">
                      {a.attempt}
                    </td>
                    <td data-label="Started">
                      <Time iso={a.started_at} />
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
