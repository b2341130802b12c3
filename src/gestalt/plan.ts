/**
 * The plan of a hosted plugin: what it needs (host services, hostname egress), what the
 * selected provider's effective profile delivers, and how each need is met. A need the
 * profile cannot meet is refused here, before any session starts.
 * @module
 */
import type { GestaltConfig, PluginConfig, PluginKind } from "./config.js";
import { ProfileRefusedError } from "./errors.js";
import {
  type EgressDelivery,
  egressDelivery,
  type HostCapabilities,
  type ProfilePair,
  profilePair,
} from "./profile.js";
import type { RuntimeSupport } from "./provider.js";
import { entryPath } from "./provider-selection.js";

/** A service of the host that plugins can use (a cache, a store, another plugin's API, ...). */
export interface HostServiceDefinition {
  /** The environment variable through which the plugin learns the service's address. */
  envVar: string;
  /** Where a plugin in a session with direct access reaches the service (for example `unix:///run/cache.sock`). */
  dialTarget: string;
  /**
   * Where a plugin in a relayed session reaches it (the host's public relay endpoint).
   * Default: `tls://<host of publicBaseUrl>:<port or 443>`.
   */
  relayDialTarget?: string;
}

/** What a plugin needs from its runtime. */
export interface PluginNeeds {
  /** The host services it uses (names of `hostServices`). */
  hostServices: string[];
  /** It needs host-service access: it uses host services, or it is a hosted agent. */
  hostServiceAccess: boolean;
  /** It needs hostname-based egress: an allow-list applies, or the default action is deny. */
  hostnameEgress: boolean;
  /** The allow-list that applies: the plugin's own, else the server's. */
  allowedHosts: string[];
  defaultAction: "allow" | "deny";
}

/** One host service to bind into the session. */
export interface PlannedBinding {
  service: string;
  envVar: string;
  dialTarget: string;
}

/** How a hosted plugin will be started: everything decided before any session exists. */
export interface HostedPluginPlan {
  kind: PluginKind;
  plugin: string;
  provider: string;
  profile: ProfilePair;
  needs: PluginNeeds;
  /** Who enforces hostname egress (`none` when not needed or not deliverable). */
  egressDelivery: EgressDelivery;
  bindings: PlannedBinding[];
  /** Environment the host adds for egress (the public proxy's HTTP_PROXY / HTTPS_PROXY). */
  egressEnv: Record<string, string>;
  /** What the runtime must enforce itself (set when it delivers egress). */
  egress?: { allowedHosts: string[]; defaultAction: "allow" | "deny" };
}

/** The entry of a plugin or agent. */
export function pluginEntry(config: GestaltConfig, kind: PluginKind, name: string): PluginConfig | undefined {
  return kind === "plugin" ? config.plugins[name] : config.providers.agent[name];
}

/** What a plugin (or hosted agent) needs, from its configuration and the server's egress. */
export function pluginNeeds(config: GestaltConfig, kind: PluginKind, entry: PluginConfig): PluginNeeds {
  const allowedHosts = entry.allowedHosts.length ? entry.allowedHosts : config.egress.allowedHosts;
  const defaultAction = config.egress.defaultAction;
  return {
    hostServices: [...entry.hostServices],
    hostServiceAccess: kind === "agent" || entry.hostServices.length > 0,
    hostnameEgress: allowedHosts.length > 0 || defaultAction === "deny",
    allowedHosts: [...allowedHosts],
    defaultAction,
  };
}

function defaultRelayTarget(host: HostCapabilities): string | undefined {
  if (!host.publicBaseUrl) return undefined;
  const url = new URL(host.publicBaseUrl);
  return `tls://${url.hostname}:${url.port || "443"}`;
}

/** Inputs of {@link planHostedPlugin}. */
export interface PlanInput {
  config: GestaltConfig;
  kind: PluginKind;
  plugin: string;
  provider: string;
  support: RuntimeSupport;
  host: HostCapabilities;
  hostServices?: Record<string, HostServiceDefinition>;
}

/**
 * Plans a hosted plugin on a provider, or refuses it with a {@link ProfileRefusedError}
 * naming the gap: `runtime provider "x" cannot host executable providers in a
 * host-reachable session`, `... cannot provide host service access required by this
 * provider`, `... cannot preserve hostname-based egress required by this provider`.
 */
export function planHostedPlugin(input: PlanInput): HostedPluginPlan {
  const { config, kind, plugin, provider, support, host } = input;
  const entry = pluginEntry(config, kind, plugin);
  if (!entry) throw new Error(`${entryPath(kind, plugin)} is not configured`);
  const profile = profilePair(support, host);
  const needs = pluginNeeds(config, kind, entry);
  const subject = `runtime provider "${provider}"`;
  const context = { plugin, provider };
  const { effective } = profile;

  if (!effective.canHostPlugins) {
    throw new ProfileRefusedError(
      context,
      "can-host",
      `${subject} cannot host executable providers in a host-reachable session`,
    );
  }
  if (
    needs.hostServiceAccess &&
    effective.hostServiceAccess !== "direct" &&
    effective.hostServiceAccess !== "relay"
  ) {
    throw new ProfileRefusedError(
      context,
      "host-service-access",
      `${subject} cannot provide host service access required by this provider`,
    );
  }
  if (needs.hostnameEgress && effective.egressMode !== "hostname") {
    throw new ProfileRefusedError(
      context,
      "hostname-egress",
      `${subject} cannot preserve hostname-based egress required by this provider`,
    );
  }

  const bindings: PlannedBinding[] = [];
  const services = input.hostServices ?? {};
  needs.hostServices.forEach((service, index) => {
    const definition = services[service];
    if (!definition) {
      throw new ProfileRefusedError(
        context,
        "host-service",
        `${entryPath(kind, plugin)}.hostServices[${index}]: the host offers no service "${service}" (offered: ${Object.keys(services).join(", ") || "none"})`,
      );
    }
    const dialTarget =
      effective.hostServiceAccess === "direct"
        ? definition.dialTarget
        : (definition.relayDialTarget ?? defaultRelayTarget(host));
    if (!dialTarget) {
      throw new ProfileRefusedError(
        context,
        "host-service",
        `host service "${service}" has no relay dial target`,
      );
    }
    bindings.push({ service, envVar: definition.envVar, dialTarget });
  });

  const delivery = needs.hostnameEgress ? egressDelivery(effective) : "none";
  const plan: HostedPluginPlan = {
    kind,
    plugin,
    provider,
    profile,
    needs,
    egressDelivery: delivery,
    bindings,
    egressEnv: {},
  };
  if (delivery === "runtime") {
    plan.egress = { allowedHosts: needs.allowedHosts, defaultAction: needs.defaultAction };
  } else if (delivery === "public-proxy") {
    if (!host.egressProxyUrl) {
      throw new ProfileRefusedError(
        context,
        "egress-proxy",
        `${subject} needs the host's public egress proxy for hostname-based egress, but hostCapabilities.egressProxyUrl is not set`,
      );
    }
    const url = host.egressProxyUrl;
    plan.egressEnv = { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url };
  }
  return plan;
}
