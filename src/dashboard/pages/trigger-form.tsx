/**
 * Create or edit a trigger. The fields follow the type; the next runs are previewed from
 * POST /schedules/preview (the relay's own schedule maths) while typing, before anything is saved. Config
 * keys the form has no field for (max_backfill, retry.max_age_seconds …) are kept as they are on edit.
 * Flow control (rate, concurrency, order: docs/delivery-flow.md) is edited under Delivery.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, api } from '../api';
import { ErrorNotice, Loading, Runs } from '../components';
import { href, navigate, useDebounced, usePoll } from '../hooks';
import { browserZone } from '../zone';
import { TRIGGER_TYPES, TYPE_LABELS, type FieldError, type Schedule, type Trigger, type TriggerType } from '../types';

const HTTP_METHODS = ['POST', 'PUT', 'PATCH', 'GET', 'DELETE'];
const MISFIRE = [
  ['fire_once', 'fire once, late'],
  ['skip', 'skip them'],
  ['fire_all', 'fire all (backfill)'],
];

function zones(): string[] {
  try {
    return Intl.supportedValuesOf('timeZone');
  } catch {
    return [];
  }
}

/** Every field as the text in its input. */
interface FormState {
  name: string;
  type: TriggerType;
  tags: string;
  endpoint: string;
  http_method: string;
  timeout_ms: string;
  max_attempts: string;
  backoff_ms: string;
  delivery_rate_per_second: string;
  delivery_max_concurrency: string;
  /** 'true' or 'false', as the select holds it. */
  ordered_delivery: string;
  headers: string;
  schema: string;
  secret: string;
  when: 'run_at' | 'delay_seconds';
  run_at: string;
  delay_seconds: string;
  timezone: string;
  cron: string;
  interval_seconds: string;
  misfire_policy: string;
  jitter_seconds: string;
  start_at: string;
  end_at: string;
  payload: string;
}

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const json = (v: unknown, fallback: string) => (v === undefined ? fallback : JSON.stringify(v, null, 2));

function initialState(t: Trigger | null): FormState {
  const c = (t?.config ?? {}) as Record<string, unknown>;
  const retry = (c.retry ?? {}) as Record<string, unknown>;
  return {
    name: t?.name ?? '',
    type: t?.type ?? 'cron_scheduled',
    tags: (t?.tags ?? []).join(', '),
    endpoint: str(c.endpoint),
    http_method: str(c.http_method) || 'POST',
    timeout_ms: str(c.timeout_ms),
    max_attempts: str(retry.max_attempts),
    backoff_ms: str(retry.backoff_ms),
    delivery_rate_per_second: str(c.delivery_rate_per_second),
    delivery_max_concurrency: str(c.delivery_max_concurrency),
    ordered_delivery: c.ordered_delivery === true ? 'true' : 'false',
    headers: c.headers && Object.keys(c.headers as object).length > 0 ? json(c.headers, '') : '',
    schema: json(c.schema, '{ "type": "object" }'),
    secret: '',
    when: c.delay_seconds !== undefined ? 'delay_seconds' : 'run_at',
    run_at: str(c.run_at),
    delay_seconds: str(c.delay_seconds),
    timezone: str(c.timezone) || browserZone(),
    cron: str(c.cron),
    interval_seconds: str(c.interval_seconds),
    misfire_policy: str(c.misfire_policy) || 'fire_once',
    jitter_seconds: str(c.jitter_seconds),
    start_at: str(c.start_at),
    end_at: str(c.end_at),
    payload: c.payload === undefined || c.payload === null ? '' : json(c.payload, ''),
  };
}

type Built = { config: Record<string, unknown>; errors: FieldError[] };

/** The config to send: the original's keys, overwritten (or removed, when emptied) by the form's fields. */
function buildConfig(f: FormState, original: Record<string, unknown>, timingOnly = false): Built {
  const errors: FieldError[] = [];
  const c: Record<string, unknown> = { ...original };
  delete c.has_secret;
  const set = (key: string, text: string, kind: 'string' | 'int' | 'json') => {
    const v = text.trim();
    if (v === '') return void delete c[key];
    if (kind === 'string') c[key] = v;
    else if (kind === 'int') {
      if (!/^-?\d+$/.test(v)) errors.push({ field: `config.${key}`, message: 'must be a whole number' });
      else c[key] = Number(v);
    } else {
      try {
        c[key] = JSON.parse(v) as unknown;
      } catch {
        errors.push({ field: `config.${key}`, message: 'is not valid JSON' });
      }
    }
  };
  const scheduled = f.type !== 'webhook';
  if (timingOnly) {
    // A preview needs a valid endpoint but never calls it.
    c.endpoint = 'https://example.com/preview';
  } else {
    set('endpoint', f.endpoint, 'string');
    set('http_method', f.http_method, 'string');
    set('timeout_ms', f.timeout_ms, 'int');
    set('headers', f.headers, 'json');
    set('delivery_rate_per_second', f.delivery_rate_per_second, 'int');
    set('delivery_max_concurrency', f.delivery_max_concurrency, 'int');
    // Unordered is the default: stored only when true.
    if (f.ordered_delivery === 'true') c.ordered_delivery = true;
    else delete c.ordered_delivery;
    const retry: Record<string, unknown> = { ...((original.retry as Record<string, unknown> | undefined) ?? {}) };
    for (const [key, text] of [
      ['max_attempts', f.max_attempts],
      ['backoff_ms', f.backoff_ms],
    ] as const) {
      const v = text.trim();
      if (v === '') delete retry[key];
      else if (!/^\d+$/.test(v)) errors.push({ field: `config.retry.${key}`, message: 'must be a whole number' });
      else retry[key] = Number(v);
    }
    if (Object.keys(retry).length > 0) c.retry = retry;
    else delete c.retry;
  }
  if (f.type === 'webhook') {
    set('schema', f.schema, 'json');
    if (f.secret !== '') c.secret = f.secret;
  }
  if (scheduled) {
    set('timezone', f.timezone, 'string');
    if (!timingOnly) set('payload', f.payload, 'json');
  }
  if (f.type === 'time_scheduled') {
    if (f.when === 'run_at') {
      set('run_at', f.run_at, 'string');
      delete c.delay_seconds;
    } else {
      set('delay_seconds', f.delay_seconds, 'int');
      delete c.run_at;
    }
  }
  if (f.type === 'cron_scheduled') set('cron', f.cron, 'string');
  if (f.type === 'interval_scheduled') set('interval_seconds', f.interval_seconds, 'int');
  if (f.type === 'cron_scheduled' || f.type === 'interval_scheduled') {
    set('misfire_policy', f.misfire_policy, 'string');
    set('jitter_seconds', f.jitter_seconds, 'int');
    set('start_at', f.start_at, 'string');
    set('end_at', f.end_at, 'string');
  }
  return { config: c, errors };
}

/** Whether the timing fields are filled in enough to ask for a preview. */
function previewable(f: FormState): boolean {
  switch (f.type) {
    case 'cron_scheduled':
      return f.cron.trim().split(/\s+/).length >= 5;
    case 'interval_scheduled':
      return /^\d+$/.test(f.interval_seconds.trim()) && Number(f.interval_seconds) > 0;
    case 'time_scheduled':
      return f.when === 'run_at' ? f.run_at.trim().length >= 10 : /^\d+$/.test(f.delay_seconds.trim());
    default:
      return false;
  }
}

/**
 * An API or form error in the operator's words, for the field it is shown on: "tags.2: must match pattern
 * ^[a-z0-9_.:-]{1,64}$" becomes "Tag 3 ("Bad Tag") may use only a–z, 0–9 and _ . : - (1 to 64 characters)".
 */
export function plainError(e: FieldError, f: Pick<FormState, 'tags'>): string {
  const tag = /^tags\.(\d+)$/.exec(e.field);
  if (tag) {
    const i = Number(tag[1]);
    const value = f.tags.split(/[\s,]+/).filter(Boolean)[i];
    const which = value === undefined ? `Tag ${i + 1}` : `Tag “${value}”`;
    if (/pattern/.test(e.message)) return `${which} may use only a–z, 0–9 and _ . : - (1 to 64 characters)`;
    return `${which} ${e.message}`;
  }
  if (/must match pattern/.test(e.message)) return 'is not in the expected form';
  const nested = /^config\.(?:schema|headers)\.(.+)$/.exec(e.field);
  return nested ? `${nested[1]}: ${e.message}` : e.message;
}

/** Whether an error reported for `reported` belongs on the field whose path is `field` (or is inside it). */
function belongsTo(reported: string, field: string): boolean {
  return reported === field || reported.startsWith(`${field}.`) || reported.startsWith(`${field}/`);
}

function Field(props: { id: string; label: string; hint?: string; error?: string; children: ComponentChildren; wide?: boolean }) {
  return (
    <div class={props.wide ? 'field field-wide' : 'field'}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.hint ? (
        <span id={`${props.id}-hint`} class="hint">
          {props.hint}
        </span>
      ) : null}
      {props.error ? (
        <span id={`${props.id}-error`} class="field-error">
          {props.error}
        </span>
      ) : null}
    </div>
  );
}

function describedBy(id: string, hint: boolean, error: string | undefined): string | undefined {
  const ids = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean);
  return ids.length ? ids.join(' ') : undefined;
}

function Preview({ f, triggerId }: { f: FormState; triggerId?: string }) {
  const ready = previewable(f);
  const body = useMemo(() => {
    if (!ready) return null;
    const built = buildConfig(f, {}, true);
    if (built.errors.length > 0) return null;
    return JSON.stringify({ type: f.type, config: built.config, count: 10, ...(triggerId ? { trigger_id: triggerId } : {}) });
  }, [f, ready, triggerId]);
  const settled = useDebounced(body, 350);
  const [state, setState] = useState<{ schedule?: Schedule; error?: unknown; for?: string | null }>({});

  useEffect(() => {
    if (!settled) return;
    let stale = false;
    api<Schedule>('POST', '/schedules/preview', JSON.parse(settled) as unknown).then(
      (schedule) => !stale && setState({ schedule, for: settled }),
      (error: unknown) => !stale && setState({ error, for: settled }),
    );
    return () => {
      stale = true;
    };
  }, [settled]);

  return (
    <section class="preview" aria-label="Next runs preview" aria-live="polite">
      <h2>Next runs{f.timezone.trim() ? ` (${f.timezone.trim()})` : ''}</h2>
      {!ready ? (
        <p class="muted">Fill in the schedule to see its next runs.</p>
      ) : state.for !== settled || !settled ? (
        <p class="muted">Computing…</p>
      ) : state.error ? (
        <ErrorNotice error={state.error} what="Schedule" />
      ) : state.schedule && state.schedule.occurrences.length > 0 ? (
        <Runs occurrences={state.schedule.occurrences} label="Preview of the next runs" />
      ) : (
        <p class="empty">This schedule never fires.</p>
      )}
    </section>
  );
}

export function TriggerFormPage({ id }: { id?: string }) {
  const existing = usePoll(() => (id ? api<Trigger>('GET', `/triggers/${id}`) : Promise.resolve(null)), [id], 24 * 3600_000);
  if (id && !existing.data) {
    return (
      <>
        <ErrorNotice error={existing.error} what="Could not load the trigger" />
        {existing.error ? null : <Loading what="the trigger" />}
      </>
    );
  }
  return <TriggerForm trigger={existing.data ?? null} />;
}

function TriggerForm({ trigger }: { trigger: Trigger | null }) {
  const [f, setF] = useState<FormState>(() => initialState(trigger));
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [clientErrors, setClientErrors] = useState<FieldError[]>([]);
  // The fields as they were sent: an error stays on a field only while the field still holds that text.
  const [submitted, setSubmitted] = useState<FormState | null>(null);
  const [saving, setSaving] = useState(false);
  const zoneList = useMemo(zones, []);
  const editing = trigger !== null;
  const formRef = useRef<HTMLFormElement>(null);

  const serverErrors = submitError instanceof ApiError ? (submitError.problem.errors ?? []) : [];
  const allErrors = [...clientErrors, ...serverErrors];
  /** The fields on the form, by the API's field path, and the form state each reads. */
  const placed: Array<[string, keyof FormState]> = [];
  let shownOnFields = 0;
  const errorOf = (field: string, key: keyof FormState) => {
    placed.push([field, key]);
    if (submitted && f[key] !== submitted[key]) return undefined;
    const mine = allErrors.filter((e) => belongsTo(e.field, field));
    shownOnFields += mine.length;
    return mine.length > 0 ? mine.map((e) => plainError(e, submitted ?? f)).join('; ') : undefined;
  };
  const update = (patch: Partial<FormState>) => setF((s) => ({ ...s, ...patch }));
  // After a refused save, focus goes to the first field marked invalid (not lost to the page).
  useEffect(() => {
    if (!submitted || saving) return;
    formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [submitted, submitError, clientErrors]);

  const onSubmit = async (e: Event) => {
    e.preventDefault();
    const built = buildConfig(f, editing ? trigger.config : {});
    const tags = f.tags.split(/[\s,]+/).filter(Boolean);
    setClientErrors(built.errors);
    setSubmitError(null);
    setSubmitted(f);
    if (built.errors.length > 0) return;
    setSaving(true);
    try {
      const saved = editing
        ? await api<Trigger>('PUT', `/triggers/${trigger.id}`, { name: f.name.trim(), config: built.config, tags })
        : await api<Trigger>('POST', '/triggers', { name: f.name.trim(), type: f.type, config: built.config, tags });
      navigate(`/triggers/${saved.id}`);
    } catch (err) {
      setSubmitError(err);
      setSaving(false);
    }
  };

  const input = (
    key: keyof FormState,
    label: string,
    opts: {
      field?: string;
      hint?: string;
      type?: 'text' | 'number' | 'url' | 'password';
      required?: boolean;
      placeholder?: string;
      list?: string;
      wide?: boolean;
    } = {},
  ) => {
    const id = `t-${key}`;
    const error = errorOf(opts.field ?? `config.${key}`, key);
    const common = {
      id,
      value: f[key] as string,
      required: opts.required,
      placeholder: opts.placeholder,
      autoComplete: 'off',
      'aria-invalid': error ? ('true' as const) : undefined,
      'aria-describedby': describedBy(id, Boolean(opts.hint), error),
      onInput: (e: Event) => update({ [key]: (e.currentTarget as HTMLInputElement).value } as Partial<FormState>),
    };
    return (
      <Field id={id} label={label} hint={opts.hint} error={error} wide={opts.wide}>
        {/* Preact types each input type separately; a type chosen at run time needs the cast. */}
        {opts.list ? <input {...common} type="text" list={opts.list} /> : <input {...common} type={(opts.type ?? 'text') as 'text'} />}
      </Field>
    );
  };
  const textarea = (key: keyof FormState, label: string, hint: string, rows = 4) => {
    const id = `t-${key}`;
    const error = errorOf(`config.${key}`, key);
    return (
      <Field id={id} label={label} hint={hint} error={error} wide>
        <textarea
          id={id}
          rows={rows}
          spellcheck={false}
          value={f[key] as string}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={describedBy(id, true, error)}
          onInput={(e) => update({ [key]: e.currentTarget.value } as Partial<FormState>)}
        />
      </Field>
    );
  };
  const select = (key: keyof FormState, label: string, options: string[][], disabled = false) => {
    const id = `t-${key}`;
    const error = errorOf(key === 'type' ? 'type' : `config.${key}`, key);
    return (
      <Field id={id} label={label} error={error}>
        <select
          id={id}
          value={f[key] as string}
          disabled={disabled}
          aria-describedby={describedBy(id, false, error)}
          onChange={(e) => update({ [key]: e.currentTarget.value } as Partial<FormState>)}
        >
          {options.map(([value, text]) => (
            <option key={value} value={value}>
              {text}
            </option>
          ))}
        </select>
      </Field>
    );
  };

  const scheduled = f.type !== 'webhook';
  const recurring = f.type === 'cron_scheduled' || f.type === 'interval_scheduled';
  return (
    <>
      <p class="crumbs">
        <a href={href('/triggers')}>Triggers</a> /{' '}
        {editing ? (
          <>
            <a href={href(`/triggers/${trigger.id}`)}>{trigger.name}</a> /
          </>
        ) : null}
      </p>
      <h1>{editing ? 'Edit trigger' : 'New trigger'}</h1>
      <div class="form-layout">
        <form class="trigger-form" ref={formRef} onSubmit={onSubmit} noValidate aria-label={editing ? 'Edit trigger' : 'New trigger'}>
          <fieldset>
            <legend>Trigger</legend>
            {input('name', 'Name', { field: 'name', required: true })}
            {select(
              'type',
              'Type',
              TRIGGER_TYPES.map((t) => [t, TYPE_LABELS[t]]),
              editing,
            )}
            {input('tags', 'Tags', { field: 'tags', hint: 'Comma or space separated: team:billing, env.prod' })}
          </fieldset>

          {scheduled ? (
            <fieldset>
              <legend>Schedule</legend>
              {f.type === 'cron_scheduled'
                ? input('cron', 'Cron expression', {
                    hint: '5 fields (minute hour day month weekday), or 6 with seconds first',
                    required: true,
                  })
                : null}
              {f.type === 'interval_scheduled' ? input('interval_seconds', 'Every (seconds)', { type: 'number', required: true }) : null}
              {f.type === 'time_scheduled' ? (
                <fieldset class="radios">
                  <legend>When</legend>
                  <label>
                    <input type="radio" name="when" checked={f.when === 'run_at'} onChange={() => update({ when: 'run_at' })} /> At a time
                  </label>
                  <label>
                    <input
                      type="radio"
                      name="when"
                      checked={f.when === 'delay_seconds'}
                      onChange={() => update({ when: 'delay_seconds' })}
                    />{' '}
                    After a delay
                  </label>
                </fieldset>
              ) : null}
              {f.type === 'time_scheduled' && f.when === 'run_at'
                ? input('run_at', 'Run at', {
                    hint: 'ISO 8601, e.g. 2030-01-15T09:30:00 (read in the time zone unless it has an offset)',
                    required: true,
                  })
                : null}
              {f.type === 'time_scheduled' && f.when === 'delay_seconds'
                ? input('delay_seconds', 'Delay (seconds after saving)', { type: 'number', required: true })
                : null}
              {input('timezone', 'Time zone', { list: 'tz-list', hint: 'IANA name, e.g. Europe/Berlin' })}
              <datalist id="tz-list">
                {zoneList.map((z) => (
                  <option key={z} value={z} />
                ))}
              </datalist>
              {recurring
                ? select(
                    'misfire_policy',
                    'Missed occurrences',
                    MISFIRE.map((m) => [m[0]!, m[1]!]),
                  )
                : null}
              {recurring
                ? input('jitter_seconds', 'Jitter (seconds)', { type: 'number', hint: '0–3600: spread firings after the nominal time' })
                : null}
              {recurring ? input('start_at', 'Not before', { hint: 'ISO 8601, optional' }) : null}
              {recurring ? input('end_at', 'Not after', { hint: 'ISO 8601, optional' }) : null}
            </fieldset>
          ) : null}

          <fieldset>
            <legend>Delivery</legend>
            {input('endpoint', 'Endpoint URL', { type: 'url', required: true, placeholder: 'https://example.com/hooks/…', wide: true })}
            {select(
              'http_method',
              'HTTP method',
              HTTP_METHODS.map((m) => [m, m]),
            )}
            {input('timeout_ms', 'Timeout (ms)', { type: 'number', hint: 'default 10000' })}
            {input('max_attempts', 'Max attempts', { type: 'number', field: 'config.retry.max_attempts', hint: 'default 5' })}
            {input('backoff_ms', 'Back-off (ms)', {
              type: 'number',
              field: 'config.retry.backoff_ms',
              hint: 'default 1000, doubled per retry',
            })}
            {textarea('headers', 'Headers (JSON object)', 'Optional, e.g. { "X-Team": "billing" }', 3)}
          </fieldset>

          <fieldset>
            <legend>Flow control</legend>
            {input('delivery_rate_per_second', 'Max deliveries per second', {
              type: 'number',
              hint: '1–10000, across all workers; empty: no limit',
            })}
            {input('delivery_max_concurrency', 'Max requests in flight', {
              type: 'number',
              hint: '1–1000, across all workers; empty: no limit',
            })}
            {select('ordered_delivery', 'Order', [
              ['false', 'any order (fastest)'],
              ['true', 'in firing order, one at a time'],
            ])}
          </fieldset>

          {f.type === 'webhook' ? (
            <fieldset>
              <legend>Webhook</legend>
              {textarea('schema', 'JSON Schema of the payload', 'Payloads that do not match are refused with 400', 6)}
              {input('secret', 'Signing secret', {
                type: 'password',
                hint: editing ? 'Leave empty to keep the current secret (it is never shown)' : 'Optional, 16–256 characters',
                wide: true,
              })}
            </fieldset>
          ) : (
            <fieldset>
              <legend>Payload</legend>
              {textarea('payload', 'Payload (JSON)', 'Sent with every firing; optional', 5)}
            </fieldset>
          )}

          {(() => {
            // Errors the form has no field for (rare) are listed here, in the API's words.
            const unplaced = allErrors.filter((e) => !placed.some(([field]) => belongsTo(e.field, field)));
            if (allErrors.length === 0) return <ErrorNotice error={submitError} what="Not saved" />;
            if (shownOnFields === 0 && unplaced.length === 0) return null; // every marked field has been changed since
            return (
              <div class="notice notice-error" role="alert">
                <p>{shownOnFields > 0 ? 'Not saved: fix the marked fields.' : 'Not saved.'}</p>
                {unplaced.length > 0 ? (
                  <ul>
                    {unplaced.map((e, i) => (
                      <li key={i}>
                        {e.field}: {e.message}
                      </li>
                    ))}
                  </ul>
                ) : null}
              </div>
            );
          })()}
          <div class="actions">
            <button type="submit" class="button-primary" disabled={saving}>
              {editing ? 'Save changes' : 'Create trigger'}
            </button>
            <a class="button" href={editing ? href(`/triggers/${trigger.id}`) : href('/triggers')}>
              Cancel
            </a>
          </div>
        </form>
        {scheduled ? <Preview f={f} triggerId={trigger?.id} /> : null}
      </div>
    </>
  );
}
