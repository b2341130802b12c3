/**
 * Testing a host application with the FakeBackend and a ManualClock: no processes,
 * no sleeps, faults on demand.  Run: npx tsx examples/fake-backend.ts
 */
import { createRuntimeKernel } from "runtime-kernel";
import { FakeBackend, ManualClock } from "runtime-kernel/testing";

const clock = new ManualClock();
const fake = new FakeBackend({ clock });
const kernel = createRuntimeKernel({
  backend: fake,
  clock,
  profiles: {
    agent: { runnable: { command: ["agent"] }, idleTimeoutMs: 60_000, graceMs: 5_000 },
    worker: {
      runnable: { command: ["worker"] },
      restart: { policy: "on-failure", maxRestarts: 1, backoffMs: 1_000 },
    },
  },
});
kernel.on("transition", (e) =>
  console.log(
    `${new Date(e.at).toISOString()}  ${e.workloadId.padEnd(8)} ${e.from ?? "∅"} -> ${e.state} ${e.stopReason ?? ""}`,
  ),
);

// 1. The idle TTL, without waiting a minute.
await kernel.create({ workloadId: "chat", profile: "agent" });
await clock.advance(60_000);
console.log("chat after 60 s idle:", kernel.get("chat")?.stopReason);

// 2. A workload that ignores SIGTERM is killed after the grace.
fake.behave("stubborn", { ignoreTerminate: true });
await kernel.create({ workloadId: "stubborn", profile: "agent" });
const stopping = kernel.stop("stubborn");
await clock.advance(5_000);
console.log("stubborn:", (await stopping).signal);

// 3. A crash, and the kernel's restart on failure.
await kernel.create({ workloadId: "job", profile: "worker" });
fake.exit("job", { exitCode: 1 });
await clock.advance(1_000);
console.log("job restarts:", (await kernel.waitFor("job", "running")).restarts);

// 4. A start failure is a typed error.
fake.behave("broken", { startError: "image not found" });
await kernel
  .create({ workloadId: "broken", profile: "agent" })
  .catch((e) => console.log("broken:", e.code, e.message));

await kernel.shutdown({ graceMs: 0 });
console.log("left in the backend:", fake.workloads().length);
