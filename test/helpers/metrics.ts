/** The Prometheus text a role serves on `/metrics` at a local port (a platform's `ports.relay`, `ports.worker`, …). */
export async function scrapeMetrics(port: number | undefined): Promise<string> {
  if (port === undefined) throw new Error('no port: the role does not serve /metrics in this process');
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/**
 * One series' value in a scrape: `series` is its name with its labels as exposed (`etp_x_total{outcome="retry"}`,
 * or the bare name of an unlabelled metric); 0 when the scrape does not have it.
 */
export function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}
