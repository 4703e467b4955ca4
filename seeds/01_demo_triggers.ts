import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { validateTriggerConfig } from '../src/triggers/validate';
import { firstOccurrence } from '../src/triggers/schedule';
import type { TriggerType } from '../src/triggers/types';

/** Demo triggers of every type, each validated and scheduled exactly as the API would (idempotent by name). */
const DEMO: Array<{ name: string; type: TriggerType; config: Record<string, unknown> }> = [
  {
    name: 'demo-webhook-orders',
    type: 'webhook',
    config: {
      endpoint: 'http://127.0.0.1:9999/orders',
      schema: {
        type: 'object',
        required: ['order_id'],
        properties: { order_id: { type: 'string' }, amount: { type: 'number', minimum: 0 } },
      },
    },
  },
  {
    name: 'demo-once-in-10-minutes',
    type: 'time_scheduled',
    config: { endpoint: 'http://127.0.0.1:9999/once', delay_seconds: 600, payload: { hello: 'once' } },
  },
  {
    name: 'demo-cron-weekday-9am-new-york',
    type: 'cron_scheduled',
    config: { endpoint: 'http://127.0.0.1:9999/report', cron: '0 9 * * 1-5', timezone: 'America/New_York', payload: { report: 'daily' } },
  },
  {
    name: 'demo-every-30-minutes',
    type: 'interval_scheduled',
    config: { endpoint: 'http://127.0.0.1:9999/tick', interval_seconds: 1800, payload: { tick: true } },
  },
];

export async function seed(knex: Knex): Promise<void> {
  const now = new Date();
  for (const d of DEMO) {
    const exists = await knex('triggers').where({ name: d.name }).first();
    if (exists) continue;
    const v = validateTriggerConfig(d.type, d.config, now);
    if (!v.ok) throw new Error(`seed ${d.name}: ${JSON.stringify(v.errors)}`);
    const id = randomUUID();
    await knex.transaction(async (trx) => {
      await trx('triggers').insert({
        id,
        name: d.name,
        type: d.type,
        status: 'active',
        config: JSON.stringify(v.config),
        version: 1,
        created_at: now,
        updated_at: now,
      });
      const first = firstOccurrence(d.type, v.config, now);
      if (first)
        await trx('trigger_schedules').insert({ trigger_id: id, fire_at: first, status: 'pending', created_at: now, updated_at: now });
    });
  }
}
