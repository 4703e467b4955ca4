import type { Knex } from 'knex';
import type { Db } from '../../src/db/knex';

export interface CapturedQuery {
  sql: string;
  bindings: readonly unknown[];
}

const ROLLBACK = new Error('rollback: only capturing');

/**
 * Runs `fn` (a call of a src/ function) in a transaction that is rolled back, and returns its result and the
 * statements it sent, as knex's query event reports them (text with `?` placeholders, and the bindings).
 * Plan tests EXPLAIN these, so they test the SQL the relay really runs, not a copy of it.
 */
export async function captureSql<T>(db: Db, fn: (trx: Knex.Transaction) => Promise<T>): Promise<{ result: T; sql: CapturedQuery[] }> {
  const seen: CapturedQuery[] = [];
  const onQuery = (q: { sql: string; bindings?: readonly unknown[] }) => seen.push({ sql: q.sql, bindings: q.bindings ?? [] });
  let result!: T;
  db.on('query', onQuery);
  try {
    await db.transaction(async (trx) => {
      result = await fn(trx);
      throw ROLLBACK;
    });
  } catch (e) {
    if (e !== ROLLBACK) throw e;
  } finally {
    db.off('query', onQuery);
  }
  return { result, sql: seen.filter((q) => !/^\s*(BEGIN|START TRANSACTION|COMMIT|ROLLBACK|SET )/i.test(q.sql)) };
}

/** The statements `db` sent while `fn` ran (an HTTP request through the app, say), as knex's query event reports them. */
export async function sqlDuring(db: Db, fn: () => Promise<void>): Promise<string[]> {
  const sql: string[] = [];
  const onQuery = (q: { sql: string }) => sql.push(q.sql);
  db.on('query', onQuery);
  try {
    await fn();
  } finally {
    db.off('query', onQuery);
  }
  return sql;
}

/** EXPLAIN of a captured statement: one row per table access. */
export async function explain(
  db: Db,
  q: CapturedQuery,
): Promise<Array<{ table: string; type: string; key: string | null; rows: number; Extra: string | null }>> {
  const [rows] = (await db.raw(`EXPLAIN ${q.sql}`, q.bindings as Knex.RawBinding[])) as [
    Array<{ table: string; type: string; key: string | null; rows: number; Extra: string | null }>,
  ];
  return rows;
}
