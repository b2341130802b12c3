import { describe, expect, it } from "vitest";
import { cleanupRetryDelay, quotaFor, RESTART_DEFAULTS, restartDelay } from "../../../src/kernel/policies.js";
import type { RestartPolicy, StopReason } from "../../../src/kernel/types.js";

const onFailure: RestartPolicy = { policy: "on-failure" };

describe("restartDelay", () => {
  describe("when it restarts", () => {
    it.each(["failed", "oom", "lost"] as const)("restarts after a run that ended %s", (reason) => {
      expect(restartDelay(onFailure, reason, 1)).toBe(RESTART_DEFAULTS.backoffMs);
    });

    it.each(["completed", "requested", "idle_timeout", "max_lifetime", "shutdown", "start_failed"] as const)(
      "does not restart after a run that ended %s",
      (reason: StopReason) => {
        expect(restartDelay(onFailure, reason, 1)).toBeUndefined();
      },
    );

    it("does not restart without a policy, with policy `never`, or without a stop reason", () => {
      expect(restartDelay(undefined, "failed", 1)).toBeUndefined();
      expect(restartDelay({ policy: "never" }, "failed", 1)).toBeUndefined();
      expect(restartDelay(onFailure, undefined, 1)).toBeUndefined();
    });
  });

  describe("backoff", () => {
    it("doubles the delay at each attempt, from `backoffMs`", () => {
      const policy: RestartPolicy = { policy: "on-failure", backoffMs: 100, maxRestarts: 10 };
      expect([1, 2, 3, 4, 5].map((n) => restartDelay(policy, "failed", n))).toEqual([
        100, 200, 400, 800, 1_600,
      ]);
    });

    it("caps the delay at `maxBackoffMs`", () => {
      const policy: RestartPolicy = {
        policy: "on-failure",
        backoffMs: 100,
        maxBackoffMs: 350,
        maxRestarts: 10,
      };
      expect([1, 2, 3, 4, 10].map((n) => restartDelay(policy, "failed", n))).toEqual([
        100, 200, 350, 350, 350,
      ]);
    });

    it("defaults to 1 s doubling to at most 60 s", () => {
      const policy: RestartPolicy = { policy: "on-failure", maxRestarts: 100 };
      expect(restartDelay(policy, "failed", 1)).toBe(1_000);
      expect(restartDelay(policy, "failed", 2)).toBe(2_000);
      expect(restartDelay(policy, "failed", 7)).toBe(60_000);
      expect(restartDelay(policy, "failed", 100)).toBe(60_000);
    });

    it("allows an immediate restart with `backoffMs: 0`", () => {
      expect(restartDelay({ policy: "on-failure", backoffMs: 0 }, "failed", 2)).toBe(0);
    });
  });

  describe("maxRestarts", () => {
    it("restarts at most `maxRestarts` times", () => {
      const policy: RestartPolicy = { policy: "on-failure", maxRestarts: 2, backoffMs: 10 };
      expect(restartDelay(policy, "failed", 1)).toBe(10);
      expect(restartDelay(policy, "failed", 2)).toBe(20);
      expect(restartDelay(policy, "failed", 3)).toBeUndefined();
    });

    it("defaults to 3 restarts", () => {
      expect(restartDelay(onFailure, "failed", RESTART_DEFAULTS.maxRestarts)).toBeDefined();
      expect(restartDelay(onFailure, "failed", RESTART_DEFAULTS.maxRestarts + 1)).toBeUndefined();
    });

    it("never restarts with `maxRestarts: 0`", () => {
      expect(restartDelay({ policy: "on-failure", maxRestarts: 0 }, "oom", 1)).toBeUndefined();
    });
  });
});

describe("quotaFor", () => {
  it("is unlimited when no quota is configured", () => {
    expect(quotaFor(undefined, "alice")).toBe(Number.POSITIVE_INFINITY);
  });

  it("is the same number for every owner when the quota is a number", () => {
    expect(quotaFor(3, "alice")).toBe(3);
    expect(quotaFor(3, "bob")).toBe(3);
    expect(quotaFor(0, "alice")).toBe(0);
  });

  it("asks the function with the owner when the quota is a function", () => {
    const quota = (owner: string) => (owner === "vip" ? 100 : 2);
    expect(quotaFor(quota, "vip")).toBe(100);
    expect(quotaFor(quota, "alice")).toBe(2);
  });
});

describe("cleanupRetryDelay", () => {
  it("waits 1 s before the first retry and doubles after each failure", () => {
    expect([1, 2, 3, 4].map(cleanupRetryDelay)).toEqual([1_000, 2_000, 4_000, 8_000]);
  });

  it("caps the wait at 5 minutes", () => {
    expect(cleanupRetryDelay(9)).toBe(256_000);
    expect(cleanupRetryDelay(10)).toBe(300_000);
    expect(cleanupRetryDelay(1_000)).toBe(300_000);
  });

  it("treats attempt 0 (or less) like the first", () => {
    expect(cleanupRetryDelay(0)).toBe(1_000);
    expect(cleanupRetryDelay(-3)).toBe(1_000);
  });
});
