import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessBackend } from "../../../src/backends/process/index.js";
import { createRuntimeKernel, type LogEntry, type RuntimeKernel } from "../../../src/index.js";
import {
  createRuntimeClient,
  type RuntimeClient,
  type RuntimeKernelServer,
  serveRuntimeKernel,
} from "../../../src/server/index.js";
import { collectUntil } from "./harness.js";

/** Real processes behind the service: what `runtime-kernel serve` runs by default. */
describe("the runtime.v1 service, on real processes", () => {
  let dir: string;
  let backend: ProcessBackend;
  let kernel: RuntimeKernel;
  let server: RuntimeKernelServer;
  let client: RuntimeClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "rk-srv-proc-"));
    backend = new ProcessBackend({ stateDir: join(dir, "state"), supervisorIdleMs: 2_000 });
    kernel = createRuntimeKernel({
      backend,
      kernelId: "server-test",
      profiles: { sh: { runnable: { command: ["sh", "-c", "exit 0"] }, graceMs: 5_000 } },
    });
    server = await serveRuntimeKernel(kernel, { address: `unix:${join(dir, "rk.sock")}` });
    client = createRuntimeClient(server.address);
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
    await backend?.stopSupervisor({ force: true }).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  const sh = (workloadId: string, script: string, env?: Record<string, string>) =>
    client.create({
      workloadId,
      profile: "sh",
      runnable: { command: ["sh", "-c", script] },
      ...(env ? { env } : {}),
    });

  it("runs a command to its exit code, with its stdout and stderr apart", async () => {
    const events = client.events({ workloadId: "exit3", sinceSeq: 0 });
    await sh("exit3", 'echo "hello $WHO"; echo oops >&2; exit 3', { WHO: "world" });
    const seen = await collectUntil(events, (e) => e.state === "stopped");
    expect(seen.at(-1)).toMatchObject({ state: "stopped", stopReason: "failed", exitCode: 3 });
    expect(await client.get("exit3")).toEqual(kernel.get("exit3"));
    const lines = await collectUntil(client.logs("exit3"), () => false);
    expect(lines.map(({ stream, line }) => ({ stream, line }))).toEqual(
      expect.arrayContaining([
        { stream: "stdout", line: "hello world" },
        { stream: "stderr", line: "oops" },
      ]),
    );
    await client.destroy("exit3");
  });

  it("follows output as it is written, until the process ends", async () => {
    await sh("ticker", "for i in 1 2 3; do echo tick $i; sleep 0.1; done");
    const lines: LogEntry[] = [];
    for await (const entry of client.logs("ticker", { follow: true })) lines.push(entry);
    expect(lines.map((l) => l.line)).toEqual(["tick 1", "tick 2", "tick 3"]);
    expect((await kernel.waitFor("ticker", "stopped")).exitCode).toBe(0);
    await client.destroy("ticker");
  });

  it("stops gracefully: SIGTERM reaches the process, which exits its own way", async () => {
    await sh("graceful", 'trap "echo bye; exit 7" TERM; echo ready; while :; do sleep 0.05; done');
    await collectUntil(client.logs("graceful", { follow: true }), (e) => e.line === "ready");
    const status = await client.stop("graceful", { graceMs: 10_000 });
    expect(status).toMatchObject({ state: "stopped", stopReason: "requested", exitCode: 7 });
    // The whole process group gets SIGTERM, so the shell may also report its `sleep` on stderr.
    const stdout = (await collectUntil(client.logs("graceful"), () => false)).filter(
      (l) => l.stream === "stdout",
    );
    expect(stdout.map((l) => l.line)).toEqual(["ready", "bye"]);
    await client.destroy("graceful");
  });

  it("kills a process that ignores SIGTERM once the grace is over, and reports 137", async () => {
    await sh("stubborn", 'trap "" TERM; echo ready; while :; do sleep 0.05; done');
    await collectUntil(client.logs("stubborn", { follow: true }), (e) => e.line === "ready");
    const status = await client.stop("stubborn", { graceMs: 200 });
    expect(status).toMatchObject({ state: "stopped", exitCode: 137, signal: "SIGKILL" });
    await client.destroy("stubborn");
    expect(await client.get("stubborn")).toBeUndefined();
  });
});
