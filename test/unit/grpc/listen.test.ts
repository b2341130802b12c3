import { spawn } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import type { RuntimeProvider } from "../../../src/gestalt/provider.js";
import { serveRuntimeProvider } from "../../../src/gestalt/serve-provider.js";
import { listenGrpc } from "../../../src/grpc/listen.js";

const root = mkdtempSync(join(tmpdir(), "rk-listen-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const insecure = ServerCredentials.createInsecure();
const provider = { getSupport: async () => ({}) } as unknown as RuntimeProvider;

function connects(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** A socket file whose server died without removing it, as after a SIGKILL. */
async function deadSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, [
    "-e",
    `require("net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"))`,
  ]);
  await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
  const gone = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await gone;
}

describe("listenGrpc: the one way a server of the library takes a unix socket", () => {
  it("never takes the socket of a server that still answers, and leaves it serving", async () => {
    const path = join(root, "live.sock");
    const first = await serveRuntimeProvider(provider, `unix://${path}`);
    try {
      await expect(serveRuntimeProvider(provider, `unix://${path}`)).rejects.toThrow(
        "another server is already listening",
      );
      expect(await connects(path)).toBe(true);
    } finally {
      await first.close();
    }
    // Closing removed the socket it created.
    expect(existsSync(path)).toBe(false);
  });

  it("refuses a path that is not a socket, and leaves the file alone", async () => {
    const path = join(root, "file.sock");
    writeFileSync(path, "precious");
    await expect(serveRuntimeProvider(provider, `unix://${path}`)).rejects.toThrow("is not a socket");
    expect(readFileSync(path, "utf8")).toBe("precious");
  });

  it("replaces the socket of a server that died", async () => {
    const path = join(root, "dead.sock");
    await deadSocket(path);
    expect(lstatSync(path).isSocket()).toBe(true);
    const endpoint = await serveRuntimeProvider(provider, `unix://${path}`);
    try {
      expect(await connects(path)).toBe(true);
    } finally {
      await endpoint.close();
    }
  });

  it("creates the socket 0600, leaves no staging directory, and on release removes only its own socket", async () => {
    const dir = mkdtempSync(join(root, "d-"));
    const path = join(dir, "s.sock");
    const server = new Server();
    const listener = await listenGrpc(server, { kind: "unix", path }, insecure);
    try {
      expect((statSync(path).mode & 0o777).toString(8)).toBe("600");
      expect(await connects(path)).toBe(true);
      // Only the socket is left in its directory: the private staging directory is gone.
      expect(readdirSync(dir)).toEqual(["s.sock"]);
    } finally {
      server.forceShutdown();
    }
    // Someone else's file at the path now: release must not remove it.
    rmSync(path);
    writeFileSync(path, "theirs");
    listener.release();
    expect(readFileSync(path, "utf8")).toBe("theirs");
  });
});
