/**
 * The runtime.v1 service end to end: a kernel served over gRPC, and a TypeScript client
 * driving it as a control plane would.
 *
 *   npx tsx examples/service-client.ts
 *
 * To drive a server started with `runtime-kernel serve` instead, drop the server part and
 * call `createRuntimeClient()` with no address: it finds the server where `serve` listens.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRuntimeKernel, isRuntimeKernelError, ProcessBackend } from "runtime-kernel";
import { createRuntimeClient, serveRuntimeKernel } from "runtime-kernel/server";

const dir = mkdtempSync(join(tmpdir(), "rk-example-"));

// ── the server side: a kernel on real processes, behind the runtime.v1 service ──
const backend = new ProcessBackend({ stateDir: join(dir, "state") });
const kernel = createRuntimeKernel({
  backend,
  profiles: { shell: { runnable: { command: ["sh", "-c", "echo no script given"] }, graceMs: 5_000 } },
  ownerQuota: 5,
});
const server = await serveRuntimeKernel(kernel, { address: `unix:${join(dir, "runtime.sock")}` });
console.log(`serving on ${server.address}`);

// ── the client side: what a control plane does ──
const client = createRuntimeClient(server.address);

// Watch transitions from the start. With `resume`, a stream broken by a server restart or
// the network reconnects by itself and goes on after the last event seen.
const watching = new AbortController();
let lastSeq = 0;
const watcher = (async () => {
  for await (const event of client.events({ sinceSeq: 0, resume: true, signal: watching.signal })) {
    lastSeq = event.seq;
    console.log(`  event #${event.seq}: ${event.workloadId} ${event.from ?? "·"} -> ${event.state}`);
  }
})();

// Create resolves once the workload runs; creating the same id again is a no-op.
const status = await client.create({
  workloadId: "greeter",
  profile: "shell",
  owner: "alice",
  env: { WHO: "runtime.v1" },
  runnable: { command: ["sh", "-c", 'for i in 1 2 3; do echo "hello $WHO ($i)"; sleep 0.2; done'] },
});
console.log(`created ${status.workloadId} (run ${status.runId}): ${status.state}`);

// Its output, followed until it ends.
for await (const entry of client.logs("greeter", { follow: true }))
  console.log(`  ${entry.stream}: ${entry.line}`);

const final = await client.get("greeter");
console.log(`greeter: ${final?.state}, ${final?.stopReason}, exit ${final?.exitCode}`);

// Errors keep the kernel's codes.
try {
  await client.create({ workloadId: "Bad_Id", profile: "shell" });
} catch (error) {
  if (isRuntimeKernelError(error, "INVALID_SPEC")) console.log(`refused: ${error.message}`);
}

await client.destroy("greeter");
watching.abort();
await watcher;
console.log(`last event seen: #${lastSeq}`);

client.close();
await server.close(); // drains, then stops whatever still runs
await backend.stopSupervisor();
rmSync(dir, { recursive: true, force: true });
