import { describe, expect, it } from "vitest";
import {
  eventToWire,
  STOP_REASON_TO_WIRE,
  specFromWire,
  statusToWire,
  stopReasonFromWire,
} from "../../../src/http/convert.js";
import { isRuntimeKernelError, type StopReason, type WorkloadStatus } from "../../../src/index.js";
import { eventProblems, statusProblems } from "../../fixtures/http/contract.js";

const base: WorkloadStatus = {
  workloadId: "w1",
  runId: "r1",
  profile: "agent",
  state: "stopped",
  createdAt: Date.UTC(2026, 0, 1),
  startedAt: Date.UTC(2026, 0, 1, 0, 0, 1),
  stoppedAt: Date.UTC(2026, 0, 1, 0, 0, 9),
  restarts: 0,
};

describe("the stop-reason mapping", () => {
  it("maps every kernel reason onto the contract's; requested and shutdown are stopped, lost is failed", () => {
    expect(STOP_REASON_TO_WIRE).toEqual({
      requested: "stopped",
      shutdown: "stopped",
      idle_timeout: "idle_timeout",
      max_lifetime: "max_lifetime",
      completed: "completed",
      failed: "failed",
      oom: "oom",
      lost: "failed",
      start_failed: "start_failed",
    });
  });

  it("reports lost as failed without an exit code, and every other ending with its code", () => {
    for (const reason of Object.keys(STOP_REASON_TO_WIRE) as StopReason[]) {
      const status = statusToWire({ ...base, stopReason: reason, exitCode: 137 }, { backend: "process" });
      expect(statusProblems(status)).toEqual([]);
      expect(status.stopReason).toBe(STOP_REASON_TO_WIRE[reason]);
      expect(status.exitCode).toBe(reason === "lost" ? undefined : 137);
    }
  });

  it("takes stopped, idle_timeout and max_lifetime from a caller, and refuses the others naming reason", () => {
    expect(stopReasonFromWire(undefined)).toBe("requested");
    expect(stopReasonFromWire("stopped")).toBe("requested");
    expect(stopReasonFromWire("idle_timeout")).toBe("idle_timeout");
    expect(stopReasonFromWire("max_lifetime")).toBe("max_lifetime");
    for (const reason of ["completed", "failed", "oom", "start_failed"] as const) {
      try {
        stopReasonFromWire(reason);
        expect.unreachable();
      } catch (error) {
        expect(isRuntimeKernelError(error, "INVALID_SPEC") && error.issues[0]?.path).toBe("reason");
      }
    }
  });
});

describe("statuses and events on the wire", () => {
  it("gives times as ISO 8601, ports as integers while running, and never the kernel's own fields", () => {
    const running = statusToWire(
      {
        ...base,
        state: "running",
        stoppedAt: undefined,
        ports: { http: "8080", vnc: "0.0.0.0:6080", odd: "x" },
        owner: "o",
        traceId: "t",
      },
      { backend: "k8s", node: "pod-1" },
    );
    expect(running).toEqual({
      workloadId: "w1",
      profile: "agent",
      state: "running",
      backend: "k8s",
      ports: { http: 8080, vnc: 6080 },
      startedAt: "2026-01-01T00:00:01.000Z",
      node: "pod-1",
    });
    expect(statusProblems(running)).toEqual([]);
  });

  it("makes each transition a RuntimeEvent with exactly the contract's fields", () => {
    const event = eventToWire({
      workloadId: "w1",
      runId: "r1",
      profile: "agent",
      from: "stopping",
      state: "stopped",
      at: Date.UTC(2026, 0, 1),
      seq: 4,
      exitCode: 143,
      signal: "SIGTERM",
      stopReason: "requested",
      traceId: "t",
      restart: 1,
    });
    expect(event).toEqual({
      workloadId: "w1",
      state: "stopped",
      at: "2026-01-01T00:00:00.000Z",
      exitCode: 143,
      stopReason: "stopped",
    });
    expect(eventProblems(event)).toEqual([]);
  });
});

describe("specs from the wire", () => {
  const context = { backend: "process" as const, ownerEnv: "VEXA_OWNER" as const };

  it("turns seconds into milliseconds, 0 resources into none, and VEXA_OWNER into the owner", () => {
    expect(
      specFromWire(
        {
          workloadId: "w1",
          profile: "agent",
          env: { VEXA_OWNER: "acme" },
          resources: { cpu: 0, memoryMb: 512, gpu: 0 },
          idleTimeoutSec: 600,
          maxLifetimeSec: 0,
          backend: "process",
        },
        { ...context, traceId: "t-1" },
      ),
    ).toEqual({
      workloadId: "w1",
      profile: "agent",
      env: { VEXA_OWNER: "acme" },
      owner: "acme",
      resources: { memoryMb: 512 },
      idleTimeoutMs: 600_000,
      maxLifetimeMs: 0,
      traceId: "t-1",
    });
  });

  it("refuses a backend that is not this kernel's, naming backend", () => {
    try {
      specFromWire({ workloadId: "w1", profile: "agent", env: {}, backend: "k8s" }, context);
      expect.unreachable();
    } catch (error) {
      expect(isRuntimeKernelError(error, "INVALID_SPEC") && error.issues.map((i) => i.path)).toEqual([
        "backend",
      ]);
    }
  });
});
