/**
 * The supervisor: one small, long-lived Node process per state dir, in the spirit of a
 * container shim. It spawns every workload (each in its own session and process group,
 * stdout and stderr straight into files), reaps them, records every start and exit in an
 * append-only journal in the state dir, pushes exits to connected kernels, and outlives
 * any kernel: a kernel killed with SIGKILL reconnects (or a new one does) and learns
 * what happened meanwhile.
 *
 * Why a separate process rather than spawning from the kernel: the workloads and their
 * exit codes must survive the kernel's death, and Node's spawn forks the whole parent,
 * so spawning from a small process is cheaper than from a large host application.
 *
 * The supervisor's program is {@link supervisorMain} and the top-level functions of the
 * `supervisor-*.ts` modules it is made of; none imports anything at run time (Node's modules
 * come through `process.getBuiltinModule`, and are passed down as parameters). The backend
 * writes their source text into the state dir and runs it with `process.execPath`, so it
 * works the same from TypeScript sources and from the bundled `dist/`. This file owns the
 * start-up (the lock, recovery from the journal, listening) and that assembly.
 *
 * Where each concern lives: the journal in `supervisor-journal.ts`, the log files (the pool
 * of empty ones, rotation, deletion) in `supervisor-log-files.ts`, the max-lifetime backstop
 * in `supervisor-backstop.ts`, the socket in `supervisor-server.ts`, the run table in
 * `supervisor-runs.ts`, the answer to each request in `supervisor-requests.ts`, what is read
 * of /proc in `supervisor-proc.ts` (and of a sandbox, for its SIGTERM, in
 * `supervisor-sandbox.ts`), the spawn itself, the launch seam, in `supervisor-launch.ts`, and
 * the spawner processes that fork in parallel in `supervisor-spawners.ts` (and `spawner.ts`,
 * their program).
 * @module
 */
import type * as ChildProcessModule from "node:child_process";
import type * as CryptoModule from "node:crypto";
import type * as FsModule from "node:fs";
import type * as NetModule from "node:net";
import type * as OsModule from "node:os";
import type * as PathModule from "node:path";
import type { Clock } from "../../clock.js";
import type { ReadyLine } from "./protocol.js";
import * as spawnerModule from "./spawner.js";
import * as backstopModule from "./supervisor-backstop.js";
import * as journalModule from "./supervisor-journal.js";
import * as launchModule from "./supervisor-launch.js";
import * as logFilesModule from "./supervisor-log-files.js";
import * as procModule from "./supervisor-proc.js";
import * as requestsModule from "./supervisor-requests.js";
import * as runsModule from "./supervisor-runs.js";
import * as sandboxModule from "./supervisor-sandbox.js";
import * as serverModule from "./supervisor-server.js";
import * as spawnersModule from "./supervisor-spawners.js";
import type { Program, Run, Supervisor, SupervisorConfig } from "./supervisor-state.js";

export type { SupervisorConfig } from "./supervisor-state.js";

/**
 * Runs the supervisor in the current process. Self-contained on purpose: its source text is
 * what the backend launches, together with the functions of the modules it is made of.
 */
export function supervisorMain(config: SupervisorConfig, lib: Program): void {
  const crypto = process.getBuiltinModule("node:crypto") as typeof CryptoModule;
  const net = process.getBuiltinModule("node:net") as typeof NetModule;
  process.title = "runtime-kernel-supervisor";
  const s = createSupervisor(config, crypto, lib);
  process.on("uncaughtException", (error) => {
    lib.diag(s, `uncaught exception, exiting: ${error.stack ?? String(error)}`);
    process.exit(70);
  });
  // The lock is an abstract unix socket: bind is atomic and the kernel releases it when
  // this process dies, however it dies, so there is no stale lock to break.
  const lock = net.createServer((socket) => socket.destroy());
  lock.once("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EADDRINUSE") {
      say(s.fs, { ready: false, locked: true });
      process.exit(0);
    }
    say(s.fs, { error: `cannot take the supervisor lock: ${error.message}` });
    process.exit(1);
  });
  // Named after the real path, so that two spellings of one state dir share one lock.
  const lockName = `runtime-kernel-supervisor/${crypto
    .createHash("sha256")
    .update(s.fs.realpathSync(config.stateDir))
    .digest("hex")
    .slice(0, 40)}`;
  lock.listen({ path: `\0${lockName}` }, () => {
    try {
      recover(s);
    } catch (error) {
      lib.diag(s, `start-up failed: ${(error as Error).stack}`);
      say(s.fs, { error: `start-up failed: ${(error as Error).message}` });
      process.exit(1);
    }
    listen(s, net);
  });
}

/** The supervisor's state and parts, wired together; nothing is read or started yet but /proc. */
export function createSupervisor(
  config: SupervisorConfig,
  crypto: typeof CryptoModule,
  lib: Program,
): Supervisor {
  const fs = process.getBuiltinModule("node:fs") as typeof FsModule;
  const path = process.getBuiltinModule("node:path") as typeof PathModule;
  const limits = lib.readLimits(fs);
  const { bootId, pidMax } = lib.readSystem(fs);
  const clock: Clock = {
    now: () => Date.now(),
    setTimeout: (callback, ms) => setTimeout(callback, ms),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
  const s = {
    lib,
    config,
    fs,
    cp: process.getBuiltinModule("node:child_process") as typeof ChildProcessModule,
    os: process.getBuiltinModule("node:os") as typeof OsModule,
    path,
    clock,
    runs: new Map(),
    limits,
    maxWorkloads:
      config.maxWorkloads > 0
        ? config.maxWorkloads
        : Math.max(1, Math.floor(Math.min(limits.processes, pidMax) / 2)),
    bootId,
    startedAt: Date.now(),
    live: 0,
    orphans: 0,
    baseFds: 0,
    idleTimer: undefined,
    orphanTimer: undefined,
    pendingExits: [],
    logCheckPutOff: false,
    exitingDown: false,
    warnings: [],
    diagPath: path.join(config.stateDir, "supervisor.log"),
    listener: undefined,
    spawners: lib.createSpawnerPool(config.spawners),
    readProc: lib.procReader(fs),
    sandboxes: { unseen: new Set(), timer: undefined, pauseMs: 50 },
  } as Omit<Supervisor, "journal" | "logs" | "backstop" | "server"> as Supervisor;
  const note = (message: string) => lib.diag(s, message);
  s.journal = lib.createJournal<Run>({
    fs,
    crypto,
    path: path.join(config.stateDir, "journal.ndjson"),
    keyPath: path.join(config.stateDir, "journal.key"),
    clock,
    diag: note,
    warn: (message) => lib.warn(s, message),
    refuse: (run, failure) => lib.refuse(s, run, failure),
  });
  s.logs = lib.createLogFiles({
    fs,
    path,
    logDir: config.logDir,
    poolMin: config.logPoolMin,
    poolMax: config.logPoolMax,
    maxLogBytes: config.maxLogBytes,
    owner: { pid: process.pid, startedAt: s.startedAt },
    clock,
    diag: note,
  });
  s.backstop = lib.createBackstop<Run>({
    clock,
    runs: () => s.runs.values(),
    killAt: (run) => (run.exit ? undefined : run.record.killAt),
    kill(run) {
      lib.diag(s, `max-lifetime backstop: SIGKILL to run ${run.record.runId} (pid ${run.record.pid})`);
      lib.signalRun(s, run, "SIGKILL");
    },
  });
  s.server = lib.createServerState({
    handle: (socket, request) => lib.handleRequest(s, socket, request),
    startedRun: (runId) => s.runs.get(runId),
    beforeReply: () => s.journal.flush(),
    connected: () => lib.clearIdle(s),
    activity: () => s.logs.activity(),
    disconnected: () => lib.noteIdle(s),
    diag: note,
  });
  return s;
}

/**
 * Takes over from the journal: its key, its runs (those alive adopted, the others lost), then
 * a compacted journal (or, on a full disk, the journal as it is: compaction needs room for a
 * copy), the orphan poll and the backstop. Throws when the journal cannot be read.
 */
export function recover(s: Supervisor): void {
  const { lib } = s;
  s.journal.loadKey();
  const replayed = s.journal.replay();
  for (const problem of replayed.skipped) lib.diag(s, `journal ${problem}: skipped`);
  if (replayed.warning !== undefined) s.warnings.push(replayed.warning);
  lib.adoptRuns(s, replayed.runs, replayed.unrecorded);
  if (!s.journal.compact(s.runs.values())) s.journal.openAsIs(replayed.bytes);
  for (const run of s.runs.values()) s.backstop.arm(run.exit ? undefined : run.record.killAt);
  try {
    s.fs.unlinkSync(s.config.socketPath);
  } catch {}
}

/** Listens on the socket (mode 0600), then says it is ready on stdout. */
export function listen(s: Supervisor, net: typeof NetModule): void {
  const { fs, config, lib } = s;
  const server = net.createServer((socket) => lib.acceptConnection(s.server, socket));
  s.listener = server;
  server.once("error", (error) => {
    lib.diag(s, `cannot listen on ${config.socketPath}: ${error.message}`);
    say(fs, { error: `cannot listen on ${config.socketPath}: ${error.message}` });
    process.exit(1);
  });
  // The socket is bound inside listen(): create it private, then give workloads back the
  // umask the supervisor inherited (they inherit it in turn).
  const umask = process.umask(0o077);
  server.listen({ path: config.socketPath }, () => {
    try {
      fs.chmodSync(config.socketPath, 0o600);
    } catch {}
    try {
      s.baseFds = fs.readdirSync("/proc/self/fd").length;
    } catch {}
    setInterval(() => lib.checkLogs(s), config.logCheckMs).unref();
    s.logs.load();
    s.logs.scheduleRefill(0);
    lib.diag(
      s,
      `listening on ${config.socketPath} (${s.runs.size} recorded runs, ${s.orphans} adopted orphans)`,
    );
    say(fs, { ready: true, pid: process.pid });
    // After the socket and the umask are back as they were: spawners pass the umask on.
    lib.fillSpawnerPool(s);
    lib.noteIdle(s);
  });
  process.umask(umask);
}

/** Tells the backend that launched it how start-up went: one JSON line on stdout. */
export function say(fs: Pick<typeof FsModule, "writeSync">, line: ReadyLine): void {
  try {
    fs.writeSync(1, `${JSON.stringify(line)}\n`);
  } catch {}
}

/** The modules whose exported functions make up the supervisor's program, beside this one's. */
const programModules: ReadonlyArray<Record<string, unknown>> = [
  procModule,
  journalModule,
  logFilesModule,
  backstopModule,
  launchModule,
  serverModule,
  runsModule,
  requestsModule,
  sandboxModule,
  spawnersModule,
  spawnerModule,
];

/**
 * The functions of the supervisor's modules, each under the name its module exports it by (the
 * key of {@link Program}). A bundler may rename a function (its `name` is then what its source
 * text declares), never the export.
 */
export function programFunctions(): Array<[string, (...args: never[]) => unknown]> {
  return programModules.flatMap((module) =>
    Object.entries(module).filter(
      (entry): entry is [string, (...args: never[]) => unknown] => typeof entry[1] === "function",
    ),
  );
}

/** The source text of the supervisor program, ready to run with `node`. */
export function supervisorSource(config: SupervisorConfig): string {
  const lifted = programFunctions();
  const lib = lifted.map(([name, fn]) => `${name}: ${fn.name}`).join(", ");
  return [
    '"use strict";',
    // Some TypeScript loaders (tsx) wrap functions with a `__name` helper; the copied
    // source has no module around it, so give it a harmless one.
    "var __name = (target) => target;",
    ...[supervisorMain, createSupervisor, recover, listen, say].map((fn) => fn.toString()),
    ...lifted.map(([, fn]) => fn.toString()),
    `${supervisorMain.name}(${JSON.stringify(config)}, { ${lib} });`,
    "",
  ].join("\n");
}
