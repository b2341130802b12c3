/**
 * A spawner: the small Node process that forks workloads for the supervisor, so that several
 * forks run at once (Node's spawn is a synchronous fork and exec wait on the main thread, one
 * at a time per process; a fork costs more the larger the parent). It spawns what its
 * supervisor asks on stdin, one JSON line each ({@link SpawnRequest}), answers each with the
 * pid and start time (or the errno), and, as the workloads' parent, reaps them and reports each
 * exit status ({@link SpawnerMessage}, one JSON line each on stdout). It keeps no record: the
 * journal, the run table and every decision stay the supervisor's (`supervisor-spawners.ts`).
 *
 * It spawns nothing once its supervisor is gone (its parent pid changed), and kills what it
 * spawned in the moment it died: no successor would know of it. It exits when its stdin
 * closes; its workloads, each the leader of its own session, live on, adopted by the
 * successor as a dead supervisor's are.
 *
 * Runs as `node -e` with the source text of {@link spawnerMain} and the functions it is given:
 * like the supervisor's, it imports nothing at run time.
 * @module
 */
import type * as ChildProcessModule from "node:child_process";
import type * as FsModule from "node:fs";
import type { StartSpec } from "./protocol.js";
import type { launchWorkload } from "./supervisor-launch.js";
import type { readProcStat } from "./supervisor-proc.js";
import type { groupGone } from "./supervisor-runs.js";

/** One spawn, as the supervisor asks it: the run's argv, env, cwd and log files. */
export interface SpawnRequest
  extends Pick<StartSpec, "command" | "env" | "cwd" | "stdoutPath" | "stderrPath"> {
  id: number;
}

/** How a spawner saw a workload end. */
export interface SpawnedExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Epoch ms (fractional) at which it was reaped. */
  at: number;
  /** Nothing of its process group was left when it was reaped. */
  groupGone: boolean;
}

/** One line from a spawner: ready, a spawn's pid or errno, a workload's exit. */
export type SpawnerMessage =
  | { ready: true }
  | { id: number; pid: number; startTime: number }
  | { id: number; errno: string }
  | { id: number; exit: SpawnedExit };

/** The supervisor's functions a spawner uses (their source travels with its own). */
export interface SpawnerDeps {
  launchWorkload: typeof launchWorkload;
  readProcStat: typeof readProcStat;
  groupGone: typeof groupGone;
}

/** Runs a spawner in the current process; see the module's description. */
export function spawnerMain(deps: SpawnerDeps): void {
  const cp = process.getBuiltinModule("node:child_process") as typeof ChildProcessModule;
  const fs = process.getBuiltinModule("node:fs") as typeof FsModule;
  process.title = "runtime-kernel-spawner";
  const supervisor = process.ppid;
  const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW } = fs.constants;
  const logFlags = O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW;
  // The supervisor put the files in place (from its pool): open them as it would.
  const openLog = (file: string) => fs.openSync(file, logFlags, 0o600);
  // fd 1 is the blocking end of a socket pair: a write waits for room, never fails for it.
  const send = (text: string) => {
    try {
      fs.writeSync(1, text);
    } catch {
      process.exit(0); // the supervisor is gone
    }
  };
  // Answers go out 16 at a time and at the end of each chunk of requests, exits in one write
  // per turn (a stop of all ends hundreds at once): a write wakes the supervisor, and each
  // wake-up costs it and its kernels more than the line. An answer always leaves before its
  // run's exit, which needs a later turn.
  let answers = "";
  let answered = 0;
  const answer = (message: object) => {
    answers += `${JSON.stringify(message)}\n`;
    if (++answered >= 16) flushAnswers();
  };
  const flushAnswers = () => {
    if (answers === "") return;
    const text = answers;
    answers = "";
    answered = 0;
    send(text);
  };
  let exits: string[] = [];
  const flushExits = () => {
    if (exits.length === 0) return;
    const text = exits.join("");
    exits = [];
    send(text);
  };
  const spawnOne = (request: SpawnRequest) => {
    if (process.ppid !== supervisor) return;
    const { id } = request;
    try {
      const child = deps.launchWorkload({ cp, fs, openLog }, request);
      const pid = child.pid;
      if (pid === undefined) {
        child.once("error", (error: NodeJS.ErrnoException) => {
          answer({ id, errno: error.code ?? "UNKNOWN" });
          flushAnswers();
        });
        return;
      }
      if (process.ppid !== supervisor) {
        process.kill(-pid, "SIGKILL");
        return;
      }
      child.on("error", () => {});
      // Not reaped before this turn ends: its stat is there.
      const startTime = deps.readProcStat(fs, pid)?.startTime ?? 0;
      answer({ id, pid, startTime });
      child.once("exit", (code, signal) => {
        const at = performance.timeOrigin + performance.now();
        const exit = { code, signal, at, groupGone: deps.groupGone(pid) };
        exits.push(`${JSON.stringify({ id, exit })}\n`);
        if (exits.length === 1) setImmediate(flushExits);
      });
    } catch (error) {
      answer({ id, errno: (error as NodeJS.ErrnoException).code ?? "UNKNOWN" });
    }
  };
  let buffer = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk: string) => {
    // Exits reaped on this turn leave before the forks of this chunk, not after them.
    flushExits();
    buffer += chunk;
    let start = 0;
    for (let newline = buffer.indexOf("\n"); newline >= 0; newline = buffer.indexOf("\n", start)) {
      spawnOne(JSON.parse(buffer.slice(start, newline)) as SpawnRequest);
      start = newline + 1;
    }
    buffer = buffer.slice(start);
    flushAnswers();
  });
  process.stdin.on("end", () => process.exit(0));
  send(`${JSON.stringify({ ready: true })}\n`);
}
