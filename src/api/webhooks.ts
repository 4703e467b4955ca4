import { createHmac, timingSafeEqual } from 'node:crypto';
import { Router, type Request } from 'express';
import type { Knex } from 'knex';
import type { Config } from '../config';
import type { Db } from '../db/knex';
import { recordEvents } from '../db/fire';
import { getTrigger, type TriggerRow } from '../db/triggers';
import { claimIdempotencyKey, storedResponse } from '../db/idempotency';
import { compileWebhookSchema } from '../triggers/json-schema';
import { newEventId } from '../triggers/event-id';
import type { WebhookConfig } from '../triggers/types';
import { ApiError } from './errors';
import type { WebhookIngest } from './webhook-ingest';
import type { SignatureNote, WebhookRequestLog } from './webhook-request-log';

type Validate = (data: unknown) => { valid: true } | { valid: false; errors: { pointer: string; message: string }[] };

/**
 * Compiled validators cached per (trigger id, version), and the webhook triggers themselves by id. The
 * version column is bumped by every edit. A request that hits the trigger cache validates and checks the
 * signature in memory and reads nothing: its write checks the version instead (db/ingest.ts), so an edit,
 * deactivation or deletion made anywhere — another API instance, or the database directly — takes effect
 * on the next request: the write finds the version changed, the entry is dropped and the request reloads
 * the trigger. Only active webhook triggers are cached; 404 and 409 are always answered from a fresh read,
 * and a 400/401 found with a cached trigger is confirmed against a fresh read before it is answered.
 * Both caches are bounded (oldest entry out first).
 */
export class WebhookValidators {
  private cache = new Map<string, Validate>();
  private triggers = new Map<string, TriggerRow>();
  constructor(private readonly max = 10_000) {}

  cachedTrigger(id: string): TriggerRow | undefined {
    return this.triggers.get(id);
  }

  rememberTrigger(t: TriggerRow): void {
    if (t.type !== 'webhook' || t.status !== 'active') return void this.triggers.delete(t.id);
    if (!this.triggers.has(t.id) && this.triggers.size >= this.max) this.triggers.delete(this.triggers.keys().next().value as string);
    this.triggers.set(t.id, t);
  }

  validate(triggerId: string | null, version: number, schema: unknown, data: unknown): { pointer: string; message: string }[] {
    const key = triggerId ? `${triggerId}:${version}` : null;
    let fn = key ? this.cache.get(key) : undefined;
    if (!fn) {
      const compiled = compileWebhookSchema(schema);
      // Stored schemas compiled at create time; this only fails if the compiler's rules changed since.
      if (!compiled.ok) throw new ApiError('VALIDATION_FAILED', `The trigger schema no longer compiles: ${compiled.message}`);
      fn = compiled.validate;
      if (key) {
        if (this.cache.size >= this.max) this.cache.delete(this.cache.keys().next().value as string);
        this.cache.set(key, fn);
      }
    }
    const result = fn(data);
    return result.valid ? [] : result.errors;
  }

  /** Drops the cached trigger only (its compiled validators stay: they are keyed by version). */
  forgetTrigger(triggerId: string): void {
    this.triggers.delete(triggerId);
  }

  forget(triggerId: string): void {
    this.triggers.delete(triggerId);
    for (const k of this.cache.keys()) if (k.startsWith(`${triggerId}:`)) this.cache.delete(k);
  }
}

const SIGNATURE_TOLERANCE_SECONDS = 300;

/** X-Signature: sha256=<hex HMAC of the raw body>, or the Standard Webhooks headers (v1 = HMAC over id.timestamp.body). */
export function verifySignature(req: Request, secret: string, raw: Buffer, nowMs = Date.now()): boolean {
  const eq = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);
  const simple = req.get('x-signature');
  if (simple) {
    const m = /^sha256=([0-9a-fA-F]{64})$/.exec(simple.trim());
    if (!m) return false;
    return eq(Buffer.from(m[1].toLowerCase(), 'hex'), createHmac('sha256', secret).update(raw).digest());
  }
  const id = req.get('webhook-id');
  const ts = req.get('webhook-timestamp');
  const sigs = req.get('webhook-signature');
  if (!id || !ts || !sigs || !/^\d{1,12}$/.test(ts)) return false;
  if (Math.abs(nowMs / 1000 - Number(ts)) > SIGNATURE_TOLERANCE_SECONDS) return false;
  // Standard Webhooks secrets look like `whsec_<base64>` and the HMAC key is the decoded bytes (that is
  // what the standardwebhooks/svix libraries sign with); any other secret is used as it is.
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : secret;
  const expected = createHmac('sha256', key).update(`${id}.${ts}.`).update(raw).digest();
  return sigs
    .split(' ')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('v1,'))
    .some((s) => eq(Buffer.from(s.slice(3), 'base64'), expected));
}

interface RawRequest extends Request {
  rawBody?: Buffer;
}

/** How a request's signature check went, for the request log. */
function signatureNote(req: Request, secret: string | undefined, ok: boolean): SignatureNote {
  if (secret === undefined) return 'not_required';
  if (ok) return 'valid';
  return req.get('x-signature') || req.get('webhook-signature') ? 'invalid' : 'missing';
}

export function webhookRoutes(deps: {
  db: Db;
  config: Config;
  validators: WebhookValidators;
  ingest?: WebhookIngest | null;
  requestLog?: WebhookRequestLog | null;
}): Router {
  const { db, config, validators, ingest, requestLog } = deps;
  const r = Router();

  /** A fresh read of the trigger: 404 unless it is a webhook trigger, 409 when inactive. */
  async function readWebhookTrigger(id: string): Promise<TriggerRow> {
    const t = await getTrigger(db, id);
    // A trigger of another type answers 404 too: the webhook URL space does not reveal other triggers.
    if (!t || t.type !== 'webhook') throw new ApiError('TRIGGER_NOT_FOUND', `No webhook trigger with id ${id}`);
    if (t.status !== 'active') throw new ApiError('TRIGGER_INACTIVE', 'This webhook trigger is inactive; activate it to accept events');
    return t;
  }

  function checkSignature(t: TriggerRow, req: RawRequest): void {
    const secret = (t.config as WebhookConfig).secret;
    const ok = secret === undefined || verifySignature(req, secret, req.rawBody ?? Buffer.alloc(0));
    // For the request log, should the call be rejected (a property set, nothing written).
    if (req.res) req.res.locals.signature = signatureNote(req, secret, ok);
    if (!ok) throw new ApiError('INVALID_SIGNATURE', 'This trigger requires a signed request (X-Signature or Standard Webhooks headers)');
  }

  function checkPayload(t: TriggerRow, payload: unknown): void {
    const errors = validators.validate(t.id, t.version, (t.config as WebhookConfig).schema, payload);
    if (errors.length > 0) {
      throw new ApiError(
        'SCHEMA_VALIDATION_FAILED',
        `The payload does not match the trigger schema (${errors.length} error${errors.length > 1 ? 's' : ''})`,
        errors.map((e) => ({ field: e.pointer, message: e.message })),
      );
    }
  }

  async function loadWebhookTrigger(req: RawRequest): Promise<TriggerRow> {
    const t = await readWebhookTrigger(String(req.params.trigger_id));
    checkSignature(t, req);
    return t;
  }

  /**
   * The hot path (no Idempotency-Key): the trigger from the cache when it is there, signature and schema
   * checked in memory, the event queued for the next group commit — no read, and a share of one round
   * trip. A cached trigger found stale by the write (edited, deactivated, deleted) is dropped and the
   * request goes round again with a fresh read, which answers 404/409 or retries with the new version.
   * Returns the event id, or null after repeated staleness (edits racing this request): the caller then
   * takes the slow path.
   */
  async function ingestFast(req: RawRequest, ingest: WebhookIngest): Promise<string | null> {
    const id = String(req.params.trigger_id);
    const payload: unknown = req.body;
    for (let round = 0; round < 3; round++) {
      const cached = validators.cachedTrigger(id);
      const t = cached ?? (await readWebhookTrigger(id));
      if (!cached) validators.rememberTrigger(t);
      try {
        checkSignature(t, req);
        checkPayload(t, payload);
      } catch (e) {
        // A 401/400 is never answered from the cache alone: the secret or schema may have changed.
        if (cached && e instanceof ApiError) {
          validators.forgetTrigger(id);
          continue;
        }
        throw e;
      }
      const eventId = newEventId();
      const outcome = await ingest.submit({ eventId, triggerId: t.id, version: t.version, payload, firedAt: new Date() });
      if (outcome === 'logged') return eventId;
      if (outcome === 'failed') {
        throw new ApiError('SERVICE_UNAVAILABLE', 'The event could not be stored; nothing was recorded. Retry later.', [], {
          'Retry-After': '1',
        });
      }
      validators.forgetTrigger(id);
    }
    return null;
  }

  /**
   * Runs `write` in a transaction guarded by the Idempotency-Key, if any: the first request stores its
   * answer in the same commit as its events; a repeat within 24 h gets that answer back and writes nothing.
   */
  async function idempotent(
    req: Request,
    triggerId: string,
    write: (trx: Knex.Transaction) => Promise<{ status: number; body: unknown }>,
  ): Promise<{ status: number; body: unknown }> {
    const key = req.get('idempotency-key');
    if (!key) return db.transaction(write);
    const scope = `webhook:${triggerId}`;
    const replay = await storedResponse(db, scope, key, 24 * 3600);
    if (replay) return replay;
    try {
      return await db.transaction(async (trx) => {
        const answer = await write(trx);
        await claimIdempotencyKey(trx, scope, key, answer, new Date(), 24 * 3600);
        return answer;
      });
    } catch (e) {
      // A concurrent request with the same key committed first: answer as it did.
      const again = await storedResponse(db, scope, key, 24 * 3600);
      if (again) return again;
      throw e;
    }
  }

  r.post('/webhook/:trigger_id', async (req: RawRequest, res) => {
    if (ingest && !req.get('idempotency-key')) {
      const eventId = await ingestFast(req, ingest);
      if (eventId) return void res.status(202).json({ event_id: eventId, status: 'accepted' });
    }
    const t = await loadWebhookTrigger(req);
    const payload: unknown = req.body;
    checkPayload(t, payload);
    const answer = await idempotent(req, t.id, async (trx) => {
      const now = new Date();
      const id = newEventId();
      await recordEvents(
        trx,
        [
          {
            id,
            trigger_id: t.id,
            trigger_type: 'webhook',
            source: 'webhook',
            is_test_run: false,
            payload,
            scheduled_for: null,
            fired_at: now,
          },
        ],
        config.kafkaTopic,
        now,
      );
      return { status: 202, body: { event_id: id, status: 'accepted' } };
    });
    res.status(answer.status).json(answer.body);
  });

  r.post('/webhook/:trigger_id/batch', async (req: RawRequest, res) => {
    const t = await loadWebhookTrigger(req);
    const items = (req.body as { events: unknown[] }).events;
    const schema = (t.config as WebhookConfig).schema;
    const checked = items.map((payload, index) => ({ index, payload, errors: validators.validate(t.id, t.version, schema, payload) }));
    const valid = checked.filter((c) => c.errors.length === 0);
    const answerFor = (ids: Map<number, string>) => {
      const results = checked.map((c) =>
        c.errors.length === 0
          ? { index: c.index, status: 'accepted', event_id: ids.get(c.index) }
          : {
              index: c.index,
              status: 'rejected',
              // A JSON pointer into the request body, like the single route's pointers into its payload.
              errors: c.errors.map((e) => ({ field: `/events/${c.index}${e.pointer === '/' ? '' : e.pointer}`, message: e.message })),
            },
      );
      const status = valid.length === items.length ? 202 : valid.length === 0 ? 400 : 207;
      return { status, body: { accepted: valid.length, rejected: items.length - valid.length, results } };
    };
    // Nothing accepted: answer without a transaction, so a rejected request leaves no row behind (not even
    // its Idempotency-Key), as on the single route; the answer depends only on the body anyway.
    if (valid.length === 0) {
      const rejected = answerFor(new Map());
      const detail = `None of the ${items.length} payloads matches the trigger schema`;
      requestLog?.note(req, res.locals.signature as SignatureNote | undefined, new ApiError('SCHEMA_VALIDATION_FAILED', detail));
      return void res.status(rejected.status).json(rejected.body);
    }
    const answer = await idempotent(req, t.id, async (trx) => {
      const now = new Date();
      const ids = new Map<number, string>(valid.map((c) => [c.index, newEventId()]));
      await recordEvents(
        trx,
        valid.map((c) => ({
          id: ids.get(c.index) as string,
          trigger_id: t.id,
          trigger_type: 'webhook' as const,
          source: 'webhook' as const,
          is_test_run: false,
          payload: c.payload,
          scheduled_for: null,
          fired_at: now,
        })),
        config.kafkaTopic,
        now,
      );
      return answerFor(ids);
    });
    res.status(answer.status).json(answer.body);
  });

  return r;
}
