/**
 * The examples that run real processes keep running from the tree as a user runs them
 * (`npx tsx examples/...`: they import the package by its name, which the repo's tsconfig
 * maps to the sources), and keep saying what their docs say.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = async (file: string) =>
  (await promisify(execFile)(process.execPath, ["--import", "tsx", file], { timeout: 120_000 })).stdout;

describe("runnable examples on real processes", () => {
  it("examples/process.ts recovers a workload after its kernel is gone", async () => {
    const out = await run("examples/process.ts");
    expect(out).toContain("recovered: adopted worker");
    expect(out).toContain("batch ended meanwhile with exit code 3 (failed)");
    expect(out).toContain("worker stopped: exit 143 (SIGTERM)");
  });

  it("examples/sandbox.ts shows a sandboxed agent unable to read the secret next to its workspace", async () => {
    const out = await run("examples/sandbox.ts");
    expect(out).toContain("task: summarize the quarter");
    expect(out).toContain("secret: unreadable");
    expect(out).toContain("../secret: unreadable");
    expect(out).toContain("network: none");
    expect(out).toContain("agent-1: completed, exit 0");
  });

  it("examples/service-client.ts drives a served kernel through the runtime.v1 client", async () => {
    const out = await run("examples/service-client.ts");
    expect(out).toContain("stdout: hello runtime.v1 (3)");
    expect(out).toContain("greeter: stopped, completed, exit 0");
    expect(out).toContain("refused: Invalid workload spec: workloadId");
  });

  it("examples/gestalt/main.ts hosts a plugin and calls its health and Greeter services", async () => {
    const out = await run("examples/gestalt/main.ts");
    expect(out).toContain("health: SERVING");
    expect(out).toMatch(/Hello, world, from plugin "greeter"/);
  });

  it("examples/gestalt/provider.ts runs runtime-kernel gestalt-provider from its manifest and hosts the Greeter through it", async () => {
    const out = await run("examples/gestalt/provider.ts");
    expect(out).toContain('provider "kernel": runtime-kernel on the process backend');
    expect(out).toMatch(/started "greeter" in session greeter-[0-9a-f]+ at unix:\/\//);
    expect(out).toMatch(/Hello, gestaltd, from plugin "greeter" \(pid \d+\)/);
    expect(out).toMatch(/session log: session greeter-[0-9a-f]+ started for plugin "greeter"/);
  });
});
