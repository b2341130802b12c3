/**
 * The supervisor's pool of spawners (`spawner.ts`): small Node processes that fork the
 * workloads in parallel, one fork at a time each, while the supervisor keeps the journal, the
 * run table and the one exit path. Measured on 2 cores (docs/performance.md): 200 starts
 * through two spawners take a fraction of the time one process takes.
 *
 * It owns the spawner processes and the starts asked of them. A spawner answers a start with
 * the pid (the supervisor then records the start as for its own children) and later reports
 * the workload's exit status, which goes down the same path as the exit of a child of the
 * supervisor. A spawner that dies leaves its workloads running: those it had started become
 * orphans, polled through /proc like a dead supervisor's; a start it had not answered may have
 * spawned a process no one records, so the writers of that run's log files are killed and the
 * start fails. Until a spawner is ready, and when none can be launched, the supervisor spawns
 * by itself. Part of the supervisor's program (see `supervisor.ts`): each function reaches
 * Node, and the other modules' functions, only through its parameters (`s.lib`).
 * @module
 */
import type * as ChildProcessModule from "node:child_process";
import type { StartSpec } from "./protocol.js";
import type { SpawnerMessage, SpawnRequest } from "./spawner.js";
import type { Program, Run, Supervisor } from "./supervisor-state.js";

/** A start asked of a spawner and not answered yet. */
export interface AskedStart {
  spec: StartSpec;
  resolve(value: { pid: number; startTime: number }): void;
  reject(error: Error): void;
}

/** One spawner process. */
export interface Spawner {
  child: ChildProcessModule.ChildProcess;
  /** It said it is ready: starts may be asked of it. */
  ready: boolean;
  asked: Map<number, AskedStart>;
  /** The runs it spawned that have not exited, by the id of their start. */
  runs: Map<number, Run>;
  buffer: string;
}

/** The pool. */
export interface SpawnerPool {
  /** How many spawners to keep (0: the supervisor spawns by itself). */
  size: number;
  spawners: Spawner[];
  nextId: number;
  /** Spawners in a row that died before they were ready; at 3 the pool gives up. */
  failures: number;
}

/** A pool of `size` spawners; none is launched yet (see {@link fillSpawnerPool}). */
export function createSpawnerPool(size: number): SpawnerPool {
  return { size, spawners: [], nextId: 0, failures: 0 };
}

/** The source text a spawner runs: its main function and the supervisor's functions it uses. */
export function spawnerProgram(lib: Program): string {
  const deps = {
    launchWorkload: lib.launchWorkload,
    readProcStat: lib.readProcStat,
    groupGone: lib.groupGone,
  };
  const table = Object.entries(deps).map(([name, fn]) => `${name}: ${fn.name}`);
  return [
    '"use strict";',
    "var __name = (target) => target;",
    ...Object.values(deps).map((fn) => fn.toString()),
    lib.spawnerMain.toString(),
    `${lib.spawnerMain.name}({ ${table.join(", ")} });`,
  ].join("\n");
}

/** Launches the spawners missing from the pool (at start-up, and after one died). */
export function fillSpawnerPool(s: Supervisor): void {
  while (s.spawners.spawners.length < s.spawners.size) launchSpawner(s);
}

/**
 * The ready spawner with the fewest starts in flight, launching the missing ones first;
 * `undefined` while none is ready (the supervisor then spawns by itself).
 */
export function pickSpawner(s: Supervisor): Spawner | undefined {
  const pool = s.spawners;
  fillSpawnerPool(s);
  let best: Spawner | undefined;
  for (const spawner of pool.spawners) {
    if (spawner.ready && (best === undefined || spawner.asked.size < best.asked.size)) best = spawner;
  }
  return best;
}

/** Launches one spawner, with an empty environment, outside the state dir. */
export function launchSpawner(s: Supervisor): void {
  const pool = s.spawners;
  let child: ChildProcessModule.ChildProcess;
  try {
    child = s.cp.spawn(process.execPath, ["-e", spawnerProgram(s.lib)], {
      stdio: ["pipe", "pipe", "ignore"],
      env: {},
      cwd: "/",
    });
  } catch (error) {
    s.lib.diag(s, `cannot launch a spawner: ${(error as Error).message}; spawning in the supervisor`);
    pool.size = 0;
    return;
  }
  const spawner: Spawner = { child, ready: false, asked: new Map(), runs: new Map(), buffer: "" };
  pool.spawners.push(spawner);
  child.on("error", (error) => s.lib.diag(s, `spawner: ${error.message}`));
  child.stdin?.on("error", () => {});
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    // Starts and exits in progress: the log pool's refill waits for quiet.
    s.logs.activity();
    spawner.buffer += chunk;
    let start = 0;
    const text = spawner.buffer;
    for (let newline = text.indexOf("\n"); newline >= 0; newline = text.indexOf("\n", start)) {
      const line = text.slice(start, newline);
      start = newline + 1;
      let message: SpawnerMessage;
      try {
        message = JSON.parse(line);
      } catch {
        s.lib.diag(s, `spawner ${child.pid}: dropped a line that is not JSON`);
        continue;
      }
      onSpawnerMessage(s, spawner, message);
    }
    spawner.buffer = text.slice(start);
  });
  // After its last line was read and it was reaped.
  child.once("close", (code, signal) => spawnerGone(s, spawner, signal ?? `exit code ${code}`));
}

/**
 * Asks `spawner` to start the run of `spec` (its spawn line already on record). Resolves with
 * the run recorded as started; rejects as a start the supervisor made itself would throw.
 * `forget` undoes what the start left (its log files, its spawn line).
 */
export function startThroughSpawner(
  s: Supervisor,
  spawner: Spawner,
  spec: StartSpec,
  forget: () => void,
): Promise<{ pid: number; startTime: number }> {
  try {
    // The files come from the supervisor's pool; the spawner opens them by their path.
    s.logs.prepare(spec.stdoutPath);
    s.logs.prepare(spec.stderrPath);
  } catch (error) {
    forget();
    return Promise.reject(s.lib.launchError(s.fs, error as NodeJS.ErrnoException, spec));
  }
  const id = ++s.spawners.nextId;
  const { command, env, cwd, stdoutPath, stderrPath } = spec;
  const request: SpawnRequest = { id, command, env, cwd, stdoutPath, stderrPath };
  return new Promise((resolve, reject) => {
    spawner.asked.set(id, {
      spec,
      resolve,
      reject: (error) => {
        forget();
        reject(error);
      },
    });
    // One write for all the starts of this turn (a burst of creates is one chunk of requests).
    const stdin = spawner.child.stdin as NonNullable<ChildProcessModule.ChildProcess["stdin"]>;
    if (stdin.writableCorked === 0) {
      stdin.cork();
      process.nextTick(() => stdin.uncork());
    }
    stdin.write(`${JSON.stringify(request)}\n`);
  });
}

/** One line from a spawner. */
export function onSpawnerMessage(s: Supervisor, spawner: Spawner, message: SpawnerMessage): void {
  if ("ready" in message) {
    spawner.ready = true;
    s.spawners.failures = 0;
    return;
  }
  if ("exit" in message) {
    const run = spawner.runs.get(message.id);
    spawner.runs.delete(message.id);
    if (run) s.lib.onChildExit(s, run, message.exit);
    return;
  }
  const asked = spawner.asked.get(message.id);
  if (!asked) return;
  spawner.asked.delete(message.id);
  if ("errno" in message) {
    asked.reject(
      s.lib.launchError(s.fs, Object.assign(new Error(message.errno), { code: message.errno }), asked.spec),
    );
    return;
  }
  const run = s.lib.recordStart(s, asked.spec, message.pid, message.startTime);
  spawner.runs.set(message.id, run);
  asked.resolve({ pid: message.pid, startTime: message.startTime });
}

/**
 * A spawner died (or exited). Its unanswered starts fail, and whatever they may have spawned
 * is killed; its live runs become orphans, polled until they end (their exit status went
 * with it: they end `lost`, as a dead supervisor's do).
 */
export function spawnerGone(s: Supervisor, spawner: Spawner, how: string): void {
  const pool = s.spawners;
  pool.spawners = pool.spawners.filter((other) => other !== spawner);
  if (!spawner.ready && ++pool.failures >= 3) {
    s.lib.diag(s, "spawners keep dying before they are ready; spawning in the supervisor");
    pool.size = 0;
  }
  s.lib.diag(s, `spawner ${spawner.child.pid} ended (${how}): ${spawner.runs.size} runs adopted as orphans`);
  const asked = [...spawner.asked.values()];
  spawner.asked.clear();
  if (asked.length > 0) {
    s.lib.killUnrecorded(
      s,
      asked.flatMap(({ spec }) => [spec.stdoutPath, spec.stderrPath]),
    );
  }
  for (const { spec, reject } of asked) {
    reject(
      s.lib.fail(
        "BACKEND_ERROR",
        `Cannot start "${spec.workloadId}": its spawner ended during the start; nothing was started`,
      ),
    );
  }
  for (const run of spawner.runs.values()) if (!run.exit && !run.orphan) s.lib.adoptAsOrphan(s, run);
  spawner.runs.clear();
}

/** Ends every spawner (the supervisor is exiting; their workloads live on). */
export function stopSpawners(s: Supervisor): void {
  for (const spawner of s.spawners.spawners) spawner.child.kill("SIGKILL");
}
