/**
 * How a stop and an exit go through a sandbox. The supervisor spawns bubblewrap itself (no
 * process waits around it), so a sandboxed run's process group holds bubblewrap's monitor,
 * the sandbox's pid 1 (bubblewrap's init) and the command with whatever it forks: the
 * command stays in that group (no `--new-session`: the supervisor's spawn already gave the
 * run a session of its own, with no terminal). A SIGTERM to the group is ignored by the
 * monitor and the init (`env --ignore-signal` before bwrap), and reaches the command and its
 * children as it would unsandboxed. Two things follow, and are held here:
 * - a SIGTERM sent while bubblewrap still sets the sandbox up, before `env --default-signal`
 *   gave the command SIGTERM back, would be ignored and lost: {@link untilSandboxCommand}
 *   waits for that moment before the backend has the supervisor signal;
 * - bubblewrap reports a command that died of signal n as exit code 128 + n:
 *   {@link sandboxExit} reads that back as the signal, so that an exit reads as it would
 *   unsandboxed (143 and SIGTERM).
 * @module
 */
import { closeSync, openSync, readSync } from "node:fs";
import { constants } from "node:os";
import type { WireExit } from "./protocol.js";

/** Where a sandbox is: bubblewrap still at work, the command running, or nothing left. */
export type SandboxPhase = "setup" | "running" | "gone";

/** Reads a /proc file; throws when it is not there. */
export type ProcReader = (path: string) => string;

const buffer = Buffer.alloc(4096);

/**
 * The start of a /proc file (all of a stat line; the first pids of a children list) in one
 * read into a buffer kept for it: a stop of a thousand sandboxes reads three thousand.
 */
const readProc: ProcReader = (path) => {
  const fd = openSync(path, "r");
  try {
    return buffer.toString("latin1", 0, readSync(fd, buffer, 0, buffer.length, 0));
  } finally {
    closeSync(fd);
  }
};

/** SIGTERM's bit in a mask of signals. */
const SIGTERM_BIT = 1n << 14n;

function firstChild(pid: number, read: ProcReader): number | undefined {
  const first = read(`/proc/${pid}/task/${pid}/children`).trim().split(" ")[0];
  return first ? Number(first) : undefined;
}

/**
 * What /proc/<pid>/stat ("pid (comm) state ...") says of a process: its name, whether it is
 * a zombie, its start time (the 22nd field) and the mask of signals it ignores (the 33rd).
 */
function statOf(
  pid: number,
  read: ProcReader,
): { name: string; zombie: boolean; startTime: number; ignored: bigint } {
  const stat = read(`/proc/${pid}/stat`);
  const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    name,
    zombie: fields[0] === "Z" || fields[0] === "X",
    startTime: Number(fields[19]),
    ignored: BigInt(fields[30] ?? "0"),
  };
}

/** The run's process: bubblewrap's pid, and its start time when known (a reused pid is not it). */
export interface SandboxProcess {
  pid: number;
  startTime?: number;
}

/**
 * Where the sandbox that bubblewrap (the run's process) sets up is: `"running"` once
 * its command has SIGTERM back (the first child of the sandbox's init ignores SIGTERM no
 * more, or is no longer bubblewrap or `env`: a command that ignores SIGTERM itself has run).
 */
export function sandboxPhase({ pid, startTime }: SandboxProcess, read: ProcReader = readProc): SandboxPhase {
  let init: number | undefined;
  try {
    init = firstChild(pid, read);
  } catch {
    return "gone";
  }
  try {
    const command = init === undefined ? undefined : firstChild(init, read);
    if (command !== undefined) {
      const { name, ignored } = statOf(command, read);
      if ((ignored & SIGTERM_BIT) === 0n || (name !== "bwrap" && name !== "env")) return "running";
    }
    const leader = statOf(pid, read);
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
 * Resolves once the sandbox of `run` runs its command, or is gone, or after `timeoutMs` (a
 * setup that hangs: the stop's SIGKILL deals with it), looking every few milliseconds.
 */
export async function untilSandboxCommand(
  run: SandboxProcess,
  timeoutMs: number,
  read: ProcReader = readProc,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let waitMs = 1; sandboxPhase(run, read) === "setup" && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    waitMs = Math.min(waitMs * 2, 20);
  }
}

/** Signals whose default action does not end a process: an exit code 128 + one is a code. */
const NOT_FATAL = new Set([
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGWINCH",
]);

/** The name of each fatal signal by number (the first name of aliases: SIGABRT, not SIGIOT). */
const FATAL_BY_NUMBER = new Map<number, string>();
for (const [name, n] of Object.entries(constants.signals)) {
  if (!NOT_FATAL.has(name) && !FATAL_BY_NUMBER.has(n)) FATAL_BY_NUMBER.set(n, name);
}

/**
 * The exit of a sandboxed run as the command made it: bubblewrap exits 128 + n when its
 * command died of the fatal signal n, which reads back as that signal (as a shell reports
 * it). bubblewrap dying of a signal itself (a SIGKILL of the group) comes with it already.
 */
export function sandboxExit(exit: WireExit): WireExit {
  if (exit.lost || exit.signal || exit.exitCode === null || exit.exitCode <= 128) return exit;
  const signal = FATAL_BY_NUMBER.get(exit.exitCode - 128);
  return signal ? { ...exit, signal } : exit;
}
