import type { NextFunction, Request, Response } from 'express';
import { coerceError, type Logger } from '../logger';
import { ER_QUERY_INTERRUPTED } from './bounded-read';
import { dbErrorKind } from '../db/errors';

/** The catalogue: every error the API can answer with, its HTTP status and title. */
export const ERRORS = {
  VALIDATION_FAILED: { status: 400, title: 'The request is invalid' },
  MALFORMED_JSON: { status: 400, title: 'The body is not valid JSON' },
  SCHEMA_VALIDATION_FAILED: { status: 400, title: 'The payload does not match the trigger schema' },
  UNAUTHORIZED: { status: 401, title: 'Missing or invalid API key' },
  INVALID_SIGNATURE: { status: 401, title: 'Missing or invalid webhook signature' },
  NOT_FOUND: { status: 404, title: 'Not found' },
  TRIGGER_NOT_FOUND: { status: 404, title: 'Trigger not found' },
  EVENT_NOT_FOUND: { status: 404, title: 'Event not found' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed' },
  TRIGGER_INACTIVE: { status: 409, title: 'The trigger is inactive' },
  EVENT_NOT_REPLAYABLE: { status: 409, title: 'The event cannot be replayed' },
  EVENT_ALREADY_REPLAYED: { status: 409, title: 'The event has been replayed already' },
  EVENT_NOT_FINAL: { status: 409, title: 'The event has not ended yet' },
  EVENT_ENDED: { status: 409, title: 'The event has ended' },
  RETRY_NOT_WAITING: { status: 409, title: 'No attempt of the event is waiting' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported media type' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  INTERNAL: { status: 500, title: 'Internal server error' },
  SERVICE_UNAVAILABLE: { status: 503, title: 'A dependency is unavailable' },
  READ_TIMEOUT: { status: 503, title: 'The query ran past the read time limit' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    detail?: string,
    readonly errors: FieldError[] = [],
    readonly headers: Record<string, string> = {},
    /** Extension members of the problem document (RFC 9457 §3.2), e.g. the existing replay's id. */
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(detail ?? ERRORS[code].title);
    this.name = 'ApiError';
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
}

export function validationError(errors: FieldError[], detail?: string): ApiError {
  return new ApiError('VALIDATION_FAILED', detail ?? errors.map((e) => `${e.field}: ${e.message}`).join('; '), errors);
}

export function sendProblem(res: Response, req: Request, err: ApiError): void {
  const body: Record<string, unknown> = {
    type: `https://event-trigger-platform.dev/problems/${err.code.toLowerCase().replace(/_/g, '-')}`,
    title: ERRORS[err.code].title,
    status: err.status,
    code: err.code,
    detail: err.message,
    instance: req.originalUrl.split('?')[0],
  };
  const requestId = (res.locals as { requestId?: string }).requestId;
  if (requestId) body.request_id = requestId;
  if (err.errors.length > 0) body.errors = err.errors;
  for (const [k, v] of Object.entries(err.extensions)) if (!(k in body)) body[k] = v;
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.status(err.status).type('application/problem+json').send(JSON.stringify(body));
}

/** express-openapi-validator reports paths like "/body/config/cron" or "/query/limit". */
function fieldFromValidatorPath(path: string | undefined): string {
  if (!path) return 'body';
  const parts = path
    .replace(/^\.?\/?/, '')
    .split(/[/.]/)
    .filter(Boolean);
  if (parts[0] === 'body') return parts.length > 1 ? parts.slice(1).join('.') : 'body';
  if (parts[0] === 'query' || parts[0] === 'params' || parts[0] === 'headers' || parts[0] === 'path') {
    return `${parts[0] === 'params' || parts[0] === 'path' ? 'path' : parts[0]}.${parts.slice(1).join('.')}`;
  }
  return parts.join('.');
}

interface HttpLikeError {
  status?: number;
  statusCode?: number;
  type?: string;
  errors?: Array<{ path?: string; message?: string }>;
  message?: string;
}

/**
 * Maps anything thrown in a handler (or by express/body-parser/the validator) to a problem document.
 * `onProblem` sees every problem document sent for an error (the webhook request log keeps the rejections).
 */
export function errorHandler(logger: Logger, onProblem?: (req: Request, res: Response, err: ApiError) => void) {
  return (e: unknown, req: Request, res: Response, _next: NextFunction): void => {
    if (res.headersSent) return;
    const problem = toProblem(e, req, logger);
    onProblem?.(req, res, problem);
    sendProblem(res, req, problem);
  };
}

function toProblem(e: unknown, req: Request, logger: Logger): ApiError {
  if (e instanceof ApiError) return e;
  const he = e as HttpLikeError;
  const status = he?.status ?? he?.statusCode;
  if (he?.type === 'entity.parse.failed') {
    return new ApiError('MALFORMED_JSON', `The body is not valid JSON: ${he.message ?? ''}`.trim(), [
      { field: 'body', message: 'invalid JSON' },
    ]);
  }
  if (he?.type === 'entity.too.large' || status === 413) {
    return new ApiError('PAYLOAD_TOO_LARGE', 'The request body is over the configured limit');
  }
  if (status === 415 || he?.type === 'encoding.unsupported' || he?.type === 'charset.unsupported') {
    return new ApiError('UNSUPPORTED_MEDIA_TYPE', he.message ?? 'Send application/json');
  }
  if (status === 404) return new ApiError('NOT_FOUND', 'No such route');
  if (status === 405) return new ApiError('METHOD_NOT_ALLOWED', he.message);
  if (status === 401) return new ApiError('UNAUTHORIZED');
  if (status === 400 && Array.isArray(he.errors)) {
    const errors = he.errors.map((x) => ({ field: fieldFromValidatorPath(x.path), message: x.message ?? 'invalid' }));
    return validationError(errors);
  }
  if (status !== undefined && status >= 400 && status < 500) {
    return new ApiError('VALIDATION_FAILED', he.message ?? 'Bad request');
  }
  if ((e as { errno?: number })?.errno === ER_QUERY_INTERRUPTED) {
    // The client went away and its read was stopped (see bounded-read.ts): nobody reads this answer.
    return new ApiError('READ_TIMEOUT', 'The query was stopped', [], { 'Retry-After': '1' });
  }
  if ((e as Error)?.name === 'KnexTimeoutError') {
    // A read ran past READ_TIMEOUT (and was killed), or no pooled connection came free in time.
    const detail =
      'The database did not answer within the time limit; narrow the filter (trigger_id, execution_status, from/to) or try again';
    return new ApiError('READ_TIMEOUT', detail, [], { 'Retry-After': '1' });
  }
  const transient = dbErrorKind(e);
  if (transient !== null) {
    // A failover (certification failure, a node not yet synced or read-only, a connection reset) or a
    // lost race: nothing is acknowledged, and the same request may be sent again shortly.
    logger.warn('database unavailable for a request', {
      error: coerceError(e).message,
      kind: transient,
      path: req.path,
      request_id: (req.res?.locals as { requestId?: string } | undefined)?.requestId,
    });
    const detail =
      'The database is unavailable or busy (failover, read-only or unsynced node, lost connection); retry after Retry-After seconds';
    return new ApiError('SERVICE_UNAVAILABLE', detail, [], { 'Retry-After': '1' });
  }
  const err = coerceError(e);
  const requestId = (req.res?.locals as { requestId?: string } | undefined)?.requestId;
  logger.error('request failed', { error: err.message, stack: err.stack, path: req.path, method: req.method, request_id: requestId });
  return new ApiError('INTERNAL', 'An unexpected error occurred; the request id identifies it in the logs');
}
