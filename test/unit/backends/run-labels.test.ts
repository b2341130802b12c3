import { describe, expect, it } from "vitest";
import { LABELS } from "../../../src/backends/backend.js";
import { decodeRunLabels, encodeRunLabels } from "../../../src/backends/run-labels.js";

const run = {
  kernelId: "k1",
  workloadId: "w1",
  runId: "r1",
  profile: "agent",
  owner: "alice",
  createdAt: 1_000,
  maxLifetimeAt: 61_000,
  restart: 2,
};

describe("run labels", () => {
  it("read back what they recorded about a run", () => {
    const { kernelId: _k, runId: _r, ...readable } = run;
    expect(decodeRunLabels(encodeRunLabels(run))).toEqual(readable);
  });

  it("carry the caller's own labels, and the kernel's win a clash", () => {
    const labels = encodeRunLabels(run, { team: "a", [LABELS.runId]: "forged" });
    expect(labels.team).toBe("a");
    expect(labels[LABELS.runId]).toBe("r1");
  });

  it("leave out an owner, a deadline and a restart that the run does not have", () => {
    const labels = encodeRunLabels({ ...run, owner: undefined, maxLifetimeAt: undefined, restart: 0 });
    expect(Object.keys(labels).sort()).toEqual(
      [LABELS.kernelId, LABELS.workloadId, LABELS.runId, LABELS.profile, LABELS.createdAt].sort(),
    );
    expect(decodeRunLabels(labels)).toEqual({
      workloadId: "w1",
      profile: "agent",
      createdAt: 1_000,
      restart: 0,
    });
  });

  it("drop what a substrate returns malformed instead of trusting it", () => {
    expect(
      decodeRunLabels({
        [LABELS.owner]: "",
        [LABELS.createdAt]: "yesterday",
        [LABELS.maxLifetimeAt]: "-5",
        [LABELS.restart]: "x",
      }),
    ).toEqual({ createdAt: 0, restart: 0 });
    expect(decodeRunLabels({ [LABELS.maxLifetimeAt]: "Infinity" }).maxLifetimeAt).toBeUndefined();
  });
});
