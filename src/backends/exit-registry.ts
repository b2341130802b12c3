/**
 * The exits a backend has learnt and the `watchExit` callbacks waiting for them: one bounded
 * record and one deliver-once rule for every backend. It learns exits only from its backend;
 * it never asks a substrate anything and knows nothing of handles.
 * @module
 */
import { BoundedMap } from "../bounded-map.js";
import type { ExitStatus } from "./backend.js";

/**
 * How many exits a backend remembers, for `watchExit` and `exitCode` calls that come after
 * the exit. A kernel asks within moments of an exit and cleans the run up soon after (which
 * forgets it), so the limit only ever drops runs that nobody cleans up; an exit is a few dozen
 * bytes, so a full record costs well under a megabyte.
 */
export const EXIT_RECORD_LIMIT = 10_000;

/** Options of {@link ExitRegistry}. */
export interface ExitRegistryOptions<K> {
  /** The most exits remembered (default {@link EXIT_RECORD_LIMIT}). */
  limit?: number;
  /** Exits never forgotten for room (say, of runs this instance started); they go by `forget` only. */
  keep?: (key: K) => boolean;
  /**
   * Receives what a watch's callback throws. Without it, the error is thrown on to whoever
   * delivered the exit, once every watch of that exit has had it.
   */
  onError?: (error: unknown) => void;
  /** Called when the last open watch ends (its exit delivered, or stopped). */
  onIdle?: () => void;
}

/** One watch, as {@link ExitRegistry.watch} returns it. */
export interface ExitWatch {
  /** Whether the watch has ended: its exit was delivered, or it was stopped. */
  readonly done: boolean;
  /** Delivers `status` to this watch alone, unless it has ended (then nothing happens). */
  deliver(status: ExitStatus): void;
  /** Ends the watch without a call; `watchExit`'s unsubscribe function (bound: pass it as is). */
  readonly stop: () => void;
}

interface Watch<K> extends ExitWatch {
  readonly key: K | undefined;
  done: boolean;
  readonly onEnd: (() => void) | undefined;
}

/**
 * A bounded record of exits by key (a run id, a container id, a Pod name), and the watches of
 * each key. Every watch is called at most once, never before `watch` has returned, and never
 * after it was stopped.
 */
export class ExitRegistry<K = string> {
  readonly #exits: BoundedMap<K, ExitStatus>;
  readonly #watches = new Map<K, Set<Watch<K>>>();
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #onIdle: (() => void) | undefined;

  constructor(options: ExitRegistryOptions<K> = {}) {
    this.#exits = new BoundedMap<K, ExitStatus>({
      limit: options.limit ?? EXIT_RECORD_LIMIT,
      keep: options.keep,
    });
    this.#onError = options.onError;
    this.#onIdle = options.onIdle;
  }

  /** The remembered exit of `key`. */
  get(key: K): ExitStatus | undefined {
    return this.#exits.get(key);
  }

  has(key: K): boolean {
    return this.#exits.has(key);
  }

  /** Remembers `key`'s exit without telling its watches (they hear of it through `deliver`). */
  remember(key: K, status: ExitStatus): void {
    this.#exits.set(key, status);
  }

  /** Remembers `key`'s exit and delivers it to every open watch of `key`. */
  settle(key: K, status: ExitStatus): void {
    this.#exits.set(key, status);
    const set = this.#watches.get(key);
    if (!set) return;
    let thrown: { error: unknown } | undefined;
    for (const watch of [...set]) {
      try {
        watch.deliver(status);
      } catch (error) {
        thrown ??= { error };
      }
    }
    if (thrown) throw thrown.error;
  }

  /** Forgets `key`'s exit (its run was cleaned up); open watches stay. */
  forget(key: K): void {
    this.#exits.delete(key);
  }

  /**
   * Watches `key`: `onExit` is called once, with the exit `settle` or `deliver` brings, or
   * with the remembered one on the next microtask (the caller does not hold `stop` yet).
   * `onEnd` is called once when the watch ends, however it ends (before `onExit`), so the
   * backend can let go of what it held for the watch; a remembered exit's watch holds nothing.
   */
  watch(key: K, onExit: (status: ExitStatus) => void, onEnd?: () => void): ExitWatch {
    const known = this.#exits.get(key);
    if (known) return this.deliverLater(known, onExit);
    const watch = this.#watch(key, onExit, onEnd);
    let set = this.#watches.get(key);
    if (!set) {
      set = new Set();
      this.#watches.set(key, set);
    }
    set.add(watch);
    return watch;
  }

  /**
   * A watch of an exit known already but not kept here (say, `lost` for a run the backend does
   * not know): `onExit` is called with it on the next microtask, unless the watch is stopped first.
   */
  deliverLater(status: ExitStatus, onExit: (status: ExitStatus) => void): ExitWatch {
    const watch = this.#watch(undefined, onExit, undefined);
    queueMicrotask(() => watch.deliver(status));
    return watch;
  }

  /** Whether `key` has an open watch. */
  isWatched(key: K): boolean {
    return this.#watches.has(key);
  }

  /** The keys with open watches. */
  watchedKeys(): K[] {
    return [...this.#watches.keys()];
  }

  /** How many keys have open watches. */
  get watching(): number {
    return this.#watches.size;
  }

  /** Ends every open watch without calling its `onExit` (the backend is closing). */
  close(): void {
    const open = [...this.#watches.values()].flatMap((set) => [...set]);
    this.#watches.clear();
    for (const watch of open) {
      watch.done = true;
      watch.onEnd?.();
    }
  }

  /** A watch of `key` (none: a watch no settle reaches), not yet among the open ones. */
  #watch(
    key: K | undefined,
    onExit: (status: ExitStatus) => void,
    onEnd: (() => void) | undefined,
  ): Watch<K> {
    const watch: Watch<K> = {
      key,
      done: false,
      onEnd,
      deliver: (status) => {
        if (watch.done) return;
        this.#end(watch);
        if (!this.#onError) return onExit(status);
        try {
          onExit(status);
        } catch (error) {
          this.#onError(error);
        }
      },
      stop: () => this.#end(watch),
    };
    return watch;
  }

  #end(watch: Watch<K>): void {
    if (watch.done) return;
    watch.done = true;
    watch.onEnd?.();
    const set = watch.key === undefined ? undefined : this.#watches.get(watch.key);
    if (!set?.delete(watch)) return;
    if (set.size > 0) return;
    this.#watches.delete(watch.key as K);
    if (this.#watches.size === 0) this.#onIdle?.();
  }
}
