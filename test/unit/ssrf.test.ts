import { expect } from 'chai';
import { deliver, isPrivateAddress } from '../../src/worker/delivery';

/** What `deliver` answers for `url` before (or instead of) a request: its outcome. */
async function outcomeFor(url: string, allowPrivate: boolean) {
  const config = {
    endpoint: url,
    http_method: 'POST' as const,
    headers: {},
    timeout_ms: 2000,
    retry: { max_attempts: 1, backoff_ms: 1000 },
  };
  const outcome = (await deliver({ eventId: 'e1', payload: null, config }, allowPrivate)).outcome;
  return { kind: outcome.kind, error: 'error' in outcome ? outcome.error : null };
}

/**
 * The SSRF guard as the worker meets it: `deliver` with a whole endpoint URL. `localhost` is resolved through
 * the system resolver (/etc/hosts) inside the connection's lookup; every other name here is an address
 * literal in a spelling that URL parsing normalises, refused before any connection, so no test needs a network.
 */
describe('delivery: SSRF guard on endpoint URLs', () => {
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
      const outcome = await outcomeFor(url, false);
      expect(outcome.kind, url).to.equal('failure');
      expect(outcome.error, url).to.match(/private or loopback address/);
    });
  }

  it('reads public address literals, in the spellings URL parsing gives them, as public', () => {
    for (const url of ['http://8.8.8.8/', 'http://[2606:4700::1111]/', 'http://[::ffff:8.8.8.8]/', 'http://[::ffff:808:808]/']) {
      expect(isPrivateAddress(new URL(url).hostname.replace(/^\[|\]$/g, '')), url).to.equal(false);
    }
  });

  it('lets a private endpoint through when private networks are allowed (development and tests)', async () => {
    // Port 9 (discard) has no listener here: the request is made and fails as a network error, not refused.
    const outcome = await outcomeFor('http://127.0.0.1:9/', true);
    expect(outcome.kind).to.equal('retry');
    expect(outcome.error).to.not.match(/private or loopback address/);
  });

  it('reads IPv4-mapped addresses written in hex', () => {
    expect(isPrivateAddress('::ffff:7f00:1')).to.equal(true);
    expect(isPrivateAddress('::ffff:a00:1')).to.equal(true); // 10.0.0.1
    expect(isPrivateAddress('::ffff:808:808')).to.equal(false); // 8.8.8.8
  });
});
