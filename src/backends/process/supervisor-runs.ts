/**
 * The supervisor's run table: whether a recorded process still runs, signalling its group,
 * recording and pushing its exit, adopting the runs an earlier supervisor left, idling out
 * and exiting. It owns `Supervisor.runs` and the counts beside it; it must not spawn (see
 * `supervisor-launch.ts`) nor parse requests (see `supervisor-server.ts`). Part of the
 * supervisor's program (see `supervisor.ts`): each function reaches Node, and the other
 * modules' functions, only through its parameters (`s.lib`).
 * @module
 */

import type { RunRecord, WireError, WireExit } from "./protocol.js";
import type { SpawnedExit } from "./spawner.js";
import type { JournalRun } from "./supervisor-journal.js";
import type { Run, Supervisor } from "./supervisor-state.js";

/** Epoch ms with the precision of the monotonic clock: when an exit was observed. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Appends a line to the diagnostics file (`supervisor.log` in the state dir). */
export function diag(s: Supervisor, message: string): void {
  try {
    s.fs.appendFileSync(s.diagPath, `${new Date().toISOString()} [${process.pid}] ${message}\n`, {
      mode: 0o600,
    });
  } catch {}
}

/** Tells every kernel (and the diagnostics file) about a problem outside any request. */
export function warn(s: Supervisor, message: string): void {
  diag(s, message);
  s.lib.broadcast(s.server, `${JSON.stringify({ event: "warning", message })}\n`);
}

/** Whether the recorded process still runs (same boot, same start time, not a zombie). */
export function isAlive(s: Supervisor, record: RunRecord): boolean {
  if (record.bootId !== s.bootId) return false;
  const stat = s.lib.readProcStat(s.fs, record.pid);
  return stat !== undefined && stat.startTime === record.startTime && !stat.zombie;
}

/** Whether the pid now names another process than the recorded one. */
export function pidReused(s: Supervisor, record: RunRecord): boolean {
  if (record.bootId !== s.bootId) return true;
  const stat = s.lib.readProcStat(s.fs, record.pid);
  return stat !== undefined && stat.startTime !== record.startTime;
}

/**
 * Sends `signal` to the run's whole process group (the workload is a session and group
 * leader, so its pgid is its pid). After the leader is gone the group may still hold
 * grandchildren; they are signalled too unless the pid has been reused meanwhile.
 */
export function signalRun(s: Supervisor, run: Run, signal: "SIGTERM" | "SIGKILL"): boolean {
  const { pid } = run.record;
  if (run.orphan && !run.exit && !isAlive(s, run.record)) markOrphanGone(s, run);
  if (run.exit && pidReused(s, run.record)) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    // ESRCH: the group is empty. EPERM cannot happen for our own children.
    return false;
  }
}

/**
 * Whether the process group `pgid` has no member left. Asked right after its leader was
 * reaped; should the pid be reused by then, the answer is "not gone", which only costs a
 * signal that `signalRun` checks anyway.
 */
export function groupGone(pgid: number): boolean {
  // Asked for every exit, and mostly answered by ESRCH: that error without a stack costs a
  // third (measured, a stop of all spent a quarter of the supervisor's time here).
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    process.kill(-pgid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

/** Records a run's exit, pushes it to the kernels (on the next turn) and wakes its waiters. */
export function recordExit(s: Supervisor, run: Run, exit: WireExit): void {
  if (run.exit) return;
  run.exit = exit;
  run.child = undefined;
  s.live--;
  // Serialized once, for the journal's line and the kernels' push.
  const fields = `"runId":${JSON.stringify(run.record.runId)},"exit":${JSON.stringify(exit)}`;
  s.journal.appendJson(`{"op":"exit",${fields}}`);
  s.pendingExits.push(`{"event":"exit",${fields}}`);
  if (s.pendingExits.length === 1) setImmediate(() => pushExits(s));
  const waiters = run.exitWaiters;
  run.exitWaiters = [];
  for (const waiter of waiters) waiter();
  noteIdle(s);
}

/** Sends the exits recorded since the last push to every kernel, in one write each. */
export function pushExits(s: Supervisor): void {
  if (s.pendingExits.length === 0) return;
  // On record first when the journal can be written; pushed anyway when it cannot (a
  // stopped workload must not look alive to its kernel): the journal gets it later.
  s.journal.flush();
  const text = `${s.pendingExits.join("\n")}\n`;
  s.pendingExits = [];
  s.lib.broadcast(s.server, text);
}

/**
 * A workload ended, as its parent saw it (this supervisor, or the spawner that forked it): a
 * signal's death is recorded as 128 + its number.
 */
export function onChildExit(s: Supervisor, run: Run, exit: SpawnedExit): void {
  if (run.refusal) return;
  s.logs.activity();
  run.groupGone = exit.groupGone;
  if (exit.signal) {
    const n = s.os.constants.signals[exit.signal] ?? 0;
    recordExit(s, run, { exitCode: 128 + n, signal: exit.signal, at: exit.at });
  } else {
    recordExit(s, run, { exitCode: exit.code, at: exit.at });
  }
}

/** How a child of this supervisor's own, just reaped, ended. */
export function reapedNow(pid: number, code: number | null, signal: NodeJS.Signals | null): SpawnedExit {
  return { code, signal, at: preciseNow(), groupGone: groupGone(pid) };
}

/** An adopted run is gone: when and how it ended is unknown. */
export function markOrphanGone(s: Supervisor, run: Run): void {
  run.orphan = false;
  s.orphans--;
  recordExit(s, run, { exitCode: null, lost: true, at: preciseNow() });
}

/** Undoes a start that cannot be recorded: no kernel hears of the run, and it does not run on. */
export function refuse(s: Supervisor, run: Run, error: WireError): void {
  run.refusal = {
    code: error.code,
    message: `Cannot start "${run.record.workloadId}": ${error.message}; nothing was started`,
  };
  s.runs.delete(run.record.runId);
  s.live--;
  try {
    process.kill(-run.record.pid, "SIGKILL");
  } catch {}
  s.logs.delete(run.record.stdoutPath, false);
  s.logs.delete(run.record.stderrPath, false);
  noteIdle(s);
}

/**
 * Adopts a live run whose exit no one will report (a dead supervisor's, a dead spawner's):
 * it is polled through /proc until it ends, and then ends `lost`.
 */
export function adoptAsOrphan(s: Supervisor, run: Run): void {
  run.orphan = true;
  s.orphans++;
  s.orphanTimer ??= setInterval(() => s.lib.pollOrphans(s), s.config.orphanPollMs);
}

/** Checks on the adopted runs (they cannot be waited for); stops once none is left. */
export function pollOrphans(s: Supervisor): void {
  if (s.orphans === 0) {
    if (s.orphanTimer) clearInterval(s.orphanTimer);
    s.orphanTimer = undefined;
    return;
  }
  for (const run of s.runs.values()) {
    if (run.orphan && !run.exit && !isAlive(s, run.record)) markOrphanGone(s, run);
  }
}

/** Resolves true once the run has exited, false after `timeoutMs`. */
export function waitExit(run: Run, timeoutMs: number): Promise<boolean> {
  if (run.exit) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    run.exitWaiters.push(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Takes over the runs on record at start-up: those still alive are adopted as orphans, the
 * others lost (their exit was not seen). What an earlier supervisor spawned without recording
 * it is killed.
 */
export function adoptRuns(s: Supervisor, runs: Map<string, JournalRun>, unrecorded: string[]): void {
  for (const [runId, { record, exit }] of runs)
    s.runs.set(runId, { record, exit, orphan: false, exitWaiters: [] });
  if (unrecorded.length > 0) killUnrecorded(s, unrecorded);
  for (const run of s.runs.values()) {
    if (run.exit) continue;
    if (isAlive(s, run.record)) {
      s.live++;
      adoptAsOrphan(s, run);
    } else {
      run.exit = { exitCode: null, lost: true, at: preciseNow() };
    }
  }
}

/**
 * Kills what a previous supervisor spawned but died before recording: the processes that
 * hold one of the run's log files open for writing (the workload, and whatever it forked).
 * No kernel was told of them. Their log files go too.
 */
export function killUnrecorded(s: Supervisor, logFiles: string[]): void {
  const inodes = new Set<string>();
  for (const file of logFiles) {
    const stat = s.fs.statSync(file, { throwIfNoEntry: false });
    if (stat) inodes.add(`${stat.dev}:${stat.ino}`);
  }
  for (const pid of inodes.size > 0 ? s.lib.writersOf(s.fs, inodes, process.pid) : []) {
    const group = s.lib.readProcStat(s.fs, pid)?.pgid;
    diag(s, `killing pid ${pid}: spawned by a supervisor that died before recording it`);
    try {
      process.kill(group === pid ? -pid : pid, "SIGKILL");
    } catch {}
  }
  for (const file of logFiles) s.logs.delete(file, true);
}

export function clearIdle(s: Supervisor): void {
  if (s.idleTimer) clearTimeout(s.idleTimer);
  s.idleTimer = undefined;
}

/**
 * With no live workload and no client, exits after `idleMs`, or at once (within half a
 * second) when its state dir has been removed.
 */
export function noteIdle(s: Supervisor): void {
  if (s.live > 0 || s.server.clients.size > 0 || s.idleTimer) return;
  const since = Date.now();
  const { idleMs } = s.config;
  const tick = () => {
    s.idleTimer = undefined;
    if (s.live > 0 || s.server.clients.size > 0) return;
    if (s.journal.deleted() || Date.now() - since >= idleMs) {
      diag(s, "idle: no live workload and no client, exiting");
      exitNow(s);
      return;
    }
    s.idleTimer = setTimeout(tick, Math.min(500, idleMs - (Date.now() - since)));
  };
  s.idleTimer = setTimeout(tick, Math.min(500, idleMs));
}

/**
 * Exits: every file written and closed and the socket removed first, the connections
 * closed last, so that a kernel that sees its connection close knows the supervisor has
 * stopped touching its files.
 */
export function exitNow(s: Supervisor): void {
  s.logs.stop();
  s.lib.stopSpawners(s);
  const sockets = [...s.server.clients];
  try {
    s.lib.flushOutboxes(s.server);
    pushExits(s);
    s.journal.close();
  } catch {}
  try {
    s.listener?.close();
    s.fs.unlinkSync(s.config.socketPath);
  } catch {}
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}
