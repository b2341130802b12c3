/**
 * The Backend port: the five methods through which the kernel drives a substrate
 * (processes, containers, Pods, or the in-memory fake). A backend never imports the
 * kernel; it only implements this interface. Every backend is held to the same
 * contract by `describeBackendConformance` from `runtime-kernel/testing/vitest`.
 *
 * What the kernel promises a backend:
 * - `start` is called once per run (`runId`); the kernel never starts the same run twice.
 * - For one handle, `terminate`, `kill` and `cleanup` are never called concurrently:
 *   the kernel waits for each call to settle before the next one.
 * - `cleanup` is only called once the workload is known to have stopped (its exit was
 *   observed, or `kill` was confirmed), except for a handle whose start the kernel
 *   abandoned, and during recovery of an orphan.
 * - The kernel owns every policy: timing of the grace period, restarts, reaping. A
 *   backend never restarts a workload by itself.
 *
 * What a backend promises the kernel:
 * - A handle is plain JSON: it survives `JSON.parse(JSON.stringify(handle))` and a
 *   kernel restart, and still works with every method.
 * - `terminate`, `kill` and `cleanup` are idempotent; `cleanup` of something already
 *   gone succeeds.
 * - Errors are typed ({@link RuntimeKernelError} codes) and never swallowed: a failed
 *   call rejects; an API error is never reported as an exit.
 * - Secrets passed in `StartRequest.env` never appear in the handle, in errors or in logs
 *   the backend writes.
 * @module
 */

/** The JSON handle a backend returns from `start`; it identifies one run. */
export interface WorkloadHandle {
  /** The workload's id, as given in the {@link StartRequest}. */
  workloadId: string;
  /** The run's id, as given in the {@link StartRequest}. */
  runId: string;
  /** The backend's `name`. */
  backend: string;
  /** Host-reachable addresses the workload exposes, by name (for example `{ http: "127.0.0.1:49153" }`). */
  ports?: Record<string, string>;
  /** Anything else the backend needs to find the workload again; must be plain JSON. */
  [key: string]: unknown;
}

/** What to run. Backends read the fields they understand and ignore the rest. */
export interface Runnable {
  /** argv (never a shell string). For images, overrides the image's command. */
  command?: string[];
  /** Container image, for backends that run images. */
  image?: string;
  /** Working directory inside the workload. */
  cwd?: string;
  /** Backend-specific extras (for example the fake backend's `fake` behaviour). */
  [extra: string]: unknown;
}

/** Requested resources; backends enforce what their substrate can. */
export interface Resources {
  /** CPU cores (fractions allowed). */
  cpu?: number;
  /** Memory limit in MiB. */
  memoryMb?: number;
  /** Number of GPUs. */
  gpu?: number;
  /** Maximum number of processes/threads. */
  pids?: number;
}

/** Everything a backend needs to start one run of a workload. */
export interface StartRequest {
  /** The kernel's identity; backends attach it so `discover` can find this kernel's workloads. */
  kernelId: string;
  workloadId: string;
  /** Unique per run: a restart or a respawn gets a new one. */
  runId: string;
  profile: string;
  owner?: string;
  runnable: Runnable;
  /**
   * The complete environment: profile env, spec env and brokered credentials. Contains
   * secrets: never log it, never put it in labels or handles.
   */
  env: Record<string, string>;
  resources?: Resources;
  /** A host directory the workload may use as its workspace, if the spec gave one. */
  workspace?: string;
  /** What the backend must attach to the workload so that `discover` can find it again. */
  labels: Record<string, string>;
}

/** How a run ended. */
export interface ExitStatus {
  /** The exit code; a death by signal n reports 128 + n. `null` when unknown (lost). */
  exitCode: number | null;
  /** The signal's name (for example `SIGKILL`) when a signal ended it. */
  signal?: string;
  /** The substrate killed it for exceeding its memory limit. */
  oomKilled?: boolean;
  /** The backend can no longer find it; `exitCode` is then `null`. */
  lost?: boolean;
}

/** A workload found by {@link Backend.discover}, to be re-adopted by a recovering kernel. */
export interface DiscoveredWorkload<H extends WorkloadHandle = WorkloadHandle> {
  handle: H;
  /** The labels given at start (see `LABELS`). */
  labels: Record<string, string>;
  /** `null` while it still runs; its exit status when it ended while no kernel watched. */
  exit: ExitStatus | null;
}

/** One line of a workload's output. */
export interface LogEntry {
  stream: "stdout" | "stderr";
  /** The line, without its trailing newline. */
  line: string;
  /** Epoch milliseconds, when the backend knows it. */
  at?: number;
}

/** Options of {@link Backend.logs}. */
export interface LogOptions {
  /** Keep the stream open and yield new lines until the workload ends or `signal` aborts. */
  follow?: boolean;
  /** Only the last `tail` lines of what was already written. */
  tail?: number;
  signal?: AbortSignal;
}

/**
 * The port every backend implements. Five required methods; the optional ones are
 * capabilities the kernel discovers at run time.
 */
export interface Backend<H extends WorkloadHandle = WorkloadHandle> {
  /** A short stable name, recorded in every handle (`handle.backend`). */
  readonly name: string;

  /**
   * Starts one run and resolves once the workload exists and is running (or has already
   * exited: the kernel then learns its exit at once). Rejects with a typed error
   * (`START_FAILED`, `BACKEND_UNAVAILABLE`, `RESOURCE_EXHAUSTED`, ...) and leaves
   * nothing behind. If `signal` aborts, rejects with `START_ABORTED` and reclaims
   * whatever it had created.
   */
  start(request: StartRequest, options: { signal: AbortSignal }): Promise<H>;

  /**
   * The run's exit code, `null` while it runs. A death by signal n reports 128 + n.
   * Rejects with `WORKLOAD_LOST` when the backend can no longer find it, and with
   * another code when it cannot tell (never guesses an exit).
   */
  exitCode(handle: H): Promise<number | null>;

  /**
   * Asks the workload to stop gracefully (SIGTERM or the substrate's equivalent) and
   * returns promptly: the kernel times the grace period and calls `kill` after it.
   * `graceMs` is for substrates that escalate by themselves. Idempotent; succeeds on
   * a workload that already exited.
   */
  terminate(handle: H, options: { graceMs: number }): Promise<void>;

  /** Forces the workload to stop (SIGKILL to everything it started). Idempotent. */
  kill(handle: H): Promise<void>;

  /**
   * Reclaims everything the run holds (container, Pod, secrets, files, processes).
   * Idempotent: cleanup of something already gone succeeds. Resolves only once the
   * resources are gone. Rejects with `CLEANUP_FAILED` (`retryable` when transient).
   */
  cleanup(handle: H): Promise<void>;

  /**
   * Optional: pushes the exit as soon as the substrate reports it, instead of the
   * kernel polling `exitCode`. Calls `onExit` at most once. Returns an unsubscribe function.
   */
  watchExit?(handle: H, onExit: (status: ExitStatus) => void): () => void;

  /** Optional: lists the workloads this backend holds for `kernelId`, for `kernel.recover()`. */
  discover?(selector: { kernelId: string }): Promise<DiscoveredWorkload<H>[]>;

  /** Optional: streams the run's output, line by line. */
  logs?(handle: H, options: LogOptions): AsyncIterable<LogEntry>;

  /**
   * Optional: reports problems the backend finds by itself, outside any call (for example
   * records on disk it skipped because it could not trust them). The kernel emits them on its
   * `error` event. Returns an unsubscribe function.
   */
  watchFaults?(onFault: (error: Error) => void): () => void;

  /** Optional: releases connections, watches and timers the backend holds. */
  close?(): Promise<void>;
}

/**
 * Label keys the kernel attaches to every workload (through `StartRequest.labels`).
 * Backends store them with the workload and return them from `discover`.
 */
export const LABELS = {
  kernelId: "runtime-kernel.dev/kernel-id",
  workloadId: "runtime-kernel.dev/workload-id",
  runId: "runtime-kernel.dev/run-id",
  owner: "runtime-kernel.dev/owner",
  profile: "runtime-kernel.dev/profile",
  /** Epoch ms of the hard max-lifetime deadline, or absent when disabled. */
  maxLifetimeAt: "runtime-kernel.dev/max-lifetime-at",
  /** Epoch ms at which the run was created. */
  createdAt: "runtime-kernel.dev/created-at",
  /** The restart attempt (1, 2, ...) of this run, absent for the first run. */
  restart: "runtime-kernel.dev/restart",
} as const;

/** The signal numbers of Linux, for turning `128 + n` into a name and back. */
const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGXCPU: 24,
  SIGXFSZ: 25,
};

/** The exit code a shell, Docker and Kubernetes report for a death by `signal`: 128 + n. */
export function exitCodeForSignal(signal: string): number {
  const n = SIGNALS[signal];
  if (n === undefined) throw new RangeError(`Unknown signal ${signal}`);
  return 128 + n;
}

/** The signal name behind an exit code above 128, if it is a known one. */
export function signalForExitCode(code: number | null): string | undefined {
  if (code === null || code <= 128) return undefined;
  const n = code - 128;
  return Object.keys(SIGNALS).find((name) => SIGNALS[name] === n);
}
