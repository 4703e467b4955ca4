/**
 * Group commit: concurrent callers' items are written together, one transaction (and one round trip) per
 * group, instead of one each. Pure scheduling — what a flush does is the caller's `flush` function.
 *
 * Natural batching, no timer: when a flush slot is free, the items queued so far are flushed on the next
 * turn of the event loop (setImmediate, so every request parsed in the same I/O phase joins); while all
 * `maxInFlight` slots are busy, arrivals queue and go out together as soon as one finishes. At low load a
 * group is one item and adds no latency; under load groups grow exactly as large as the commit time makes
 * them. A group holds at most `maxItems` items and `maxBytes` bytes (always at least one item).
 */
export interface GroupCommitOptions {
  maxItems: number;
  maxBytes: number;
  maxInFlight: number;
}

/** What a flush answers per item, in the order given. A thrown error fails every item of the group. */
export type FlushFn<I, R> = (items: I[]) => Promise<R[]>;

interface Entry<I, R> {
  item: I;
  bytes: number;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit<I, R> {
  private queue: Entry<I, R>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** Flushes started and items in them (a test and the metrics read these: flushes < items means grouping). */
  readonly stats = { flushes: 0, items: 0, largestGroup: 0 };

  constructor(
    private readonly flush: FlushFn<I, R>,
    private readonly opts: GroupCommitOptions,
  ) {
    if (opts.maxItems < 1 || opts.maxInFlight < 1 || opts.maxBytes < 1) throw new RangeError('group commit limits must be ≥ 1');
  }

  /** Queues `item` (of about `bytes` bytes) for the next group; resolves with its flush's answer. */
  add(item: I, bytes = 0): Promise<R> {
    if (this.closed) return Promise.reject(new Error('group commit closed'));
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, bytes, resolve, reject });
      this.schedule();
    });
  }

  /** Items waiting for a flush slot. */
  get pending(): number {
    return this.queue.length;
  }

  /** Refuses new items and resolves once every queued and in-flight group has been answered. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.queue.length === 0 && this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.opts.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.startFlushes();
    });
  }

  private startFlushes(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const group = takeGroup(this.queue, this.opts.maxItems, this.opts.maxBytes);
      this.inFlight++;
      this.stats.flushes++;
      this.stats.items += group.length;
      this.stats.largestGroup = Math.max(this.stats.largestGroup, group.length);
      void this.run(group);
    }
  }

  private async run(group: Entry<I, R>[]): Promise<void> {
    try {
      const answers = await this.flush(group.map((e) => e.item));
      if (answers.length !== group.length) throw new Error(`flush answered ${answers.length} of ${group.length} items`);
      group.forEach((e, i) => e.resolve(answers[i]!));
    } catch (err) {
      for (const e of group) e.reject(err);
    } finally {
      this.inFlight--;
      if (this.queue.length > 0) this.startFlushes();
      else if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}

/** Removes and returns the next group from the head of `queue`: ≤ maxItems, ≤ maxBytes unless one item alone is larger. */
export function takeGroup<T extends { bytes: number }>(queue: T[], maxItems: number, maxBytes: number): T[] {
  let n = 0;
  let bytes = 0;
  while (n < queue.length && n < maxItems) {
    const next = queue[n]!.bytes;
    if (n > 0 && bytes + next > maxBytes) break;
    bytes += next;
    n++;
  }
  return queue.splice(0, n);
}
