/**
 * The wire protocol between a {@link ProcessBackend} and its supervisor: newline-delimited
 * JSON over a unix socket in the state dir. Requests carry an `id` and get exactly one
 * reply with the same `id`; the supervisor also pushes an `exit` message to every client
 * each time a workload ends. Types only (and one constant): the supervisor's own code is
 * self-contained, see `supervisor.ts`.
 * @module
 */

/**
 * Bumped on any incompatible change; a backend refuses a supervisor speaking another version.
 * 3: `cleanupMany` (a supervisor of 2 would refuse it, and the cleanups with it), and the
 * `untilCommandMs` of a sandbox's SIGTERM (one of 2 would signal at once, and the signal could
 * be lost in bubblewrap's setup).
 */
export const PROTOCOL_VERSION = 3;

/** What the supervisor records in its journal for each run. Never holds env or argv. */
export interface RunRecord {
  runId: string;
  workloadId: string;
  kernelId: string;
  labels: Record<string, string>;
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot): tells the workload from a reused pid. */
  startTime: number;
  /** /proc/sys/kernel/random/boot_id when it started: after a reboot no pid is ours. */
  bootId: string;
  stdoutPath: string;
  stderrPath: string;
  /** Epoch ms at which it was spawned. */
  startedAt: number;
  /** Epoch ms at which the supervisor kills the group even if no kernel asked (max-lifetime backstop). */
  killAt?: number;
}

/** An exit as the supervisor records and pushes it. */
export interface WireExit {
  exitCode: number | null;
  signal?: string;
  /** The supervisor could not observe the exit (it was restarted meanwhile): the code is unknown. */
  lost?: boolean;
  /** Epoch ms (fractional) at which the supervisor observed the exit. */
  at: number;
}

/**
 * One line of the journal (`stateDir/journal.ndjson`), without its `mac`: every line also
 * carries `"mac"`, an HMAC-SHA256 of the line without it under the state dir's
 * `journal.key`, so that a line no supervisor wrote is never trusted.
 */
export type JournalEntry =
  /** Written before the spawn: a run whose start line never follows is found by its log files. */
  | { op: "spawn"; runId: string; stdoutPath: string; stderrPath: string }
  | { op: "start"; run: RunRecord }
  | { op: "exit"; runId: string; exit: WireExit }
  | { op: "remove"; runId: string };

/** Everything the supervisor needs to spawn one run. `env` and `command` are never persisted. */
export interface StartSpec {
  runId: string;
  workloadId: string;
  kernelId: string;
  labels: Record<string, string>;
  command: string[];
  env: Record<string, string>;
  cwd: string;
  stdoutPath: string;
  stderrPath: string;
  killAt?: number;
  /** A bubblewrap sandbox: the supervisor looks ahead at when its command runs (for its SIGTERM). */
  sandboxed?: true;
  /**
   * `"supervisor"`: forked by the supervisor itself, not by one of its spawners, so that the
   * workload's parent is the pid `stats` reports (a Gestalt plugin watches its parent).
   */
  parent?: "supervisor";
}

/** Requests a client sends. */
export type Request =
  /** `poolHint`: the most live workloads this client has had, for a supervisor that started since to size its log file pool. */
  | { id: number; op: "hello"; version: number; poolHint: number }
  | { id: number; op: "start"; spec: StartSpec }
  /**
   * `untilCommandMs`, for a sandboxed run's SIGTERM: sent once the sandbox runs its command
   * (bubblewrap's setup would ignore it), waiting at most this long for that.
   */
  | { id: number; op: "signal"; runId: string; signal: "SIGTERM" | "SIGKILL"; untilCommandMs?: number }
  | { id: number; op: "status"; runId: string }
  | { id: number; op: "list"; kernelId: string }
  | { id: number; op: "cleanup"; runId: string; keepLogs: boolean }
  /** The cleanups of many runs (those asked for in one tick), in one request and one reply. */
  | { id: number; op: "cleanupMany"; runIds: string[]; keepLogs: boolean }
  | { id: number; op: "shutdown"; force: boolean }
  | { id: number; op: "detach" }
  | { id: number; op: "stats" };

/** A request without its id, as the client API takes it. */
export type RequestBody = Request extends infer R
  ? R extends { id: number }
    ? Omit<R, "id">
    : never
  : never;

/** The error half of a reply. `code` is a `RuntimeKernelErrorCode` or `NOT_FOUND`. */
export interface WireError {
  code: string;
  message: string;
}

/** Replies, by operation. */
export interface Replies {
  /** `warnings`: what the supervisor found wrong at start-up (journal lines it skipped). */
  hello: { version: number; pid: number; warnings: string[] };
  start: { pid: number; startTime: number };
  signal: { delivered: boolean };
  status: { found: boolean; exit: WireExit | null };
  list: { runs: Array<{ record: RunRecord; exit: WireExit | null }> };
  cleanup: Record<string, never>;
  /** The runs whose cleanup failed, each with its error; every other run is cleaned up. */
  cleanupMany: { failed: Array<{ runId: string; error: WireError }> };
  shutdown: Record<string, never>;
  /** Whether the supervisor exits now (no live workload and no other client): it then touches no file any more. */
  detach: { exiting: boolean };
  stats: SupervisorStats;
}

/** What `stats` reports (for benchmarks and diagnosis). */
export interface SupervisorStats {
  pid: number;
  live: number;
  records: number;
  clients: number;
  rss: number;
  fdLimit: number;
  maxWorkloads: number;
  /** Empty log files ready in the pool. */
  pooledLogFiles: number;
  /** The spawner processes that fork workloads for it, and their resident memory in bytes. */
  spawners: Array<{ pid: number; rss: number }>;
}

/** One line from the supervisor. */
export type ServerMessage =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: WireError }
  | { event: "exit"; runId: string; exit: WireExit }
  /** Something went wrong outside any request (the journal cannot be written, or can again). */
  | { event: "warning"; message: string };

/** What the supervisor prints on its stdout once, before the launcher lets it go. */
export type ReadyLine = { ready: true; pid: number } | { ready: false; locked: true } | { error: string };
