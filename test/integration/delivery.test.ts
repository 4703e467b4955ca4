import { expect } from 'chai';
import dns from 'node:dns';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { deliver, RESPONSE_BODY_KEEP_BYTES, type DeliveryRequest } from '../../src/worker/delivery';

/**
 * `deliver` against real sockets on 127.0.0.1, without the worker around it: the SSRF guard at connect
 * time, keep-alive, the timeout over the whole exchange and the kept prefix of a large answer.
 */

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A local server that counts TCP connections and records requests; `handle` answers each one. */
class Endpoint {
  connections = 0;
  readonly seen: Seen[] = [];
  handle: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.end('ok');
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      this.handle(req, res);
    });
  });

  async start(): Promise<this> {
    this.server.on('connection', () => this.connections++);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    return this;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  url(path = '/hook', host = '127.0.0.1'): string {
    return `http://${host}:${this.port}${path}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const request = (endpoint: string, extra: Partial<Omit<DeliveryRequest['config'], 'retry'>> = {}): DeliveryRequest => ({
  eventId: 'evt_1',
  payload: { n: 1 },
  config: { endpoint, http_method: 'POST', headers: {}, timeout_ms: 2000, retry: { max_attempts: 1, backoff_ms: 1000 }, ...extra },
});

type LookupAnswer = (hostname: string) => { address: string; family: number }[] | Error;

/** Replaces the system resolver (node:dns lookup, which sockets resolve names with) for one test. */
function fakeResolver(answer: LookupAnswer): { calls: string[]; restore(): void } {
  const original = dns.lookup;
  const calls: string[] = [];
  const fake = (hostname: string, options: unknown, callback: (err: Error | null, addrs?: unknown) => void) => {
    calls.push(hostname);
    const a = answer(hostname);
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all;
    process.nextTick(() => {
      if (a instanceof Error) callback(a);
      else if (all) callback(null, a);
      else (callback as (e: null, address: string, family: number) => void)(null, a[0]!.address, a[0]!.family);
    });
  };
  (dns as { lookup: unknown }).lookup = fake;
  return { calls, restore: () => ((dns as { lookup: unknown }).lookup = original) };
}

describe('deliver: one HTTP delivery over node:http', function () {
  this.timeout(20_000);
  let endpoint: Endpoint;
  let restore: (() => void) | null = null;

  beforeEach(async () => {
    endpoint = await new Endpoint().start();
  });
  afterEach(async () => {
    restore?.();
    restore = null;
    await endpoint.stop();
  });

  describe('SSRF guard', () => {
    for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
      it(`refuses ${host} without DELIVERY_ALLOW_PRIVATE_NETWORKS: a permanent failure, and no connection is made`, async () => {
        const r = await deliver(request(endpoint.url('/ssrf', host)), false);
        const name = host.replace(/^\[|\]$/g, '');
        expect(r.outcome).to.deep.include({ kind: 'failure', status: null });
        // localhost may resolve to 127.0.0.1 or ::1 first; either is named.
        expect((r.outcome as { error: string }).error).to.match(
          new RegExp(
            `^endpoint ${name.replace(/[.:]/g, '\\$&')} resolves to a private or loopback address \\((127\\.0\\.0\\.1|::1)\\); refused$`,
          ),
        );
        expect(r.responseBody).to.equal(null);
        expect(endpoint.connections).to.equal(0);
      });
    }

    it('delivers to 127.0.0.1 and localhost when private networks are allowed', async () => {
      expect((await deliver(request(endpoint.url('/a')), true)).outcome).to.deep.include({ kind: 'success', status: 200 });
      expect((await deliver(request(endpoint.url('/b', 'localhost')), true)).outcome).to.deep.include({ kind: 'success', status: 200 });
      expect(endpoint.seen.map((s) => s.url)).to.deep.equal(['/a', '/b']);
    });

    it('checks the addresses of the one lookup the connection makes (no second resolution to rebind)', async () => {
      const resolver = fakeResolver((name) =>
        name === 'hooks.example.test' ? [{ address: '127.0.0.1', family: 4 }] : new Error(`unexpected ${name}`),
      );
      restore = resolver.restore;
      const refused = await deliver(request(endpoint.url('/rebind', 'hooks.example.test')), false);
      expect(refused.outcome).to.deep.equal({
        kind: 'failure',
        status: null,
        error: 'endpoint hooks.example.test resolves to a private or loopback address (127.0.0.1); refused',
      });
      expect(resolver.calls).to.deep.equal(['hooks.example.test']);
      expect(endpoint.connections).to.equal(0);

      // Allowed: the same single lookup is what the socket connects to.
      const ok = await deliver(request(endpoint.url('/rebind', 'hooks.example.test')), true);
      expect(ok.outcome).to.deep.include({ kind: 'success', status: 200 });
      expect(resolver.calls).to.have.length(2);
      expect(endpoint.seen[0]!.headers.host).to.equal(`hooks.example.test:${endpoint.port}`);
    });

    it('refuses a name when any of its addresses is private, even if the first is public', async () => {
      const resolver = fakeResolver(() => [
        { address: '93.184.216.34', family: 4 },
        { address: '10.0.0.7', family: 4 },
      ]);
      restore = resolver.restore;
      const r = await deliver(request(endpoint.url('/', 'mixed.example.test')), false);
      expect(r.outcome).to.deep.include({ kind: 'failure', status: null });
      expect((r.outcome as { error: string }).error).to.match(/\(10\.0\.0\.7\); refused$/);
    });

    it('retries a name that does not resolve, saying so', async () => {
      const resolver = fakeResolver((name) => Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
      restore = resolver.restore;
      const r = await deliver(request(endpoint.url('/', 'nowhere.example.test')), false);
      expect(r.outcome).to.deep.equal({
        kind: 'retry',
        status: null,
        error: 'dns lookup failed: getaddrinfo ENOTFOUND nowhere.example.test',
        retryAfterMs: null,
      });
    });
  });

  it('reuses one keep-alive connection for sequential deliveries to the same endpoint', async () => {
    for (let i = 0; i < 3; i++) expect((await deliver(request(endpoint.url(`/k${i}`)), true)).outcome.kind).to.equal('success');
    expect(endpoint.seen).to.have.length(3);
    expect(endpoint.connections).to.equal(1);
  });

  it('sends the method, configured headers, JSON body, Standard Webhooks headers and content-length', async () => {
    const signed = request(endpoint.url('/h'), { http_method: 'PATCH', headers: { 'X-Team': 'ops' }, secret: 's3cret-s3cret-s3cret' });
    await deliver({ ...signed, eventId: 'evt_h', payload: { a: 'é' } }, true);
    await deliver(request(endpoint.url('/g'), { http_method: 'GET' }), true);
    const [patch, get] = endpoint.seen;
    expect(patch).to.deep.include({ method: 'PATCH', body: '{"a":"é"}' });
    expect(patch!.headers).to.include({
      'x-team': 'ops',
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength('{"a":"é"}')),
      'user-agent': 'event-trigger-platform/0.1',
      'webhook-id': 'evt_h',
      'idempotency-key': 'evt_h',
    });
    expect(patch!.headers['webhook-signature']).to.match(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(patch!.headers['accept-encoding'], 'no compressed answers are asked for').to.equal(undefined);
    expect(get).to.deep.include({ method: 'GET', body: '' });
    expect(get!.headers['content-length']).to.equal(undefined);
    expect(get!.headers['transfer-encoding']).to.equal(undefined);
  });

  it('leaves out configured headers that would contradict the framing of the body it sends', async () => {
    const framing = {
      'Transfer-Encoding': 'chunked',
      'Content-Length': '999',
      Connection: 'close',
      Expect: '100-continue',
      'X-Kept': 'yes',
    };
    const r = await deliver(request(endpoint.url('/framing'), { headers: framing }), true);
    expect(r.outcome).to.deep.equal({ kind: 'success', status: 200 });
    const [seen] = endpoint.seen;
    expect(seen!.body).to.equal('{"n":1}');
    expect(seen!.headers).to.include({ 'content-length': '7', 'x-kept': 'yes' });
    expect(seen!.headers).to.not.have.any.keys('transfer-encoding', 'expect');
    expect(seen!.headers.connection).to.equal('keep-alive');
  });

  it('does not follow a redirect: a 302 is a permanent failure and the target is not requested', async () => {
    endpoint.handle = (_req, res) => {
      res.writeHead(302, { location: '/elsewhere' });
      res.end();
    };
    const r = await deliver(request(endpoint.url('/moved')), true);
    expect(r.outcome).to.deep.equal({ kind: 'failure', status: 302, error: 'endpoint answered 302 (not retried)' });
    expect(endpoint.seen.map((s) => s.url)).to.deep.equal(['/moved']);
  });

  it('passes Retry-After of a 503 to the classification', async () => {
    endpoint.handle = (_req, res) => {
      res.writeHead(503, { 'retry-after': '7' });
      res.end('busy');
    };
    const r = await deliver(request(endpoint.url('/busy')), true);
    expect(r.outcome).to.deep.equal({ kind: 'retry', status: 503, error: 'endpoint answered 503', retryAfterMs: 7000 });
    expect(r.responseBody!.toString()).to.equal('busy');
  });

  it('retries a refused connection as a network error', async () => {
    const port = endpoint.port;
    await endpoint.stop();
    endpoint = await new Endpoint().start(); // afterEach stops this one
    const r = await deliver(request(`http://127.0.0.1:${port}/gone`), true);
    expect(r.outcome).to.deep.include({ kind: 'retry', status: null });
    expect((r.outcome as { error: string }).error).to.match(/^network error: connect ECONNREFUSED/);
  });

  it('times out a slow answer, the body included: headers sent, body never finished', async () => {
    endpoint.handle = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('started…'); // and never ends
    };
    const t0 = Date.now();
    const r = await deliver(request(endpoint.url('/slow-body'), { timeout_ms: 300 }), true);
    expect(r.outcome).to.deep.equal({ kind: 'retry', status: null, error: 'timed out after 300 ms', retryAfterMs: null });
    expect(r.responseBody).to.equal(null);
    expect(Date.now() - t0).to.be.within(250, 1500);
  });

  it('times out an endpoint that never answers', async () => {
    endpoint.handle = () => undefined;
    const r = await deliver(request(endpoint.url('/silent'), { timeout_ms: 200 }), true);
    expect(r.outcome).to.deep.equal({ kind: 'retry', status: null, error: 'timed out after 200 ms', retryAfterMs: null });
  });

  it('keeps the first 4 KiB of a large answer, still succeeds, and reuses the drained connection', async () => {
    const big = Buffer.alloc(300_000, 'x');
    big.write('HEAD', 0);
    endpoint.handle = (_req, res) => res.end(big);
    const r = await deliver(request(endpoint.url('/big')), true);
    expect(r.outcome).to.deep.equal({ kind: 'success', status: 200 });
    expect(r.responseBody!.length).to.equal(RESPONSE_BODY_KEEP_BYTES);
    expect(r.responseBody!.subarray(0, 4).toString()).to.equal('HEAD');
    await deliver(request(endpoint.url('/big')), true);
    expect(endpoint.connections).to.equal(1);
  });

  it('abandons an answer beyond the drain bound (closes its connection) and still records the delivery', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'y');
    endpoint.handle = (_req, res) => {
      res.writeHead(200);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump(); // endless
    };
    const r = await deliver(request(endpoint.url('/endless')), true);
    expect(r.outcome).to.deep.equal({ kind: 'success', status: 200 });
    expect(r.responseBody!.length).to.equal(RESPONSE_BODY_KEEP_BYTES);
    endpoint.handle = (_req, res) => res.end('ok');
    await deliver(request(endpoint.url('/after')), true);
    expect(endpoint.connections).to.equal(2);
  });
});
