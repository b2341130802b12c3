/**
 * The callers waiting on one workload (`create`, `stop`, `destroy`, `waitFor`), each for a
 * state. Owns the list and its abort signals; it must not decide whether a wait is settled:
 * the kernel passes that decision in.
 * @module
 */
import type { WorkloadState, WorkloadStatus } from "./types.js";

/** How a wait ends: with the status it waited for, or with an error. */
export type Settlement = { ok: true; status: WorkloadStatus } | { ok: false; error: unknown };

interface Waiter {
  target: WorkloadState;
  resolve(status: WorkloadStatus): void;
  reject(error: unknown): void;
}

/** The pending waits of one workload. */
export class Waiters {
  #list: Waiter[] | undefined;

  /** A wait for `target`, pending until {@link settle} or {@link reject} decides it, or `signal` aborts it. */
  add(target: WorkloadState, signal?: AbortSignal): Promise<WorkloadStatus> {
    return new Promise<WorkloadStatus>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const waiter: Waiter = { target, resolve, reject };
      if (signal) {
        const onAbort = () => {
          this.#list = this.#list?.filter((w) => w !== waiter);
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        waiter.resolve = (s) => {
          signal.removeEventListener("abort", onAbort);
          resolve(s);
        };
        waiter.reject = (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        };
      }
      (this.#list ??= []).push(waiter);
    });
  }

  /** Ends every wait that `decide` settles; the others stay pending. */
  settle(decide: (target: WorkloadState) => Settlement | undefined): void {
    const list = this.#list;
    if (!list) return;
    // Compacted in place: this runs on every transition, and most leave every wait pending.
    // (Settling a promise runs no code now, so nothing can change the list meanwhile.)
    let kept = 0;
    for (const waiter of list) {
      const settled = decide(waiter.target);
      if (!settled) list[kept++] = waiter;
      else if (settled.ok) waiter.resolve(settled.status);
      else waiter.reject(settled.error);
    }
    list.length = kept;
    if (kept === 0) this.#list = undefined;
  }

  /** Rejects the waits for `target`. */
  reject(target: WorkloadState, error: unknown): void {
    if (!this.#list) return;
    const pending = this.#list.filter((w) => w.target !== target);
    for (const w of this.#list) if (w.target === target) w.reject(error);
    this.#list = pending.length > 0 ? pending : undefined;
  }

  /** Rejects every wait: no transition will settle them any more. */
  rejectAll(error: unknown): void {
    for (const waiter of this.#list ?? []) waiter.reject(error);
    this.#list = undefined;
  }
}
