/**
 * The docs' runnable examples that need no substrate keep running, and keep saying what
 * the docs say they say. (The process quickstart runs in CI as `npm run demo`; the process,
 * service and Gestalt examples run in the process tier, test/integration/process/examples.test.ts;
 * the Docker and Kubernetes ones in their tiers' examples.test.ts.)
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = async (file: string) =>
  (await promisify(execFile)(process.execPath, ["--import", "tsx", file], { timeout: 60_000 })).stdout;

// Each example is a fresh Node process compiling TypeScript through tsx: seconds on a loaded
// machine, so the case waits as long as the process may run.
describe("runnable examples", { timeout: 60_000 }, () => {
  it("examples/fake-backend.ts shows each policy on the fake backend", async () => {
    const out = await run("examples/fake-backend.ts");
    expect(out).toContain("chat after 60 s idle: idle_timeout");
    expect(out).toContain("stubborn: SIGKILL");
    expect(out).toContain("job restarts: 1");
    expect(out).toContain("broken: START_FAILED image not found");
    expect(out).toContain("left in the backend: 0");
  });

  it("examples/errors.ts matches every error on its code", async () => {
    const out = await run("examples/errors.ts");
    for (const code of [
      "INVALID_SPEC",
      "QUOTA_EXCEEDED",
      "WORKLOAD_CONFLICT",
      "START_FAILED",
      "WORKLOAD_NOT_FOUND",
      "KERNEL_SHUT_DOWN",
    ]) {
      expect(out).toContain(code);
    }
  });

  it("examples/http.ts drives runtime.v1 over HTTP, with every callback signed, in order", async () => {
    const out = await run("examples/http.ts");
    expect(out).toContain("POST /workloads -> 201 running");
    expect(out).toContain("POST /workloads bad -> 400 workloadId, env.N");
    expect(out).toContain("DELETE /workloads/agent-1 -> 200 destroyed");
    expect(out.split("\n").filter((l) => l.startsWith("callback:"))).toEqual([
      "callback: agent-1 starting",
      "callback: agent-1 running",
      "callback: agent-1 stopping (stopped)",
      "callback: agent-1 stopped (stopped)",
      "callback: agent-1 destroyed",
    ]);
  });

  it("examples/schedule.ts fires, retries, cancels and refuses scheduled calls", async () => {
    const out = await run("examples/schedule.ts");
    expect(out).toContain('headers as stored: {"Authorization":"[redacted]"}');
    expect(out).toContain("same idempotency key, same job: true");
    expect(out).toMatch(
      /refused: .*request\.url: must be an http\(s\) URL \(got ftp\); cron: is not a valid/,
    );
    expect(out).toMatch(/\/digest: completed/);
    expect(out).toMatch(/\/flaky: completed after 1 failed attempt\(s\)/);
    expect(out).toMatch(/\/never: cancelled/);
    expect(out).toMatch(/\/weekly: pending/);
    expect(out).not.toContain("/never (Idempotency-Key");
  });

  it("examples/custom-backend.ts drives a hand-written backend through the kernel", async () => {
    expect(await run("examples/custom-backend.ts")).toContain("exit 4 (failed)");
  });
});
