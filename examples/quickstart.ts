/**
 * The quickstart: real processes through the runtime.v1 lifecycle, with a live view of
 * every transition.  Run: npm run demo
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRuntimeKernel, ProcessBackend, type TransitionEvent } from "runtime-kernel";

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: number, text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const STATE_COLORS = { starting: 33, running: 32, stopping: 35, stopped: 36, destroyed: 90 } as const;
const started = Date.now();

function show(e: TransitionEvent): void {
  const t = `+${((e.at - started) / 1000).toFixed(3)}s`.padStart(9);
  const arrow = `${e.from ?? "∅"} → ${paint(STATE_COLORS[e.state], e.state)}`;
  const detail = [
    e.stopReason && `reason=${e.stopReason}`,
    e.exitCode !== undefined && `exit=${e.exitCode}`,
    e.signal && `signal=${e.signal}`,
    e.error && `error=${e.error.message}`,
  ].filter(Boolean);
  console.log(
    `${paint(90, t)}  #${String(e.seq).padEnd(3)} ${e.workloadId.padEnd(9)} ${arrow.padEnd(color ? 32 : 23)} ${detail.join(" ")}`,
  );
}

const dir = mkdtempSync(join(tmpdir(), "runtime-kernel-demo-"));
const kernel = createRuntimeKernel({
  kernelId: "demo",
  backend: new ProcessBackend({ stateDir: join(dir, "state"), logDir: join(dir, "logs") }),
  profiles: {
    shell: { runnable: { command: ["sh", "-c", "echo started; sleep 30"] }, graceMs: 2_000 },
    chatty: { runnable: { command: ["sh", "-c", "for i in 1 2 3; do echo line $i; done; exit 3"] } },
    idle: { runnable: { command: ["sleep", "30"] }, idleTimeoutMs: 1_500 },
    stubborn: {
      runnable: { command: ["sh", "-c", "trap '' TERM; echo ignoring SIGTERM; while :; do sleep 1; done"] },
      graceMs: 1_000,
    },
  },
  ownerQuota: 2,
});
kernel.on("transition", show);

console.log(paint(1, "runtime-kernel demo: four real processes through the runtime.v1 lifecycle\n"));

const sleeper = await kernel.create({ workloadId: "sleeper", profile: "shell", owner: "alice" });
console.log(`  sleeper is ${sleeper.state} (run ${sleeper.runId.slice(0, 8)})`);

await kernel.create({ workloadId: "chatty", profile: "chatty", owner: "alice" });
const chatty = await kernel.waitFor("chatty", "stopped");
const lines: string[] = [];
for await (const entry of kernel.logs("chatty")) lines.push(entry.line);
console.log(
  `  chatty exited ${chatty.exitCode} (${chatty.stopReason}); its output: ${JSON.stringify(lines)}`,
);

await kernel.create({ workloadId: "idler", profile: "idle", owner: "bob" });
console.log("  idler has an idle TTL of 1.5 s and nobody touches it...");
console.log(`  idler: ${(await kernel.waitFor("idler", "stopped")).stopReason}`);

await kernel.create({ workloadId: "stubborn", profile: "stubborn", owner: "alice" });
const quota = await kernel
  .create({ workloadId: "one-more", profile: "shell", owner: "alice" })
  .catch((e) => e);
console.log(`  alice's third live workload (quota 2): ${quota.code} (${quota.message})`);
console.log("  stopping stubborn: SIGTERM is ignored, so SIGKILL follows the 1 s grace...");
const stubborn = await kernel.stop("stubborn");
console.log(`  stubborn: exit ${stubborn.exitCode} (${stubborn.signal})`);

await kernel.stop("sleeper");
console.log("\n  shutting down: everything left is stopped and reclaimed");
await kernel.shutdown();
rmSync(dir, { recursive: true, force: true });
console.log(paint(1, "\ndone: nothing left running."));
