import { expect } from 'chai';
import { ConfigError, loadConfig, parseDurationMs, topicReplication } from '../../src/config';

describe('config', () => {
  it('applies every default with no environment', () => {
    const c = loadConfig({});
    expect(c.databaseUrl).to.equal('mysql://root@127.0.0.1:3306/event_triggers');
    expect(c.kafkaBrokers).to.equal('127.0.0.1:9092');
    expect(c.kafkaTopic).to.equal('trigger-events');
    expect(c.kafkaDlqTopic).to.equal('trigger-events.dlq');
    expect(c.apiPort).to.equal(8080);
    expect(c.schedulerIntervalMs).to.equal(250);
    expect(c.retentionActiveSeconds).to.equal(7200);
    expect(c.retentionDeleteAfterSeconds).to.equal(172_800);
    expect(c.publicBaseUrl).to.equal('http://127.0.0.1:8080');
    expect(Object.isFrozen(c)).to.equal(true);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['API_PORT', 'eighty', /API_PORT.*integer from 0 to 65535/],
    ['API_PORT', '70000', /API_PORT/],
    ['DATABASE_URL', 'postgres://x/y', /DATABASE_URL.*mysql/],
    ['KAFKA_BROKERS', 'localhost', /KAFKA_BROKERS.*host:port/],
    ['SCHEDULER_INTERVAL', 'soon', /SCHEDULER_INTERVAL.*duration/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL.*one of error, warn, info, debug/],
    ['DELIVERY_ALLOW_PRIVATE_NETWORKS', 'maybe', /DELIVERY_ALLOW_PRIVATE_NETWORKS.*true or false/],
    ['RETENTION_ACTIVE_SECONDS', '-5', /RETENTION_ACTIVE_SECONDS/],
    ['PUBLIC_BASE_URL', 'not a url', /PUBLIC_BASE_URL/],
    ['DELIVERY_CIRCUIT_FAILURES', '-1', /DELIVERY_CIRCUIT_FAILURES.*integer from 0/],
    ['DELIVERY_CIRCUIT_COOLDOWN', '10ms', /DELIVERY_CIRCUIT_COOLDOWN.*duration from 100ms/],
    ['RELAY_FIRE_WINDOW', '2s', /RELAY_FIRE_WINDOW.*duration from 0ms to 1000ms/],
    ['RELAY_FIRE_WINDOW_MAX', '5ms', /RELAY_FIRE_WINDOW_MAX.*duration from 10ms to 1000ms/],
    ['KAFKA_REPLICATION_FACTOR', 'three', /KAFKA_REPLICATION_FACTOR.*auto or an integer/],
    ['KAFKA_MIN_INSYNC_REPLICAS', '0', /KAFKA_MIN_INSYNC_REPLICAS.*auto or an integer from 1/],
  ];
  for (const [name, value, pattern] of bad) {
    it(`rejects ${name}=${value} with a message naming the variable`, () => {
      expect(() => loadConfig({ [name]: value })).to.throw(ConfigError, pattern);
    });
  }

  it('rejects a delete window that is not longer than the active window', () => {
    expect(() => loadConfig({ RETENTION_ACTIVE_SECONDS: '100', RETENTION_DELETE_AFTER_SECONDS: '50' })).to.throw(
      /RETENTION_DELETE_AFTER_SECONDS/,
    );
  });

  it('never echoes API keys in its error', () => {
    try {
      loadConfig({ API_KEYS: 'short' });
      expect.fail('should throw');
    } catch (e) {
      expect((e as Error).message).to.match(/API_KEYS/);
      expect((e as Error).message).not.to.include('short');
    }
  });

  it('turns endpoint circuit breaking on by default (5 failures, 30 s) and off with DELIVERY_CIRCUIT_FAILURES=0', () => {
    expect(loadConfig({})).to.include({ deliveryCircuitFailures: 5, deliveryCircuitCooldownMs: 30_000 });
    expect(loadConfig({ DELIVERY_CIRCUIT_FAILURES: '0', DELIVERY_CIRCUIT_COOLDOWN: '2s' })).to.include({
      deliveryCircuitFailures: 0,
      deliveryCircuitCooldownMs: 2000,
    });
  });

  it('waits 10 ms between fire batches that were not full by default, and not at all with RELAY_FIRE_WINDOW=0', () => {
    expect(loadConfig({}).relayFireWindowMs).to.equal(10);
    expect(loadConfig({ RELAY_FIRE_WINDOW: '0' }).relayFireWindowMs).to.equal(0);
    expect(loadConfig({ RELAY_FIRE_WINDOW: '50ms' }).relayFireWindowMs).to.equal(50);
  });

  it('lets the fire window widen to 4 × RELAY_FIRE_WINDOW by default, and refuses a RELAY_FIRE_WINDOW_MAX below it', () => {
    expect(loadConfig({}).relayFireWindowMaxMs).to.equal(40);
    expect(loadConfig({ RELAY_FIRE_WINDOW: '0' }).relayFireWindowMaxMs).to.equal(0);
    expect(loadConfig({ RELAY_FIRE_WINDOW: '400ms' }).relayFireWindowMaxMs).to.equal(1000);
    expect(loadConfig({ RELAY_FIRE_WINDOW_MAX: '10ms' }).relayFireWindowMaxMs).to.equal(10);
    expect(() => loadConfig({ RELAY_FIRE_WINDOW: '20ms', RELAY_FIRE_WINDOW_MAX: '19ms' })).to.throw(/RELAY_FIRE_WINDOW_MAX.*from 20ms/);
  });

  it('lets a fire claim grow to 4 × RELAY_BATCH_SIZE by default, and refuses a RELAY_BATCH_MAX below RELAY_BATCH_SIZE', () => {
    expect(loadConfig({}).relayBatchMax).to.equal(2000);
    expect(loadConfig({ RELAY_BATCH_SIZE: '100' }).relayBatchMax).to.equal(400);
    expect(loadConfig({ RELAY_BATCH_SIZE: '5000' }).relayBatchMax).to.equal(10_000);
    expect(loadConfig({ RELAY_BATCH_SIZE: '100', RELAY_BATCH_MAX: '100' }).relayBatchMax).to.equal(100);
    expect(() => loadConfig({ RELAY_BATCH_SIZE: '500', RELAY_BATCH_MAX: '499' })).to.throw(
      ConfigError,
      /RELAY_BATCH_MAX.*integer from 500 to 10000/,
    );
  });

  it('parses durations with units', () => {
    expect(parseDurationMs('250')).to.equal(250);
    expect(parseDurationMs('250ms')).to.equal(250);
    expect(parseDurationMs('5s')).to.equal(5000);
    expect(parseDurationMs('2m')).to.equal(120_000);
    expect(parseDurationMs('x')).to.equal(null);
  });

  it('sizes topic replication for one broker and for three by default, and takes explicit settings as given', () => {
    const auto = loadConfig({});
    expect(auto).to.include({ kafkaReplicationFactor: 'auto', kafkaMinInsyncReplicas: 'auto' });
    expect(topicReplication(auto, 1)).to.deep.equal({ replicationFactor: 1, minInsyncReplicas: 1 });
    expect(topicReplication(auto, 2)).to.deep.equal({ replicationFactor: 2, minInsyncReplicas: 1 });
    expect(topicReplication(auto, 3)).to.deep.equal({ replicationFactor: 3, minInsyncReplicas: 2 });
    expect(topicReplication(auto, 5)).to.deep.equal({ replicationFactor: 3, minInsyncReplicas: 2 });
    const set = loadConfig({ KAFKA_REPLICATION_FACTOR: '5', KAFKA_MIN_INSYNC_REPLICAS: '3' });
    expect(topicReplication(set, 5)).to.deep.equal({ replicationFactor: 5, minInsyncReplicas: 3 });
    expect(() => loadConfig({ KAFKA_REPLICATION_FACTOR: '1', KAFKA_MIN_INSYNC_REPLICAS: '2' })).to.throw(
      ConfigError,
      /KAFKA_MIN_INSYNC_REPLICAS.*at most KAFKA_REPLICATION_FACTOR/,
    );
  });

  it('exports no spans by default, and reads the OTLP endpoint, headers and service name when given', () => {
    const off = loadConfig({});
    expect(off.otelTracesEndpoint).to.equal(null);
    expect(off.otelServiceName).to.equal('event-trigger-platform');
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).otelTracesEndpoint).to.equal(
      'http://collector:4318/v1/traces',
    );
    const signal = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/otlp/traces',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=abc%3D1, tenant = blue',
      OTEL_SERVICE_NAME: 'etp-eu',
    });
    expect(signal.otelTracesEndpoint).to.equal('https://traces.example/otlp/traces');
    expect(signal.otelExporterHeaders).to.deep.equal({ 'x-api-key': 'abc=1', tenant: 'blue' });
    expect(signal.otelServiceName).to.equal('etp-eu');
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).otelTracesEndpoint).to.equal(
      null,
    );
  });

  it('rejects a malformed OTLP endpoint or headers, naming the variable and never echoing header values', () => {
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).to.throw(ConfigError, /OTEL_EXPORTER_OTLP_ENDPOINT/);
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_HEADERS: 'secret-token' })).to.throw(ConfigError, /OTEL_EXPORTER_OTLP_HEADERS/);
    try {
      loadConfig({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%ZZsecret' });
      expect.fail('accepted a malformed header value');
    } catch (e) {
      expect((e as Error).message).to.match(/OTEL_EXPORTER_OTLP_HEADERS/);
      expect((e as Error).message).to.not.include('secret');
    }
  });
});
