import { expect } from 'chai';
import { printFigures, runSoak } from '../faults/soak';

describe('fault soak (short CI version of npm run test:faults)', function () {
  this.timeout(600_000);

  it('loses nothing and doubles nothing while relays and workers are killed -9 and Kafka goes away', async () => {
    const f = await runSoak({ seconds: 60, kafkaOutageSeconds: 8, killEverySeconds: 5, log: () => undefined });
    printFigures(f, (l) => console.log(`      ${l}`));
    expect(f.kills).to.be.at.least(5);
    expect(f.webhooksAccepted).to.be.at.least(1000);
    expect(f.lost).to.equal(0);
    expect(f.doubledEventLogs).to.equal(0);
    expect(f.deliveriesUnfinished).to.equal(0);
    expect(f.stuckProcessing).to.equal(0);
    expect(f.brokenChains).to.equal(0);
    expect(f.onKafka).to.equal(f.eventLogs);
  });
});
