import type { Knex } from 'knex';

/*
 * Per-trigger ordering with many relays (see src/relay/leases.ts):
 *  - outbox.shard = hash(message key, i.e. trigger id) % OUTBOX_SHARDS, stored at insert time, with the
 *    claim index (shard, published, id): a relay reads only the rows of its own shards, in id order, and
 *    never locks (so never makes another relay skip) a row of someone else's shard.
 *  - relay_leases: one row per shard; a relay owns a shard until expires_at, and every acquisition bumps
 *    the fencing token that the claim transaction checks (with the lease row locked).
 *  - relay_heartbeats: live relays, so each can take its fair share ceil(shards / live).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    'ALTER TABLE outbox ADD COLUMN shard SMALLINT UNSIGNED NOT NULL DEFAULT 0 AFTER msg_key, ADD KEY idx_outbox_shard_claim (shard, published, id)',
  );
  // published = 2: waiting for available_at (a delivery retry, a back-off). Kept out of the claim indexes'
  // published = 0 range, so claims never scan past rows that are not due; promoted by promoteDue().
  await knex.raw('ALTER TABLE outbox ADD KEY idx_outbox_waiting (published, available_at)');
  await knex.raw(`
    CREATE TABLE relay_leases (
      shard SMALLINT UNSIGNED NOT NULL,
      owner VARCHAR(64) CHARACTER SET ascii NULL,
      token BIGINT UNSIGNED NOT NULL DEFAULT 0,
      expires_at DATETIME(3) NOT NULL,
      PRIMARY KEY (shard),
      KEY idx_leases_owner (owner)
    ) ENGINE=InnoDB`);
  await knex.raw(`
    CREATE TABLE relay_heartbeats (
      relay_id VARCHAR(64) CHARACTER SET ascii NOT NULL,
      seen_at DATETIME(3) NOT NULL,
      PRIMARY KEY (relay_id)
    ) ENGINE=InnoDB`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS relay_heartbeats');
  await knex.raw('DROP TABLE IF EXISTS relay_leases');
  await knex.raw('ALTER TABLE outbox DROP KEY idx_outbox_waiting, DROP KEY idx_outbox_shard_claim, DROP COLUMN shard');
}
