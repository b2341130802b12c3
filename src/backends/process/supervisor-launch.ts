/**
 * The launch seam: how the supervisor turns a start into a running process (argv, env, cwd,
 * stdout and stderr appended to the run's log files, stdin closed, its own session and process
 * group). It owns the spawn call and what its errors mean; it must not touch the journal, the
 * run table or the socket. The supervisor and its spawners (`spawner.ts`) both spawn through it. Change how workloads are launched (a sandbox around the command,
 * another spawner) here and only here. Part of the supervisor's program (see `supervisor.ts`):
 * each function reaches Node only through its parameters.
 * @module
 */
import type * as ChildProcessModule from "node:child_process";
import type * as FsModule from "node:fs";
import type { StartSpec, WireError } from "./protocol.js";

/** What {@link launchWorkload} needs. */
export interface LaunchDeps {
  cp: Pick<typeof ChildProcessModule, "spawn">;
  fs: Pick<typeof FsModule, "closeSync">;
  /** Opens a log file for appending (from the supervisor's pool of empty files when it can). */
  openLog(file: string): number;
}

/**
 * Spawns the workload of `spec`. The contract the rest of the supervisor relies on:
 * - the process leads its own session and process group (its pgid is its pid), so that a
 *   signal to the group reaches whatever it forks, and nothing of the supervisor's;
 * - its stdout and stderr are `spec.stdoutPath` and `spec.stderrPath`, opened O_APPEND (the
 *   supervisor rotates them by copy-then-truncate), and no fd of the supervisor stays open;
 * - errors that Node throws at once are thrown (map them with {@link launchError}); those it
 *   reports later come as the child's `error` event, and its `pid` is then undefined.
 */
export function launchWorkload(
  deps: LaunchDeps,
  spec: Pick<StartSpec, "command" | "env" | "cwd" | "stdoutPath" | "stderrPath">,
): ChildProcessModule.ChildProcess {
  let out = -1;
  let err = -1;
  try {
    out = deps.openLog(spec.stdoutPath);
    err = deps.openLog(spec.stderrPath);
    return deps.cp.spawn(spec.command[0] as string, spec.command.slice(1), {
      cwd: spec.cwd,
      env: spec.env,
      stdio: ["ignore", out, err],
      detached: true,
    });
  } finally {
    if (out >= 0) deps.fs.closeSync(out);
    if (err >= 0) deps.fs.closeSync(err);
  }
}

/** What a failed launch means for the user: the error a refused start replies with. */
export function launchError(
  fs: Pick<typeof FsModule, "existsSync">,
  error: NodeJS.ErrnoException,
  spec: StartSpec,
): WireError & Error {
  const errno = error.code ?? "UNKNOWN";
  const argv0 = spec.command[0];
  const cannot = (code: string, why: string) =>
    Object.assign(new Error(`Cannot start "${spec.workloadId}": ${why}`), {
      code,
      message: `Cannot start "${spec.workloadId}": ${why}`,
    });
  if (errno === "EAGAIN" || errno === "EMFILE" || errno === "ENFILE" || errno === "ENOMEM") {
    return cannot("RESOURCE_EXHAUSTED", `the system refused (${errno})`);
  }
  if (errno === "ENOENT" && !fs.existsSync(spec.cwd)) {
    return cannot("START_FAILED", `working directory ${spec.cwd} does not exist`);
  }
  if (errno === "ENOENT") return cannot("START_FAILED", `command not found: ${argv0}`);
  if (errno === "EACCES") return cannot("START_FAILED", `permission denied: ${argv0}`);
  return cannot("START_FAILED", errno);
}
