import { expect } from 'chai';
import { checkEndpointAddress, isPrivateAddress } from '../../src/worker/delivery';

/**
 * The SSRF guard as the worker calls it: a whole endpoint URL, resolved like the HTTP client would.
 * `localhost` is resolved through the system resolver (/etc/hosts); every other name here is an address
 * literal in a spelling that URL parsing normalises, so no test needs a network.
 */
describe('delivery: SSRF guard on endpoint URLs (checkEndpointAddress)', () => {
  const refused = [
    'http://localhost:8080/hook',
    'http://LocalHost/hook',
    'http://127.0.0.1/',
    'http://[::1]:9000/hook',
    'http://[::]/',
    'http://0x7f000001/', // hex
    'http://2130706433/', // one decimal number
    'http://0177.0.0.1/', // octal
    'http://127.1/', // short form
    'http://0/', // 0.0.0.0
    'http://[::ffff:127.0.0.1]/', // IPv4-mapped, normalised by URL to [::ffff:7f00:1]
    'http://[0:0:0:0:0:ffff:7f00:1]/',
    'http://[::127.0.0.1]/', // deprecated IPv4-compatible form
    'http://[::ffff:a9fe:a9fe]/latest/meta-data', // 169.254.169.254, the cloud metadata address
    'http://169.254.169.254/latest/meta-data',
    'http://10.0.0.1/',
    'https://192.168.1.1:8443/',
    'http://[fd00::1]/',
    'http://[fe80::1]/',
  ];
  for (const url of refused) {
    it(`refuses ${url}`, async () => {
      const why = await checkEndpointAddress(url, false);
      expect(why, url)
        .to.be.a('string')
        .and.match(/private or loopback address/);
    });
  }

  it('allows public address literals', async () => {
    for (const url of ['http://8.8.8.8/', 'http://[2606:4700::1111]/', 'http://[::ffff:8.8.8.8]/', 'http://[::ffff:808:808]/']) {
      expect(await checkEndpointAddress(url, false), url).to.equal(null);
    }
  });

  it('allows everything when private networks are allowed (development and tests)', async () => {
    expect(await checkEndpointAddress('http://localhost/', true)).to.equal(null);
  });

  it('reads IPv4-mapped addresses written in hex', () => {
    expect(isPrivateAddress('::ffff:7f00:1')).to.equal(true);
    expect(isPrivateAddress('::ffff:a00:1')).to.equal(true); // 10.0.0.1
    expect(isPrivateAddress('::ffff:808:808')).to.equal(false); // 8.8.8.8
  });
});
