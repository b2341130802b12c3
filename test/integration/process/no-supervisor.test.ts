/**
 * When no supervisor can be started (its Node binary fails, say), callers are told so with
 * a typed error in bounded time, and nothing is given up: once a supervisor can start again,
 * the stops they asked for are carried out.
 */
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntimeKernel } from "../../../src/index.js";
import { eventually, isRunning, livingWithEnv, newBackend, teardown, tempStateDir } from "./helpers.js";

// One name per test process: other runs of the suite on this machine have workloads of their own.
const MARK = `RK_NO_SUPERVISOR_TEST_${process.pid}`;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  // Whatever a failed run left of this file's workloads.
  for (const pid of livingWithEnv(MARK)) process.kill(pid, "SIGKILL");
});

/** A Node binary that fails while `broken` exists next to it. */
function breakableNode(): { nodePath: string; breakIt(): void; repair(): void } {
  const dir = tempStateDir("rk-node-");
  const nodePath = join(dir, "node");
  const broken = join(dir, "broken");
  writeFileSync(nodePath, `#!/bin/sh\n[ -e "${broken}" ] && exit 1\nexec "${process.execPath}" "$@"\n`);
  chmodSync(nodePath, 0o755);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return {
    nodePath,
    breakIt: () => writeFileSync(broken, ""),
    repair: () => rmSync(broken, { force: true }),
  };
}

describe("with no supervisor that can start", () => {
  it("create, stop and destroy fail with BACKEND_UNAVAILABLE in bounded time, and the stops happen once one can", async () => {
    const node = breakableNode();
    const backend = newBackend({ nodePath: node.nodePath });
    cleanups.push(() => teardown(backend), node.repair);
    const kernel = createRuntimeKernel({
      backend,
      profiles: { p: { runnable: { command: ["sleep", "600"] }, graceMs: 0 } },
    });
    const errors: Error[] = [];
    kernel.on("error", (error) => errors.push(error));
    await kernel.create({ workloadId: "w1", profile: "p", env: { [MARK]: "w1" } });
    await kernel.create({ workloadId: "w2", profile: "p", env: { [MARK]: "w2" } });

    node.breakIt();
    const { pid } = await backend.supervisorStats();
    process.kill(pid, "SIGKILL");
    await eventually(() => !isRunning(pid), 5_000, "the supervisor to die");

    await expect(backend.supervisorStats()).rejects.toMatchObject({ code: "BACKEND_UNAVAILABLE" });
    const created = await kernel.create({ workloadId: "w3", profile: "p" }).catch((e: unknown) => e);
    expect(created).toMatchObject({
      code: "START_FAILED",
      retryable: true,
      cause: { code: "BACKEND_UNAVAILABLE", message: expect.stringContaining("exited during start-up") },
    });
    const [stopped, destroyed] = await Promise.all([
      kernel.stop("w1").catch((e: unknown) => e),
      kernel.destroy("w2").catch((e: unknown) => e),
    ]);
    for (const refused of [stopped, destroyed]) {
      expect(refused).toMatchObject({ code: "BACKEND_UNAVAILABLE", retryable: true });
    }
    expect(errors.length).toBeGreaterThanOrEqual(3);
    // Nothing was given up for lost: both still run, and are still being stopped.
    expect(kernel.get("w1")?.state).toBe("stopping");
    expect(livingWithEnv(MARK)).toHaveLength(2);

    node.repair();
    // Killed by a new supervisor, which did not spawn it and so cannot know its exit code.
    expect(await kernel.waitFor("w1", "stopped")).toMatchObject({ state: "stopped", stopReason: "lost" });
    await eventually(() => kernel.get("w2") === undefined, 10_000, "w2 to be destroyed");
    expect(livingWithEnv(MARK)).toEqual([]);
    await kernel.shutdown();
  });
});
