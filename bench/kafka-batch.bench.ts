/**
 * What a fire batch costs the Kafka broker, by how many partitions it touches.
 *
 *   npm run bench -- kafka-batch [--quick] [--batch=N] [--every=MS] [--seconds=S] [--rounds=R] [--compression=lz4|none|…]
 *
 * The steady workload's relay sends a batch of about 40 events every 20 ms (2,000 fires/s), keyed by trigger
 * id, and waits for their delivery reports before it commits. librdkafka sends one ProduceRequest per
 * partition (its issue #1700), so a batch whose keys spread over the topic's six partitions is six requests,
 * where a batch in one partition is one. This bench produces such batches through the product's own
 * producer (src/kafka/producer.ts: acks=all, idempotence, lz4), one at a time with their reports awaited,
 * and reads the broker's CPU from /proc over each run:
 *   - six partitions, distinct keys, a consumer reading as the peers bench's does (the steady workload);
 *   - the same without the consumer (the produce side alone);
 *   - one partition, with the consumer (what the spread costs).
 * Each runs ROUNDS times, alternating, after a 2 s warm-up (not measured). The broker's JIT warms over its
 * first runs: compare rounds, and run it twice on a broker just started.
 *
 * The broker must run on this machine (found by name in /proc). Results: bench/results/<date>-kafka-batch.json.
 */
import { randomBytes } from 'node:crypto';
import { BenchReader, choicesArg, cpuSecondsOf, intArg, log, parseArgs, round, runBench, servicePids, table, writeResults } from './lib';
import { KAFKA_BROKERS } from '../test/helpers/env';
import { EventProducer, ensureTopics, type OutgoingMessage } from '../src/kafka/producer';
import { sleep } from '../src/util';
import { KAFKA_COMPRESSIONS, type KafkaCompression } from '../src/config';

const args = parseArgs();
const QUICK = args.flags.has('quick');
const BATCH = intArg(args, 'batch', 40);
const EVERY_MS = intArg(args, 'every', 20);
const SECONDS = intArg(args, 'seconds', QUICK ? 4 : 12);
const ROUNDS = intArg(args, 'rounds', QUICK ? 1 : 2);
/** The producer's codec (the product's default, lz4, unless given): what the broker decompresses to validate. */
const COMPRESSION: KafkaCompression = args.values.get('compression') ? choicesArg(args, 'compression', KAFKA_COMPRESSIONS)[0]! : 'lz4';

const WAYS = [
  { name: 'six partitions, keys spread, a consumer', partitions: 6, consumer: true },
  { name: 'six partitions, keys spread, no consumer', partitions: 6, consumer: false },
  { name: 'one partition, a consumer', partitions: 1, consumer: true },
] as const;

interface Run {
  way: string;
  round: number;
  batches: number;
  batchesPerSecond: number;
  brokerCpuSecondsPerSecond: number;
  brokerCpuMsPerBatch: number;
}

/** An event-sized message with the product's four headers. */
function message(topic: string, n: number): OutgoingMessage {
  const id = randomBytes(16).toString('hex');
  return {
    topic,
    key: randomBytes(16).toString('hex'),
    value: Buffer.from(
      JSON.stringify({ id, trigger_type: 'time_scheduled', payload: { n, note: 'x'.repeat(120) }, fired_at: new Date().toISOString() }),
    ),
    headers: { 'event-id': id, 'trigger-type': 'time_scheduled', source: 'scheduled', traceparent: `00-${id}-${id.slice(0, 16)}-01` },
  };
}

/** Batches of BATCH every EVERY_MS (or back to back when one takes longer), each awaited, for `seconds`. */
async function produceFor(producer: EventProducer, topic: string, seconds: number): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let batches = 0;
  while (Date.now() < end) {
    const t0 = Date.now();
    const outcomes = await producer.publish(Array.from({ length: BATCH }, (_, i) => message(topic, i)));
    const failed = outcomes.find((o) => o !== null);
    if (failed) throw failed;
    batches++;
    const wait = EVERY_MS - (Date.now() - t0);
    if (wait > 0) await sleep(wait);
  }
  return batches;
}

async function run(kafkaPid: number, way: (typeof WAYS)[number], roundNo: number): Promise<Run> {
  const topic = `etp-bench-kafka-batch-${randomBytes(4).toString('hex')}`;
  await ensureTopics(KAFKA_BROKERS, [{ name: topic, partitions: way.partitions }]);
  const producer = new EventProducer({ brokers: KAFKA_BROKERS, messageTimeoutMs: 10_000, clientId: 'etp-bench-kafka-batch', compression: COMPRESSION });
  await producer.connect();
  const reader = way.consumer ? await new BenchReader(topic).start() : null;
  try {
    await produceFor(producer, topic, 2);
    const cpu0 = cpuSecondsOf(kafkaPid)!;
    const t0 = Date.now();
    const batches = await produceFor(producer, topic, SECONDS);
    const seconds = (Date.now() - t0) / 1000;
    const cpu = cpuSecondsOf(kafkaPid)! - cpu0;
    return {
      way: way.name,
      round: roundNo,
      batches,
      batchesPerSecond: round(batches / seconds, 1),
      brokerCpuSecondsPerSecond: round(cpu / seconds, 3),
      brokerCpuMsPerBatch: round((1000 * cpu) / batches, 2),
    };
  } finally {
    await reader?.stop();
    await producer.close();
  }
}

runBench('kafka-batch', async () => {
  const kafkaPid = servicePids().kafka;
  if (kafkaPid === null) throw new Error('kafka-batch reads the broker from /proc: run it against a broker on this machine');
  log(`kafka-batch: batches of ${BATCH} every ${EVERY_MS} ms, ${SECONDS} s per run, ${ROUNDS} round(s), compression ${COMPRESSION}`);
  const runs: Run[] = [];
  for (let r = 1; r <= ROUNDS; r++) for (const way of WAYS) runs.push(await run(kafkaPid, way, r));
  log(
    table(
      ['way', 'round', 'batches/s', 'broker CPU-s/s', 'broker CPU ms per batch'],
      runs.map((x) => [
        x.way,
        String(x.round),
        String(x.batchesPerSecond),
        String(x.brokerCpuSecondsPerSecond),
        String(x.brokerCpuMsPerBatch),
      ]),
    ),
  );
  const mean = (name: string) => {
    const of = runs.filter((x) => x.way === name).map((x) => x.brokerCpuMsPerBatch);
    return of.reduce((a, b) => a + b, 0) / of.length;
  };
  const spread = mean(WAYS[0].name);
  const ratio = { oneOverSix: round(mean(WAYS[2].name) / spread, 2), produceShareOfSix: round(mean(WAYS[1].name) / spread, 2) };
  log(`broker CPU per batch, one partition ÷ six (both with a consumer): ${ratio.oneOverSix}`);
  log(`broker CPU per batch, six partitions without the consumer ÷ with it: ${ratio.produceShareOfSix}`);
  const file = writeResults(QUICK ? 'kafka-batch-quick' : 'kafka-batch', {
    batch: BATCH,
    everyMs: EVERY_MS,
    seconds: SECONDS,
    rounds: ROUNDS,
    compression: COMPRESSION,
    runs,
    ratio,
  });
  log(`results: ${file}`);
});
