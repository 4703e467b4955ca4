import type { Knex } from 'knex';

/**
 * Runs `fn` in a transaction of its own that waits at most `seconds` for a row lock (InnoDB's
 * innodb_lock_wait_timeout), then rolls it back. For tests that show one transaction does, or does not,
 * wait for another's locks: a wait ends in error 1205 after `seconds` instead of the server's default 50 s.
 */
export async function inShortLockWaitTransaction<T>(db: Knex, seconds: number, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  const trx = await db.transaction();
  try {
    await trx.raw('SET SESSION innodb_lock_wait_timeout = ?', [seconds]);
    return await fn(trx);
  } finally {
    await trx.raw('SET SESSION innodb_lock_wait_timeout = DEFAULT').catch(() => undefined);
    await trx.rollback();
  }
}
