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
  /** Where the eviction walk stopped: everything before it was kept when the walk passed it. */
  #cursor: Iterator<K> | undefined;

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
   * `key`). The walk for one to evict goes on from where the last one stopped, past kept
   * entries without moving them, and looks at {@link SCAN_BUDGET} entries at most, so a set
   * costs O(1) even when most entries are kept (100,000 exits of runs still held arrive at
   * once when a kernel stops everything). Starting each walk from the oldest end made that
   * quadratic twice over: in the kept entries walked, and in the deleted slots a Map leaves
   * at its front until it rehashes, which every walk from the start steps over again. An
   * entry let go of by `keep` after the walk passed it is evicted when the walk comes round.
   */
  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    let budget = SCAN_BUDGET;
    while (this.#entries.size > this.#limit && budget-- > 0) {
      this.#cursor ??= this.#entries.keys();
      const next = this.#cursor.next();
      if (next.done) {
        this.#cursor = undefined;
        continue;
      }
      const candidate = next.value;
      if (candidate !== key && !this.#keep?.(candidate)) this.#entries.delete(candidate);
    }
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }
}
