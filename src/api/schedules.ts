/** The schedule preview: what a trigger definition would fire, before it is saved. */
import { Router } from 'express';
import { validationError } from './errors';
import { presentOccurrence, notScheduled } from './triggers';
import { firstRun } from '../triggers/lifecycle';
import { runsFrom } from '../triggers/schedule';
import type { TriggerType } from '../triggers/types';
import { validateTriggerConfig } from '../triggers/validate';

export function scheduleRoutes(): Router {
  const r = Router();

  r.post('/schedules/preview', async (req, res) => {
    const b = req.body as { type: TriggerType; config: unknown; count?: number; trigger_id?: string };
    if (b.type === 'webhook') throw notScheduled(b.type);
    const now = new Date();
    const result = validateTriggerConfig(b.type, b.config, now);
    if (!result.ok) throw validationError(result.errors);
    // What creating it now would schedule first, then the same pure functions the relay uses.
    const triggerId = b.trigger_id ?? null;
    const first = firstRun({ id: triggerId, type: b.type, config: result.config, created_at: now }, now, true);
    const timeZone = (result.config as { timezone?: string }).timezone ?? 'UTC';
    res.json({
      status: 'preview',
      occurrences: runsFrom(triggerId, b.type, result.config, first, b.count ?? 10).map((o) => presentOccurrence(o, timeZone)),
    });
  });

  return r;
}
