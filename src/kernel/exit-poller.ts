/**
 * The fallback for backends without `watchExit`: one shared timer polls `exitCode` of
 * every running handle of the backend, a bounded number at a time. Never one timer
 * per workload.
 * @module
 */
import type { Backend, ExitStatus, WorkloadHandle } from "../backends/backend.js";
import { signalForExitCode } from "../backends/backend.js";
import { isRuntimeKernelError } from "../errors.js";
import type { ScheduledTask, Scheduler } from "./scheduler.js";

/**
 * Asks the backend once how a run stands: `null` while it runs, else its exit status (with
 * the signal's name for 128 + n, and `lost` when the backend can no longer find it).
 * Other errors reject.
 */
export async function probeExit(backend: Backend, handle: WorkloadHandle): Promise<ExitStatus | null> {
  let code: number | null;
  try {
    code = await backend.exitCode(handle);
  } catch (error) {
    if (isRuntimeKernelError(error, "WORKLOAD_LOST")) return { exitCode: null, lost: true };
    throw error;
  }
  if (code === null) return null;
  const signal = signalForExitCode(code);
  return { exitCode: code, ...(signal ? { signal } : {}) };
}

/** Something to poll: its handle, and where to report the exit. */
export interface PollTarget {
  handle: WorkloadHandle;
  onExit(status: ExitStatus): void;
  onError(error: unknown): void;
}

/** Polls `backend.exitCode` for all targets on one shared timer. */
export class ExitPoller {
  readonly #targets = new Set<PollTarget>();
  readonly #backend: Backend;
  readonly #scheduler: Scheduler;
  readonly #intervalMs: number;
  readonly #concurrency: number;
  #task: ScheduledTask | undefined;
  #polling = false;

  constructor(backend: Backend, scheduler: Scheduler, intervalMs: number, concurrency = 16) {
    this.#backend = backend;
    this.#scheduler = scheduler;
    this.#intervalMs = intervalMs;
    this.#concurrency = concurrency;
  }

  add(target: PollTarget): void {
    this.#targets.add(target);
    if (!this.#task && !this.#polling)
      this.#task = this.#scheduler.after(this.#intervalMs, () => this.#poll());
  }

  delete(target: PollTarget): void {
    this.#targets.delete(target);
    if (this.#targets.size === 0 && this.#task) {
      this.#task.cancel();
      this.#task = undefined;
    }
  }

  async #poll(): Promise<void> {
    this.#task = undefined;
    this.#polling = true;
    const queue = [...this.#targets];
    let next = 0;
    const worker = async () => {
      for (let target = queue[next++]; target; target = queue[next++]) {
        if (!this.#targets.has(target)) continue;
        try {
          const status = await probeExit(this.#backend, target.handle);
          if (status === null || !this.#targets.has(target)) continue;
          this.#targets.delete(target);
          target.onExit(status);
        } catch (error) {
          if (this.#targets.has(target)) target.onError(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, queue.length) }, worker));
    this.#polling = false;
    if (this.#targets.size > 0) this.#task = this.#scheduler.after(this.#intervalMs, () => this.#poll());
  }

  /** Stops polling. */
  close(): void {
    this.#task?.cancel();
    this.#task = undefined;
    this.#targets.clear();
  }
}
