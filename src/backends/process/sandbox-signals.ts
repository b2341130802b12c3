/**
 * How a stop and an exit go through a sandbox. The supervisor spawns bubblewrap itself (no
 * process waits around it), so a sandboxed run's process group holds bubblewrap's monitor,
 * the sandbox's pid 1 (bubblewrap's init) and the command with whatever it forks: the
 * command stays in that group (no `--new-session`: the supervisor's spawn already gave the
 * run a session of its own, with no terminal). A SIGTERM to the group is ignored by the
 * monitor and the init (`env --ignore-signal` before bwrap), and reaches the command and its
 * children as it would unsandboxed. Two things follow, and are held here:
 * - a SIGTERM sent while bubblewrap still sets the sandbox up, before `env --default-signal`
 *   gave the command SIGTERM back, would be ignored and lost: the backend's terminate asks
 *   the supervisor to wait for that moment (`supervisor-sandbox.ts`), and it signals then;
 * - bubblewrap reports a command that died of signal n as exit code 128 + n:
 *   {@link sandboxExit} reads that back as the signal, so that an exit reads as it would
 *   unsandboxed (143 and SIGTERM).
 * @module
 */
import { constants } from "node:os";
import type { WireExit } from "./protocol.js";

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
