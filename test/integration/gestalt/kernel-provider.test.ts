/**
 * `kernelRuntimeProvider` on a kernel whose backend publishes ports: the plugin listens on
 * TCP (GESTALT_PLUGIN_PORT) and the host dials `tcp://` at the port the backend reports. The
 * backend is the process backend with the port it publishes added to its handles, as a
 * container backend reports a published port.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessBackend, type ProcessHandle } from "../../../src/backends/process/index.js";
import {
  createPluginHost,
  GESTALT_PLUGIN_PROFILE,
  kernelRuntimeProvider,
  loadGestaltConfig,
  type RuntimeProvider,
} from "../../../src/gestalt/index.js";
import { type Backend, createRuntimeKernel, type RuntimeKernel } from "../../../src/index.js";
import { call, EchoClient, testPluginCommand } from "./helpers.js";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** The process backend, reporting the plugin's port as published under `grpc`. */
function publishingBackend(inner: ProcessBackend): Backend<ProcessHandle> {
  return {
    name: "process-with-ports",
    async start(request, options) {
      const handle = await inner.start(request, options);
      return { ...handle, ports: { grpc: `127.0.0.1:${request.env.GESTALT_PLUGIN_PORT}` } };
    },
    exitCode: (h) => inner.exitCode(h),
    terminate: (h, o) => inner.terminate(h, o),
    kill: (h) => inner.kill(h),
    cleanup: (h) => inner.cleanup(h),
    watchExit: (h, onExit) => inner.watchExit(h, onExit),
    logs: (h, o) => inner.logs(h, o),
    close: () => inner.close(),
  };
}

let stateDir: string;
let sessionRoot: string;
let inner: ProcessBackend;
let kernel: RuntimeKernel;
let provider: RuntimeProvider;
let port: number;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "rk-gkp-"));
  sessionRoot = mkdtempSync(join(tmpdir(), "rk-gks-"));
  inner = new ProcessBackend({ stateDir, supervisorIdleMs: 5_000 });
  kernel = createRuntimeKernel({
    backend: publishingBackend(inner),
    profiles: { [GESTALT_PLUGIN_PROFILE]: { runnable: {} } },
  });
  port = await freePort();
  provider = kernelRuntimeProvider(kernel, { socket: { kind: "port", port }, sessionRoot });
});

afterAll(async () => {
  await kernel.shutdown();
  await inner.stopSupervisor({ force: true }).catch(() => {});
  await inner.close();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(sessionRoot, { recursive: true, force: true });
});

describe("kernelRuntimeProvider with a published port", () => {
  it("advertises what it is told, defaulting to no host-service access and no egress", async () => {
    expect(await provider.getSupport()).toEqual({
      canHostPlugins: true,
      hostServiceAccess: "none",
      egressMode: "none",
      // The system git runs here, and the session folder is the workload's workspace.
      supportsPrepareWorkspace: true,
    });
    expect(provider.listSessions).toBeTypeOf("function");
  });

  it("hosts a plugin that listens on GESTALT_PLUGIN_PORT and is dialled over tcp://", async () => {
    const plugin = await testPluginCommand();
    const host = createPluginHost({
      config: loadGestaltConfig({
        runtime: { providers: { ported: { driver: "ported", default: true } } },
        plugins: {
          support: {
            command: plugin.command,
            args: plugin.args,
            env: { GESTALT_PLUGIN_LISTEN_HOST: "127.0.0.1" },
            execution: { mode: "hosted" },
          },
        },
      }),
      providers: { ported: provider },
    });
    try {
      const started = await host.startPlugin("support");
      expect(started.dialTarget).toBe(`tcp://127.0.0.1:${port}`);
      const echo = started.client(EchoClient);
      const { env } = await call(echo.env, echo, {});
      expect(env.GESTALT_PLUGIN_PORT).toBe(String(port));
      expect(env.GESTALT_PLUGIN_SOCKET).toBeUndefined();
      expect((await provider.getSession({ sessionId: started.sessionId })).state).toBe("running");
      await started.stop();
      expect((await provider.getSession({ sessionId: started.sessionId })).state).toBe("stopped");
      expect(kernel.list().filter((s) => s.state !== "destroyed")).toEqual([]);
      expect(readdirSync(sessionRoot)).toEqual([]);
    } finally {
      await host.close();
    }
  });

  it("maps a plugin that failed by itself to a failed session, with the reason and exit code", async () => {
    const plugin = await testPluginCommand();
    const session = await provider.startSession({ pluginName: "crasher" });
    expect(session.state).toBe("ready");
    await expect(
      provider.startPlugin({
        sessionId: session.id,
        pluginName: "crasher",
        command: plugin.command,
        args: [...plugin.args, "--exit-before-serving=9"],
      }),
    ).rejects.toThrow(/exited before serving \(exit code 9\)/);
    const failed = await provider.getSession({ sessionId: session.id });
    expect(failed).toMatchObject({ state: "failed", stateReason: "start_failed" });
    expect(failed.stateMessage).toMatch(/exit code 9/);
    await provider.stopSession({ sessionId: session.id });
    expect(readdirSync(sessionRoot)).toEqual([]);
  });
});
