import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { containerName, dns1123, hostnameFor } from "../../../../src/backends/docker/names.js";

const DNS1123_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

describe("Docker names", () => {
  it("are <prefix>-<workloadId>-<hash of the run>", () => {
    expect(containerName("rk", "agent-1", "run-a")).toMatch(/^rk-agent-1-[0-9a-f]{10}$/);
  });

  it("differ for two runs of one workload, even when the run ids share a long prefix", () => {
    const a = containerName("rk", "agent", "01HZX5K2M3N4P5Q6R7S8T9V0W1");
    const b = containerName("rk", "agent", "01HZX5K2M3N4P5Q6R7S8T9V0W2");
    expect(a).not.toBe(b);
  });

  it("are the same for the same run (a retried start finds its own container)", () => {
    expect(containerName("rk", "agent", "r1")).toBe(containerName("rk", "agent", "r1"));
  });

  it("sanitise anything to a DNS-1123 label of at most 63 characters", () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (workloadId, runId) => {
        const name = containerName("rk", workloadId, runId);
        expect(name.length).toBeLessThanOrEqual(63);
        expect(name).toMatch(DNS1123_LABEL);
      }),
    );
  });

  it("cut a long workload id and keep the run's hash", () => {
    const name = containerName("rk", "w".repeat(200), "run");
    expect(name).toHaveLength(63);
    expect(name.endsWith(containerName("rk", "w", "run").slice(-10))).toBe(true);
  });

  it("lower-case and dash what DNS-1123 refuses", () => {
    expect(dns1123("Agent_One..Two--")).toBe("agent-one-two");
    expect(dns1123("___")).toBe("");
    expect(hostnameFor("___")).toBe("workload");
    expect(hostnameFor("Build Agent 7")).toBe("build-agent-7");
  });
});
