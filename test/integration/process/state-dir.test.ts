/**
 * Who may reach the supervisor: only this process's user. Another local user who prepares
 * the state dir, or a directory above it, or a socket in it, gets no connection, no spec and
 * no credential: the backend refuses with a typed error that names the path and the fault.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ProcessBackend, type ProcessBackendOptions } from "../../../src/backends/process/index.js";
import { PROTOCOL_VERSION } from "../../../src/backends/process/protocol.js";
import { createRuntimeKernel, LABELS, type StartRequest } from "../../../src/index.js";
import { newBackend, requireRoot, teardown, unusedUid } from "./helpers.js";

const SECRET = "sk-state-dir-secret-0001";
const never = new AbortController().signal;

/**
 * A stand-in supervisor that another user runs: it answers hello as a real one does, so a
 * backend that trusted it would go on and send its starts, and it records every byte.
 */
const FAKE_SUPERVISOR = `
const net = require("node:net");
const fs = require("node:fs");
const [socketPath, recordPath] = process.argv.slice(2);
const server = net.createServer((socket) => {
  fs.appendFileSync(recordPath, "connection\\n");
  let buffer = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk) => {
    fs.appendFileSync(recordPath, chunk);
    buffer += chunk;
    for (let i = buffer.indexOf("\\n"); i >= 0; i = buffer.indexOf("\\n")) {
      const request = JSON.parse(buffer.slice(0, i));
      buffer = buffer.slice(i + 1);
      const result = request.op === "hello"
        ? { version: ${PROTOCOL_VERSION}, pid: process.pid, warnings: [] }
        : { pid: process.pid, startTime: 1 };
      socket.write(JSON.stringify({ id: request.id, ok: true, result }) + "\\n");
    }
  });
});
server.listen(socketPath, () => {
  fs.chmodSync(socketPath, 0o777);
  process.stdout.write("ready\\n");
});
`;

let base: string;
let intruder: number;
const fakes: ChildProcess[] = [];

beforeAll(() => {
  requireRoot("acting as a second local user");
  intruder = unusedUid();
  // Traversable by the intruder, writable by root only.
  base = mkdtempSync(join(tmpdir(), "rk-trust-"));
  chmodSync(base, 0o711);
  const home = join(base, "intruder");
  mkdirSync(home);
  chownSync(home, intruder, intruder);
  writeFileSync(join(home, "fake-supervisor.cjs"), FAKE_SUPERVISOR, { mode: 0o644 });
});

afterEach(() => {
  for (const fake of fakes.splice(0)) fake.kill("SIGKILL");
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Runs the fake supervisor as the intruder on `socketPath`; what reaches it goes to the returned file. */
async function intruderListens(socketPath: string): Promise<string> {
  const record = join(base, "intruder", `record-${fakes.length}`);
  const fake = spawn(process.execPath, [join(base, "intruder", "fake-supervisor.cjs"), socketPath, record], {
    uid: intruder,
    gid: intruder,
    stdio: ["ignore", "pipe", "inherit"],
  });
  fakes.push(fake);
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: fake.stdout as NodeJS.ReadableStream }).once("line", () => resolve());
    fake.once("exit", (code) => reject(new Error(`the fake supervisor exited (${code})`)));
  });
  expect(lstatSync(socketPath).uid).toBe(intruder);
  return record;
}

function request(workloadId: string): StartRequest {
  return {
    kernelId: "trust",
    workloadId,
    runId: `${workloadId}-run`,
    profile: "p",
    runnable: { command: ["sleep", "600"] },
    env: { API_KEY: SECRET },
    labels: { [LABELS.kernelId]: "trust" },
  };
}

/** A directory made by `owner` with `mode` (chmod, so that no umask interferes). */
function dir(path: string, owner: number, mode: number): string {
  mkdirSync(path, { recursive: true });
  chownSync(path, owner, owner);
  chmodSync(path, mode);
  return path;
}

interface Layout {
  /** Builds the trap; returns the backend's options and the fake's socket, if one listens. */
  prepare(
    name: string,
  ): Promise<{ options: ProcessBackendOptions; record?: string; at: string; problem: string }>;
}

const layouts: Record<string, Layout> = {
  "a state dir another user made": {
    async prepare(name) {
      const stateDir = dir(join(base, name), intruder, 0o700);
      const record = await intruderListens(join(stateDir, "supervisor.sock"));
      return { options: { stateDir }, record, at: stateDir, problem: `belongs to uid ${intruder}` };
    },
  },
  "a state dir any user can write to": {
    async prepare(name) {
      const stateDir = dir(join(base, name), 0, 0o777);
      const record = await intruderListens(join(stateDir, "supervisor.sock"));
      return {
        options: { stateDir },
        record,
        at: stateDir,
        problem: "is writable by other users (mode 0777",
      };
    },
  },
  "a socket another user left in a state dir made private since": {
    async prepare(name) {
      const stateDir = dir(join(base, name), 0, 0o777);
      const socketPath = join(stateDir, "supervisor.sock");
      const record = await intruderListens(socketPath);
      chmodSync(stateDir, 0o700);
      return { options: { stateDir }, record, at: socketPath, problem: `belongs to uid ${intruder}` };
    },
  },
  "a directory above it that another user owns": {
    async prepare(name) {
      const parent = dir(join(base, name), intruder, 0o755);
      const stateDir = dir(join(parent, "state"), 0, 0o700);
      return {
        options: { stateDir },
        at: parent,
        problem: `belongs to uid ${intruder} (neither root nor this user)`,
      };
    },
  },
  "a directory above it that any user can write to, without the sticky bit": {
    async prepare(name) {
      const parent = dir(join(base, name), 0, 0o777);
      const stateDir = join(parent, "state");
      return { options: { stateDir }, at: parent, problem: "is writable by other users and not sticky" };
    },
  },
  "a log dir another user made": {
    async prepare(name) {
      const stateDir = dir(join(base, name), 0, 0o700);
      const logDir = dir(join(base, `${name}-logs`), intruder, 0o700);
      return { options: { stateDir, logDir }, at: logDir, problem: `belongs to uid ${intruder}` };
    },
  },
};

describe("the state dir", () => {
  it.each(Object.keys(layouts))(
    "is refused when it is %s: no connection, no spec, no secret",
    async (layout) => {
      const name = layout.replace(/\W+/g, "-").slice(0, 40);
      const trap = await (layouts[layout] as Layout).prepare(name);
      const backend = new ProcessBackend(trap.options);
      const refused = await backend.start(request("w1"), { signal: never }).catch((error: unknown) => error);
      expect(refused).toMatchObject({
        name: "UnsafeStateDirError",
        code: "BACKEND_UNAVAILABLE",
        retryable: false,
        path: trap.at,
      });
      expect((refused as Error).message).toContain(`${trap.at}: ${trap.problem}`);
      expect((refused as Error).message).not.toContain(SECRET);
      if (trap.record) expect(existsSync(trap.record)).toBe(false);
      // Nothing of the backend's own was made there either: no supervisor ran.
      const made = existsSync(trap.options.stateDir) ? readdirSync(trap.options.stateDir) : [];
      expect(made.filter((f) => f !== "supervisor.sock")).toEqual([]);
      await backend.close();
    },
  );

  it("is refused before any create reaches it, with the fault in the create's error and event", async () => {
    const trap = await (layouts["a state dir another user made"] as Layout).prepare("kernel-create");
    const kernel = createRuntimeKernel({
      backend: new ProcessBackend(trap.options),
      profiles: { p: { runnable: { command: ["sleep", "600"] } } },
    });
    const events: unknown[] = [];
    kernel.on("stopped", (event) => events.push(event.error));
    const refused = await kernel
      .create({ workloadId: "w1", profile: "p", env: { API_KEY: SECRET } })
      .catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: "START_FAILED", cause: { code: "BACKEND_UNAVAILABLE" } });
    expect(events).toEqual([{ code: "BACKEND_UNAVAILABLE", message: expect.stringContaining(trap.at) }]);
    expect(existsSync(trap.record as string)).toBe(false);
    await kernel.shutdown();
  });

  it("and everything the backend makes in it is private to its user, whatever the umask", async () => {
    const previous = process.umask(0);
    let backend: ProcessBackend | undefined;
    try {
      backend = newBackend({ stateDir: join(base, "umask", "state"), logDir: join(base, "umask", "logs") });
      const handle = await backend.start(
        { ...request("w1"), runnable: { command: ["sh", "-c", "echo hi; exec sleep 600"] } },
        { signal: never },
      );
      expect(handle.pid).toBeGreaterThan(1);
    } finally {
      process.umask(previous);
    }
    // Every directory 0700 and every file 0600, the state dir itself included.
    const root = join(base, "umask");
    const wrong = readdirSync(root, { recursive: true, withFileTypes: true })
      .map((entry) => join(entry.parentPath, entry.name))
      .map((path) => [path, lstatSync(path)] as const)
      .filter(([, stats]) => (stats.mode & 0o777) !== (stats.isDirectory() ? 0o700 : 0o600))
      .map(([path, stats]) => `${path} ${(stats.mode & 0o777).toString(8)}`);
    expect(readdirSync(join(root, "state")).sort()).toEqual([
      "journal.key",
      "journal.ndjson",
      "supervisor.cjs",
      "supervisor.log",
      "supervisor.sock",
    ]);
    expect(readdirSync(join(root, "logs"))).toHaveLength(3); // stdout, stderr and .pool
    expect(wrong).toEqual([]);
    await teardown(backend);
  });
});
