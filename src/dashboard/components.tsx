/**
 * Small shared pieces. Every string from the API is rendered as a text child or an attribute value, which
 * Preact sets as text: a name like `<img src=x onerror=…>` shows as those characters, never as markup.
 */
import type { ComponentChildren } from 'preact';
import { ApiError } from './api';
import { fromNow, pretty, shortId } from './format';
import { href } from './hooks';
import { isFinal, type TriggerEvent } from './types';
import { formatInZone, useNow, useZoneChoice, zoneFor } from './zone';

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge badge-${status.replace(/[^a-z-]/g, '')}`}>{status}</span>;
}

/**
 * An instant, in the zone the operator chose (the header's "Times in"), always with the zone's name;
 * `zone`: the trigger's own zone, used when the choice is "each trigger's zone". A relative time ("in 5 s")
 * ticks with the page's clock, between refreshes too.
 */
export function Time({ iso, relative = false, zone }: { iso: string | null | undefined; relative?: boolean; zone?: string | null }) {
  const { choice } = useZoneChoice();
  const now = useNow(relative && Boolean(iso));
  if (!iso) return <span class="muted">—</span>;
  const z = zoneFor(choice, zone);
  return (
    <time dateTime={iso} title={`${iso} (UTC), shown in ${z}`} data-zone={z}>
      {formatInZone(iso, z)}
      {relative ? <span class="muted relative"> ({fromNow(iso, now)})</span> : null}
    </time>
  );
}

/** "in 5 s", ticking. */
export function FromNow({ iso }: { iso: string }) {
  const now = useNow();
  return <span class="muted relative">{fromNow(iso, now)}</span>;
}

export function ErrorNotice({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  const prefix = what ? `${what}: ` : '';
  if (error instanceof ApiError) {
    const fields = error.problem.errors ?? [];
    return (
      <div class="notice notice-error" role="alert">
        <p>
          {prefix}
          {error.message}
        </p>
        {fields.length > 0 ? (
          <ul>
            {fields.map((f, i) => (
              <li key={i}>
                <code>{f.field}</code>: {f.message}
              </li>
            ))}
          </ul>
        ) : null}
      </div>
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div class="notice notice-error" role="alert">
      <p>
        {prefix}
        {message === 'Failed to fetch' ? 'The API cannot be reached.' : message}
      </p>
    </div>
  );
}

/** JSON as text in a focusable, scrollable block (keyboard users can scroll it too). */
export function JsonBlock({ value, label }: { value: unknown; label: string }) {
  return (
    <pre class="json" tabIndex={0} aria-label={label}>
      {typeof value === 'string' ? value : pretty(value)}
    </pre>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Card({ title, children, wide = false }: { title: string; children: ComponentChildren; wide?: boolean }) {
  return (
    <section class={wide ? 'card card-wide' : 'card'} aria-label={title}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

/** A label/value list that stacks on narrow screens. */
export function Facts({ items }: { items: Array<[string, ComponentChildren]> }) {
  return (
    <dl class="facts">
      {items.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

/** Runs of a schedule, in the trigger's own time zone (the API's `local`), the UTC instant in the title. */
export function Runs({ occurrences, label }: { occurrences: Array<{ at: string; local: string }>; label: string }) {
  return (
    <ol class="runs" aria-label={label}>
      {occurrences.map((o) => (
        <li key={o.at}>
          <time class="local" dateTime={o.at} title={`${o.at} (UTC)`}>
            {o.local.replace('T', ' ')}
          </time>{' '}
          <FromNow iso={o.at} />
        </li>
      ))}
    </ol>
  );
}

/** A message for screen readers and eyes after an action (test run fired, copied, replayed …). */
export function Status({ children }: { children: ComponentChildren }) {
  return (
    <p class="status" role="status">
      {children}
    </p>
  );
}

/** An event's trigger by name; "deleted trigger" when it is gone; "unsaved test run" when it never was saved. */
export function TriggerRef({ e }: { e: Pick<TriggerEvent, 'trigger_id' | 'trigger_name'> }) {
  if (!e.trigger_id) return <span class="muted">unsaved test run</span>;
  if (e.trigger_name === null) {
    return (
      <span class="muted trigger-deleted" title={`Trigger ${e.trigger_id} has been deleted; its events stay.`}>
        deleted trigger ({shortId(e.trigger_id)})
      </span>
    );
  }
  return (
    <a class="trigger-ref" href={href(`/triggers/${e.trigger_id}`)}>
      {e.trigger_name}
    </a>
  );
}

/** "attempt 2 of 5, next at 17:00:03 CET (in 3 s)": shown while an attempt is waiting. */
export function RetryState({
  e,
}: {
  e: Pick<TriggerEvent, 'execution_status' | 'attempts' | 'max_attempts' | 'next_attempt_at' | 'trigger_timezone'>;
}) {
  if (isFinal(e) || !e.next_attempt_at) return null;
  return (
    <span class="retry-state">
      attempt {e.attempts + 1}
      {e.max_attempts ? ` of ${e.max_attempts}` : ''}, next at <Time iso={e.next_attempt_at} relative zone={e.trigger_timezone} />
    </span>
  );
}
