/**
 * The process backend: real child processes, a clean environment with a brokered secret,
 * logs, and a kernel that goes away and comes back to find its workloads again.
 * Run: npx tsx examples/process.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRuntimeKernel, ProcessBackend, type Profile } from "runtime-kernel";

const stateDir = mkdtempSync(join(tmpdir(), "rk-process-example-"));
const profiles: Record<string, Profile> = {
  // Prints a tick every 200 ms until stopped; sees only the env it was given.
  worker: {
    runnable: {
      command: [
        "sh",
        "-c",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
        'echo "token is ${API_TOKEN:+set}, HOST_ONLY is ${HOST_ONLY:-unset}"; while :; do echo tick; sleep 0.2; done',
      ],
    },
    env: { MODE: "demo" },
    graceMs: 2_000,
  },
  // Ends by itself with exit code 3 after a second.
  batch: { runnable: { command: ["sh", "-c", "sleep 1; echo done >&2; exit 3"] } },
};
const credentials = { credentials: () => ({ API_TOKEN: "sk-example-not-a-real-secret" }) };
process.env.HOST_ONLY = "the host's environment is not inherited";

// --- the first kernel ------------------------------------------------------------------
const first = createRuntimeKernel({
  kernelId: "example",
  backend: new ProcessBackend({ stateDir }),
  profiles,
  credentials,
});
first.on("transition", (e) => console.log(`[kernel 1] ${e.workloadId}: ${e.from ?? "∅"} → ${e.state}`));

await first.create({ workloadId: "worker", profile: "worker" });
await first.create({ workloadId: "batch", profile: "batch" });

const controller = new AbortController();
let lines = 0;
for await (const entry of first.logs("worker", { follow: true, signal: controller.signal })) {
  console.log(`  worker ${entry.stream}: ${entry.line}`);
  if (++lines === 3) controller.abort();
}

// Leave everything running, as a crashed kernel would (a SIGKILL leaves the same state:
// the supervisor in the state dir keeps the workloads and records their exits).
await first.shutdown({ leaveRunning: true });
console.log("kernel 1 is gone; batch exits while no kernel watches...");
await new Promise((resolve) => setTimeout(resolve, 1_500));

// --- the same kernel, restarted --------------------------------------------------------
const backend = new ProcessBackend({ stateDir });
const second = createRuntimeKernel({ kernelId: "example", backend, profiles, credentials });
second.on("transition", (e) => console.log(`[kernel 2] ${e.workloadId}: ${e.from ?? "∅"} → ${e.state}`));
const report = await second.recover();
console.log(`recovered: adopted ${report.adopted.map((s) => s.workloadId).join(", ")};`);
for (const s of report.exited)
  console.log(`  ${s.workloadId} ended meanwhile with exit code ${s.exitCode} (${s.stopReason})`);

const stopped = await second.stop("worker");
console.log(`worker stopped: exit ${stopped.exitCode} (${stopped.signal})`);
await second.shutdown();
// The supervisor would exit by itself once idle; stop it now and clean up.
await backend.stopSupervisor();
rmSync(stateDir, { recursive: true, force: true });
