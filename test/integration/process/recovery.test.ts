/**
 * Crash safety of the process backend: what survives a kernel killed with SIGKILL, what a
 * new kernel with the same kernelId recovers, and how the supervisor tells its workloads
 * from reused pids and from a previous supervisor's orphans.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import type { ProcessBackend, ProcessHandle } from "../../../src/backends/process/index.js";
import type { JournalEntry } from "../../../src/backends/process/protocol.js";
import { createRuntimeKernel, type ExitStatus, LABELS, type StartRequest } from "../../../src/index.js";
import { sigtermIn } from "../../setup/processes.js";
import { crashProfiles } from "./fixtures/crash-profiles.js";
import {
  eventually,
  isRunning,
  livingInGroups,
  newBackend,
  recordEvents,
  signedJournal,
  teardown,
  tempStateDir,
} from "./helpers.js";

const backends: ProcessBackend[] = [];
afterEach(async () => {
  await Promise.all(backends.splice(0).map((b) => teardown(b)));
});

function track(backend: ProcessBackend): ProcessBackend {
  backends.push(backend);
  return backend;
}

const never = new AbortController().signal;

function request(workloadId: string, command: string[], labels: Record<string, string> = {}): StartRequest {
  const runId = `${workloadId}-${Math.random().toString(36).slice(2, 10)}`;
  return {
    kernelId: "recovery",
    workloadId,
    runId,
    profile: "p",
    runnable: { command },
    env: {},
    labels: {
      [LABELS.kernelId]: "recovery",
      [LABELS.workloadId]: workloadId,
      [LABELS.runId]: runId,
      ...labels,
    },
  };
}

function exitOf(backend: ProcessBackend, handle: ProcessHandle): Promise<ExitStatus> {
  return new Promise((resolve) => backend.watchExit(handle, resolve));
}

/** The parent pid of a process (field 4 of its stat). */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/**
 * Starts `command` until a spawner of the supervisor forked it, not the supervisor itself
 * (which spawns while its spawners start up); the others are cleaned up.
 */
async function startThroughSpawner(backend: ProcessBackend, command: string[]): Promise<ProcessHandle> {
  // Spawners boot as Node does: seconds on a loaded machine.
  const deadline = Date.now() + 30_000;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const handle = await backend.start(request(`spawned-${attempt}`, command), { signal: never });
    const { spawners } = await backend.supervisorStats();
    const parent = isRunning(handle.pid) ? parentOf(handle.pid) : 0;
    if (spawners.some((s) => s.pid === parent)) return handle;
    await backend.kill(handle);
    await backend.cleanup(handle);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("no start went through a spawner");
}

/**
 * Two workloads forked by one spawner. Which spawner forks a start is the pool's choice (the
 * least busy of those ready, so the order in which they booted decides): starts go on until
 * two share a parent, and the others are cleaned up.
 */
async function twoThroughOneSpawner(backend: ProcessBackend, command: string[]): Promise<ProcessHandle[]> {
  const byParent = new Map<number, ProcessHandle>();
  for (;;) {
    const handle = await startThroughSpawner(backend, command);
    const first = byParent.get(parentOf(handle.pid));
    if (first) {
      for (const other of byParent.values()) {
        if (other === first) continue;
        await backend.kill(other);
        await backend.cleanup(other);
      }
      return [first, handle];
    }
    byParent.set(parentOf(handle.pid), handle);
  }
}

describe.each([
  ["", false],
  [" (sandboxed)", true],
])("a kernel killed with SIGKILL%s", (_, sandboxed) => {
  it("leaves 50 workloads to a new kernel that recovers all of them, their exits, and then nothing", async () => {
    const stateDir = tempStateDir();
    const gates = join(stateDir, "gates");
    mkdirSync(gates);
    const gateEarly = join(gates, "gate-early");
    const gateLate = join(gates, "gate-late");
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(import.meta.dirname, "fixtures", "crash-kernel.ts"),
        stateDir,
        gateEarly,
        gateLate,
        ...(sandboxed ? ["sandbox"] : []),
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const firstLine = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`the crash kernel exited early (${code})`)));
    });
    const started = JSON.parse(firstLine) as {
      running: number;
      stalePid: number;
      pids: Record<string, number>;
    };
    expect(started.running).toBe(50);
    const pgids = Object.values(started.pids);
    expect(pgids).toHaveLength(51);

    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    // Every workload outlives its kernel.
    expect(pgids.every(isRunning)).toBe(true);

    // While no kernel is alive, the early ones exit with their codes.
    writeFileSync(gateEarly, "");
    const backend = track(newBackend({ stateDir, ...(sandboxed ? { sandbox: {} } : {}) }));
    await eventually(
      () => readFileSync(join(stateDir, "journal.ndjson"), "utf8").split('"op":"exit"').length - 1 >= 15,
      10_000,
      "the early workloads to exit",
    );

    const kernel = createRuntimeKernel({
      backend,
      kernelId: "crash",
      profiles: crashProfiles(gates, sandboxed),
      reapAfterMs: 60_000,
    });
    const events = recordEvents(kernel);
    const report = await kernel.recover();
    expect(report.adopted.map((s) => s.workloadId).sort()).toEqual(
      [...range(20).map((i) => `sleeper-${i}`), ...range(15).map((i) => `late-${i}`)].sort(),
    );
    expect(report.exited.map((s) => [s.workloadId, s.exitCode, s.stopReason]).sort()).toEqual(
      range(15)
        .map((i) => [`early-${i}`, i + 1, "failed"])
        .sort(),
    );
    // The older run of sleeper-0 was a leftover: reaped, its process gone.
    expect(report.reaped).toEqual(["stale-run-of-sleeper-0"]);
    await eventually(() => !isRunning(started.stalePid), 5_000, "the stale run to die");

    // The adopted ones are watched again: their real exit codes arrive.
    writeFileSync(gateLate, "");
    for (const i of range(15)) {
      expect(await kernel.waitFor(`late-${i}`, "stopped")).toMatchObject({
        exitCode: i + 20,
        stopReason: "failed",
      });
    }
    const lateStops = events.filter((e) => e.workloadId.startsWith("late-") && e.state === "stopped");
    expect(lateStops).toHaveLength(15);

    await kernel.shutdown();
    for (const i of range(20)) expect(kernel.get(`sleeper-${i}`)?.state ?? "destroyed").toBe("destroyed");
    await eventually(() => livingInGroups(pgids).length === 0, 10_000, "every workload process to be gone");
    expect(await backend.discover({ kernelId: "crash" })).toEqual([]);
  });
});

describe("the supervisor's record", () => {
  it("never mistakes a reused pid, or a pid from before a reboot, for the workload", async () => {
    const stateDir = tempStateDir();
    // A supervisor made the state dir's journal key, and went.
    const first = newBackend({ stateDir });
    await first.supervisorStats();
    await first.stopSupervisor();
    // An unrelated process, and records that name its pid with another start time, or another boot.
    const stranger = spawn("sleep", ["600"], { stdio: "ignore", detached: true });
    const pid = stranger.pid as number;
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const startTime = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim();
    const record = (runId: string, fields: object): JournalEntry => ({
      op: "start",
      run: {
        runId,
        workloadId: runId,
        kernelId: "recovery",
        labels: { [LABELS.workloadId]: runId },
        pid,
        startTime,
        bootId,
        stdoutPath: join(stateDir, `${runId}.out`),
        stderrPath: join(stateDir, `${runId}.err`),
        startedAt: Date.now(),
        ...fields,
      },
    });
    // Records as a supervisor writes them (signed), naming the stranger's pid.
    writeFileSync(
      join(stateDir, "journal.ndjson"),
      signedJournal(stateDir, [
        record("reused", { startTime: startTime - 1 }),
        record("rebooted", { bootId: "another-boot" }),
      ]),
    );
    const backend = track(newBackend({ stateDir }));
    const found = await backend.discover({ kernelId: "recovery" });
    expect(found.map((f) => [f.handle.runId, f.exit]).sort()).toEqual([
      ["rebooted", { exitCode: null, lost: true }],
      ["reused", { exitCode: null, lost: true }],
    ]);
    for (const f of found) {
      await backend.kill(f.handle);
      await backend.cleanup(f.handle);
    }
    expect(isRunning(pid)).toBe(true);
    stranger.kill("SIGKILL");
  });

  it("lets a new supervisor adopt the workloads of one that died, and reap them", async () => {
    const backend = track(newBackend());
    const survivor = await backend.start(request("survivor", ["sleep", "600"]), { signal: never });
    const ender = await backend.start(request("ender", ["sleep", "600"]), { signal: never });
    const { pid } = await backend.supervisorStats();
    process.kill(pid, "SIGKILL");
    await eventually(() => !isRunning(pid), 5_000, "the supervisor to die");
    expect(isRunning(survivor.pid) && isRunning(ender.pid)).toBe(true);

    // The next call launches a new supervisor, which finds both still running.
    const found = await backend.discover({ kernelId: "recovery" });
    expect(found.map((f) => f.exit)).toEqual([null, null]);
    expect((await backend.supervisorStats()).pid).not.toBe(pid);

    // Their end can no longer be waited for: it is seen, and reported lost (code unknown).
    const ended = exitOf(backend, ender);
    process.kill(ender.pid, "SIGKILL");
    expect(await ended).toEqual({ exitCode: null, lost: true });
    await expect(backend.exitCode(ender)).rejects.toMatchObject({ code: "WORKLOAD_LOST" });

    await backend.cleanup(survivor);
    await eventually(() => !isRunning(survivor.pid), 5_000, "the adopted orphan to be reaped");
  });

  it("ends its spawners when it dies, and the workloads they forked live on", async () => {
    const backend = track(newBackend({ spawners: 2 }));
    const spawned = await startThroughSpawner(backend, ["sleep", "600"]);
    const { pid, spawners } = await backend.supervisorStats();
    expect(spawners.map((s) => s.pid)).toContain(parentOf(spawned.pid));
    process.kill(pid, "SIGKILL");
    for (const spawner of spawners) {
      await eventually(() => !isRunning(spawner.pid), 5_000, `spawner ${spawner.pid} to exit`);
    }
    expect(isRunning(spawned.pid)).toBe(true);
    const found = await backend.discover({ kernelId: "recovery" });
    expect(found.find((f) => f.handle.runId === spawned.runId)?.exit).toBeNull();
    await backend.cleanup(spawned);
    await eventually(() => !isRunning(spawned.pid), 5_000, "the adopted workload to be killed");
  }, 120_000);

  it("adopts the workloads of a spawner that died as orphans, and goes on starting through a new one", async () => {
    const backend = track(newBackend({ spawners: 2 }));
    const [survivor, ender] = (await twoThroughOneSpawner(backend, ["sleep", "600"])) as [
      ProcessHandle,
      ProcessHandle,
    ];
    const spawner = parentOf(survivor.pid);
    process.kill(spawner, "SIGKILL");
    await eventually(() => !isRunning(spawner), 5_000, "the spawner to die");
    expect(isRunning(survivor.pid) && isRunning(ender.pid)).toBe(true);

    // Their exit status went with their parent: their end is seen, and reported lost.
    const ended = exitOf(backend, ender);
    process.kill(ender.pid, "SIGKILL");
    expect(await ended).toEqual({ exitCode: null, lost: true });
    expect(
      (await backend.discover({ kernelId: "recovery" })).find((f) => f.handle.runId === survivor.runId)?.exit,
    ).toBeNull();

    // Starts go on through the spawners left and new ones, with real exit statuses.
    const next = await startThroughSpawner(backend, ["sh", "-c", "trap 'exit 3' TERM; sleep 600 & wait"]);
    expect((await backend.supervisorStats()).spawners.map((s) => s.pid)).not.toContain(spawner);
    // A SIGTERM before the shell set its trap would end it as 143: wait for the trap.
    await eventually(() => sigtermIn(next.pid, "SigCgt"), 5_000, "the workload's trap");
    const nextEnded = exitOf(backend, next);
    await backend.terminate(next, { graceMs: 10_000 });
    expect(await nextEnded).toEqual({ exitCode: 3 });

    await backend.cleanup(survivor);
    await eventually(() => !isRunning(survivor.pid), 5_000, "the adopted orphan to be killed");
  }, 120_000);

  it("kills a workload past its max lifetime even when no kernel is alive to stop it", async () => {
    const backend = track(newBackend({ lifetimeBackstopMs: 50 }));
    const handle = await backend.start(
      request("overdue", ["sleep", "600"], { [LABELS.maxLifetimeAt]: String(Date.now()) }),
      { signal: never },
    );
    expect(await exitOf(backend, handle)).toEqual({ exitCode: 137, signal: "SIGKILL" });
  });

  it("refuses to stop the supervisor while workloads run, unless forced", async () => {
    const backend = track(newBackend());
    const handle = await backend.start(request("busy", ["sleep", "600"]), { signal: never });
    await expect(backend.stopSupervisor()).rejects.toMatchObject({ code: "WORKLOAD_CONFLICT" });
    expect(isRunning(handle.pid)).toBe(true);
  });

  it("exits by itself once it has no workload and no client for its idle time", async () => {
    const backend = newBackend({ supervisorIdleMs: 100 });
    const handle = await backend.start(request("brief", ["sleep", "600"]), { signal: never });
    const { pid } = await backend.supervisorStats();
    // The kernel leaves while a workload runs: the supervisor stays for it.
    await backend.close();
    expect(isRunning(pid)).toBe(true);
    process.kill(-handle.pid, "SIGKILL");
    await eventually(() => !isRunning(pid), 5_000, "the idle supervisor to exit");
    // Its record outlives it: a later supervisor still knows the exit.
    expect(await backend.exitCode(handle)).toBe(137);
    await teardown(backend);
  });
});

describe("the supervisor's lifetime", () => {
  it("ends at once, not after its idle time, when its state dir is removed", async () => {
    const backend = newBackend({ supervisorIdleMs: 600_000 });
    const handle = await backend.start(request("brief", ["sleep", "600"]), { signal: never });
    const { pid } = await backend.supervisorStats();
    await backend.close();
    rmSync(backend.stateDir, { recursive: true, force: true });
    process.kill(-handle.pid, "SIGKILL");
    await eventually(() => !isRunning(pid), 5_000, "the supervisor to notice");
  });

  it("stays for the workloads a kernel's shutdown leaves running, and the host's shutdown completes", async () => {
    const stateDir = tempStateDir();
    const backend = track(newBackend({ stateDir }));
    const host = spawn(
      process.execPath,
      ["--import", "tsx", join(import.meta.dirname, "fixtures", "leave-running.ts"), stateDir],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    host.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    const code = await new Promise((resolve) => host.once("exit", resolve));
    expect([code, out]).toEqual([0, "shut down, w1 left running\n"]);
    const [left] = await backend.discover({ kernelId: "leave" });
    expect(left?.exit).toBeNull();
    expect(isRunning(left?.handle.pid as number)).toBe(true);
  });

  it("is gone when a kernel's shutdown that stopped every workload returns: both dirs can be removed at once", async () => {
    const stateDir = tempStateDir();
    const logDir = tempStateDir("rk-logs-");
    const backend = newBackend({ stateDir, logDir, supervisorIdleMs: 600_000 });
    const kernel = createRuntimeKernel({
      backend,
      kernelId: "quiet",
      profiles: { p: { runnable: { command: ["sleep", "600"] }, graceMs: 0 } },
    });
    // Enough starts that the supervisor has log files to make for its pool afterwards.
    await Promise.all(range(20).map((i) => kernel.create({ workloadId: `w${i}`, profile: "p" })));
    const { pid } = await backend.supervisorStats();
    await kernel.shutdown();
    expect(isRunning(pid)).toBe(false);
    rmSync(stateDir, { recursive: true });
    rmSync(logDir, { recursive: true });
    expect(existsSync(stateDir) || existsSync(logDir)).toBe(false);
  });
});

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
