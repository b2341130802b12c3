/**
 * A sandboxed run's SIGTERM, sent by the supervisor once the sandbox can receive it. A SIGTERM
 * to the group while bubblewrap still sets the sandbox up, before `env --default-signal` gave
 * the command SIGTERM back, is ignored by every process there and lost (see
 * `sandbox-signals.ts`): a `signal` request that names a wait ({@link terminateSandbox}) looks
 * at /proc until the command is past that point, then signals. It runs here, beside the
 * process it looks at, rather than on the kernel's event loop; and ahead of the stop: a
 * sandbox is looked at once its setup had time to finish ({@link lookAheadAt}), and a run seen
 * running once is not looked at again. Part of the supervisor's program (see
 * `supervisor.ts`): each function reaches Node, and the other modules' functions, only through
 * its parameters (`s.lib`).
 * @module
 */
import type * as FsModule from "node:fs";
import type { Run, Supervisor } from "./supervisor-state.js";

/** Where a sandbox is: bubblewrap still at work, the command running, or nothing left. */
export type SandboxPhase = "setup" | "running" | "gone";

/** Reads the start of a /proc file; throws when it is not there. */
export type ProcReader = (path: string) => string;

/** The run's process: bubblewrap's pid, and its start time when known (a reused pid is not it). */
export interface SandboxProcess {
  pid: number;
  startTime?: number;
}

/**
 * A {@link ProcReader} over `fs` that reads the first kilobyte of a file (all of a stat line,
 * the first pids of a children list) into one buffer it keeps.
 */
export function procReader(fs: Pick<typeof FsModule, "openSync" | "readSync" | "closeSync">): ProcReader {
  const buffer = Buffer.allocUnsafe(1024);
  return (path) => {
    const fd = fs.openSync(path, "r");
    try {
      return buffer.toString("latin1", 0, fs.readSync(fd, buffer, 0, buffer.length, 0));
    } finally {
      fs.closeSync(fd);
    }
  };
}

/** The first child of `pid` (its main thread's), if it has one. */
export function firstChildOf(pid: number, read: ProcReader): number | undefined {
  const first = read(`/proc/${pid}/task/${pid}/children`).trim().split(" ")[0];
  return first ? Number(first) : undefined;
}

/**
 * What /proc/<pid>/stat ("pid (comm) state ...") says of a process: its name, whether it is
 * a zombie, its start time (the 22nd field) and whether it ignores SIGTERM (bit 15 of the
 * mask of ignored signals, the 33rd field, a decimal number up to 2^64).
 */
export function sandboxStat(
  pid: number,
  read: ProcReader,
): { name: string; zombie: boolean; startTime: number; ignoresTerm: boolean } {
  const stat = read(`/proc/${pid}/stat`);
  const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    name,
    zombie: fields[0] === "Z" || fields[0] === "X",
    startTime: Number(fields[19]),
    ignoresTerm: (BigInt(fields[30] || "0") & (1n << 14n)) !== 0n,
  };
}

/**
 * Where the sandbox that bubblewrap (the run's process) sets up is: `"running"` once its
 * command has SIGTERM back (the first child of the sandbox's init ignores SIGTERM no more, or
 * is no longer bubblewrap or `env`: a command that ignores SIGTERM itself has run).
 */
export function sandboxPhase({ pid, startTime }: SandboxProcess, read: ProcReader): SandboxPhase {
  let init: number | undefined;
  try {
    init = firstChildOf(pid, read);
  } catch {
    return "gone";
  }
  try {
    const command = init === undefined ? undefined : firstChildOf(init, read);
    if (command !== undefined) {
      const { name, ignoresTerm } = sandboxStat(command, read);
      if (!ignoresTerm || (name !== "bwrap" && name !== "env")) return "running";
    }
    const leader = sandboxStat(pid, read);
    // Ended (not yet reaped), or its pid now another process's: nothing to wait for.
    if (leader.zombie || (startTime !== undefined && leader.startTime !== startTime)) return "gone";
    // A run of an earlier version, adopted after an upgrade: a shell waits around bwrap
    // there, and passes SIGTERM on itself.
    return leader.name === "sh" ? "running" : "setup";
  } catch {
    // A process of the chain went away between two reads: look again.
    return "setup";
  }
}

/**
 * SIGTERM to a sandboxed run's group once its command can receive it, or once it is gone, or
 * after `timeoutMs` (a setup that hangs: the stop's SIGKILL deals with it), looking every few
 * milliseconds meanwhile. At once for a run that has exited or was seen running before.
 */
export function terminateSandbox(
  s: Supervisor,
  run: Run,
  timeoutMs: number,
): { delivered: boolean } | Promise<{ delivered: boolean }> {
  if (commandReached(s, run)) return { delivered: s.lib.signalRun(s, run, "SIGTERM") };
  const deadline = s.clock.now() + timeoutMs;
  return new Promise((resolve) => {
    const look = (waitMs: number) =>
      s.clock.setTimeout(() => {
        if (commandReached(s, run) || s.clock.now() >= deadline)
          resolve({ delivered: s.lib.signalRun(s, run, "SIGTERM") });
        else look(Math.min(waitMs * 2, 20));
      }, waitMs);
    look(1);
  });
}

/**
 * Whether a SIGTERM to the run's group reaches what it must: it has exited, or its command
 * runs (seen now or before), or nothing is left of it.
 */
export function commandReached(s: Supervisor, run: Run): boolean {
  if (run.exit || run.commandRuns) return true;
  const phase = sandboxPhase(run.record, s.readProc);
  if (phase === "running") run.commandRuns = true;
  return phase !== "setup";
}

/**
 * Looks ahead at a sandbox just started: once no sandbox has started for a moment (after a
 * burst of starts, while its setups finish), whether each runs its command, so that its stop
 * finds it known and sends its SIGTERM without a look at /proc. Measured, that look costs
 * tenths of a millisecond per sandbox in the middle of a stop of all (it competes with the
 * sandboxes dying on the supervisor's core) and some microseconds before it.
 */
export function lookAheadAt(s: Supervisor, run: Run): void {
  const { sandboxes } = s;
  sandboxes.unseen.add(run);
  sandboxes.pauseMs = 50;
  if (sandboxes.timer !== undefined) s.clock.clearTimeout(sandboxes.timer);
  sandboxes.timer = s.clock.setTimeout(() => lookAtSandboxes(s), sandboxes.pauseMs);
}

/**
 * Looks at up to 64 of the sandboxes not yet seen running per turn, and again at those still
 * in bubblewrap's setup after a pause that doubles each time (up to a second), so that the
 * looks do not slow the setups they wait for.
 */
export function lookAtSandboxes(s: Supervisor): void {
  const { sandboxes } = s;
  sandboxes.timer = undefined;
  let looked = 0;
  for (const run of sandboxes.unseen) {
    if (looked === 64) {
      sandboxes.timer = s.clock.setTimeout(() => lookAtSandboxes(s), 0);
      return;
    }
    looked++;
    if (commandReached(s, run)) sandboxes.unseen.delete(run);
  }
  if (sandboxes.unseen.size === 0) return;
  sandboxes.pauseMs = Math.min(sandboxes.pauseMs * 2, 1_000);
  sandboxes.timer = s.clock.setTimeout(() => lookAtSandboxes(s), sandboxes.pauseMs);
}
