/**
 * Budgets: the process backend refuses, with a typed RESOURCE_EXHAUSTED, what would run
 * the host or the supervisor out of file descriptors or processes, and never crashes there.
 */
import { execFile } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import type { ProcessBackend } from "../../../src/backends/process/index.js";
import { createRuntimeKernel } from "../../../src/index.js";
import { newBackend, teardown, tempStateDir } from "./helpers.js";

describe("resource budgets", () => {
  const backends: ProcessBackend[] = [];
  afterAll(async () => {
    await Promise.all(backends.map((b) => teardown(b)));
  });

  it("refuses a start beyond maxWorkloads with RESOURCE_EXHAUSTED and starts nothing", async () => {
    const backend = newBackend({ maxWorkloads: 3 });
    backends.push(backend);
    const kernel = createRuntimeKernel({
      backend,
      kernelId: "budget",
      profiles: { sleeper: { runnable: { command: ["sleep", "600"] }, graceMs: 1_000 } },
    });
    for (const i of [0, 1, 2]) await kernel.create({ workloadId: `w-${i}`, profile: "sleeper" });
    await expect(kernel.create({ workloadId: "w-3", profile: "sleeper" })).rejects.toMatchObject({
      code: "START_FAILED",
    });
    expect(kernel.get("w-3")).toMatchObject({
      stopReason: "start_failed",
      error: { code: "RESOURCE_EXHAUSTED" },
    });
    expect((await backend.supervisorStats()).live).toBe(3);
    // A slot frees up when one stops.
    await kernel.stop("w-0", { graceMs: 0 });
    await kernel.create({ workloadId: "w-4", profile: "sleeper" });
    await kernel.shutdown();
  });

  it("runs 300 workloads under ulimit -n 128, and refuses with typed errors, never crashing, when the host runs out", async () => {
    const stateDir = tempStateDir();
    const otherStateDir = tempStateDir();
    const fixture = join(import.meta.dirname, "fixtures", "low-fd-kernel.ts");
    try {
      const { stdout } = await promisify(execFile)(
        "sh",
        [
          "-c",
          'ulimit -n 128 && exec "$0" "$@"',
          process.execPath,
          "--import",
          "tsx",
          fixture,
          stateDir,
          otherStateDir,
        ],
        { timeout: 90_000 },
      );
      const report = JSON.parse(stdout.trim().split("\n").pop() as string);
      expect(report.limit).toBe(128);
      expect(report.running).toBe(300);
      expect(report.openWithAll).toBeLessThan(128);
      expect(report.codes).toEqual({
        launchSupervisor: "RESOURCE_EXHAUSTED",
        createOnNewBackend: "START_FAILED",
        logs: "RESOURCE_EXHAUSTED",
        stopOne: "ok",
      });
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(otherStateDir, { recursive: true, force: true });
    }
  });
});
