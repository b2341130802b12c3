import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { exec, typeCheck } from "./support.js";

/**
 * What a backend author gets from the packed package: the complete minimal backend of
 * examples/minimal-backend, copied into a project that installed the tarball (and vitest),
 * type-checks strictly and passes the whole conformance suite under that project's own vitest;
 * a failing test's stack can be followed into the package's sources.
 */
const { full } = inject("pkg");
const EXAMPLE = resolve(import.meta.dirname, "../../examples/minimal-backend");
const dir = join(full, "minimal-backend");

describe("examples/minimal-backend, in a project that installed the packed package", () => {
  beforeAll(() => {
    cpSync(EXAMPLE, dir, { recursive: true });
    // An ESM project, as vitest's own are.
    writeFileSync(join(dir, "package.json"), `${JSON.stringify({ type: "module" })}\n`);
  });

  it("passes a consumer's tsc --strict without skipLibCheck", async () => {
    const files = readdirSync(dir).filter((file) => file.endsWith(".ts"));
    const result = await typeCheck(dir, files);
    expect(result.stdout + result.stderr).toBe("");
    expect(result.code).toBe(0);
  });

  it("passes the whole conformance suite under the project's own vitest", async () => {
    const report = join(dir, "report.json");
    const result = await exec(
      full,
      process.execPath,
      [
        join(full, "node_modules/vitest/vitest.mjs"),
        "run",
        "minimal-backend/",
        "--reporter=json",
        `--outputFile=${report}`,
      ],
      { ...process.env, NO_COLOR: "1" },
    );
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const { numPassedTests, numFailedTests, numPendingTests } = JSON.parse(readFileSync(report, "utf8"));
    // Only the slow-start test is skipped: a process group has no slow start.
    expect({ numPassedTests, numFailedTests, numPendingTests }).toEqual({
      numPassedTests: 24,
      numFailedTests: 0,
      numPendingTests: 1,
    });
  });

  it("ships the sources its source maps name, so a failing test's stack leads somewhere", () => {
    const installed = join(full, "node_modules/runtime-kernel");
    const maps = readdirSync(join(installed, "dist"), { recursive: true })
      .map(String)
      .filter((file) => file.endsWith(".map"));
    expect(maps.length).toBeGreaterThan(0);
    const missing = maps.flatMap((map) => {
      const { sources } = JSON.parse(readFileSync(join(installed, "dist", map), "utf8")) as {
        sources: string[];
      };
      const from = dirname(join(installed, "dist", map));
      return sources.filter((source) => !existsSync(resolve(from, source))).map((s) => `${map}: ${s}`);
    });
    expect(missing).toEqual([]);
    expect(existsSync(join(installed, "src/testing/conformance.ts"))).toBe(true);
  });
});
