/**
 * The Backend conformance suite against FakeBackend, with and without `watchExit`. The fake
 * holds its runs in memory: a second instance cannot see them, so the factory hands the
 * recovery test the same instance. What it still holds of a run is what `workloads()` lists.
 */
import type { WorkloadHandle } from "../../src/index.js";
import { FakeBackend } from "../../src/testing/index.js";
import { type ConformanceFixtures, describeBackendConformance } from "../../src/testing/vitest.js";

function fixtures(fake: FakeBackend): ConformanceFixtures {
  const ofRun = (handle: WorkloadHandle) => fake.workloads().filter((w) => w.handle.runId === handle.runId);
  return {
    longRunning: { command: ["agent"] },
    exitWith: (code) => ({ command: ["agent"], fake: { exitAfterMs: 1, exitCode: code } }),
    ignoresTerminate: { command: ["agent"], fake: { ignoreTerminate: true } },
    cannotStart: { command: ["missing"], fake: { startError: "no such program" } },
    prints: (lines) => ({ command: ["agent"], fake: { output: lines } }),
    leftovers: async (handle) => ({
      running: ofRun(handle)
        .filter((w) => w.exit === null)
        .map((w) => `running fake run ${w.handle.serial}`),
      stored: ofRun(handle).map((w) => `fake run ${w.handle.serial}`),
    }),
    vanish: async (handle) => fake.lose(handle.workloadId),
  };
}

const fake = new FakeBackend();
describeBackendConformance("FakeBackend", () => fake, fixtures(fake));

const polled = new FakeBackend({ watchExit: false });
describeBackendConformance("FakeBackend without watchExit", () => polled, fixtures(polled));
