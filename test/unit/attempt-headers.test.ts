import { expect } from 'chai';
import { ATTEMPT_HEADERS_MAX_CHARS, HEADER_VALUE_MAX_CHARS, MASK, headersForHistory, isSecretHeader } from '../../src/worker/headers';

describe('attempt headers for the history', () => {
  it('masks credentials and signatures by name, keeping an Authorization scheme', () => {
    const h = headersForHistory({
      Authorization: 'Bearer abc.def',
      'Proxy-Authorization': 'Basic dXNlcjpwYXNz',
      'webhook-signature': 'v1,xyz',
      'X-Hub-Signature-256': 'sha256=1',
      Cookie: 'a=b',
      'set-cookie': ['sid=1', 'theme=dark'],
      'X-Api-Key': 'k',
      'x-auth-token': 't',
      'Content-Type': 'application/json',
      'X-Request-Id': 'r-1',
    });
    expect(h).to.deep.equal({
      authorization: `Bearer ${MASK}`,
      'proxy-authorization': `Basic ${MASK}`,
      'webhook-signature': MASK,
      'x-hub-signature-256': MASK,
      cookie: MASK,
      'set-cookie': MASK,
      'x-api-key': MASK,
      'x-auth-token': MASK,
      'content-type': 'application/json',
      'x-request-id': 'r-1',
    });
    expect(headersForHistory({ authorization: 'opaque-token-without-scheme' }).authorization).to.equal(MASK);
  });

  it('leaves ordinary headers alone', () => {
    for (const name of ['content-type', 'user-agent', 'webhook-id', 'idempotency-key', 'retry-after', 'x-team']) {
      expect(isSecretHeader(name), name).to.equal(false);
    }
  });

  it('cuts a long value and keeps the whole under its bound, saying how many headers were left out', () => {
    const raw: Record<string, string> = { 'x-long': 'v'.repeat(5000) };
    for (let i = 0; i < 200; i++) raw[`x-h${i}`] = 'w'.repeat(100);
    const h = headersForHistory(raw);
    expect(h['x-long'])
      .to.have.length.below(HEADER_VALUE_MAX_CHARS + 30)
      .and.match(/\(5000 chars\)$/);
    expect(JSON.stringify(h).length).to.be.at.most(ATTEMPT_HEADERS_MAX_CHARS);
    const kept = Object.keys(h).filter((k) => k !== '…').length;
    expect(h['…']).to.equal(`${201 - kept} more headers not kept`);
  });
});
