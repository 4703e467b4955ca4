import { EventEmitter } from 'node:events';

/**
 * Typed lifecycle events. The hot paths emit these; logging and metrics subscribe to them (see
 * metrics.ts), so neither is sprinkled through the relay or worker loops.
 */
export interface LifecycleEvents {
  'relay:fired': { count: number; lagsSeconds: number[] };
  'relay:claimed': { kind: 'schedules' | 'outbox'; count: number };
  /** The fire window after a fire batch that was not full (RELAY_FIRE_WINDOW, wider while batches are small). */
  'relay:fire_window': { ms: number };
  /** An idle lane's probe: one statement asking whether anything is due (schedules) or queued (outbox). */
  'relay:probed': { kind: 'schedules' | 'outbox' };
  'relay:published': { count: number };
  'relay:publish_failed': { count: number; error: string };
  'relay:error': { step: string; error: Error };
  'relay:swept': { deleted: number };
  /** Time slices of the event tables made ahead and retired whole by a sweep (db/partitions.ts). */
  'relay:slices': { created: number; retired: number };
  /** `deferred`: not attempted because the endpoint's circuit is open; rescheduled (see worker/circuit.ts). */
  'worker:delivered': { outcome: 'success' | 'retry' | 'failure' | 'skipped' | 'deferred'; durationMs: number; status: number | null };
  /** An endpoint origin's circuit opened (open: true) or closed again. */
  'worker:circuit': { origin: string; open: boolean };
  'worker:dlq': { eventId: string };
  /** A delivery held back by its trigger's flow control (rate, concurrency, order), waiting `waitMs`; not an attempt. */
  'worker:held': { reason: 'rate' | 'concurrency' | 'order'; waitMs: number };
  /** One HTTP attempt recorded in delivery_attempts; `outcome` is what it led to. */
  'worker:attempt': { outcome: 'success' | 'retry' | 'failure'; status: number | null };
  /** Events replayed by the API (one request: one, or a bulk replay's total). */
  'api:replayed': { count: number };
  /** An operator's "retry now" or "cancel retries" on one event, done. */
  'api:delivery_control': { action: 'retry' | 'cancel' };
  /** A webhook call answered with an error, by its code; `recorded`: false when the log's buffer was full. */
  'api:webhook_rejected': { code: string; recorded: boolean };
  'worker:error': { error: Error };
}

export class Lifecycle extends EventEmitter {
  emitEvent<K extends keyof LifecycleEvents>(name: K, payload: LifecycleEvents[K]): void {
    this.emit(name, payload);
  }
  onEvent<K extends keyof LifecycleEvents>(name: K, fn: (payload: LifecycleEvents[K]) => void): this {
    return this.on(name, fn);
  }
}
