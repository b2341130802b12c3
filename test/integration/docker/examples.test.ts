/**
 * examples/docker.ts keeps running against a real engine as docs/docker-backend.md shows it
 * (`npx tsx`, the package imported by its name), and keeps saying what its comments say.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { LABELS } from "../../../src/backends/backend.js";
import { dockerHost, engine, testImage } from "./support.js";

describe("examples/docker.ts on the test engine", () => {
  it("sandboxes a probe, recovers the worker it left running, stops it and leaves nothing", async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "examples/docker.ts"],
      {
        timeout: 120_000,
        env: { ...process.env, DOCKER_HOST: dockerHost(), RK_TEST_IMAGE: testImage() },
      },
    );
    expect(stdout).toContain("interfaces: lo");
    expect(stdout).toMatch(/CapEff:\s+0000000000000000/);
    expect(stdout).toMatch(/NoNewPrivs:\s+1/);
    expect(stdout).toContain("token is set");
    expect(stdout).not.toContain("sk-example-not-a-real-secret");
    expect(stdout).toContain("recovered: worker");
    expect(stdout).toContain("worker requested: exit 143 (SIGTERM)");
    expect(stdout).toMatch(/heartbeats written to the workspace: [1-9]/);
    const left = await engine().listContainers({
      all: true,
      filters: { label: [`${LABELS.kernelId}=docker-example`] },
    });
    expect(left).toEqual([]);
  });
});
