/**
 * The kernel driving real processes through the ProcessBackend: the runtime.v1 lifecycle,
 * exit codes, stops of whole process groups, environment hygiene, workspaces and logs.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ProcessBackend } from "../../../src/backends/process/index.js";
import {
  createRuntimeKernel,
  type LogEntry,
  type RuntimeKernel,
  type TransitionEvent,
} from "../../../src/index.js";
import { eventually, livingInGroups, newBackend, recordEvents, statesOf, teardown } from "./helpers.js";

const SECRET = "sk-live-0123456789abcdef";

describe("ProcessBackend under the kernel", () => {
  let backend: ProcessBackend;
  let kernel: RuntimeKernel;
  let events: TransitionEvent[];
  let workspace: string;

  beforeAll(() => {
    backend = newBackend();
    workspace = mkdtempSync(join(tmpdir(), "rk-ws-"));
    kernel = createRuntimeKernel({
      backend,
      kernelId: "lifecycle",
      reapAfterMs: 60_000,
      credentials: { credentials: () => ({ API_TOKEN: SECRET }) },
      profiles: {
        sleeper: { runnable: { command: ["sleep", "600"] }, graceMs: 5_000 },
        stubborn: {
          runnable: { command: ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"] },
          graceMs: 300,
        },
        shell: { runnable: { command: ["sh", "-c", "exit 0"] }, env: { GREETING: "hello" } },
      },
    });
    events = recordEvents(kernel);
  });

  afterAll(async () => {
    await kernel.shutdown();
    await teardown(backend);
    rmSync(workspace, { recursive: true, force: true });
  });

  it("runs a sleep through starting, running, stopping, stopped and destroyed, with SIGTERM's 143", async () => {
    const running = await kernel.create({ workloadId: "sleep-1", profile: "sleeper" });
    expect(running.state).toBe("running");
    const stopped = await kernel.stop("sleep-1");
    expect(stopped).toMatchObject({
      state: "stopped",
      stopReason: "requested",
      exitCode: 143,
      signal: "SIGTERM",
    });
    await kernel.destroy("sleep-1");
    expect(statesOf(events, "sleep-1")).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);
  });

  it("reports a workload that exits 3 by itself as failed with code 3", async () => {
    await kernel.create({
      workloadId: "exit-3",
      profile: "shell",
      runnable: { command: ["sh", "-c", "exit 3"] },
    });
    const stopped = await kernel.waitFor("exit-3", "stopped");
    expect(stopped).toMatchObject({ stopReason: "failed", exitCode: 3 });
    expect(stopped.signal).toBeUndefined();
    expect(statesOf(events, "exit-3")).toEqual(["starting", "running", "stopped"]);
  });

  it("reports exit 0 as completed", async () => {
    await kernel.create({ workloadId: "exit-0", profile: "shell" });
    expect(await kernel.waitFor("exit-0", "stopped")).toMatchObject({ stopReason: "completed", exitCode: 0 });
  });

  it("kills a workload that ignores SIGTERM once the grace is over: 137, SIGKILL", async () => {
    await kernel.create({ workloadId: "stubborn", profile: "stubborn" });
    // Let the shell install its trap: a SIGTERM before that would simply end it.
    await waitForLine(kernel, "stubborn", "ready");
    const stopped = await kernel.stop("stubborn");
    expect(stopped).toMatchObject({ stopReason: "requested", exitCode: 137, signal: "SIGKILL" });
  });

  it("stops every process of a forking workload: no grandchild survives", async () => {
    const status = await kernel.create({
      workloadId: "forker",
      profile: "shell",
      runnable: { command: ["sh", "-c", "sleep 600 & sleep 600 & (sleep 600 &) ; echo forked; wait"] },
    });
    await waitForLine(kernel, "forker", "forked");
    const pgid = await pidOf(status.workloadId);
    await eventually(() => livingInGroups([pgid]).length >= 4, 5_000, "the grandchildren to start");
    await kernel.stop("forker");
    await eventually(() => livingInGroups([pgid]).length === 0, 5_000, "the whole group to die");
  });

  it("reclaims grandchildren left behind by a leader that exited by itself, at cleanup", async () => {
    const status = await kernel.create({
      workloadId: "orphaner",
      profile: "shell",
      runnable: {
        command: ["sh", "-c", "trap '' TERM; (trap '' TERM; exec sleep 600) & echo spawned; exit 0"],
      },
    });
    await kernel.waitFor(status.workloadId, "stopped");
    const pgid = await pidOf(status.workloadId);
    expect(livingInGroups([pgid]).length).toBeGreaterThan(0);
    await kernel.destroy(status.workloadId);
    await eventually(() => livingInGroups([pgid]).length === 0, 5_000, "the left-over sleep to die");
  });

  it("builds the environment from the profile, the spec, the credentials and an allowlist only", async () => {
    process.env.RK_HOST_ONLY = "must-not-leak";
    try {
      await kernel.create({
        workloadId: "env",
        profile: "shell",
        env: { FROM_SPEC: "spec-value" },
        runnable: { command: ["env"] },
      });
      await kernel.waitFor("env", "stopped");
      const lines = (await collect(kernel.logs("env"))).map((l) => l.line);
      expect(lines).toContain("GREETING=hello");
      expect(lines).toContain("FROM_SPEC=spec-value");
      expect(lines).toContain(`API_TOKEN=${SECRET}`);
      expect(lines.some((l) => l.startsWith("PATH="))).toBe(true);
      expect(lines.some((l) => l.startsWith("RK_HOST_ONLY="))).toBe(false);
      const names = lines.map((l) => l.split("=")[0]).sort();
      const allowed = ["API_TOKEN", "FROM_SPEC", "GREETING", "HOME", "LANG", "PATH", "TMPDIR", "TZ"];
      expect(names.every((n) => allowed.includes(n as string))).toBe(true);
    } finally {
      delete process.env.RK_HOST_ONLY;
    }
  });

  it("keeps credential values out of every event, status, error, handle and file of its own", async () => {
    await expect(
      kernel.create({
        workloadId: "missing",
        profile: "shell",
        runnable: { command: ["no-such-command-rk"] },
      }),
    ).rejects.toSatisfy((e: unknown) => {
      const error = e as Error & { code: string };
      return (
        error.code === "START_FAILED" &&
        !JSON.stringify({ m: error.message, s: error.stack }).includes(SECRET)
      );
    });
    const status = kernel.get("missing");
    expect(status?.error?.message).toContain("command not found: no-such-command-rk");
    expect(JSON.stringify(events)).not.toContain(SECRET);
    expect(JSON.stringify(kernel.list())).not.toContain(SECRET);
    const handles = await backend.discover({ kernelId: "lifecycle" });
    expect(JSON.stringify(handles)).not.toContain(SECRET);
    // The supervisor's journal, its diagnostics and its program never hold env values.
    const files = readdirSync(backend.stateDir, { withFileTypes: true }).filter((f) => f.isFile());
    expect(files.map((f) => f.name)).toContain("journal.ndjson");
    for (const file of files) {
      expect(readFileSync(join(backend.stateDir, file.name), "latin1")).not.toContain(SECRET);
    }
  });

  it("runs in the spec's workspace", async () => {
    writeFileSync(join(workspace, "marker"), "x");
    await kernel.create({
      workloadId: "pwd",
      profile: "shell",
      workspace,
      runnable: { command: ["sh", "-c", "pwd; ls"] },
    });
    await kernel.waitFor("pwd", "stopped");
    const lines = (await collect(kernel.logs("pwd"))).map((l) => l.line);
    expect(lines).toEqual([workspace, "marker"]);
  });

  it("refuses a workspace that does not exist with a clear start error", async () => {
    await expect(
      kernel.create({ workloadId: "no-ws", profile: "shell", workspace: join(workspace, "nope") }),
    ).rejects.toMatchObject({ code: "START_FAILED" });
    expect(kernel.get("no-ws")?.error?.message).toContain("working directory");
  });

  it("streams stdout and stderr as separate streams, with tail and follow", async () => {
    await kernel.create({
      workloadId: "talker",
      profile: "shell",
      runnable: {
        command: ["sh", "-c", "for i in 1 2 3; do echo out-$i; echo err-$i >&2; done; sleep 0.2; echo late"],
      },
    });
    const followed = await collect(kernel.logs("talker", { follow: true }));
    expect(followed.filter((l) => l.stream === "stdout").map((l) => l.line)).toEqual([
      "out-1",
      "out-2",
      "out-3",
      "late",
    ]);
    expect(followed.filter((l) => l.stream === "stderr").map((l) => l.line)).toEqual([
      "err-1",
      "err-2",
      "err-3",
    ]);
    const tail = await collect(kernel.logs("talker", { tail: 1 }));
    expect(tail).toEqual([
      { stream: "stdout", line: "late" },
      { stream: "stderr", line: "err-3" },
    ]);
  });

  it("stops a follower when its signal aborts, while the workload keeps running", async () => {
    await kernel.create({ workloadId: "follow-abort", profile: "sleeper" });
    const controller = new AbortController();
    const lines = kernel.logs("follow-abort", { follow: true, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    expect(await collect(lines)).toEqual([]);
    expect(kernel.get("follow-abort")?.state).toBe("running");
    await kernel.stop("follow-abort", { graceMs: 0 });
  });

  it("stops a workload at its max lifetime", async () => {
    await kernel.create({ workloadId: "short-lived", profile: "sleeper", maxLifetimeMs: 200 });
    expect(await kernel.waitFor("short-lived", "stopped")).toMatchObject({
      stopReason: "max_lifetime",
      exitCode: 143,
    });
  });

  /** The pid (and process group) of a workload's current run, as the backend recorded it. */
  async function pidOf(workloadId: string): Promise<number> {
    const runId = kernel.get(workloadId)?.runId;
    const found = await backend.discover({ kernelId: "lifecycle" });
    const handle = found.find((f) => f.handle.runId === runId)?.handle;
    if (!handle) throw new Error(`no run recorded for ${workloadId}`);
    return handle.pid;
  }
});

async function collect(lines: AsyncIterable<LogEntry>): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for await (const line of lines)
    out.push(line.at === undefined ? line : { stream: line.stream, line: line.line });
  return out;
}

/** Follows a workload's output until `line` appears. */
async function waitForLine(kernel: RuntimeKernel, workloadId: string, line: string): Promise<void> {
  const controller = new AbortController();
  for await (const entry of kernel.logs(workloadId, { follow: true, signal: controller.signal })) {
    if (entry.line === line) {
      controller.abort();
      return;
    }
  }
  throw new Error(`${workloadId} ended without printing ${line}`);
}
