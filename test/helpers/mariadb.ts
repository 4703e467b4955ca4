import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { REPO_ROOT } from './env';
import { freePort } from './ports';

/**
 * A MariaDB server of the test's own — own datadir (a temporary directory) and own port — so a fault test
 * may kill -9 and restart it. The shared server on 3306 belongs to the machine and is never touched.
 * It runs the project's settings (deploy/mysql/etp.cnf) with smaller sizes.
 */
export class OwnMariaDb {
  private child: ChildProcess | null = null;
  private exited: Promise<void> | null = null;
  private out = '';
  readonly dir: string;
  port = 0;

  constructor(label = 'etp-db') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  }

  /** Base URL without a database name (createTestEnv appends one). */
  get url(): string {
    return `mysql://root@127.0.0.1:${this.port}/`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Initialises the datadir on first use, starts the server and waits until it answers a query. */
  async start(timeoutMs = 120_000): Promise<void> {
    if (this.child) return;
    const data = path.join(this.dir, 'data');
    if (!fs.existsSync(path.join(data, 'mysql'))) {
      fs.mkdirSync(data, { recursive: true });
      const r = spawnSync(
        'mariadb-install-db',
        ['--no-defaults', `--datadir=${data}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db'],
        { encoding: 'utf8', timeout: 180_000 },
      );
      if (r.status !== 0) throw new Error(`mariadb-install-db failed: ${r.stdout}${r.stderr}`);
    }
    if (this.port === 0) this.port = await freePort();
    const cnf = path.join(this.dir, 'server.cnf');
    fs.writeFileSync(
      cnf,
      [
        `!include ${path.join(REPO_ROOT, 'deploy', 'mysql', 'etp.cnf')}`,
        '[mysqld]',
        'user = root',
        `datadir = ${data}`,
        `port = ${this.port}`,
        'bind-address = 127.0.0.1',
        `socket = ${path.join(this.dir, 'mysqld.sock')}`,
        `pid-file = ${path.join(this.dir, 'mariadbd.pid')}`,
        `log-error = ${path.join(this.dir, 'mariadbd.err')}`,
        'slow_query_log = 0',
        'innodb_buffer_pool_size = 128M',
        '[mariadb]',
        'innodb_log_file_size = 64M',
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
    const bin = ['/usr/sbin/mariadbd', '/usr/local/sbin/mariadbd'].find((p) => fs.existsSync(p)) ?? 'mariadbd';
    const child = spawn(bin, [`--defaults-file=${cnf}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.child = child;
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => {
      if (this.child === child) this.child = null;
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child !== child) throw new Error(`mariadbd exited during start-up:\n${this.log()}`);
      try {
        const conn = await mysql.createConnection({ host: '127.0.0.1', port: this.port, user: 'root', connectTimeout: 1000 });
        await conn.query('SELECT 1');
        await conn.end();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`mariadbd did not answer within ${timeoutMs} ms:\n${this.log()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** kill -9: no shutdown, no flush; the next start runs InnoDB crash recovery. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }

  /** SIGTERM, then removes the datadir. Idempotent. */
  async destroy(): Promise<void> {
    const child = this.child;
    if (child) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await this.exited;
      clearTimeout(timer);
      this.child = null;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The server's error log (the last lines), for failure messages. */
  log(lines = 30): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'mariadbd.err'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return this.out.slice(-4000);
    }
  }
}
