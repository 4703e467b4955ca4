import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ApiError } from './errors';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The key a request presents: `Authorization: Bearer <key>`, else `X-API-Key`. */
export function presentedApiKey(req: Request): string | undefined {
  const header = req.get('authorization');
  let presented: string | undefined;
  if (header && /^bearer\s+/i.test(header)) presented = header.replace(/^bearer\s+/i, '').trim();
  presented ??= req.get('x-api-key')?.trim();
  return presented || undefined;
}

/**
 * API keys for the management routes. Keys are compared as SHA-256 digests with timingSafeEqual (equal
 * lengths, constant time) and never logged. The webhook receiver is public: it has per-trigger secrets.
 */
export function apiKeyAuth(keys: readonly string[]) {
  const digests = keys.map(digest);
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (digests.length === 0) return next();
    const presented = presentedApiKey(req);
    if (presented) {
      const d = digest(presented);
      let ok = false;
      for (const k of digests) ok = timingSafeEqual(d, k) || ok;
      if (ok) return next();
    }
    next(
      new ApiError('UNAUTHORIZED', 'Send a valid API key as "Authorization: Bearer <key>" or "X-API-Key: <key>"', [], {
        'WWW-Authenticate': 'Bearer',
      }),
    );
  };
}
