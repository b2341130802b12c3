/**
 * The Docker backend: sandboxed containers, a workspace, a brokered secret, logs, a graceful
 * stop, and a kernel that goes away and finds its containers again by their labels.
 *
 * Run against any engine (DOCKER_HOST), or against the project's private test engine:
 *   export $(bash test/setup/docker-engine.sh start | xargs)
 *   npx tsx examples/docker.ts
 *   bash test/setup/docker-engine.sh stop
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRuntimeKernel, type Profile } from "runtime-kernel";
import { DockerBackend } from "runtime-kernel/docker";

// Any image with a POSIX shell. The test engine imports runtime-kernel/busybox:test; elsewhere
// busybox is pulled once (the backend never pulls unless a profile's pull policy allows it).
const image = process.env.RK_TEST_IMAGE ?? "busybox:1.36";
const pullPolicy = process.env.RK_TEST_IMAGE ? "never" : "if-not-present";
const workspace = mkdtempSync(join(tmpdir(), "rk-docker-example-"));
chmodSync(workspace, 0o777); // the worker runs as nobody (65534)

const profiles: Record<string, Profile> = {
  // Prints what its sandbox allows, then exits.
  probe: {
    runnable: {
      image,
      command: [
        "sh",
        "-c",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
        'echo "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | xargs)"; grep -E "CapEff|NoNewPrivs" /proc/self/status; echo "token is ${API_TOKEN:+set}"',
      ],
      docker: { pullPolicy },
    },
  },
  // Writes to its workspace every 200 ms until SIGTERM; read-only root, an unprivileged user.
  worker: {
    runnable: {
      image,
      command: ["sh", "-c", "while :; do date >> heartbeat.txt; echo tick; sleep 0.2; done"],
      docker: { pullPolicy, readOnlyRootfs: true, user: "65534:65534" },
    },
    resources: { memoryMb: 64, cpu: 0.5, pids: 64 },
    graceMs: 5_000,
  },
};
const credentials = { credentials: () => ({ API_TOKEN: "sk-example-not-a-real-secret" }) };

// --- the first kernel ------------------------------------------------------------------
const first = createRuntimeKernel({
  kernelId: "docker-example",
  backend: new DockerBackend(),
  profiles,
  credentials,
});
first.on("transition", (e) => console.log(`[kernel 1] ${e.workloadId}: ${e.from ?? "∅"} → ${e.state}`));

await first.create({ workloadId: "probe", profile: "probe" });
const probe = await first.waitFor("probe", "stopped");
for await (const entry of first.logs("probe")) console.log(`  probe ${entry.stream}: ${entry.line}`);
console.log(`  probe ${probe.stopReason}, exit ${probe.exitCode}`);
await first.destroy("probe");

await first.create({ workloadId: "worker", profile: "worker", workspace });
const controller = new AbortController();
let ticks = 0;
for await (const entry of first.logs("worker", { follow: true, signal: controller.signal })) {
  console.log(`  worker ${entry.stream}: ${entry.line}`);
  if (++ticks === 3) controller.abort();
}

// Leave the worker running, as a crashed kernel would: its container carries the kernel's
// labels, which is all a restarted kernel needs.
await first.shutdown({ leaveRunning: true });
console.log("kernel 1 is gone; its container keeps running...");

// --- the same kernel, restarted --------------------------------------------------------
const second = createRuntimeKernel({
  kernelId: "docker-example",
  backend: new DockerBackend(),
  profiles,
  credentials,
});
second.on("transition", (e) => console.log(`[kernel 2] ${e.workloadId}: ${e.from ?? "∅"} → ${e.state}`));
const report = await second.recover();
console.log(`recovered: ${report.adopted.map((s) => s.workloadId).join(", ")}`);

const stopped = await second.stop("worker"); // SIGTERM, SIGKILL after the grace
console.log(`worker ${stopped.stopReason}: exit ${stopped.exitCode} (${stopped.signal})`);
console.log(
  `heartbeats written to the workspace: ${readFileSync(join(workspace, "heartbeat.txt"), "utf8").trim().split("\n").length}`,
);
await second.shutdown(); // destroys what is left: no container stays behind
rmSync(workspace, { recursive: true, force: true });
