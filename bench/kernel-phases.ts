/**
 * The kernel driven through the phases the process benches compare: `n` `sleep 60` workloads
 * created at once until all run, stopped until all have exited, destroyed; and the wait for
 * the supervisor's log file pool between rounds, so that its refill works in no measurement.
 * @module
 */
import type { Backend } from "../src/backends/backend.js";
import type { ProcessBackend } from "../src/backends/process/index.js";
import { createRuntimeKernel, type RuntimeKernel } from "../src/index.js";

/** Wall milliseconds of each phase. */
export interface Phases {
  createMs: number;
  stopMs: number;
  destroyMs: number;
}

/**
 * A kernel for the benches' bursts: its `sleeper` profile runs `sleep 60` (stopped by its
 * SIGTERM), nothing is reaped meanwhile, and up to 256 starts are in flight at once.
 */
export function sleeperKernel(backend: Backend, kernelId: string): RuntimeKernel {
  return createRuntimeKernel({
    backend,
    kernelId,
    reapAfterMs: 600_000,
    maxConcurrentStarts: 256,
    profiles: { sleeper: { runnable: { command: ["sleep", "60"] }, graceMs: 30_000 } },
  });
}

/** `n` `sleep 60`s through a kernel on `backend` (ids prefixed with `kernelId`), each phase timed. */
export async function kernelPhases(backend: Backend, kernelId: string, n: number): Promise<Phases> {
  const kernel = sleeperKernel(backend, kernelId);
  const ids = Array.from({ length: n }, (_, i) => `${kernelId}-${i}`);
  const t0 = performance.now();
  await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "sleeper" })));
  const t1 = performance.now();
  await Promise.all(ids.map((id) => kernel.stop(id)));
  const t2 = performance.now();
  await Promise.all(ids.map((id) => kernel.destroy(id)));
  const t3 = performance.now();
  await kernel.shutdown();
  return { createMs: t1 - t0, stopMs: t2 - t1, destroyMs: t3 - t2 };
}

/**
 * Waits until the supervisor's pool of empty log files holds `files` (it refills while idle):
 * its target is two per workload of the most that were live, 64 at least.
 */
export async function untilLogPoolHolds(backend: ProcessBackend, files: number): Promise<void> {
  while ((await backend.supervisorStats()).pooledLogFiles < files)
    await new Promise((r) => setTimeout(r, 50));
}
