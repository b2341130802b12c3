import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RuntimeSession } from "../../../src/gestalt/provider.js";
import { waitForSession, waitForSocket, waitForTcp, watchSessionEnd } from "../../../src/gestalt/wait.js";

const session = (state: string, extra: Partial<RuntimeSession> = {}): RuntimeSession => ({
  id: "s1",
  state,
  metadata: {},
  ...extra,
});

/** A getSession that answers `states` in turn, then the last one again. */
function polled(...states: RuntimeSession[]) {
  let calls = 0;
  const getSession = async () => states[Math.min(calls++, states.length - 1)] as RuntimeSession;
  return { getSession, calls: () => calls };
}

const fast = { timeoutMs: 10_000, intervalMs: 0, callTimeoutMs: 1_000 };

describe("waiting for a session", () => {
  it("returns the session once it is ready or running, polling until then", async () => {
    const { getSession, calls } = polled(session("pending"), session("running"));
    await expect(waitForSession(getSession, session("pending"), fast)).resolves.toMatchObject({
      state: "running",
    });
    expect(calls()).toBe(2);
    await expect(waitForSession(getSession, session("ready"), fast)).resolves.toMatchObject({
      state: "ready",
    });
  });

  it("fails on a session that failed or stopped, saying why", async () => {
    const failed = session("failed", { stateReason: "oom", stateMessage: "killed" });
    await expect(waitForSession(polled().getSession, failed, fast)).rejects.toThrow(
      "session is failed (oom: killed)",
    );
    await expect(waitForSession(polled().getSession, session("stopped"), fast)).rejects.toThrow(
      /^session is stopped$/,
    );
  });

  it("gives up after its timeout, naming the state it is still in", async () => {
    const { getSession } = polled(session(""));
    await expect(waitForSession(getSession, session(""), { ...fast, timeoutMs: 0 })).rejects.toThrow(
      "still pending after 0 ms",
    );
  });

  it("fails with the error of a poll, and with the reason of its signal", async () => {
    const broken = async (): Promise<RuntimeSession> => {
      throw new Error("provider gone");
    };
    await expect(waitForSession(broken, session("pending"), fast)).rejects.toThrow("provider gone");
    const controller = new AbortController();
    controller.abort(new Error("stopped by caller"));
    await expect(
      waitForSession(polled().getSession, session("pending"), { ...fast, signal: controller.signal }),
    ).rejects.toThrow("stopped by caller");
  });

  it("watches a running session until it ends, then says how", async () => {
    const { getSession } = polled(session("running"), session("failed", { stateReason: "exited" }));
    const watch = new AbortController();
    let ended: Error | undefined;
    await watchSessionEnd(getSession, watch.signal, (why) => {
      ended = why;
      watch.abort();
    });
    expect(ended?.message).toBe("the session became failed (exited)");
  });
});

describe("waiting for a listener", () => {
  const servers: Server[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    for (const server of servers.splice(0)) server.close();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("resolves once a unix socket that appears later accepts connections", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rk-wait-"));
    dirs.push(dir);
    const path = join(dir, "plugin.sock");
    const waited = waitForSocket(path, AbortSignal.timeout(10_000));
    const server = createServer((socket) => socket.destroy());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    await expect(waited).resolves.toBeUndefined();
  });

  it("resolves once a TCP port accepts connections, and rejects with its signal's reason", async () => {
    const server = createServer((socket) => socket.destroy());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    await expect(waitForTcp(`127.0.0.1:${port}`, AbortSignal.timeout(10_000))).resolves.toBeUndefined();
    const controller = new AbortController();
    const waiting = waitForTcp("127.0.0.1:1", controller.signal);
    controller.abort(new Error("gave up"));
    await expect(waiting).rejects.toThrow("gave up");
  });
});
