import { createHmac } from 'node:crypto';
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { RESPONSE_BODY_MAX_BYTES } from '../db/attempts';
import type { CommonConfig, WebhookConfig } from '../triggers/types';
import { headersForHistory, type RawHeaders } from './headers';

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

function refusal(host: string, address: string): string {
  return `endpoint ${host} resolves to a private or loopback address (${address}); refused`;
}

/** The endpoint's host resolves to a private address: a permanent failure, nothing was sent. */
class PrivateAddressError extends Error {}
/** The endpoint's host did not resolve: retried, like a network error, but named as a DNS failure. */
class DnsLookupError extends Error {}
/** The delivery's timeout_ms ran out (connect, request, or reading the answer's body). */
class DeliveryTimeoutError extends Error {}

/**
 * The lookup the delivery sockets connect with. Resolving here, inside the connection, is what closes the
 * DNS-rebinding window: the addresses checked are the ones the socket connects to, not those of an earlier,
 * separate lookup that a short-TTL name can answer differently. Any private address refuses the whole name
 * (not only the first). Node calls this only for names; address literals are checked in `deliver`.
 */
function resolveFor(allowPrivate: boolean): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addrs) => {
      if (err) return callback(new DnsLookupError(err.message), '', 0);
      const bad = allowPrivate ? undefined : addrs.find((a) => isPrivateAddress(a.address));
      if (bad) return callback(new PrivateAddressError(refusal(hostname, bad.address)), '', 0);
      if (addrs.length === 0) return callback(new DnsLookupError(`no address for ${hostname}`), '', 0);
      if (options.all) callback(null, addrs);
      else callback(null, addrs[0]!.address, addrs[0]!.family);
    });
  };
}

/**
 * Keep-alive agents, built on first use: one for http and one for https per setting of
 * DELIVERY_ALLOW_PRIVATE_NETWORKS (a process uses one setting; tests use both). The guard lives in the
 * agent, so a pooled socket was always connected through it. LIFO hands out the most recently used
 * socket, so sockets left idle reach the server's keep-alive timeout (honoured from its `Keep-Alive`
 * hint) and close instead of being reused as they expire.
 */
const agents = new Map<string, http.Agent>();
function agentFor(secure: boolean, allowPrivate: boolean): http.Agent {
  const key = `${secure}:${allowPrivate}`;
  let agent = agents.get(key);
  if (!agent) {
    const options: https.AgentOptions = {
      keepAlive: true,
      maxSockets: 256,
      scheduling: 'lifo',
      timeout: 30_000, // idle pooled sockets; the delivery's own timer bounds an active request
      lookup: resolveFor(allowPrivate),
    };
    agent = secure ? new https.Agent(options) : new http.Agent(options);
    agents.set(key, agent);
  }
  return agent;
}

export interface DeliveryRequest {
  eventId: string;
  payload: unknown;
  config: CommonConfig & Partial<Pick<WebhookConfig, 'secret'>>;
  /** The W3C trace context of this attempt, sent as `traceparent` (it replaces a configured one). */
  traceparent?: string;
}

export interface DeliveryResult {
  outcome: Outcome;
  startedAt: Date;
  durationMs: number;
  /** The first RESPONSE_BODY_KEEP_BYTES of the response body; null when no response came back. */
  responseBody: Buffer | null;
  /** The headers sent, for the attempts history (secrets masked, bounded); null when no request was made. */
  requestHeaders: Record<string, string> | null;
  /** The headers the endpoint answered with (masked, bounded); null when no response came back. */
  responseHeaders: Record<string, string> | null;
}

/** How much of a response body a delivery keeps: what the attempts history stores. */
export const RESPONSE_BODY_KEEP_BYTES = RESPONSE_BODY_MAX_BYTES;
/** How much more is read and dropped so the connection can be reused; beyond it the body is abandoned. */
const RESPONSE_BODY_DRAIN_BYTES = 1 << 20;

/**
 * Reads the first `keep` bytes of a body and drains the rest (up to a bound), so the connection is reused
 * and a huge answer costs at most the bound: beyond it the stream (for a response, its socket) is
 * destroyed. A body that fails or is cut off mid-way keeps what had arrived. The bytes are kept as sent:
 * deliveries do not ask for a content-encoding, so a receiver that compresses anyway is stored compressed.
 */
export function readBodyPrefix(body: Readable | null, keep: number, drain = RESPONSE_BODY_DRAIN_BYTES): Promise<Buffer> {
  if (!body) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let seen = 0;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      body.removeListener('data', onData);
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (kept < keep) {
        // A cut chunk is copied, so the kept prefix does not pin the socket's whole read buffer.
        const part = chunk.length <= keep - kept ? chunk : Buffer.from(chunk.subarray(0, keep - kept));
        chunks.push(part);
        kept += part.length;
      }
      if (seen > keep + drain) {
        finish();
        body.destroy();
      }
    };
    body.on('data', onData);
    body.once('end', finish);
    body.once('close', finish);
    body.once('error', finish); // a body cut short (timeout, reset): keep what arrived
  });
}

/**
 * Headers that frame the message or manage the connection are the client's to set: a configured
 * `Transfer-Encoding` or `Content-Length` would contradict the body sent, and `Connection` would fight the
 * keep-alive pool (fetch refused most of these; here they are left out).
 */
const FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect']);

export function deliver(req: DeliveryRequest, allowPrivate: boolean): Promise<DeliveryResult> {
  const startedAt = new Date();
  const started = startedAt.getTime();
  // Set once the request's headers are built: an attempt refused before that sent nothing.
  let sentHeaders: Record<string, string> | null = null;
  const done = (outcome: Outcome, responseBody: Buffer | null = null, responseHeaders: RawHeaders | null = null): DeliveryResult => ({
    outcome,
    startedAt,
    durationMs: Date.now() - started,
    responseBody,
    requestHeaders: sentHeaders,
    responseHeaders: responseHeaders ? headersForHistory(responseHeaders) : null,
  });
  const retry = (error: string): DeliveryResult => done({ kind: 'retry', status: null, error, retryAfterMs: null });
  let url: URL;
  try {
    url = new URL(req.config.endpoint);
  } catch (e) {
    return Promise.resolve(retry(`dns lookup failed: ${(e as Error).message}`));
  }
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') return Promise.resolve(retry(`network error: unsupported protocol ${url.protocol}`));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // Node connects to an address literal without calling the agent's lookup, so the guard checks it here.
  if (!allowPrivate && net.isIP(host) && isPrivateAddress(host)) {
    return Promise.resolve(done({ kind: 'failure', status: null, error: refusal(host, host) }));
  }

  const method = req.config.http_method;
  const body = method === 'GET' ? null : JSON.stringify(req.payload ?? null);
  const headers = requestHeaders(req, body, Math.floor(Date.now() / 1000));
  sentHeaders = headersForHistory({ host: url.host, ...headers });
  const options: http.RequestOptions = {
    agent: agentFor(secure, allowPrivate),
    hostname: host,
    port: url.port || (secure ? 443 : 80),
    path: url.pathname + url.search,
    method,
    headers,
  };
  return request(options, secure, body, req.config.timeout_ms, done, retry);
}

/** The request's headers: the trigger's own (less framing ones), then ours, which win. */
function requestHeaders(req: DeliveryRequest, body: string | null, ts: number): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name in req.config.headers) {
    if (!FRAMING_HEADERS.has(name.toLowerCase())) headers[name] = req.config.headers[name]!;
  }
  Object.assign(headers, {
    'content-type': 'application/json',
    'user-agent': 'event-trigger-platform/0.1',
    'webhook-id': req.eventId,
    'webhook-timestamp': String(ts),
    'idempotency-key': req.eventId,
  });
  if (body !== null) headers['content-length'] = String(Buffer.byteLength(body));
  if (req.traceparent) {
    for (const name in headers) if (name.toLowerCase() === 'traceparent' || name.toLowerCase() === 'tracestate') delete headers[name];
    headers.traceparent = req.traceparent;
  }
  if (req.config.secret) {
    // A GET carries no body; its signature covers the body it would have had, as before.
    headers['webhook-signature'] = signStandardWebhook(req.config.secret, req.eventId, ts, body ?? JSON.stringify(req.payload ?? null));
  }
  return headers;
}

/** Sends the request and reads the answer, all within one timer of `timeoutMs`. */
function request(
  options: http.RequestOptions,
  secure: boolean,
  body: string | null,
  timeoutMs: number,
  done: (outcome: Outcome, responseBody?: Buffer | null, responseHeaders?: RawHeaders | null) => DeliveryResult,
  retry: (error: string) => DeliveryResult,
): Promise<DeliveryResult> {
  return new Promise<DeliveryResult>((resolve) => {
    let settled = false;
    let current: http.ClientRequest | null = null;
    const settle = (r: DeliveryResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    // One timer for the whole delivery: lookup, connect, request, and reading the answer's body.
    const timer = setTimeout(() => {
      current?.destroy(new DeliveryTimeoutError());
      settle(retry(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);

    const send = (isRetry: boolean) => {
      let answered = false;
      const r = (secure ? https : http).request(options, (res) => {
        answered = true;
        // Keep the start of the body for the attempts history; drain the rest so the connection is reused.
        void readBodyPrefix(res, RESPONSE_BODY_KEEP_BYTES).then((kept) => {
          const retryAfter = res.headers['retry-after'];
          settle(done(classify(res.statusCode ?? 0, typeof retryAfter === 'string' ? retryAfter : null), kept, res.headers));
        });
      });
      current = r;
      r.on('error', (err: NodeJS.ErrnoException) => {
        if (answered || settled) return; // the body reader has what arrived, or the timer has settled
        // A pooled socket the server closed just as it was handed out: nothing was processed, so send
        // once more on a fresh one rather than spend one of the event's attempts on it.
        if (!isRetry && r.reusedSocket && err.code === 'ECONNRESET') return send(true);
        if (err instanceof PrivateAddressError) settle(done({ kind: 'failure', status: null, error: err.message }));
        else if (err instanceof DnsLookupError) settle(retry(`dns lookup failed: ${err.message}`));
        else settle(retry(`network error: ${err.message}`));
      });
      r.end(body ?? undefined);
    };
    send(false);
  });
}
