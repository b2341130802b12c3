/**
 * One watch over every Pod of a label selector, shared by all the workloads of a backend: the
 * kernel learns exits from it instead of polling each Pod. It lists once, then watches from the
 * list's resourceVersion; resumes from the last resourceVersion it saw after the server ends a
 * watch or the connection drops; relists when the server answers 410 Gone (the version is too
 * old); and relists every `resyncMs` anyway, so anything missed is caught.
 * @module
 */
import type { V1Pod } from "./models.js";

/** What the watch needs from the API server (real: {@link KubeApi}; tests: a fake). */
export interface PodWatchTransport {
  list(): Promise<{ items: V1Pod[]; resourceVersion: string }>;
  /** Opens one watch from `resourceVersion`; must call `onEnd` exactly once. */
  watch(
    resourceVersion: string,
    handlers: {
      onEvent(type: string, object: unknown): void;
      onEnd(result: { status?: number; error?: unknown }): void;
    },
  ): { abort(): void };
}

/** Timers of the watch; injectable so tests drive time. */
export interface PodWatchTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of {@link PodWatch}. */
export interface PodWatchOptions {
  /** Period of the safety relist. */
  resyncMs: number;
  /** A watch with no event nor bookmark for this long is taken as dropped. */
  idleMs: number;
  reconnectMs: { initial: number; max: number };
  timers?: PodWatchTimers;
  /** Called on failures the watch recovers from by itself (for diagnosis). */
  onError?(error: unknown): void;
}

/** Called with the Pod's latest state, or `undefined` and its last known state when it is gone. */
export type PodListener = (pod: V1Pod | undefined, last: V1Pod | undefined) => void;

/** Counters of what the watch did (for tests and the benchmark). */
export interface PodWatchStats {
  lists: number;
  watches: number;
  /** Relists forced by 410 Gone. */
  expired: number;
  /** Watches that ended in an error (dropped connection, stalled stream, server error). */
  dropped: number;
  events: number;
}

const defaultTimers: PodWatchTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

type Outcome = "closed" | "expired" | "error" | "resync";

/** The shared Pod watch of one selector. */
export class PodWatch {
  /** The latest known state of every Pod of the selector, by name. */
  readonly pods = new Map<string, V1Pod>();
  readonly stats: PodWatchStats = { lists: 0, watches: 0, expired: 0, dropped: 0, events: 0 };
  readonly #listeners = new Map<string, Set<PodListener>>();
  readonly #goneListeners = new Set<(name: string, last: V1Pod) => void>();
  readonly #transport: PodWatchTransport;
  readonly #options: PodWatchOptions;
  readonly #timers: PodWatchTimers;
  #resourceVersion = "";
  #running = false;
  #closed = false;
  #synced = false;
  #syncWaiters: { resolve(): void; reject(e: unknown): void }[] = [];
  #current: { end(outcome: Outcome): void } | undefined;
  /** Whether the current watch delivered anything: a watch that worked resets the backoff. */
  #delivered = false;
  #sleeping: { timer: unknown; wake(): void } | undefined;
  #lastListAt = 0;

  constructor(transport: PodWatchTransport, options: PodWatchOptions) {
    this.#transport = transport;
    this.#options = options;
    this.#timers = options.timers ?? defaultTimers;
  }

  /** Whether the first list has completed (the cache is authoritative from then on). */
  get isSynced(): boolean {
    return this.#synced;
  }

  /**
   * Starts the watch if it is not running and resolves once the cache is synced. Rejects if the
   * first list fails (the next call tries again).
   */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("The Pod watch is closed"));
    if (this.#synced) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.#syncWaiters.push({ resolve, reject }));
    if (!this.#running) {
      this.#running = true;
      void this.#loop();
    }
    return p;
  }

  /** Subscribes to one Pod by name. Returns the unsubscribe function. */
  subscribe(name: string, listener: PodListener): () => void {
    let set = this.#listeners.get(name);
    if (!set) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener);
    return () => {
      const s = this.#listeners.get(name);
      if (!s) return;
      s.delete(listener);
      if (s.size === 0) this.#listeners.delete(name);
    };
  }

  /** Listens to the removal of every Pod (called before the Pod's own subscribers). */
  onGone(listener: (name: string, last: V1Pod) => void): () => void {
    this.#goneListeners.add(listener);
    return () => this.#goneListeners.delete(listener);
  }

  /** Forces a relist now (used after a missed deletion is suspected). */
  resync(): void {
    this.#lastListAt = 0;
    this.#current?.end("resync");
  }

  /** Stops watching; pending `ready()` calls reject. */
  close(): void {
    this.#closed = true;
    this.#current?.end("closed");
    this.#sleeping?.wake();
    for (const w of this.#syncWaiters.splice(0)) w.reject(new Error("The Pod watch is closed"));
  }

  #notify(name: string, pod: V1Pod | undefined, last: V1Pod | undefined): void {
    if (pod === undefined && last !== undefined)
      for (const listener of [...this.#goneListeners]) {
        try {
          listener(name, last);
        } catch (error) {
          this.#options.onError?.(error);
        }
      }
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(pod, last);
      } catch (error) {
        this.#options.onError?.(error);
      }
    }
  }

  #apply(type: string, pod: V1Pod): void {
    const name = pod.metadata?.name;
    if (!name) return;
    const last = this.pods.get(name);
    if (type === "DELETED") {
      this.pods.delete(name);
      this.#notify(name, undefined, pod);
      return;
    }
    this.pods.set(name, pod);
    this.#notify(name, pod, last);
  }

  async #relist(): Promise<void> {
    this.stats.lists++;
    const { items, resourceVersion } = await this.#transport.list();
    this.#lastListAt = Date.now();
    const seen = new Set<string>();
    for (const pod of items) {
      const name = pod.metadata?.name;
      if (!name) continue;
      seen.add(name);
      const last = this.pods.get(name);
      if (last?.metadata?.resourceVersion === pod.metadata?.resourceVersion && last !== undefined) continue;
      this.pods.set(name, pod);
      this.#notify(name, pod, last);
    }
    // Whatever the watch missed being deleted is gone now.
    for (const [name, last] of [...this.pods]) {
      if (seen.has(name)) continue;
      this.pods.delete(name);
      this.#notify(name, undefined, last);
    }
    this.#resourceVersion = resourceVersion;
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w.resolve();
    }
  }

  #watchOnce(): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let done = false;
      let idle: unknown;
      let resync: unknown;
      const finish = (outcome: Outcome) => {
        if (done) return;
        done = true;
        this.#timers.clearTimeout(idle);
        this.#timers.clearTimeout(resync);
        this.#current = undefined;
        handle.abort();
        resolve(outcome);
      };
      const armIdle = () => {
        this.#timers.clearTimeout(idle);
        idle = this.#timers.setTimeout(() => {
          this.#options.onError?.(new Error("The Pod watch stalled: no event for too long"));
          finish("error");
        }, this.#options.idleMs);
      };
      const untilResync = Math.max(0, this.#options.resyncMs - (Date.now() - this.#lastListAt));
      resync = this.#timers.setTimeout(() => finish("resync"), untilResync);
      this.stats.watches++;
      const handle = this.#transport.watch(this.#resourceVersion, {
        onEvent: (type, object) => {
          if (done) return;
          this.#delivered = true;
          armIdle();
          const obj = object as { code?: number; metadata?: { resourceVersion?: string } } | undefined;
          if (type === "ERROR") {
            if (obj?.code === 410) return finish("expired");
            this.#options.onError?.(new Error(`The Pod watch got an error event: ${JSON.stringify(object)}`));
            return finish("error");
          }
          const rv = obj?.metadata?.resourceVersion;
          if (rv) this.#resourceVersion = rv;
          if (type === "BOOKMARK") return;
          this.stats.events++;
          this.#apply(type, object as V1Pod);
        },
        onEnd: ({ status, error }) => {
          if (done) return;
          if (status === 410) return finish("expired");
          if (error !== undefined || (status !== undefined && status !== 200)) {
            this.#options.onError?.(error ?? new Error(`The Pod watch ended with HTTP ${status}`));
            return finish("error");
          }
          finish("closed");
        },
      });
      this.#current = { end: finish };
      if (this.#closed) finish("closed");
      else armIdle();
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.#timers.clearTimeout(timer);
        this.#sleeping = undefined;
        resolve();
      };
      const timer = this.#timers.setTimeout(wake, ms);
      this.#sleeping = { timer, wake };
    });
  }

  async #loop(): Promise<void> {
    let backoff = this.#options.reconnectMs.initial;
    let needList = true;
    while (!this.#closed) {
      if (needList) {
        try {
          await this.#relist();
          needList = false;
        } catch (error) {
          if (!this.#synced) {
            // Nobody is served by a watch that never synced: report and stop until asked again.
            this.#running = false;
            for (const w of this.#syncWaiters.splice(0)) w.reject(error);
            return;
          }
          this.#options.onError?.(error);
          await this.#sleep(backoff);
          backoff = Math.min(backoff * 2, this.#options.reconnectMs.max);
          continue;
        }
      }
      this.#delivered = false;
      const outcome = await this.#watchOnce();
      if (this.#delivered) backoff = this.#options.reconnectMs.initial;
      if (this.#closed) break;
      if (outcome === "expired") {
        this.stats.expired++;
        needList = true;
      } else if (outcome === "resync") {
        needList = true;
      } else if (outcome === "error") {
        this.stats.dropped++;
        await this.#sleep(backoff);
        backoff = Math.min(backoff * 2, this.#options.reconnectMs.max);
        continue;
      }
      backoff = this.#options.reconnectMs.initial;
    }
    this.#running = false;
  }
}
