/**
 * Small shared pieces. Every string from the API is rendered as a text child or an attribute value, which
 * Preact sets as text: a name like `<img src=x onerror=…>` shows as those characters, never as markup.
 */
import type { ComponentChildren } from 'preact';
import { ApiError } from './api';
import { formatTime, fromNow, pretty } from './format';

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge badge-${status.replace(/[^a-z-]/g, '')}`}>{status}</span>;
}

export function Time({ iso, relative = false }: { iso: string | null | undefined; relative?: boolean }) {
  if (!iso) return <span class="muted">—</span>;
  return (
    <time dateTime={iso} title={iso}>
      {formatTime(iso)}
      {relative ? <span class="muted"> ({fromNow(iso)})</span> : null}
    </time>
  );
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
          <span class="muted">{fromNow(o.at)}</span>
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
