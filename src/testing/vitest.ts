/**
 * `runtime-kernel/testing/vitest`: {@link describeBackendConformance}, the suite every
 * backend must pass, written for vitest (a peer dependency of this entry only). Kept apart
 * from `runtime-kernel/testing` so that the fake backend and the manual clock load without
 * any test runner.
 * @module
 */

export type { ConformanceFixtures } from "./conformance.js";
export { describeBackendConformance } from "./conformance.js";
