import { expect } from 'chai';
import { dbErrorKind, isRetryableDbError } from '../../src/db/errors';
import { withDbRetry } from '../../src/util';

/** Errors as mysql2 and knex raise them: a server errno with its message, or a socket code. */
const serverError = (errno: number, message = 'x') => Object.assign(new Error(message), { errno, code: 'ER_X' });
const socketError = (code: string) => Object.assign(new Error(code), { code });

describe('the table of transient database errors', () => {
  it('calls a deadlock, a lock wait timeout and a Galera certification failure a conflict', () => {
    expect(dbErrorKind(serverError(1213, 'Deadlock found when trying to get lock; try restarting transaction'))).to.equal('conflict');
    expect(dbErrorKind(serverError(1205))).to.equal('conflict');
    expect(dbErrorKind(serverError(3101, 'Plugin instructed the server to rollback the current transaction.'))).to.equal('conflict');
  });

  it('calls what a failover throws "unavailable": a node not synced, read-only, shutting down, a lost or refused connection', () => {
    expect(dbErrorKind(serverError(1047, 'WSREP has not yet prepared node for application use'))).to.equal('unavailable');
    expect(dbErrorKind(serverError(1290, 'The MariaDB server is running with the --read-only option'))).to.equal('unavailable');
    expect(dbErrorKind(serverError(1836, 'Running in read-only mode'))).to.equal('unavailable');
    expect(dbErrorKind(serverError(1290, 'The MySQL server is running with the --super-read-only option'))).to.equal('unavailable');
    expect(dbErrorKind(serverError(1053))).to.equal('unavailable');
    expect(dbErrorKind(serverError(2013))).to.equal('unavailable');
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'PROTOCOL_CONNECTION_LOST', 'EPIPE', 'ETIMEDOUT']) {
      expect(dbErrorKind(socketError(code)), code).to.equal('unavailable');
    }
    expect(dbErrorKind(new Error("Can't add new command when connection is in closed state"))).to.equal('unavailable');
    expect(dbErrorKind(Object.assign(new Error('Knex: Timeout acquiring a connection'), { name: 'KnexTimeoutError' }))).to.equal(
      'unavailable',
    );
  });

  it('does not retry what a retry cannot fix', () => {
    expect(dbErrorKind(serverError(1062, 'Duplicate entry'))).to.equal(null);
    expect(dbErrorKind(serverError(1290, 'The MariaDB server is running with the --secure-file-priv option'))).to.equal(null);
    expect(dbErrorKind(serverError(1064, 'You have an error in your SQL syntax'))).to.equal(null);
    expect(dbErrorKind(new Error('boom'))).to.equal(null);
    expect(dbErrorKind(null)).to.equal(null);
    expect(isRetryableDbError('a string')).to.equal(false);
  });

  it('withDbRetry runs a transaction again after a transient error and stops at the first other one', async () => {
    let calls = 0;
    const value = await withDbRetry(async () => {
      calls++;
      if (calls === 1) throw serverError(1213);
      if (calls === 2) throw socketError('PROTOCOL_CONNECTION_LOST');
      return 'committed';
    });
    expect(value).to.equal('committed');
    expect(calls).to.equal(3);

    let refused = 0;
    const err = await withDbRetry(async () => {
      refused++;
      throw serverError(1062, 'Duplicate entry');
    }).catch((e: unknown) => e);
    expect((err as { errno: number }).errno).to.equal(1062);
    expect(refused).to.equal(1);
  });
});
