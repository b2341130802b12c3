/**
 * `runtime-kernel/testing`: what host applications and backend authors test with.
 * - {@link FakeBackend}: an in-memory backend with fault injection.
 * - {@link ManualClock}: time that moves only when the test moves it.
 * - {@link describeBackendConformance}: the suite every backend must pass (needs vitest).
 * @module
 */

export type { ConformanceFixtures } from "./conformance.js";
export { describeBackendConformance } from "./conformance.js";
export type { FakeBackendOptions, FakeBehavior, FakeCall, FakeHandle, FakeWorkload } from "./fake-backend.js";
export { FakeBackend } from "./fake-backend.js";
export { ManualClock, settle } from "./manual-clock.js";
