/**
 * Hosted plugins through the built-in `local` provider: real plugin processes on the
 * process backend, dialled back over gRPC on a unix socket in their session folder.
 */
import { statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { connectivityState } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../../../src/gen/grpc/health/v1/health.js";
import {
  createAdminHandler,
  createPluginHost,
  HostedPluginError,
  loadGestaltConfig,
  type PluginHost,
  SAFE_BASE_ENV_KEYS,
} from "../../../src/gestalt/index.js";
import type { TransitionEvent } from "../../../src/index.js";
import {
  call,
  EchoClient,
  eventually,
  existsSync,
  expectNothingLeft,
  isRunning,
  type LocalKernel,
  localKernel,
  pluginEnv,
  testPluginCommand,
} from "./helpers.js";

let local: LocalKernel;
let plugin: { command: string; args: string[] };
let host: PluginHost | undefined;

beforeAll(async () => {
  local = localKernel();
  plugin = await testPluginCommand();
});
afterEach(async () => {
  await host?.close();
  host = undefined;
});
afterAll(async () => {
  await local.teardown();
});

function makeHost(
  plugins: Record<string, Record<string, unknown>>,
  extra: Record<string, unknown> = {},
  options = {},
) {
  const config = loadGestaltConfig({
    runtime: {
      providers: {
        local: {
          driver: "local",
          default: true,
          config: { sessionRoot: local.sessionRoot, readyTimeoutMs: 10_000 },
        },
      },
    },
    plugins: Object.fromEntries(
      Object.entries(plugins).map(([name, p]) => [
        name,
        { command: plugin.command, args: plugin.args, execution: { mode: "hosted" }, ...p },
      ]),
    ),
    ...extra,
  });
  host = createPluginHost({
    config,
    kernel: local.kernel,
    local: { sessionRoot: local.sessionRoot },
    hostServices: { cache: { envVar: "GESTALT_CACHE_SOCKET", dialTarget: "unix:///run/gestalt/cache.sock" } },
    ...options,
  });
  return host;
}

async function startFailure(promise: Promise<unknown>): Promise<HostedPluginError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(HostedPluginError);
    return error as HostedPluginError;
  }
  throw new Error("expected the start to fail");
}

describe("the local provider", () => {
  it("starts a hosted plugin, dials it back and lets the host call it", async () => {
    const h = makeHost({ support: {} });
    const started = await h.startPlugin("support");
    expect(started.provider).toBe("local");
    expect(started.channel.getConnectivityState(false)).toBe(connectivityState.READY);
    expect(started.dialTarget).toMatch(
      new RegExp(`^unix://${local.sessionRoot}/gestalt-[^/]+/plugin\\.sock$`),
    );
    expect(started.profile.effective).toEqual({
      canHostPlugins: true,
      hostServiceAccess: "direct",
      egressMode: "hostname",
      supportsPrepareWorkspace: true,
    });

    const health = started.client(HealthClient);
    const checked = await new Promise<{ status: number }>((resolve, reject) =>
      health.check({ service: "" }, (e, r) => (e ? reject(e) : resolve(r))),
    );
    expect(checked.status).toBe(HealthCheckResponse_ServingStatus.SERVING);

    const echo = started.client(EchoClient);
    expect(await call(echo.say, echo, { text: "hello" })).toEqual({ text: "hello", plugin: "support" });
    await eventually(
      () => started.logs().some((l) => l.includes("serving on unix:")),
      "the plugin's log to reach the host",
    );
  });

  it("gives the plugin only the safe base environment, its own env and what was bound", async () => {
    process.env.RK_GESTALT_HOST_ONLY = "must-not-leak";
    try {
      const h = makeHost({ support: { env: { GREETING: "hi" }, hostServices: ["cache"] } });
      const started = await h.startPlugin("support", { env: { EXTRA: "1" } });
      const { env, cwd, ppid } = await pluginEnv(started.client(EchoClient));
      const sessionDir = started.dialTarget.replace(/^unix:\/\//, "").replace(/\/plugin\.sock$/, "");
      expect(env.GESTALT_PLUGIN_SOCKET).toBe(`${sessionDir}/plugin.sock`);
      expect(env.GESTALT_PLUGIN_NAME).toBe("support");
      expect(env.GESTALT_RUNTIME_SESSION_ID).toBe(started.sessionId);
      // The parent it is told about is the one it has: the process backend's supervisor.
      expect(env.GESTALT_PLUGIN_PARENT_PID).toBe(String(ppid));
      expect(ppid).toBe((await local.backend.supervisorStats()).pid);
      expect(env.GESTALT_CACHE_SOCKET).toBe("unix:///run/gestalt/cache.sock");
      expect(env.GREETING).toBe("hi");
      expect(env.EXTRA).toBe("1");
      expect(env.RK_GESTALT_HOST_ONLY).toBeUndefined();
      const allowed = new Set<string>([
        ...SAFE_BASE_ENV_KEYS,
        "GESTALT_PLUGIN_SOCKET",
        "GESTALT_PLUGIN_NAME",
        "GESTALT_PLUGIN_PARENT_PID",
        "GESTALT_RUNTIME_SESSION_ID",
        "GESTALT_CACHE_SOCKET",
        "GREETING",
        "EXTRA",
        // Set by Node or the shell for every process, not by the host.
        "PWD",
        "SHLVL",
        "_",
      ]);
      expect(Object.keys(env).filter((k) => !allowed.has(k))).toEqual([]);
      expect(cwd).toBe(sessionDir);
    } finally {
      delete process.env.RK_GESTALT_HOST_ONLY;
    }
  });

  it("keeps each session in a private folder, stops the plugin with SIGTERM and removes the folder", async () => {
    const h = makeHost({ support: {} });
    const stopped: TransitionEvent[] = [];
    const onStopped = (e: TransitionEvent) => stopped.push(e);
    local.kernel.on("stopped", onStopped);
    try {
      const started = await h.startPlugin("support");
      const sessionDir = started.dialTarget.replace(/^unix:\/\//, "").replace(/\/plugin\.sock$/, "");
      expect(statSync(sessionDir).mode & 0o777).toBe(0o700);
      const { pid } = await pluginEnv(started.client(EchoClient));
      expect(isRunning(pid)).toBe(true);
      await started.stop();
      expect(isRunning(pid)).toBe(false);
      expect(existsSync(sessionDir)).toBe(false);
      // Exit 0 after "stopping": the plugin's SIGTERM handler ran; no SIGKILL was needed.
      expect(stopped.find((e) => e.workloadId === started.pluginId)).toMatchObject({
        exitCode: 0,
        stopReason: "requested",
      });
      expectNothingLeft(local);
    } finally {
      local.kernel.off("stopped", onStopped);
    }
  });

  it("stops every session it started when the host closes", async () => {
    const h = makeHost({ a: {}, b: {} });
    const [a, b] = await Promise.all([h.startPlugin("a"), h.startPlugin("b")]);
    const pids = await Promise.all([a, b].map(async (p) => (await pluginEnv(p.client(EchoClient))).pid));
    expect(h.plugins()).toHaveLength(2);
    await h.close();
    host = undefined;
    for (const pid of pids) expect(isRunning(pid)).toBe(false);
    expectNothingLeft(local);
    await expect(h.startPlugin("a")).rejects.toThrow(/closed/);
  });

  it("runs a plugin without an execution block on the built-in local runtime, and hosts agents", async () => {
    const h = makeHost(
      { tool: { execution: undefined } },
      {
        providers: {
          agent: { helper: { command: plugin.command, args: plugin.args, execution: { mode: "hosted" } } },
        },
      },
    );
    const tool = await h.startPlugin("tool");
    expect(tool.provider).toBe("local");
    const agent = await h.startAgent("helper");
    expect(agent.kind).toBe("agent");
    const echo = agent.client(EchoClient);
    expect((await call(echo.say, echo, { text: "x" })).plugin).toBe("helper");
  });
});

describe("hostname egress through the local provider's proxy", () => {
  let target: Server;
  let port: number;
  let connections = 0;
  beforeAll(async () => {
    target = createServer((req, res) => res.end(`reached ${req.url}`));
    target.on("connection", () => connections++);
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    port = (target.address() as AddressInfo).port;
  });
  afterAll(async () => {
    target.closeAllConnections();
    await new Promise((r) => target.close(r));
  });

  it("lets an allowed host through and answers 403 for any other, sending it nothing", async () => {
    const h = makeHost({
      open: { allowedHosts: ["127.0.0.1"] },
      closed: { allowedHosts: ["*.example.com"] },
    });
    const open = await h.startPlugin("open");
    const closed = await h.startPlugin("closed");
    expect(open.plan.egressDelivery).toBe("runtime");

    const openEnv = (await pluginEnv(open.client(EchoClient))).env;
    expect(openEnv.HTTP_PROXY).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(openEnv.HTTPS_PROXY).toBe(openEnv.HTTP_PROXY);

    const before = connections;
    const openEcho = open.client(EchoClient);
    expect(await call(openEcho.fetch, openEcho, { url: `http://127.0.0.1:${port}/allowed` })).toEqual({
      status: 200,
      body: "reached /allowed",
    });
    expect(connections).toBe(before + 1);

    const closedEcho = closed.client(EchoClient);
    const denied = await call(closedEcho.fetch, closedEcho, { url: `http://127.0.0.1:${port}/denied` });
    expect(denied.status).toBe(403);
    expect(connections).toBe(before + 1);

    // The proxy goes away with the session.
    const proxyPort = Number(new URL(openEnv.HTTP_PROXY!).port);
    await open.stop();
    await expect(
      new Promise((resolve, reject) => {
        const s = connect(proxyPort, "127.0.0.1");
        s.once("connect", () => resolve(s.destroy()));
        s.once("error", reject);
      }),
    ).rejects.toThrow(/ECONNREFUSED/);
  });

  it("applies the server's defaultAction deny to a plugin with no allow-list", async () => {
    const h = makeHost({ any: {} }, { egress: { defaultAction: "deny" } });
    const started = await h.startPlugin("any");
    const echo = started.client(EchoClient);
    expect((await call(echo.fetch, echo, { url: `http://127.0.0.1:${port}/` })).status).toBe(403);
  });
});

describe("plugins that fail to start", () => {
  it("reports a plugin that exits before serving, with its exit code and the last lines of its log", async () => {
    const h = makeHost({ support: { args: [...plugin.args, "--exit-before-serving=3"] } });
    const error = await startFailure(h.startPlugin("support"));
    expect(error.step).toBe("start-plugin");
    expect(error.code).toBe("START_FAILED");
    expect(error.message).toContain(
      'hosted plugin "support" on runtime provider "local": start hosted plugin: ',
    );
    expect(error.message).toContain('plugin "support" exited before serving (exit code 3)');
    expect(error.message).toContain("fatal: plugin support cannot start: missing credentials");
    expect(error.message).toContain("loading configuration");
    expectNothingLeft(local);
  });

  it("reports a plugin that never listens once the provider's ready timeout passes", async () => {
    const h = makeHost(
      { support: { args: [...plugin.args, "--never-serve"] } },
      {
        runtime: {
          providers: { local: { driver: "local", default: true, config: { readyTimeoutMs: 1_000 } } },
        },
      },
    );
    const error = await startFailure(h.startPlugin("support"));
    expect(error.step).toBe("start-plugin");
    expect(error.message).toMatch(/did not listen on .*plugin\.sock within 1000 ms/);
    expect(error.message).toContain("plugin support starting");
    expectNothingLeft(local);
  });

  it("reports a plugin that listens but never speaks gRPC at the dial step", async () => {
    const h = makeHost(
      { support: { args: [...plugin.args, "--serve-garbage"] } },
      {},
      { dialTimeoutMs: 1_000 },
    );
    const error = await startFailure(h.startPlugin("support"));
    expect(error.step).toBe("dial");
    expect(error.message).toContain("dial hosted plugin: not Ready before the deadline");
    expect(error.logTail.some((l) => l.includes("plugin support starting"))).toBe(true);
    expectNothingLeft(local);
  });
});

describe("inspection", () => {
  it("describes providers and their sessions, as data and over HTTP", async () => {
    const h = makeHost({ support: {} });
    const started = await h.startPlugin("support");
    const providers = await h.describeProviders();
    expect(providers).toEqual([
      {
        name: "local",
        driver: "local",
        default: true,
        loaded: true,
        sessionCount: 1,
        profile: {
          advertised: {
            canHostPlugins: true,
            hostServiceAccess: "direct",
            egressMode: "hostname",
            supportsPrepareWorkspace: true,
          },
          effective: {
            canHostPlugins: true,
            hostServiceAccess: "direct",
            egressMode: "hostname",
            supportsPrepareWorkspace: true,
          },
        },
      },
    ]);
    await eventually(
      () => started.logs().some((l) => l.includes("serving on unix:")),
      "the plugin's log to reach the host",
    );
    const described = await h.describeSessions("local");
    expect(described).toEqual([
      { id: started.sessionId, state: "running", plugin: "support", logs: expect.any(Array) },
    ]);
    // The last lines of the session's log, for an operator: the runtime's own and the plugin's.
    expect(described[0]?.logs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^session .* started for plugin "support"/),
        expect.stringContaining("serving on unix:"),
      ]),
    );

    const server = createServer(createAdminHandler(h));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/api/v1/runtime`;
    try {
      const list = await fetch(`${base}/providers`);
      expect(list.status).toBe(200);
      expect(await list.json()).toEqual(JSON.parse(JSON.stringify(providers)));
      const sessions = await fetch(`${base}/providers/local/sessions`);
      expect(await sessions.json()).toMatchObject([
        { id: started.sessionId, state: "running", plugin: "support" },
      ]);
      expect((await fetch(`${base}/providers/nope/sessions`)).status).toBe(404);
      expect((await fetch(`${base}/elsewhere`)).status).toBe(404);
      expect((await fetch(`${base}/providers`, { method: "POST" })).status).toBe(405);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    await started.stop();
    expect((await h.describeProviders())[0]?.sessionCount).toBe(0);
  });
});

describe("secrets", () => {
  it("keep env values, pull credentials and the encryption key out of errors, events, sessions and the admin view", async () => {
    const events: TransitionEvent[] = [];
    const record = (e: TransitionEvent) => events.push(e);
    local.kernel.on("transition", record);
    const pullSecret = "cmVnaXN0cnktc2VjcmV0LXZhbHVl";
    const h = makeHost(
      {
        support: {
          args: [...plugin.args, "--exit-before-serving=5"],
          env: { API_TOKEN: "s3cr3t-token-value" },
          execution: {
            mode: "hosted",
            runtime: {
              image: "support:1",
              imagePullAuth: { dockerConfigJson: JSON.stringify({ auths: { r: { auth: pullSecret } } }) },
            },
          },
        },
      },
      {},
      {
        hostCapabilities: {
          publicBaseUrl: "https://gestalt.example.com",
          encryptionKey: "encryption-key-value",
        },
      },
    );
    try {
      const error = await startFailure(h.startPlugin("support"));
      const seen = [
        error.message,
        JSON.stringify(error),
        JSON.stringify(events),
        JSON.stringify(await h.describeProviders()),
        JSON.stringify(await h.describeSessions("local")),
      ].join("\n");
      for (const secret of ["s3cr3t-token-value", pullSecret, "encryption-key-value"])
        expect(seen).not.toContain(secret);
      expect(error.message).toContain("exited before serving (exit code 5)");
    } finally {
      local.kernel.off("transition", record);
    }
  });
});
