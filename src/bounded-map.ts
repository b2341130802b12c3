/**
 * A Map that holds at most `limit` entries, forgetting the oldest first. It owns only eviction
 * order; what is worth keeping past the limit is its owner's to say (`keep`).
 * @module
 */

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

  /** Sets `key` as the newest entry; over the limit, evicts the oldest entry not kept (never `key`). */
  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (this.#entries.size <= this.#limit) return;
    for (const oldest of this.#entries.keys()) {
      if (oldest === key || this.#keep?.(oldest)) continue;
      this.#entries.delete(oldest);
      return;
    }
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }
}
