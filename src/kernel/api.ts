/**
 * The host-facing kernel's interface and the options of its calls. Owns the public contract
 * only; the implementation is kernel.ts, and nothing here may import it.
 * @module
 */
import type { Backend, LogEntry, LogOptions } from "../backends/backend.js";
import type { EventStreamOptions, KernelEventMap } from "./events.js";
import type {
  ListFilter,
  RecoveryReport,
  RequestedStopReason,
  TransitionEvent,
  WorkloadSpec,
  WorkloadState,
  WorkloadStatus,
} from "./types.js";

/** Options of `kernel.stop()`. */
export interface StopOptions {
  /** Default `requested`. */
  reason?: RequestedStopReason;
  /** Overrides the grace between terminate and kill; 0 kills at once. */
  graceMs?: number;
}

/** Options of `kernel.shutdown()`. */
export interface ShutdownOptions {
  /** Leave workloads running for a later `recover()` instead of stopping and reclaiming them. */
  leaveRunning?: boolean;
  /** Grace for the stops (default: each workload's own). */
  graceMs?: number;
}

/** The host-facing kernel. Create it with `createRuntimeKernel()`. */
export interface RuntimeKernel extends AsyncDisposable {
  /** This kernel's identity, attached to every workload it starts. */
  readonly kernelId: string;
  /** The backend it drives. */
  readonly backend: Backend;
  /**
   * Starts a workload and resolves with its status once it is `running`. Idempotent on
   * `workloadId`: while starting or running it returns the live run (counting as activity,
   * charging no quota); on a stopped one it reclaims the old run and starts a new `runId`.
   * Rejects with `INVALID_SPEC`, `QUOTA_EXCEEDED`, `WORKLOAD_CONFLICT` (another owner's id) or
   * `START_FAILED`.
   */
  create(spec: WorkloadSpec): Promise<WorkloadStatus>;
  /** The workload's status, or `undefined` if the kernel does not know it (never started, or destroyed). */
  get(workloadId: string): WorkloadStatus | undefined;
  /** Statuses of known workloads, filtered. */
  list(filter?: ListFilter): WorkloadStatus[];
  /** Records activity: pushes the idle deadline back. Throws `WORKLOAD_NOT_FOUND`. */
  touch(workloadId: string): void;
  /** Stops the workload and resolves once it is `stopped`. Stopping a stopped workload resolves at once. */
  stop(workloadId: string, options?: StopOptions): Promise<WorkloadStatus>;
  /** Stops (if live) and reclaims the workload; resolves once cleanup is confirmed (`destroyed`). */
  destroy(workloadId: string, options?: { graceMs?: number }): Promise<void>;
  /**
   * Resolves once the workload reaches `state` or a later one. Waiting for `running`
   * rejects with `START_FAILED` if the run stopped without ever running.
   */
  waitFor(
    workloadId: string,
    state: WorkloadState,
    options?: { signal?: AbortSignal },
  ): Promise<WorkloadStatus>;
  /** An async iterator of transition events. */
  events(options?: EventStreamOptions): AsyncIterableIterator<TransitionEvent>;
  /**
   * The `seq` of the last transition event published (0 before the first). A later
   * `events({ sinceSeq: lastEventSeq })` misses nothing from this point that is still retained.
   */
  readonly lastEventSeq: number;
  /** The current run's output, if the backend can stream it (`UNSUPPORTED` otherwise). */
  logs(workloadId: string, options?: LogOptions): AsyncIterable<LogEntry>;
  /** Re-adopts what the backend can discover for this `kernelId`, reports missed exits, reaps leftovers. */
  recover(): Promise<RecoveryReport>;
  /** Stops and reclaims every workload (or leaves them for recovery), then releases the backend. */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /** Subscribes to an event; see {@link KernelEventMap}. */
  on<E extends keyof KernelEventMap>(event: E, listener: (...args: KernelEventMap[E]) => void): this;
  /** Subscribes once. */
  once<E extends keyof KernelEventMap>(event: E, listener: (...args: KernelEventMap[E]) => void): this;
  /** Unsubscribes. */
  off<E extends keyof KernelEventMap>(event: E, listener: (...args: KernelEventMap[E]) => void): this;
}
