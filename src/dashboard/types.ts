/** The API's JSON as the dashboard reads it (see openapi.yaml, the source of truth). */
import type { TriggerView } from '../api/triggers';

export type TriggerType = 'webhook' | 'time_scheduled' | 'cron_scheduled' | 'interval_scheduled';
export type TriggerStatus = 'active' | 'inactive';
export type ExecutionStatus = 'pending' | 'published' | 'success' | 'failure';
export type EventSource = 'webhook' | 'scheduler' | 'manual-test' | 'replay';

export const TRIGGER_TYPES: TriggerType[] = ['webhook', 'time_scheduled', 'cron_scheduled', 'interval_scheduled'];
export const EXECUTION_STATUSES: ExecutionStatus[] = ['pending', 'published', 'success', 'failure'];
export const EVENT_SOURCES: EventSource[] = ['webhook', 'scheduler', 'manual-test', 'replay'];

export const TYPE_LABELS: Record<TriggerType, string> = {
  webhook: 'Webhook',
  time_scheduled: 'One-shot time',
  cron_scheduled: 'Cron',
  interval_scheduled: 'Interval',
};

/** The API's own view type (a type-only import: nothing of the server is bundled). */
export type Trigger = TriggerView;

export interface Pagination {
  current_page: number | null;
  page_size: number;
  total_pages: number | null;
  total_records: number | null;
  total_is_exact?: boolean | null;
  next_cursor?: string | null;
}

export interface TriggerPage {
  triggers: Trigger[];
  pagination: Pagination;
}

export interface TriggerEvent {
  id: string;
  trigger_id: string | null;
  /** The trigger's name; null when it was deleted (trigger_id still set) or for an unsaved test run. */
  trigger_name: string | null;
  /** A scheduled trigger's zone; null for webhooks and deleted triggers. */
  trigger_timezone: string | null;
  /** The attempts the trigger's retry config allows; null when unknown (deleted trigger). */
  max_attempts: number | null;
  trigger_type: TriggerType;
  source: EventSource;
  is_test_run: boolean;
  payload: unknown;
  scheduled_for: string | null;
  fired_at: string;
  published_at: string | null;
  execution_status: ExecutionStatus;
  attempts: number;
  response_status: number | null;
  latency_ms: number | null;
  error_message: string | null;
  retention_status: 'active' | 'archived';
  replay_of: string | null;
  created_at: string;
  updated_at: string;
  /** When the worker's next attempt is due (a retry is waiting); null when none is. */
  next_attempt_at?: string | null;
  /** The event's W3C trace id (docs/tracing.md); null for events logged before tracing existed. */
  trace_id?: string | null;
  /** The latest replay of this event; null when never replayed. */
  replayed_as?: string | null;
  replay_count?: number;
}

/** An event has ended when its delivery succeeded or gave up: only then can it be replayed. */
export function isFinal(e: Pick<TriggerEvent, 'execution_status'>): boolean {
  return e.execution_status === 'success' || e.execution_status === 'failure';
}

/**
 * The delivery state in the operator's words: an event not ended with an attempt waiting is "retrying"
 * (when one was made and failed) or "waiting" (deferred before its first attempt); otherwise its status.
 */
export function deliveryState(e: Pick<TriggerEvent, 'execution_status' | 'next_attempt_at' | 'attempts'>): string {
  if (isFinal(e) || !e.next_attempt_at) return e.execution_status;
  return e.attempts > 0 ? 'retrying' : 'waiting';
}

/** A one-shot trigger that has nothing left to fire while active: it has fired (or its time passed). */
export function isCompleted(t: Pick<Trigger, 'type' | 'status' | 'next_scheduled_run'>): boolean {
  return t.type === 'time_scheduled' && t.status === 'active' && !t.next_scheduled_run;
}

/** One inbound call of a webhook trigger (GET /triggers/{id}/requests). */
export interface WebhookCall {
  received_at: string;
  outcome: 'accepted' | 'rejected';
  http_status: number;
  code: string | null;
  reason: string | null;
  body_bytes: number;
  signature: string;
  event_id: string | null;
}

export interface EventPage {
  events: TriggerEvent[];
  pagination: Pagination;
}

export interface Attempt {
  attempt: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_body: string | null;
  /** Headers sent and received, secrets masked; null when not recorded (no request, no answer). */
  request_headers: Record<string, string> | null;
  response_headers: Record<string, string> | null;
}

export interface Occurrence {
  at: string;
  local: string;
  scheduled_for: string;
}

export interface Schedule {
  status: 'active' | 'inactive' | 'preview';
  occurrences: Occurrence[];
}

export interface TriggerStats {
  trigger_id: string;
  window_hours: number;
  window_from: string;
  total: number;
  by_execution_status: Record<string, number>;
  by_source: Record<string, number>;
  last_fired_at: string | null;
}

export interface StatusCounts {
  active: number;
  inactive: number;
}

export interface Overview {
  generated_at: string;
  triggers: { total: number; by_status: StatusCounts; by_type: Record<TriggerType, StatusCounts> };
  events_per_minute: { from: string; to: string; buckets: Array<{ at: string } & Record<ExecutionStatus, number>> };
  fire_lag: { window_seconds: number; sample_size: number; p50_ms: number | null; p99_ms: number | null; max_ms: number | null };
  outbox: { backlog: number; waiting: number; oldest_backlog_age_seconds: number | null };
  deliveries: { window_hours: number; from: string; succeeded: number; failed: number; in_flight: number };
  failed_events: number;
}

export interface FieldError {
  field: string;
  message: string;
}

/** An RFC 9457 problem document, as the API answers errors. */
export interface Problem {
  title?: string;
  status?: number;
  code?: string;
  detail?: string;
  errors?: FieldError[];
}
