/**
 * The cleanups a backend is asked for in one tick, sent to its supervisor as one request: a
 * kernel destroying hundreds of stopped workloads at once costs one message each way, not
 * one round trip per workload. Each cleanup still resolves only once the supervisor has
 * done it (the Backend contract: nothing of the run stored once `cleanup` resolves).
 * @module
 */
import type { WireError } from "./protocol.js";

/** Sends the cleanups of `runIds` in one request; resolves with the runs that failed. */
export type SendCleanups = (runIds: string[]) => Promise<Array<{ runId: string; error: WireError }>>;

interface Waiting {
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Collects cleanups until the end of the tick, then sends them together. */
export class CleanupBatch {
  readonly #send: SendCleanups;
  readonly #toError: (error: WireError) => Error;
  /** The cleanups asked for since the last send, by run (one entry however often a run is asked for). */
  #waiting = new Map<string, Waiting>();

  /** `toError` turns the supervisor's error for one run into what its cleanup rejects with. */
  constructor(send: SendCleanups, toError: (error: WireError) => Error) {
    this.#send = send;
    this.#toError = toError;
  }

  /** Resolves once the supervisor has cleaned up `runId` (with the others asked for in this tick). */
  add(runId: string): Promise<void> {
    const known = this.#waiting.get(runId);
    if (known) return known.promise;
    if (this.#waiting.size === 0) process.nextTick(() => this.#flush());
    let settle: Pick<Waiting, "resolve" | "reject"> | undefined;
    const promise = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.#waiting.set(runId, { promise, ...(settle as Pick<Waiting, "resolve" | "reject">) });
    return promise;
  }

  #flush(): void {
    const batch = this.#waiting;
    this.#waiting = new Map();
    this.#send([...batch.keys()]).then(
      (failed) => {
        for (const { runId, error } of failed) {
          batch.get(runId)?.reject(this.#toError(error));
          batch.delete(runId);
        }
        for (const waiting of batch.values()) waiting.resolve();
      },
      (error: Error) => {
        for (const waiting of batch.values()) waiting.reject(error);
      },
    );
  }
}
