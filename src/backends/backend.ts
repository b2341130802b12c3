/**
 * The Backend port: the five methods through which the kernel drives a substrate
 * (processes, containers, Pods, or the in-memory fake), and the optional capabilities it
 * discovers at run time. A backend never imports the kernel; it only implements this
 * interface. Every backend is held to the contract below by `describeBackendConformance`
 * from `runtime-kernel/testing/vitest`.
 *
 * The contract is written once, here, and copied verbatim into docs/backend-port.md (a unit
 * test, test/unit/backends/port-docs.test.ts, fails when the two differ).
 *
 * <!-- contract:start -->
 * ### What the kernel promises a backend
 *
 * - `start` is called once per run (`runId`); the kernel never starts the same run twice.
 * - For one handle, `terminate`, `kill` and `cleanup` are never called concurrently: each
 *   call settles before the next is made. Other handles' calls, and `exitCode`, `watchExit`,
 *   `discover` and `logs`, may come at any time.
 * - `cleanup` may come in any state after `start` resolved: after the exit; right after
 *   `kill`, while the workload is still dying (an orphan found by `recover()`);
 *   on a run abandoned while it started (the kernel kills it, then cleans up at once); on a lost
 *   run. It must stop whatever is left, then reclaim it.
 * - The kernel owns timing and policy: it calls `terminate`, waits the grace period itself, then
 *   calls `kill`; it decides restarts. A backend never restarts a workload by itself.
 * - Without `watchExit`, the kernel polls `exitCode` of every running handle on one shared timer.
 * - A kernel restarted with the same `kernelId` passes a previous kernel's handles (or those
 *   `discover` returned) to a new instance of the backend.
 * - A `kill` that fails is retried every second; after three failures in a row, the kernel's
 *   `stop()` and `destroy()` reject with its error (the retries go on).
 *
 * ### What a backend promises the kernel
 *
 * - A handle is plain JSON: it survives `JSON.parse(JSON.stringify(handle))` and works with a
 *   new instance of the backend over the same substrate (a restarted kernel).
 * - Exit codes are real. A death by signal n is 128 + n (137 for SIGKILL, 143 for SIGTERM)
 *   with the signal's name in `ExitStatus.signal`; an OOM kill sets `oomKilled`. A run the
 *   substrate can no longer find, or whose end nobody saw, is `lost`.
 * - A signal reaches everything the workload started (its process group, its container): once
 *   `terminate` or `kill` has ended a run, none of its processes still runs.
 * - Nothing is left behind: a `start` that rejects, and a `cleanup` that resolves, leave no
 *   process, container, Pod, Secret, record or file of the run.
 * - `terminate`, `kill` and `cleanup` are idempotent, and succeed on a run that is gone.
 * - Errors are typed `RuntimeKernelError`s and never swallowed: a failed call rejects, and an
 *   API error is never reported as an exit.
 * - `StartRequest.env` holds secrets: never in a handle, a label, an error or a log line.
 * - `StartRequest.labels` are stored with the workload where the substrate holds labels
 *   (container labels, Pod labels and annotations), otherwise in the backend's own record of
 *   the run (a state file); `discover` returns them unchanged.
 * - Problems found outside any call (records on disk it skipped as untrustworthy, a store it
 *   cannot write) go to the listeners of `watchFaults`, if it offers it: the kernel emits them
 *   on its `error` event.
 *
 * ### Each method in each state of a run
 *
 * A run is *starting* until `start` settles, then *running* until it ends, *exited* once its
 * exit is known, *lost* when the substrate can no longer find it (or nobody saw its end), and
 * *cleaned up* once `cleanup` resolved.
 *
 * | method | starting | running | exited | lost | cleaned up |
 * | --- | --- | --- | --- | --- | --- |
 * | `start` | `signal` aborts: rejects `START_ABORTED`, even if the workload came up meanwhile; cannot start: rejects `START_FAILED` (or `BACKEND_UNAVAILABLE`, `RESOURCE_EXHAUSTED`); either way nothing is left | (never called twice for a run) | | | |
 * | `exitCode` | (no handle yet) | `null` | the code (128 + n for signal n) | rejects `WORKLOAD_LOST` | rejects `WORKLOAD_LOST` |
 * | `terminate` | (no handle yet) | delivers the graceful signal to all of the run and resolves at once; the exit follows (143) | resolves; the exit stays | resolves | resolves |
 * | `kill` | (no handle yet) | forces all of the run to end; the exit is 137 (SIGKILL) | resolves; the exit stays | resolves | resolves |
 * | `cleanup` | (no handle yet) | stops it, then reclaims everything; resolves once nothing is left | reclaims everything; resolves once nothing is left | reclaims what is left | resolves |
 * | `watchExit` | (no handle yet) | calls back once, when it ends | calls back once, with its exit | calls back once, with `{ exitCode: null, lost: true }` | calls back once, with `{ exitCode: null, lost: true }` |
 * | `discover` | may list it, `exit: null` | lists it, `exit: null` | lists it with its exit | lists it with `exit.lost` while anything of it is left, else not at all | does not list it |
 * | `logs` | (no handle yet) | what was written; `follow` yields new lines until the run ends | what was written; `follow` ends after it | what is left, or rejects `WORKLOAD_LOST`; `follow` ends | nothing (or what the backend keeps by design), or rejects `WORKLOAD_LOST`; `follow` ends |
 *
 * ### `watchExit`
 *
 * - `onExit` is called at most once, and never before `watchExit` has returned (the caller
 *   may not hold the unsubscribe function yet): an exit already known is delivered on a later
 *   tick (`queueMicrotask`, `setImmediate`).
 * - A run that already exited gets its exit, however long ago; a run that is gone gets
 *   `{ exitCode: null, lost: true }`. Several watches of one run are each called.
 * - After the returned function is called, `onExit` is never called; calling it again does nothing.
 * - When the substrate cannot be reached, `watchExit` keeps waiting (reconnecting) and reports
 *   the exit once it is known: an API error is never an exit.
 *
 * ### `logs`
 *
 * - Lines come in order within a stream, without their newline. `tail: n` gives only the last
 *   n lines written before the call, per stream (a backend that cannot tell the streams apart
 *   counts them together).
 * - Without `follow`, the iterable ends after what was written. With `follow`, it yields new
 *   lines until the run has ended and its output is drained, or until `signal` aborts: then it
 *   ends quietly, without an error.
 *
 * ### The event loop, and `close()`
 *
 * - An open `watchExit` keeps the host's event loop alive (a ref'd socket or timer) until it
 *   calls back or is cancelled: a script that awaits an exit does not end before it, leaving
 *   the workload unwatched.
 * - Nothing else should: a workload never keeps the host alive by itself (children are
 *   `unref()`ed, or belong to a supervisor), and an idle backend holds no ref'd handle. A
 *   backend that must hold a connection between calls releases it in `close()`.
 * - `close()` releases connections, watches and timers. Pending `watchExit` callbacks are never
 *   called. Workloads keep running, for a later instance to recover through `discover` and
 *   their handles. The backend is not used afterwards; `kernel.shutdown()` calls it last.
 * <!-- contract:end -->
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
  /** The workload's id: a DNS-1123 label (lowercase letters, digits and `-`, at most 63 characters). */
  workloadId: string;
  /** Unique per run: a restart or a respawn gets a new one. */
  runId: string;
  /** The kernel profile the workload was created from (backends may key their own settings on it). */
  profile: string;
  /** Who the workload is for, when the spec said. */
  owner?: string;
  /** What to run. */
  runnable: Runnable;
  /**
   * The complete environment: profile env, spec env and brokered credentials. Contains
   * secrets: never log it, never put it in labels or handles.
   */
  env: Record<string, string>;
  /** What the workload may use, when the spec or profile said. */
  resources?: Resources;
  /** A host directory the workload may use as its workspace, if the spec gave one. */
  workspace?: string;
  /**
   * Host directories to give the workload, in order (the profile's fixed mounts, then the
   * spec's), already checked by the kernel against the profile's mount roots. A workload's
   * filesystem should hold only these (and its workspace) of the host's data.
   */
  mounts?: WorkloadMount[];
  /**
   * What the backend stores with the workload so that `discover` can find it again and return
   * them unchanged: as labels where the substrate has them, else in its own record of the run.
   */
  labels: Record<string, string>;
}

/**
 * A host directory given to a workload at a path of its own (`StartRequest.mounts`). The
 * kernel has checked it: `source` is absolute with symbolic links resolved (unless the
 * profile's roots are not on the kernel's host), and lies in `root`.
 */
export interface WorkloadMount {
  /** The host directory. */
  source: string;
  /** Where the workload sees it: an absolute path inside the workload. */
  target: string;
  /** Whether the workload may only read it. */
  readOnly: boolean;
  /** The profile's mount root that `source` lies in (a backend may map each root to a volume). */
  root: string;
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
  /** A handle that drives the run, as `start` would have returned it. */
  handle: H;
  /** The labels given at start (see `LABELS`). */
  labels: Record<string, string>;
  /** `null` while it still runs; its exit status when it ended while no kernel watched. */
  exit: ExitStatus | null;
}

/** One line of a workload's output. */
export interface LogEntry {
  /** The stream the line was written to (`stdout` when the backend cannot tell). */
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
  /** Only the last `tail` lines of what was already written, per stream. */
  tail?: number;
  /** Ends the iterable (quietly) when it aborts. */
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
   * nothing behind. If `signal` aborts before it settles, rejects with `START_ABORTED` and
   * reclaims whatever it had created, even a workload that came up meanwhile.
   */
  start(request: StartRequest, options: { signal: AbortSignal }): Promise<H>;

  /**
   * The run's exit code, `null` while it runs. A death by signal n reports 128 + n.
   * Rejects with `WORKLOAD_LOST` when the run is lost or cleaned up, and with another code
   * when it cannot tell (never guesses an exit).
   */
  exitCode(handle: H): Promise<number | null>;

  /**
   * Asks the workload, and everything it started, to stop gracefully (SIGTERM or the
   * substrate's equivalent) and returns promptly: the kernel times the grace period and
   * calls `kill` after it. `graceMs` is for substrates that escalate by themselves.
   * Idempotent; resolves on a run that exited, is lost or was cleaned up.
   */
  terminate(handle: H, options: { graceMs: number }): Promise<void>;

  /** Forces the workload to stop (SIGKILL to everything it started). Idempotent; resolves on a run that is gone. */
  kill(handle: H): Promise<void>;

  /**
   * Reclaims everything the run holds (processes, container, Pod, Secrets, records, files).
   * May come while the workload still runs or is dying from `kill`: it stops what is left
   * first. Resolves only once nothing is left. Idempotent: cleanup of something already gone
   * succeeds. Rejects with `CLEANUP_FAILED` (`retryable` when transient).
   */
  cleanup(handle: H): Promise<void>;

  /**
   * Optional: pushes the exit as soon as the substrate reports it, instead of the
   * kernel polling `exitCode`. Calls `onExit` at most once, never before returning; a run
   * that already ended gets its exit (or `lost`). Returns an unsubscribe function. An open
   * watch keeps the host's event loop alive.
   */
  watchExit?(handle: H, onExit: (status: ExitStatus) => void): () => void;

  /** Optional: lists the workloads this backend holds for `kernelId`, for `kernel.recover()`. */
  discover?(selector: { kernelId: string }): Promise<DiscoveredWorkload<H>[]>;

  /** Optional: streams the run's output, line by line (`tail` per stream; `follow` ends with the run or `signal`). */
  logs?(handle: H, options: LogOptions): AsyncIterable<LogEntry>;

  /**
   * Optional: reports problems the backend finds by itself, outside any call (for example
   * records on disk it skipped because it could not trust them). The kernel emits them on its
   * `error` event. Returns an unsubscribe function.
   */
  watchFaults?(onFault: (error: Error) => void): () => void;

  /**
   * Optional: releases connections, watches and timers the backend holds; pending `watchExit`
   * callbacks are never called. Workloads keep running, for a later instance to recover.
   */
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
  /** The spec's `traceId`, absent when it had none: a recovered workload keeps its trace. */
  traceId: "runtime-kernel.dev/trace-id",
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
