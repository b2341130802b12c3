/**
 * The backend's side of the supervisor connection, against a scripted supervisor on a real
 * unix socket: what it does when the connection goes away at the worst moments.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ProcessBackend, type ProcessHandle } from "../../../../src/backends/process/index.js";
import { PROTOCOL_VERSION, type Request } from "../../../../src/backends/process/protocol.js";
import type { ExitStatus, StartRequest } from "../../../../src/index.js";

/** How the scripted supervisor answers one request: a result, or `"hang up"` to close the connection instead. */
type Script = (request: Request, connection: number) => unknown;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A scripted supervisor listening where a ProcessBackend on `stateDir` looks for one. */
async function scriptedSupervisor(script: Script, version = PROTOCOL_VERSION) {
  const stateDir = mkdtempSync(join(tmpdir(), "rk-client-"));
  const requests: Array<{ connection: number; request: Request }> = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
        const request = JSON.parse(buffer.slice(0, i)) as Request;
        buffer = buffer.slice(i + 1);
        requests.push({ connection, request });
        const result =
          request.op === "hello" ? { version, pid: 1_000_000, warnings: [] } : script(request, connection);
        if (result === "hang up") socket.destroy();
        else socket.write(`${JSON.stringify({ id: request.id, ok: true, result })}\n`);
      }
    });
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(join(stateDir, "supervisor.sock"), resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  return {
    backend: new ProcessBackend({ stateDir }),
    requests,
    /** Closes every open connection, as a supervisor that dies does. */
    die: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

const never = new AbortController().signal;
const request: StartRequest = {
  kernelId: "k",
  workloadId: "w1",
  runId: "run-1",
  profile: "p",
  runnable: { command: ["sleep", "600"] },
  env: {},
  labels: {},
};
const handle: ProcessHandle = {
  workloadId: "w1",
  runId: "run-1",
  backend: "process",
  pid: 4242,
  startTime: 1,
  bootId: "b",
  stdoutPath: "/x.out",
  stderrPath: "/x.err",
};

describe("the connection to the supervisor", () => {
  it("after it is lost, asks for the runs it watches again, whichever call reconnects", async () => {
    const fake = await scriptedSupervisor((req, connection) => {
      if (req.op === "status")
        return { found: true, exit: connection === 1 ? null : { exitCode: null, lost: true, at: 1 } };
      if (req.op === "stats") return { pid: 1_000_000 };
      return {};
    });
    const exited = new Promise<ExitStatus>((resolve) => fake.backend.watchExit(handle, resolve));
    await fake.backend.supervisorStats();
    fake.die();
    // A call of its own reconnects at once (before the backend's own reconnection timer):
    // the run ended meanwhile, and only a question tells.
    await fake.backend.supervisorStats();
    expect(await exited).toEqual({ exitCode: null, lost: true });
    await fake.backend.close();
  });

  it("after it is lost with a start in flight, reclaims the run the supervisor may have made, then refuses the start", async () => {
    const fake = await scriptedSupervisor((req) => (req.op === "start" ? "hang up" : {}));
    const refused = await fake.backend.start(request, { signal: never }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: "BACKEND_UNAVAILABLE", retryable: true });
    expect(fake.requests.map(({ connection, request: r }) => `${connection} ${r.op}`)).toEqual([
      "1 hello",
      "1 start",
      "2 hello",
      "2 cleanup",
    ]);
    expect(fake.requests.at(-1)?.request).toMatchObject({ op: "cleanup", runId: "run-1" });
    await fake.backend.close();
  });
});

/** A run's record as `list` answers it, ended with `exitCode`. */
function ended(runId: string) {
  return {
    record: { ...handle, runId, kernelId: "k", labels: {}, startedAt: 1 },
    exit: { exitCode: 0, at: 1 },
  };
}

describe("cleanup through the supervisor", () => {
  it("sends the cleanups of runs that have exited, asked for in one tick, as one request", async () => {
    const fake = await scriptedSupervisor((req) => {
      if (req.op === "list") return { runs: ["r1", "r2", "r3"].map(ended) };
      if (req.op === "cleanupMany") return { failed: [] };
      return {};
    });
    const found = await fake.backend.discover({ kernelId: "k" });
    await Promise.all(found.map(({ handle: h }) => fake.backend.cleanup(h)));
    expect(fake.requests.map(({ request: r }) => r)).toEqual([
      expect.objectContaining({ op: "hello" }),
      expect.objectContaining({ op: "list" }),
      { id: expect.any(Number), op: "cleanupMany", runIds: ["r1", "r2", "r3"], keepLogs: false },
    ]);
    await fake.backend.close();
  });

  it("fails only the cleanup of the run the supervisor names, and asks again for it alone", async () => {
    const fake = await scriptedSupervisor((req) => {
      if (req.op === "list") return { runs: ["r1", "r2", "r3"].map(ended) };
      if (req.op === "cleanupMany")
        return {
          failed: req.runIds
            .filter((runId) => runId === "r2")
            .map((runId) => ({ runId, error: { code: "CLEANUP_FAILED", message: `${runId} did not die` } })),
        };
      return {};
    });
    const found = await fake.backend.discover({ kernelId: "k" });
    const results = await Promise.allSettled(found.map(({ handle: h }) => fake.backend.cleanup(h)));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({
      code: "CLEANUP_FAILED",
      retryable: true,
      message: expect.stringContaining("r2 did not die"),
    });
    // The failed run's exit is still known: its retry goes in a batch of its own.
    await expect(fake.backend.cleanup((found[1] as (typeof found)[number]).handle)).rejects.toMatchObject({
      code: "CLEANUP_FAILED",
    });
    expect(fake.requests.at(-1)?.request).toMatchObject({ op: "cleanupMany", runIds: ["r2"] });
    await fake.backend.close();
  });

  it("sends the cleanup of a run not known to have exited on its own, so that its kill holds up no other", async () => {
    const fake = await scriptedSupervisor(() => ({}));
    await fake.backend.cleanup(handle);
    expect(fake.requests.at(-1)?.request).toMatchObject({ op: "cleanup", runId: "run-1", keepLogs: false });
    await fake.backend.close();
  });

  it("refuses a supervisor of another protocol version (one still running after an upgrade) before any cleanup", async () => {
    const fake = await scriptedSupervisor(() => ({}), PROTOCOL_VERSION - 1);
    await expect(fake.backend.cleanup(handle)).rejects.toMatchObject({
      code: "CLEANUP_FAILED",
      message: expect.stringContaining(
        `speaks protocol ${PROTOCOL_VERSION - 1}, this backend ${PROTOCOL_VERSION}`,
      ),
    });
    expect(fake.requests.map(({ request: r }) => r.op)).toEqual(["hello"]);
    await fake.backend.close();
  });
});
