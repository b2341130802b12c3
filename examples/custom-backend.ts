/**
 * Writing a backend: examples/minimal-backend/minimal-backend.ts implements the port over
 * plain process groups in under 170 lines of code (and passes the whole conformance suite); here
 * the kernel drives it like any other backend.  Run: npx tsx examples/custom-backend.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRuntimeKernel } from "runtime-kernel";
import { MinimalBackend } from "./minimal-backend/minimal-backend.js";

const dir = mkdtempSync(join(tmpdir(), "custom-backend-"));
const kernel = createRuntimeKernel({
  backend: new MinimalBackend(dir),
  profiles: { job: { runnable: { command: ["sh", "-c", "echo working; sleep 0.2; exit 4"] } } },
});
kernel.on("transition", (e) =>
  console.log(`${e.workloadId} ${e.from ?? "∅"} -> ${e.state}`, e.exitCode ?? ""),
);
await kernel.create({ workloadId: "job-1", profile: "job" });
const stopped = await kernel.waitFor("job-1", "stopped");
console.log(`exit ${stopped.exitCode} (${stopped.stopReason})`);
for await (const entry of kernel.logs("job-1")) console.log(`${entry.stream}: ${entry.line}`);
await kernel.shutdown(); // destroys the workload: the backend's cleanup leaves nothing in dir
rmSync(dir, { recursive: true, force: true });
