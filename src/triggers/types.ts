/**
 * Trigger domain types. Plain data, shared by the API (validation), the relay (schedule maths) and the
 * worker (delivery settings). A stored trigger's `config` column holds one of these, already validated
 * and normalised by `validateTriggerConfig` (every default filled in).
 */

export const TRIGGER_TYPES = ['webhook', 'time_scheduled', 'cron_scheduled', 'interval_scheduled'] as const;
export type TriggerType = (typeof TRIGGER_TYPES)[number];

export const HTTP_METHODS = ['POST', 'PUT', 'PATCH', 'GET', 'DELETE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export const MISFIRE_POLICIES = ['fire_once', 'skip', 'fire_all'] as const;
export type MisfirePolicy = (typeof MISFIRE_POLICIES)[number];

export interface RetryConfig {
  max_attempts: number;
  backoff_ms: number;
  /** No delivery attempt starts once the event is older than this (counted from fired_at). */
  max_age_seconds?: number;
}

/** Delivery settings every trigger type has. */
export interface CommonConfig {
  endpoint: string;
  http_method: HttpMethod;
  headers: Record<string, string>;
  timeout_ms: number;
  retry: RetryConfig;
  /** At most this many deliveries per second to the endpoint, across all workers (docs/delivery-flow.md). */
  delivery_rate_per_second?: number;
  /** At most this many requests to the endpoint in flight at once, across all workers. */
  delivery_max_concurrency?: number;
  /** Events go out in firing order, one at a time: a later one waits until the earlier one has ended. Kept only when true. */
  ordered_delivery?: boolean;
}

export interface WebhookConfig extends CommonConfig {
  schema: Record<string, unknown> | boolean;
  secret?: string;
}

/** Fires once: at `run_at` (read in `timezone` when it has no offset) or `delay_seconds` after creation. */
export interface TimeConfig extends CommonConfig {
  run_at?: string;
  delay_seconds?: number;
  timezone: string;
  payload: unknown;
}

/** A recurring trigger's window and spread: nothing fires before `start_at` or after `end_at`. */
export interface RecurringOptions {
  /** ISO 8601, read in `timezone` when it has no offset. For intervals it is also the grid's anchor. */
  start_at?: string;
  end_at?: string;
  /** Each occurrence fires at a deterministic offset in [0, jitter_seconds] after its nominal time. */
  jitter_seconds?: number;
}

export interface CronConfig extends CommonConfig, RecurringOptions {
  cron: string;
  timezone: string;
  payload: unknown;
  misfire_policy: MisfirePolicy;
  max_backfill: number;
}

export interface IntervalConfig extends CommonConfig, RecurringOptions {
  interval_seconds: number;
  timezone: string;
  payload: unknown;
  misfire_policy: MisfirePolicy;
  max_backfill: number;
}

export type TriggerConfig = WebhookConfig | TimeConfig | CronConfig | IntervalConfig;

/** One validation problem. `field` is a dotted path such as 'config.cron' or 'config.retry.max_attempts'. */
export interface FieldError {
  field: string;
  message: string;
}

export function isTriggerType(value: unknown): value is TriggerType {
  return typeof value === 'string' && (TRIGGER_TYPES as readonly string[]).includes(value);
}
