import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
  /** When the answer went out, and its status (unset while the request is held). */
  answeredAt?: number;
  status?: number;
  /** The client's port: which process sent it (see `ss`), when a test must know. */
  remotePort?: number;
}

export type Responder = (
  req: Received,
  index: number,
) => { status: number; headers?: Record<string, string>; delayMs?: number; body?: string };

/** A local HTTP endpoint on 127.0.0.1 that records every request and answers as the test scripts it. */
export class Receiver {
  readonly requests: Received[] = [];
  private server: http.Server;
  respond: Responder = () => ({ status: 200 });

  constructor() {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r: Received = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          at: Date.now(),
          remotePort: req.socket.remotePort,
        };
        this.requests.push(r);
        const answer = this.respond(r, this.requests.length - 1);
        const send = () => {
          if (res.destroyed) return;
          r.answeredAt = Date.now();
          r.status = answer.status;
          res.writeHead(answer.status, answer.headers ?? {});
          res.end(answer.body ?? '');
        };
        if (answer.delayMs) setTimeout(send, answer.delayMs);
        else send();
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    return this;
  }

  url(path = '/hook'): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  forPath(path: string): Received[] {
    return this.requests.filter((r) => r.path === path);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
