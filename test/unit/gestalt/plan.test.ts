import { describe, expect, it } from "vitest";
import { loadGestaltConfig } from "../../../src/gestalt/config.js";
import { ProfileRefusedError } from "../../../src/gestalt/errors.js";
import { planHostedPlugin, pluginNeeds } from "../../../src/gestalt/plan.js";
import type { RuntimeSupport } from "../../../src/gestalt/provider.js";

const RELAY_HOST = {
  publicBaseUrl: "https://gestalt.example.com",
  encryptionKey: "k",
  egressProxyUrl: "http://egress.example.com:3128",
};
const SERVICES = { cache: { envVar: "GESTALT_CACHE", dialTarget: "unix:///run/cache.sock" } };

function config(plugin: Record<string, unknown> = {}, egress: Record<string, unknown> = {}) {
  return loadGestaltConfig({
    runtime: { providers: { p: { driver: "local", default: true } } },
    plugins: { a: { command: "./a", execution: { mode: "hosted" }, ...plugin } },
    providers: { agent: { g: { command: "./g", execution: { mode: "hosted" } } } },
    egress,
  });
}

const support = (
  hostServiceAccess: RuntimeSupport["hostServiceAccess"],
  egressMode: RuntimeSupport["egressMode"],
  canHostPlugins = true,
): RuntimeSupport => ({ canHostPlugins, hostServiceAccess, egressMode });

function refusal(fn: () => unknown): ProfileRefusedError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProfileRefusedError);
    return error as ProfileRefusedError;
  }
  throw new Error("expected a refusal");
}

describe("pluginNeeds", () => {
  it("needs host-service access when the plugin uses host services, and always for agents", () => {
    const c = config({ hostServices: ["cache"] });
    expect(pluginNeeds(c, "plugin", c.plugins.a!).hostServiceAccess).toBe(true);
    expect(pluginNeeds(c, "agent", c.providers.agent.g!).hostServiceAccess).toBe(true);
    const plain = config();
    expect(pluginNeeds(plain, "plugin", plain.plugins.a!).hostServiceAccess).toBe(false);
  });

  it("needs hostname egress when an allow-list applies or the default action is deny", () => {
    const own = config({ allowedHosts: ["api.example.com"] });
    expect(pluginNeeds(own, "plugin", own.plugins.a!)).toMatchObject({
      hostnameEgress: true,
      allowedHosts: ["api.example.com"],
    });
    const server = config({}, { allowedHosts: ["*.example.com"] });
    expect(pluginNeeds(server, "plugin", server.plugins.a!).allowedHosts).toEqual(["*.example.com"]);
    const deny = config({}, { defaultAction: "deny" });
    expect(pluginNeeds(deny, "plugin", deny.plugins.a!)).toMatchObject({
      hostnameEgress: true,
      defaultAction: "deny",
    });
    const open = config();
    expect(pluginNeeds(open, "plugin", open.plugins.a!).hostnameEgress).toBe(false);
  });
});

describe("planHostedPlugin", () => {
  const plan = (
    c: ReturnType<typeof config>,
    s: RuntimeSupport,
    host = {},
    kind: "plugin" | "agent" = "plugin",
  ) =>
    planHostedPlugin({
      config: c,
      kind,
      plugin: kind === "plugin" ? "a" : "g",
      provider: "p",
      support: s,
      host,
      hostServices: SERVICES,
    });

  it("refuses a provider that cannot host plugins", () => {
    const error = refusal(() => plan(config(), support("direct", "hostname", false)));
    expect(error.gap).toBe("can-host");
    expect(error.step).toBe("plan");
    expect(error.code).toBe("START_FAILED");
    expect(error.message).toContain(
      'runtime provider "p" cannot host executable providers in a host-reachable session',
    );
  });

  it("refuses a plugin that uses host services on a provider without access, when the host cannot relay", () => {
    const error = refusal(() => plan(config({ hostServices: ["cache"] }), support("none", "none")));
    expect(error.gap).toBe("host-service-access");
    expect(error.message).toContain(
      'runtime provider "p" cannot provide host service access required by this provider',
    );
  });

  it("refuses a hosted agent on a provider without access", () => {
    const error = refusal(() => plan(config(), support("none", "none"), {}, "agent"));
    expect(error.message).toContain("cannot provide host service access required by this provider");
  });

  it("refuses hostname egress that the effective profile cannot preserve", () => {
    const error = refusal(() =>
      plan(config({ allowedHosts: ["api.example.com"] }), support("none", "hostname")),
    );
    expect(error.gap).toBe("hostname-egress");
    expect(error.message).toContain(
      'runtime provider "p" cannot preserve hostname-based egress required by this provider',
    );
    refusal(() => plan(config({}, { defaultAction: "deny" }), support("direct", "cidr")));
  });

  it("binds host services at their direct address, and has the runtime enforce egress, under direct access", () => {
    const result = plan(
      config({ hostServices: ["cache"], allowedHosts: ["api.example.com"] }),
      support("direct", "hostname"),
    );
    expect(result.bindings).toEqual([
      { service: "cache", envVar: "GESTALT_CACHE", dialTarget: "unix:///run/cache.sock" },
    ]);
    expect(result.egressDelivery).toBe("runtime");
    expect(result.egress).toEqual({ allowedHosts: ["api.example.com"], defaultAction: "allow" });
    expect(result.egressEnv).toEqual({});
  });

  it("binds through the relay and sends egress through the public proxy under relay", () => {
    const result = plan(
      config({ hostServices: ["cache"] }, { defaultAction: "deny" }),
      support("none", "hostname"),
      RELAY_HOST,
    );
    expect(result.profile.effective.hostServiceAccess).toBe("relay");
    expect(result.bindings[0]?.dialTarget).toBe("tls://gestalt.example.com:443");
    expect(result.egressDelivery).toBe("public-proxy");
    expect(result.egress).toBeUndefined();
    expect(result.egressEnv).toEqual({
      HTTP_PROXY: RELAY_HOST.egressProxyUrl,
      HTTPS_PROXY: RELAY_HOST.egressProxyUrl,
      http_proxy: RELAY_HOST.egressProxyUrl,
      https_proxy: RELAY_HOST.egressProxyUrl,
    });
  });

  it("refuses public-proxy egress when the host has no egress proxy URL", () => {
    const { egressProxyUrl: _, ...host } = RELAY_HOST;
    const error = refusal(() =>
      plan(config({}, { defaultAction: "deny" }), support("none", "hostname"), host),
    );
    expect(error.gap).toBe("egress-proxy");
    expect(error.message).toMatch(/egressProxyUrl is not set/);
  });

  it("refuses a host service the host does not offer, naming the path", () => {
    const error = refusal(() => plan(config({ hostServices: ["queue"] }), support("direct", "hostname")));
    expect(error.gap).toBe("host-service");
    expect(error.message).toContain(
      'plugins.a.hostServices[0]: the host offers no service "queue" (offered: cache)',
    );
  });

  it("needs nothing from a plain plugin", () => {
    const result = plan(config(), support("none", "none"));
    expect(result).toMatchObject({ bindings: [], egressDelivery: "none", egressEnv: {} });
  });
});
