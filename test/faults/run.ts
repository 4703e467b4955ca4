import { printFigures, runSoak } from './soak';

/** `npm run test:faults -- --minutes 10`: the long soak; exits non-zero if anything was lost, duplicated beyond the bound, or not injected. */
async function main(): Promise<void> {
  const i = process.argv.indexOf('--minutes');
  const minutes = i > 0 ? Number(process.argv[i + 1]) : 10;
  if (!Number.isFinite(minutes) || minutes <= 0) throw new Error('--minutes must be a positive number');
  const f = await runSoak({ seconds: Math.round(minutes * 60), kafkaOutageSeconds: 20, killEverySeconds: 5 });
  printFigures(f);
  const bad =
    f.lost +
    f.deliveriesUnfinished +
    f.stuckProcessing +
    f.brokenChains +
    f.kafkaStrays +
    f.successWithout2xx +
    (f.kafkaDuplicates > f.kafkaDuplicateBound ? 1 : 0) +
    (f.receiverResends > f.receiverResendBound ? 1 : 0) +
    (f.kafkaOutageSeconds > 0 ? 0 : 1);
  process.exit(bad === 0 ? 0 : 1);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
