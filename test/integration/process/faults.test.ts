/**
 * A long randomized run of the process backend under faults: workloads are created, stopped,
 * destroyed and killed while the supervisor is SIGKILLed, the disk under the state dir fills
 * up and empties, junk lands in the journal and the kernel restarts, at random points (also
 * in the middle of bursts of calls). What must hold throughout:
 *
 * - every create that was acknowledged is, as far as the kernel says, running (and its
 *   process is alive), or stopped with its real exit code, or `lost`;
 * - nothing runs untracked: every live process of the run is the process group of a
 *   workload the kernel reports running.
 *
 * Seeded: `RK_FAULT_SEED` replays a run (the seed is printed when it fails), `RK_FAULT_STEPS`
 * makes it longer.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, expect, it, onTestFailed } from "vitest";
import type { ProcessBackend } from "../../../src/backends/process/index.js";
import {
  createRuntimeKernel,
  isRuntimeKernelError,
  type Profile,
  type RuntimeKernel,
  type WorkloadStatus,
} from "../../../src/index.js";
import { isRunning, livingWithEnv, mountTmpfs, newBackend, requireRoot, teardown } from "./helpers.js";

const SEED = Number(process.env.RK_FAULT_SEED) || Math.floor(Math.random() * 2 ** 31);
const STEPS = Number(process.env.RK_FAULT_STEPS) || 300;
const RUN = `${SEED}-${process.pid}`;
const KERNEL_ID = "faults";
const IDS = Array.from({ length: 10 }, (_, i) => `w${i}`);

/** Ends on SIGTERM (143) or SIGKILL (137); the others also exit by themselves with RK_CODE. */
const profiles: Record<string, Profile> = {
  sleeper: { runnable: { command: ["sleep", "600"] }, graceMs: 100 },
  quick: { runnable: { command: ["sh", "-c", 'exit "$RK_CODE"'] }, graceMs: 100 },
  later: { runnable: { command: ["sh", "-c", 'sleep 0.3; exit "$RK_CODE"'] }, graceMs: 100 },
  stubborn: { runnable: { command: ["sh", "-c", "trap '' TERM; exec sleep 600"] }, graceMs: 100 },
};
const SELF_EXITING = new Set(["quick", "later"]);

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const pid of livingWithEnv("RK_FAULT_RUN", RUN)) process.kill(pid, "SIGKILL");
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

beforeAll(() => requireRoot("mounting a small tmpfs"));

/** What the test knows of a workload id: its latest create, and whether a destroy was asked. */
interface Known {
  acked: boolean;
  runId?: string;
  destroyRequested: boolean;
}

function pgidOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return undefined;
  }
}

it(`keeps every acknowledged workload accounted for, and nothing untracked, through ${STEPS} random steps with faults`, async () => {
  const random = generator(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const log: string[] = [];
  onTestFailed(() => {
    console.error(`fault-injection run failed: replay with RK_FAULT_SEED=${SEED} RK_FAULT_STEPS=${STEPS}`);
    console.error(log.slice(-40).join("\n"));
  });

  const disk = mountTmpfs(3072);
  cleanups.push(() => disk.unmount());
  const stateDir = join(disk.dir, "state");
  const journal = join(stateDir, "journal.ndjson");

  const backends: ProcessBackend[] = [];
  // They share the state dir: the last one stops its supervisor, after the others let go.
  cleanups.push(async () => {
    for (const b of backends.slice(0, -1)) await b.close();
    await teardown(backends.at(-1) as ProcessBackend);
  });
  let backend!: ProcessBackend;
  let kernel!: RuntimeKernel;
  const open = async () => {
    backend = newBackend({ stateDir, supervisorIdleMs: 60_000 });
    backends.push(backend);
    kernel = createRuntimeKernel({ backend, kernelId: KERNEL_ID, profiles, reapAfterMs: 600_000 });
    kernel.on("error", () => {}); // faults are the point of this run
    const report = await kernel.recover();
    log.push(`recovered: adopted ${report.adopted.length}, exited ${report.exited.length}`);
  };
  await open();

  const known = new Map<string, Known>();
  /** The exit code each run was created with. */
  const codes = new Map<string, number>();
  const unexpected: string[] = [];

  /** A call's failure must be typed, with a code the situation allows. */
  const typed = (what: string, error: unknown, allowed: string[]) => {
    if (!isRuntimeKernelError(error) || !allowed.includes(error.code))
      unexpected.push(`${what}: ${String(error)} (${(error as { code?: string }).code})`);
  };

  const create = async (id: string) => {
    const profile = pick(Object.keys(profiles));
    const code = Math.floor(random() * 4);
    const before = kernel.get(id);
    // A create on a stopped workload reclaims (destroys) its last run first.
    const entry = known.get(id);
    if (entry && (before?.state === "stopped" || before?.state === "stopping")) entry.destroyRequested = true;
    log.push(`create ${id} ${profile} ${code}`);
    try {
      const status = await kernel.create({
        workloadId: id,
        profile,
        env: { RK_FAULT_RUN: RUN, RK_WORKLOAD: id, RK_CODE: String(code) },
      });
      if (!codes.has(status.runId)) codes.set(status.runId, SELF_EXITING.has(profile) ? code : -1);
      known.set(id, { acked: true, runId: status.runId, destroyRequested: false });
      log.push(`  ${id} acknowledged: run ${status.runId}`);
    } catch (error) {
      log.push(`  ${id} refused: ${(error as Error).message}`);
      typed(`create ${id}`, error, ["START_FAILED", "BACKEND_UNAVAILABLE", "CLEANUP_FAILED"]);
      if (kernel.get(id)?.runId !== before?.runId) known.set(id, { acked: false, destroyRequested: false });
    }
  };
  const stop = async (id: string) => {
    log.push(`stop ${id}`);
    await kernel
      .stop(id)
      .catch((error) => typed(`stop ${id}`, error, ["WORKLOAD_NOT_FOUND", "BACKEND_UNAVAILABLE"]));
  };
  const destroy = async (id: string) => {
    log.push(`destroy ${id}`);
    const entry = known.get(id);
    if (entry) entry.destroyRequested = true;
    await kernel
      .destroy(id)
      .then(() => known.delete(id))
      .catch((error) =>
        typed(`destroy ${id}`, error, ["WORKLOAD_NOT_FOUND", "BACKEND_UNAVAILABLE", "CLEANUP_FAILED"]),
      );
  };

  const faults = {
    async killSupervisor() {
      const { pid } = await backend.supervisorStats();
      log.push(`kill supervisor ${pid}`);
      process.kill(pid, "SIGKILL");
    },
    fill() {
      if (disk.full) return;
      log.push("fill the disk");
      disk.fill();
    },
    free() {
      if (!disk.full) return;
      log.push("free the disk");
      disk.free();
    },
    corrupt() {
      const junk = pick([
        "null",
        "42",
        "{}",
        '{"op":"start"}',
        "garbage",
        '{"op":"remove","runId":"x","mac":"y"}',
      ]);
      log.push(`corrupt the journal: ${junk}`);
      try {
        appendFileSync(journal, `${junk}\n`);
      } catch {} // a full disk
    },
    killWorkload() {
      const pids = livingWithEnv("RK_FAULT_RUN", RUN);
      if (pids.length === 0) return;
      const pid = pick(pids);
      log.push(`kill workload process ${pid}`);
      const pgid = pgidOf(pid);
      if (pgid !== undefined) process.kill(-pgid, "SIGKILL");
    },
  };

  /** What breaks the invariants now (empty when they hold). */
  const violations = async (): Promise<string[]> => {
    const out: string[] = [];
    const statuses = kernel.list();
    if (statuses.some((s) => s.state === "starting" || s.state === "stopping"))
      return ["calls still in flight"];
    const handles = new Map(
      (await backend.discover({ kernelId: KERNEL_ID })).map((d) => [d.handle.runId, d.handle.pid]),
    );
    const tracked = new Set<number>();
    for (const status of statuses) {
      if (status.state !== "running") continue;
      const pid = handles.get(status.runId);
      if (pid === undefined || !isRunning(pid)) out.push(`${status.workloadId} is running with no process`);
      else tracked.add(pid);
    }
    for (const [id, entry] of known) {
      if (!entry.acked) continue;
      const status = kernel.get(id);
      if (!status) {
        if (!entry.destroyRequested) out.push(`${id}: acknowledged, but unknown to the kernel`);
        continue;
      }
      if (status.runId !== entry.runId || status.state !== "stopped") continue;
      out.push(...wrongExit(id, status, codes.get(status.runId)));
    }
    for (const pid of livingWithEnv("RK_FAULT_RUN", RUN)) {
      const pgid = pgidOf(pid);
      if (pgid !== undefined && !tracked.has(pgid)) out.push(`process ${pid} (group ${pgid}) runs untracked`);
    }
    return out;
  };
  const check = async (where: string) => {
    const deadline = Date.now() + 20_000;
    let found = await violations();
    while (found.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      found = await violations();
    }
    expect(found, `after step ${where}`).toEqual([]);
    expect(unexpected, `after step ${where}`).toEqual([]);
  };

  for (let step = 1; step <= STEPS; step++) {
    const roll = random();
    if (roll < 0.3) await create(pick(IDS));
    else if (roll < 0.4) await stop(pick(IDS));
    else if (roll < 0.47) await destroy(pick(IDS));
    else if (roll < 0.52) await faults.killSupervisor();
    else if (roll < 0.56) faults.fill();
    else if (roll < 0.63) faults.free();
    else if (roll < 0.67) faults.corrupt();
    else if (roll < 0.71) faults.killWorkload();
    else if (roll < 0.75) {
      log.push("restart the kernel");
      await kernel.shutdown({ leaveRunning: true });
      await open();
    } else if (roll < 0.9) {
      // A burst of calls on distinct workloads, with a fault landing in the middle of it.
      const ids = [...IDS].sort(() => random() - 0.5).slice(0, 2 + Math.floor(random() * 4));
      const calls = ids.map((id) => pick([create, create, stop, destroy])(id));
      const fault = pick([faults.killSupervisor, faults.fill, faults.corrupt, faults.killWorkload]);
      for (let ticks = Math.floor(random() * 4); ticks > 0; ticks--) await new Promise(setImmediate);
      await fault();
      await Promise.all(calls);
    } else {
      await check(String(step));
    }
  }

  faults.free();
  await check("the last");
  // A shutdown reclaims everything: no process of the run is left.
  await kernel.shutdown();
  expect(livingWithEnv("RK_FAULT_RUN", RUN)).toEqual([]);
}, 150_000);

/** Why a stopped run's exit is not one it could have had, if it is not. */
function wrongExit(id: string, status: WorkloadStatus, code: number | undefined): string[] {
  if (status.stopReason === "lost") return [];
  const possible = [143, 137, ...(code !== undefined && code >= 0 ? [code] : [])];
  if (status.exitCode !== undefined && possible.includes(status.exitCode)) return [];
  return [
    `${id}: stopped (${status.stopReason}) with exit ${status.exitCode}, not one of ${possible.join(", ")}`,
  ];
}
