import { describe, expect, it } from "vitest";
import { isRuntimeKernelError } from "../../../src/errors.js";
import { OwnerQuota } from "../../../src/kernel/quota.js";

describe("OwnerQuota", () => {
  it("refuses the charge over the limit with QUOTA_EXCEEDED and counts nothing for it", () => {
    const quota = new OwnerQuota(1);
    quota.charge("alice", "w1");
    expect(() => quota.charge("alice", "w2")).toThrow(
      expect.objectContaining({ code: "QUOTA_EXCEEDED", workloadId: "w2" }),
    );
    quota.release("alice");
    quota.charge("alice", "w3");
  });

  it("counts each owner apart, by the limit a function gives for it", () => {
    const quota = new OwnerQuota((owner) => (owner === "bob" ? 2 : 0));
    quota.charge("bob", "w1");
    quota.charge("bob", "w2");
    expect(() => quota.charge("alice", "w3")).toThrow(/./);
    let error: unknown;
    try {
      quota.charge("bob", "w4");
    } catch (thrown) {
      error = thrown;
    }
    expect(isRuntimeKernelError(error, "QUOTA_EXCEEDED")).toBe(true);
  });

  it("never counts a workload without an owner, and lets a forced charge go over the limit", () => {
    const quota = new OwnerQuota(0);
    quota.charge(undefined, "w1");
    quota.force("alice");
    quota.release("alice");
    expect(() => quota.charge("alice", "w2")).toThrow(/./);
  });
});
