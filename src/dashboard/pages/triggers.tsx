import { useState } from 'preact/hooks';
import { api, query } from '../api';
import { ErrorNotice, Loading, StatusBadge, Time } from '../components';
import { href, navigate, usePoll, type Route } from '../hooks';
import { plural } from '../format';
import { TRIGGER_TYPES, TYPE_LABELS, isCompleted, type TriggerPage } from '../types';

const PAGE_SIZE = 20;
const TAG = /^[a-z0-9_.:-]{1,64}$/;

/** The list's filters live in the URL (#/triggers?type=…&q=…&page=2), so they survive a reload and can be shared. */
export function TriggersPage({ route }: { route: Route }) {
  const p = route.params;
  const filters = {
    q: p.get('q') ?? '',
    type: p.get('type') ?? '',
    status: p.get('status') ?? '',
    tag: p.get('tag') ?? '',
    page: Math.max(1, Number(p.get('page') ?? 1) || 1),
  };
  const [draft, setDraft] = useState(filters);
  const tags = draft.tag.split(/[\s,]+/).filter(Boolean);
  const badTag = tags.find((t) => !TAG.test(t));

  const { data, error } = usePoll(
    () =>
      api<TriggerPage>(
        'GET',
        `/triggers${query({
          q: filters.q,
          type: filters.type,
          status: filters.status,
          tag: filters.tag.split(/[\s,]+/).filter(Boolean),
          page: filters.page,
          limit: PAGE_SIZE,
        })}`,
      ),
    [filters.q, filters.type, filters.status, filters.tag, filters.page],
  );

  const apply = (e: Event) => {
    e.preventDefault();
    if (badTag) return;
    navigate('/triggers', { q: draft.q.trim(), type: draft.type, status: draft.status, tag: tags.join(','), page: 1 });
  };
  const pageHref = (page: number) => href('/triggers', { ...filters, page });
  const pg = data?.pagination;

  return (
    <>
      <div class="page-head">
        <h1>Triggers</h1>
        <a class="button button-primary" href={href('/triggers/new')}>
          New trigger
        </a>
      </div>
      <form class="filters" onSubmit={apply} aria-label="Filter triggers">
        <div class="field">
          <label for="f-q">Name contains</label>
          <input id="f-q" type="search" value={draft.q} maxLength={255} onInput={(e) => setDraft({ ...draft, q: e.currentTarget.value })} />
        </div>
        <div class="field">
          <label for="f-type">Type</label>
          <select id="f-type" value={draft.type} onChange={(e) => setDraft({ ...draft, type: e.currentTarget.value })}>
            <option value="">All types</option>
            {TRIGGER_TYPES.map((t) => (
              <option key={t} value={t}>
                {TYPE_LABELS[t]}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="f-status">Status</label>
          <select id="f-status" value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value })}>
            <option value="">Any status</option>
            <option value="active">active</option>
            <option value="inactive">inactive (paused)</option>
          </select>
        </div>
        <div class="field">
          <label for="f-tag">Tags (all of)</label>
          <input
            id="f-tag"
            value={draft.tag}
            aria-invalid={badTag ? 'true' : undefined}
            aria-describedby={badTag ? 'f-tag-error' : undefined}
            onInput={(e) => setDraft({ ...draft, tag: e.currentTarget.value })}
          />
          {badTag ? (
            <span id="f-tag-error" class="field-error">
              Not a tag: {badTag} (a–z, 0–9, _ . : -)
            </span>
          ) : null}
        </div>
        <div class="field field-actions">
          <button type="submit">Filter</button>
        </div>
      </form>
      <ErrorNotice error={error} what="Could not load triggers" />
      {!data ? (
        <Loading what="triggers" />
      ) : data.triggers.length === 0 ? (
        <p class="empty">No triggers match.</p>
      ) : (
        <table class="list">
          <caption class="visually-hidden">Triggers, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col">Next run</th>
              <th scope="col">Tags</th>
            </tr>
          </thead>
          <tbody>
            {data.triggers.map((t) => (
              <tr key={t.id}>
                <td data-label="Name">
                  <a class="trigger-name" href={href(`/triggers/${t.id}`)}>
                    {t.name}
                  </a>
                </td>
                <td data-label="Type">{TYPE_LABELS[t.type] ?? t.type}</td>
                <td data-label="Status">
                  <StatusBadge status={isCompleted(t) ? 'completed' : t.status} />
                </td>
                <td data-label="Next run">
                  {t.type === 'webhook' ? (
                    <span class="muted">when called</span>
                  ) : t.next_scheduled_run ? (
                    <Time iso={t.next_scheduled_run} relative zone={typeof t.config.timezone === 'string' ? t.config.timezone : null} />
                  ) : (
                    <span class="muted">{isCompleted(t) ? 'fired' : t.status === 'inactive' ? 'paused' : 'none left'}</span>
                  )}
                </td>
                <td data-label="Tags">
                  {t.tags.map((tag) => (
                    <span key={tag} class="tag">
                      {tag}
                    </span>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {pg && (pg.total_pages ?? 0) > 1 ? (
        <nav class="pager" aria-label="Pages">
          {filters.page > 1 ? <a href={pageHref(filters.page - 1)}>← Previous</a> : <span />}
          <span>
            Page {pg.current_page} of {pg.total_pages} ({plural(pg.total_records ?? 0, 'trigger')})
          </span>
          {filters.page < (pg.total_pages ?? 0) ? <a href={pageHref(filters.page + 1)}>Next →</a> : <span />}
        </nav>
      ) : pg ? (
        <p class="muted">{plural(pg.total_records ?? 0, 'trigger')}</p>
      ) : null}
    </>
  );
}
