import type { Db } from '../../src/db/knex';
import { withDbRetry } from '../../src/util';

export interface OutboxInsertSeen {
  id: number;
  event_id: string;
  topic: string;
  msg_key: string | null;
  value: Buffer;
}

/**
 * Records every row written to the outbox of a test database, for tests that need to know what went
 * through the outbox after the relay has published (a published row is deleted). A MariaDB trigger copies
 * each insert into `outbox_inserts`, in the inserting transaction, so a rolled-back insert leaves no copy.
 */
export async function logOutboxInserts(db: Db): Promise<{ rows(): Promise<OutboxInsertSeen[]>; stop(): Promise<void> }> {
  await db.raw(`CREATE TABLE IF NOT EXISTS outbox_inserts (
      id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
      event_id CHAR(36) CHARACTER SET ascii NOT NULL,
      topic VARCHAR(249) CHARACTER SET ascii NOT NULL,
      msg_key VARCHAR(255) NULL,
      value MEDIUMBLOB NOT NULL,
      KEY (event_id)
    ) ENGINE=InnoDB`);
  await db.raw(`CREATE TRIGGER IF NOT EXISTS outbox_inserts_copy AFTER INSERT ON outbox FOR EACH ROW
      INSERT INTO outbox_inserts (id, event_id, topic, msg_key, value) VALUES (NEW.id, NEW.event_id, NEW.topic, NEW.msg_key, NEW.value)`);
  return {
    async rows() {
      const rows = (await withDbRetry(
        () => db('outbox_inserts').select('id', 'event_id', 'topic', 'msg_key', 'value').orderBy('id'),
        10,
      )) as OutboxInsertSeen[];
      return rows.map((r) => ({ ...r, id: Number(r.id) }));
    },
    async stop() {
      await db.raw('DROP TRIGGER IF EXISTS outbox_inserts_copy');
      await db.raw('DROP TABLE IF EXISTS outbox_inserts');
    },
  };
}
