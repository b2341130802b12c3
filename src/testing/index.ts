/**
 * `runtime-kernel/testing`: what host applications test with. Loads with no test runner
 * installed, from ESM and CommonJS.
 * - {@link FakeBackend}: an in-memory backend with fault injection.
 * - {@link ManualClock}: time that moves only when the test moves it.
 * - {@link processesWithEnv}: a run's processes, found through /proc, for the conformance
 *   suite's `leftovers` fixture.
 *
 * The backend conformance suite, which needs vitest, is `runtime-kernel/testing/vitest`.
 * @module
 */

export type { FakeBackendOptions, FakeBehavior, FakeCall, FakeHandle, FakeWorkload } from "./fake-backend.js";
export { FakeBackend } from "./fake-backend.js";
export { ManualClock, settle } from "./manual-clock.js";
export { type FoundProcess, processesWithEnv } from "./processes.js";
