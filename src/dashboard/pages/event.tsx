import { useMemo, useState } from 'preact/hooks';
import { ApiError, api, newKey } from '../api';
import { Card, ErrorNotice, Facts, JsonBlock, Loading, Status, StatusBadge, Time } from '../components';
import { formatMs, shortId } from '../format';
import { href, usePoll } from '../hooks';
import { TYPE_LABELS, type Attempt, type TriggerEvent } from '../types';

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

  const doReplay = async () => {
    setBusy(true);
    setReplayError(null);
    try {
      setReplay(await api<{ event_id: string }>('POST', `/events/${e.id}/replay`, undefined, { 'Idempotency-Key': replayKey }));
      reload();
    } catch (err) {
      setReplayError(err);
    } finally {
      setBusy(false);
    }
  };

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
        <button type="button" class="button-primary" disabled={busy || replay !== null} onClick={doReplay}>
          Replay
        </button>
      </div>
      {replay ? (
        <Status>
          Replayed as event{' '}
          <a class="replay-link" href={href(`/events/${replay.event_id}`)}>
            {shortId(replay.event_id)}
          </a>
          .
        </Status>
      ) : null}
      <ErrorNotice error={replayError} what="Replay failed" />
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
