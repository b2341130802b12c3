/**
 * kernelRuntimeProvider without a substrate: the session state its plugin workload's
 * lifecycle maps to, and its session root.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { kernelRuntimeProvider, sessionStateOf } from "../../../src/gestalt/kernel-provider.js";
import { createRuntimeKernel, type WorkloadStatus } from "../../../src/index.js";
import { FakeBackend } from "../../../src/testing/index.js";

const status = (fields: Partial<WorkloadStatus>): WorkloadStatus => ({
  workloadId: "w",
  runId: "r",
  profile: "gestalt-plugin",
  state: "running",
  createdAt: 0,
  restarts: 0,
  ...fields,
});

describe("sessionStateOf: a session's state from its plugin workload's lifecycle", () => {
  it("is ready before any workload, pending while it starts, running while it runs", () => {
    expect(sessionStateOf(undefined)).toEqual({ state: "ready" });
    expect(sessionStateOf(status({ state: "starting" }))).toEqual({ state: "pending" });
    expect(sessionStateOf(status({ state: "running" }))).toEqual({ state: "running" });
  });

  it("is stopped after a requested or policy stop, or a clean exit", () => {
    for (const stopReason of [
      "requested",
      "completed",
      "shutdown",
      "idle_timeout",
      "max_lifetime",
    ] as const) {
      expect(sessionStateOf(status({ state: "stopped", stopReason, exitCode: 0 }))).toEqual({
        state: "stopped",
        reason: stopReason,
        message: "exit code 0",
      });
    }
  });

  it("is failed after a failure, an OOM kill, a loss or a failed start, with the reason and what happened", () => {
    expect(
      sessionStateOf(status({ state: "stopped", stopReason: "failed", exitCode: 137, signal: "SIGKILL" })),
    ).toEqual({
      state: "failed",
      reason: "failed",
      message: "exit code 137 (SIGKILL)",
    });
    expect(sessionStateOf(status({ state: "stopped", stopReason: "oom", exitCode: 137 })).state).toBe(
      "failed",
    );
    expect(sessionStateOf(status({ state: "destroyed", stopReason: "lost" })).state).toBe("failed");
    expect(
      sessionStateOf(
        status({
          state: "stopped",
          stopReason: "start_failed",
          error: { code: "START_FAILED", message: "no such image" },
        }),
      ),
    ).toEqual({ state: "failed", reason: "start_failed", message: "no such image" });
  });

  it("says stopping while the workload stops", () => {
    expect(sessionStateOf(status({ state: "stopping" }))).toMatchObject({
      state: "stopped",
      reason: "stopping",
    });
  });
});

describe("kernelRuntimeProvider's session root", () => {
  const kernel = () =>
    createRuntimeKernel({ backend: new FakeBackend(), profiles: { "gestalt-plugin": { runnable: {} } } });

  it("is made (private) when it does not exist yet", async () => {
    const base = mkdtempSync(join(tmpdir(), "rk-gsr-"));
    try {
      const sessionRoot = join(base, "not", "there");
      const provider = kernelRuntimeProvider(kernel(), { sessionRoot });
      const session = await provider.startSession({ pluginName: "p" });
      expect(session.state).toBe("ready");
      expect(statSync(sessionRoot).mode & 0o777).toBe(0o700);
      await provider.stopSession({ sessionId: session.id });
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it("that cannot be made fails StartSession with START_FAILED, naming the path", async () => {
    const base = mkdtempSync(join(tmpdir(), "rk-gsr-"));
    try {
      writeFileSync(join(base, "file"), "");
      const sessionRoot = join(base, "file", "sessions");
      const provider = kernelRuntimeProvider(kernel(), { name: "k", sessionRoot });
      await expect(provider.startSession({ pluginName: "p" })).rejects.toMatchObject({
        code: "START_FAILED",
        method: "StartSession",
        message: expect.stringContaining(
          `runtime provider "k" cannot create a session folder in ${sessionRoot}`,
        ),
      });
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
