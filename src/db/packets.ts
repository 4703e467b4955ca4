/**
 * The size of what goes to the server in one statement and in one round trip. MySQL and MariaDB refuse a
 * packet larger than `max_allowed_packet` (16 MiB by default on MariaDB, 64 MiB on MySQL 8 and in the repo's
 * `deploy/mysql/etp.cnf`), and a refused batch would be refused again on every retry. A batch of large
 * payloads (a scheduled trigger's payload and a webhook body may each be up to a mebibyte) is therefore cut:
 * rows into several INSERT statements, and a script's statements into several round trips of the same
 * transaction. Sizes are estimates from above (a string's UTF-8 bytes doubled for escaping); a single row
 * larger than the bound goes alone.
 */

/** The most SQL text one multi-row INSERT carries (estimated). */
export const STATEMENT_MAX_BYTES = 4 * 1024 * 1024;

/** The most SQL text one round trip of a multi-statement script carries (estimated). */
export const PACKET_MAX_BYTES = 8 * 1024 * 1024;

/** A row's fixed part in an INSERT's text: its placeholders' short values (ids, instants, enums) and separators. */
export const ROW_BASE_BYTES = 512;

/** At most what a bound string adds to a statement's text: its UTF-8 bytes, each escaped at worst, and quotes. */
export function textBytes(s: string | null | undefined): number {
  return s ? 2 * Buffer.byteLength(s) + 2 : 4;
}

/**
 * `items` cut into runs in order, each run's `sizeOf` sum (`bytes`) within `maxBytes` (a run always holds at
 * least one item, however large).
 */
export function chunksBySize<T>(items: readonly T[], sizeOf: (item: T) => number, maxBytes: number): Array<{ items: T[]; bytes: number }> {
  const chunks: Array<{ items: T[]; bytes: number }> = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const b = sizeOf(item);
    if (current.length > 0 && bytes + b > maxBytes) {
      chunks.push({ items: current, bytes });
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += b;
  }
  if (current.length > 0) chunks.push({ items: current, bytes });
  return chunks;
}
