import { expect } from 'chai';
import { CircuitBreakers, originOf } from '../../src/worker/circuit';

describe('endpoint circuit breakers', () => {
  const origin = 'https://hooks.example.com';
  function breakers(threshold = 3, cooldownMs = 1000) {
    const clock = { t: 0 };
    const changes: Array<[string, boolean]> = [];
    const b = new CircuitBreakers({ failureThreshold: threshold, cooldownMs, now: () => clock.t }, (o, open) => changes.push([o, open]));
    return { b, clock, changes };
  }

  it('opens after N consecutive retryable failures and then admits nothing during the cool-down', () => {
    const { b, clock, changes } = breakers(3, 1000);
    for (let i = 0; i < 2; i++) b.report(origin, true);
    expect(b.admit(origin)).to.deep.equal({ allowed: true, probe: false });
    b.report(origin, true);
    expect(changes).to.deep.equal([[origin, true]]);
    clock.t = 400;
    expect(b.admit(origin)).to.deep.equal({ allowed: false, retryInMs: 600 });
    expect(b.admit('https://other.example.com')).to.deep.equal({ allowed: true, probe: false });
    expect(b.openOrigins()).to.deep.equal([origin]);
  });

  it('does not open when an answer from the endpoint breaks the run of failures', () => {
    const { b, changes } = breakers(3);
    b.report(origin, true);
    b.report(origin, true);
    b.report(origin, false); // a 2xx or 4xx: the endpoint is up
    b.report(origin, true);
    b.report(origin, true);
    expect(changes).to.deep.equal([]);
    expect(b.admit(origin).allowed).to.equal(true);
  });

  it('lets exactly one probe through after the cool-down; a failed probe opens it for another cool-down', () => {
    const { b, clock } = breakers(1, 1000);
    b.report(origin, true);
    clock.t = 1000;
    expect(b.admit(origin)).to.deep.equal({ allowed: true, probe: true });
    expect(b.admit(origin).allowed).to.equal(false); // the probe is in flight
    clock.t = 1200;
    b.report(origin, true, true);
    expect(b.admit(origin)).to.deep.equal({ allowed: false, retryInMs: 1000 });
    clock.t = 2200;
    expect(b.admit(origin)).to.deep.equal({ allowed: true, probe: true });
  });

  it('closes when the probe succeeds', () => {
    const { b, clock, changes } = breakers(1, 1000);
    b.report(origin, true);
    clock.t = 1000;
    expect(b.admit(origin).allowed).to.equal(true);
    b.report(origin, false, true);
    expect(changes).to.deep.equal([
      [origin, true],
      [origin, false],
    ]);
    expect(b.admit(origin)).to.deep.equal({ allowed: true, probe: false });
    expect(b.openOrigins()).to.deep.equal([]);
  });

  it('lets another probe through when the first never reports back', () => {
    const { b, clock } = breakers(1, 1000);
    b.report(origin, true);
    clock.t = 1000;
    expect(b.admit(origin).allowed).to.equal(true);
    clock.t = 2000;
    expect(b.admit(origin)).to.deep.equal({ allowed: true, probe: true });
  });

  it('is off with a threshold of 0', () => {
    const { b, changes } = breakers(0);
    for (let i = 0; i < 100; i++) b.report(origin, true);
    expect(b.enabled).to.equal(false);
    expect(b.admit(origin)).to.deep.equal({ allowed: true, probe: false });
    expect(changes).to.deep.equal([]);
  });

  it('keys circuits by origin: scheme, host and port', () => {
    expect(originOf('https://a.example.com/x/y?z=1')).to.equal('https://a.example.com');
    expect(originOf('http://127.0.0.1:8080/hook')).to.equal('http://127.0.0.1:8080');
  });
});
