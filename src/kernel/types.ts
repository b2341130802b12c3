/**
 * The kernel's public vocabulary: states, stop reasons, statuses and transition events.
 * @module
 */
import type { Resources, Runnable } from "../backends/backend.js";
import type { SerializedError } from "../errors.js";

/** The five states of the runtime.v1 lifecycle, in order. */
export const WORKLOAD_STATES = ["starting", "running", "stopping", "stopped", "destroyed"] as const;

/** A state of the runtime.v1 lifecycle. */
export type WorkloadState = (typeof WORKLOAD_STATES)[number];

/**
 * Why a run stopped.
 * - `requested`: `stop()` or `destroy()`.
 * - `idle_timeout`, `max_lifetime`: the kernel's policies.
 * - `shutdown`: `kernel.shutdown()`.
 * - `completed` (exit 0), `failed` (non-zero), `oom`, `lost`: the workload ended by itself.
 * - `start_failed`: the backend could not start it.
 */
export type StopReason =
  | "requested"
  | "idle_timeout"
  | "max_lifetime"
  | "shutdown"
  | "completed"
  | "failed"
  | "oom"
  | "lost"
  | "start_failed";

/** The stop reasons a caller may give to `stop()`. */
export type RequestedStopReason = "requested" | "idle_timeout" | "max_lifetime" | "shutdown";

/** Restart policy of a profile. Each restart is a new run (`runId`); the substrate never restarts by itself. */
export interface RestartPolicy {
  /** `never` (default) or `on-failure`: after `failed`, `oom` or `lost`. */
  policy: "never" | "on-failure";
  /** The most restarts of one workload (default 3). */
  maxRestarts?: number;
  /** The first backoff (default 1,000 ms), doubled at each restart. */
  backoffMs?: number;
  /** The longest backoff (default 60,000 ms). */
  maxBackoffMs?: number;
}

/**
 * A host directory given to a workload. Backends that run workloads in their own filesystem
 * (sandboxed processes, containers, Pods) show it at `target` and nothing else of the host's
 * data; see docs/isolation.md.
 */
export interface Mount {
  /** An absolute host path (for a spec's mounts, inside one of the profile's `mountRoots`). */
  source: string;
  /** Where the workload sees it: an absolute, normalized path inside the workload. */
  target: string;
  /** The workload may only read it. Default false. */
  readOnly?: boolean;
}

/** Named defaults that a spec refers to by `profile`. */
export interface Profile {
  /** What to run. A spec's `runnable` is merged over it. */
  runnable: Runnable;
  /** Environment given to every workload of the profile (no secrets: use a `CredentialBroker`). */
  env?: Record<string, string>;
  resources?: Resources;
  /** Stop after this long without activity (`touch`, idempotent `create`). 0 or absent: never. */
  idleTimeoutMs?: number;
  /** Stop this long after the run started. 0 or absent: never. */
  maxLifetimeMs?: number;
  /** Time between terminate and kill when stopping (default 10,000 ms). */
  graceMs?: number;
  /** Abort a start that takes longer than this. 0 or absent: the backend's own timeout. */
  startTimeoutMs?: number;
  restart?: RestartPolicy;
  /**
   * Runnable keys beyond `command`, `image` and `cwd` that a spec may set (for example
   * `["docker"]` to let specs carry per-run pull credentials). Default none: backend
   * settings stay the profile's, so a spec cannot loosen the sandbox.
   */
  allowSpecRunnableKeys?: string[];
  /**
   * Host directories that a spec's `mounts` (and its `workspace`) must lie in, checked after
   * resolving symbolic links, so neither `../` nor a planted link can escape. Absent: specs
   * may not set `mounts`, and the workspace is taken as given.
   */
  mountRoots?: string[];
  /** Mounts given to every workload of the profile, before the spec's. */
  mounts?: Mount[];
}

/** What a host asks the kernel to run. */
export interface WorkloadSpec {
  /** The host's id for the workload: a DNS-1123 label (lowercase letters, digits, '-'; at most 63). */
  workloadId: string;
  /** The name of a configured profile. */
  profile: string;
  /** Who the workload belongs to; quotas are counted per owner. */
  owner?: string;
  /** Added over the profile's env. */
  env?: Record<string, string>;
  /**
   * Merged over the profile's runnable. Only `command`, `image` and `cwd`, unless the
   * profile allows more with `allowSpecRunnableKeys`.
   */
  runnable?: Partial<Runnable>;
  resources?: Resources;
  /** A host directory to give the workload as its workspace (a one-entry mount set). */
  workspace?: string;
  /** Host directories to give the workload, in order, after the profile's (see `Profile.mountRoots`). */
  mounts?: Mount[];
  /** Overrides the profile's. */
  idleTimeoutMs?: number;
  /** Overrides the profile's. */
  maxLifetimeMs?: number;
  /** Overrides the profile's. */
  graceMs?: number;
  /** Extra labels for the backend to attach (keys must not start with `runtime-kernel.dev/`). */
  labels?: Record<string, string>;
  /**
   * The host's correlation id for the request that created the workload (an `X-Trace-Id`),
   * carried unchanged on every event and status of the workload, so its transitions join the
   * caller's trace. 1 to 128 printable ASCII characters; the backend never sees it.
   */
  traceId?: string;
}

/** A snapshot of one workload, as `get()`, `list()` and `create()` return it. Never contains env or secrets. */
export interface WorkloadStatus {
  workloadId: string;
  runId: string;
  owner?: string;
  profile: string;
  state: WorkloadState;
  /** Epoch ms at which this run was created. */
  createdAt: number;
  /** Epoch ms at which this run reached `running`. */
  startedAt?: number;
  /** Epoch ms at which this run reached `stopped`. */
  stoppedAt?: number;
  exitCode?: number;
  signal?: string;
  stopReason?: StopReason;
  error?: SerializedError;
  /** How many restarts this workload has had (0 for the first run). */
  restarts: number;
  /** Epoch ms of the scheduled restart, while one is pending. */
  restartAt?: number;
  ports?: Record<string, string>;
  /** Epoch ms at which the idle TTL stops it, if enabled and running. */
  idleDeadline?: number;
  /** Epoch ms at which the max lifetime stops it, if enabled and running. */
  maxLifetimeDeadline?: number;
  /** The spec's `traceId`, when it had one. */
  traceId?: string;
}

/** Emitted once per transition, per workload in order, with a global increasing `seq`. */
export interface TransitionEvent {
  workloadId: string;
  runId: string;
  owner?: string;
  profile: string;
  /** The previous state; `null` for the first state of a run. */
  from: WorkloadState | null;
  state: WorkloadState;
  /** Epoch ms. */
  at: number;
  /** Global, strictly increasing within one kernel. */
  seq: number;
  exitCode?: number;
  signal?: string;
  stopReason?: StopReason;
  error?: SerializedError;
  ports?: Record<string, string>;
  /** The restart attempt (1, 2, ...) when this run is a restart. */
  restart?: number;
  /** Set on events a recovering kernel reports for workloads it re-adopted. */
  recovered?: boolean;
  /** The spec's `traceId`, when it had one. */
  traceId?: string;
}

/** Filters of `kernel.list()`. */
export interface ListFilter {
  owner?: string;
  state?: WorkloadState | readonly WorkloadState[];
  profile?: string;
}

/** What `kernel.recover()` found and did. */
export interface RecoveryReport {
  /** Workloads still running, now watched again with their deadlines restored. */
  adopted: WorkloadStatus[];
  /** Workloads that ended while no kernel watched; their exits were reported as events. */
  exited: WorkloadStatus[];
  /** Leftovers cleaned up (runs superseded by a newer run, or unknown to this kernel's profiles). */
  reaped: string[];
}
