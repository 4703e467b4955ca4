/**
 * Which time zone the dashboard shows times in: the browser's, UTC, or each trigger's own (a scheduled
 * trigger's `timezone`; a webhook trigger has none, and its times are shown in the browser's zone). The
 * choice is kept in localStorage (it is a preference of this browser, not of the tab), written only when
 * the operator changes it. Every time shown names its zone.
 */
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';

export type ZoneChoice = 'browser' | 'utc' | 'trigger';
export const ZONE_CHOICES: ZoneChoice[] = ['browser', 'utc', 'trigger'];
const STORAGE_KEY = 'etp.timeZone';

export function browserZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function stored(): ZoneChoice {
  try {
    const v = window.localStorage.getItem(STORAGE_KEY);
    return v === 'utc' || v === 'trigger' || v === 'browser' ? v : 'browser';
  } catch {
    return 'browser';
  }
}

interface ZoneState {
  choice: ZoneChoice;
  setChoice: (c: ZoneChoice) => void;
}

const ZoneContext = createContext<ZoneState>({ choice: 'browser', setChoice: () => undefined });

export function ZoneProvider({ children }: { children: ComponentChildren }) {
  const [choice, set] = useState<ZoneChoice>(stored);
  const setChoice = (c: ZoneChoice) => {
    set(c);
    try {
      window.localStorage.setItem(STORAGE_KEY, c);
    } catch {
      /* storage disabled: the choice lasts for this page */
    }
  };
  return <ZoneContext.Provider value={{ choice, setChoice }}>{children}</ZoneContext.Provider>;
}

export function useZoneChoice(): ZoneState {
  return useContext(ZoneContext);
}

/** The IANA zone a time is shown in, for this choice and (when it has one) the trigger's own zone. */
export function zoneFor(choice: ZoneChoice, triggerZone: string | null | undefined): string {
  if (choice === 'utc') return 'UTC';
  if (choice === 'trigger' && triggerZone) return triggerZone;
  return browserZone();
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** "4 Dec 2026, 17:00:00 CET": the instant in `zone`, with the zone's short name (or "UTC"). */
export function formatInZone(iso: string, zone: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  let f = formats.get(zone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat(undefined, {
        year: 'numeric',
        month: 'short',
        day: 'numeric',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        timeZone: zone,
        timeZoneName: 'short',
      });
    } catch {
      // An unknown zone name (a trigger from a newer tz database): UTC, which the label then says.
      return formatInZone(iso, 'UTC');
    }
    formats.set(zone, f);
  }
  return f.format(d);
}

/** One clock for every relative time on the page ("12 s ago"): they tick together, once a second. */
const listeners = new Set<(now: number) => void>();
let ticker: ReturnType<typeof setInterval> | undefined;

export function useNow(enabled = true): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (!enabled) return undefined;
    listeners.add(setNow);
    ticker ??= setInterval(() => {
      const t = Date.now();
      listeners.forEach((l) => l(t));
    }, 1000);
    return () => {
      listeners.delete(setNow);
      if (listeners.size === 0 && ticker !== undefined) {
        clearInterval(ticker);
        ticker = undefined;
      }
    };
  }, [enabled]);
  return now;
}

const LABELS: Record<ZoneChoice, string> = { browser: 'this browser', utc: 'UTC', trigger: "each trigger's zone" };

/** The header's "Times in" control. */
export function ZonePicker() {
  const { choice, setChoice } = useZoneChoice();
  return (
    <label class="zone-picker">
      <span>Times in</span>
      <select value={choice} onChange={(e) => setChoice(e.currentTarget.value as ZoneChoice)}>
        {ZONE_CHOICES.map((c) => (
          <option key={c} value={c}>
            {c === 'browser' ? `${LABELS.browser} (${browserZone()})` : LABELS[c]}
          </option>
        ))}
      </select>
    </label>
  );
}
