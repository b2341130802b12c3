/**
 * The process backend: each workload is a child process of a long-lived supervisor (one
 * per state dir), in its own session and process group, with an environment built only
 * from the request and an allowlist of host variables. Exits are pushed, recorded in the
 * state dir and survive the kernel's death; a kernel with the same `kernelId` re-adopts
 * them through {@link ProcessBackend.discover}.
 *
 * This is the trusted-code backend: a workload runs as the same user as the kernel, sees
 * the same filesystem and network, and is contained only by its process group and the
 * kernel's deadlines (see docs/process-backend.md).
 * @module
 */
import { createHash } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  BackendUnavailableError,
  CleanupFailedError,
  InvalidSpecError,
  isRuntimeKernelError,
  RuntimeKernelError,
  StartAbortedError,
  StartFailedError,
  WorkloadLostError,
} from "../../errors.js";
import { createEgressProxy, type EgressPolicy, type EgressProxy } from "../../net/egress-proxy.js";
import type {
  Backend,
  DiscoveredWorkload,
  ExitStatus,
  LogEntry,
  LogOptions,
  StartRequest,
} from "../backend.js";
import { ExitRegistry } from "../exit-registry.js";
import { decodeRunLabels } from "../run-labels.js";
import { CleanupBatch } from "./cleanup-batch.js";
import {
  commandOf,
  DEFAULT_INHERITED_ENV,
  environmentOf,
  logPathsOf,
  type ProcessLimits,
  withLimits,
  workingDirectoryOf,
} from "./launch-spec.js";
import { readLogs } from "./log-reader.js";
import {
  checkOptions,
  type ProcessBackendOptions,
  resolveStateDir,
  supervisorConfigOf,
} from "./process-backend-options.js";
import { handleOf, type ProcessHandle, readBootId, startError, toExitStatus } from "./process-handle.js";
import type { SupervisorStats, WireExit } from "./protocol.js";
import {
  EGRESS_PROXY_URL,
  egressOf,
  type HostSandbox,
  probeSandbox,
  programInSandbox,
  sandboxArgv,
} from "./sandbox.js";
import { sandboxExit } from "./sandbox-signals.js";
import {
  ConnectionClosedError,
  ensureFileDescriptors,
  SupervisorClient,
  SupervisorError,
} from "./supervisor-client.js";

export type { ProcessBackendOptions } from "./process-backend-options.js";
export type { ProcessHandle } from "./process-handle.js";

/**
 * What a Gestalt plugin is told its parent's pid in (and checks every 500 ms): such a workload
 * is forked by the supervisor itself, whose pid the Gestalt layer puts there, not by one of
 * its spawners.
 */
const PARENT_PID_VARIABLE = "GESTALT_PLUGIN_PARENT_PID";

/** 8 hex digits of a run id: its egress socket's name stays as short as the supervisor's. */
function shortHash(runId: string): string {
  return createHash("sha256").update(runId).digest("hex").slice(0, 8);
}

/**
 * Runs workloads as local child processes: the embedded default backend, which needs
 * nothing installed. Linux only (it relies on /proc and process groups).
 *
 * @example
 * ```ts
 * const kernel = createRuntimeKernel({
 *   backend: new ProcessBackend({ stateDir: "/var/lib/my-app/kernel" }),
 *   profiles: { worker: { runnable: { command: ["node", "worker.js"] } } },
 * });
 * ```
 */
export class ProcessBackend implements Backend<ProcessHandle> {
  /** Recorded in every handle. */
  readonly name = "process";
  readonly #stateDir: string;
  readonly #logDir: string;
  readonly #inheritEnv: readonly string[];
  readonly #cwd: string;
  readonly #keepLogs: boolean;
  readonly #backstopMs: number;
  readonly #rlimits: ProcessLimits | undefined;
  readonly #bootId: string;
  readonly #prlimit: string;
  readonly #sandbox: HostSandbox | undefined;
  /** The egress proxies of this instance's sandboxed runs, by run. */
  readonly #egress = new Map<string, EgressProxy>();
  readonly #client: SupervisorClient;
  /**
   * Exits pushed by the supervisor, until the run is cleaned up, and the watches waiting for
   * them; those of runs this instance started are never forgotten for room.
   */
  readonly #exits = new ExitRegistry({ keep: (runId) => this.#local.has(runId) });
  /**
   * Runs started through this instance and not yet cleaned up, with the connection they
   * started under: while that connection lasts, their exits are pushed here.
   */
  readonly #local = new Map<string, number>();
  /** The most runs of this instance alive at once, for the log file pool of a supervisor that starts later. */
  #peakRuns = 0;
  /** The cleanups of exited runs asked for in this tick, sent together. */
  readonly #cleanups = new CleanupBatch(
    (runIds) =>
      this.#client
        .request({ op: "cleanupMany", runIds, keepLogs: this.#keepLogs })
        .then(({ failed }) => failed),
    (error) => new SupervisorError(error),
  );
  /** Who hears of problems found outside any call (see {@link ProcessBackend.watchFaults}). */
  readonly #faultListeners = new Set<(error: Error) => void>();

  /** Creates the backend; nothing is launched until the first call that needs the supervisor. */
  constructor(options: ProcessBackendOptions) {
    checkOptions(options);
    this.#stateDir = resolveStateDir(options);
    this.#logDir = resolve(options.logDir ?? join(this.#stateDir, "logs"));
    this.#inheritEnv = options.inheritEnv ?? DEFAULT_INHERITED_ENV;
    this.#cwd = options.cwd ?? process.cwd();
    this.#keepLogs = options.keepLogs ?? false;
    this.#backstopMs = options.lifetimeBackstopMs ?? 30_000;
    this.#rlimits = options.rlimits;
    this.#bootId = readBootId();
    this.#prlimit = ["/usr/bin/prlimit", "/bin/prlimit"].find((p) => existsSync(p)) ?? "prlimit";
    this.#sandbox = options.sandbox ? probeSandbox(options.sandbox) : undefined;
    this.#client = new SupervisorClient({
      config: supervisorConfigOf(options, this.#stateDir, this.#logDir),
      scriptPath: join(this.#stateDir, "supervisor.cjs"),
      nodePath: options.nodePath ?? process.execPath,
      launchTimeoutMs: options.launchTimeoutMs ?? 10_000,
      onExit: (runId, exit) => this.#onExit(runId, this.#exitStatus(exit)),
      onReconnect: () => this.#resync(),
      poolHint: () => this.#peakRuns,
      onWarning: (message) => {
        const error = new RuntimeKernelError(
          "BACKEND_ERROR",
          `Process supervisor of ${this.#stateDir}: ${message}`,
        );
        for (const listener of this.#faultListeners) listener(error);
      },
    });
  }

  /** The state dir in use (absolute). */
  get stateDir(): string {
    return this.#stateDir;
  }

  /** Spawns the run through the supervisor; resolves once the process exists. */
  async start(request: StartRequest, options: { signal: AbortSignal }): Promise<ProcessHandle> {
    if (options.signal.aborted) throw new StartAbortedError(request.workloadId);
    const inner = withLimits(commandOf(request), this.#rlimits, this.#prlimit, request);
    const env = environmentOf(request, this.#inheritEnv, process.env);
    const sandbox = this.#sandbox;
    if (!sandbox && request.mounts?.length) {
      throw new InvalidSpecError(
        [
          {
            path: "mounts",
            message:
              "the process backend gives mounts only to sandboxed workloads: ProcessBackend({ sandbox })",
          },
        ],
        { workloadId: request.workloadId, subject: "start request" },
      );
    }
    // A sandbox has no host directory but its mounts: one with neither starts in its own /tmp.
    const cwd = workingDirectoryOf(request, sandbox ? "/tmp" : this.#cwd);
    const egress = egressOf(request, sandbox);
    const egressSocket = egress ? join(this.#stateDir, `e${shortHash(request.runId)}.sock`) : undefined;
    // Sandboxed, bwrap is spawned from "/" and enters the workload's cwd inside.
    const command = sandbox
      ? sandboxArgv(sandbox, { request, command: inner, cwd, ...(egressSocket ? { egressSocket } : {}) })
      : inner;
    if (sandbox) {
      // The host's HOME and TMPDIR are not in the sandbox: its own /tmp is, unless the request says.
      for (const name of ["HOME", "TMPDIR"]) if (request.env[name] === undefined) env[name] = "/tmp";
    }
    if (egress) {
      for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"])
        env[name] = EGRESS_PROXY_URL;
    }
    const program = commandOf(request)[0] as string;
    if (sandbox && !programInSandbox(sandbox, request, program, env.PATH)) {
      throw new StartFailedError(
        request.workloadId,
        `Cannot start "${request.workloadId}": command not found in the sandbox: ${program}`,
      );
    }
    const logs = logPathsOf(this.#logDir, request.workloadId, request.runId);
    const { maxLifetimeAt = 0 } = decodeRunLabels(request.labels);
    if (egress && egressSocket) await this.#openEgress(request.runId, egress, egressSocket);
    this.#local.set(request.runId, this.#client.connections);
    this.#peakRuns = Math.max(this.#peakRuns, this.#local.size);
    let started: { pid: number; startTime: number };
    try {
      started = await this.#client.request({
        op: "start",
        spec: {
          runId: request.runId,
          workloadId: request.workloadId,
          kernelId: request.kernelId,
          labels: request.labels,
          command,
          env,
          cwd: sandbox ? "/" : cwd,
          stdoutPath: logs.stdout,
          stderrPath: logs.stderr,
          ...(Number.isFinite(maxLifetimeAt) && maxLifetimeAt > 0
            ? { killAt: maxLifetimeAt + this.#backstopMs }
            : {}),
          ...(sandbox ? { sandboxed: true as const } : {}),
          // A Gestalt plugin is told its parent's pid (the supervisor's) and watches it.
          ...(env[PARENT_PID_VARIABLE] !== undefined ? { parent: "supervisor" as const } : {}),
        },
      });
    } catch (error) {
      this.#local.delete(request.runId);
      await this.#closeEgress(request.runId);
      if (error instanceof ConnectionClosedError) {
        // The supervisor died with the start in flight: it may have spawned and recorded the
        // run, which its successor then adopts. Nobody was told of it: reclaim it.
        await this.#client.request({ op: "cleanup", runId: request.runId, keepLogs: false }).catch(() => {});
      }
      throw startError(request.workloadId, error);
    }
    const handle: ProcessHandle = {
      workloadId: request.workloadId,
      runId: request.runId,
      backend: "process",
      pid: started.pid,
      startTime: started.startTime,
      bootId: this.#bootId,
      stdoutPath: logs.stdout,
      stderrPath: logs.stderr,
    };
    if (options.signal.aborted) {
      await this.cleanup(handle).catch(() => {});
      throw new StartAbortedError(request.workloadId);
    }
    return handle;
  }

  /** The exit code, `null` while it runs; `WORKLOAD_LOST` when the supervisor no longer knows the run or could not see its end. */
  async exitCode(handle: ProcessHandle): Promise<number | null> {
    let status = this.#exits.get(handle.runId);
    if (!status) {
      const reply = await this.#call(() => this.#client.request({ op: "status", runId: handle.runId }));
      if (!reply.found)
        throw new WorkloadLostError(handle.workloadId, `Run ${handle.runId} is not known to the supervisor`);
      if (!reply.exit) return null;
      status = this.#exitStatus(reply.exit);
    }
    if (status.lost) {
      throw new WorkloadLostError(
        handle.workloadId,
        `Run ${handle.runId} ended while no supervisor watched it`,
      );
    }
    return status.exitCode;
  }

  /** SIGTERM to the run's whole process group (sandboxed: once its command can receive it). */
  terminate(handle: ProcessHandle, options: { graceMs: number }): Promise<void> {
    // A sandbox still being set up would ignore it: the supervisor waits until its command
    // can be told (at most the grace period).
    return this.#signal(handle, "SIGTERM", this.#sandbox ? options.graceMs : undefined);
  }

  /** SIGKILL to the run's whole process group. */
  kill(handle: ProcessHandle): Promise<void> {
    return this.#signal(handle, "SIGKILL");
  }

  /**
   * Deletes the run's logs (unless `keepLogs`) and its record, killing whatever is left of its
   * group. The cleanups of runs known to have exited, asked for in one tick, go to the
   * supervisor as one request; a run still alive (or not known to have exited) has one of
   * its own, so that its wait for the kill holds up no other.
   */
  cleanup(handle: ProcessHandle): Promise<void> {
    const { runId } = handle;
    const done = this.#exits.has(runId)
      ? this.#cleanups.add(runId)
      : this.#client.request({ op: "cleanup", runId, keepLogs: this.#keepLogs });
    return done.then(
      () =>
        this.#egress.has(runId)
          ? this.#closeEgress(runId).then(() => this.#forget(runId))
          : this.#forget(runId),
      (error: unknown) => {
        throw new CleanupFailedError(
          handle.workloadId,
          `Cleanup of run ${runId} failed: ${(error as Error).message}`,
          {
            cause: error,
            retryable: !isRuntimeKernelError(error) || error.retryable || error.code === "CLEANUP_FAILED",
          },
        );
      },
    );
  }

  /**
   * Starts the egress proxy of a sandboxed run, on a unix socket in the state dir that the
   * sandbox gets bound in. It lives in this process: a kernel that goes away takes its
   * workloads' egress with it (see docs/isolation.md).
   */
  async #openEgress(runId: string, policy: EgressPolicy, path: string): Promise<void> {
    rmSync(path, { force: true });
    this.#egress.set(runId, await createEgressProxy({ ...policy, path }));
  }

  async #closeEgress(runId: string): Promise<void> {
    const proxy = this.#egress.get(runId);
    if (!proxy) return;
    this.#egress.delete(runId);
    await proxy.close();
    rmSync(proxy.url.slice("unix:".length), { force: true });
  }

  /** Pushes the run's exit as soon as the supervisor reaps it (no polling). */
  watchExit(handle: ProcessHandle, onExit: (status: ExitStatus) => void): () => void {
    const { runId } = handle;
    // A known exit is delivered by the registry on the next microtask: nothing to hold.
    if (this.#exits.has(runId)) return this.#exits.watch(runId, onExit).stop;
    this.#client.hold();
    const { stop } = this.#exits.watch(runId, onExit, () => this.#client.release());
    // A run this instance did not start (a recovered one), or started under an earlier
    // connection, may have ended while no exit could reach us.
    if (this.#local.get(runId) !== this.#client.connections) this.#query(runId);
    return stop;
  }

  /** The runs recorded in the state dir for `kernelId`: running ones with `exit: null`, ended ones with their exit. */
  async discover(selector: { kernelId: string }): Promise<DiscoveredWorkload<ProcessHandle>[]> {
    const { runs } = await this.#call(() =>
      this.#client.request({ op: "list", kernelId: selector.kernelId }),
    );
    return runs.map(({ record, exit }) => {
      const status = exit ? this.#exitStatus(exit) : null;
      if (status) this.#exits.remember(record.runId, status);
      return { handle: handleOf(record), labels: { ...record.labels }, exit: status };
    });
  }

  /**
   * Reports what the supervisor finds wrong outside any call: journal lines it skipped at
   * start-up (not records, or not written by a supervisor of this state dir), a journal it
   * cannot write (starts are refused meanwhile) and can again. The kernel emits them on its
   * `error` event. Returns the unsubscribe function.
   */
  watchFaults(onFault: (error: Error) => void): () => void {
    this.#faultListeners.add(onFault);
    return () => {
      this.#faultListeners.delete(onFault);
    };
  }

  /** Streams the run's output from its log files (see docs/process-backend.md for ordering). */
  logs(handle: ProcessHandle, options: LogOptions = {}): AsyncIterable<LogEntry> {
    ensureFileDescriptors(2, `read the logs of "${handle.workloadId}"`);
    const files = { stdout: handle.stdoutPath, stderr: handle.stderrPath };
    const end = {
      ended: () => this.#exits.has(handle.runId),
      onEnd: (callback: () => void) => (options.follow ? this.watchExit(handle, () => callback()) : () => {}),
    };
    return readLogs(files, options, end);
  }

  /**
   * Disconnects from the supervisor. Workloads keep running, and so does their supervisor;
   * one left with no workload and no other kernel exits, and then this resolves once it
   * has: nothing writes to the state and log dirs any more.
   */
  async close(): Promise<void> {
    // Exit watches end here (their callbacks never fire): a kernel that comes back
    // re-watches what it recovers. The holds they kept on the connection go with them.
    this.#exits.close();
    await Promise.all([...this.#egress.keys()].map((runId) => this.#closeEgress(runId)));
    await this.#client.close();
  }

  /** What the supervisor reports about itself (pid, live workloads, memory, limits). */
  async supervisorStats(): Promise<SupervisorStats> {
    return this.#call(() => this.#client.request({ op: "stats" }));
  }

  /**
   * Stops the supervisor of this state dir. Without `force`, refuses (`WORKLOAD_CONFLICT`)
   * while workloads still run; with `force`, SIGKILLs every workload group first. Exits of
   * ended runs stay on record for a later kernel. The supervisor also exits by itself after
   * `supervisorIdleMs` with no workload and no client.
   */
  async stopSupervisor(options: { force?: boolean } = {}): Promise<void> {
    // No socket: no supervisor to stop (and none to launch just for this).
    if (!existsSync(join(this.#stateDir, "supervisor.sock"))) return;
    await this.#call(() => this.#client.request({ op: "shutdown", force: options.force ?? false }));
    await this.#client.waitExited();
  }

  async #signal(
    handle: ProcessHandle,
    signal: "SIGTERM" | "SIGKILL",
    untilCommandMs?: number,
  ): Promise<void> {
    // Through the supervisor, never from here: as the workload's parent it alone knows for
    // sure that the pid was not reaped and reused. Measured, it is also the faster way for
    // a burst of stops: the supervisor signals on its own core while the kernel goes on.
    try {
      await this.#client.request(
        untilCommandMs === undefined
          ? { op: "signal", runId: handle.runId, signal }
          : { op: "signal", runId: handle.runId, signal, untilCommandMs },
      );
    } catch (error) {
      // Cleaned up already: nothing left to signal, which is what was asked.
      if (error instanceof SupervisorError && error.wireCode === "NOT_FOUND") return;
      throw error;
    }
  }

  /** An exit as the workload made it (in a sandbox, bubblewrap's 128 + n is signal n). */
  #exitStatus(exit: WireExit): ExitStatus {
    return toExitStatus(this.#sandbox ? sandboxExit(exit) : exit);
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (isRuntimeKernelError(error)) throw error;
      throw new BackendUnavailableError(`Process supervisor call failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  #onExit(runId: string, status: ExitStatus): void {
    this.#exits.settle(runId, status);
  }

  #forget(runId: string): void {
    this.#exits.forget(runId);
    this.#local.delete(runId);
  }

  /** Asks for a run's state and delivers an exit the push may have missed. */
  #query(runId: string): void {
    this.#client.request({ op: "status", runId }).then(
      (reply) => {
        if (!reply.found) this.#onExit(runId, { exitCode: null, lost: true });
        else if (reply.exit) this.#onExit(runId, this.#exitStatus(reply.exit));
      },
      () => {
        // Unreachable supervisor: the client reconnects while watchers wait, then resyncs.
      },
    );
  }

  /** After a reconnection (maybe to a new supervisor): exits pushed meanwhile were missed. */
  #resync(): void {
    for (const runId of this.#exits.watchedKeys()) this.#query(runId);
  }
}
