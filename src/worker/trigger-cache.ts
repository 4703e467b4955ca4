import type { Db } from '../db/knex';
import { getTriggersByIds } from '../db/triggers';
import type { CommonConfig, WebhookConfig } from '../triggers/types';

/** What a delivery needs of a trigger's config. */
export type DeliveryConfig = CommonConfig & Partial<Pick<WebhookConfig, 'secret'>>;

/**
 * The worker's cache of trigger delivery configs, keyed by trigger id and tagged with `triggers.version`
 * (bumped by every edit, pause and resume). The worker reads the current versions of a batch's triggers
 * with the batch's events (one statement, see eventsForDelivery) and calls resolve(): an entry whose
 * version still matches is used as is; missing or stale ones are loaded in one query. So an edit takes
 * effect from the next batch on, and a deleted trigger (no version) is dropped and reported as null.
 * Bounded, least recently used first out.
 */
export class TriggerCache {
  private readonly entries = new Map<string, { version: number; config: DeliveryConfig }>();

  constructor(private readonly maxEntries = 10_000) {}

  async resolve(db: Db, versions: Map<string, number | null>): Promise<Map<string, DeliveryConfig | null>> {
    const out = new Map<string, DeliveryConfig | null>();
    const stale: string[] = [];
    for (const [id, version] of versions) {
      const hit = this.entries.get(id);
      if (version === null) {
        this.entries.delete(id);
        out.set(id, null);
      } else if (hit && hit.version === version) {
        this.entries.delete(id); // re-insert: Map order is the LRU order
        this.entries.set(id, hit);
        out.set(id, hit.config);
      } else {
        stale.push(id);
      }
    }
    if (stale.length > 0) {
      const rows = await getTriggersByIds(db, stale);
      for (const id of stale) {
        const row = rows.get(id);
        if (!row) {
          this.entries.delete(id); // deleted since the versions were read
          out.set(id, null);
          continue;
        }
        const config = row.config as DeliveryConfig;
        this.entries.delete(id);
        this.entries.set(id, { version: row.version, config });
        out.set(id, config);
      }
      while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    }
    return out;
  }

  get size(): number {
    return this.entries.size;
  }
}
