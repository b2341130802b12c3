/**
 * What the supervisor's program holds while it runs: its configuration, its run table, the
 * parts it is made of, and the table of its functions. Types only (nothing here runs); the
 * functions of `supervisor-runs.ts` and `supervisor-requests.ts` share this state.
 * @module
 */
import type * as ChildProcessModule from "node:child_process";
import type * as FsModule from "node:fs";
import type * as NetModule from "node:net";
import type * as OsModule from "node:os";
import type * as PathModule from "node:path";
import type { Clock } from "../../clock.js";
import type { RunRecord, WireError, WireExit } from "./protocol.js";
import type * as spawnerModule from "./spawner.js";
import type * as backstopModule from "./supervisor-backstop.js";
import type { Backstop } from "./supervisor-backstop.js";
import type * as journalModule from "./supervisor-journal.js";
import type { Journal } from "./supervisor-journal.js";
import type * as launchModule from "./supervisor-launch.js";
import type * as logFilesModule from "./supervisor-log-files.js";
import type { LogFiles } from "./supervisor-log-files.js";
import type * as procModule from "./supervisor-proc.js";
import type * as requestsModule from "./supervisor-requests.js";
import type * as runsModule from "./supervisor-runs.js";
import type * as sandboxModule from "./supervisor-sandbox.js";
import type { ProcReader } from "./supervisor-sandbox.js";
import type * as serverModule from "./supervisor-server.js";
import type { ServerState } from "./supervisor-server.js";
import type * as spawnersModule from "./supervisor-spawners.js";
import type { SpawnerPool } from "./supervisor-spawners.js";

/** How a backend configures its supervisor (passed as JSON on the command line: no secrets). */
export interface SupervisorConfig {
  version: number;
  stateDir: string;
  socketPath: string;
  /** Exit after this long with no live workload and no client. */
  idleMs: number;
  /** Size of a log file (per stream) past which it is rotated once (`.1`). */
  maxLogBytes: number;
  /** How often to check log sizes. */
  logCheckMs: number;
  /** Most live workloads; 0 derives it from RLIMIT_NPROC and pid_max. */
  maxWorkloads: number;
  /** How often to check on workloads that a previous supervisor started (they cannot be waited for). */
  orphanPollMs: number;
  /** Where the backend puts log files; the pool of empty ones lives in its `.pool` folder. */
  logDir: string;
  /**
   * Fewest empty log files kept ready (0 disables the pool: every start creates its files).
   * The pool grows to the largest number of live workloads seen, up to `logPoolMax`.
   */
  logPoolMin: number;
  logPoolMax: number;
  /** Spawner processes that fork the workloads in parallel (0: the supervisor forks them itself). */
  spawners: number;
}

/** A run as the supervisor holds it in memory. */
export interface Run {
  record: RunRecord;
  exit: WireExit | null;
  /** The ChildProcess while this supervisor spawned it itself and it has not exited. */
  child?: ChildProcessModule.ChildProcess | undefined;
  /** Started by a previous supervisor and still alive: only polling can see its end. */
  orphan: boolean;
  exitWaiters: Array<() => void>;
  /** Its start line could not be written: killed, forgotten, and its start answered with this. */
  refusal?: WireError;
  /** Nothing of its process group was left when this supervisor reaped it: a cleanup has nothing to kill. */
  groupGone?: boolean;
  /** Sandboxed, its command was seen past bubblewrap's setup: a SIGTERM reaches it without a look at /proc. */
  commandRuns?: boolean;
}

/**
 * Every function of the supervisor's program, by the name its module exports it under. The
 * program is those functions' source text copied into one script, so an import does not
 * survive the copy (a loader or bundler rewrites what an imported name refers to): a function
 * calls another module's through this table, {@link Supervisor.lib}, never by importing it.
 */
export type Program = typeof procModule &
  typeof journalModule &
  typeof logFilesModule &
  typeof backstopModule &
  typeof launchModule &
  typeof serverModule &
  typeof runsModule &
  typeof requestsModule &
  typeof sandboxModule &
  typeof spawnersModule &
  typeof spawnerModule;

/** The running supervisor. */
export interface Supervisor {
  /** The program's functions, for calls from one of its modules into another. */
  lib: Program;
  config: SupervisorConfig;
  fs: typeof FsModule;
  cp: typeof ChildProcessModule;
  os: typeof OsModule;
  path: typeof PathModule;
  clock: Clock;
  /** Every run on record, in the order they started. */
  runs: Map<string, Run>;
  limits: { openFiles: number; processes: number };
  maxWorkloads: number;
  bootId: string;
  /** Epoch ms at which this supervisor started: older runs may have rotated logs it never saw. */
  startedAt: number;
  /** Runs not exited (orphans included). */
  live: number;
  /** Runs started by a previous supervisor and not exited. */
  orphans: number;
  /** File descriptors open once listening, for the budget of a start. */
  baseFds: number;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  orphanTimer: ReturnType<typeof setInterval> | undefined;
  /** Exits not yet pushed to the kernels, each its line (without the newline). */
  pendingExits: string[];
  /** The last periodic check of log sizes was put off (it came in a burst of work). */
  logCheckPutOff: boolean;
  /** Shutting down: starts are refused. */
  exitingDown: boolean;
  /** What start-up found wrong (lines skipped), told to every kernel that connects. */
  warnings: string[];
  diagPath: string;
  journal: Journal<Run>;
  logs: LogFiles;
  backstop: Backstop;
  server: ServerState;
  spawners: SpawnerPool;
  listener: NetModule.Server | undefined;
  /** Reads /proc for a sandbox's SIGTERM (one buffer for all). */
  readProc: ProcReader;
  /** The sandboxes not yet seen running their command, the timer of the next look at them and its pause. */
  sandboxes: { unseen: Set<Run>; timer: unknown; pauseMs: number };
}
