/**
 * What the supervisor does for each request a kernel sends: start, signal, status, list,
 * cleanup, shutdown, detach, stats; and the periodic log check. It decides and records; it
 * must not spawn by itself (the launch seam, `supervisor-launch.ts`, does) nor write to a
 * socket (replies go back through `supervisor-server.ts`). Part of the supervisor's program
 * (see `supervisor.ts`): each function reaches Node, and the other modules' functions, only
 * through its parameters (`s.lib`).
 * @module
 */
import type * as ChildProcessModule from "node:child_process";
import type * as NetModule from "node:net";
import type {
  Replies,
  Request,
  RunRecord,
  StartSpec,
  SupervisorStats,
  WireError,
  WireExit,
} from "./protocol.js";
import type { Run, Supervisor } from "./supervisor-state.js";

/** An error with a stable wire code. */
export function fail(code: string, message: string): WireError & Error {
  return Object.assign(new Error(message), { code, message });
}

/** Answers one request: a result, a promise of one, or a throw. */
export function handleRequest(s: Supervisor, socket: NetModule.Socket, request: Request): unknown {
  switch (request.op) {
    case "hello":
      s.logs.grow(request.poolHint);
      return { version: s.config.version, pid: process.pid, warnings: s.warnings };
    case "start":
      if (s.exitingDown) throw fail("BACKEND_UNAVAILABLE", "The supervisor is shutting down");
      return startRun(s, request.spec);
    case "signal": {
      const run = s.runs.get(request.runId);
      if (!run) throw fail("NOT_FOUND", `No run ${request.runId}`);
      const { untilCommandMs } = request;
      if (request.signal === "SIGTERM" && typeof untilCommandMs === "number" && untilCommandMs >= 0)
        return s.lib.terminateSandbox(s, run, untilCommandMs);
      return { delivered: s.lib.signalRun(s, run, request.signal) };
    }
    case "status": {
      const run = s.runs.get(request.runId);
      return { found: run !== undefined, exit: run?.exit ?? null };
    }
    case "list": {
      const out: Array<{ record: RunRecord; exit: WireExit | null }> = [];
      for (const run of s.runs.values()) {
        if (run.record.kernelId === request.kernelId) out.push({ record: run.record, exit: run.exit });
      }
      return { runs: out };
    }
    case "cleanup": {
      const run = s.runs.get(request.runId);
      return run ? cleanupRun(s, run, request.keepLogs) : {};
    }
    case "cleanupMany":
      return cleanupRuns(s, request.runIds, request.keepLogs);
    case "shutdown":
      return shutdownSupervisor(s, request.force);
    case "detach":
      return detachClient(s, socket);
    case "stats":
      return supervisorStats(s);
    default:
      throw fail("BACKEND_ERROR", `Unknown operation ${(request as { op: string }).op}`);
  }
}

/** Refuses a start over budget: the process budget, or the supervisor's file descriptors. */
export function checkBudget(s: Supervisor, spec: StartSpec): void {
  if (s.live >= s.maxWorkloads) {
    throw fail(
      "RESOURCE_EXHAUSTED",
      `Cannot start "${spec.workloadId}": ${s.live} live workloads, the process budget (maxWorkloads ${s.maxWorkloads})`,
    );
  }
  // Each start briefly holds 2 log fds and libuv's 2 exec-status pipe fds; each spawner 2 pipes.
  if (s.baseFds + s.server.clients.size + 2 * s.spawners.spawners.length + 8 > s.limits.openFiles) {
    throw fail(
      "RESOURCE_EXHAUSTED",
      `Cannot start "${spec.workloadId}": the supervisor is at its file descriptor limit (${s.limits.openFiles})`,
    );
  }
}

/** Starts a run (or answers for the one already started under its id). */
export function startRun(
  s: Supervisor,
  spec: StartSpec,
): { pid: number; startTime: number } | Promise<{ pid: number; startTime: number }> {
  const existing = s.runs.get(spec.runId);
  if (existing) return { pid: existing.record.pid, startTime: existing.record.startTime };
  checkBudget(s, spec);
  // On record before it exists: should this supervisor die between the spawn and the start
  // line, its successor finds the process by its log files, and kills it (no kernel was
  // told of it). A journal that cannot take this line refuses the start: nothing runs.
  const { runId, stdoutPath, stderrPath } = spec;
  const spawnLine = s.journal.append({ op: "spawn", runId, stdoutPath, stderrPath });
  if (!s.journal.flush()) {
    s.journal.withdraw(spawnLine);
    const why = s.journal.failure as WireError;
    throw fail(why.code, `Cannot start "${spec.workloadId}": ${why.message}; nothing was started`);
  }
  const forget = () => {
    s.logs.delete(spec.stdoutPath, false);
    s.logs.delete(spec.stderrPath, false);
    s.journal.append({ op: "remove", runId });
  };
  const spawner = spec.parent === "supervisor" ? undefined : s.lib.pickSpawner(s);
  if (spawner) return s.lib.startThroughSpawner(s, spawner, spec, forget);
  let child: ChildProcessModule.ChildProcess;
  try {
    child = s.lib.launchWorkload({ cp: s.cp, fs: s.fs, openLog: (file) => s.logs.open(file) }, spec);
  } catch (error) {
    forget();
    throw s.lib.launchError(s.fs, error as NodeJS.ErrnoException, spec);
  }
  const pid = child.pid;
  if (pid === undefined) {
    // Node reports ENOENT, EACCES, EAGAIN, ... through an 'error' event on the next tick.
    return new Promise((_resolve, reject) => {
      child.once("error", (error) => {
        forget();
        reject(s.lib.launchError(s.fs, error, spec));
      });
    });
  }
  child.on("error", (error) => s.lib.diag(s, `run ${spec.runId}: ${error.message}`));
  // The child cannot have been reaped yet (that needs this event loop): the stat is there.
  const startTime = s.lib.readProcStat(s.fs, pid)?.startTime ?? 0;
  const run = recordStart(s, spec, pid, startTime);
  run.child = child;
  child.once("exit", (code, signal) => s.lib.onChildExit(s, run, s.lib.reapedNow(pid, code, signal)));
  return { pid, startTime };
}

/**
 * Puts a spawned run in the table and on record (its exit is then watched by whoever spawned
 * it: this supervisor, or a spawner).
 */
export function recordStart(s: Supervisor, spec: StartSpec, pid: number, startTime: number): Run {
  const record: RunRecord = {
    runId: spec.runId,
    workloadId: spec.workloadId,
    kernelId: spec.kernelId,
    labels: spec.labels,
    pid,
    startTime,
    bootId: s.bootId,
    stdoutPath: spec.stdoutPath,
    stderrPath: spec.stderrPath,
    startedAt: Date.now(),
  };
  if (spec.killAt !== undefined) record.killAt = spec.killAt;
  const run: Run = { record, exit: null, orphan: false, exitWaiters: [] };
  s.runs.set(spec.runId, run);
  s.live++;
  s.logs.grow(s.live);
  s.logs.scheduleRefill(50);
  s.lib.clearIdle(s);
  s.journal.append({ op: "start", run: record }, run);
  s.backstop.arm(record.killAt);
  if (spec.sandboxed) s.lib.lookAheadAt(s, run);
  return run;
}

/**
 * Kills what is left of a run (its group), deletes its logs unless kept, and forgets it. A run
 * that has exited is done at once, so its reply leaves with the other replies to the same
 * chunk of requests (a burst of destroys costs one write back, not one turn per cleanup).
 */
export function cleanupRun(
  s: Supervisor,
  run: Run,
  keepLogs: boolean,
): Record<string, never> | Promise<Record<string, never>> {
  if (run.exit) return forgetRun(s, run, keepLogs);
  return reapThenForget(s, run, keepLogs);
}

/**
 * The cleanups of many runs in one request: those that have exited are done at once (and the
 * reply leaves with the chunk's), the others once reaped. A run that fails is named in the
 * reply and does not fail the rest; one not on record is already clean.
 */
export function cleanupRuns(
  s: Supervisor,
  runIds: unknown,
  keepLogs: boolean,
): Replies["cleanupMany"] | Promise<Replies["cleanupMany"]> {
  if (!Array.isArray(runIds) || !runIds.every((runId) => typeof runId === "string")) {
    throw fail("BACKEND_ERROR", "cleanupMany: runIds must be an array of run ids");
  }
  const failed: Replies["cleanupMany"]["failed"] = [];
  const reaping: Array<Promise<unknown>> = [];
  for (const runId of runIds as string[]) {
    const run = s.runs.get(runId);
    if (!run) continue;
    if (run.exit) {
      forgetRun(s, run, keepLogs);
      continue;
    }
    reaping.push(
      reapThenForget(s, run, keepLogs).catch((error: unknown) =>
        failed.push({ runId, error: s.lib.toWireError(error) }),
      ),
    );
  }
  if (reaping.length === 0) return { failed };
  return Promise.all(reaping).then(() => ({ failed }));
}

/** Cleanup of a run still alive: SIGKILL to its group, then its exit awaited (polled for an orphan). */
export async function reapThenForget(
  s: Supervisor,
  run: Run,
  keepLogs: boolean,
): Promise<Record<string, never>> {
  s.lib.signalRun(s, run, "SIGKILL");
  if (run.orphan) {
    const deadline = Date.now() + 10_000;
    while (!run.exit && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      if (!s.lib.isAlive(s, run.record)) s.lib.markOrphanGone(s, run);
    }
  }
  if (!(await s.lib.waitExit(run, 10_000))) {
    throw fail("CLEANUP_FAILED", `Run ${run.record.runId} (pid ${run.record.pid}) did not die after SIGKILL`);
  }
  return forgetRun(s, run, keepLogs);
}

/** The end of a cleanup, once the run has exited: its group swept, its logs and its record gone. */
export function forgetRun(s: Supervisor, run: Run, keepLogs: boolean): Record<string, never> {
  // Whatever the workload left in its group (grandchildren) goes too; a group found empty
  // when its leader was reaped stays empty (nothing can join a group that has no member).
  if (!run.groupGone) s.lib.signalRun(s, run, "SIGKILL");
  if (!keepLogs) {
    // This supervisor only knows of the rotations it did itself.
    const earlier = run.record.startedAt < s.startedAt;
    s.logs.delete(run.record.stdoutPath, earlier);
    s.logs.delete(run.record.stderrPath, earlier);
  }
  if (s.runs.get(run.record.runId) === run) {
    s.runs.delete(run.record.runId);
    s.journal.append({ op: "remove", runId: run.record.runId });
    s.journal.maybeCompact(s.runs);
  }
  return {};
}

/** Kills every run and exits; refused while workloads live unless forced. */
export async function shutdownSupervisor(s: Supervisor, force: boolean): Promise<Record<string, never>> {
  if (s.live > 0 && !force) {
    throw fail(
      "WORKLOAD_CONFLICT",
      `The supervisor still has ${s.live} live workload(s); stop them or use force`,
    );
  }
  s.exitingDown = true;
  for (const run of s.runs.values()) if (!run.exit) s.lib.signalRun(s, run, "SIGKILL");
  await Promise.all(
    [...s.runs.values()].map((run) => (run.orphan ? Promise.resolve(true) : s.lib.waitExit(run, 10_000))),
  );
  for (const run of s.runs.values()) if (run.orphan && !run.exit) s.lib.markOrphanGone(s, run);
  for (const run of s.runs.values()) s.lib.signalRun(s, run, "SIGKILL");
  setImmediate(() => s.lib.exitNow(s));
  return {};
}

/**
 * A kernel leaves (its backend closes). With no live workload and no other kernel there is
 * nothing to supervise: exit now rather than after the idle time, so that nothing touches
 * the state and log dirs once the kernel's shutdown returns.
 */
export function detachClient(s: Supervisor, socket: NetModule.Socket): { exiting: boolean } {
  const exiting = s.live === 0 && [...s.server.clients].every((client) => client === socket);
  if (exiting) {
    s.exitingDown = true;
    s.lib.diag(s, "the last kernel left and no workload runs: exiting");
    setImmediate(() => s.lib.exitNow(s));
  }
  return { exiting };
}

export function supervisorStats(s: Supervisor): SupervisorStats {
  return {
    pid: process.pid,
    live: s.live,
    records: s.runs.size,
    clients: s.server.clients.size,
    rss: process.memoryUsage.rss(),
    fdLimit: s.limits.openFiles,
    maxWorkloads: s.maxWorkloads,
    pooledLogFiles: s.logs.pooled,
    spawners: s.spawners.spawners.map(({ child }) => ({
      pid: child.pid ?? 0,
      rss: s.lib.readRss(s.fs, child.pid ?? 0),
    })),
  };
}

/**
 * Rotates the log files of the live runs that are over their cap. Not in the middle of a
 * burst of requests or exits, unless the last check was put off too: a look at the files of
 * 1,000 runs took a tenth of a second of a stop of all of them (it competes with the dying
 * processes for the supervisor's core).
 */
export function checkLogs(s: Supervisor): void {
  if (s.live === 0) return;
  s.logCheckPutOff = !s.logCheckPutOff && !s.logs.quiet();
  if (s.logCheckPutOff) return;
  for (const run of s.runs.values()) {
    if (run.exit) continue;
    s.logs.rotate(run.record.stdoutPath);
    s.logs.rotate(run.record.stderrPath);
  }
}
