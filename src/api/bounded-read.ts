import type { Response } from 'express';
import type { Knex } from 'knex';
import type { Db } from '../db/knex';

/**
 * Runs a read route's queries on one connection of their own and stops them when the client goes away:
 * when the response closes before it was sent, the statement running on that connection is killed
 * (`KILL QUERY`), so an abandoned request does not keep the server busy until READ_TIMEOUT. The connection
 * is held until the kill has been answered, so the kill can never reach another request's statement.
 */
export async function boundedRead<T>(db: Db, res: Response, read: (q: Knex.Transaction) => Promise<T>): Promise<T> {
  return db.transaction(async (trx) => {
    const [[row]] = (await trx.raw('SELECT CONNECTION_ID() AS id')) as [[{ id: number }]];
    let killed: Promise<unknown> | null = null;
    const onClose = () => {
      if (!res.writableFinished && !killed) killed = db.raw('KILL QUERY ?', [row.id]).catch(() => undefined);
    };
    res.on('close', onClose);
    try {
      return await read(trx);
    } finally {
      res.off('close', onClose);
      if (killed) await killed;
    }
  });
}

/** The error a killed statement ends with (MariaDB and MySQL). */
export const ER_QUERY_INTERRUPTED = 1317;
