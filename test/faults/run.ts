import { optionalNumArg, numArg, parseArgs } from '../helpers/args';
import { printFigures, runSoak } from './soak';

/**
 * `npm run test:faults -- --minutes 10`: the long soak; exits non-zero if anything was lost, duplicated beyond the bound, or not injected.
 *   (default)      one-node services, and a MariaDB of the soak's own that is kill -9'd and restarted
 *   --shared-db    the machine's MariaDB instead (never restarted)
 *   --ha           the cluster of `npm run services -- up --ha`: Galera writer and broker kills
 */
async function main(): Promise<void> {
  const args = parseArgs();
  const minutes = numArg(args, 'minutes', 10);
  const database = args.flags.has('ha') ? 'ha' : args.flags.has('shared-db') ? 'shared' : 'own';
  const f = await runSoak({
    seconds: Math.round(minutes * 60),
    kafkaOutageSeconds: 20,
    killEverySeconds: 5,
    database,
    databaseFaultEverySeconds: optionalNumArg(args, 'fault-every'),
  });
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
    (database !== 'ha' && f.kafkaOutageSeconds <= 0 ? 1 : 0);
  const recovered = f.recoveries.every((r) => r.seconds !== null);
  process.exit(bad === 0 && recovered ? 0 : 1);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
