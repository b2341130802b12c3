/**
 * The host's bootstrap against an in-memory provider: what it asks, in which order, with
 * which fields, and what it refuses before any session starts. The "plugin" is an
 * in-process gRPC server on a unix socket.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthService } from "../../../src/gen/grpc/health/v1/health.js";
import {
  createPluginHost,
  type HostedPluginError,
  loadGestaltConfig,
  ProfileRefusedError,
  type RuntimeProvider,
  RuntimeProviderError,
  type RuntimeSupport,
  type StartPluginRequest,
  type StartSessionRequest,
} from "../../../src/gestalt/index.js";

let dir: string;
let server: Server;
let socket: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "rk-gph-"));
  socket = join(dir, "plugin.sock");
  server = new Server();
  server.addService(HealthService, {
    check: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, { status: 1 }),
    watch: () => {},
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (e) =>
      e ? reject(e) : resolve(),
    ),
  );
});
afterAll(() => {
  server.forceShutdown();
  rmSync(dir, { recursive: true, force: true });
});

interface Recorded {
  calls: string[];
  sessionRequests: StartSessionRequest[];
  pluginRequests: StartPluginRequest[];
  binds: { envVar: string; dialTarget?: string }[];
}

function fakeProvider(
  support: RuntimeSupport,
  options: { pendingPolls?: number; noList?: boolean } = {},
): RuntimeProvider & Recorded {
  const state = new Map<string, string>();
  let polls = 0;
  let n = 0;
  const recorded: Recorded = { calls: [], sessionRequests: [], pluginRequests: [], binds: [] };
  const provider: RuntimeProvider = {
    async getSupport() {
      recorded.calls.push("GetSupport");
      return support;
    },
    async startSession(request) {
      recorded.calls.push("StartSession");
      recorded.sessionRequests.push(request);
      const id = `s${++n}`;
      state.set(id, options.pendingPolls ? "pending" : "ready");
      return { id, state: state.get(id)!, metadata: request.metadata ?? {} };
    },
    async getSession({ sessionId }) {
      recorded.calls.push("GetSession");
      if (state.get(sessionId) === "pending" && ++polls >= (options.pendingPolls ?? 0))
        state.set(sessionId, "ready");
      const s = state.get(sessionId);
      if (!s) throw new RuntimeProviderError("WORKLOAD_NOT_FOUND", "GetSession", "no such session");
      return { id: sessionId, state: s, metadata: {} };
    },
    async stopSession({ sessionId }) {
      recorded.calls.push("StopSession");
      state.set(sessionId, "stopped");
    },
    async bindHostService(request) {
      recorded.calls.push("BindHostService");
      recorded.binds.push({
        envVar: request.envVar,
        ...(request.relay ? { dialTarget: request.relay.dialTarget } : {}),
      });
      return { id: "b", sessionId: request.sessionId, envVar: request.envVar };
    },
    async startPlugin(request) {
      recorded.calls.push("StartPlugin");
      recorded.pluginRequests.push(request);
      state.set(request.sessionId, "running");
      return {
        id: "p",
        sessionId: request.sessionId,
        pluginName: request.pluginName,
        dialTarget: `unix://${socket}`,
      };
    },
  };
  if (!options.noList) {
    provider.listSessions = async () => {
      recorded.calls.push("ListSessions");
      return [...state].filter(([, s]) => s !== "stopped").map(([id, s]) => ({ id, state: s, metadata: {} }));
    };
  }
  return Object.assign(provider, recorded);
}

const DIRECT: RuntimeSupport = { canHostPlugins: true, hostServiceAccess: "direct", egressMode: "hostname" };
const BARE: RuntimeSupport = { canHostPlugins: true, hostServiceAccess: "none", egressMode: "hostname" };
const RELAY_HOST = {
  publicBaseUrl: "https://gestalt.example.com",
  encryptionKey: "k",
  egressProxyUrl: "http://egress.example.com:3128",
};

function host(
  provider: RuntimeProvider,
  plugin: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
  options = {},
) {
  return createPluginHost({
    config: loadGestaltConfig({
      runtime: { providers: { fake: { driver: "fake", default: true } } },
      plugins: {
        support: { command: "/bin/plugin", args: ["--x"], execution: { mode: "hosted" }, ...plugin },
      },
      ...extra,
    }),
    providers: { fake: provider },
    hostServices: { cache: { envVar: "GESTALT_CACHE_SOCKET", dialTarget: "unix:///run/cache.sock" } },
    ...options,
  });
}

describe("the bootstrap", () => {
  it("asks support, starts the session, waits for it, binds, starts the plugin and dials it, in that order", async () => {
    const provider = fakeProvider(DIRECT, { pendingPolls: 3 });
    const h = host(provider, {
      hostServices: ["cache"],
      allowedHosts: ["api.example.com"],
      env: { A: "1" },
      execution: { runtime: { image: "support:1", template: "small", metadata: { team: "care" } } },
    });
    const plugin = await h.startPlugin("support");
    expect(provider.calls).toEqual([
      "GetSupport",
      "StartSession",
      "GetSession",
      "GetSession",
      "GetSession",
      "BindHostService",
      "StartPlugin",
    ]);
    expect(provider.sessionRequests[0]).toEqual({
      pluginName: "support",
      image: "support:1",
      template: "small",
      metadata: { team: "care", provider_kind: "plugin", provider_name: "support" },
    });
    expect(provider.binds).toEqual([
      { envVar: "GESTALT_CACHE_SOCKET", dialTarget: "unix:///run/cache.sock" },
    ]);
    expect(provider.pluginRequests[0]).toEqual({
      sessionId: "s1",
      pluginName: "support",
      command: "/bin/plugin",
      args: ["--x"],
      // Every binding is in the env too (all a provider of the current revision gets), and the session id.
      env: { A: "1", GESTALT_CACHE_SOCKET: "unix:///run/cache.sock", GESTALT_RUNTIME_SESSION_ID: "s1" },
      allowedHosts: ["api.example.com"],
      defaultAction: "allow",
    });
    expect(plugin.plan.egressDelivery).toBe("runtime");
    await h.close();
    expect(provider.calls.at(-1)).toBe("StopSession");
  });

  it("binds through the relay and points egress at the public proxy when the host relays", async () => {
    const provider = fakeProvider(BARE);
    const h = host(
      provider,
      { hostServices: ["cache"] },
      { egress: { defaultAction: "deny" } },
      { hostCapabilities: RELAY_HOST },
    );
    const plugin = await h.startPlugin("support");
    expect(plugin.profile.effective.hostServiceAccess).toBe("relay");
    expect(provider.binds).toEqual([
      { envVar: "GESTALT_CACHE_SOCKET", dialTarget: "tls://gestalt.example.com:443" },
    ]);
    expect(provider.pluginRequests[0]?.env).toMatchObject({
      HTTP_PROXY: RELAY_HOST.egressProxyUrl,
      HTTPS_PROXY: RELAY_HOST.egressProxyUrl,
    });
    expect(provider.pluginRequests[0]?.allowedHosts).toBeUndefined();
    await h.close();
  });

  it.each([
    [
      "can-host",
      { ...DIRECT, canHostPlugins: false },
      {},
      "cannot host executable providers in a host-reachable session",
    ],
    [
      "host-service-access",
      BARE,
      { hostServices: ["cache"] },
      "cannot provide host service access required by this provider",
    ],
    [
      "hostname-egress",
      { ...BARE, egressMode: "cidr" },
      { allowedHosts: ["x.com"] },
      "cannot preserve hostname-based egress required by this provider",
    ],
  ] as const)("refuses a %s gap before any session starts", async (gap, support, plugin, text) => {
    const provider = fakeProvider(support as RuntimeSupport);
    const h = host(provider, plugin);
    const error = await h.startPlugin("support").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProfileRefusedError);
    expect((error as ProfileRefusedError).gap).toBe(gap);
    expect((error as Error).message).toBe(
      `hosted plugin "support" on runtime provider "fake": runtime provider "fake" ${text}`,
    );
    expect(provider.calls).toEqual(["GetSupport"]);
    await h.close();
  });

  it("refuses a hosted agent on a provider without host-service access", async () => {
    const provider = fakeProvider(BARE);
    const h = host(
      provider,
      {},
      { providers: { agent: { helper: { command: "/bin/agent", execution: { mode: "hosted" } } } } },
    );
    await expect(h.startAgent("helper")).rejects.toThrow(
      'runtime provider "fake" cannot provide host service access required by this provider',
    );
    expect(provider.calls).toEqual(["GetSupport"]);
    await h.close();
  });

  it("refuses a plugin without a command before any session starts", async () => {
    const provider = fakeProvider(DIRECT);
    const h = host(provider, { command: undefined });
    await expect(h.startPlugin("support")).rejects.toThrow(
      "plugins.support.command: is required to start the plugin",
    );
    expect(provider.calls).toEqual(["GetSupport"]);
    await h.close();
  });

  it("names an unconfigured plugin", async () => {
    const h = host(fakeProvider(DIRECT));
    await expect(h.startPlugin("ghost")).rejects.toThrow(
      "plugins.ghost: is not configured (configured: support)",
    );
    await h.close();
  });
});

describe("loading providers", () => {
  const config = (providers: Record<string, unknown>) =>
    loadGestaltConfig({
      runtime: { providers },
      plugins: { p: { command: "/x", execution: { mode: "hosted" } } },
    });

  it("says which driver is unknown", async () => {
    const h = createPluginHost({ config: config({ k8s: { driver: "kubernetes", default: true } }) });
    const error = (await h.startPlugin("p").catch((e: unknown) => e)) as HostedPluginError;
    expect(error.step).toBe("select");
    expect(error.message).toContain(
      'runtime.providers.k8s.driver: unknown driver "kubernetes" (known: local)',
    );
    await h.close();
  });

  it("uses a driver factory with the entry's config", async () => {
    const provider = fakeProvider(DIRECT);
    const seen: unknown[] = [];
    const h = createPluginHost({
      config: config({ k8s: { driver: "kubernetes", default: true, config: { namespace: "plugins" } } }),
      drivers: {
        kubernetes: (context) => {
          seen.push(context.entry.config);
          return provider;
        },
      },
    });
    await h.startPlugin("p");
    expect(seen).toEqual([{ namespace: "plugins" }]);
    await h.close();
  });

  it("needs a kernel for the local driver", async () => {
    const h = createPluginHost({ config: config({ local: { driver: "local", default: true } }) });
    await expect(h.startPlugin("p")).rejects.toThrow(
      /the local driver needs createPluginHost\(\{ kernel \}\)/,
    );
    await h.close();
  });

  it("needs resolveSource for a source that is not an address, a command or a manifest", async () => {
    const h = createPluginHost({
      config: config({ pkg: { source: { ref: "github.com/acme/runtime" }, default: true } }),
    });
    await expect(h.startPlugin("p")).rejects.toThrow(
      /runtime\.providers\.pkg\.source: is not a provider address, \{ command \} or \{ path \}/,
    );
    await h.close();
  });

  it("refuses a manifest it cannot read, or one that is not kind: runtime, naming source.path", async () => {
    const manifest = join(dir, "manifest.yaml");
    writeFileSync(manifest, "kind: plugin\nentrypoint: { artifactPath: ./bin/p }\n");
    for (const [path, why] of [
      [join(dir, "missing.yaml"), /cannot read the manifest/],
      [manifest, /is not a runtime provider manifest \(kind is "plugin", want "runtime"\)/],
    ] as const) {
      const h = createPluginHost({ config: config({ pkg: { source: { path }, default: true } }) });
      const error = await h.startPlugin("p").catch((e: unknown) => e);
      expect((error as Error).message).toContain("runtime.providers.pkg.source.path");
      expect((error as Error).message).toMatch(why);
      await h.close();
    }
  });
});

describe("the admin view", () => {
  it("shows each provider with its profiles, the default, and a load error", async () => {
    const provider = fakeProvider(BARE, { noList: true });
    const h = createPluginHost({
      config: loadGestaltConfig({
        server: { runtime: { defaultHostedProvider: "fake" } },
        runtime: { providers: { fake: { driver: "fake" }, broken: { driver: "nope" } } },
        plugins: { p: { command: "/x", execution: { mode: "hosted" } } },
      }),
      providers: { fake: provider },
      hostCapabilities: RELAY_HOST,
    });
    const plugin = await h.startPlugin("p");
    const views = await h.describeProviders();
    expect(views).toEqual([
      {
        name: "fake",
        driver: "fake",
        default: true,
        loaded: true,
        sessionCount: 1,
        profile: {
          advertised: { canHostPlugins: true, hostServiceAccess: "none", egressMode: "hostname" },
          effective: { canHostPlugins: true, hostServiceAccess: "relay", egressMode: "hostname" },
        },
      },
      {
        name: "broken",
        driver: "nope",
        default: false,
        loaded: false,
        error: expect.stringContaining('unknown driver "nope"'),
      },
    ]);
    // No ListSessions: the host asked GetSession for the session it knows.
    expect(await h.describeSessions("fake")).toEqual([
      { id: plugin.sessionId, state: "running", plugin: "p", logs: [] },
    ]);
    await expect(h.describeSessions("missing")).rejects.toMatchObject({ code: "WORKLOAD_NOT_FOUND" });
    await h.close();
  });
});
