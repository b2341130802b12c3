/**
 * MinimalBackend held to the port's contract: the whole conformance suite, with every
 * fixture given. Run: npx vitest run examples/minimal-backend
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeBackendConformance } from "runtime-kernel/testing/vitest";
import { minimalFixtures } from "./conformance-fixtures.js";
import { MinimalBackend } from "./minimal-backend.js";

const dir = mkdtempSync(join(tmpdir(), "minimal-backend-"));

describeBackendConformance("MinimalBackend", () => new MinimalBackend(dir), {
  ...minimalFixtures(dir),
  teardown: async () => rmSync(dir, { recursive: true, force: true }),
});
