/** From a Pod's status to the port's exit, and why a Pod is still Pending. */
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  exitOf,
  exitOfDeleted,
  fatalPendingReason,
  pendingReason,
} from "../../../../src/backends/kubernetes/pod-status.js";

const pod = (status: V1Pod["status"], deleting = false): V1Pod => ({
  metadata: { name: "p", ...(deleting ? { deletionTimestamp: new Date() } : {}) },
  status,
});
const terminated = (exitCode: number, reason?: string) => ({
  containerStatuses: [
    {
      name: "main",
      image: "i",
      imageID: "",
      ready: false,
      restartCount: 0,
      state: { terminated: { exitCode, ...(reason ? { reason } : {}) } },
    },
  ],
});

describe("exitOf", () => {
  it("Pending and Running are null", () => {
    expect(exitOf(pod({ phase: "Pending" }))).toBeNull();
    expect(exitOf(pod({ phase: "Running" }))).toBeNull();
    expect(exitOf(pod({ phase: "Unknown" }))).toBeNull();
  });
  it("Succeeded is 0", () => {
    expect(exitOf(pod({ phase: "Succeeded" }))).toEqual({ exitCode: 0 });
  });
  it("Failed is the container's exit code, with the signal's name above 128", () => {
    expect(exitOf(pod({ phase: "Failed", ...terminated(2) }))).toEqual({ exitCode: 2 });
    expect(exitOf(pod({ phase: "Failed", ...terminated(137) }))).toEqual({
      exitCode: 137,
      signal: "SIGKILL",
    });
  });
  it("OOMKilled sets oomKilled", () => {
    expect(exitOf(pod({ phase: "Failed", ...terminated(137, "OOMKilled") }))).toEqual({
      exitCode: 137,
      signal: "SIGKILL",
      oomKilled: true,
    });
  });
  it("Failed without a terminated container (evicted) is lost", () => {
    expect(exitOf(pod({ phase: "Failed", reason: "Evicted" }))).toEqual({ exitCode: null, lost: true });
  });
  it("a terminating Pod whose container has exited has exited", () => {
    expect(exitOf(pod({ phase: "Running", ...terminated(0) }, true))).toEqual({ exitCode: 0 });
    expect(exitOf(pod({ phase: "Running", ...terminated(0) }, false))).toBeNull();
  });
});

describe("exitOfDeleted", () => {
  it("keeps a known exit", () => {
    expect(exitOfDeleted(pod({ phase: "Failed", ...terminated(3) }), undefined)).toEqual({ exitCode: 3 });
  });
  it("deleted behind the kernel's back before any exit: lost", () => {
    expect(exitOfDeleted(pod({ phase: "Running" }), undefined)).toEqual({ exitCode: null, lost: true });
    expect(exitOfDeleted(undefined, undefined)).toEqual({ exitCode: null, lost: true });
  });
  it("deleted by the kernel: SIGKILL for grace 0, SIGTERM otherwise", () => {
    expect(exitOfDeleted(pod({ phase: "Running" }), 0)).toEqual({ exitCode: 137, signal: "SIGKILL" });
    expect(exitOfDeleted(pod({ phase: "Running" }), 30)).toEqual({ exitCode: 143, signal: "SIGTERM" });
  });
});

describe("pendingReason", () => {
  it("quotes the scheduler", () => {
    const p = pod({
      phase: "Pending",
      conditions: [
        {
          type: "PodScheduled",
          status: "False",
          reason: "Unschedulable",
          message: "0/3 nodes are available",
        },
      ],
    });
    expect(pendingReason(p)).toBe("not scheduled: Unschedulable: 0/3 nodes are available");
    expect(fatalPendingReason(p)).toBeUndefined();
  });
  it("quotes the kubelet, and a missing image with pull policy Never is fatal", () => {
    const p = pod({
      phase: "Pending",
      containerStatuses: [
        {
          name: "main",
          image: "i",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "ErrImageNeverPull", message: "not present" } },
        },
      ],
    });
    expect(fatalPendingReason(p)).toBe("container waiting: ErrImageNeverPull: not present");
  });
});
