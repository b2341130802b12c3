/**
 * The ProcessBackend at the port, with real processes: what the conformance suite does
 * not cover (limits, log rotation, aborted starts, hygiene of handles).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ProcessBackend, ProcessHandle } from "../../../src/backends/process/index.js";
import { type ExitStatus, LABELS, type LogEntry, type StartRequest } from "../../../src/index.js";
import { eventually, isRunning, newBackend, teardown } from "./helpers.js";

const backends: ProcessBackend[] = [];
afterAll(async () => {
  await Promise.all(backends.map((b) => teardown(b)));
});
function backendWith(options: Parameters<typeof newBackend>[0] = {}): ProcessBackend {
  const backend = newBackend(options);
  backends.push(backend);
  return backend;
}

let n = 0;
function request(command: string[], over: Partial<StartRequest> = {}): StartRequest {
  const workloadId = `b-${++n}`;
  return {
    kernelId: "backend",
    workloadId,
    runId: `${workloadId}-run`,
    profile: "p",
    runnable: { command },
    env: {},
    labels: { [LABELS.kernelId]: "backend", [LABELS.workloadId]: workloadId },
    ...over,
  };
}
const never = new AbortController().signal;
const exitOf = (b: ProcessBackend, h: ProcessHandle) =>
  new Promise<ExitStatus>((resolve) => b.watchExit(h, resolve));
/** Sends `requests` to a supervisor over its socket, as a client would; resolves with its replies. */
function talk(path: string, requests: object[]): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    let text = "";
    socket.setEncoding("utf8");
    socket.on("error", reject);
    socket.on("data", (chunk: string) => {
      text += chunk;
      const replies = text.split("\n").filter(Boolean);
      if (replies.length < requests.length) return;
      socket.destroy();
      resolve(replies.map((line) => JSON.parse(line)));
    });
    socket.write(requests.map((r) => `${JSON.stringify(r)}\n`).join(""));
  });
}
async function lines(b: ProcessBackend, h: ProcessHandle): Promise<string[]> {
  const out: string[] = [];
  for await (const l of b.logs(h, {}) as AsyncIterable<LogEntry>) out.push(l.line);
  return out;
}

describe("ProcessBackend", () => {
  it("applies rlimits through prlimit, the runnable's over the backend's, keeping the pid", async () => {
    const backend = backendWith({ rlimits: { nofile: 200, core: 0 } });
    const command = ["sh", "-c", "echo $$; ulimit -n; ulimit -c"];
    const handle = await backend.start(request(command, { runnable: { command, rlimits: { nofile: 64 } } }), {
      signal: never,
    });
    expect(await exitOf(backend, handle)).toEqual({ exitCode: 0 });
    expect(await lines(backend, handle)).toEqual([String(handle.pid), "64", "0"]);
  });

  it("forks a workload told its parent's pid (a Gestalt plugin) from the supervisor, the others from its spawners", async () => {
    const backend = backendWith({ spawners: 2 });
    const { pid, spawners } = await backend.supervisorStats();
    expect(spawners.length).toBe(2);
    const parentOf = (h: ProcessHandle) => {
      const stat = readFileSync(`/proc/${h.pid}/stat`, "latin1");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    };
    // A spawner forks the others once it is ready (the supervisor does while they start up).
    const deadline = Date.now() + 30_000;
    let parent = pid;
    while (!spawners.some((s) => s.pid === parent) && Date.now() < deadline) {
      const other = await backend.start(request(["sleep", "600"]), { signal: never });
      parent = parentOf(other);
      await backend.kill(other);
      await backend.cleanup(other);
    }
    expect(spawners.map((s) => s.pid)).toContain(parent);
    const plugin = await backend.start(
      request(["sleep", "600"], { env: { GESTALT_PLUGIN_PARENT_PID: String(pid) } }),
      { signal: never },
    );
    expect(parentOf(plugin)).toBe(pid);
    await backend.kill(plugin);
    await backend.cleanup(plugin);
  });

  it("reports every exit of a run that ended before anyone watched it", async () => {
    const backend = backendWith();
    const handle = await backend.start(request(["sh", "-c", "exit 9"]), { signal: never });
    await eventually(() => !isRunning(handle.pid), 5_000, "the exit");
    expect(await exitOf(backend, handle)).toEqual({ exitCode: 9 });
    expect(await backend.exitCode(handle)).toBe(9);
  });

  it("reclaims a start aborted while the supervisor was spawning it", async () => {
    const backend = backendWith();
    const controller = new AbortController();
    const req = request(["sleep", "600"]);
    const pending = backend.start(req, { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: "START_ABORTED" });
    const found = await backend.discover({ kernelId: "backend" });
    expect(found.map((f) => f.handle.runId)).not.toContain(req.runId);
  });

  it("rotates a log past maxLogBytes once (copy, then truncate) and still reads it all", async () => {
    const backend = backendWith({ maxLogBytes: 4096 });
    const handle = await backend.start(
      request(["sh", "-c", "i=0; while [ $i -lt 1000 ]; do echo line-$i; i=$((i+1)); done; sleep 600"]),
      { signal: never },
    );
    await eventually(() => existsSync(`${handle.stdoutPath}.1`), 10_000, "a rotation");
    const read = await lines(backend, handle);
    expect(read.at(-1)).toBe("line-999");
    expect(read.length).toBeGreaterThan(100);
    expect(readFileSync(handle.stdoutPath).length).toBeLessThanOrEqual(4096);
    await backend.kill(handle);
    await exitOf(backend, handle);
    await backend.cleanup(handle);
    expect(existsSync(handle.stdoutPath) || existsSync(`${handle.stdoutPath}.1`)).toBe(false);
  });

  it("leaves nothing behind for a start that failed", async () => {
    const backend = backendWith();
    const req = request(["no-such-command-rk"]);
    await expect(backend.start(req, { signal: never })).rejects.toMatchObject({
      code: "START_FAILED",
      message: expect.stringContaining("command not found: no-such-command-rk"),
    });
    const logs = readdirSync(join(backend.stateDir, "logs")).filter((f) => !f.startsWith("."));
    expect(logs.filter((f) => f.startsWith(`${req.workloadId}.`))).toEqual([]);
    expect((await backend.discover({ kernelId: "backend" })).map((f) => f.handle.runId)).not.toContain(
      req.runId,
    );
  });

  it("sizes the log file pool of a supervisor started after the last one exited to the most workloads seen", async () => {
    const backend = backendWith();
    const handles = await Promise.all(
      Array.from({ length: 100 }, () => backend.start(request(["sleep", "600"]), { signal: never })),
    );
    await Promise.all(handles.map((h) => backend.kill(h).then(() => backend.cleanup(h))));
    // Nothing left to supervise and no other client: the supervisor exits with the close.
    const { pid } = await backend.supervisorStats();
    await backend.close();
    expect(isRunning(pid)).toBe(false);
    // The next one makes files for 100 runs again (2 each), not for its default 64: asked
    // rarely, as it makes them only while no request comes.
    let pooled = 0;
    for (const deadline = Date.now() + 20_000; pooled < 200 && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      pooled = (await backend.supervisorStats()).pooledLogFiles;
    }
    expect(pooled).toBeGreaterThanOrEqual(200);
  });

  it("cleans up runs that exited together in one request: neither their files nor their records are left", async () => {
    const backend = backendWith();
    const handles = await Promise.all(
      ["a", "b", "c"].map((text) => backend.start(request(["echo", text]), { signal: never })),
    );
    await Promise.all(handles.map((h) => exitOf(backend, h)));
    await Promise.all(handles.map((h) => backend.cleanup(h)));
    for (const h of handles) {
      expect(existsSync(h.stdoutPath)).toBe(false);
      expect(existsSync(h.stderrPath)).toBe(false);
    }
    const left = (await backend.discover({ kernelId: "backend" })).map((f) => f.handle.runId);
    for (const h of handles) expect(left).not.toContain(h.runId);
    // Asked again, each is already clean.
    await Promise.all(handles.map((h) => backend.cleanup(h)));
  });

  it("answers a batch of cleanups that names no runs with an error naming the field, and keeps serving", async () => {
    const backend = backendWith();
    await backend.supervisorStats();
    const replies = await talk(join(backend.stateDir, "supervisor.sock"), [
      { id: 1, op: "cleanupMany", runIds: "r1", keepLogs: false },
      { id: 2, op: "cleanupMany", runIds: [1, 2], keepLogs: false },
      { id: 3, op: "stats" },
    ]);
    expect(replies.slice(0, 2)).toEqual(
      [1, 2].map((id) => ({
        id,
        ok: false,
        error: { code: "BACKEND_ERROR", message: "cleanupMany: runIds must be an array of run ids" },
      })),
    );
    expect(replies[2]).toMatchObject({ id: 3, ok: true });
  });

  it("keeps logs after cleanup when asked to", async () => {
    const backend = backendWith({ keepLogs: true });
    const handle = await backend.start(request(["echo", "kept"]), { signal: never });
    await exitOf(backend, handle);
    await backend.cleanup(handle);
    expect(readFileSync(handle.stdoutPath, "utf8")).toBe("kept\n");
  });

  it("puts neither env nor argv in handles or in the state dir's journal", async () => {
    const backend = backendWith();
    const handle = await backend.start(
      request(["sh", "-c", "exit 0", "argv-marker"], { env: { TOKEN: "tok-9f8e7d6c" } }),
      {
        signal: never,
      },
    );
    await exitOf(backend, handle);
    const journal = readFileSync(`${backend.stateDir}/journal.ndjson`, "utf8");
    for (const text of [JSON.stringify(handle), journal]) {
      expect(text).not.toContain("tok-9f8e7d6c");
      expect(text).not.toContain("argv-marker");
    }
  });

  it("never signals a process that only shares the handle's pid (other start time, or other boot)", async () => {
    const backend = backendWith();
    const handle = await backend.start(request(["sleep", "600"]), { signal: never });
    for (const forged of [
      { ...handle, runId: "unknown-run", startTime: handle.startTime + 1 },
      { ...handle, runId: "unknown-run", bootId: "another-boot" },
    ]) {
      await backend.terminate(forged, { graceMs: 0 });
      await backend.kill(forged);
    }
    expect(await backend.exitCode(handle)).toBeNull();
    expect(isRunning(handle.pid)).toBe(true);
    await backend.kill(handle);
    expect(await exitOf(backend, handle)).toEqual({ exitCode: 137, signal: "SIGKILL" });
  });

  it("answers for a run it no longer knows: exitCode is WORKLOAD_LOST, stops and cleanup succeed", async () => {
    const backend = backendWith();
    const handle = await backend.start(request(["true"]), { signal: never });
    await exitOf(backend, handle);
    await backend.cleanup(handle);
    await expect(backend.exitCode(handle)).rejects.toMatchObject({ code: "WORKLOAD_LOST" });
    await backend.terminate(handle, { graceMs: 0 });
    await backend.kill(handle);
    await backend.cleanup(handle);
  });
});
