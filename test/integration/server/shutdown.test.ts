import { credentials } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../../../src/gen/grpc/health/v1/health.js";
import { isRuntimeKernelError, type StartRequest } from "../../../src/index.js";
import type { RuntimeServiceError } from "../../../src/server/index.js";
import type { FakeBackend } from "../../../src/testing/index.js";
import { deferred, startHarness } from "./harness.js";

/** Holds every `start` of `workloadId` until the returned gate opens. */
function gateStarts(fake: FakeBackend, workloadId: string): { open(): void; reached: Promise<void> } {
  const gate = deferred();
  const reached = deferred();
  const start = fake.start.bind(fake);
  fake.start = async (request: StartRequest, options: { signal: AbortSignal }) => {
    if (request.workloadId === workloadId) {
      reached.resolve();
      await gate.promise;
    }
    return start(request, options);
  };
  return { open: () => gate.resolve(), reached: reached.promise };
}

describe("closing the server", () => {
  it("drains: health turns NOT_SERVING, streams end with UNAVAILABLE, calls in flight finish, then workloads stop", async () => {
    const h = await startHarness();
    await h.client.create({
      workloadId: "w1",
      profile: "default",
      runnable: { fake: { output: ["hello"] } },
    });
    const gate = gateStarts(h.fake, "slow");
    const inFlight = h.client.create({ workloadId: "slow", profile: "default" });
    await gate.reached;

    const health = new HealthClient(h.server.address, credentials.createInsecure());
    const healthSeen: HealthCheckResponse_ServingStatus[] = [];
    const healthEnded = new Promise<void>((resolve) => {
      const watch = health.watch({ service: "runtime.v1.Runtime" });
      watch.on("data", (r: { status: HealthCheckResponse_ServingStatus }) => healthSeen.push(r.status));
      watch.on("error", () => resolve());
      watch.on("end", () => resolve());
    });
    const streamEnd = async (iterable: AsyncIterable<unknown>) => {
      try {
        for await (const _ of iterable) {
          // Drain until the server ends the stream.
        }
        return "ended without error";
      } catch (error) {
        return (error as RuntimeServiceError).statusName;
      }
    };
    const events = streamEnd(h.client.events({ sinceSeq: 0 }));
    const logs = streamEnd(h.client.logs("w1", { follow: true }));
    // Both streams are open once a later call has been answered.
    await h.client.list();

    const closing = h.server.close();
    expect(await events).toBe("UNAVAILABLE");
    expect(await logs).toBe("UNAVAILABLE");
    await healthEnded;
    expect(healthSeen).toEqual([
      HealthCheckResponse_ServingStatus.SERVING,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
    ]);
    const late = (await h
      .connect()
      .list()
      .catch((e: unknown) => e)) as RuntimeServiceError;
    expect(late.statusName).toBe("UNAVAILABLE");

    // The create that was in flight still gets its answer.
    gate.open();
    expect((await inFlight).state).toBe("running");
    await closing;
    health.close();

    expect(h.fake.workloads()).toEqual([]);
    const refused = await h.kernel.create({ workloadId: "w2", profile: "default" }).catch((e: unknown) => e);
    expect(isRuntimeKernelError(refused, "KERNEL_SHUT_DOWN")).toBe(true);
    await h.close();
  });

  it("leaves workloads running for recovery when configured to", async () => {
    const h = await startHarness({ server: { onClose: "leave-running" } });
    await h.client.create({ workloadId: "w1", profile: "default" });
    await h.client.create({ workloadId: "w2", profile: "default" });
    await h.close();
    expect(h.fake.running).toBe(2);
    expect(h.fake.workloads().map((w) => w.signals)).toEqual([[], []]);
  });

  it("leaves the kernel alone when it is shared with the rest of the process", async () => {
    const h = await startHarness({ server: { onClose: "keep-kernel" } });
    await h.client.create({ workloadId: "w1", profile: "default" });
    await h.close();
    expect(h.kernel.get("w1")?.state).toBe("running");
    await h.kernel.shutdown();
    expect(h.fake.workloads()).toEqual([]);
  });

  it("cuts calls still in flight after the drain timeout", async () => {
    const h = await startHarness();
    const gate = gateStarts(h.fake, "stuck");
    const inFlight = h.client.create({ workloadId: "stuck", profile: "default" }).catch((e: unknown) => e);
    await gate.reached;
    await h.server.close({ drainTimeoutMs: 100, onClose: "keep-kernel" });
    const error = (await inFlight) as RuntimeServiceError;
    expect(error.statusName).toBe("UNAVAILABLE");
    // The kernel itself carries on with the start; the call only lost its answer.
    gate.open();
    expect((await h.kernel.waitFor("stuck", "running")).state).toBe("running");
    await h.kernel.shutdown();
    await h.close();
  });

  it("is idempotent", async () => {
    const h = await startHarness();
    await Promise.all([h.server.close(), h.server.close()]);
    await h.close();
  });
});
