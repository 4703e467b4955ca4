/**
 * Events per minute by outcome, as stacked bars (uPlot draws on a canvas; the numbers are also given as
 * text for screen readers). uPlot has no stacking of its own: each series is drawn at its cumulative
 * height, the tallest first, and the legend shows each series' own count.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { Overview } from './types';

type Buckets = Overview['events_per_minute']['buckets'];

const SERIES = [
  { label: 'In flight', color: '#94a3b8', of: (b: Buckets[number]) => b.pending + b.published },
  { label: 'Succeeded', color: '#15803d', of: (b: Buckets[number]) => b.success },
  { label: 'Failed', color: '#dc2626', of: (b: Buckets[number]) => b.failure },
];
const HEIGHT = 220;

function columns(buckets: Buckets): { data: uPlot.AlignedData; raw: number[][] } {
  const xs = buckets.map((b) => new Date(b.at).getTime() / 1000);
  const raw = SERIES.map((s) => buckets.map(s.of));
  // Cumulative from the bottom (failed) up: failed, failed + succeeded, everything.
  const failed = raw[2]!;
  const failedSucceeded = raw[1]!.map((v, i) => v + failed[i]!);
  const all = raw[0]!.map((v, i) => v + failedSucceeded[i]!);
  return { data: [xs, all, failedSucceeded, failed], raw };
}

/** `zone`: the IANA zone the time axis is drawn in (named under the axis). */
export function EventsChart({ buckets, zone }: { buckets: Buckets; zone: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const raw = useRef<number[][]>([]);
  const latest = useRef(buckets);
  latest.current = buckets;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const bars = uPlot.paths.bars ? uPlot.paths.bars({ size: [0.9, 40], gap: 1 }) : undefined;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: HEIGHT,
      cursor: { drag: { x: false, y: false } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(5, Math.ceil(max * 1.1))] } },
      axes: [
        { stroke: '#475569', grid: { stroke: '#e2e8f0' }, label: `time (${zone})`, labelSize: 20 },
        { stroke: '#475569', grid: { stroke: '#e2e8f0' }, size: 48, label: 'events / min' },
      ],
      series: [
        { label: 'Minute' },
        ...SERIES.map((s, i) => ({
          label: s.label,
          stroke: s.color,
          fill: s.color,
          width: 0,
          paths: bars,
          points: { show: false },
          value: (_u: uPlot, _v: number | null, _si: number, idx: number | null) =>
            idx === null ? '—' : String(raw.current[i]?.[idx] ?? 0),
        })),
      ],
    };
    // Built again when the zone changes (uPlot takes it at creation), with the data already loaded.
    const cols = columns(latest.current);
    raw.current = cols.raw;
    plot.current = new uPlot(opts, cols.data, el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [zone]);

  useEffect(() => {
    const cols = columns(buckets);
    raw.current = cols.raw;
    plot.current?.setData(cols.data);
  }, [buckets]);

  const totals = SERIES.map((s) => buckets.reduce((n, b) => n + s.of(b), 0));
  const summary = `Events per minute over the last 2 hours: ${totals[1]} succeeded, ${totals[2]} failed, ${totals[0]} in flight.`;
  return (
    <figure class="chart">
      <div ref={box} class="chart-canvas" role="img" aria-label={summary} />
      <figcaption class="muted">{summary}</figcaption>
    </figure>
  );
}
