/**
 * The one command-line parser of the benchmarks (`npm run bench -- relay --quick --n=5000`) and of the
 * fault soak (`npm run test:faults -- --minutes 10`). Options only, no positional arguments: `--flag`,
 * `--name=value` or `--name value`. A mistyped value stops the run with a message naming the option,
 * rather than a run of the wrong size.
 */

export interface Args {
  flags: Set<string>;
  values: Map<string, string>;
}

/**
 * `--quick` (a flag), `--n=200000` or `--n 200000` (a value). A token after `--name` that does not start
 * with `--` is its value; anything else that does not start with `--` is ignored.
 */
export function parseArgs(argv: string[] = process.argv.slice(2)): Args {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    const next = argv[i + 1];
    if (eq > 0) values.set(a.slice(2, eq), a.slice(eq + 1));
    else if (next !== undefined && !next.startsWith('--')) values.set(a.slice(2), argv[++i]!);
    else flags.add(a.slice(2));
  }
  return { flags, values };
}

/** A positive number (`_` allowed as a digit separator: `--n=200_000`), or `def` when the option is absent. */
export function numArg(args: Args, name: string, def: number): number {
  return optionalNumArg(args, name) ?? def;
}

/** numArg rounded to an integer (counts, rates, sizes). */
export function intArg(args: Args, name: string, def: number): number {
  return Math.round(numArg(args, name, def));
}

/** A positive number, or undefined when the option is absent. */
export function optionalNumArg(args: Args, name: string): number | undefined {
  const raw = args.values.get(name);
  if (raw === undefined) return undefined;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}=${raw}: expected a positive number`);
  return n;
}

/** `--only=a,b`: the comma-separated items (trimmed, empty ones dropped), or those of `def`. */
export function listArg(args: Args, name: string, def: string): string[] {
  return (args.values.get(name) ?? def)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * `--systems=us,pgboss`: a list of known names (case-insensitive, `alias` maps other spellings), in the
 * order of `all`; all of them when the option is absent. An unknown name stops the run.
 */
export function choicesArg<T extends string>(args: Args, name: string, all: readonly T[], alias: Record<string, T> = {}): T[] {
  if (!args.values.get(name)) return [...all];
  const asked = listArg(args, name, '')
    .map((s) => s.toLowerCase())
    .map((s) => (alias[s] ?? s) as T);
  const bad = asked.filter((s) => !all.includes(s));
  if (bad.length) throw new Error(`--${name}: unknown ${bad.join(', ')}; one of ${all.join(', ')}`);
  return all.filter((s) => asked.includes(s));
}

/** `--env=OUTBOX_ORDERING=off,OUTBOX_SHARDS=16`: environment settings as an object (items without `=` are ignored). */
export function envArg(args: Args, name: string): Record<string, string> {
  return Object.fromEntries(
    listArg(args, name, '')
      .filter((kv) => kv.includes('='))
      .map((kv) => [kv.slice(0, kv.indexOf('=')).trim(), kv.slice(kv.indexOf('=') + 1).trim()]),
  );
}
