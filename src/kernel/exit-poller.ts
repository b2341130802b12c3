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
          const code = await this.#backend.exitCode(target.handle);
          if (code === null || !this.#targets.has(target)) continue;
          this.#targets.delete(target);
          const signal = signalForExitCode(code);
          target.onExit({ exitCode: code, ...(signal ? { signal } : {}) });
        } catch (error) {
          if (!this.#targets.has(target)) continue;
          if (isRuntimeKernelError(error, "WORKLOAD_LOST")) {
            this.#targets.delete(target);
            target.onExit({ exitCode: null, lost: true });
          } else target.onError(error);
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
