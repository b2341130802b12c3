/**
 * A runtime provider in a separate process, reached over gRPC: the host drives it through
 * `grpcRuntimeProvider` (a `source` address in the config), exactly as it would drive a
 * provider written in another language.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPluginHost, HostedPluginError, loadGestaltConfig } from "../../../src/gestalt/index.js";
import { call, EchoClient, eventually, isRunning, pluginEnv, testPluginCommand } from "./helpers.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

interface ProviderProcess {
  address: string;
  child: ChildProcess;
  sessionRoot: string;
  stop(): Promise<void>;
}

async function startProviderProcess(extra: string[] = []): Promise<ProviderProcess> {
  const dir = mkdtempSync(join(tmpdir(), "rk-gsp-"));
  const sessionRoot = join(dir, "sessions");
  const stateDir = join(dir, "state");
  mkdirSync(sessionRoot);
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(root, "test/fixtures/gestalt/provider-process.ts"),
      join(dir, "provider.sock"),
      `--state-dir=${stateDir}`,
      `--session-root=${sessionRoot}`,
      ...extra,
    ],
    { cwd: root, stdio: ["ignore", "pipe", "inherit"] },
  );
  const line = await new Promise<string>((resolveLine, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", resolveLine);
    child.once("exit", (code) =>
      reject(new Error(`the provider process exited with ${code} before serving`)),
    );
  });
  const { ready } = JSON.parse(line) as { ready: string };
  return {
    address: ready,
    child,
    sessionRoot,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let plugin: { command: string; args: string[] };
let full: ProviderProcess;
let noList: ProviderProcess;

beforeAll(async () => {
  plugin = await testPluginCommand();
  [full, noList] = await Promise.all([startProviderProcess(), startProviderProcess(["--no-list"])]);
});
afterAll(async () => {
  await Promise.all([full?.stop(), noList?.stop()]);
  expect(full.child.exitCode).toBe(0);
});

function hostFor(provider: ProviderProcess, args: string[] = plugin.args) {
  return createPluginHost({
    config: loadGestaltConfig({
      server: { runtime: { defaultProvider: "remote" } },
      runtime: { providers: { remote: { source: provider.address } } },
      plugins: { support: { command: plugin.command, args, runtime: {} } },
    }),
  });
}

describe("a provider served over gRPC in another process", () => {
  it("hosts a plugin that the host dials back and calls", async () => {
    const host = hostFor(full);
    try {
      const started = await host.startPlugin("support");
      expect(started.provider).toBe("remote");
      expect(started.dialTarget.startsWith(`unix://${full.sessionRoot}/`)).toBe(true);
      const echo = started.client(EchoClient);
      expect(await call(echo.say, echo, { text: "over the wire" })).toEqual({
        text: "over the wire",
        plugin: "support",
      });
      const { pid } = await pluginEnv(echo);

      const [view] = await host.describeProviders();
      expect(view).toMatchObject({
        name: "remote",
        driver: "source",
        default: true,
        loaded: true,
        sessionCount: 1,
      });
      expect(view?.profile?.advertised).toEqual({
        canHostPlugins: true,
        hostServiceAccess: "direct",
        egressMode: "hostname",
        supportsPrepareWorkspace: true,
      });
      expect(await host.describeSessions("remote")).toEqual([
        { id: started.sessionId, state: "running", plugin: "support", logs: [] },
      ]);

      await started.stop();
      expect(isRunning(pid)).toBe(false);
      expect(readdirSync(full.sessionRoot)).toEqual([]);
    } finally {
      await host.close();
    }
  });

  it("passes the provider's start error to the host, with the plugin's log", async () => {
    const host = hostFor(full, [...plugin.args, "--exit-before-serving=4"]);
    try {
      const error = await host.startPlugin("support").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HostedPluginError);
      const message = (error as Error).message;
      expect(message).toContain("start hosted plugin: ");
      expect(message).toContain("exited before serving (exit code 4)");
      expect(message).toContain("fatal: plugin support cannot start: missing credentials");
      expect(readdirSync(full.sessionRoot)).toEqual([]);
    } finally {
      await host.close();
    }
  });

  it("falls back to GetSession per known session when ListSessions is unimplemented", async () => {
    const host = hostFor(noList);
    try {
      const started = await host.startPlugin("support");
      const [view] = await host.describeProviders();
      expect(view).toMatchObject({ loaded: true, sessionCount: 1 });
      expect(view?.error).toBeUndefined();
      expect(await host.describeSessions("remote")).toEqual([
        { id: started.sessionId, state: "running", plugin: "support", logs: [] },
      ]);
    } finally {
      await host.close();
    }
    expect(readdirSync(noList.sessionRoot)).toEqual([]);
  });

  it("appends the plugins' output to the host's log host over gRPC", async () => {
    const host = hostFor(full);
    const dir = mkdtempSync(join(tmpdir(), "rk-glh-"));
    const endpoint = await host.serveLogHost(`unix://${join(dir, "logs.sock")}`);
    const pushing = await startProviderProcess([`--log-host=${endpoint.address}`]);
    const pushed = createPluginHost({
      config: loadGestaltConfig({
        runtime: { providers: { remote: { source: pushing.address, default: true } } },
        plugins: { support: { command: plugin.command, args: plugin.args, execution: { mode: "hosted" } } },
      }),
    });
    try {
      const started = await pushed.startPlugin("support");
      // The provider appends to `host`'s log host: read it there.
      await eventually(
        () =>
          host.logHost
            .tail(started.sessionId)
            .some((e) => e.message.includes("serving on unix:") && e.stream === "stdout"),
        "the plugin's output to be appended over gRPC",
      );
    } finally {
      await pushed.close();
      await host.close();
      await pushing.stop();
      await endpoint.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports a provider that cannot be reached (its handshake fails) in the admin view, without throwing", async () => {
    const host = createPluginHost({
      config: loadGestaltConfig({
        runtime: { providers: { gone: { source: "unix:///nonexistent/provider.sock" } } },
      }),
    });
    try {
      const [view] = await host.describeProviders();
      expect(view).toMatchObject({ name: "gone", driver: "source", loaded: false, default: false });
      expect(view?.error).toMatch(/./);
      expect(view?.profile).toBeUndefined();
    } finally {
      await host.close();
    }
  });
});
