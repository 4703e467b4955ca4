import { createHmac } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { CommonConfig, WebhookConfig } from '../triggers/types';

/** Standard Webhooks signature: base64 HMAC-SHA256 over "id.timestamp.body", as "v1,<sig>". */
export function signStandardWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', secret).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`;
}

export type Outcome =
  | { kind: 'success'; status: number }
  | { kind: 'retry'; status: number | null; error: string; retryAfterMs: number | null }
  | { kind: 'failure'; status: number | null; error: string };

/** svix-style classification: 2xx delivered; 4xx permanent except 408/429; 5xx and network errors retried. */
export function classify(status: number, retryAfter: string | null, now = Date.now()): Outcome {
  if (status >= 200 && status < 300) return { kind: 'success', status };
  if (status === 408 || status === 429 || status >= 500) {
    return { kind: 'retry', status, error: `endpoint answered ${status}`, retryAfterMs: parseRetryAfter(retryAfter, now) };
  }
  return { kind: 'failure', status, error: `endpoint answered ${status} (not retried)` };
}

/** Retry-After as seconds or an HTTP date; capped at one hour. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | null {
  if (!v) return null;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Math.min(3600_000, Number(t) * 1000);
  const at = Date.parse(t);
  return Number.isNaN(at) ? null : Math.min(3600_000, Math.max(0, at - now));
}

/** Loopback, private, link-local, CGNAT, metadata, multicast and unspecified ranges (IPv4 and IPv6). */
export function isPrivateAddress(ip: string): boolean {
  if (net.isIPv4(ip)) {
    const [a, b] = ip.split('.').map(Number);
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 198 && (b === 18 || b === 19)) ||
      a >= 224
    );
  }
  const v = ip.toLowerCase();
  // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible ::a.b.c.d: judge the IPv4 address.
  // URL parsing writes them in hex ([::ffff:127.0.0.1] becomes [::ffff:7f00:1]), so read that form too.
  const embedded = /^::(?:ffff:)?(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/.exec(v);
  if (embedded) {
    if (embedded[1]) return isPrivateAddress(embedded[1]);
    const hi = parseInt(embedded[2]!, 16);
    const lo = parseInt(embedded[3]!, 16);
    return isPrivateAddress(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
  }
  return (
    v === '::' ||
    v === '::1' ||
    v.startsWith('fc') ||
    v.startsWith('fd') ||
    v.startsWith('fe8') ||
    v.startsWith('fe9') ||
    v.startsWith('fea') ||
    v.startsWith('feb') ||
    v.startsWith('ff')
  );
}

/** SSRF guard: checks every address the endpoint's host resolves to, not just its name. */
export async function checkEndpointAddress(endpoint: string, allowPrivate: boolean): Promise<string | null> {
  if (allowPrivate) return null;
  const host = new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
  const addrs = net.isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  const bad = addrs.find(isPrivateAddress);
  return bad ? `endpoint ${host} resolves to a private or loopback address (${bad}); refused` : null;
}

export interface DeliveryRequest {
  eventId: string;
  payload: unknown;
  config: CommonConfig & Partial<Pick<WebhookConfig, 'secret'>>;
}

export interface DeliveryResult {
  outcome: Outcome;
  startedAt: Date;
  durationMs: number;
  /** The first RESPONSE_BODY_KEEP_BYTES of the response body; null when no response came back. */
  responseBody: Buffer | null;
}

/** How much of a response body a delivery keeps (for the attempts history). */
export const RESPONSE_BODY_KEEP_BYTES = 4096;
/** How much more is read and dropped so the connection can be reused; beyond it the body is abandoned. */
const RESPONSE_BODY_DRAIN_BYTES = 1 << 20;

/**
 * Reads the first `keep` bytes of a body and drains the rest (up to a bound), so the connection is reused
 * and a huge answer costs at most the bound. A body that fails mid-way keeps what had arrived.
 */
export async function readBodyPrefix(
  body: ReadableStream<Uint8Array> | null,
  keep: number,
  drain = RESPONSE_BODY_DRAIN_BYTES,
): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let kept = 0;
  let seen = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += value.byteLength;
      if (kept < keep) {
        const part = Buffer.from(value.buffer, value.byteOffset, Math.min(value.byteLength, keep - kept));
        chunks.push(Buffer.from(part));
        kept += part.byteLength;
      }
      if (seen > keep + drain) {
        await reader.cancel().catch(() => undefined);
        break;
      }
    }
  } catch {
    /* a body cut short (timeout, reset): keep what arrived */
  }
  return Buffer.concat(chunks);
}

export async function deliver(req: DeliveryRequest, allowPrivate: boolean): Promise<DeliveryResult> {
  const startedAt = new Date();
  const started = startedAt.getTime();
  const done = (outcome: Outcome, responseBody: Buffer | null = null): DeliveryResult => ({
    outcome,
    startedAt,
    durationMs: Date.now() - started,
    responseBody,
  });
  try {
    const refused = await checkEndpointAddress(req.config.endpoint, allowPrivate);
    if (refused) return done({ kind: 'failure', status: null, error: refused });
  } catch (e) {
    return done({ kind: 'retry', status: null, error: `dns lookup failed: ${(e as Error).message}`, retryAfterMs: null });
  }
  const body = JSON.stringify(req.payload ?? null);
  const ts = Math.floor(Date.now() / 1000);
  const headers: Record<string, string> = {
    ...req.config.headers,
    'content-type': 'application/json',
    'user-agent': 'event-trigger-platform/0.1',
    'webhook-id': req.eventId,
    'webhook-timestamp': String(ts),
    'idempotency-key': req.eventId,
  };
  if (req.config.secret) headers['webhook-signature'] = signStandardWebhook(req.config.secret, req.eventId, ts, body);
  const method = req.config.http_method;
  try {
    const res = await fetch(req.config.endpoint, {
      method,
      headers,
      body: method === 'GET' ? undefined : body,
      redirect: 'manual',
      signal: AbortSignal.timeout(req.config.timeout_ms),
    });
    // Keep the start of the body for the attempts history; drain the rest so the connection is reused.
    const responseBody = await readBodyPrefix(res.body, RESPONSE_BODY_KEEP_BYTES);
    return done(classify(res.status, res.headers.get('retry-after')), responseBody);
  } catch (e) {
    const err = e as Error;
    const timedOut = err.name === 'TimeoutError' || err.name === 'AbortError';
    const reason = timedOut
      ? `timed out after ${req.config.timeout_ms} ms`
      : `network error: ${(err as { cause?: Error }).cause?.message ?? err.message}`;
    return done({ kind: 'retry', status: null, error: reason, retryAfterMs: null });
  }
}
