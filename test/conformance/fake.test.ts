import { FakeBackend } from "../../src/testing/index.js";
import { describeBackendConformance } from "../../src/testing/vitest.js";

describeBackendConformance("FakeBackend", () => new FakeBackend(), {
  longRunning: { command: ["agent"] },
  exitWith: (code) => ({ command: ["agent"], fake: { exitAfterMs: 1, exitCode: code } }),
  ignoresTerminate: { command: ["agent"], fake: { ignoreTerminate: true } },
});

describeBackendConformance("FakeBackend without watchExit", () => new FakeBackend({ watchExit: false }), {
  longRunning: { command: ["agent"] },
  exitWith: (code) => ({ command: ["agent"], fake: { exitAfterMs: 1, exitCode: code } }),
  ignoresTerminate: { command: ["agent"], fake: { ignoreTerminate: true } },
});
