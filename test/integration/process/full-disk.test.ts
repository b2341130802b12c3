/**
 * A full disk under the state dir (a small tmpfs, filled by the test): the supervisor
 * never dies of it, a start it cannot record is refused and does not run, stops and exits
 * go on, and once there is room again every acknowledged start is on record.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ProcessBackend } from "../../../src/backends/process/index.js";
import { createRuntimeKernel, type RuntimeKernel } from "../../../src/index.js";
import {
  eventually,
  isRunning,
  journalProblems,
  livingWithEnv,
  mountTmpfs,
  newBackend,
  requireRoot,
  teardown,
} from "./helpers.js";

// One name per test process: other runs of the suite on this machine have workloads of their own.
const MARK = `RK_FULL_DISK_TEST_${process.pid}`;
const profiles = { p: { runnable: { command: ["sleep", "600"] }, graceMs: 0 } };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  // Whatever a failed run left of this file's workloads, first: the disk cannot be unmounted under them.
  for (const pid of livingWithEnv(MARK)) process.kill(pid, "SIGKILL");
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

beforeAll(() => requireRoot("mounting a small tmpfs"));

/** A 2 MiB tmpfs with a state dir on it, kernels over it, and a way to fill it up. */
function fixture() {
  const disk = mountTmpfs(2048);
  cleanups.push(() => disk.unmount());
  const stateDir = join(disk.dir, "state");
  const open = (): { backend: ProcessBackend; kernel: RuntimeKernel } => {
    const backend = newBackend({ stateDir, supervisorIdleMs: 60_000 });
    const kernel = createRuntimeKernel({ backend, kernelId: "disk", profiles, reapAfterMs: 600_000 });
    kernel.on("error", () => {});
    return { backend, kernel };
  };
  return {
    stateDir,
    open,
    fill: disk.fill,
    free: disk.free,
    /** Files no step should leave behind, anywhere on the disk. */
    leftovers: () =>
      readdirSync(disk.dir, { recursive: true }).filter((name) => String(name).endsWith(".tmp")),
  };
}

/** Creates workloads `prefix0`, `prefix1`, ... until one is refused; the ones acknowledged, and the refusal. */
async function createUntilRefused(kernel: RuntimeKernel, prefix: string) {
  const acked: string[] = [];
  for (let i = 0; i < 100; i++) {
    const id = `${prefix}${i}`;
    const refused = await kernel
      .create({ workloadId: id, profile: "p", env: { [MARK]: id } })
      .then(() => undefined)
      .catch((error: unknown) => error);
    if (refused) return { acked, refused, refusedId: id };
    acked.push(id);
  }
  throw new Error("no start was refused on a full disk");
}

describe("a full disk", () => {
  it("refuses the starts it cannot record, lets stops and exits go on, and after space returns every acknowledged start is known", async () => {
    const disk = fixture();
    const { backend, kernel } = disk.open();
    cleanups.push(() => teardown(backend));
    await Promise.all(
      ["a0", "a1", "a2"].map((id) => kernel.create({ workloadId: id, profile: "p", env: { [MARK]: id } })),
    );
    const { pid } = await backend.supervisorStats();
    const events: unknown[] = [];
    kernel.on("stopped", (event) => events.push(event.error));

    disk.fill();
    const { acked, refused, refusedId } = await createUntilRefused(kernel, "b");
    expect(refused).toMatchObject({
      code: "START_FAILED",
      retryable: true,
      cause: { code: "RESOURCE_EXHAUSTED" },
      message: expect.stringContaining("cannot write its journal"),
    });
    expect(events.at(-1)).toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    // The refused start does not run on, and the next one is refused too.
    await eventually(() => livingWithEnv(MARK, refusedId).length === 0, 5_000, "the refused start to die");
    const again = await kernel.create({ workloadId: "refused-again", profile: "p" }).catch((e: unknown) => e);
    expect(again).toMatchObject({ cause: { code: "RESOURCE_EXHAUSTED" } });

    // The supervisor lives on: a stop, and an exit of its own, are seen and pushed.
    expect((await backend.supervisorStats()).pid).toBe(pid);
    expect(await kernel.stop("a0")).toMatchObject({ exitCode: 137, signal: "SIGKILL" });
    const [a1] = livingWithEnv(MARK, "a1");
    process.kill(a1 as number, "SIGTERM");
    expect(await kernel.waitFor("a1", "stopped")).toMatchObject({ exitCode: 143, stopReason: "failed" });

    // Room again: starts are accepted, and what waited is written.
    disk.free();
    await kernel.create({ workloadId: "c0", profile: "p", env: { [MARK]: "c0" } });
    expect(journalProblems(disk.stateDir)).toEqual([]);

    // Both the kernel and the supervisor die: a new pair knows every acknowledged start.
    await kernel.shutdown({ leaveRunning: true });
    process.kill(pid, "SIGKILL");
    await eventually(() => !isRunning(pid), 5_000, "the supervisor to die");
    const after = disk.open();
    cleanups.push(() => teardown(after.backend));
    const report = await after.kernel.recover();
    expect(report.adopted.map((s) => s.workloadId).sort()).toEqual(["a2", ...acked, "c0"].sort());
    expect(report.exited.map((s) => [s.workloadId, s.exitCode]).sort()).toEqual([
      ["a0", 137],
      ["a1", 143],
    ]);
    expect(disk.leftovers()).toEqual([]);
    await after.kernel.shutdown();
    expect(livingWithEnv(MARK)).toEqual([]);
  });

  it("lets a supervisor start on a full disk: it knows every record, keeps the journal as it is, and leaves no temporary file", async () => {
    const disk = fixture();
    const { backend, kernel } = disk.open();
    cleanups.push(() => teardown(backend));
    await Promise.all(
      ["a0", "a1"].map((id) => kernel.create({ workloadId: id, profile: "p", env: { [MARK]: id } })),
    );
    const { pid } = await backend.supervisorStats();
    await kernel.shutdown({ leaveRunning: true });
    process.kill(pid, "SIGKILL");
    await eventually(() => !isRunning(pid), 5_000, "the supervisor to die");

    disk.fill();
    const after = disk.open();
    cleanups.push(() => teardown(after.backend));
    const report = await after.kernel.recover();
    expect(report.adopted.map((s) => s.workloadId).sort()).toEqual(["a0", "a1"]);
    expect(disk.leftovers()).toEqual([]);
    const { acked, refused } = await createUntilRefused(after.kernel, "b");
    expect(refused).toMatchObject({ cause: { code: "RESOURCE_EXHAUSTED" } });

    disk.free();
    await after.kernel.create({ workloadId: "c0", profile: "p", env: { [MARK]: "c0" } });
    expect(journalProblems(disk.stateDir)).toEqual([]);
    expect(
      after.kernel
        .list({ state: "running" })
        .map((s) => s.workloadId)
        .sort(),
    ).toEqual(["a0", "a1", ...acked, "c0"].sort());
    await after.kernel.shutdown();
    expect(livingWithEnv(MARK)).toEqual([]);
  });
});
