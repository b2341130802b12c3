/**
 * `runtime-kernel/testing/vitest`: {@link describeBackendConformance}, the suite every
 * backend must pass, written for vitest (a peer dependency of this entry only). Kept apart
 * from `runtime-kernel/testing` so that the fake backend and the manual clock load without
 * any test runner.
 * @module
 */
import { afterAll, afterEach, beforeAll, describe, it } from "vitest";
import type { Backend } from "../backends/backend.js";
import { type ConformanceFixtures, conformanceSuite } from "./conformance.js";

export type { ConformanceFixtures, Leftovers } from "./conformance.js";

/**
 * Registers the conformance suite for a backend with vitest: one `describe` with a test per
 * clause of the contract (docs/testing.md lists them).
 *
 * - `factory` is called once, before the first test, for the backend every test uses; the
 *   recovery test calls it once more for a second instance over the same substrate (it must
 *   see the first one's runs) and closes that one.
 * - After each test, every run it started is killed and cleaned up at once; a failure there
 *   fails the test.
 * - Each test and hook gets its own vitest timeout, six times `fixtures.timeoutMs`, so that
 *   vitest's default (5 s) never cuts a substrate's waits short; each single wait inside is
 *   bounded by `timeoutMs` and fails with a message that says what it waited for.
 * - A test that does not apply (a capability the backend does not offer, a fixture not given)
 *   is reported skipped, with the reason.
 *
 * @example
 * ```ts
 * import { processesWithEnv } from "runtime-kernel/testing";
 * import { describeBackendConformance } from "runtime-kernel/testing/vitest";
 *
 * describeBackendConformance("MyBackend", () => new MyBackend({ dir }), {
 *   longRunning: { command: ["sleep", "600"] },
 *   exitWith: (code) => ({ command: ["sh", "-c", `exit ${code}`] }),
 *   ignoresTerminate: { command: ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"] },
 *   cannotStart: { command: ["/nonexistent/program"] },
 *   leftovers: async (handle) => ({
 *     running: (await processesWithEnv("CONFORMANCE_RUN_ID", handle.runId)).map((p) => p.command),
 *     stored: readdirSync(dir).filter((file) => file.startsWith(handle.runId)),
 *   }),
 * });
 * ```
 */
export function describeBackendConformance(
  name: string,
  factory: () => Backend | Promise<Backend>,
  fixtures: ConformanceFixtures,
): void {
  const suite = conformanceSuite(factory, fixtures);
  const timeout = suite.caseTimeoutMs;
  describe(`Backend conformance: ${name}`, () => {
    beforeAll(suite.setUp, timeout);
    afterEach(suite.afterEach, timeout);
    afterAll(suite.tearDown, timeout);
    for (const { name, run } of suite.cases) {
      it(
        name,
        async (context) => {
          const skipped = await run();
          if (skipped !== undefined) context.skip(skipped);
        },
        timeout,
      );
    }
  });
}
