import { expect } from 'chai';
import { printFigures, runSoak } from '../faults/soak';

describe('fault soak (short CI version of npm run test:faults)', function () {
  this.timeout(600_000);

  it('loses nothing, and duplicates only within the at-least-once bound, while relays and workers are killed -9 and Kafka goes away', async () => {
    const f = await runSoak({ seconds: 60, kafkaOutageSeconds: 8, killEverySeconds: 5, log: () => undefined });
    printFigures(f, (l) => console.log(`      ${l}`));
    expect(f.kills).to.be.at.least(5);
    expect(f.relayKills, 'at least one relay killed').to.be.at.least(1);
    expect(f.kafkaOutageSeconds, 'the broker was really down').to.be.at.least(8);
    expect(f.webhooksAccepted).to.be.at.least(1000);
    expect(f.lost).to.equal(0);
    // Duplicates on Kafka: copies of a logged event only (same id, same event), no more than the kills and
    // late reports allow.
    expect(f.kafkaStrays, 'messages that are not a copy of a logged event').to.equal(0);
    expect(f.kafkaDuplicates).to.be.at.most(f.kafkaDuplicateBound);
    // At-least-once towards receivers: every success was answered 2xx; repeats (same webhook-id) are
    // allowed and reported, split into retries after a 500 and re-sends after worker kills.
    expect(f.successWithout2xx).to.equal(0);
    expect(f.receiverResends).to.be.at.most(f.receiverResendBound);
    expect(f.deliveriesUnfinished).to.equal(0);
    expect(f.stuckProcessing).to.equal(0);
    expect(f.brokenChains).to.equal(0);
    expect(f.onKafka).to.equal(f.eventLogs);
  });
});
