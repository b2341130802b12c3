/**
 * Support profiles: what a runtime provider advertises, and what this host can actually
 * deliver with it (the effective profile).
 *
 * | advertised access | host can relay | effective access | hostname egress kept? (if advertised) | delivered by |
 * |---|---|---|---|---|
 * | direct | any | direct | yes | the runtime |
 * | none / unspecified | yes | relay | yes | the host's public egress proxy |
 * | none / unspecified | no | none | no (becomes none) | nothing |
 *
 * A host can relay (and offer its public egress proxy) when it has a non-empty encryption
 * key and a public base URL that is https, has a host, and no path, query or fragment.
 * @module
 */
import type { EgressMode, HostServiceAccess, RuntimeSupport } from "./provider.js";

/** A support profile, as the admin view shows it. */
export interface SupportProfile {
  canHostPlugins: boolean;
  hostServiceAccess: HostServiceAccess;
  egressMode: EgressMode;
  /** Whether the provider prepares agent workspaces (shown when the provider says). */
  supportsPrepareWorkspace?: boolean;
}

/** The advertised profile beside the effective one. */
export interface ProfilePair {
  advertised: SupportProfile;
  effective: SupportProfile;
}

/** What the host itself can offer a session: the prerequisites of relay and the public egress proxy. */
export interface HostCapabilities {
  /** The host's public base URL, for example `https://gestalt.example.com`. */
  publicBaseUrl?: string;
  /** The key the host encrypts relay tokens with. A secret: never shown. */
  encryptionKey?: string;
  /**
   * The URL of the host's public egress proxy (HTTP_PROXY / HTTPS_PROXY of plugins whose
   * hostname egress the host delivers). Required only when that delivery is used.
   */
  egressProxyUrl?: string;
}

/** Who enforces a plugin's hostname egress. */
export type EgressDelivery = "runtime" | "public-proxy" | "none";

/**
 * Whether the host can relay host services (and offer its public egress proxy): a
 * non-empty encryption key, and a public base URL that is https, has a host, and has no
 * path, query or fragment.
 */
export function hostCanRelay(host: HostCapabilities): boolean {
  if (!host.encryptionKey) return false;
  if (!host.publicBaseUrl) return false;
  let url: URL;
  try {
    url = new URL(host.publicBaseUrl);
  } catch {
    return false;
  }
  if (url.protocol !== "https:" || url.hostname === "") return false;
  // `new URL` normalises an empty path to "/", and drops an empty "?" or "#": look at the text too.
  const afterHost = host.publicBaseUrl.replace(/^https:\/\/[^/?#]*/i, "");
  return afterHost === "" || afterHost === "/";
}

/** The advertised profile, as reported (access `unspecified` is shown as reported). */
export function advertisedProfile(support: RuntimeSupport): SupportProfile {
  return {
    canHostPlugins: support.canHostPlugins,
    hostServiceAccess: support.hostServiceAccess,
    egressMode: support.egressMode,
    ...workspaces(support),
  };
}

/** The workspace support, as the provider says it (the host adds nothing to it). */
function workspaces(support: RuntimeSupport): Pick<SupportProfile, "supportsPrepareWorkspace"> {
  return support.supportsPrepareWorkspace === undefined
    ? {}
    : { supportsPrepareWorkspace: support.supportsPrepareWorkspace };
}

/**
 * What this host can deliver with a provider: access `none` (or unspecified) becomes `relay`
 * when the host can relay; hostname egress is kept only when access is direct or the host
 * can offer its public egress proxy.
 */
export function effectiveProfile(support: RuntimeSupport, host: HostCapabilities): SupportProfile {
  const canRelay = hostCanRelay(host);
  const hostServiceAccess: HostServiceAccess =
    support.hostServiceAccess === "direct" ? "direct" : canRelay ? "relay" : "none";
  let egressMode = support.egressMode;
  if (egressMode === "hostname" && hostServiceAccess !== "direct" && !canRelay) egressMode = "none";
  return { canHostPlugins: support.canHostPlugins, hostServiceAccess, egressMode, ...workspaces(support) };
}

/** Both profiles of a provider. */
export function profilePair(support: RuntimeSupport, host: HostCapabilities): ProfilePair {
  return { advertised: advertisedProfile(support), effective: effectiveProfile(support, host) };
}

/** Who delivers hostname egress under an effective profile: the runtime (direct), the host's proxy (relay), or nobody. */
export function egressDelivery(effective: SupportProfile): EgressDelivery {
  if (effective.egressMode !== "hostname") return "none";
  if (effective.hostServiceAccess === "direct") return "runtime";
  if (effective.hostServiceAccess === "relay") return "public-proxy";
  return "none";
}
