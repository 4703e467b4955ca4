import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Kafka from 'node-rdkafka';
import { until } from './until';
import { freePort } from './ports';

/** The jars `scripts/services.mjs up` fetched (same cache dir and Kafka version as that script). */
const KAFKA_VERSION = '4.1.1';
const CACHE_ROOT =
  process.env.EVENT_TRIGGER_CACHE_DIR ||
  path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'event-trigger-platform');
const KAFKA_LIB = path.join(CACHE_ROOT, `kafka-${KAFKA_VERSION}`, 'lib');
const CLUSTER_ID = Buffer.from('etp-test-broker!').toString('base64url');

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * A single-node Kafka broker that one test file starts for itself, on free loopback ports with a data dir
 * of its own, so that it can stop, freeze (SIGSTOP) and restart it without touching the broker the other
 * test files share. Fault injection through it is real or it throws: stop() returns only once the process
 * has exited and its port is closed, pause() only once the process is in the stopped state.
 */
export class OwnBroker {
  private child: ChildProcess | null = null;
  private out = '';

  private constructor(
    readonly port: number,
    private readonly controllerPort: number,
    private readonly dir: string,
    private readonly java: string,
  ) {}

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  static async start(label: string): Promise<OwnBroker> {
    const java = findJava();
    if (!fs.existsSync(path.join(KAFKA_LIB, `kafka_2.13-${KAFKA_VERSION}.jar`))) {
      throw new Error(`cannot start a Kafka broker for ${label}: no jars in ${KAFKA_LIB} (run \`node scripts/services.mjs up\` once)`);
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `etp-broker-${label.replace(/[^a-z0-9]/gi, '')}-`));
    const port = await freePort();
    let controllerPort = await freePort();
    while (controllerPort === port) controllerPort = await freePort();
    const b = new OwnBroker(port, controllerPort, dir, java);
    b.writeConfig();
    const storageTool = ['-Xmx128m', `-Dlog4j2.configurationFile=${b.file('log4j2.properties')}`, '-cp', `${KAFKA_LIB}/*`];
    const r = spawnSync(
      java,
      [...storageTool, 'kafka.tools.StorageTool', 'format', '--config', b.file('server.properties'), `--cluster-id=${CLUSTER_ID}`],
      { encoding: 'utf8' },
    );
    try {
      if (r.status !== 0) throw new Error(`formatting the broker's storage failed:\n${r.stdout}${r.stderr}`);
      await b.run();
    } catch (e) {
      await b.destroy();
      throw e;
    }
    return b;
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  private writeConfig(): void {
    fs.writeFileSync(
      this.file('server.properties'),
      [
        'process.roles=broker,controller',
        'node.id=1',
        `controller.quorum.voters=1@127.0.0.1:${this.controllerPort}`,
        `listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}`,
        'controller.listener.names=CONTROLLER',
        'inter.broker.listener.name=PLAINTEXT',
        'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
        `log.dirs=${this.file('data')}`,
        'num.partitions=3',
        'default.replication.factor=1',
        'min.insync.replicas=1',
        'auto.create.topics.enable=true',
        'offsets.topic.replication.factor=1',
        'offsets.topic.num.partitions=3',
        'transaction.state.log.replication.factor=1',
        'transaction.state.log.min.isr=1',
        'share.coordinator.state.topic.replication.factor=1',
        'share.coordinator.state.topic.min.isr=1',
        'group.initial.rebalance.delay.ms=0',
        'broker.session.timeout.ms=3000',
        'broker.heartbeat.interval.ms=1000',
        'num.network.threads=2',
        'num.io.threads=2',
        '',
      ].join('\n'),
    );
    // Console at WARN, plus the line that says the server has started (read below).
    fs.writeFileSync(
      this.file('log4j2.properties'),
      [
        'status = warn',
        'appender.console.type = Console',
        'appender.console.name = STDOUT',
        'appender.console.layout.type = PatternLayout',
        'appender.console.layout.pattern = [%d] %p %m (%c)%n',
        'rootLogger.level = WARN',
        'rootLogger.appenderRef.stdout.ref = STDOUT',
        'logger.started.name = kafka.server.KafkaRaftServer',
        'logger.started.level = INFO',
        '',
      ].join('\n'),
    );
  }

  /** Starts the broker process (again, after stop(): same data dir, same ports) and waits until it serves metadata. */
  async run(timeoutMs = 90_000): Promise<void> {
    if (this.child) throw new Error('broker already running');
    this.out = '';
    const child = spawn(
      this.java,
      [
        '-Xms128m',
        '-Xmx384m',
        '-XX:+UseSerialGC',
        '-XX:TieredStopAtLevel=1',
        '-XX:+ExitOnOutOfMemoryError',
        '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${this.file('log4j2.properties')}`,
        '-cp',
        `${KAFKA_LIB}/*`,
        'kafka.Kafka',
        this.file('server.properties'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    // Never outlive the test process (an interrupted run must not leave a JVM behind).
    const reap = () => child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', () => process.off('exit', reap));
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.once('exit', () => {
      if (this.child === child) this.child = null;
    });
    await until(
      () => {
        if (this.child !== child) throw new Error(`the test's Kafka broker exited during start-up:\n${this.out.slice(-3000)}`);
        return /Kafka Server started/.test(this.out);
      },
      { timeoutMs, intervalMs: 100, message: `Kafka broker on ${this.brokers} started` },
    );
    await this.metadata(timeoutMs);
  }

  /** Resolves once the broker answers a metadata request with itself as a live broker. */
  private async metadata(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const admin = new Kafka.Producer({ 'metadata.broker.list': this.brokers, 'client.id': 'etp-test-broker-probe' });
    await new Promise<void>((resolve, reject) => admin.connect({ timeout: timeoutMs }, (err) => (err ? reject(err) : resolve())));
    try {
      for (;;) {
        const md = await new Promise<Kafka.Metadata | null>((resolve) =>
          admin.getMetadata({ timeout: 2000, allTopics: true }, (err, m) => resolve(err ? null : m)),
        );
        if (md && md.brokers.length > 0) return;
        if (Date.now() > deadline) throw new Error(`Kafka broker on ${this.brokers} serves no metadata`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await new Promise<void>((resolve) => admin.disconnect(() => resolve()));
    }
  }

  /** A real outage: SIGTERM (SIGKILL after 15 s); resolves once the process has exited and the port is closed. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) throw new Error('broker is not running: nothing to stop');
    await this.resume();
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    if (await portOpen(this.port)) throw new Error(`broker stopped but ${this.brokers} still accepts connections`);
  }

  /**
   * Freezes the broker (SIGSTOP): its sockets stay open and the kernel still accepts what clients send, but
   * nothing is answered, so no request is ever acknowledged. Resolves once /proc says the process is stopped.
   */
  async pause(): Promise<void> {
    const child = this.child;
    if (!child?.pid) throw new Error('broker is not running: nothing to pause');
    child.kill('SIGSTOP');
    await until(() => procState(child.pid!) === 'T', { timeoutMs: 5000, message: 'broker process in the stopped state' });
  }

  async resume(): Promise<void> {
    const pid = this.child?.pid;
    if (pid && procState(pid) === 'T') {
      process.kill(pid, 'SIGCONT');
      await until(() => procState(pid) !== 'T', { timeoutMs: 5000, message: 'broker process running again' });
    }
  }

  /** Stops the broker if it runs and removes its data dir. */
  async destroy(): Promise<void> {
    if (this.child) {
      await this.resume().catch(() => undefined);
      const child = this.child;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function findJava(): string {
  for (const d of [...(process.env.JAVA_HOME ? [path.join(process.env.JAVA_HOME, 'bin')] : []), ...(process.env.PATH ?? '').split(':')]) {
    const p = path.join(d, 'java');
    if (d && fs.existsSync(p)) return p;
  }
  throw new Error('cannot start a Kafka broker of its own: no java on PATH');
}

/** The state letter of /proc/<pid>/stat: R, S, D, T (stopped), Z, … */
function procState(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}
