/**
 * The options of the process backend: what each means, how they are checked (a bad one is
 * refused naming its field, before anything is touched), and the supervisor configuration
 * they make. It must not touch the state dir or start anything.
 * @module
 */
import { join, resolve } from "node:path";
import { InvalidSpecError } from "../../errors.js";
import type { ProcessLimits } from "./launch-spec.js";
import { withLimits } from "./launch-spec.js";
import { PROTOCOL_VERSION } from "./protocol.js";
import type { ProcessSandboxOptions } from "./sandbox.js";
import type { SupervisorConfig } from "./supervisor.js";

/** Options of {@link ProcessBackend}. */
export interface ProcessBackendOptions {
  /**
   * Where the supervisor keeps its socket, its journal of starts and exits, and its own
   * diagnostics. A kernel that restarts with the same `stateDir` (and `kernelId`) finds its
   * workloads again. Created with mode 0700 if missing.
   */
  stateDir: string;
  /** Where each run's `<workload>.<run>.stdout.log` and `.stderr.log` go. Default: `<stateDir>/logs`. */
  logDir?: string;
  /** Host variables passed through to workloads, when set. Default: PATH, HOME, LANG, TZ, TMPDIR. */
  inheritEnv?: readonly string[];
  /** Working directory of a workload with no workspace and no `runnable.cwd`. Default: `process.cwd()`. */
  cwd?: string;
  /** Size of a log file (per stream) past which it is rotated to `.1`; at most twice this on disk. Default 8 MiB. */
  maxLogBytes?: number;
  /** Most live workloads in the state dir; beyond it a start fails with `RESOURCE_EXHAUSTED`. Default: half of min(RLIMIT_NPROC, pid_max). */
  maxWorkloads?: number;
  /**
   * Margin after a run's max-lifetime deadline (the kernel's `maxLifetimeMs`) at which the
   * supervisor SIGKILLs its group even if no kernel is alive to stop it. Default 30,000 ms.
   */
  lifetimeBackstopMs?: number;
  /** The supervisor exits after this long with no live workload and no connected kernel. Default 60,000 ms. */
  supervisorIdleMs?: number;
  /**
   * Keep a pool of empty log files ready, so that a start renames two files into place
   * instead of creating them (creating files measured 2-3x slower starts here; see the
   * docs). Default true; the pool lives in `<logDir>/.pool`.
   */
  logFilePool?: boolean;
  /**
   * POSIX resource limits for every workload, applied through util-linux `prlimit`; a
   * profile's `runnable.rlimits` overrides them per field. Default: none (the host's own).
   */
  rlimits?: ProcessLimits;
  /**
   * Spawner processes that fork workloads in parallel for the supervisor (small Node
   * processes, about 40 MiB each). Measured on 2 cores, two spawners bring 200 creates at once
   * to `running` in half the time or less, but each exit takes one more hop to the kernel (1-3
   * ms more from exit to `stopped` on a loaded machine): set it (one per core, 2 on 2 cores)
   * when bursts of starts matter more than exit latency. Default 0: the supervisor forks
   * every workload itself. At most 64. See docs/process-backend.md.
   */
  spawners?: number;
  /** Keep log files when a run is cleaned up (default: delete them with the run). */
  keepLogs?: boolean;
  /** The Node binary that runs the supervisor. Default: `process.execPath`. */
  nodePath?: string;
  /** How long launching the supervisor may take. Default 10,000 ms. */
  launchTimeoutMs?: number;
  /**
   * Run every workload in a bubblewrap sandbox (namespaces, only the system paths and its
   * mounts, no capabilities, loopback-only network); see docs/isolation.md. Refused at
   * construction when bubblewrap is missing. Default: none (for trusted code only).
   */
  sandbox?: ProcessSandboxOptions;
}

/** Unix socket paths are limited to 107 bytes on Linux. */
const MAX_SOCKET_PATH = 107;
/** The most spawner processes a backend starts (`spawners`). */
const MAX_SPAWNERS = 64;

/** Throws {@link InvalidSpecError}, naming the field, for the first option that is not valid. */
export function checkOptions(options: ProcessBackendOptions): void {
  const invalid = (path: string, message: string) =>
    new InvalidSpecError([{ path, message }], { subject: "ProcessBackend options" });
  if (typeof options?.stateDir !== "string" || options.stateDir === "") {
    throw invalid("stateDir", "a directory path is required");
  }
  // Refuse bad limits now rather than at every start.
  withLimits(["true"], options.rlimits, "prlimit", {
    kernelId: "",
    workloadId: "",
    runId: "",
    profile: "",
    runnable: {},
    env: {},
    labels: {},
  });
  const socketPath = join(resolveStateDir(options), "supervisor.sock");
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw invalid(
      "stateDir",
      `too long for a unix socket path (${socketPath} is over ${MAX_SOCKET_PATH} bytes)`,
    );
  }
  for (const [field, value] of [
    ["maxLogBytes", options.maxLogBytes],
    ["maxWorkloads", options.maxWorkloads],
    ["lifetimeBackstopMs", options.lifetimeBackstopMs],
    ["supervisorIdleMs", options.supervisorIdleMs],
    ["spawners", options.spawners],
  ] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
      throw invalid(field, "must be a non-negative integer");
    }
  }
  // Each spawner is a Node process of its own: a typo must not start hundreds.
  if (options.spawners !== undefined && options.spawners > MAX_SPAWNERS) {
    throw invalid("spawners", `must be at most ${MAX_SPAWNERS} (one per core is the most that helps)`);
  }
}

/** The state dir, absolute. */
export function resolveStateDir(options: ProcessBackendOptions): string {
  return resolve(options.stateDir);
}

/** How the backend's supervisor is to run, from the options (the defaults filled in). */
export function supervisorConfigOf(
  options: ProcessBackendOptions,
  stateDir: string,
  logDir: string,
): SupervisorConfig {
  return {
    version: PROTOCOL_VERSION,
    stateDir,
    socketPath: join(stateDir, "supervisor.sock"),
    idleMs: options.supervisorIdleMs ?? 60_000,
    maxLogBytes: options.maxLogBytes ?? 8 * 1024 * 1024,
    logCheckMs: 2_000,
    maxWorkloads: options.maxWorkloads ?? 0,
    orphanPollMs: 250,
    logDir,
    logPoolMin: options.logFilePool === false ? 0 : 64,
    logPoolMax: 4096,
    spawners: options.spawners ?? 0,
  };
}
