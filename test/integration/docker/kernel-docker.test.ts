/**
 * A runtime kernel on the Docker backend, against the real test engine: the lifecycle a host
 * sees, with each stop reason a container can produce, recovery after a kernel restart, logs,
 * and credentials that reach only the container.
 */
import type Dockerode from "dockerode";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { LABELS } from "../../../src/backends/backend.js";
import { DockerBackend } from "../../../src/backends/docker/index.js";
import {
  createRuntimeKernel,
  isRuntimeKernelError,
  type Profile,
  type RuntimeKernel,
  type TransitionEvent,
} from "../../../src/index.js";
import { dockerHost, engine, removeAll, testImage, testKernelId } from "./support.js";

const SECRET = "ghp_kernelDockerSecret0123456789abcdef";
const docker = engine();
const kernelIds: string[] = [];
const kernels: RuntimeKernel[] = [];

function profiles(): Record<string, Profile> {
  const image = testImage();
  return {
    sleeper: { runnable: { image, command: ["sleep", "600"] }, graceMs: 10_000 },
    stubborn: {
      runnable: { image, command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"] },
      graceMs: 300,
    },
    job: { runnable: { image, command: ["sh", "-c", 'echo working; exit "$CODE"'] }, env: { CODE: "0" } },
    hog: {
      runnable: { image, command: ["sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1"] },
      resources: { memoryMb: 16 },
    },
    leaky: { runnable: { image, command: ["sh", "-c", 'echo "token=$API_TOKEN"; sleep 600'] } },
    missing: { runnable: { image: "runtime-kernel/absent:never", command: ["true"] } },
  };
}

function kernel(name: string, kernelId = testKernelId(name)): RuntimeKernel {
  kernelIds.push(kernelId);
  const k = createRuntimeKernel({
    kernelId,
    backend: new DockerBackend({ host: dockerHost() }),
    profiles: profiles(),
    credentials: { credentials: () => ({ API_TOKEN: SECRET }) },
  });
  kernels.push(k);
  return k;
}

function record(k: RuntimeKernel): TransitionEvent[] {
  const events: TransitionEvent[] = [];
  k.on("transition", (e: TransitionEvent) => events.push(e));
  return events;
}

async function containersOf(kernelId: string): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`${LABELS.kernelId}=${kernelId}`] } });
}

afterEach(async () => {
  await Promise.allSettled(kernels.splice(0).map((k) => k.shutdown()));
});
afterAll(async () => {
  await Promise.all(kernelIds.map((id) => removeAll(id)));
});

describe("a kernel on Docker", () => {
  it("walks create → running → stop → stopped → destroy → destroyed, and leaves no container", async () => {
    const k = kernel("lifecycle");
    const events = record(k);
    const running = await k.create({ workloadId: "sleeper-1", profile: "sleeper", owner: "alice" });
    expect(running.state).toBe("running");
    const [container] = await containersOf(k.kernelId);
    expect(container?.State).toBe("running");
    expect(container?.Labels[LABELS.runId]).toBe(running.runId);
    expect(container?.Labels[LABELS.owner]).toBe("alice");

    const stopped = await k.stop("sleeper-1");
    expect(stopped).toMatchObject({
      state: "stopped",
      stopReason: "requested",
      exitCode: 143,
      signal: "SIGTERM",
    });
    await k.destroy("sleeper-1");
    expect(await containersOf(k.kernelId)).toEqual([]);
    expect(events.map((e) => e.state)).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);
  });

  it("kills a workload that ignores SIGTERM once the grace is over (137)", async () => {
    const k = kernel("grace");
    await k.create({ workloadId: "stubborn-1", profile: "stubborn" });
    const stopped = await k.stop("stubborn-1");
    expect(stopped).toMatchObject({ stopReason: "requested", exitCode: 137, signal: "SIGKILL" });
  });

  it("reports a workload that exits by itself as completed or failed, with its code", async () => {
    const k = kernel("exits");
    await k.create({ workloadId: "ok", profile: "job" });
    await k.create({ workloadId: "bad", profile: "job", env: { CODE: "3" } });
    expect(await k.waitFor("ok", "stopped")).toMatchObject({ stopReason: "completed", exitCode: 0 });
    expect(await k.waitFor("bad", "stopped")).toMatchObject({ stopReason: "failed", exitCode: 3 });
  });

  it("reports an OOM kill as oom", async () => {
    const k = kernel("oom");
    await k.create({ workloadId: "hog", profile: "hog" });
    expect(await k.waitFor("hog", "stopped")).toMatchObject({ stopReason: "oom", exitCode: 137 });
  });

  it("reports a container removed behind its back as lost, and still destroys it", async () => {
    const k = kernel("lost");
    await k.create({ workloadId: "victim", profile: "sleeper" });
    const [container] = await containersOf(k.kernelId);
    await docker.getContainer(container!.Id).remove({ force: true });
    expect(await k.waitFor("victim", "stopped")).toMatchObject({ stopReason: "lost" });
    await k.destroy("victim");
  });

  it("fails a start whose image is missing, leaving nothing behind", async () => {
    const k = kernel("missing");
    await expect(k.create({ workloadId: "nope", profile: "missing" })).rejects.toSatisfy((e: unknown) =>
      isRuntimeKernelError(e, "START_FAILED"),
    );
    expect(k.get("nope")).toMatchObject({ state: "stopped", stopReason: "start_failed" });
    expect(await containersOf(k.kernelId)).toEqual([]);
  });

  it("streams the container's logs", async () => {
    const k = kernel("logs");
    await k.create({ workloadId: "job-logs", profile: "job" });
    await k.waitFor("job-logs", "stopped");
    const lines: string[] = [];
    for await (const entry of k.logs("job-logs")) lines.push(`${entry.stream}:${entry.line}`);
    expect(lines).toEqual(["stdout:working"]);
  });

  it("gives brokered credentials to the container only: not to events, statuses, labels or errors", async () => {
    const k = kernel("secrets");
    const events = record(k);
    const status = await k.create({ workloadId: "leaky", profile: "leaky" });
    const [container] = await containersOf(k.kernelId);
    expect(JSON.stringify(container?.Labels)).not.toContain(SECRET);
    const lines: string[] = [];
    for await (const entry of k.logs("leaky", { follow: true })) {
      lines.push(entry.line);
      break;
    }
    expect(lines).toEqual([`token=${SECRET}`]); // the workload has it: that is the point
    await k.destroy("leaky");
    expect(JSON.stringify(events)).not.toContain(SECRET);
    expect(JSON.stringify(status)).not.toContain(SECRET);
    expect(JSON.stringify(k.list())).not.toContain(SECRET);

    await k.create({ workloadId: "leaky-fail", profile: "missing" }).catch(() => {});
    expect(JSON.stringify(k.get("leaky-fail"))).not.toContain(SECRET);
  });

  it("is found again by a restarted kernel with the same id: running ones adopted, missed exits reported", async () => {
    const kernelId = testKernelId("recover");
    const first = kernel("recover", kernelId);
    const adopted = await first.create({ workloadId: "survivor", profile: "sleeper" });
    await first.create({ workloadId: "finisher", profile: "job", env: { CODE: "5" } });
    await first.waitFor("finisher", "running");
    await first.shutdown({ leaveRunning: true });
    // finisher exits while no kernel watches
    await expect
      .poll(
        async () =>
          (await containersOf(kernelId)).find((c) => c.Labels[LABELS.workloadId] === "finisher")?.State,
      )
      .toBe("exited");

    const second = kernel("recover", kernelId);
    const report = await second.recover();
    expect(report.adopted.map((s) => [s.workloadId, s.runId])).toEqual([["survivor", adopted.runId]]);
    expect(report.exited).toEqual([expect.objectContaining({ workloadId: "finisher", exitCode: 5 })]);
    expect(second.get("survivor")?.state).toBe("running");
    expect(await second.stop("survivor")).toMatchObject({ stopReason: "requested", exitCode: 143 });
    await second.destroy("survivor");
    await second.destroy("finisher");
    expect(await containersOf(kernelId)).toEqual([]);
  });
});
