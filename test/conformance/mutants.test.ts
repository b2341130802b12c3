/**
 * The conformance suite's own strength: it passes the minimal example backend, and fails each
 * backend broken on purpose (./mutants/mutants.ts) in the tests that are there to catch it.
 * The suite runs through `runConformance`, which reports each test instead of registering it.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { minimalFixtures } from "../../examples/minimal-backend/conformance-fixtures.js";
import { MinimalBackend } from "../../examples/minimal-backend/minimal-backend.js";
import { type CaseResult, conformanceSuite, runConformance } from "../../src/testing/conformance.js";
import { processesWithEnv } from "../../src/testing/index.js";
import { MUTANTS } from "./mutants/mutants.js";

/** Every process any of these runs starts carries it, so that the leaks of mutants can be reaped. */
const marker = randomUUID();
const dirs: string[] = [];

afterAll(async () => {
  for (const { pid } of await processesWithEnv("RK_MUTANTS", marker)) process.kill(pid, "SIGKILL");
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * The suite's results for a backend over a fresh directory. A mutant's leaks cost the suite
 * `timeoutMs` each, so mutants get a shorter one than the example's own.
 */
function suiteOf(make: (dir: string) => MinimalBackend, timeoutMs?: number): Promise<CaseResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "rk-mutant-"));
  dirs.push(dir);
  const fixtures = minimalFixtures(dir);
  return runConformance(() => make(dir), {
    ...fixtures,
    request: { env: { RK_MUTANTS: marker } },
    timeoutMs: timeoutMs ?? fixtures.timeoutMs,
  });
}

const failed = (results: CaseResult[]) => results.filter((r) => r.outcome === "failed").map((r) => r.name);

describe("the conformance suite", () => {
  const names = conformanceSuite(() => new MinimalBackend(""), minimalFixtures("")).cases.map((c) => c.name);

  it("passes the minimal example backend, with only the slow-start test skipped", async () => {
    const results = await suiteOf((dir) => new MinimalBackend(dir));
    expect(results.filter((r) => r.outcome !== "passed")).toEqual([
      expect.objectContaining({ outcome: "skipped", reason: "no slowStart fixture" }),
    ]);
  });

  it.concurrent.for(Object.entries(MUTANTS))("fails a backend where %s", async ([, mutant]) => {
    for (const name of mutant.caughtBy) expect(names).toContain(name);
    const results = await suiteOf(mutant.make, 2_000);
    expect(failed(results)).toEqual(expect.arrayContaining(mutant.caughtBy));
  });
});
