import type { Db } from '../db/knex';
import { lockFlow, oldestUnended, saveRates, takeSlots, type Slot } from '../db/flow';
import { withDbRetry } from '../util';
import { admitConcurrency, admitRate, concurrencyWaitMs, orderWaitMs, orderedRun, type Hold } from './flow';
import type { DeliveryConfig } from './trigger-cache';

/** One message of a batch as the gate sees it. `held`: how often it was deferred before. */
export interface FlowItem {
  eventId: string;
  triggerId: string | null;
  cfg: DeliveryConfig | null;
  held: number;
}

export interface FlowPlan {
  /** Decided before any request: these wait, through the outbox, without an attempt. */
  holds: Map<string, Hold>;
  /** Per ordered trigger, the events this batch may send, one after another in this order. */
  runs: string[][];
  /** Slots taken for admitted requests: released with the batch's outcomes. */
  slots: Slot[];
}

/** A batch whose triggers have no flow settings: nothing to decide, no statement made. */
const NO_FLOW: FlowPlan = { holds: new Map(), runs: [], slots: [] };

/**
 * How long an ordered trigger's run may keep going in one batch: the batch commits (and the worker fetches
 * again) only when its longest run ends, so a long run of a slow endpoint would hold up other triggers.
 */
export const ORDER_RUN_BUDGET_MS = 250;
/** A slot's lease beyond the request's own timeout (and a run's budget): then a dead worker's slot frees. */
const SLOT_LEASE_MARGIN_MS = 5000;

function hasFlow(cfg: DeliveryConfig | null): cfg is DeliveryConfig {
  return (
    !!cfg && (cfg.ordered_delivery === true || cfg.delivery_rate_per_second !== undefined || cfg.delivery_max_concurrency !== undefined)
  );
}

/**
 * Per-trigger delivery flow control across all worker processes (docs/delivery-flow.md). Once per batch,
 * before any request, it decides which messages of triggers with flow settings may go now:
 *  1. ordered triggers: one read of their oldest unended events; the batch sends the run of them it holds
 *     from the oldest on, the rest wait;
 *  2. rate- and concurrency-limited triggers: one short transaction that locks their flow rows, admits what
 *     the limits allow (in sending order), moves the rate limiters on and takes slots; the rest wait.
 * A batch without such triggers costs nothing: no statement.
 */
export class FlowGate {
  constructor(
    private readonly db: Db,
    private readonly random: () => number = Math.random,
  ) {}

  async plan(items: FlowItem[]): Promise<FlowPlan> {
    const byTrigger = new Map<string, FlowItem[]>();
    for (const it of items) {
      if (!it.triggerId || !hasFlow(it.cfg)) continue;
      const list = byTrigger.get(it.triggerId) ?? [];
      list.push(it);
      byTrigger.set(it.triggerId, list);
    }
    if (byTrigger.size === 0) return NO_FLOW;
    const plan: FlowPlan = { holds: new Map(), runs: [], slots: [] };
    const sending = await this.order(byTrigger, plan);
    await this.limit(sending, plan);
    for (const [triggerId, list] of sending) {
      if (byTrigger.get(triggerId)![0]!.cfg!.ordered_delivery)
        plan.runs.push(list.filter((it) => !plan.holds.has(it.eventId)).map((it) => it.eventId));
    }
    return plan;
  }

  /** Each trigger's items in sending order; an ordered trigger's only the run it may send, the rest held. */
  private async order(byTrigger: Map<string, FlowItem[]>, plan: FlowPlan): Promise<Map<string, FlowItem[]>> {
    const ordered = new Map(
      [...byTrigger].filter(([, list]) => list[0]!.cfg!.ordered_delivery === true).map(([id, list]) => [id, list.length]),
    );
    const oldest = ordered.size > 0 ? await withDbRetry(() => oldestUnended(this.db, ordered)) : new Map<string, never[]>();
    const sending = new Map<string, FlowItem[]>();
    const now = Date.now();
    for (const [triggerId, list] of byTrigger) {
      if (!ordered.has(triggerId)) {
        sending.set(triggerId, list);
        continue;
      }
      const unended = oldest.get(triggerId) ?? [];
      const byId = new Map(list.map((it) => [it.eventId, it]));
      const run = orderedRun(
        unended.map((u) => u.id),
        new Set(byId.keys()),
      );
      sending.set(
        triggerId,
        run.map((id) => byId.get(id)!),
      );
      const head = unended[0]?.nextAttemptAt?.getTime() ?? null;
      for (const it of list) {
        if (!run.includes(it.eventId))
          plan.holds.set(it.eventId, { reason: 'order', waitMs: orderWaitMs(head, now, it.held, this.random) });
      }
    }
    return sending;
  }

  /** Admits what the rate and concurrency limits allow, in one transaction over the limited triggers' rows. */
  private async limit(sending: Map<string, FlowItem[]>, plan: FlowPlan): Promise<void> {
    const limited = [...sending].filter(
      ([, list]) =>
        list.length > 0 && (list[0]!.cfg!.delivery_rate_per_second !== undefined || list[0]!.cfg!.delivery_max_concurrency !== undefined),
    );
    if (limited.length === 0) return;
    const decided = await withDbRetry(() =>
      this.db.transaction(async (trx) => {
        const { nowUs, rows } = await lockFlow(
          trx,
          limited.map(([id]) => id),
        );
        const holds = new Map<string, Hold>();
        const rates: Array<{ triggerId: string; tatUs: number }> = [];
        const slots: Array<Slot & { leaseMs: number }> = [];
        for (const [triggerId, list] of limited) {
          const cfg = list[0]!.cfg!;
          const state = rows.get(triggerId) ?? { tatUs: 0, inFlight: 0 };
          const max = cfg.delivery_max_concurrency;
          const open = max === undefined ? list.length : admitConcurrency(state.inFlight, max, list.length);
          const rate = cfg.delivery_rate_per_second;
          const r = rate === undefined ? null : admitRate(state.tatUs, nowUs, rate, open);
          if (r) rates.push({ triggerId, tatUs: r.tatUs });
          const admitted = r ? r.admitted : open;
          list.forEach((it, i) => {
            if (i < admitted) {
              if (max !== undefined)
                slots.push({ triggerId, eventId: it.eventId, leaseMs: cfg.timeout_ms + ORDER_RUN_BUDGET_MS + SLOT_LEASE_MARGIN_MS });
            } else if (i < open) holds.set(it.eventId, { reason: 'rate', waitMs: r!.waitsMs[i - admitted]! });
            else holds.set(it.eventId, { reason: 'concurrency', waitMs: concurrencyWaitMs(it.held, cfg.timeout_ms, this.random) });
          });
        }
        await saveRates(trx, rates);
        await takeSlots(trx, slots);
        return { holds, slots };
      }),
    );
    for (const [id, hold] of decided.holds) plan.holds.set(id, hold);
    plan.slots.push(...decided.slots.map(({ triggerId, eventId }) => ({ triggerId, eventId })));
  }
}
