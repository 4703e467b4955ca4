import { createHmac, timingSafeEqual } from 'node:crypto';
import { Router, type NextFunction, type Request, type Response } from 'express';
import type { Knex } from 'knex';
import type { Span } from '@opentelemetry/api';
import type { Config } from '../config';
import type { Db } from '../db/knex';
import { recordEvents } from '../db/record-events';
import { getTrigger, type TriggerRow } from '../db/triggers';
import { withIdempotencyKey } from '../db/idempotency';
import { coerceError } from '../logger';
import { Attr, endSpan, SpanKind, Tracing } from '../tracing/tracing';
import { compileWebhookSchema } from '../triggers/json-schema';
import { newEventId } from '../triggers/event-id';
import { PAYLOAD_MAX_BYTES, payloadLimitMessage, payloadOverLimit, payloadTooLarge } from '../kafka/message';
import type { WebhookConfig } from '../triggers/types';
import { ApiError } from './errors';
import { JsonTooDeepError, jsonDepthExceeds } from './json-depth';
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
export class WebhookCaches {
  private validators = new Map<string, Validate>();
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
    let fn = key ? this.validators.get(key) : undefined;
    if (!fn) {
      const compiled = compileWebhookSchema(schema);
      // Stored schemas compiled at create time; this only fails if the compiler's rules changed since.
      if (!compiled.ok) throw new ApiError('VALIDATION_FAILED', `The trigger schema no longer compiles: ${compiled.message}`);
      fn = compiled.validate;
      if (key) {
        if (this.validators.size >= this.max) this.validators.delete(this.validators.keys().next().value as string);
        this.validators.set(key, fn);
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
    for (const k of this.validators.keys()) if (k.startsWith(`${triggerId}:`)) this.validators.delete(k);
  }
}

const SIGNATURE_TOLERANCE_SECONDS = 300;

/** A request header by its lower-case name (Express's req.get, or the raw headers on the lean lane). */
export type HeaderOf = (name: string) => string | undefined;

/** X-Signature: sha256=<hex HMAC of the raw body>, or the Standard Webhooks headers (v1 = HMAC over id.timestamp.body). */
export function verifySignature(header: HeaderOf, secret: string, raw: Buffer, nowMs = Date.now()): boolean {
  const eq = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);
  const simple = header('x-signature');
  if (simple) {
    const m = /^sha256=([0-9a-fA-F]{64})$/.exec(simple.trim());
    if (!m) return false;
    return eq(Buffer.from(m[1].toLowerCase(), 'hex'), createHmac('sha256', secret).update(raw).digest());
  }
  const id = header('webhook-id');
  const ts = header('webhook-timestamp');
  const sigs = header('webhook-signature');
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
function signatureNote(header: HeaderOf, secret: string | undefined, ok: boolean): SignatureNote {
  if (secret === undefined) return 'not_required';
  if (ok) return 'valid';
  return header('x-signature') || header('webhook-signature') ? 'invalid' : 'missing';
}

/** One webhook call, as read by the Express route or by the lean lane (webhookLane). */
export interface WebhookCall {
  triggerId: string;
  /** The parsed body (one payload; for the batch route `{ events: [...] }`). */
  body: unknown;
  /** The body as received: what the signature covers. */
  raw: Buffer;
  header: HeaderOf;
  /** Where the signature check notes how it went, for the request log (res.locals). */
  locals: { signature?: SignatureNote };
}

export interface WebhookAnswer {
  status: number;
  body: unknown;
}

type EventWrite = Parameters<typeof recordEvents>[1][number];

/**
 * The webhook receiver: what a call to POST /webhook/{id} (or its batch form) does, whoever read the
 * request. The routes and the lean lane only parse the request, call accept/acceptBatch and format the
 * answer; errors are thrown as ApiError.
 */
export class WebhookReceiver {
  private readonly tracing: Tracing;

  constructor(
    private readonly deps: {
      db: Db;
      config: Config;
      caches: WebhookCaches;
      ingest?: WebhookIngest | null;
      /** Keeps the caller's `traceparent` (or starts a trace) and records the ingest span when exporting. */
      tracing?: Tracing;
      /** Called after a transaction of `idempotent` committed (a relay in the same process publishes its rows at once). */
      outboxWritten?: () => void;
    },
  ) {
    this.tracing = deps.tracing ?? new Tracing();
  }

  /**
   * One event: the group commit's hot path when there is no Idempotency-Key, else one transaction. The
   * event continues the caller's trace (a valid `traceparent` header; an invalid one is ignored and a new
   * trace starts: never an error answer).
   */
  accept(call: WebhookCall): Promise<WebhookAnswer> {
    const begun = this.tracing.child('ingest', SpanKind.SERVER, call.header('traceparent'));
    if (!begun.span) return this.acceptTraced(call, begun.traceparent);
    return traced(begun.span, call.triggerId, this.acceptTraced(call, begun.traceparent));
  }

  private async acceptTraced(call: WebhookCall, traceParent: string): Promise<WebhookAnswer> {
    const { ingest } = this.deps;
    if (ingest && !call.header('idempotency-key')) {
      const eventId = await this.ingestFast(call, ingest, traceParent);
      if (eventId) return { status: 202, body: { event_id: eventId, status: 'accepted' } };
    }
    const t = await this.loadWebhookTrigger(call);
    const payload = call.body;
    this.checkPayload(t, payload);
    serialisedWithinLimit(payload);
    return this.idempotent(call, t.id, async (trx) => {
      const now = new Date();
      const id = newEventId();
      await recordEvents(trx, [this.eventOf(id, t, payload, now, traceParent)], this.deps.config.kafkaTopic, now);
      return { status: 202, body: { event_id: id, status: 'accepted' } };
    });
  }

  /**
   * A batch: each payload validated on its own; the valid ones written in one transaction (202 all, 207
   * some, 400 none). `rejected` is called when nothing is accepted (no transaction, no row, not even the
   * Idempotency-Key), so the request log can keep the rejection.
   */
  acceptBatch(call: WebhookCall, rejected: (err: ApiError) => void): Promise<WebhookAnswer> {
    // One trace context for the request: its events share it (one ingest span, their count an attribute).
    const begun = this.tracing.child('ingest', SpanKind.SERVER, call.header('traceparent'));
    if (!begun.span) return this.acceptBatchTraced(call, rejected, begun.traceparent);
    return traced(begun.span, call.triggerId, this.acceptBatchTraced(call, rejected, begun.traceparent));
  }

  private async acceptBatchTraced(call: WebhookCall, rejected: (err: ApiError) => void, traceParent: string): Promise<WebhookAnswer> {
    const t = await this.loadWebhookTrigger(call);
    const items = (call.body as { events: unknown[] }).events;
    const schema = (t.config as WebhookConfig).schema;
    const { caches } = this.deps;
    // A body this small cannot hold a payload over the limit, however its numbers serialise: each item is
    // then not serialised a second time just to be measured.
    const sized = call.raw.length * MAX_JSON_GROWTH > PAYLOAD_MAX_BYTES;
    const checked = items.map((payload, index) => {
      const errors = caches.validate(t.id, t.version, schema, payload);
      return { index, payload, errors: sized ? itemErrors(errors, payload) : errors };
    });
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
      rejected(new ApiError('SCHEMA_VALIDATION_FAILED', `None of the ${items.length} payloads matches the trigger schema`));
      return answerFor(new Map());
    }
    return this.idempotent(call, t.id, async (trx) => {
      const now = new Date();
      const ids = new Map<number, string>(valid.map((c) => [c.index, newEventId()]));
      await recordEvents(
        trx,
        valid.map((c) => this.eventOf(ids.get(c.index) as string, t, c.payload, now, traceParent)),
        this.deps.config.kafkaTopic,
        now,
      );
      return answerFor(ids);
    });
  }

  private eventOf(id: string, t: TriggerRow, payload: unknown, now: Date, traceParent: string): EventWrite {
    return {
      id,
      trigger_id: t.id,
      trigger_type: 'webhook',
      source: 'webhook',
      is_test_run: false,
      payload,
      scheduled_for: null,
      fired_at: now,
      trace_parent: traceParent,
    };
  }

  /** A fresh read of the trigger: 404 unless it is a webhook trigger, 409 when inactive. */
  private async readWebhookTrigger(id: string): Promise<TriggerRow> {
    const t = await getTrigger(this.deps.db, id);
    // A trigger of another type answers 404 too: the webhook URL space does not reveal other triggers.
    if (!t || t.type !== 'webhook') throw new ApiError('TRIGGER_NOT_FOUND', `No webhook trigger with id ${id}`);
    if (t.status !== 'active') throw new ApiError('TRIGGER_INACTIVE', 'This webhook trigger is inactive; activate it to accept events');
    return t;
  }

  private checkSignature(t: TriggerRow, call: WebhookCall): void {
    const secret = (t.config as WebhookConfig).secret;
    const ok = secret === undefined || verifySignature(call.header, secret, call.raw);
    // For the request log, should the call be rejected (a property set, nothing written).
    call.locals.signature = signatureNote(call.header, secret, ok);
    if (!ok) throw new ApiError('INVALID_SIGNATURE', 'This trigger requires a signed request (X-Signature or Standard Webhooks headers)');
  }

  private checkPayload(t: TriggerRow, payload: unknown): void {
    const errors = this.deps.caches.validate(t.id, t.version, (t.config as WebhookConfig).schema, payload);
    if (errors.length > 0) {
      throw new ApiError(
        'SCHEMA_VALIDATION_FAILED',
        `The payload does not match the trigger schema (${errors.length} error${errors.length > 1 ? 's' : ''})`,
        errors.map((e) => ({ field: e.pointer, message: e.message })),
      );
    }
  }

  private async loadWebhookTrigger(call: WebhookCall): Promise<TriggerRow> {
    const t = await this.readWebhookTrigger(call.triggerId);
    this.checkSignature(t, call);
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
  private async ingestFast(call: WebhookCall, ingest: WebhookIngest, traceParent: string): Promise<string | null> {
    const { caches } = this.deps;
    const id = call.triggerId;
    const payload = call.body;
    for (let round = 0; round < 3; round++) {
      const cached = caches.cachedTrigger(id);
      const t = cached ?? (await this.readWebhookTrigger(id));
      if (!cached) caches.rememberTrigger(t);
      try {
        this.checkSignature(t, call);
        this.checkPayload(t, payload);
      } catch (e) {
        // A 401/400 is never answered from the cache alone: the secret or schema may have changed.
        if (cached && e instanceof ApiError) {
          caches.forgetTrigger(id);
          continue;
        }
        throw e;
      }
      const payloadJson = serialisedWithinLimit(payload);
      const eventId = newEventId();
      const outcome = await ingest.submit({
        eventId,
        triggerId: t.id,
        version: t.version,
        payload,
        payloadJson,
        firedAt: new Date(),
        traceParent,
      });
      if (outcome === 'logged') return eventId;
      if (outcome === 'failed') {
        throw new ApiError('SERVICE_UNAVAILABLE', 'The event could not be stored; nothing was recorded. Retry later.', [], {
          'Retry-After': '1',
        });
      }
      caches.forgetTrigger(id);
    }
    return null;
  }

  /**
   * Runs `write` in a transaction guarded by the Idempotency-Key, if any: the first request stores its
   * answer in the same commit as its events; a repeat within the idempotency window gets that answer back and writes nothing.
   */
  private async idempotent(
    call: WebhookCall,
    triggerId: string,
    write: (trx: Knex.Transaction) => Promise<WebhookAnswer>,
  ): Promise<WebhookAnswer> {
    const stored = await withIdempotencyKey(this.deps.db, `webhook:${triggerId}`, call.header('idempotency-key'), write);
    // A repeat's stored answer wrote nothing; waking the relay for it costs one probe.
    this.deps.outboxWritten?.();
    return stored.answer as WebhookAnswer;
  }
}

/**
 * Ends an ingest span with the answer: the event id (or the batch's count) as attributes, an error answer
 * (a thrown ApiError: 4xx, 503) as the span's error status.
 */
async function traced(span: Span, triggerId: string, answer: Promise<WebhookAnswer>) {
  try {
    const a = await answer;
    const body = a.body as { event_id?: string; accepted?: number };
    endSpan(span, null, {
      [Attr.triggerId]: triggerId,
      ...(body.event_id ? { [Attr.eventId]: body.event_id } : { [Attr.eventCount]: body.accepted ?? 0 }),
      'http.response.status_code': a.status,
    });
    return a;
  } catch (e) {
    endSpan(span, coerceError(e).message, { [Attr.triggerId]: triggerId });
    throw e;
  }
}

/** The call of an Express request that went through express.json() (which kept the raw body). */
function callOf(req: RawRequest, res: Response): WebhookCall {
  return {
    triggerId: String(req.params.trigger_id),
    body: req.body,
    raw: req.rawBody ?? EMPTY,
    header: (name) => req.get(name),
    locals: res.locals,
  };
}

const EMPTY = Buffer.alloc(0);

export function webhookRoutes(deps: { receiver: WebhookReceiver; requestLog?: WebhookRequestLog | null }): Router {
  const { receiver, requestLog } = deps;
  const r = Router();

  r.post('/webhook/:trigger_id', async (req: RawRequest, res) => {
    const answer = await receiver.accept(callOf(req, res));
    res.status(answer.status).json(answer.body);
  });

  r.post('/webhook/:trigger_id/batch', async (req: RawRequest, res) => {
    const answer = await receiver.acceptBatch(callOf(req, res), (err) =>
      requestLog?.note(req, res.locals.signature as SignatureNote | undefined, err),
    );
    res.status(answer.status).json(answer.body);
  });

  return r;
}

const LANE_PATH = /^\/api\/v1\/webhook\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
const LANE_TYPE = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

export interface WebhookLaneOptions {
  /** WEBHOOK_MAX_BODY_BYTES: a larger declared body goes the general way (which answers 413). */
  maxBodyBytes: number;
  /** The per-webhook rate limit: null when the call may go ahead, else the 429 to answer. */
  limit: (triggerId: string) => ApiError | null;
  /** What every request gets first (request id, metrics); called once the lane takes a request. */
  begin: (req: Request, res: Response) => void;
}

/**
 * The lean lane for the hottest route, as the app's first middleware: a single-event webhook call that
 * the general stack could only pass unchanged — POST to a canonical UUID, no query string, no
 * Idempotency-Key, an `application/json` (UTF-8) body of a declared length within the limit, not
 * compressed — is read, parsed and answered here, without the router, body-parser, the OpenAPI validator
 * or res.json() (whose ETag a POST answer has no use for). Everything else goes on to the general stack
 * untouched. Errors go to the app's error handler, so every problem answer (and the request log) is the
 * same as on the general route.
 */
export function webhookLane(receiver: WebhookReceiver, opts: WebhookLaneOptions) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'POST') return next();
    const m = LANE_PATH.exec(req.url);
    const h = req.headers;
    if (!m || h['idempotency-key'] !== undefined || h['content-encoding'] !== undefined || !LANE_TYPE.test(h['content-type'] ?? '')) {
      return next();
    }
    const declared = Number(h['content-length']);
    if (!(declared > 0 && declared <= opts.maxBodyBytes)) return next();
    opts.begin(req, res);
    const triggerId = m[1]!;
    const limited = opts.limit(triggerId);
    if (limited) return next(limited);
    readBody(req, (err, raw) => {
      if (err || !raw) return next(err);
      const call = laneCall(req, res, triggerId, raw);
      if (call instanceof Error) return next(call);
      receiver.accept(call).then((answer) => sendJson(res, answer), next);
    });
  };
}

/** The whole body (its length is declared and within the limit). */
function readBody(req: Request, done: (err: Error | null, raw?: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    chunks.push(c);
    size += c.length;
  });
  req.on('end', () => done(null, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
  req.on('error', (e) => done(e));
}

/** The body parsed as express.json() would (a leading BOM dropped), or the error it would pass on. */
function laneCall(req: RawRequest, res: Response, triggerId: string, raw: Buffer): WebhookCall | Error {
  req.rawBody = raw;
  if (jsonDepthExceeds(raw)) return new JsonTooDeepError();
  let body: unknown;
  try {
    const text = raw.toString('utf8');
    body = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    return Object.assign(new Error((e as Error).message), { status: 400, type: 'entity.parse.failed' });
  }
  req.body = body;
  const h = req.headers;
  return {
    triggerId,
    body,
    raw,
    header: (name) => {
      const v = h[name];
      return typeof v === 'string' ? v : undefined;
    },
    locals: res.locals,
  };
}

function sendJson(res: Response, answer: WebhookAnswer): void {
  const text = JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The payload serialised (the text the event log stores and its Kafka message carries), or a 413 when that
 * text is over PAYLOAD_MAX_BYTES: such a message would be refused by Kafka on every retry.
 */
function serialisedWithinLimit(payload: unknown): string {
  const json = JSON.stringify(payload ?? null);
  const over = payloadOverLimit(json);
  if (over !== null) {
    throw new ApiError('PAYLOAD_TOO_LARGE', `The payload is too large for an event (${over} bytes as JSON)`, [
      { field: 'body', message: payloadLimitMessage(over) },
    ]);
  }
  return json;
}

/**
 * The most a JSON text grows when it is parsed and serialised again: a number is written out in full below
 * 1e21, so `1e20` (4 characters) comes back as 21; nothing else grows (whitespace goes, escapes shrink or stay).
 */
const MAX_JSON_GROWTH = 6;

/** A batch item's errors: the schema's, or (when it passes) its size over the limit, as a pointer to the whole item. */
function itemErrors(
  schemaErrors: Array<{ pointer: string; message: string }>,
  payload: unknown,
): Array<{ pointer: string; message: string }> {
  if (schemaErrors.length > 0) return schemaErrors;
  const tooLarge = payloadTooLarge(payload);
  return tooLarge === null ? schemaErrors : [{ pointer: '/', message: tooLarge }];
}
