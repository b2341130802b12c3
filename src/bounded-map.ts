/**
 * A Map that holds at most `limit` entries, forgetting the oldest first. It owns only eviction
 * order; what is worth keeping past the limit is its owner's to say (`keep`).
 * @module
 */

/** How many entries one `set` looks at, at most, for one to evict. */
const SCAN_BUDGET = 32;

/** Options of {@link BoundedMap}. */
export interface BoundedMapOptions<K> {
  /** The most entries held (entries `keep` spares may exceed it). */
  limit: number;
  /** Entries never evicted for room; they go only by `delete`. Default: none are kept. */
  keep?: (key: K) => boolean;
}

/** A Map bounded by evicting its oldest entries; setting a key makes it the newest. */
export class BoundedMap<K, V> {
  readonly #entries = new Map<K, V>();
  readonly #limit: number;
  readonly #keep: ((key: K) => boolean) | undefined;

  constructor(options: BoundedMapOptions<K>) {
    this.#limit = options.limit;
    this.#keep = options.keep;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key);
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /**
   * Sets `key` as the newest entry; over the limit, evicts the oldest entries not kept (never
   * `key`). Kept entries met on the way move to the newest end and the walk stops after
   * {@link SCAN_BUDGET} of them, so a set costs O(1) even when most entries are kept (100,000
   * exits of runs still held arrive at once when a kernel stops everything): a walk over all
   * of them on every set made that quadratic.
   */
  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    let budget = SCAN_BUDGET;
    while (this.#entries.size > this.#limit && budget-- > 0) {
      const oldest = this.#entries.keys().next().value as K;
      if (oldest === key) return;
      const held = this.#entries.get(oldest) as V;
      this.#entries.delete(oldest);
      if (this.#keep?.(oldest)) this.#entries.set(oldest, held);
    }
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }
}
