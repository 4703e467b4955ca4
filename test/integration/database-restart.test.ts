import { expect } from 'chai';
import { printFigures, runSoak } from '../faults/soak';

/**
 * The short one-node version of `npm run test:faults`' database fault: the soak runs on a MariaDB of its
 * own (own datadir and port), kills it -9 under load and starts it again (InnoDB crash recovery). The
 * shared server and the shared Kafka broker are not touched (no Kafka outage in this version).
 */
describe('database restart (short one-node version of npm run test:faults)', function () {
  this.timeout(600_000);

  it('loses nothing and doubles nothing while its MariaDB is killed -9 and restarted under load', async () => {
    const f = await runSoak({
      seconds: 30,
      kafkaOutageSeconds: 0,
      killEverySeconds: 10,
      database: 'own',
      databaseFaultEverySeconds: 30,
      log: () => undefined,
    });
    printFigures(f, (l) => console.log(`      ${l}`));
    expect(f.databaseRestarts).to.be.at.least(1);
    expect(
      f.recoveries.every((r) => r.seconds !== null),
      'webhooks answered 202 again after every restart',
    ).to.equal(true);
    expect(f.webhooksAccepted).to.be.at.least(500);
    expect(f.lost).to.equal(0);
    expect(f.kafkaStrays).to.equal(0);
    expect(f.kafkaDuplicates).to.be.at.most(f.kafkaDuplicateBound);
    expect(f.deliveriesUnfinished).to.equal(0);
    expect(f.stuckProcessing).to.equal(0);
    expect(f.brokenChains).to.equal(0);
    expect(f.onKafka).to.equal(f.eventLogs);
  });
});
